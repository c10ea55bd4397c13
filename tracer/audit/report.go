// SPDX-License-Identifier: Apache-2.0

package audit

import (
	"cmp"
	"fmt"
	"slices"
	"time"

	"github.com/conntrace/conntrace/tracer/containers"
	"github.com/conntrace/conntrace/tracer/output"
)

// Report is the state of an audit. Its JSON field names are the output
// contract of `conntrace audit -o json`.
type Report struct {
	// Type is "interval" for the live refreshes, "summary" for the end.
	Type         string       `json:"type"`
	Time         time.Time    `json:"ts"`
	Seconds      float64      `json:"duration_s"`
	Limits       []Limits     `json:"limits"` // of the namespaces with destinations
	Destinations []DestReport `json:"destinations"`
	Processes    []ProcReport `json:"processes"`
	Warnings     []string     `json:"warnings"`
	Lost         uint64       `json:"lost"` // events the kernel could not deliver
}

// ProcRef names a process.
type ProcRef struct {
	PID       uint32                `json:"pid"`
	Comm      string                `json:"comm"`
	Container *containers.Container `json:"container,omitempty"`
}

// String is "PID COMM", with " (container NAME)" for a container's
// process, escaped for a terminal.
func (p ProcRef) String() string {
	s := fmt.Sprintf("%d %s", p.PID, safe(p.Comm))
	if p.Container != nil {
		s += " (container " + safe(p.Container.Label()) + ")"
	}
	return s
}

// DestReport is one destination: (source address, destination address,
// destination port) in one network namespace.
type DestReport struct {
	NetNS uint32 `json:"netns"`
	SAddr string `json:"saddr"`
	DAddr string `json:"daddr"`
	DPort uint16 `json:"dport"`
	// InUse counts the local ports held now, TIME_WAIT included; Peak
	// the most seen during the audit.
	InUse       int     `json:"in_use"`
	Peak        int     `json:"peak"`
	TimeWait    int     `json:"time_wait"`
	TimeWaitPct float64 `json:"time_wait_pct"`
	Usable      int     `json:"usable_ports"`
	UsePct      float64 `json:"use_pct"`
	PeakPct     float64 `json:"peak_pct"`
	Opened      int     `json:"opened"`
	OpenedPerS  float64 `json:"opened_per_s"`
	Closed      int     `json:"closed"`
	// ShortLivedPct is the share of closed connections that lived less
	// than a second.
	ShortLivedPct float64   `json:"short_lived_pct"`
	EADDRNOTAVAIL int       `json:"eaddrnotavail"`
	Processes     []ProcRef `json:"processes"`
}

// ProcReport is one process's outbound connections.
type ProcReport struct {
	ProcRef
	Opened        int     `json:"opened"`
	OpenedPerS    float64 `json:"opened_per_s"`
	Closed        int     `json:"closed"`
	AvgLifetimeMs float64 `json:"avg_lifetime_ms"`
	EADDRNOTAVAIL int     `json:"eaddrnotavail"`
	// OutsideEphemeral counts connections from local ports outside the
	// ephemeral range: explicitly bound ones.
	OutsideEphemeral int `json:"outside_ephemeral"`
	// BoundPort0 counts connections bound to port 0 before connect(),
	// each of which reserved a port for all destinations.
	BoundPort0 int `json:"bound_port0"`
}

// Report summarizes the audit so far; final selects the "summary" type.
func (a *Auditor) Report(final bool) *Report {
	a.mu.Lock()
	defer a.mu.Unlock()
	now := time.Now()
	secs := now.Sub(a.start).Seconds()
	r := &Report{Type: "interval", Time: now.UTC(), Seconds: round(secs, 1), Limits: []Limits{},
		Destinations: []DestReport{}, Processes: []ProcReport{}, Warnings: []string{}, Lost: a.lost}
	if final {
		r.Type = "summary"
	}
	rate := func(n int) float64 { return round(float64(n)/max(secs, 0.001), 2) }
	pct := func(n, of int) float64 {
		if of <= 0 {
			return 0
		}
		return round(100*float64(n)/float64(of), 1)
	}

	seenNS := map[uint32]bool{}
	for k, d := range a.dests {
		if !a.destWanted(d) || (d.peak == 0 && d.opened == 0 && d.eaddrnotavail == 0) {
			continue
		}
		usable := 0
		if n := a.ns[k.netns]; n != nil {
			usable = n.limits.Usable
			if !seenNS[k.netns] {
				seenNS[k.netns] = true
				r.Limits = append(r.Limits, n.limits)
			}
		}
		r.Destinations = append(r.Destinations, DestReport{
			NetNS: k.netns, SAddr: k.saddr.String(), DAddr: k.daddr.String(), DPort: k.dport,
			InUse: d.inUse, Peak: d.peak, TimeWait: d.timeWait, TimeWaitPct: pct(d.timeWait, d.inUse),
			Usable: usable, UsePct: pct(d.inUse, usable), PeakPct: pct(d.peak, usable),
			Opened: d.opened, OpenedPerS: rate(d.opened), Closed: d.closed, ShortLivedPct: pct(d.short, d.closed),
			EADDRNOTAVAIL: d.eaddrnotavail, Processes: append([]ProcRef{}, d.procs...),
		})
	}
	slices.SortFunc(r.Limits, func(x, y Limits) int { return cmp.Compare(x.NetNS, y.NetNS) })
	slices.SortFunc(r.Destinations, func(x, y DestReport) int {
		return cmp.Or(cmp.Compare(y.Peak, x.Peak), cmp.Compare(y.Opened, x.Opened), cmp.Compare(x.DPort, y.DPort),
			cmp.Compare(x.DAddr, y.DAddr), cmp.Compare(x.SAddr, y.SAddr), cmp.Compare(x.NetNS, y.NetNS))
	})
	for _, p := range a.procs {
		if len(a.cfg.PIDs) > 0 && !slices.Contains(a.cfg.PIDs, p.PID) {
			continue
		}
		pr := ProcReport{ProcRef: p.ProcRef, Opened: p.opened, OpenedPerS: rate(p.opened), Closed: p.closed,
			EADDRNOTAVAIL: p.eaddrnotavail, OutsideEphemeral: p.outsideEphemeral, BoundPort0: p.boundPort0}
		if p.closed > 0 {
			pr.AvgLifetimeMs = round(float64(p.lifetime.Microseconds())/1000/float64(p.closed), 3)
		}
		r.Processes = append(r.Processes, pr)
	}
	slices.SortFunc(r.Processes, func(x, y ProcReport) int {
		return cmp.Or(cmp.Compare(y.Opened+y.EADDRNOTAVAIL, x.Opened+x.EADDRNOTAVAIL), cmp.Compare(x.PID, y.PID))
	})
	r.Warnings = warnings(r)
	return r
}

