// SPDX-License-Identifier: Apache-2.0

package top

import (
	"fmt"
	"net/netip"
	"runtime"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/conntrace/conntrace/tracer/containers"
	"github.com/conntrace/conntrace/tracer/event"
)

var t0 = time.Date(2026, 12, 6, 10, 0, 0, 0, time.UTC)

func ev(typ event.Type, pid uint32, comm string, at time.Duration) *event.Event {
	e := &event.Event{Type: typ, PID: pid, Time: t0.Add(at), Proto: event.ProtoTCP, Family: event.FamilyIPv4,
		LAddr: netip.MustParseAddr("198.18.0.1"), NetNS: 4026531840}
	copy(e.Comm[:], comm)
	return e
}

func out(typ event.Type, pid uint32, comm, peer string, at time.Duration) *event.Event {
	e := ev(typ, pid, comm, at)
	ap := netip.MustParseAddrPort(peer)
	e.Direction, e.RAddr, e.RPort, e.LPort = event.DirOut, ap.Addr(), ap.Port(), 40000
	return e
}

// recorded is a run's events: web makes three connections to
// 198.18.0.2:80 (100 µs, 200 µs and 10 ms handshakes) and closes one,
// is refused twice by 198.18.0.3:81; api (in a container) listens on 8080
// and accepts one; a third process fails to bind 8080; a lookup fails.
func recorded() []*event.Event {
	var evs []*event.Event
	for i, lat := range []time.Duration{100 * time.Microsecond, 200 * time.Microsecond, 10 * time.Millisecond} {
		e := out(event.Connect, 100, "web", "198.18.0.2:80", time.Duration(i)*100*time.Millisecond)
		e.Latency = lat
		e.RName = "api.test.example"
		evs = append(evs, e)
	}
	c := out(event.Close, 100, "web", "198.18.0.2:80", 400*time.Millisecond)
	c.TxBytes, c.RxBytes, c.Retransmits, c.Reason = 1000, 2000, 2, event.ReasonFIN
	evs = append(evs, c)
	for i := range 2 {
		f := out(event.ConnectFail, 100, "web", "198.18.0.3:81", time.Duration(500+i)*time.Millisecond)
		f.Errno = uint32(unix.ECONNREFUSED)
		f.Listeners = []event.Holder{}
		evs = append(evs, f)
	}
	cg := &containers.Cgroup{Path: "/libpod_parent/libpod-abc", Container: &containers.Container{ID: strings.Repeat("ab", 32), Runtime: "podman", Name: "apictr"}}
	l := ev(event.Listen, 200, "api", 600*time.Millisecond)
	l.LPort, l.Cgroup = 8080, cg
	a := ev(event.Accept, 200, "api", 700*time.Millisecond)
	a.LPort, a.RAddr, a.RPort, a.Direction, a.Cgroup = 8080, netip.MustParseAddr("198.18.0.9"), 51000, event.DirIn, cg
	b := ev(event.BindFail, 300, "late", 800*time.Millisecond)
	b.LPort, b.Errno, b.Holders = 8080, uint32(unix.EADDRINUSE), []event.Holder{}
	d := out(event.DNS, 100, "web", "198.18.0.53:53", 900*time.Millisecond)
	d.DNS = &event.Lookup{Name: []byte("nope.test.example."), QType: 1, RCode: 3}
	return append(evs, l, a, b, d)
}

func feed(t *testing.T, a *Aggregator, evs []*event.Event) {
	t.Helper()
	for _, e := range evs {
		if err := a.Write(e); err != nil {
			t.Fatal(err)
		}
	}
}

