// SPDX-License-Identifier: Apache-2.0

package metrics

import (
	"net/netip"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/conntrace/conntrace/tracer/containers"
	"github.com/conntrace/conntrace/tracer/event"
)

func comm(s string) (c [16]byte) {
	copy(c[:], s)
	return c
}

func connect(name string, rport uint16, latency time.Duration) *event.Event {
	return &event.Event{Type: event.Connect, Direction: event.DirOut, Comm: comm(name), LPort: 40001, RPort: rport, Latency: latency}
}

// gather is m's exposition of the named metrics, as a scrape sees it; a
// collection error (two series with the same labels, invalid UTF-8)
// fails the test.
func gather(t *testing.T, m prometheus.Collector, names ...string) string {
	t.Helper()
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(m)
	fams, err := reg.Gather()
	if err != nil {
		t.Fatalf("gather: %v", err)
	}
	var b strings.Builder
	for _, f := range fams {
		for _, name := range names {
			if f.GetName() == name {
				for _, mt := range f.Metric {
					b.WriteString(name)
					for _, l := range mt.Label {
						b.WriteString(" " + l.GetName() + "=" + l.GetValue())
					}
					switch {
					case mt.Counter != nil:
						b.WriteString(" " + ftoa(mt.GetCounter().GetValue()))
					case mt.Histogram != nil:
						b.WriteString(" count=" + ftoa(float64(mt.GetHistogram().GetSampleCount())))
						for _, bk := range mt.GetHistogram().Bucket {
							b.WriteString(" le" + ftoa(bk.GetUpperBound()) + ":" + ftoa(float64(bk.GetCumulativeCount())))
						}
					case mt.Gauge != nil:
						b.WriteString(" " + ftoa(mt.GetGauge().GetValue()))
					}
					b.WriteString("\n")
				}
			}
		}
	}
	return b.String()
}

func ftoa(v float64) string { return strconv.FormatFloat(v, 'g', -1, 64) }

func TestCounts(t *testing.T) {
	m := New(Config{Labels: AllLabels, Ephemeral: [2]uint16{32768, 60999}, Build: BuildLabels{Version: "v1.2.0", Commit: "0123abc", BuildDate: "2026-12-03T09:00:00Z",
		GoVersion: "go1.26.8", Arch: "arm64", BPFObject: "ff00", HookModes: "fentry,kprobe,tracepoint"}, Hooks: "tracepoint"})
	web := &containers.Cgroup{Container: &containers.Container{ID: "0123456789abcdef0123", Runtime: "podman", Name: "web"}}
	events := []*event.Event{
		connect("curl", 443, 300*time.Microsecond),
		connect("curl", 443, 2*time.Millisecond),
		{Type: event.Accept, Direction: event.DirIn, Comm: comm("nginx"), LPort: 443, RPort: 40001, Cgroup: web},
		{Type: event.Close, Direction: event.DirIn, Comm: comm("nginx"), LPort: 443, RPort: 40001, Cgroup: web,
			Reason: event.ReasonResetIn, TxBytes: 100, RxBytes: 7, Duration: 5 * time.Second},
		// A client's port is in the ephemeral range: not a service.
		{Type: event.ConnectFail, Direction: event.DirOut, Comm: comm("curl"), RPort: 50000, Errno: 111},
		{Type: event.ConnectFail, Direction: event.DirOut, Comm: comm("curl"), RPort: 81, Errno: 0},
		{Type: event.BindFail, Comm: comm("nginx"), LPort: 80, Errno: 98},
		{Type: event.Lost, Lost: 6, LostDropped: 1, LostSkipped: 2, LostEvicted: 3},
		{Type: event.Listen, Comm: comm("nginx"), LPort: 80},
	}
	for _, ev := range events {
		m.Write(ev)
	}
	got := gather(t, m, "conntrace_connections_total", "conntrace_connection_closes_total", "conntrace_connect_failures_total",
		"conntrace_bind_failures_total", "conntrace_sent_bytes_total", "conntrace_received_bytes_total", "conntrace_lost_events_total",
		"conntrace_build_info", "conntrace_handshake_seconds", "conntrace_connection_duration_seconds")
	for _, want := range []string{
		"conntrace_connections_total comm=curl container= direction=out port=443 2\n",
		"conntrace_connections_total comm=nginx container=web direction=in port=443 1\n",
		"conntrace_connection_closes_total comm=nginx container=web direction=in port=443 reason=reset_in 1\n",
		"conntrace_connect_failures_total comm=curl container= error=ECONNREFUSED port=ephemeral 1\n",
		"conntrace_connect_failures_total comm=curl container= error=aborted port=81 1\n",
		"conntrace_bind_failures_total comm=nginx container= error=EADDRINUSE port=80 1\n",
		"conntrace_sent_bytes_total comm=nginx container=web direction=in port=443 100\n",
		"conntrace_received_bytes_total comm=nginx container=web direction=in port=443 7\n",
		"conntrace_lost_events_total cause=dropped 1\n",
		"conntrace_lost_events_total cause=skipped 2\n",
		"conntrace_lost_events_total cause=evicted 3\n",
		"conntrace_build_info arch=arm64 bpf_object_sha256=ff00 build_date=2026-12-03T09:00:00Z commit=0123abc go_version=go1.26.8 hook_modes=fentry,kprobe,tracepoint hooks=tracepoint version=v1.2.0 1\n",
		// 300µs in le 0.0005, 2ms in le 0.0025: cumulative buckets.
		"conntrace_handshake_seconds direction=out port=443 count=2 le0.0001:0 le0.00025:0 le0.0005:1 le0.001:1 le0.0025:2 ",
		"conntrace_connection_duration_seconds direction=in port=443 count=1 le0.001:0 le0.01:0 le0.1:0 le1:0 le10:1 ",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("want %q in:\n%s", want, got)
		}
	}
	if strings.Count(got, "conntrace_connections_total") != 2 {
		t.Errorf("listen counted as a connection:\n%s", got)
	}
}