// destWanted applies the pid filter: a destination one of the processes
// connected to.
func (a *Auditor) destWanted(d *dest) bool {
	if len(a.cfg.PIDs) == 0 {
		return true
	}
	return slices.ContainsFunc(d.procs, func(p ProcRef) bool { return slices.Contains(a.cfg.PIDs, p.PID) })
}

// warnings says in words a person acts on what the numbers mean.
func warnings(r *Report) []string {
	w := []string{}
	for _, d := range r.Destinations {
		where := fmt.Sprintf("%s -> %s", d.SAddr, joinHostPort(d.DAddr, d.DPort))
		who := procList(d.Processes)
		switch {
		case d.Usable > 0 && d.PeakPct >= dangerPct:
			w = append(w, fmt.Sprintf("%s: %d of %d usable ephemeral ports in use at the peak (%.0f%%, over %d%%)%s: connect() fails with EADDRNOTAVAIL when none is left; reuse connections (keep-alive, pooling), widen net.ipv4.ip_local_port_range, or connect from more source addresses",
				where, d.Peak, d.Usable, d.PeakPct, dangerPct, who))
		case d.Usable > 0 && d.PeakPct >= warnPct:
			w = append(w, fmt.Sprintf("%s: %d of %d usable ephemeral ports in use at the peak (%.0f%%, over %d%%)%s: half the range or more is taken; watch for growth",
				where, d.Peak, d.Usable, d.PeakPct, warnPct, who))
		}
		if d.Closed >= 20 && d.ShortLivedPct >= 80 {
			w = append(w, fmt.Sprintf("%s: %d connections opened (%.1f/s), %.0f%% of the closed ones lived under 1s%s: missing connection reuse? every closed connection holds its port in TIME_WAIT for 60s",
				where, d.Opened, d.OpenedPerS, d.ShortLivedPct, who))
		}
	}
	for _, p := range r.Processes {
		if p.BoundPort0 > 0 {
			w = append(w, fmt.Sprintf("%s: %d connections bound to port 0 before connect(): each reserves a local port for every destination; set IP_BIND_ADDRESS_NO_PORT before bind() to let connect() share ports",
				p.ProcRef, p.BoundPort0))
		}
		if p.EADDRNOTAVAIL > 0 {
			w = append(w, fmt.Sprintf("%s: %d connect() calls failed with EADDRNOTAVAIL: no free local port (ephemeral ports exhausted for the destination)",
				p.ProcRef, p.EADDRNOTAVAIL))
		}
	}
	return w
}

// procList is " by " and the processes, for a warning ("" for none).
func procList(ps []ProcRef) string {
	if len(ps) == 0 {
		return ""
	}
	return " by " + procNames(ps)
}

// procNames lists up to three processes, escaped: "1 a, 2 b, 3 c and 4 more".
func procNames(ps []ProcRef) string {
	s := ""
	for i, p := range ps {
		if i == 3 {
			return s + fmt.Sprintf(" and %d more", len(ps)-3)
		}
		if i > 0 {
			s += ", "
		}
		s += p.String()
	}
	return s
}

// safe escapes a process name for a terminal: it is the process's to set.
func safe(comm string) string { return string(output.AppendTextSafe(nil, []byte(comm))) }

func joinHostPort(addr string, port uint16) string {
	if slices.Contains([]byte(addr), ':') {
		return fmt.Sprintf("[%s]:%d", addr, port)
	}
	return fmt.Sprintf("%s:%d", addr, port)
}

func round(v float64, digits int) float64 {
	p := 1.0
	for range digits {
		p *= 10
	}
	return float64(int64(v*p+0.5)) / p
}
