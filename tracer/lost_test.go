package tracer_test

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/conntrace/conntrace/tracer"
	"github.com/conntrace/conntrace/tracer/testnet"
)

// stalledSink blocks on its first event until released, so that the ring
// buffer overflows behind it.
type stalledSink struct {
	collector
	release chan struct{}
	first   bool
}

func (s *stalledSink) Write(ev *tracer.Event) error {
	if !s.first {
		s.first = true
		<-s.release
	}
	return s.collector.Write(ev)
}

// TestLostEventsAreCounted: with a one-page ring and a stalled reader, most
// records cannot be queued. Every record must come out either as an event or
// in the count of an EventLost: nothing vanishes.
func TestLostEventsAreCounted(t *testing.T) {
	testnet.RequireRoot(t)
	ns := testnet.NewNS(t)
	tr, err := tracer.Open(tracer.Config{Ports: []uint16{8080}, RingBytes: 4096, Hooks: tracer.HooksUnderTest(t)})
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Close()
	sink := &stalledSink{release: make(chan struct{})}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- tr.Run(ctx, sink) }()

	const conns = 60
	srv := testnet.Start(t, "ct-server", testnet.Role{Server: true, NS: ns.Path(), Addr: "127.0.0.1:8080", Conns: conns})
	srv.Expect(t, "listening")
	cli := testnet.Start(t, "ct-client", testnet.Role{NS: ns.Path(), Addr: "127.0.0.1:8080", Repeat: conns})
	cli.Expect(t, "ready")
	cli.Wait(t)
	srv.Wait(t)
	close(sink.release)

	// The last closes can come after the helpers exit (an orphaned socket
	// waits for the final ACK): wait until the accounting is complete, or
	// until it is clear that records vanished.
	const total = 1 + conns*4 // listen, then connect, accept and two closes each
	var delivered, lost uint64
	count := func() {
		delivered, lost = 0, 0
		for _, ev := range sink.snapshot() {
			if ev.Type == tracer.EventLost {
				lost += ev.Lost
			} else {
				delivered++
			}
		}
	}
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if count(); delivered+lost >= total {
			break
		}
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	count()
	st := tr.Stats()
	if lost == 0 {
		t.Fatalf("a one-page ring held all %d records: the test proves nothing", total)
	}
	if st.Lost != lost || st.Events != delivered || st.Dropped+st.Skipped+st.Evicted != lost || st.Evicted != 0 {
		t.Errorf("reported %d delivered, %d lost; stats say %+v", delivered, lost, st)
	}
	// A dropped record is one event. A skipped hook run (the kernel's
	// recursion guard) costs up to two: a missed SYN_RECV loses the accept
	// and the close. Either way, nothing may vanish uncounted.
	ok := delivered+lost == total
	if st.Skipped > 0 {
		ok = delivered+st.Dropped <= total && delivered+st.Dropped+2*st.Skipped >= total
	}
	if !ok {
		byType := map[tracer.EventType]int{}
		for _, ev := range sink.snapshot() {
			byType[ev.Type]++
		}
		t.Errorf("%d records: %d delivered (%v), %d dropped, %d hook runs skipped", total, delivered, byType, st.Dropped, st.Skipped)
	}
	t.Logf("%d delivered, %d lost and reported (%d dropped, %d hook runs skipped)", delivered, lost, st.Dropped, st.Skipped)
}

// socketTableEnv sets the socket table size TestSocketTableFull fills
// (default: the default size, 65,536; vmtest uses a smaller one).
const socketTableEnv = "CONNTRACE_SOCKET_TABLE"

