// SPDX-License-Identifier: Apache-2.0

package tracer_test

import (
	"fmt"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/conntrace/conntrace/tracer"
	"github.com/conntrace/conntrace/tracer/testnet"
)

// udpExchange runs a UDP server on addr in ns and a client (sendto) that
// sends it a datagram of 10 bytes and gets one back; both are done when
// it returns the client.
func udpExchange(t *testing.T, ns *testnet.NS, addr string) *testnet.Proc {
	t.Helper()
	srv := testnet.Start(t, "ct-udp-srv", testnet.Role{UDP: true, Server: true, NS: ns.Path(), Addr: addr, Conns: 1, Send: 10})
	srv.Expect(t, "bound")
	cli := testnet.Start(t, "ct-udp-cli", testnet.Role{UDP: true, NS: ns.Path(), Addr: addr, Send: 10, Recv: 10})
	cli.Expect(t, "sent")
	cli.Wait(t)
	closeServer(t, srv)
	return cli
}

// closeServer waits until a UDP server has served, then has it close its
// socket and exit.
func closeServer(t *testing.T, srv *testnet.Proc) {
	t.Helper()
	srv.Expect(t, "served")
	srv.Go(t)
	srv.Wait(t)
}

// udpClient is one client of TestUDPFlows: its socket connected or not,
// and how many datagrams it sends.
type udpClient struct {
	connected bool
	datagrams int
	size      int
	proc      *testnet.Proc
	local     netip.AddrPort
}

// TestUDPFlows: three clients in one network namespace, two of them with
// a connected socket and one that uses sendto(), and an echo server in
// another, IPv4 and IPv6: each client's flow (connect, close) and the
// server's three (accept, close), with their processes, addresses,
// datagrams and payload bytes each way. The clients close their sockets
// at once (their flows end in the kernel); the server's socket, with
// three flows, ends them at the next sweep.
func TestUDPFlows(t *testing.T) {
	testnet.RequireRoot(t)
	const answer = 50
	// One tracer for both families, each on a port of its own.
	s := startTracer(t, tracer.Config{Ports: []uint16{5353, 5354}})
	for _, tc := range []struct {
		name     string
		family   tracer.Family
		cli, srv string
		port     uint16
	}{
		{"ipv4", tracer.FamilyIPv4, "198.18.0.1", "198.18.0.2", 5353},
		{"ipv6", tracer.FamilyIPv6, "2001:db8::1", "2001:db8::2", 5354},
	} {
		port := tc.port
		t.Run(tc.name, func(t *testing.T) {
			srvNS, cliNS := testnet.NewNS(t), testnet.NewNS(t)
			testnet.Veth(t, cliNS, []string{"198.18.0.1/24", "2001:db8::1/64"}, srvNS, []string{"198.18.0.2/24", "2001:db8::2/64"})
			server := netip.MustParseAddr(tc.srv)
			addr := netip.AddrPortFrom(server, port).String()
			clients := []*udpClient{{connected: true, datagrams: 2, size: 100}, {datagrams: 3, size: 200}, {connected: true, datagrams: 1, size: 10}}
			total := 0
			for _, c := range clients {
				total += c.datagrams
			}
			srv := testnet.Start(t, "ct-udp-srv", testnet.Role{UDP: true, Server: true, NS: srvNS.Path(), Addr: addr, Conns: total, Send: answer})
			srv.Expect(t, "bound")
			for i, c := range clients {
				c.proc = testnet.Start(t, fmt.Sprintf("ct-udp-cli%d", i), testnet.Role{UDP: true, Connected: c.connected, NS: cliNS.Path(),
					Addr: addr, Repeat: c.datagrams, Send: c.size, Recv: answer})
				c.local = netip.AddrPortFrom(netip.MustParseAddr(tc.cli), addrPort(t, c.proc.Expect(t, "sent")).Port())
				c.proc.Wait(t)
			}
			closeServer(t, srv)
			mine := onPort(port)
			s.waitFor(t, 6, func(ev *tracer.Event) bool { return ev.Type == tracer.EventClose && mine(ev) })
			time.Sleep(200 * time.Millisecond) // anything more would be here by now
			var evs []tracer.Event
			for _, ev := range s.c.snapshot() {
				if mine(&ev) {
					evs = append(evs, ev)
				}
			}

			if len(evs) != 12 {
				t.Fatalf("want a connect and a close for each client, an accept and a close for each on the server, got %d events:\n%s", len(evs), dump(evs))
			}
			starts := map[uint64]tracer.Event{}
			for _, ev := range evs {
				if ev.Proto != tracer.ProtoUDP || ev.Family != tc.family || ev.UID != 0 || ev.ConnID == 0 {
					t.Errorf("want a UDP %s event of uid 0 with a conn_id:\n%s", tc.family, dump([]tracer.Event{ev}))
				}
				if ev.Type != tracer.EventClose {
					starts[ev.ConnID] = ev
				}
			}
			for _, c := range clients {
				var out, in *tracer.Event
				for i, ev := range evs {
					switch {
					case ev.LAddr == c.local.Addr() && ev.LPort == c.local.Port():
						if ev.RAddr != server || ev.RPort != port || int(ev.PID) != c.proc.PID || ev.Direction != tracer.DirOut {
							t.Errorf("client %v: want its pid %d, out, to %s:\n%s", c.local, c.proc.PID, addr, dump([]tracer.Event{ev}))
						}
						if ev.Type == tracer.EventClose {
							out = &evs[i]
						}
					case ev.RAddr == c.local.Addr() && ev.RPort == c.local.Port():
						if ev.LAddr != server || ev.LPort != port || int(ev.PID) != srv.PID || ev.Direction != tracer.DirIn {
							t.Errorf("server's flow of client %v: want its pid %d, in, on %s:\n%s", c.local, srv.PID, addr, dump([]tracer.Event{ev}))
						}
						if ev.Type == tracer.EventClose {
							in = &evs[i]
						}
					}
				}
				if out == nil || in == nil {
					t.Errorf("client %v: a close missing on either side:\n%s", c.local, dump(evs))
					continue
				}
				n, sent, got := uint64(c.datagrams), uint64(c.datagrams*c.size), uint64(c.datagrams*answer)
				if out.TxPackets != n || out.TxBytes != sent || out.RxPackets != n || out.RxBytes != got || out.Reason != tracer.ReasonClosed {
					t.Errorf("client %v close: want %d datagrams of %d bytes out, %d of %d in, closed:\n%s", c.local, n, sent, n, got, dump([]tracer.Event{*out}))
				}
				if in.RxPackets != n || in.RxBytes != sent || in.TxPackets != n || in.TxBytes != got || in.Reason != tracer.ReasonClosed {
					t.Errorf("server's close of client %v: want %d datagrams of %d bytes in, %d of %d out, closed:\n%s", c.local, n, sent, n, got, dump([]tracer.Event{*in}))
				}
				for _, cl := range []*tracer.Event{out, in} {
					start, ok := starts[cl.ConnID]
					want := tracer.EventConnect
					if cl.Direction == tracer.DirIn {
						want = tracer.EventAccept
					}
					if !ok || start.Type != want || cl.Duration < 0 || cl.Duration > cl.Time.Sub(start.Time)+time.Millisecond {
						t.Errorf("close of conn %d: want its %s before it, lasting as long:\n%s", cl.ConnID, want, dump(evs))
					}
				}
			}
		})
	}
}

