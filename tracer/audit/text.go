// SPDX-License-Identifier: Apache-2.0

package audit

import (
	"fmt"
	"io"
	"strconv"
	"text/tabwriter"
)

// maxTextProcs bounds the process table in text: the busiest come first.
const maxTextProcs = 20

// WriteText prints the report as tables for people: the limits of each
// namespace involved, the destinations, the processes, then the warnings.
func (r *Report) WriteText(w io.Writer) error {
	title := "audit"
	if r.Type == "summary" {
		title = "audit summary"
	}
	fmt.Fprintf(w, "conntrace %s after %.1fs", title, r.Seconds)
	if r.Lost > 0 {
		fmt.Fprintf(w, " (%d events lost: counts are low)", r.Lost)
	}
	fmt.Fprintln(w)
	tw := tabwriter.NewWriter(w, 0, 8, 2, ' ', 0)
	if len(r.Limits) > 0 {
		fmt.Fprintln(tw, "NETNS\tEPHEMERAL RANGE\tUSABLE\tTCP_TW_REUSE\tTCP_FIN_TIMEOUT")
		for _, l := range r.Limits {
			fmt.Fprintf(tw, "%d\t%d-%d\t%d\t%d\t%d\n", l.NetNS, l.PortRange[0], l.PortRange[1], l.Usable, l.TWReuse, l.FinTimeout)
		}
		fmt.Fprintln(tw)
	}
	fmt.Fprintln(tw, "DESTINATION\tNETNS\tIN USE\tPEAK\tOF RANGE\tTIME_WAIT\tOPENED\t/S\t<1S\tEADDRNOTAVAIL\tPROCESSES")
	for _, d := range r.Destinations {
		fmt.Fprintf(tw, "%s -> %s\t%d\t%d\t%d\t%s\t%d\t%d\t%.1f\t%.0f%%\t%d\t%s\n",
			d.SAddr, joinHostPort(d.DAddr, d.DPort), d.NetNS, d.InUse, d.Peak, ofRange(d), d.TimeWait,
			d.Opened, d.OpenedPerS, d.ShortLivedPct, d.EADDRNOTAVAIL, orDash(procNames(d.Processes)))
	}
	if len(r.Destinations) == 0 {
		fmt.Fprintln(tw, "(no outbound connections)")
	}
	fmt.Fprintln(tw)
	fmt.Fprintln(tw, "PROCESS\tOPENED\t/S\tAVG LIFETIME\tEADDRNOTAVAIL\tOUTSIDE RANGE\tBOUND PORT 0")
	for i, p := range r.Processes {
		if i == maxTextProcs {
			fmt.Fprintf(tw, "(%d more; -o json lists all)\n", len(r.Processes)-i)
			break
		}
		life := "-"
		if p.Closed > 0 {
			life = strconv.FormatFloat(p.AvgLifetimeMs, 'f', 1, 64) + "ms"
		}
		fmt.Fprintf(tw, "%s\t%d\t%.1f\t%s\t%d\t%d\t%d\n", p.ProcRef, p.Opened, p.OpenedPerS, life, p.EADDRNOTAVAIL, p.OutsideEphemeral, p.BoundPort0)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	for _, msg := range r.Warnings {
		if _, err := fmt.Fprintf(w, "WARNING: %s\n", msg); err != nil {
			return err
		}
	}
	return nil
}

func ofRange(d DestReport) string {
	if d.Usable == 0 {
		return "?"
	}
	return fmt.Sprintf("%.0f%% (peak %.0f%%)", d.UsePct, d.PeakPct)
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
