// SPDX-License-Identifier: Apache-2.0

package tracer

import (
	"fmt"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"

	"github.com/conntrace/conntrace/tracer/internal/bpfobj"
)

// lossCounter reads what the kernel side could not deliver, from every
// source that counts it: the programs' lost_events counters (ring full,
// connections whose end went unseen, connections the socket table had no
// room for, UDP flows the flow table had none for: both evicted), the programs' recursion misses less the state rescues, and
// the kprobes' misses.
type lossCounter struct {
	progs        []*ebpf.Program // attached, for their recursion-miss counters
	kprobes      []link.Link     // kprobe links, for the hits the kernel missed
	kprobeMissed uint64          // their misses, as last read
	buf          []uint64        // per-CPU read buffer
}

// read returns the totals so far. Each is kept from going down: a counter
// read while its program runs can lag, never lead.
func (c *lossCounter) read(maps *bpfobj.ConntraceMaps, last Stats) (dropped, skipped, evicted uint64, err error) {
	var unseen, rescued, flows uint64
	for _, r := range []struct {
		m   *ebpf.Map
		key bpfobj.ConntraceLostCause
		n   *uint64
	}{
		{maps.LostEvents, bpfobj.ConntraceLostCauseLOST_RING_FULL, &dropped},
		{maps.LostEvents, bpfobj.ConntraceLostCauseLOST_UNSEEN, &unseen},
		{maps.LostEvents, bpfobj.ConntraceLostCauseLOST_TABLE_FULL, &evicted},
		{maps.LostEvents, bpfobj.ConntraceLostCauseLOST_FLOWS_FULL, &flows},
	} {
		if *r.n, err = c.sumPerCPU(r.m, uint32(r.key)); err != nil {
			return 0, 0, 0, fmt.Errorf("read lost-event counter: %w", err)
		}
	}
	// Misses first: a rescue always follows its miss, so reading the
	// rescues later can only undercount the skips for now, never count a
	// rescued one as lost.
	var misses uint64
	for _, p := range c.progs {
		if st, err := p.Stats(); err == nil {
			misses += st.RecursionMisses
		}
	}
	misses += c.kprobeMisses()
	if rescued, err = c.sumPerCPU(maps.StateRescued, 0); err != nil {
		return 0, 0, 0, fmt.Errorf("read rescued-event counter: %w", err)
	}
	evicted += flows
	skipped = unseen
	if misses > rescued {
		skipped += misses - rescued
	}
	return max(dropped, last.Dropped), max(skipped, last.Skipped), max(evicted, last.Evicted), nil
}

// sumPerCPU adds up entry key of a per-CPU array of counters.
func (c *lossCounter) sumPerCPU(m *ebpf.Map, key uint32) (uint64, error) {
	if err := m.Lookup(key, &c.buf); err != nil {
		return 0, err
	}
	var sum uint64
	for _, n := range c.buf {
		sum += n
	}
	return sum, nil
}

// kprobeMisses counts the kprobe hits that did not run their program: a
// kretprobe without a free instance, a kprobe inside another (the kernel
// tells since 6.7). Read before the links close, kept after.
func (c *lossCounter) kprobeMisses() uint64 {
	var n uint64
	for _, l := range c.kprobes {
		info, err := l.Info()
		if err != nil {
			return c.kprobeMissed
		}
		if pe := info.PerfEvent(); pe != nil && pe.Kprobe() != nil {
			n += pe.Kprobe().Missed
		}
	}
	c.kprobeMissed = max(c.kprobeMissed, n)
	return c.kprobeMissed
}

// detach takes the kprobes' last count before their links close.
func (c *lossCounter) detach() {
	c.kprobeMisses()
	c.kprobes = nil
}

// reportLost delivers an EventLost when records were dropped, hook runs
// skipped or connections turned away since the last report, or (at the
// end) connections were left in accept queues.
func (t *Tracer) reportLost(sink Sink) error {
	dropped, skipped, evicted, err := t.lost.read(&t.maps, t.stats)
	if err != nil {
		return err
	}
	unaccepted := t.unaccepted
	total := dropped + skipped + evicted + unaccepted
	if total <= t.stats.Lost {
		return nil
	}
	ev := Event{Type: EventLost, Time: time.Now().UTC(), Lost: total - t.stats.Lost,
		LostDropped: dropped - t.stats.Dropped, LostSkipped: skipped - t.stats.Skipped, LostEvicted: evicted - t.stats.Evicted,
		LostUnaccepted: unaccepted - t.stats.Unaccepted}
	t.stats.Lost, t.stats.Dropped, t.stats.Skipped, t.stats.Evicted, t.stats.Unaccepted = total, dropped, skipped, evicted, unaccepted
	return sink.Write(&ev)
}