func TestTables(t *testing.T) {
	a := New(Config{Idle: 5 * time.Second})
	a.lastTick = t0
	feed(t, a, recorded())
	s := a.Tick(t0.Add(2 * time.Second))
	if s.Interval != 2 || s.Events != 10 || s.EventsPerS != 5 || s.Lost != 0 {
		t.Errorf("header: interval %v events %d (%v/s) lost %d", s.Interval, s.Events, s.EventsPerS, s.Lost)
	}

	// Processes: web first (1.5 connections/s), then api (0.5/s); the
	// binder has no connection, so no row.
	if len(s.Processes) != 2 {
		t.Fatalf("processes: %+v", s.Processes)
	}
	web, api := s.Processes[0], s.Processes[1]
	if web.Comm != "web" || web.PID != 100 || web.OutPerS != 1.5 || web.InPerS != 0 || web.Active != 2 ||
		web.Connections != 3 || web.Failures != 2 || web.FailuresPerS != 1 || web.Errors["ECONNREFUSED"] != 2 ||
		web.TxBytes != 1000 || web.RxBytes != 2000 || web.TxPerS != 500 || web.RxPerS != 1000 || web.Retransmits != 2 {
		t.Errorf("web: %+v", web)
	}
	// 200 µs is in [192, 224): 208; 10 ms in [8192, 10240): 9216.
	if web.LatencyP50 == nil || *web.LatencyP50 != 208 || web.LatencyP99 == nil || *web.LatencyP99 != 9216 {
		t.Errorf("web latency p50 %v p99 %v", deref(web.LatencyP50), deref(web.LatencyP99))
	}
	if api.Comm != "api" || api.InPerS != 0.5 || api.Active != 1 || api.Container != "apictr" || api.LatencyP50 != nil {
		t.Errorf("api: %+v", api)
	}
	if len(s.Containers) != 1 || s.Containers[0].Container != "apictr" || s.Containers[0].InPerS != 0.5 || s.Containers[0].ID != strings.Repeat("ab", 32) {
		t.Errorf("containers: %+v", s.Containers)
	}

	// Peers: 198.18.0.2:80 out, 198.18.0.9 in to :8080, 198.18.0.3:81
	// out (failures only).
	if len(s.Peers) != 3 {
		t.Fatalf("peers: %+v", s.Peers)
	}
	p := s.Peers
	if p[0].Addr != "198.18.0.2" || p[0].Port != 80 || p[0].Direction != "out" || p[0].Name != "api.test.example" || p[0].OutPerS != 1.5 {
		t.Errorf("peer 0: %+v", p[0])
	}
	if p[1].Addr != "198.18.0.9" || p[1].Port != 8080 || p[1].Direction != "in" || p[1].InPerS != 0.5 {
		t.Errorf("peer 1: %+v", p[1])
	}
	if p[2].Addr != "198.18.0.3" || p[2].Port != 81 || p[2].Failures != 2 || p[2].Connections != 0 {
		t.Errorf("peer 2: %+v", p[2])
	}

	// Failures: the two refusals in one row, first; then the bind and the
	// lookup (one each: the later last).
	if len(s.Failures) != 3 {
		t.Fatalf("failures: %+v", s.Failures)
	}
	f := s.Failures
	if f[0].Event != "connect_fail" || f[0].Count != 2 || f[0].PerS != 1 || f[0].Error != "ECONNREFUSED" || f[0].Addr != "198.18.0.3" || f[0].Port != 81 ||
		!strings.HasPrefix(f[0].Explain, "ECONNREFUSED: ") || !f[0].First.Equal(t0.Add(500*time.Millisecond)) || !f[0].Last.Equal(t0.Add(501*time.Millisecond)) {
		t.Errorf("failure 0: %+v", f[0])
	}
	if f[1].Event != "dns" || f[1].Error != "NXDOMAIN" || f[1].Name != "nope.test.example" || f[1].Addr != "198.18.0.53" || f[1].Explain == "" {
		t.Errorf("failure 1: %+v", f[1])
	}
	if f[2].Event != "bind_fail" || f[2].Error != "EADDRINUSE" || f[2].Port != 8080 || f[2].Comm != "late" || !strings.HasPrefix(f[2].Explain, "EADDRINUSE: ") {
		t.Errorf("failure 2: %+v", f[2])
	}

	if len(s.Listeners) != 1 {
		t.Fatalf("listeners: %+v", s.Listeners)
	}
	if l := s.Listeners[0]; l.Port != 8080 || l.Comm != "api" || !l.Listening || l.Accepts != 1 || l.AcceptsPS != 0.5 || l.Active != 1 || l.Container != "apictr" {
		t.Errorf("listener: %+v", l)
	}

	// The next interval: no events; totals stay, rates are 0, the
	// sparkline has both intervals.
	s = a.Tick(t0.Add(3 * time.Second))
	web = s.Processes[0]
	if s.Events != 0 || web.OutPerS != 0 || web.Connections != 3 || web.Failures != 2 || len(web.History) != 2 || web.History[0] != 1.5 || web.History[1] != 0 {
		t.Errorf("second interval: %d events, web %+v", s.Events, web)
	}
	if s.Failures[0].Count != 2 || s.Failures[0].PerS != 0 {
		t.Errorf("second interval, failure: %+v", s.Failures[0])
	}

	// Past the idle time: what has nothing open leaves (the failures, the
	// peer 198.18.0.3); web (2 open), api and its listener (1 open) stay.
	s = a.Tick(t0.Add(10 * time.Second))
	if len(s.Processes) != 2 || len(s.Peers) != 3 || len(s.Listeners) != 1 || len(s.Failures) != 3 {
		t.Errorf("the tick that drops them still shows them: %d %d %d %d", len(s.Processes), len(s.Peers), len(s.Listeners), len(s.Failures))
	}
	s = a.Tick(t0.Add(11 * time.Second))
	if len(s.Processes) != 2 || len(s.Peers) != 2 || len(s.Listeners) != 1 || len(s.Failures) != 0 {
		t.Errorf("after the idle time: %+v", s)
	}
}