// TestUDPIdle: a flow with no datagram for the idle time ends as idle,
// on both sides, with its counts, while the sockets stay open; their
// close later ends nothing more.
func TestUDPIdle(t *testing.T) {
	const port, idle = 5354, time.Second
	ns := testnet.NewNS(t)
	s := startTracer(t, tracer.Config{Ports: []uint16{port}, UDPIdle: idle})
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	srv := testnet.Start(t, "ct-udp-srv", testnet.Role{UDP: true, Server: true, NS: ns.Path(), Addr: addr, Conns: 2, Send: 20})
	srv.Expect(t, "bound")
	cli := testnet.Start(t, "ct-udp-cli", testnet.Role{UDP: true, Connected: true, NS: ns.Path(), Addr: addr, Repeat: 2, Send: 30, Recv: 20, Keep: true})
	local := addrPort(t, cli.Expect(t, "sent"))
	sent := time.Now()
	srv.Expect(t, "served")
	s.waitFor(t, 2, func(ev *tracer.Event) bool { return ev.Type == tracer.EventClose })
	ended := time.Since(sent)
	cli.Go(t)
	srv.Go(t)
	cli.Wait(t)
	srv.Wait(t)
	// The flows ended: their sockets' close ends nothing (no sweep
	// needed: a socket with one flow ends it when it closes).
	time.Sleep(300 * time.Millisecond)
	evs := s.stop(t)

	if len(evs) != 4 {
		t.Fatalf("want the client's connect and close, the server's accept and close, got %d events:\n%s", len(evs), dump(evs))
	}
	for _, cl := range ofType(tracer.EventClose, evs) {
		if cl.Reason != tracer.ReasonIdle || cl.TxPackets != 2 || cl.RxPackets != 2 || cl.Duration > idle/2 {
			t.Errorf("want an idle close of 2 datagrams each way, lasting from the first to the last:\n%s", dump([]tracer.Event{cl}))
		}
		if cl.Direction == tracer.DirOut && (cl.TxBytes != 60 || cl.RxBytes != 40 || cl.LPort != local.Port()) ||
			cl.Direction == tracer.DirIn && (cl.TxBytes != 40 || cl.RxBytes != 60 || cl.RPort != local.Port()) {
			t.Errorf("want 60 bytes from the client, 40 from the server:\n%s", dump([]tracer.Event{cl}))
		}
	}
	// Ended a sweep (a quarter of the idle time) after the idle time.
	if ended < idle || ended > idle+idle/4+time.Second {
		t.Errorf("the flows ended %v after their last datagram, want %v to %v", ended, idle, idle+idle/4+time.Second)
	}
}

