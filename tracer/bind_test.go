// SPDX-License-Identifier: Apache-2.0

package tracer_test

import (
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/conntrace/conntrace/tracer"
	"github.com/conntrace/conntrace/tracer/output"
	"github.com/conntrace/conntrace/tracer/sockets"
	"github.com/conntrace/conntrace/tracer/testnet"
)

// bindAs starts a helper that binds addr and reports "bound" or the error.
func bindAs(t *testing.T, comm string, role testnet.Role) (*testnet.Proc, string) {
	t.Helper()
	role.Bind = true
	p := testnet.Start(t, comm, role)
	line := p.Line(t)
	return p, line
}

// failToBind has a helper in ns fail to bind addr with EADDRINUSE, and
// returns the tracer's bind_fail.
func failToBind(t *testing.T, s *session, ns *testnet.NS, addr string) tracer.Event {
	t.Helper()
	failer, got := bindAs(t, "ct-binder", testnet.Role{NS: ns.Path(), Addr: addr})
	if got != "failed EADDRINUSE" {
		t.Fatalf("binder: %s", got)
	}
	failer.Wait(t)
	return oneFailure(t, s)
}

// TestBindFailures: a process holds a port, another fails to bind it; the
// event names the failing process and lists the holder, looked up in the
// failing process's own network namespace.
func TestBindFailures(t *testing.T) {
	testnet.RequireRoot(t)
	cases := []struct {
		name      string
		hold      string // "" for none
		udp       bool
		request   string
		uid       int
		errName   string
		family    tracer.Family
		holderAt  string // the holder's address as reported
		holderSta string
		explain   string // how the explanation ends
	}{
		{"wildcard-holds-specific", "0.0.0.0:8080", false, "127.0.0.1:8080", 0, "EADDRINUSE", tracer.FamilyIPv4, "0.0.0.0", "LISTEN", "(0.0.0.0:8080 LISTEN)"},
		{"specific-holds-wildcard", "127.0.0.1:8081", false, "0.0.0.0:8081", 0, "EADDRINUSE", tracer.FamilyIPv4, "127.0.0.1", "LISTEN", "(127.0.0.1:8081 LISTEN)"},
		{"v6-wildcard-holds-v4", "[::]:8082", false, "127.0.0.1:8082", 0, "EADDRINUSE", tracer.FamilyIPv4, "::", "LISTEN",
			"([::]:8082 LISTEN); [::]:8082 takes IPv4 too (IPV6_V6ONLY off)"},
		{"v6-wildcard-wants-v4-port", "0.0.0.0:8084", false, "[::]:8084", 0, "EADDRINUSE", tracer.FamilyIPv6, "0.0.0.0", "LISTEN",
			"(0.0.0.0:8084 LISTEN); this socket, [::] without IPV6_V6ONLY, takes IPv4 too: with IPV6_V6ONLY it would share the port"},
		{"ipv6", "[::1]:8083", false, "[::1]:8083", 0, "EADDRINUSE", tracer.FamilyIPv6, "::1", "LISTEN", "ct-holder (LISTEN)"},
		{"udp", "0.0.0.0:5353", true, "0.0.0.0:5353", 0, "EADDRINUSE", tracer.FamilyIPv4, "0.0.0.0", "UNCONN", "ct-holder (UNCONN)"},
		{"privileged-port", "", false, "0.0.0.0:80", 65534, "EACCES", tracer.FamilyIPv4, "", "",
			"ports below 1024 (net.ipv4.ip_unprivileged_port_start here) need root or CAP_NET_BIND_SERVICE (binding 0.0.0.0:80)"},
		// The namespace's own ip_unprivileged_port_start (portStart).
		{"privileged-port-raised", "", false, "0.0.0.0:1500", 65534, "EACCES", tracer.FamilyIPv4, "", "",
			"ports below 2000 (net.ipv4.ip_unprivileged_port_start here) need root or CAP_NET_BIND_SERVICE (binding 0.0.0.0:1500)"},
		{"address-not-here", "", false, "192.0.2.1:8090", 0, "EADDRNOTAVAIL", tracer.FamilyIPv4, "", "", "is not an address of this host (or of the process's network namespace)"},
	}
	portStart := map[string]string{"privileged-port-raised": "2000"}
	// One tracer for all (a load is seconds in an emulated VM): each
	// case has a port of its own, and wants exactly one failure there.
	var ports []uint16
	for _, tc := range cases {
		ports = append(ports, netip.MustParseAddrPort(tc.request).Port())
	}
	s := startTracer(t, tracer.Config{Ports: ports, Events: tracer.Failures})
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ns := testnet.NewNS(t)
			if v, ok := portStart[tc.name]; ok {
				ns.Sysctl(t, "net/ipv4/ip_unprivileged_port_start", v)
			}
			req := netip.MustParseAddrPort(tc.request)

			var holder *testnet.Proc
			if tc.hold != "" {
				var got string
				holder, got = bindAs(t, "ct-holder", testnet.Role{NS: ns.Path(), Addr: tc.hold, UDP: tc.udp, Listen: !tc.udp})
				if got != "bound" {
					t.Fatalf("holder: %s", got)
				}
			}
			failer, got := bindAs(t, "ct-binder", testnet.Role{NS: ns.Path(), Addr: tc.request, UDP: tc.udp, UID: tc.uid})
			if got != "failed "+tc.errName {
				t.Fatalf("binder: %q, want failed %s", got, tc.errName)
			}
			failer.Wait(t)
			ev := oneFailureOn(t, s, req.Port())
			if holder != nil {
				holder.Go(t)
				holder.Wait(t)
			}

			if ev.Type != tracer.EventBindFail || ev.ErrorName() != tc.errName {
				t.Fatalf("want bind_fail %s, got %s %s", tc.errName, ev.Type, ev.ErrorName())
			}
			if int(ev.PID) != failer.PID || string(ev.CommBytes()) != "ct-binder" || int(ev.UID) != tc.uid {
				t.Errorf("attributed to %d %q uid %d, want %d ct-binder uid %d", ev.PID, ev.CommBytes(), ev.UID, failer.PID, tc.uid)
			}
			wantProto := tracer.ProtoTCP
			if tc.udp {
				wantProto = tracer.ProtoUDP
			}
			if ev.LAddr != req.Addr().Unmap() || ev.LPort != req.Port() || ev.Family != tc.family || ev.Proto != wantProto {
				t.Errorf("requested %v:%d %s %s, want %v %s %s", ev.LAddr, ev.LPort, ev.Family, ev.Proto, req, tc.family, wantProto)
			}
			// The helper sets no option.
			if ev.ReuseAddr || ev.ReusePort || ev.V6Only {
				t.Errorf("options: SO_REUSEADDR %v, SO_REUSEPORT %v, IPV6_V6ONLY %v; want none", ev.ReuseAddr, ev.ReusePort, ev.V6Only)
			}
			wantExplain(t, &ev, tc.errName+": ", tc.explain)
			if holder == nil {
				if ev.Holders == nil || len(ev.Holders) != 0 {
					t.Errorf("holders %+v, want an empty list", ev.Holders)
				}
				return
			}
			if len(ev.Holders) != 1 || ev.HoldersError != "" {
				t.Fatalf("holders %+v (error %q), want one", ev.Holders, ev.HoldersError)
			}
			h := ev.Holders[0]
			if h.LAddr != netip.MustParseAddr(tc.holderAt) || h.LPort != req.Port() || h.State != tc.holderSta || h.Inode == 0 ||
				len(h.Procs) != 1 || int(h.Procs[0].PID) != holder.PID || h.Procs[0].Comm != "ct-holder" ||
				!h.ReusePortKnown || h.ReusePort {
				t.Errorf("holder %+v, want %s:%d %s, inode, held by %d ct-holder alone, SO_REUSEPORT read and off",
					h, tc.holderAt, req.Port(), tc.holderSta, holder.PID)
			}
		})
	}
	// And nothing else: one failure a case.
	if got := failures(s.stop(t)); len(got) != len(cases) {
		t.Errorf("want %d failures, one a case, got %d", len(cases), len(got))
	}
}

