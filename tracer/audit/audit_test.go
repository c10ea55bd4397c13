// SPDX-License-Identifier: Apache-2.0

package audit

import (
	"encoding/json"
	"net/netip"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/conntrace/conntrace/tracer/containers"
	"github.com/conntrace/conntrace/tracer/event"
)

func TestReportReserved(t *testing.T) {
	for _, tc := range []struct {
		list string
		want int
	}{
		{"", 0},
		{"40005", 1},
		{"8080,40000-40004,40019-40030", 6},
		{"1-65535", 20},
		{"junk,40001", 1},
	} {
		if got := countReserved(tc.list, [2]uint16{40000, 40019}); got != tc.want {
			t.Errorf("countReserved(%q) = %d, want %d", tc.list, got, tc.want)
		}
	}
}

// auditWith builds an auditor whose namespace 7 has a 20-port range and
// one destination holding inUse ports (timeWait of them in TIME_WAIT).
func auditWith(inUse, timeWait int) (*Auditor, destKey) {
	a := New(Config{})
	a.start = time.Now().Add(-10 * time.Second)
	a.ns[7] = &namespace{limits: Limits{NetNS: 7, PortRange: [2]uint16{40000, 40019}, Usable: 20}}
	k := destKey{7, netip.MustParseAddr("198.18.0.1"), netip.MustParseAddr("198.18.0.2"), 9443}
	d := a.dest(k)
	d.inUse, d.timeWait, d.peak = inUse, timeWait, inUse
	return a, k
}

func mkEvent(typ event.Type, pid uint32, lport uint16) *event.Event {
	ev := &event.Event{Type: typ, PID: pid, Direction: event.DirOut, NetNS: 7,
		LAddr: netip.MustParseAddr("198.18.0.1"), LPort: lport, RAddr: netip.MustParseAddr("198.18.0.2"), RPort: 9443}
	copy(ev.Comm[:], "client\x1b[2J")
	return ev
}

func TestReportThresholds(t *testing.T) {
	for _, tc := range []struct {
		inUse int
		want  string
	}{
		{9, ""},
		{10, "198.18.0.1 -> 198.18.0.2:9443: 10 of 20 usable ephemeral ports in use at the peak (50%, over 50%): half the range or more is taken"},
		{15, "15 of 20 usable ephemeral ports in use at the peak (75%, over 50%)"},
		{16, "16 of 20 usable ephemeral ports in use at the peak (80%, over 80%): connect() fails with EADDRNOTAVAIL"},
	} {
		a, _ := auditWith(tc.inUse, 0)
		r := a.Report(false)
		d := r.Destinations[0]
		if d.UsePct != float64(tc.inUse)*5 || d.Usable != 20 {
			t.Errorf("%d in use: use_pct %v usable %d", tc.inUse, d.UsePct, d.Usable)
		}
		got := strings.Join(r.Warnings, "\n")
		if (tc.want == "") != (got == "") || !strings.Contains(got, tc.want) {
			t.Errorf("%d in use: warnings %q, want %q", tc.inUse, got, tc.want)
		}
	}
}

func TestReportEvents(t *testing.T) {
	a, k := auditWith(3, 3)
	a.Write(mkEvent(event.Connect, 42, 40001))
	a.Write(mkEvent(event.Connect, 42, 1234)) // explicitly bound
	cl := mkEvent(event.Close, 42, 40001)
	cl.Duration = 300 * time.Millisecond
	a.Write(cl)
	fail := mkEvent(event.ConnectFail, 42, 0)
	fail.LAddr = netip.IPv4Unspecified()
	fail.Errno = uint32(unix.EADDRNOTAVAIL)
	a.Write(fail)
	refused := mkEvent(event.ConnectFail, 42, 40002)
	refused.Errno = uint32(unix.ECONNREFUSED)
	a.Write(refused)
	in := mkEvent(event.Accept, 43, 9443)
	in.Direction = event.DirIn
	a.Write(in)
	a.Write(&event.Event{Type: event.Lost, Lost: 5})

	r := a.Report(true)
	if r.Type != "summary" || r.Lost != 5 || len(r.Destinations) != 1 || len(r.Processes) != 1 {
		t.Fatalf("report %+v", r)
	}
	d, p := r.Destinations[0], r.Processes[0]
	if d.Opened != 2 || d.Closed != 1 || d.ShortLivedPct != 100 || d.EADDRNOTAVAIL != 1 || d.TimeWaitPct != 100 ||
		len(d.Processes) != 1 || d.Processes[0].PID != 42 {
		t.Errorf("destination %+v (key %v)", d, k)
	}
	if p.Opened != 2 || p.Closed != 1 || p.AvgLifetimeMs != 300 || p.EADDRNOTAVAIL != 1 || p.OutsideEphemeral != 1 {
		t.Errorf("process %+v", p)
	}
	want := `42 client\x1b[2J: 1 connect() calls failed with EADDRNOTAVAIL`
	if len(r.Warnings) != 1 || !strings.HasPrefix(r.Warnings[0], want) {
		t.Errorf("warnings %q, want one starting %q (the name escaped)", r.Warnings, want)
	}
	var b strings.Builder
	r.WriteText(&b)
	if strings.Contains(b.String(), "\x1b") || !strings.Contains(b.String(), "WARNING: "+want) {
		t.Errorf("text:\n%s", b.String())
	}
}

func TestReportPIDFilter(t *testing.T) {
	a, _ := auditWith(0, 0)
	a.cfg.PIDs = []uint32{42}
	a.Write(mkEvent(event.Connect, 41, 40001))
	if r := a.Report(false); len(r.Destinations) != 0 || len(r.Processes) != 0 {
		t.Errorf("pid 41 only, but the report has %+v", r)
	}
	a.Write(mkEvent(event.Connect, 42, 40002))
	if r := a.Report(false); len(r.Destinations) != 1 || len(r.Processes) != 1 || r.Destinations[0].Opened != 2 {
		t.Errorf("pid 42: %+v", r)
	}
}

// A container's process is named with its container, in the tables, the
// warnings and the JSON report.
func TestReportContainer(t *testing.T) {
	a, _ := auditWith(3, 3)
	ctr := &containers.Container{ID: strings.Repeat("ab", 32), Runtime: containers.Podman, Name: "web\x1b"}
	for _, port := range []uint16{40001, 40002} {
		ev := mkEvent(event.Connect, 42, port)
		ev.Cgroup = &containers.Cgroup{ID: 9, Path: "/libpod_parent/libpod-" + ctr.ID, Container: ctr}
		ev.BoundPort0 = true
		a.Write(ev)
	}
	r := a.Report(true)
	if len(r.Processes) != 1 || r.Processes[0].Container != ctr || len(r.Destinations) != 1 || r.Destinations[0].Processes[0].Container != ctr {
		t.Fatalf("report %+v", r)
	}
	want := `42 client\x1b[2J (container web\x1b): 2 connections bound to port 0`
	if len(r.Warnings) == 0 || !strings.HasPrefix(r.Warnings[len(r.Warnings)-1], want) {
		t.Errorf("warnings %q, want one starting %q", r.Warnings, want)
	}
	var b strings.Builder
	r.WriteText(&b)
	if !strings.Contains(b.String(), "\n"+`42 client\x1b[2J (container web\x1b)`) {
		t.Errorf("text:\n%s", b.String())
	}
	j, err := json.Marshal(r.Processes[0])
	if err != nil || !strings.Contains(string(j), `"container":{"id":"`+ctr.ID+`","runtime":"podman","name":"web\u001b"}`) {
		t.Errorf("json %s %v", j, err)
	}
}