// TestKindCounters: every kind of event has its row, counted or not.
func TestKindCounters(t *testing.T) {
	for _, k := range append([]event.Type{event.Lost}, event.All...) {
		if int(k) >= len(counters) || counters[k] == nil {
			t.Errorf("%s: no row in counters", k)
		}
	}
}

// TestSeriesBound: a metric never holds more than MaxSeries label sets,
// overflow included. Past four fifths of them, new label sets go to
// comm="other"; then port and container "other" too; last, in the set
// kept for it, every label "other". A process really named "other"
// shares the series instead of making a second one with the same labels
// (which would fail every scrape).
func TestSeriesBound(t *testing.T) {
	m := New(Config{MaxSeries: 10, Labels: AllLabels}) // 8 named, 1 overflow, 1 kept
	for _, name := range []string{"a", "b", "c", "d", "e", "f", "g", "h"} {
		m.Write(connect(name, 443, 0))
	}
	m.Write(connect("i", 443, 0))     // over four fifths: comm="other"
	m.Write(connect("other", 443, 0)) // not an overflow: that series, its own name's
	m.Write(connect("a", 443, 0))     // an existing series still counts as itself
	m.Write(connect("j", 22, 0))      // no room: the last set
	m.Write(connect("k", 8080, 0))
	got := gather(t, m, "conntrace_connections_total", "conntrace_series_overflow_total")
	for _, want := range []string{
		"conntrace_connections_total comm=a container= direction=out port=443 2\n",
		"conntrace_connections_total comm=h container= direction=out port=443 1\n",
		"conntrace_connections_total comm=other container= direction=out port=443 2\n",
		"conntrace_connections_total comm=other container=other direction=other port=other 2\n",
		"conntrace_series_overflow_total metric=conntrace_connections_total 3\n",
		"conntrace_series_overflow_total metric=conntrace_handshake_seconds 0\n",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("want %q in:\n%s", want, got)
		}
	}
	if n := strings.Count("\n"+got, "\nconntrace_connections_total "); n != 10 {
		t.Errorf("%d label sets, want 10", n)
	}

	// The case: 300 processes on 20 ports, --max-series 10.
	m = New(Config{MaxSeries: 10, Labels: AllLabels})
	for i := range 300 {
		ev := connect("p"+strconv.Itoa(i), uint16(8000+i%20), time.Millisecond)
		m.Write(ev)
		m.Write(&event.Event{Type: event.Close, Direction: event.DirOut, Comm: ev.Comm, RPort: ev.RPort, Reason: event.Reason(i % 4), Duration: time.Second})
		m.Write(&event.Event{Type: event.ConnectFail, Direction: event.DirOut, Comm: ev.Comm, RPort: ev.RPort, Errno: uint32(100 + i%15)})
	}
	families := []string{"conntrace_connections_total", "conntrace_connection_closes_total", "conntrace_connect_failures_total",
		"conntrace_sent_bytes_total", "conntrace_received_bytes_total", "conntrace_handshake_seconds", "conntrace_connection_duration_seconds"}
	sets := map[string]int{}
	for _, line := range strings.Split(gather(t, m, families...), "\n") {
		if name, _, ok := strings.Cut(line, " "); ok {
			sets[name]++
		}
	}
	if len(sets) != len(families) {
		t.Errorf("label sets by metric: %v, want all of %v", sets, families)
	}
	for name, n := range sets {
		if n > 10 {
			t.Errorf("%s: %d label sets, want at most 10", name, n)
		}
	}
}