// TestUDPSocketsBeforeTracer: sockets made before the tracer started,
// a server's and two clients' (one unconnected, one connected), in a
// cgroup of their own. The iterators at the start give each its process:
// every flow is theirs from its first datagram. With a cgroup filter
// (which the iterators leave alone) an unconnected one is attributed
// when its process first names an address: the server's flow when it
// receives the client's datagram (its start is held until then), a
// client's when it sends; a connected one never names one, and its flow,
// of no process the filter can pass, is not reported.
func TestUDPSocketsBeforeTracer(t *testing.T) {
	for _, filtered := range []bool{false, true} {
		t.Run(fmt.Sprintf("cgroup-filter=%v", filtered), func(t *testing.T) {
			const port = 5355
			ns := testnet.NewNS(t)
			cg := testnet.NewCgroup(t, "udp-before")
			addr := fmt.Sprintf("127.0.0.1:%d", port)
			srv := testnet.Start(t, "ct-udp-srv", testnet.Role{UDP: true, Server: true, NS: ns.Path(), Addr: addr, Conns: 2, Send: 20})
			srv.Expect(t, "bound")
			cg.Add(t, srv.PID)
			var cli [2]*testnet.Proc
			for i := range cli {
				cli[i] = testnet.Start(t, fmt.Sprintf("ct-udp-cli%d", i), testnet.Role{UDP: true, Connected: i == 1, NS: ns.Path(), Addr: addr, Send: 30, Recv: 20, SendOnGo: true})
				cli[i].Expect(t, "ready")
				cg.Add(t, cli[i].PID)
			}
			cfg := tracer.Config{Ports: []uint16{port}}
			if filtered {
				cfg.Cgroups = []string{cg.Path}
			}
			s := startTracer(t, cfg)
			if n := s.t.ExistingUDPSockets(); filtered && n != 0 || !filtered && n < 3 {
				t.Errorf("the iterators gave %d sockets open at the start their owners, want %s", n, map[bool]string{false: "3 or more", true: "none"}[filtered])
			}
			var local [2]netip.AddrPort
			for i, c := range cli {
				c.Go(t)
				local[i] = addrPort(t, c.Expect(t, "sent"))
				c.Wait(t)
			}
			closeServer(t, srv)
			want := 4 // closes: the server's two, each client's
			if filtered {
				want = 3
			}
			s.waitFor(t, want, func(ev *tracer.Event) bool { return ev.Type == tracer.EventClose })
			evs := s.stop(t)

			if len(evs) != 2*want {
				t.Fatalf("want %d flows (their start and close), got %d events:\n%s", want, len(evs), dump(evs))
			}
			for _, ev := range evs {
				var pid int
				switch {
				case ev.Direction == tracer.DirIn:
					pid = srv.PID
				case ev.LPort == local[0].Port():
					pid = cli[0].PID
				case ev.LPort == local[1].Port() && !filtered:
					pid = cli[1].PID
				default:
					t.Errorf("an event of neither client:\n%s", dump([]tracer.Event{ev}))
				}
				if int(ev.PID) != pid || ev.Type == tracer.EventClose && (ev.TxPackets != 1 || ev.RxPackets != 1 || ev.Reason != tracer.ReasonClosed) {
					t.Errorf("want pid %d, and a close of a datagram each way:\n%s", pid, dump([]tracer.Event{ev}))
				}
			}
		})
	}
}

