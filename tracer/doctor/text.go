// SPDX-License-Identifier: Apache-2.0

package doctor

import (
	"fmt"
	"io"
	"text/tabwriter"
)

// WriteText prints the report for people: the checks, every hook of every
// mode, the mode watch picks, and the advice.
func (r *Report) WriteText(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 8, 2, ' ', 0)
	fmt.Fprintf(tw, "kernel\t\t%s\n", r.Kernel)
	for _, c := range r.Checks {
		fmt.Fprintf(tw, "%s\t%s\t%s\n", c.Name, okWord(c.OK), c.Detail)
	}
	fmt.Fprintln(tw)
	fmt.Fprintln(tw, "MODE\tHOOK\tSTATUS")
	for _, m := range r.Modes {
		if m.Error != "" {
			fmt.Fprintf(tw, "%s\t(load)\tno: %s\n", m.Mode, m.Error)
			continue
		}
		for _, h := range m.Hooks {
			status := "ok"
			if !h.OK {
				status = "no: " + h.Error
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\n", m.Mode, h.Hook, status)
		}
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if r.CanWatch {
		fmt.Fprintf(w, "\nauto picks %s hooks: conntrace watch can run\n", r.Auto)
	} else {
		fmt.Fprintf(w, "\nconntrace watch cannot run here\n")
	}
	for _, a := range r.Advice {
		fmt.Fprintf(w, "advice: %s\n", a)
	}
	return nil
}

func okWord(ok bool) string {
	if ok {
		return "ok"
	}
	return "NO"
}

// WriteText prints the cost report for people: a line per program, the
// programs' total and the reader's.
func (r *CostReport) WriteText(w io.Writer) error {
	fmt.Fprintf(w, "what conntrace watch cost over %.1f s of this machine's traffic (%s hooks, every event, written nowhere; bpf_stats):\n\n",
		r.Seconds, r.Mode)
	tw := tabwriter.NewWriter(w, 0, 8, 2, ' ', 0)
	fmt.Fprintln(tw, "PROGRAM\tHOOK\tRUNS\tRUNS/S\tNS/RUN\t% OF A CPU")
	for _, p := range r.Programs {
		hook := p.Hook
		if hook == "" {
			hook = "(run by conntrace)"
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%.0f\t%.0f\t%.2f\n", p.Program, hook, p.Runs, float64(p.Runs)/r.Seconds, p.NsPerRun, p.CPUPercent)
	}
	fmt.Fprintf(tw, "all programs\t\t\t\t\t%.2f\n", r.BPFCPUPercent)
	fmt.Fprintf(tw, "the reader (user space)\t%d events, %d lost\t\t%.0f\t\t%.2f\n", r.Events, r.Lost, float64(r.Events)/r.Seconds, r.ReaderCPUPercent)
	return tw.Flush()
}
