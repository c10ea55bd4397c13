// SPDX-License-Identifier: Apache-2.0

package tracer_test

import (
	"fmt"
	"net/netip"
	"strings"
	"testing"

	"github.com/conntrace/conntrace/tracer"
	"github.com/conntrace/conntrace/tracer/testnet"
)

// TestWithoutKernelBTF: on a kernel without BTF of its own, given its
// types with --btf, conntrace runs the flavours that need none (the
// classic state and reset tracepoints, the walk from an fd by helper
// reads, no tp_btf program) and reports the same events: a connection's
// life, a refused connect() (blocking: its return; non-blocking: the state
// machine), a UDP connect(). The kernel's own BTF file stands in for the
// user's; fentry, which needs the kernel's, is refused with the reason.
func TestWithoutKernelBTF(t *testing.T) {
	testnet.RequireRoot(t)
	// Restored however the test ends: a failed Open must not leave the
	// tests after it without the BTF flavours.
	restore := tracer.HideKernelBTFForTest()
	defer restore()
	const life, refused, refusedNB, udp = 8461, 8462, 8463, 5361
	cfg := tracer.Config{BTFPath: tracer.KernelBTF, Ports: []uint16{life, refused, refusedNB, udp}}
	if tracer.HooksUnderTest(t) == tracer.HooksFentry {
		fc := cfg
		fc.Hooks = tracer.HooksFentry
		if tr, err := tracer.Open(fc); err == nil || !strings.Contains(err.Error(), "fentry needs the kernel's own BTF") {
			t.Errorf("fentry without the kernel's BTF: %v", err)
			if tr != nil {
				tr.Close()
			}
		}
		cfg.Hooks = tracer.HooksTracepoint
	}
	s := startTracer(t, cfg)
	costs, err := s.t.ProgramCosts()
	var classic bool
	for _, c := range costs {
		if strings.HasPrefix(c.Hook, "tp_btf/") || strings.HasPrefix(c.Hook, "fentry/") || strings.HasPrefix(c.Hook, "fexit/") {
			t.Errorf("%s attached at %s, which needs the kernel's BTF", c.Program, c.Hook)
		}
		classic = classic || c.Hook == "tracepoint/sock:inet_sock_set_state"
	}
	if err != nil || !classic {
		t.Fatalf("the classic state tracepoint is not attached (%v): %+v", err, costs)
	}

	ns := testnet.NewNS(t)
	srv := testnet.Start(t, "ct-server", testnet.Role{Server: true, NS: ns.Path(), Addr: fmt.Sprintf("127.0.0.1:%d", life), Conns: 1, Send: 100, Recv: 200})
	srv.Expect(t, "listening")
	cli := testnet.Start(t, "ct-client", testnet.Role{NS: ns.Path(), Addr: fmt.Sprintf("127.0.0.1:%d", life), Send: 200, Recv: 100})
	cli.Expect(t, "ready")
	local := addrPort(t, cli.Expect(t, "connected"))
	cli.Wait(t)
	srv.Wait(t)
	s.waitFor(t, 2, func(ev *tracer.Event) bool { return ev.Type == tracer.EventClose && ev.LPort != udp })
	for _, c := range []struct {
		port     uint16
		blocking bool
	}{{refused, true}, {refusedNB, false}} {
		ev, fc := failToConnectTo(t, s, testnet.Role{NS: ns.Path(), Addr: fmt.Sprintf("127.0.0.1:%d", c.port), Blocking: c.blocking}, "ECONNREFUSED", c.port)
		if ev.ErrorName() != "ECONNREFUSED" || int(ev.PID) != fc.PID || ev.RPort != c.port {
			t.Errorf("blocking %v: want ECONNREFUSED of pid %d:\n%s", c.blocking, fc.PID, dump([]tracer.Event{ev}))
		}
	}
	quiet := testnet.Start(t, "ct-udp-quiet", testnet.Role{UDP: true, Connected: true, NoSend: true, NS: ns.Path(), Addr: fmt.Sprintf("127.0.0.1:%d", udp), SendOnGo: true})
	quiet.Expect(t, "ready")
	s.waitFor(t, 1, func(ev *tracer.Event) bool { return ev.Type == tracer.EventConnect && ev.Proto == tracer.ProtoUDP })
	quiet.Go(t)
	quiet.Expect(t, "sent")
	quiet.Wait(t)
	evs := s.stop(t)

	var mine []tracer.Event
	for _, ev := range evs {
		if ev.LPort == life || ev.RPort == life {
			mine = append(mine, ev)
		}
	}
	server := netip.MustParseAddr("127.0.0.1")
	want := []struct {
		typ    tracer.EventType
		pid    int
		lport  uint16
		rport  uint16
		dir    tracer.Direction
		closer bool
	}{
		{tracer.EventListen, srv.PID, life, 0, tracer.DirNone, false},
		{tracer.EventConnect, cli.PID, local.Port(), life, tracer.DirOut, false},
		{tracer.EventAccept, srv.PID, life, local.Port(), tracer.DirIn, false},
	}
	for _, w := range want {
		ev := one(t, w.typ, mine)
		if int(ev.PID) != w.pid || ev.LPort != w.lport || ev.RPort != w.rport || ev.Direction != w.dir || ev.LAddr != server {
			t.Errorf("want %s of pid %d, %d -> %d %s:\n%s", w.typ, w.pid, w.lport, w.rport, w.dir, dump([]tracer.Event{ev}))
		}
	}
	closes := ofType(tracer.EventClose, mine)
	if len(closes) != 2 || len(mine) != 5 {
		t.Errorf("want listen, connect, accept and two closes, got:\n%s", dump(mine))
	}
	for _, ev := range closes {
		if ev.TxBytes+ev.RxBytes != 300 {
			t.Errorf("want 300 bytes in all:\n%s", dump([]tracer.Event{ev}))
		}
	}
	var udpConnects int
	for _, ev := range evs {
		if ev.Proto == tracer.ProtoUDP && ev.Type == tracer.EventConnect {
			udpConnects++
			if int(ev.PID) != quiet.PID || ev.RPort != udp {
				t.Errorf("want the UDP connect of pid %d:\n%s", quiet.PID, dump([]tracer.Event{ev}))
			}
		}
	}
	if udpConnects != 1 {
		t.Errorf("want one UDP connect, got %d:\n%s", udpConnects, dump(evs))
	}
	if st := s.t.Stats(); st.Lost != 0 {
		t.Errorf("lost: %+v", st)
	}
}