// TestSocketTableFull: about 4% more connections open at once than the
// socket table holds, both ends traced, spread over processes and ports
// (a process may open 20,000 files here), then all closed. The table
// fills exactly; every connection end it had no room for is counted as
// evicted, once, when it was turned away; every other one reports its
// connect or accept and its close. Nothing else goes missing.
func TestSocketTableFull(t *testing.T) {
	testnet.RequireRoot(t)
	cfg := tracer.Config{RingBytes: 64 << 20} // room for every event: the test counts the table, not the reader
	table := tracer.DefaultSocketTableSize
	if s := os.Getenv(socketTableEnv); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil {
			t.Fatalf("%s: %v", socketTableEnv, err)
		}
		table, cfg.SocketTableSize = n, uint32(n)
	}
	const procs = 8
	per := table * 68000 / 65536 / procs
	conns := per * procs
	ns := testnet.NewNS(t)
	var servers, clients []*testnet.Proc
	for i := range procs {
		port := uint16(18300 + i)
		srv := testnet.Start(t, "ct-server", testnet.Role{Server: true, NS: ns.Path(), Addr: fmt.Sprintf("127.0.0.1:%d", port), Conns: per})
		srv.Expect(t, "listening")
		cli := testnet.Start(t, "ct-client", testnet.Role{NS: ns.Path(), Addr: fmt.Sprintf("127.0.0.1:%d", port), Hold: per, Summary: true, WaitGo: true})
		cli.Expect(t, "ready")
		servers, clients = append(servers, srv), append(clients, cli)
		cfg.Ports = append(cfg.Ports, port)
		cfg.PIDs = append(cfg.PIDs, uint32(srv.PID), uint32(cli.PID))
	}
	// Only these processes' connections on these ports enter the table.
	s := startTracer(t, cfg)
	start := time.Now()
	for _, cli := range clients {
		cli.Go(t)
	}
	for _, cli := range clients {
		if got := cli.Expect(t, "held"); got != strconv.Itoa(per) {
			t.Fatalf("client held %s connections, want %d", got, per)
		}
	}
	opened := time.Since(start)
	for _, cli := range clients {
		cli.Go(t)
		cli.Wait(t)
	}
	for _, srv := range servers {
		srv.Wait(t)
	}
	// The last closes: until the table is empty.
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if n, err := tracer.SocketTableLen(s.t); err != nil || n == 0 {
			break
		}
	}
	evs := s.stop(t)
	var opens, closes, evicted uint64
	for _, ev := range evs {
		switch ev.Type {
		case tracer.EventConnect, tracer.EventAccept:
			opens++
		case tracer.EventClose:
			closes++
		case tracer.EventLost:
			evicted += ev.LostEvicted
		}
	}
	st := s.t.Stats()
	ends := uint64(2 * conns)
	t.Logf("%d connections (%d ends) open in %v with a table of %d: %d connects and accepts, %d closes, %d evicted; stats %+v",
		conns, ends, opened.Round(time.Millisecond), table, opens, closes, evicted, st)
	if evicted != st.Evicted || st.Dropped != 0 {
		t.Fatalf("%d evictions reported, stats say %+v", evicted, st)
	}
	if evicted != ends-uint64(table) {
		t.Errorf("%d evicted, want the %d ends the table of %d had no room for", evicted, ends-uint64(table), table)
	}
	// A skipped hook run can cost an open or a close, and is counted.
	if opens+evicted > ends || opens+evicted+st.Skipped < ends || closes+evicted > ends {
		t.Errorf("for %d connection ends: %d opens, %d closes, %d evicted, %d skipped", ends, opens, closes, evicted, st.Skipped)
	}
	// Known gap (issue 12): in this mass close on Linux 6.18, about one
	// run in four, up to 228 of the 65,536 connections in the table
	// never report their close: the kernel fires no FIN_WAIT2 or CLOSE
	// state change and no tcp_destroy_sock for them (bpftrace counting
	// those tracepoints beside the test sees the same shortfall, 340 of
	// 68,000 clients in one run), and counts no skip. Their table entries
	// are counted as unseen when the socket's memory is reused. Until the
	// kernel path is found, the test bounds it (1 in 200) and says how
	// many.
	if uncounted := int64(ends) - int64(closes+evicted+st.Skipped); uncounted > 0 {
		t.Logf("%d closes neither reported nor counted as lost", uncounted)
		if uncounted > int64(ends-evicted)/200 {
			t.Errorf("for %d connection ends: %d closes, %d evicted, %d skipped: %d missing, uncounted", ends, closes, evicted, st.Skipped, uncounted)
		}
	}
}