func deref(f *float64) any {
	if f == nil {
		return nil
	}
	return *f
}

// TestRecent: a row's detail is its own events, as watch's lines.
func TestRecent(t *testing.T) {
	a := New(Config{Recent: 8})
	a.lastTick = t0
	feed(t, a, recorded())
	s := a.Tick(t0.Add(time.Second))
	lines := a.Recent(s.Failures[0].Key(), 10)
	if len(lines) != 2 || !strings.Contains(lines[0], "connect_fail") || !strings.Contains(lines[1], "ECONNREFUSED") {
		t.Errorf("the refusals' lines: %q", lines)
	}
	// The ring holds 8 of the 10 events: web's first two connects are gone.
	lines = a.Recent(s.Peers[0].Key(), 10)
	if len(lines) != 2 || !strings.Contains(lines[0], "connect ") || !strings.Contains(lines[1], "close ") {
		t.Errorf("198.18.0.2's lines: %q", lines)
	}
	lines = a.Recent(s.Listeners[0].Key(), 10)
	if len(lines) != 2 || !strings.Contains(lines[0], "listen") || !strings.Contains(lines[1], "accept") {
		t.Errorf("the listener's lines: %q", lines)
	}
	lines = a.Recent(s.Failures[1].Key(), 10)
	if len(lines) != 1 || !strings.Contains(lines[0], "nope.test.example NXDOMAIN") {
		t.Errorf("the lookup's line: %q", lines)
	}
}

// TestHostileNames: a name is kept as given (JSON escapes it), and the
// lines for a terminal escape it.
func TestHostileNames(t *testing.T) {
	a := New(Config{})
	a.lastTick = t0
	e := out(event.Connect, 7, "\x1b[2Jevil", "198.18.0.2:80", 0)
	feed(t, a, []*event.Event{e})
	s := a.Tick(t0.Add(time.Second))
	if s.Processes[0].Comm != "\x1b[2Jevil" {
		t.Errorf("comm %q", s.Processes[0].Comm)
	}
	if lines := a.Recent(s.Processes[0].Key(), 1); len(lines) != 1 || strings.Contains(lines[0], "\x1b") {
		t.Errorf("line %q", lines)
	}
}