// TestBindHolderInOwnNamespace: the same port is held in the host's
// namespace and in the failing process's; only the latter is the holder.
func TestBindHolderInOwnNamespace(t *testing.T) {
	ns := testnet.NewNS(t)
	s := startTracer(t, tracer.Config{Ports: []uint16{18080}, Events: tracer.Failures})
	hostHolder, got := bindAs(t, "ct-host", testnet.Role{Addr: "0.0.0.0:18080", Listen: true})
	if got != "bound" {
		t.Fatalf("host holder: %s", got)
	}
	defer hostHolder.Go(t)
	nsHolder, got := bindAs(t, "ct-holder", testnet.Role{NS: ns.Path(), Addr: "0.0.0.0:18080", Listen: true})
	if got != "bound" {
		t.Fatalf("holder: %s", got)
	}
	defer nsHolder.Go(t)
	ev := failToBind(t, s, ns, "0.0.0.0:18080")
	if len(ev.Holders) != 1 || len(ev.Holders[0].Procs) != 1 || int(ev.Holders[0].Procs[0].PID) != nsHolder.PID {
		t.Errorf("holders %+v, want only pid %d (not the host's %d)", ev.Holders, nsHolder.PID, hostHolder.PID)
	}
}

// TestBindHolderSharedByForks: a listener that forked workers inherited is
// one socket in three processes, all named, and not an SO_REUSEPORT group.
func TestBindHolderSharedByForks(t *testing.T) {
	ns := testnet.NewNS(t)
	s := startTracer(t, tracer.Config{Ports: []uint16{18081}, Events: tracer.Failures})
	holder := testnet.Start(t, "ct-holder", testnet.Role{Bind: true, NS: ns.Path(), Addr: "0.0.0.0:18081", Listen: true, Share: 2})
	want := map[uint32]bool{uint32(holder.PID): true}
	for _, f := range strings.Fields(holder.Expect(t, "shared")) {
		pid, _ := strconv.Atoi(f)
		want[uint32(pid)] = true
	}
	holder.Expect(t, "bound")
	defer holder.Go(t)
	ev := failToBind(t, s, ns, "127.0.0.1:18081")
	if len(ev.Holders) != 1 || len(want) != 3 {
		t.Fatalf("holders %+v, want one socket (holder and children %v)", ev.Holders, want)
	}
	h := ev.Holders[0]
	got3 := map[uint32]bool{}
	for _, p := range h.Procs {
		if p.Comm != "ct-holder" {
			t.Errorf("process %+v, want ct-holder", p)
		}
		got3[p.PID] = true
	}
	if !maps.Equal(got3, want) || h.State != "LISTEN" || !h.ReusePortKnown || h.ReusePort {
		t.Errorf("holder %+v, want LISTEN in processes %v, SO_REUSEPORT off", h, want)
	}
	// Found in the kernel (the task_file iterator), every kernel and mode.
	if !h.ProcsSeen {
		t.Errorf("holder %+v: its processes are not the kernel's answer (the iterator did not load?)", h)
	}
	text := string(output.AppendText(nil, &ev))
	if !strings.Contains(text, "(0.0.0.0:18081 LISTEN, one socket in 3 processes)") || strings.Contains(text, "SO_REUSEPORT") {
		t.Errorf("text: %s", text)
	}
}