// TestUDPConnectStartsFlow: a connect() on a UDP socket starts its flow
// at once, before any datagram, with the connecting process and both
// ends; the datagrams after it count on that flow (one connect, no
// second start). A connected socket that sends nothing ends its flow
// when it closes, with no datagrams. IPv4 and IPv6, and with UDP alone
// (connect()'s programs are then UDP's only).
func TestUDPConnectStartsFlow(t *testing.T) {
	for _, c := range []struct {
		name, srv, dial string
		proto           tracer.Proto
	}{
		{"ipv4", "127.0.0.1:5357", "127.0.0.1:5357", 0},
		{"ipv6", "[::1]:5357", "[::1]:5357", 0},
		{"udp-only", "127.0.0.1:5357", "127.0.0.1:5357", tracer.ProtoUDP},
	} {
		t.Run(c.name, func(t *testing.T) {
			ns := testnet.NewNS(t)
			s := startTracer(t, tracer.Config{Ports: []uint16{5357}, Proto: c.proto})
			srv := testnet.Start(t, "ct-udp-srv", testnet.Role{UDP: true, Server: true, NS: ns.Path(), Addr: c.srv, Conns: 1, Send: 20})
			srv.Expect(t, "bound")
			talker := testnet.Start(t, "ct-udp-talker", testnet.Role{UDP: true, Connected: true, NS: ns.Path(), Addr: c.dial, Send: 30, Recv: 20, SendOnGo: true})
			talker.Expect(t, "ready")
			quiet := testnet.Start(t, "ct-udp-quiet", testnet.Role{UDP: true, Connected: true, NoSend: true, NS: ns.Path(), Addr: c.dial, SendOnGo: true})
			quiet.Expect(t, "ready")
			// Both connected, neither sent: their flows have started.
			s.waitFor(t, 2, func(ev *tracer.Event) bool { return ev.Type == tracer.EventConnect })
			talker.Go(t)
			tl := addrPort(t, talker.Expect(t, "sent"))
			talker.Wait(t)
			quiet.Go(t)
			ql := addrPort(t, quiet.Expect(t, "sent"))
			quiet.Wait(t)
			closeServer(t, srv)
			s.waitFor(t, 3, func(ev *tracer.Event) bool { return ev.Type == tracer.EventClose })
			evs := s.stop(t)

			server := addrPort(t, c.srv)
			byPort := map[uint16]*testnet.Proc{tl.Port(): talker, ql.Port(): quiet}
			var connects, closes int
			for _, ev := range evs {
				if ev.Direction == tracer.DirIn {
					continue // the server's flow, from the talker's datagram
				}
				p := byPort[ev.LPort]
				if p == nil || int(ev.PID) != p.PID || ev.RAddr != server.Addr() || ev.RPort != server.Port() || ev.Proto != tracer.ProtoUDP {
					t.Errorf("want a flow of the talker (%s) or the quiet one (%s) to %s:\n%s", tl, ql, server, dump([]tracer.Event{ev}))
					continue
				}
				switch ev.Type {
				case tracer.EventConnect:
					connects++
				case tracer.EventClose:
					closes++
					want := uint64(1)
					if p == quiet {
						want = 0
					}
					if ev.TxPackets != want || ev.RxPackets != want || ev.Reason != tracer.ReasonClosed {
						t.Errorf("want %d datagrams each way, closed:\n%s", want, dump([]tracer.Event{ev}))
					}
				default:
					t.Errorf("unexpected event:\n%s", dump([]tracer.Event{ev}))
				}
			}
			if connects != 2 || closes != 2 || len(evs) != 6 {
				t.Errorf("want each client's connect and close, and the server's flow, got:\n%s", dump(evs))
			}
		})
	}
}

