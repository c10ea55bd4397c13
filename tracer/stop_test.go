// SPDX-License-Identifier: Apache-2.0

package tracer_test

import (
	"context"
	"errors"
	"io"
	"net"
	"os"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/conntrace/conntrace/tracer"
	"github.com/conntrace/conntrace/tracer/loadgen"
	"github.com/conntrace/conntrace/tracer/output"
	"github.com/conntrace/conntrace/tracer/testnet"
)

// TestStopCountsQueuedConnections: five connections wait in a listener's
// accept queue when the run stops. Once the programs know (the hook), the
// server accepts two, and a sixth client, a second listener and a failed
// bind come too late. The run reports the two accepts, nothing that
// started after the stop, and counts the three never accepted as lost.
func TestStopCountsQueuedConnections(t *testing.T) {
	const port, late = 18093, 18094
	s := startTracer(t, tracer.Config{Ports: []uint16{port, late}})
	ln, err := net.Listen("tcp4", "127.0.0.1:"+strconv.Itoa(port))
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	var conns []net.Conn
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	dial := func() {
		c, err := net.Dial("tcp4", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		conns = append(conns, c)
	}
	for range 5 {
		dial()
	}
	s.waitFor(t, 5, func(ev *tracer.Event) bool { return ev.Type == tracer.EventConnect })

	s.t.OnStoppingForTest(func() {
		for range 2 {
			c, err := ln.Accept()
			if err != nil {
				t.Error(err)
				return
			}
			conns = append(conns, c)
		}
		dial()
		ln2, err := net.Listen("tcp4", "127.0.0.1:"+strconv.Itoa(late))
		if err != nil {
			t.Error(err)
			return
		}
		defer ln2.Close()
		if l, err := net.Listen("tcp4", "127.0.0.1:"+strconv.Itoa(late)); !errors.Is(err, syscall.EADDRINUSE) {
			t.Errorf("second listen on %d: %v, want EADDRINUSE", late, err)
			if l != nil {
				l.Close()
			}
		}
	})
	evs := s.stop(t)

	count := func(tt tracer.EventType) int { return len(ofType(tt, evs)) }
	if count(tracer.EventConnect) != 5 || count(tracer.EventAccept) != 2 || count(tracer.EventListen) != 1 ||
		count(tracer.EventBindFail) != 0 || count(tracer.EventClose) != 0 {
		t.Errorf("want 1 listen, 5 connects, 2 accepts and nothing else but the lost report, got:\n%s", dump(evs))
	}
	lost := one(t, tracer.EventLost, evs)
	st := s.t.Stats()
	if lost.LostUnaccepted != 3 || lost.Lost != 3 || st.Unaccepted != 3 || st.Lost != 3 {
		t.Errorf("lost report %d (%d unaccepted), stats %+v: want the 3 connections never accepted", lost.Lost, lost.LostUnaccepted, st)
	}
}

// TestStopQueuedCloseOnly: with only close events asked for, the
// connections still queued when the run stops lose nothing asked for
// (their close has not happened): no lost report, nothing unaccepted.
// The connections are followed (for their close), so they are queued.
func TestStopQueuedCloseOnly(t *testing.T) {
	const port = 18095
	s := startTracer(t, tracer.Config{Ports: []uint16{port}, Events: 1 << tracer.EventClose})
	ln, err := net.Listen("tcp4", "127.0.0.1:"+strconv.Itoa(port))
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	for range 3 {
		c, err := net.Dial("tcp4", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
	}
	// One accepted and closed: its close is reported, so the
	// connections were followed.
	c, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	c.Close()
	s.waitFor(t, 1, func(ev *tracer.Event) bool { return ev.Type == tracer.EventClose && ev.LPort == port })
	evs := s.stop(t)
	if st := s.t.Stats(); st.Unaccepted != 0 || st.Lost != 0 || len(ofType(tracer.EventLost, evs)) != 0 {
		t.Errorf("stats %+v, want nothing lost; events:\n%s", st, dump(evs))
	}
}

// pairSink pairs the two ends of each connection of a storm on this
// host: per client port, connects and accepts in order.
type pairSink struct {
	w     *output.Writer
	ends  map[uint16][]pairEnd
	lost  tracer.Event
	count int // connects
}

type pairEnd struct {
	accept bool
	at     time.Time
}

func (s *pairSink) Write(ev *tracer.Event) error {
	switch ev.Type {
	case tracer.EventConnect:
		s.ends[ev.LPort] = append(s.ends[ev.LPort], pairEnd{at: ev.Time})
		s.count++
	case tracer.EventAccept:
		s.ends[ev.RPort] = append(s.ends[ev.RPort], pairEnd{accept: true, at: ev.Time})
	case tracer.EventLost:
		s.lost.Lost += ev.Lost
		s.lost.LostUnaccepted += ev.LostUnaccepted
	}
	return s.w.Write(ev)
}

func (s *pairSink) Flush() error { return s.w.Flush() }

// unpaired returns the connects without an accept, and the number of
// accepts without a connect. A port's connections follow each other (a
// client port is reused only after its connection is gone); an accept
// pairs with the oldest connect before it.
func (s *pairSink) unpaired() (connects []time.Time, accepts int) {
	for _, ends := range s.ends {
		var open []time.Time
		for _, e := range ends {
			switch {
			case !e.accept:
				open = append(open, e.at)
			case len(open) > 0:
				open = open[1:]
			default:
				accepts++
			}
		}
		connects = append(connects, open...)
	}
	return connects, accepts
}

// TestStopMidStorm: a run stopped in the middle of a storm reports both
// ends of its last connections, or counts the server sides left in the
// accept queue. (It used to detach the accept hook while the state hook
// still reported connects: a thousand connects had no accept, uncounted.)
// One gap is the stop's: each end of a connection on this host starts at
// its own moment, the client's (ESTABLISHED) first, and the server's
// after the client's ACK crossed loopback; a client established just
// before the stop has its connect and no accept, uncounted (measured: 0
// to 36 in 8 runs here, all in the last 5 ms).
func TestStopMidStorm(t *testing.T) {
	testnet.RequireRoot(t)
	const port, dialers = 18096, 4
	window, enough := 5*time.Millisecond, 300
	if os.Getenv("CONNTRACE_EMULATED") != "" {
		// About 30 times slower: 200 to 500 connections in the second.
		window, enough = 100*time.Millisecond, 50
	}
	tr, err := tracer.Open(tracer.Config{Ports: []uint16{port}, Hooks: tracer.HooksUnderTest(t)})
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Close()
	var stoppedAt time.Time
	tr.OnStoppingForTest(func() { stoppedAt = time.Now() })
	sink := &pairSink{w: output.NewWriter(io.Discard, output.JSON, nil), ends: map[uint16][]pairEnd{}}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- tr.Run(ctx, sink) }()
	storm := make(chan error, 1)
	go func() {
		_, err := loadgen.Storm(loadgen.Options{Conns: dialers, Duration: 2 * time.Second, Addr: "127.0.0.1:" + strconv.Itoa(port), Close: "rst"})
		storm <- err
	}()
	time.Sleep(time.Second)
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("run: %v", err)
	}
	if err := <-storm; err != nil {
		t.Fatal(err)
	}
	st := tr.Stats()
	noAccept, noConnect := sink.unpaired()
	var cut int // in the stop's window
	for _, at := range noAccept {
		if stoppedAt.Sub(at) < window {
			cut++
		}
	}
	t.Logf("%d connects; %d without their accept (%d in the last %v before the stop), %d accepts without their connect; %d unaccepted; %+v",
		sink.count, len(noAccept), cut, window, noConnect, st.Unaccepted, st)
	if sink.count < enough {
		t.Fatalf("the storm made only %d connections: too few to test", sink.count)
	}
	if sink.lost.Lost != st.Lost || sink.lost.LostUnaccepted != st.Unaccepted {
		t.Errorf("lost reports sum to %d (%d unaccepted), stats say %+v", sink.lost.Lost, sink.lost.LostUnaccepted, st)
	}
	// Every connect has its accept, but for those counted as unaccepted,
	// the stop's window, a lost event's pair, and issue 28's known gap:
	// connects (and now and then an accept) neither reported nor counted,
	// anywhere in the run. That gap is bounded at 1 in 2,000 here: 0 to 7
	// of 21,000-36,000 in this test's runs of 2026-12-04/05 (7 of 28,607,
	// 1 in 4,087, the most), more than burst_test.go's 1 in 6,500. In an
	// emulated VM, 1 in 800: 2 accepts without their connect of 1,637
	// connections in one run (Linux 6.1, kprobe hooks, 2026-12-05), the
	// most in its runs there.
	per := 2000
	if os.Getenv("CONNTRACE_EMULATED") != "" {
		per = 800
	}
	gap := int(2*(st.Lost-st.Unaccepted)) + (sink.count+per-1)/per
	if missing := len(noAccept) - cut - int(st.Unaccepted); missing > gap || int(st.Unaccepted) > len(noAccept) || noConnect > gap {
		t.Errorf("%d connects without an accept (%d of them in the stop's window), %d counted as unaccepted, %d accepts without a connect: want at most %d unexplained",
			len(noAccept), cut, st.Unaccepted, noConnect, gap)
	}
}