// TestBindHolderReusePort: two listeners with SO_REUSEPORT are two
// sockets, each says so, and the text says they share the port.
func TestBindHolderReusePort(t *testing.T) {
	ns := testnet.NewNS(t)
	s := startTracer(t, tracer.Config{Ports: []uint16{18082}, Events: tracer.Failures})
	var holders []*testnet.Proc
	for range 2 {
		h, got := bindAs(t, "ct-holder", testnet.Role{NS: ns.Path(), Addr: "127.0.0.1:18082", Listen: true, ReusePort: true})
		if got != "bound" {
			t.Fatalf("holder: %s", got)
		}
		defer h.Go(t)
		holders = append(holders, h)
	}
	ev := failToBind(t, s, ns, "0.0.0.0:18082")
	if len(ev.Holders) != 2 {
		t.Fatalf("holders %+v, want two sockets", ev.Holders)
	}
	for i, h := range ev.Holders {
		if len(h.Procs) != 1 || !h.ReusePortKnown || !h.ReusePort || h.Inode == ev.Holders[1-i].Inode {
			t.Errorf("holder %+v: want a socket of its own, one process, SO_REUSEPORT on", h)
		}
	}
	if pids := []int{int(ev.Holders[0].Procs[0].PID), int(ev.Holders[1].Procs[0].PID)}; !slices.Contains(pids, holders[0].PID) || !slices.Contains(pids, holders[1].PID) {
		t.Errorf("holders %v, want %d and %d", pids, holders[0].PID, holders[1].PID)
	}
	if text := string(output.AppendText(nil, &ev)); !strings.Contains(text, "; 2 sockets share it with SO_REUSEPORT") {
		t.Errorf("text: %s", text)
	}
}