// TestUDPReceiveBufferFull: a server whose receive buffer (SO_RCVBUF
// 4096) is full because it reads nothing while a client sends it 1,000
// datagrams. The server's flow counts the drops exactly as the
// namespace's Udp RcvbufErrors, named SOCKET_RCVBUFF, and only the
// datagrams it read as received; drop events, the first at once and the
// rest when the socket closes, are the server's and add up to the same.
func TestUDPReceiveBufferFull(t *testing.T) {
	const port, sent, size = 5356, 1000, 100
	ns := testnet.NewNS(t)
	s := startTracer(t, tracer.Config{Ports: []uint16{port}})
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	srv := testnet.Start(t, "ct-udp-slow", testnet.Role{UDP: true, Server: true, NS: ns.Path(), Addr: addr, RcvBuf: 4096})
	srv.Expect(t, "bound")
	cli := testnet.Start(t, "ct-udp-cli", testnet.Role{UDP: true, Connected: true, NS: ns.Path(), Addr: addr, Repeat: sent, Send: size})
	local := addrPort(t, cli.Expect(t, "sent"))
	cli.Wait(t)
	srv.Go(t)
	var read uint64
	if _, err := fmt.Sscan(srv.Expect(t, "read"), &read); err != nil {
		t.Fatal(err)
	}
	dropped := ns.SNMP(t, "Udp", "RcvbufErrors")
	srv.Go(t)
	srv.Wait(t)
	s.waitFor(t, 2, func(ev *tracer.Event) bool { return ev.Type == tracer.EventClose })
	evs := s.stop(t)

	if dropped == 0 || read+dropped != sent {
		t.Fatalf("the server read %d datagrams and the kernel counts %d dropped (RcvbufErrors), want some dropped of %d", read, dropped, sent)
	}
	var flow *tracer.Event
	for i, ev := range evs {
		if ev.Type == tracer.EventClose && ev.Direction == tracer.DirIn {
			flow = &evs[i]
		}
	}
	if flow == nil || int(flow.PID) != srv.PID || flow.RPort != local.Port() || uint64(flow.Drops) != dropped ||
		flow.DropReason != "SOCKET_RCVBUFF" || flow.RxPackets != read || flow.RxBytes != read*size {
		t.Fatalf("want the server's close: %d datagrams received, %d dropped (SOCKET_RCVBUFF):\n%s", read, dropped, dump(evs))
	}
	drops := ofType(tracer.EventDrop, evs)
	var told uint64
	for i, d := range drops {
		told += uint64(d.Drops)
		if int(d.PID) != srv.PID || d.Proto != tracer.ProtoUDP || d.LPort != port || d.DropReason != "SOCKET_RCVBUFF" || d.RcvBuf < 4096 {
			t.Errorf("want the server's drop of SOCKET_RCVBUFF, its buffer at least 4096 bytes:\n%s", dump([]tracer.Event{d}))
		}
		if i == 0 && (d.Drops != 1 || d.ConnID != flow.ConnID || d.RPort != local.Port() || d.Queued == 0) {
			t.Errorf("want the first drop told at once, of the client's flow, with what the buffer held:\n%s", dump([]tracer.Event{d}))
		}
	}
	if len(drops) < 2 || told != dropped {
		t.Errorf("want drop events adding up to %d, the first at once and the rest at the close, got %d adding up to %d:\n%s", dropped, len(drops), told, dump(drops))
	}
}

// TestUDPPortDrops: datagrams this host drops before any socket has
// them, told by port with no process: sent to a port nothing is bound
// to (NO_SOCKET, with the socket bound to it on another address), IPv4
// and IPv6, and with a wrong checksum to a port a server holds
// (UDP_CSUM: a small datagram's checksum is checked on arrival). The
// first of each at once, the rest by the sweep; the counts are the
// namespace's Udp NoPorts and InCsumErrors exactly.
func TestUDPPortDrops(t *testing.T) {
	const closed, open = 5363, 5364
	ns := testnet.NewNS(t)
	holder := testnet.Start(t, "ct-udp-holder", testnet.Role{UDP: true, Bind: true, NS: ns.Path(), Addr: fmt.Sprintf("127.0.0.2:%d", closed)})
	holder.Expect(t, "bound")
	srv := testnet.Start(t, "ct-udp-srv", testnet.Role{UDP: true, Bind: true, NS: ns.Path(), Addr: fmt.Sprintf("127.0.0.1:%d", open)})
	srv.Expect(t, "bound")
	noPorts, csumErrors := ns.SNMP(t, "Udp", "NoPorts"), ns.SNMP(t, "Udp", "InCsumErrors")
	s := startTracer(t, tracer.Config{Ports: []uint16{closed, open}})
	v4 := netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), ns.SendUDP(t, netip.MustParseAddrPort(fmt.Sprintf("127.0.0.1:%d", closed)), []byte("hello"), 3))
	v6 := netip.AddrPortFrom(netip.IPv6Loopback(), ns.SendUDP(t, netip.MustParseAddrPort(fmt.Sprintf("[::1]:%d", closed)), []byte("hello"), 2))
	ns.SendBadChecksum(t, netip.MustParseAddrPort(fmt.Sprintf("127.0.0.1:%d", open)), 40999, []byte("damaged"), 4)
	s.waitFor(t, 3, func(ev *tracer.Event) bool { return ev.Type == tracer.EventDrop })
	time.Sleep(1500 * time.Millisecond) // a sweep tells the rest
	evs := s.stop(t)
	noPorts, csumErrors = ns.SNMP(t, "Udp", "NoPorts")-noPorts, ns.SNMP(t, "Udp", "InCsumErrors")-csumErrors

	if noPorts != 3 || csumErrors != 4 {
		t.Fatalf("the kernel counts %d NoPorts and %d InCsumErrors, want 3 and 4", noPorts, csumErrors)
	}
	type count struct{ events, drops int }
	got := map[string]*count{}
	for _, d := range ofType(tracer.EventDrop, evs) {
		key := d.DropReason + " " + d.Family.String()
		if got[key] == nil {
			got[key] = &count{}
		}
		got[key].events++
		got[key].drops += int(d.Drops)
		if d.PID != 0 || d.Proto != tracer.ProtoUDP || d.Direction != tracer.DirIn || d.NetNS != ns.Inode(t) || d.RcvBuf != 0 {
			t.Errorf("want a drop of no process in the namespace:\n%s", dump([]tracer.Event{d}))
		}
		switch d.DropReason {
		case "NO_SOCKET":
			from := v4
			if d.Family == tracer.FamilyIPv6 {
				from = v6
			}
			if d.LPort != closed || netip.AddrPortFrom(d.RAddr, d.RPort) != from || len(d.Listeners) != 1 ||
				d.Listeners[0].LAddr != netip.MustParseAddr("127.0.0.2") || len(d.Listeners[0].Procs) != 1 || int(d.Listeners[0].Procs[0].PID) != holder.PID {
				t.Errorf("want datagrams from %s to port %d, the holder %d on 127.0.0.2 named:\n%s", from, closed, holder.PID, dump([]tracer.Event{d}))
			}
		case "UDP_CSUM":
			if d.LPort != open || d.RPort != 40999 || d.LAddr != netip.MustParseAddr("127.0.0.1") || d.Listeners != nil {
				t.Errorf("want damaged datagrams from port 40999 to %d:\n%s", open, dump([]tracer.Event{d}))
			}
		default:
			t.Errorf("unexpected drop:\n%s", dump([]tracer.Event{d}))
		}
	}
	// The raw socket that sent the damaged ones is no UDP socket: no
	// flow; nor has the server one, which got nothing.
	for _, ev := range evs {
		if ev.Type != tracer.EventDrop && (ev.LPort == open || ev.RPort == open) {
			t.Errorf("want no flow of port %d:\n%s", open, dump([]tracer.Event{ev}))
		}
	}
	for key, want := range map[string]count{"NO_SOCKET ipv4": {2, 3}, "NO_SOCKET ipv6": {2, 2}, "UDP_CSUM ipv4": {2, 4}} {
		if c := got[key]; c == nil || *c != want {
			t.Errorf("%s: want %d drops in %d events (the first at once, the rest later), got %+v:\n%s", key, want.drops, want.events, c, dump(evs))
		}
	}
	for _, p := range []*testnet.Proc{holder, srv} {
		p.Go(t)
		p.Wait(t)
	}
}