func TestLabelChoice(t *testing.T) {
	m := New(Config{Labels: Labels{Port: true}})
	m.Write(connect("curl", 443, 0))
	m.Write(connect("wget", 443, 0))
	got := gather(t, m, "conntrace_connections_total", "conntrace_handshake_seconds")
	if !strings.Contains(got, "conntrace_connections_total direction=out port=443 2\n") ||
		!strings.Contains(got, "conntrace_handshake_seconds direction=out port=443 count=2 ") {
		t.Errorf("with only the port label:\n%s", got)
	}
	m = New(Config{MaxSeries: 2})
	m.Write(connect("curl", 443, 0))
	m.Write(connect("wget", 80, 0))
	if got := gather(t, m, "conntrace_connections_total"); got != "conntrace_connections_total direction=out 2\n" {
		t.Errorf("with no optional label:\n%s", got)
	}
}

// TestHostileNames: a process or container name is anyone's bytes; label
// values are escaped as in watch's text output (always valid UTF-8).
func TestHostileNames(t *testing.T) {
	m := New(Config{Labels: AllLabels})
	ev := connect("\x1b[31m\xff\"a\\b\n", 443, 0)
	ev.Cgroup = &containers.Cgroup{Container: &containers.Container{Name: "x\x00y z"}}
	m.Write(ev)
	got := gather(t, m, "conntrace_connections_total")
	if want := `comm=\x1b[31m\xff"a\\b\x0a container=x\x00y\x20z direction=out`; !strings.Contains(got, want) {
		t.Errorf("want %q in:\n%s", want, got)
	}
}

// TestWriteAllocs: counting an event of a known series allocates nothing.
func TestWriteAllocs(t *testing.T) {
	m := New(Config{Labels: AllLabels, Ephemeral: [2]uint16{32768, 60999}})
	ev := connect("curl", 443, time.Millisecond)
	cl := &event.Event{Type: event.Close, Direction: event.DirOut, Comm: comm("curl"), RPort: 443, Reason: event.ReasonFIN}
	m.Write(ev)
	m.Write(cl)
	if n := testing.AllocsPerRun(1000, func() { m.Write(ev); m.Write(cl) }); n != 0 {
		t.Errorf("%v allocations per event", n)
	}
}

func BenchmarkWrite(b *testing.B) {
	m := New(Config{Labels: AllLabels, Ephemeral: [2]uint16{32768, 60999}})
	evs := []*event.Event{
		connect("curl", 443, time.Millisecond),
		{Type: event.Accept, Direction: event.DirIn, Comm: comm("nginx"), LPort: 443},
		{Type: event.Close, Direction: event.DirOut, Comm: comm("curl"), RPort: 443, Reason: event.ReasonFIN, Duration: time.Second},
		{Type: event.Close, Direction: event.DirIn, Comm: comm("nginx"), LPort: 443, Reason: event.ReasonFIN, Duration: time.Second},
	}
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		m.Write(evs[i%len(evs)])
	}
}

