// SPDX-License-Identifier: Apache-2.0

package tracer_test

import (
	"context"
	"os"
	"slices"
	"testing"
	"time"

	"github.com/conntrace/conntrace/tracer"
	"github.com/conntrace/conntrace/tracer/testnet"
)

// delaySink records, for each event, how long after it happened it was
// flushed: written out, as a line would be.
type delaySink struct {
	pending []time.Time
	delays  []time.Duration
}

func (s *delaySink) Write(ev *tracer.Event) error {
	if ev.Type != tracer.EventLost {
		s.pending = append(s.pending, ev.Time)
	}
	return nil
}

func (s *delaySink) Flush() error {
	now := time.Now()
	for _, ts := range s.pending {
		s.delays = append(s.delays, now.Sub(ts))
	}
	s.pending = s.pending[:0]
	return nil
}

// TestEventDelay: the kernel side wakes the reader only when the ring
// fills up, so on an idle machine events wait for the reader's poll
// (every 10 ms; without it they would wait for 1/16 of the ring). 1,000
// spaced connections: 99% of their events are written within 40 ms of
// happening (measured on the 2-CPU development VM, where the helper
// processes share the CPUs with the reader: p99 17 to 26 ms).
func TestEventDelay(t *testing.T) {
	testnet.RequireRoot(t)
	ns := testnet.NewNS(t)
	tr, err := tracer.Open(tracer.Config{Ports: []uint16{23440}, Hooks: tracer.HooksUnderTest(t)})
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Close()
	sink := &delaySink{}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- tr.Run(ctx, sink) }()

	const conns = 1000
	srv := testnet.Start(t, "ct-server", testnet.Role{Server: true, NS: ns.Path(), Addr: "127.0.0.1:23440", Conns: conns})
	srv.Expect(t, "listening")
	cli := testnet.Start(t, "ct-client", testnet.Role{NS: ns.Path(), Addr: "127.0.0.1:23440", Repeat: conns, Pause: 2 * time.Millisecond})
	cli.Expect(t, "ready")
	cli.WaitWithin(t, 90*time.Second) // 1,000 connections take over 10 s in an emulated VM
	srv.Wait(t)
	time.Sleep(200 * time.Millisecond) // the last closes
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	d := sink.delays
	if len(d) < 4*conns {
		t.Fatalf("%d events for %d connections, want %d", len(d), conns, 4*conns)
	}
	slices.Sort(d)
	p50, p99, worst := d[len(d)/2], d[len(d)*99/100], d[len(d)-1]
	t.Logf("%d events: delay p50 %v, p99 %v, max %v", len(d), p50, p99, worst)
	// The target is this machine's. An emulated VM (vmtest sets
	// CONNTRACE_EMULATED; TCG, no KVM) keeps time coarsely and runs
	// everything ten times slower: there the test proves the mechanism,
	// with twice the room.
	limit := 40 * time.Millisecond
	if os.Getenv("CONNTRACE_EMULATED") != "" {
		limit = 80 * time.Millisecond
	}
	if p99 > limit {
		t.Errorf("p99 delay %v, want at most %v", p99, limit)
	}
}