// TestUDPRefused: connected UDP clients send to ports where nothing is
// bound: ICMP port unreachable comes back and their next recv returns
// ECONNREFUSED. Each flow's connect_fail says so, with the process that
// holds the port on another address of the host (127.0.0.2), or that
// nobody does, and, where UDP's error handlers are hooked (fentry,
// kprobe), who sent the ICMP error; each flow still ends with what it
// carried. The receiving end drops the datagram: NO_SOCKET.
func TestUDPRefused(t *testing.T) {
	const elsewhere, nowhere = 5357, 5358
	ns := testnet.NewNS(t)
	s := startTracer(t, tracer.Config{Ports: []uint16{elsewhere, nowhere}})
	mode := s.t.Mode()
	holder := testnet.Start(t, "ct-udp-holder", testnet.Role{UDP: true, Bind: true, NS: ns.Path(), Addr: fmt.Sprintf("127.0.0.2:%d", elsewhere)})
	holder.Expect(t, "bound")
	type client struct {
		dest  netip.AddrPort
		proc  *testnet.Proc
		local netip.AddrPort
	}
	var clients []client
	for _, dest := range []string{fmt.Sprintf("127.0.0.1:%d", elsewhere), fmt.Sprintf("127.0.0.1:%d", nowhere), fmt.Sprintf("[::1]:%d", nowhere)} {
		cli := testnet.Start(t, "ct-udp-cli", testnet.Role{UDP: true, Connected: true, NS: ns.Path(), Addr: dest, Send: 10, Recv: 10, MayFail: true})
		local := addrPort(t, cli.Expect(t, "sent"))
		if got := cli.Expect(t, "failed"); got != "ECONNREFUSED" {
			t.Fatalf("client to %s: got %q, want ECONNREFUSED", dest, got)
		}
		cli.Wait(t)
		clients = append(clients, client{netip.MustParseAddrPort(dest), cli, local})
	}
	for _, c := range clients {
		s.waitFor(t, 1, func(ev *tracer.Event) bool { return ev.Type == tracer.EventClose && ev.LPort == c.local.Port() })
	}
	all := s.stop(t)
	holder.Go(t)
	holder.Wait(t)

	for _, c := range clients {
		port := c.dest.Port()
		// The receiving end's view: a datagram to a port with no socket.
		var evs, drops []tracer.Event
		for _, ev := range all {
			switch {
			case ev.Type == tracer.EventDrop && ev.RPort == c.local.Port():
				drops = append(drops, ev)
			case ev.Type != tracer.EventDrop && ev.LPort == c.local.Port():
				evs = append(evs, ev)
			}
		}
		if len(drops) != 1 || drops[0].DropReason != "NO_SOCKET" || drops[0].Drops != 1 || drops[0].LPort != port || drops[0].LAddr != c.dest.Addr() {
			t.Errorf("%s: want the datagram's drop, NO_SOCKET, got:\n%s", c.dest, dump(drops))
		}
		if len(evs) != 3 || evs[0].Type != tracer.EventConnect || evs[1].Type != tracer.EventConnectFail || evs[2].Type != tracer.EventClose {
			t.Fatalf("%s: want the flow's connect, connect_fail and close, got:\n%s", c.dest, dump(evs))
		}
		fail := evs[1]
		if fail.Proto != tracer.ProtoUDP || fail.ErrorName() != "ECONNREFUSED" || int(fail.PID) != c.proc.PID || fail.ConnID != evs[0].ConnID ||
			fail.RAddr != c.dest.Addr() || fail.RPort != port || fail.ListenersNetNS != fail.NetNS || !fail.ICMPWatched {
			t.Errorf("%s: want the client's flow refused, ECONNREFUSED, looked up in its namespace:\n%s", c.dest, dump(evs))
		}
		switch {
		case port == nowhere && (fail.Listeners == nil || len(fail.Listeners) != 0):
			t.Errorf("%s: want nobody bound to it anywhere, got %+v", c.dest, fail.Listeners)
		case port == elsewhere && (len(fail.Listeners) != 1 || fail.Listeners[0].State != "UNCONN" ||
			fail.Listeners[0].LAddr != netip.MustParseAddr("127.0.0.2") || len(fail.Listeners[0].Procs) != 1 || int(fail.Listeners[0].Procs[0].PID) != holder.PID):
			t.Errorf("%s: want the holder %d on 127.0.0.2, got %+v", c.dest, holder.PID, fail.Listeners)
		}
		// Port unreachable: ICMP type 3 code 3, ICMPv6 type 1 code 4;
		// from the loopback address itself.
		icmp := [2]uint8{3, 3}
		if c.dest.Addr().Is6() {
			icmp = [2]uint8{1, 4}
		}
		switch got := [2]uint8{fail.ICMPType, fail.ICMPCode}; {
		case !tracer.UDPICMPHooked(mode) && fail.ICMPFrom.IsValid():
			t.Errorf("%s: %s hooks: want no ICMP sender, got %v", c.dest, mode, fail.ICMPFrom)
		case tracer.UDPICMPHooked(mode) && (fail.ICMPFrom != c.dest.Addr() || got != icmp):
			t.Errorf("%s: %s hooks: want ICMP %v from %s, got %v from %v", c.dest, mode, icmp, c.dest.Addr(), got, fail.ICMPFrom)
		}
		if cl := evs[2]; cl.TxPackets != 1 || cl.TxBytes != 10 || cl.RxPackets != 0 || cl.Reason != tracer.ReasonClosed {
			t.Errorf("%s: want the flow closed with the one datagram sent:\n%s", c.dest, dump(evs))
		}
	}
}

