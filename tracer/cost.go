// SPDX-License-Identifier: Apache-2.0

package tracer

import (
	"fmt"
	"io"
	"time"

	"github.com/cilium/ebpf"
	"golang.org/x/sys/unix"
)

// ProgramCost is what one of the tracer's programs has cost since it was
// loaded, as the kernel counts it while bpf_stats is on
// (kernel.bpf_stats_enabled=1, or EnableStats): its runs and their time.
type ProgramCost struct {
	Program string        // its name in bpf/
	Hook    string        // where it is attached ("" for the UDP sweep, which Go runs)
	Runs    uint64        // runs counted
	Time    time.Duration // their time, in the kernel
}

// EnableStats turns the kernel's count of every BPF program's runs and
// run time on until the returned closer is closed (BPF_ENABLE_STATS; the
// counting costs each run two clock reads).
func EnableStats() (io.Closer, error) {
	c, err := ebpf.EnableStats(uint32(unix.BPF_STATS_RUN_TIME))
	if err != nil {
		return nil, fmt.Errorf("turn bpf_stats on: %w", err)
	}
	return c, nil
}

// ProgramCosts reads every attached program's counts, in attach order,
// then the UDP sweep's.
func (t *Tracer) ProgramCosts() ([]ProgramCost, error) {
	var costs []ProgramCost
	seen := map[string]bool{}
	read := func(name, hook string) error {
		p := t.coll.Programs[name]
		if p == nil || seen[name] {
			return nil
		}
		seen[name] = true
		st, err := p.Stats()
		if err != nil {
			return fmt.Errorf("read %s's bpf_stats: %w", name, err)
		}
		costs = append(costs, ProgramCost{Program: name, Hook: hook, Runs: st.RunCount, Time: st.Runtime})
		return nil
	}
	for _, h := range t.hooks {
		if err := read(h.prog, h.String()); err != nil {
			return nil, err
		}
	}
	if t.sweeper != nil {
		if err := read(udpSweep, ""); err != nil {
			return nil, err
		}
	}
	return costs, nil
}