// TestBounded: past MaxRows, new rows' events count in "(other)", each
// event once however many tables it overflowed.
func TestBounded(t *testing.T) {
	a := New(Config{MaxRows: 2})
	a.lastTick = t0
	for i := range 5 {
		feed(t, a, []*event.Event{out(event.Connect, uint32(10+i), "p", fmt.Sprintf("198.18.0.%d:80", 2+i), 0)})
	}
	s := a.Tick(t0.Add(time.Second))
	if len(s.Processes) != 3 || s.Processes[2].Comm != Other || !s.Processes[2].Other || s.Processes[1].Other || s.Processes[2].Connections != 3 || s.OtherEvents != 3 {
		t.Errorf("processes %+v, other events %d", s.Processes, s.OtherEvents)
	}
	if len(s.Peers) != 3 || s.Peers[2].Addr != Other || s.Peers[2].Connections != 3 {
		t.Errorf("peers %+v", s.Peers)
	}
}

func TestHist(t *testing.T) {
	for _, c := range []struct {
		d   time.Duration
		mid float64
	}{{0, 0}, {3 * time.Microsecond, 3}, {4 * time.Microsecond, 4.5}, {7 * time.Microsecond, 7.5},
		{100 * time.Microsecond, 104}, {time.Hour, histMiddle(histBuckets - 1)}} {
		if got := histMiddle(histIndex(c.d)); got != c.mid {
			t.Errorf("%v: %v, want %v", c.d, got, c.mid)
		}
	}
	// Every value is within 12.5% of its bucket's middle.
	for us := uint64(1); us < 1<<27; us = us*11/10 + 1 {
		m := histMiddle(histIndex(time.Duration(us) * time.Microsecond))
		if d := (m - float64(us)) / float64(us); d > 0.125 || d < -0.125 {
			t.Fatalf("%d µs: middle %v", us, m)
		}
	}
}

// TestLatencyWindow: the percentiles forget what is older than two windows.
func TestLatencyWindow(t *testing.T) {
	var w windowed
	w.add(time.Millisecond, t0)
	w.roll(t0.Add(latencyWindow))
	w.add(2*time.Microsecond, t0.Add(latencyWindow))
	if p := w.quantile(1); p == nil || *p != histMiddle(histIndex(time.Millisecond)) {
		t.Errorf("max of both windows: %v", deref(p))
	}
	w.roll(t0.Add(2 * latencyWindow))
	if p := w.quantile(1); p == nil || *p != 2 {
		t.Errorf("after a second roll: %v", deref(p))
	}
	w.roll(t0.Add(3 * latencyWindow))
	if p := w.quantile(0.5); p != nil {
		t.Errorf("after a third: %v", *p)
	}
}

// BenchmarkWrite: the reader's cost per event, a storm connection's four.
func BenchmarkWrite(b *testing.B) {
	a := New(Config{})
	conn := []*event.Event{out(event.Connect, 1, "client", "198.18.0.2:80", 0), ev(event.Accept, 2, "server", 0),
		out(event.Close, 1, "client", "198.18.0.2:80", 0), ev(event.Close, 2, "server", 0)}
	for _, e := range conn[1:] {
		e.LPort, e.RAddr, e.RPort = 80, netip.MustParseAddr("198.18.0.1"), 40000
	}
	conn[1].Direction, conn[3].Direction = event.DirIn, event.DirIn
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		a.Write(conn[i%4])
	}
}

