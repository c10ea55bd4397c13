// SPDX-License-Identifier: Apache-2.0

package tracer_test

import (
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/conntrace/conntrace/tracer"
	"github.com/conntrace/conntrace/tracer/testnet"
)

// TestHookModesAgree runs one scenario in every hook mode this kernel
// supports and requires the same events from each: connections over IPv4
// and IPv6 to a dual-stack listener, refused connects (blocking and not), a
// bind conflict. $CONNTRACE_EXPECT_HOOKS, when set (vmtest sets it for the
// kernel it boots), names the modes that must work.
func TestHookModesAgree(t *testing.T) {
	testnet.RequireRoot(t)
	reports, err := tracer.Probe(tracer.Config{})
	if err != nil {
		t.Fatal(err)
	}
	var modes []tracer.Hooks
	var names []string
	for _, r := range reports {
		if r.OK() {
			modes = append(modes, r.Mode)
			names = append(names, r.Mode.String())
		} else {
			t.Logf("%s hooks unavailable: %v", r.Mode, r.Problem())
		}
	}
	if want := os.Getenv("CONNTRACE_EXPECT_HOOKS"); want != "" && strings.Join(names, ",") != want {
		t.Fatalf("working hook modes: %v, want %s", names, want)
	}
	if len(modes) == 0 {
		t.Fatal("no hook mode works")
	}

	var first []string
	for _, m := range modes {
		got := hookScenario(t, m)
		t.Logf("%s hooks: %d events", m, len(got))
		if first == nil {
			first = got
			continue
		}
		if !slices.Equal(got, first) {
			t.Errorf("%s hooks differ from %s hooks:\n  only %s:\n    %s\n  only %s:\n    %s", m, modes[0],
				m, strings.Join(missing(got, first), "\n    "), modes[0], strings.Join(missing(first, got), "\n    "))
		}
	}
}

// hookScenario runs the scenario with mode m and returns its events,
// normalized (process ids as roles, ephemeral ports as "eph", no times or
// connection ids) and sorted.
func hookScenario(t *testing.T, m tracer.Hooks) []string {
	ns := testnet.NewNS(t)
	const port, closed = 9443, 9444
	s := startTracer(t, tracer.Config{Hooks: m, Ports: []uint16{port, closed}})
	if s.t.Mode() != m {
		t.Fatalf("opened %s hooks, want %s", s.t.Mode(), m)
	}

	roles := map[uint32]string{}
	srv := testnet.Start(t, "ct-server", testnet.Role{Server: true, NS: ns.Path(), Addr: "[::]:9443", Conns: 2, Send: 300, Recv: 700})
	roles[uint32(srv.PID)] = "server"
	srv.Expect(t, "listening")

	binder, got := bindAs(t, "ct-binder", testnet.Role{NS: ns.Path(), Addr: "127.0.0.1:9443"})
	roles[uint32(binder.PID)] = "binder"
	if got != "failed EADDRINUSE" {
		t.Fatalf("binder: %q, want failed EADDRINUSE", got)
	}
	binder.Wait(t)
	// The holder lookup runs when the event is read: let it finish while
	// the server lives (it exits after its two connections, which take
	// well under a second, sooner than a busy emulated reader at times).
	s.waitFor(t, 1, func(ev *tracer.Event) bool { return ev.Type == tracer.EventBindFail })

	for i, r := range []testnet.Role{
		{Addr: "127.0.0.1:9443", Send: 700, Recv: 300},
		{Addr: "[::1]:9443", Send: 700, Recv: 300},
		{Addr: "127.0.0.1:9444", Blocking: true, MayFail: true},
		{Addr: "[::1]:9444", MayFail: true},
	} {
		r.NS = ns.Path()
		cli := testnet.Start(t, "ct-client", r)
		roles[uint32(cli.PID)] = fmt.Sprintf("client%d", i)
		cli.Expect(t, "ready")
		cli.Line(t) // connected or failed
		cli.Wait(t)
	}
	srv.Wait(t)
	s.waitFor(t, 4, func(ev *tracer.Event) bool { return ev.Type == tracer.EventClose })
	s.waitFor(t, 2, func(ev *tracer.Event) bool { return ev.Type == tracer.EventConnectFail })

	portName := func(p uint16) string {
		if p == port || p == closed || p == 0 {
			return fmt.Sprint(p)
		}
		return "eph"
	}
	var lines []string
	for _, ev := range s.stop(t) {
		var holders []string
		for _, h := range ev.Holders {
			for _, p := range h.Procs {
				holders = append(holders, fmt.Sprintf("%s/%s/%v:%d/%s", roles[p.PID], p.Comm, h.LAddr, h.LPort, h.State))
			}
		}
		lines = append(lines, fmt.Sprintf("%s %s %s uid=%d %s %s %v:%s -> %v:%s tx=%d rx=%d reason=%s error=%s holders=%v",
			ev.Type, roles[ev.PID], ev.CommBytes(), ev.UID, ev.Direction, ev.Family,
			ev.LAddr, portName(ev.LPort), ev.RAddr, portName(ev.RPort),
			ev.TxBytes, ev.RxBytes, ev.Reason, ev.ErrorName(), holders))
	}
	slices.Sort(lines)
	// listen, bind_fail, 2 x (connect, accept, 2 closes), 2 connect_fail
	if len(lines) != 12 {
		t.Fatalf("%s hooks: want 12 events, got %d:\n  %s", m, len(lines), strings.Join(lines, "\n  "))
	}
	return lines
}

// missing returns the lines of a that b lacks (both sorted), with repeats.
func missing(a, b []string) []string {
	var out []string
	for i, j := 0, 0; i < len(a); {
		switch {
		case j == len(b) || a[i] < b[j]:
			out = append(out, a[i])
			i++
		case a[i] > b[j]:
			j++
		default:
			i++
			j++
		}
	}
	return out
}
