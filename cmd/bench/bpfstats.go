// SPDX-License-Identifier: Apache-2.0

package main

import (
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/cilium/ebpf"
)

// The kernel's own figure of what each program costs: with bpf_stats on
// (BPF_ENABLE_STATS, what kernel.bpf_stats_enabled=1 does), every program
// counts its runs and their time. The tracer's programs are those loaded
// after the run began (the bench expects nothing else to load programs
// meanwhile); their counts are read when it is ready and again when the
// storm ends, so that loading and draining are left out.

// progCost is what a program cost over a storm.
type progCost struct {
	runs uint64
	time time.Duration
}

// lastProgID is the newest program's ID: the tracer's are above it.
func lastProgID() ebpf.ProgramID {
	var last ebpf.ProgramID
	for id := ebpf.ProgramID(0); ; {
		next, err := ebpf.ProgramGetNextID(id)
		if err != nil {
			return last
		}
		id, last = next, next
	}
}

// progCosts are the runs and run time so far of every program above
// after, summed by name (a program attached in several places, or loaded
// once per hook mode, is one row).
func progCosts(after ebpf.ProgramID) (map[string]progCost, error) {
	costs := map[string]progCost{}
	for id := after; ; {
		next, err := ebpf.ProgramGetNextID(id)
		if errors.Is(err, os.ErrNotExist) {
			return costs, nil
		} else if err != nil {
			return nil, err
		}
		id = next
		p, err := ebpf.NewProgramFromID(id)
		if errors.Is(err, os.ErrNotExist) {
			continue // unloaded meanwhile
		} else if err != nil {
			return nil, err
		}
		info, err := p.Info()
		if err != nil {
			p.Close()
			return nil, err
		}
		st, err := p.Stats()
		p.Close()
		if err != nil {
			return nil, err
		}
		c := costs[info.Name]
		c.runs += st.RunCount
		c.time += st.Runtime
		costs[info.Name] = c
	}
}

// since is what each program cost between two readings.
func since(before, after map[string]progCost) map[string]progCost {
	d := map[string]progCost{}
	for name, a := range after {
		b := before[name]
		if a.runs > b.runs {
			d[name] = progCost{runs: a.runs - b.runs, time: a.time - b.time}
		}
	}
	return d
}

// total is the time of every program.
func total(costs map[string]progCost) time.Duration {
	var t time.Duration
	for _, c := range costs {
		t += c.time
	}
	return t
}

// renderCosts is, per program, its cost in each configuration's last
// round: nanoseconds a run and runs per unit of the storm.
func renderCosts(configs []config, results [][]sample, dur time.Duration, unit string) string {
	var names []string
	var cols []int
	for i, c := range configs {
		if c.cmd == nil || len(results[i]) == 0 {
			continue
		}
		last := results[i][len(results[i])-1]
		if last.progs == nil {
			continue
		}
		cols = append(cols, i)
		for name := range last.progs {
			if !slices.Contains(names, name) {
				names = append(names, name)
			}
		}
	}
	if len(cols) == 0 {
		return ""
	}
	slices.Sort(names)
	per := perUnit(unit)
	var b strings.Builder
	fmt.Fprintf(&b, "\nBPF cost per program (bpf_stats, last round): ns a run, and runs per %s in brackets.\n\n| program |", per)
	for _, i := range cols {
		fmt.Fprintf(&b, " %s |", configs[i].name)
	}
	b.WriteString("\n| --- |" + strings.Repeat(" ---: |", len(cols)) + "\n")
	for _, name := range names {
		fmt.Fprintf(&b, "| %s |", name)
		for _, i := range cols {
			last := results[i][len(results[i])-1]
			c, ok := last.progs[name]
			units := last.connPerS * dur.Seconds()
			if !ok || c.runs == 0 || units == 0 {
				b.WriteString(" - |")
				continue
			}
			fmt.Fprintf(&b, " %.0f (%.2f) |", float64(c.time.Nanoseconds())/float64(c.runs), float64(c.runs)/units)
		}
		b.WriteString("\n")
	}
	return b.String()
}

// perUnit is one of what a storm's rate counts: "query" of "queries/s".
func perUnit(unit string) string {
	u := strings.TrimSuffix(unit, "/s")
	if q, ok := strings.CutSuffix(u, "ies"); ok {
		return q + "y"
	}
	return strings.TrimSuffix(u, "s")
}