// TestMemoryBound: every table full, each row with latencies and an
// error, the ring of recent events full: what the aggregator holds.
func TestMemoryBound(t *testing.T) {
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	a := New(Config{})
	a.lastTick = t0
	for i := range DefaultMaxRows + 10 {
		peer := netip.AddrPortFrom(netip.AddrFrom4([4]byte{198, 18, byte(i >> 8), byte(i)}), 80).String()
		cg := &containers.Cgroup{Container: &containers.Container{ID: fmt.Sprintf("%064x", i)}}
		c := out(event.Connect, uint32(i+1), "p", peer, 0)
		c.Latency, c.Cgroup = time.Millisecond, cg
		f := out(event.ConnectFail, uint32(i+1), "p", peer, 0)
		f.Errno, f.Cgroup = uint32(unix.ECONNREFUSED), cg
		l := ev(event.Listen, uint32(i+1), "p", 0)
		l.LPort = uint16(i + 1)
		feed(t, a, []*event.Event{c, f, l})
	}
	for range DefaultRecent {
		feed(t, a, []*event.Event{ev(event.Listen, 1, "p", 0)})
	}
	s := a.Tick(t0.Add(time.Second))
	if len(s.Processes) != DefaultMaxRows+1 || len(s.Peers) != DefaultMaxRows+1 || len(s.Containers) != DefaultMaxRows+1 ||
		len(s.Failures) != DefaultMaxRows+1 || len(s.Listeners) != DefaultMaxRows+1 {
		t.Fatalf("rows: %d %d %d %d %d", len(s.Processes), len(s.Peers), len(s.Containers), len(s.Failures), len(s.Listeners))
	}
	s = nil
	runtime.GC()
	runtime.ReadMemStats(&after)
	held := after.HeapAlloc - before.HeapAlloc
	t.Logf("%d rows a table, %d recent events: %.1f MB", DefaultMaxRows, DefaultRecent, float64(held)/1e6)
	if held > 24<<20 {
		t.Errorf("%d bytes held", held)
	}
	runtime.KeepAlive(a)
}

// TestFailuresByName: one failure of the same name by new pids each time
// (curl in a loop) is one row, with the latest pid and all their events.
func TestFailuresByName(t *testing.T) {
	a := New(Config{})
	a.lastTick = t0
	for i := range 3 {
		f := out(event.ConnectFail, uint32(500+i), "curl", "198.18.0.3:81", time.Duration(i)*time.Millisecond)
		f.Errno = uint32(unix.ECONNREFUSED)
		feed(t, a, []*event.Event{f})
	}
	other := out(event.ConnectFail, 600, "wget", "198.18.0.3:81", 0)
	other.Errno = uint32(unix.ECONNREFUSED)
	feed(t, a, []*event.Event{other})
	s := a.Tick(t0.Add(time.Second))
	if len(s.Failures) != 2 || s.Failures[0].Comm != "curl" || s.Failures[0].Count != 3 || s.Failures[0].PID != 502 || s.Failures[1].Comm != "wget" {
		t.Fatalf("failures: %+v", s.Failures)
	}
	if lines := a.Recent(s.Failures[0].Key(), 10); len(lines) != 3 {
		t.Errorf("curl's lines: %q", lines)
	}
}

// TestQueueFull: a connect that timed out on a listener of this host whose
// accept queue was full counts on that listener.
func TestQueueFull(t *testing.T) {
	a := New(Config{})
	a.lastTick = t0
	l := ev(event.Listen, 200, "api", 0)
	l.LPort, l.NetNS = 8080, 4026532999
	f := out(event.ConnectFail, 100, "web", "198.18.0.1:8080", time.Millisecond)
	f.Errno, f.ListenersNetNS = uint32(unix.ETIMEDOUT), 4026532999
	f.Listeners = []event.Holder{{LAddr: netip.MustParseAddr("0.0.0.0"), LPort: 8080, State: "LISTEN", Queued: 2, Backlog: 1}}
	notFull := out(event.ConnectFail, 100, "web", "198.18.0.1:8080", 2*time.Millisecond)
	notFull.Errno, notFull.ListenersNetNS = uint32(unix.ETIMEDOUT), 4026532999
	notFull.Listeners = []event.Holder{{LAddr: netip.MustParseAddr("0.0.0.0"), LPort: 8080, State: "LISTEN", Queued: 1, Backlog: 1}}
	feed(t, a, []*event.Event{l, f, notFull})
	s := a.Tick(t0.Add(time.Second))
	if len(s.Listeners) != 1 || s.Listeners[0].QueueFull != 1 {
		t.Errorf("listeners: %+v", s.Listeners)
	}
}