// TestUDPFailureCounts: a UDP socket's drops by reason, on its local
// port, and a UDP flow's errors apart from TCP's connect failures.
func TestUDPFailureCounts(t *testing.T) {
	m := New(Config{Labels: AllLabels})
	for _, ev := range []*event.Event{
		{Type: event.Drop, Proto: event.ProtoUDP, Comm: comm("dnsmasq"), LPort: 53, RPort: 40001, Drops: 1, DropReason: "SOCKET_RCVBUFF"},
		{Type: event.Drop, Proto: event.ProtoUDP, Comm: comm("dnsmasq"), LPort: 53, Drops: 41, DropReason: "SOCKET_RCVBUFF"},
		{Type: event.Drop, Proto: event.ProtoUDP, Comm: comm("dnsmasq"), LPort: 53, Drops: 2, DropReason: "reason 99"},
		{Type: event.Drop, Proto: event.ProtoUDP, LPort: 5353, RPort: 40002, Drops: 3, DropReason: "NO_SOCKET"},
		{Type: event.Drop, Proto: event.ProtoUDP, LPort: 443, RPort: 40003, Drops: 1, DropReason: "UDP_CSUM"},
		{Type: event.ConnectFail, Proto: event.ProtoUDP, Direction: event.DirOut, Comm: comm("dig"), RPort: 53, Errno: 111},
	} {
		m.Write(ev)
	}
	got := gather(t, m, "conntrace_udp_dropped_datagrams_total", "conntrace_udp_errors_total", "conntrace_connect_failures_total")
	want := "conntrace_udp_dropped_datagrams_total comm= container= drop_reason=NO_SOCKET port=5353 3\n" +
		"conntrace_udp_dropped_datagrams_total comm= container= drop_reason=UDP_CSUM port=443 1\n" +
		"conntrace_udp_dropped_datagrams_total comm=dnsmasq container= drop_reason=SOCKET_RCVBUFF port=53 42\n" +
		"conntrace_udp_dropped_datagrams_total comm=dnsmasq container= drop_reason=other port=53 2\n" +
		"conntrace_udp_errors_total comm=dig container= error=ECONNREFUSED port=53 1\n"
	if got != want {
		t.Errorf("got:\n%s\nwant:\n%s", got, want)
	}
}

// TestDNSCounts: lookups by rcode, outcome and server; the latency of
// the answered ones whose query was seen.
func TestDNSCounts(t *testing.T) {
	m := New(Config{Labels: AllLabels})
	server := netip.MustParseAddr("198.18.0.2")
	for _, l := range []event.Lookup{
		{Latency: 300 * time.Microsecond},
		{Latency: 2 * time.Millisecond},
		{RCode: 3, Latency: time.Millisecond},
		{}, // an answer whose query was not seen
		{Outcome: event.TimedOut, Latency: 5 * time.Second},
		{Outcome: event.Unreachable, Errno: 111},
		{Outcome: event.Unanswered},
	} {
		m.Write(&event.Event{Type: event.DNS, Proto: event.ProtoUDP, Comm: comm("curl"), RAddr: server, RPort: 53, DNS: &l})
	}
	got := gather(t, m, "conntrace_dns_lookups_total", "conntrace_dns_latency_seconds")
	for _, want := range []string{
		"conntrace_dns_lookups_total comm=curl container= port=53 rcode=NOERROR server=198.18.0.2 3\n",
		"conntrace_dns_lookups_total comm=curl container= port=53 rcode=NXDOMAIN server=198.18.0.2 1\n",
		"conntrace_dns_lookups_total comm=curl container= port=53 rcode=timeout server=198.18.0.2 1\n",
		"conntrace_dns_lookups_total comm=curl container= port=53 rcode=unreachable server=198.18.0.2 1\n",
		"conntrace_dns_lookups_total comm=curl container= port=53 rcode=unanswered server=198.18.0.2 1\n",
		"conntrace_dns_latency_seconds port=53 server=198.18.0.2 count=3 le0.0001:0 le0.00025:0 le0.0005:1 le0.001:2 le0.0025:3 ",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("want %q in:\n%s", want, got)
		}
	}
}