// TestUDPSendFailures: sends that fail, each reported once as its flow's
// connect_fail with the errno the application got: a firewall rule here
// that drops the datagrams on their way out (EPERM, NETFILTER_DROP),
// from a connected socket and from sendto() alike; and, where the kernel has sock:sock_send_length (6.3+), a sendto() with
// no route (ENETUNREACH), which leaves no datagram to see otherwise.
func TestUDPSendFailures(t *testing.T) {
	const port = 5359
	ns := testnet.NewNS(t)
	ns.Firewall(t, testnet.Firewall{UDP: true, Output: true, DPort: port})
	s := startTracer(t, tracer.Config{Ports: []uint16{port}})
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	var clients []*testnet.Proc
	for _, connected := range []bool{true, false} {
		cli := testnet.Start(t, "ct-udp-cli", testnet.Role{UDP: true, Connected: connected, NS: ns.Path(), Addr: addr, Send: 10, MayFail: true})
		cli.Expect(t, "sent")
		if got := cli.Expect(t, "failed"); got != "EPERM" {
			t.Fatalf("client (connected %v): got %q, want EPERM", connected, got)
		}
		cli.Wait(t)
		clients = append(clients, cli)
	}
	unreachable := testnet.Start(t, "ct-udp-lost", testnet.Role{UDP: true, NS: ns.Path(), Addr: fmt.Sprintf("198.18.7.7:%d", port), Send: 10, MayFail: true})
	unreachable.Expect(t, "sent")
	if got := unreachable.Expect(t, "failed"); got != "ENETUNREACH" {
		t.Fatalf("client with no route: got %q, want ENETUNREACH", got)
	}
	unreachable.Wait(t)
	want := 2
	if tracer.SendsHooked() {
		want = 3
		s.waitFor(t, 3, func(ev *tracer.Event) bool { return ev.Type == tracer.EventConnectFail })
	} else {
		s.waitFor(t, 2, func(ev *tracer.Event) bool { return ev.Type == tracer.EventConnectFail })
		time.Sleep(300 * time.Millisecond) // for what would follow
	}
	all := s.stop(t)

	// The connected client's flow started at its connect(): its
	// connect_fail is the flow's, which closes with nothing sent.
	var evs, flow []tracer.Event
	for _, ev := range all {
		if ev.Type == tracer.EventConnectFail {
			evs = append(evs, ev)
		} else {
			flow = append(flow, ev)
		}
	}
	if len(evs) != want || len(flow) != 2 || flow[0].Type != tracer.EventConnect || flow[1].Type != tracer.EventClose ||
		int(flow[0].PID) != clients[0].PID || evs[0].ConnID != flow[0].ConnID || flow[1].ConnID != flow[0].ConnID || flow[1].TxPackets != 0 {
		t.Fatalf("want one connect_fail per client (sock_send_length hooked: %v), the connected one's of its flow (connect, close with nothing sent), got:\n%s", tracer.SendsHooked(), dump(all))
	}
	for i, cli := range clients {
		ev := evs[i]
		if ev.Type != tracer.EventConnectFail || ev.Proto != tracer.ProtoUDP || int(ev.PID) != cli.PID || ev.ErrorName() != "EPERM" ||
			ev.DropReason != "NETFILTER_DROP" || ev.RAddr != netip.MustParseAddr("127.0.0.1") || ev.RPort != port || ev.Direction != tracer.DirOut {
			t.Errorf("client %d: want its EPERM by NETFILTER_DROP, to %s:\n%s", cli.PID, addr, dump([]tracer.Event{ev}))
		}
	}
	if want == 3 {
		if ev := evs[2]; ev.ErrorName() != "ENETUNREACH" || int(ev.PID) != unreachable.PID || ev.RAddr != netip.MustParseAddr("198.18.7.7") || ev.DropReason != "" {
			t.Errorf("want ENETUNREACH to 198.18.7.7, reported once:\n%s", dump([]tracer.Event{ev}))
		}
	}
}

