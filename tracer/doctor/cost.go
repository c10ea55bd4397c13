// SPDX-License-Identifier: Apache-2.0

package doctor

import (
	"context"
	"time"

	"golang.org/x/sys/unix"

	"github.com/conntrace/conntrace/tracer"
)

// CostReport is what tracing cost this machine over a while of its own
// traffic: each program in the kernel (bpf_stats), the reader in user
// space. Its JSON field names are part of the output contract of
// `conntrace doctor --cost -o json`.
type CostReport struct {
	Seconds  float64       `json:"seconds"`
	Mode     string        `json:"mode"`
	Programs []ProgramCost `json:"programs"`
	// BPFCPUPercent: every program's time, in percent of one CPU.
	BPFCPUPercent float64 `json:"bpf_cpu_percent"`
	// ReaderCPUPercent: this process's user and system time (the reader,
	// decoding and parsing every event), in percent of one CPU.
	ReaderCPUPercent float64 `json:"reader_cpu_percent"`
	Events           uint64  `json:"events"`
	Lost             uint64  `json:"lost"`
}

// ProgramCost is one program's share.
type ProgramCost struct {
	Program    string  `json:"program"`
	Hook       string  `json:"hook"` // "" for the UDP sweep, which the tracer runs
	Runs       uint64  `json:"runs"`
	NsPerRun   float64 `json:"ns_per_run"`
	CPUPercent float64 `json:"cpu_percent"`
}

// countSink keeps no event (the tracer's Stats count them).
type countSink struct{}

func (countSink) Write(*tracer.Event) error { return nil }
func (countSink) Flush() error              { return nil }

// Cost runs t, opened and not run yet, until ctx ends, writing the
// events nowhere, and reports what that cost.
func Cost(ctx context.Context, t *tracer.Tracer) (*CostReport, error) {
	stats, err := tracer.EnableStats()
	if err != nil {
		return nil, err
	}
	defer stats.Close()
	before, err := t.ProgramCosts()
	if err != nil {
		return nil, err
	}
	var ru0, ru1 unix.Rusage
	unix.Getrusage(unix.RUSAGE_SELF, &ru0)
	start := time.Now()
	if err := t.Run(ctx, countSink{}); err != nil {
		return nil, err
	}
	elapsed := time.Since(start)
	unix.Getrusage(unix.RUSAGE_SELF, &ru1)
	after, err := t.ProgramCosts()
	if err != nil {
		return nil, err
	}
	st := t.Stats()
	percent := func(d time.Duration) float64 { return 100 * d.Seconds() / elapsed.Seconds() }
	r := &CostReport{Seconds: elapsed.Seconds(), Mode: t.Mode().String(), Programs: []ProgramCost{},
		Events: st.Events, Lost: st.Lost,
		ReaderCPUPercent: percent(time.Duration(ru1.Utime.Nano() + ru1.Stime.Nano() - ru0.Utime.Nano() - ru0.Stime.Nano()))}
	var all time.Duration
	for i, a := range after {
		runs, spent := a.Runs, a.Time
		if i < len(before) && before[i].Program == a.Program {
			runs, spent = runs-before[i].Runs, spent-before[i].Time
		}
		p := ProgramCost{Program: a.Program, Hook: a.Hook, Runs: runs, CPUPercent: percent(spent)}
		if runs > 0 {
			p.NsPerRun = float64(spent.Nanoseconds()) / float64(runs)
		}
		all += spent
		r.Programs = append(r.Programs, p)
	}
	r.BPFCPUPercent = percent(all)
	return r, nil
}