// TestBindConflictExplained: why the holders keep a bind out, from the
// options of the failing socket (read in the kernel at the failure) and
// of each holder. Connections in TIME_WAIT alone, without SO_REUSEADDR
// (which then lets the bind through); an SO_REUSEPORT group the socket
// did not join; the same group joined as another user.
func TestBindConflictExplained(t *testing.T) {
	t.Run("TIME_WAIT", func(t *testing.T) {
		ns := testnet.NewNS(t)
		s := startTracer(t, tracer.Config{Ports: []uint16{18090}, Events: tracer.Failures})
		// The server closes first: its end waits in TIME_WAIT, and the
		// listener is gone with it.
		srv := testnet.Start(t, "ct-server", testnet.Role{Server: true, NS: ns.Path(), Addr: "127.0.0.1:18090", Conns: 1, Discard: true})
		srv.Expect(t, "listening")
		cli := testnet.Start(t, "ct-client", testnet.Role{NS: ns.Path(), Addr: "127.0.0.1:18090", Recv: 1, MayFail: true})
		cli.Expect(t, "ready")
		cli.Expect(t, "connected")
		failure := cli.Expect(t, "failed")
		cli.Wait(t)
		srv.Wait(t)
		waitForState(t, ns, 18090, "TIME_WAIT", "client: "+failure)
		ev := failToBind(t, s, ns, "127.0.0.1:18090")
		if ev.ReuseAddr || ev.ReusePort || len(ev.Holders) != 1 {
			t.Fatalf("want a socket without SO_REUSEADDR kept out by one connection, got:\n%s", dump([]tracer.Event{ev}))
		}
		if h := ev.Holders[0]; h.State != "TIME_WAIT" || len(h.Procs) != 0 || h.Expires <= 50*time.Second || h.Expires > 60*time.Second {
			t.Errorf("holder %+v, want TIME_WAIT, no process, about 60 s left", h)
		}
		wantExplain(t, &ev, "EADDRINUSE: 127.0.0.1:18090 is held only by 1 connection in TIME_WAIT, for up to ",
			"s more: SO_REUSEADDR on this socket lets it bind now")
		// As it says.
		if p, got := bindAs(t, "ct-binder", testnet.Role{NS: ns.Path(), Addr: "127.0.0.1:18090", ReuseAddr: true}); got != "bound" {
			t.Errorf("with SO_REUSEADDR: %s", got)
		} else {
			p.Go(t)
		}
	})
	for _, tc := range []struct {
		name      string
		reuseport bool
		uid       int
		explain   string
	}{
		{"SO_REUSEPORT not set", false, 0, "; it has SO_REUSEPORT, which this socket did not set"},
		{"SO_REUSEPORT as another user", true, 65534, "; it has SO_REUSEPORT; this socket set it too, but runs as uid 65534 and the group belongs to uid 0"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ns := testnet.NewNS(t)
			s := startTracer(t, tracer.Config{Ports: []uint16{18091}, Events: tracer.Failures})
			h, got := bindAs(t, "ct-holder", testnet.Role{NS: ns.Path(), Addr: "127.0.0.1:18091", Listen: true, ReusePort: true})
			if got != "bound" {
				t.Fatalf("holder: %s", got)
			}
			defer h.Go(t)
			failer, got := bindAs(t, "ct-binder", testnet.Role{NS: ns.Path(), Addr: "127.0.0.1:18091", Listen: true,
				ReusePort: tc.reuseport, UID: tc.uid})
			if got != "failed EADDRINUSE" {
				t.Fatalf("binder: %s", got)
			}
			failer.Wait(t)
			ev := oneFailure(t, s)
			if ev.ReusePort != tc.reuseport || ev.ReuseAddr || int(ev.UID) != tc.uid || len(ev.Holders) != 1 ||
				!ev.Holders[0].ReusePort || ev.Holders[0].UID != 0 {
				t.Errorf("want SO_REUSEPORT %v as uid %d against one holder with it, uid 0; got:\n%s", tc.reuseport, tc.uid, dump([]tracer.Event{ev}))
			}
			wantExplain(t, &ev, "EADDRINUSE: 127.0.0.1:18091 is held by "+strconv.Itoa(h.PID)+" ct-holder (LISTEN)"+tc.explain, "")
		})
	}
}

// waitForState waits until the only TCP socket on port in ns is in state
// (the peer's last packet may still be on its way).
func waitForState(t *testing.T, ns *testnet.NS, port uint16, state, before string) {
	t.Helper()
	h, err := sockets.OpenNS(ns.Path())
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	var socks []sockets.Socket
	var seen []string // what the port held, each change once
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if socks, err = sockets.OnPort(h, "tcp", port); err == nil && len(socks) == 1 && socks[0].State == state {
			return
		}
		now := fmt.Sprintf("%+v (%v)", socks, err)
		if len(seen) == 0 || seen[len(seen)-1] != now {
			seen = append(seen, now)
		}
	}
	t.Fatalf("port %d: want one socket in %s; it held, in turn:\n%s\n%s\nTCP counters: %s",
		port, state, strings.Join(seen, "\n"), before, ns.Counters(t))
}