// TestUDPFlowTableFull: a flow table of 16, one socket held open that
// sends to 40 ports: 16 flows start, and the 24 the table turns away are
// counted as evicted in events, their start and end each (then, with
// --events close only, their end alone). Closing the socket ends the 16.
func TestUDPFlowTableFull(t *testing.T) {
	testnet.RequireRoot(t)
	const flows, peers, base = 16, 40, 30400
	var ports []uint16
	for i := range peers {
		ports = append(ports, base+uint16(i))
	}
	for _, tc := range []struct {
		name        string
		events      tracer.EventMask
		perTurnaway uint64
	}{
		{"start and end", 1<<tracer.EventConnect | 1<<tracer.EventClose, 2},
		{"end only", 1 << tracer.EventClose, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := startTracer(t, tracer.Config{UDPFlows: flows, Ports: ports, Events: tc.events})
			c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
			if err != nil {
				t.Fatal(err)
			}
			for _, p := range ports {
				if _, err := c.WriteToUDPAddrPort([]byte("x"), netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), p)); err != nil {
					t.Fatal(err)
				}
			}
			c.Close()
			s.waitFor(t, flows, func(ev *tracer.Event) bool { return ev.Type == tracer.EventClose })
			time.Sleep(200 * time.Millisecond) // anything more would arrive by now
			evs := s.stop(t)
			var starts, closes uint64
			for _, ev := range evs {
				switch ev.Type {
				case tracer.EventConnect:
					starts++
				case tracer.EventClose:
					closes++
				}
			}
			st := s.t.Stats()
			want := tc.perTurnaway * (peers - flows)
			if closes != flows || st.Evicted != want || st.Lost != want || (tc.perTurnaway == 2 && starts != flows) {
				t.Errorf("%d starts, %d closes, stats %+v; want %d flows reported and %d events evicted", starts, closes, st, flows, want)
			}
		})
	}
}
