// SPDX-License-Identifier: Apache-2.0

package tracer_test

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/conntrace/conntrace/tracer"
	"github.com/conntrace/conntrace/tracer/testnet"
)

// pair is one server with one client connected to it.
type pair struct {
	port     uint16
	srv, cli *testnet.Proc
	local    string // client's local address:port
}

// runPairs starts one server per port in ns, then one client per server,
// all connections open at the same time, and waits until all are done.
func runPairs(t *testing.T, ns *testnet.NS, host string, ports ...uint16) []pair {
	t.Helper()
	pairs := make([]pair, len(ports))
	for i, port := range ports {
		pairs[i].port = port
		pairs[i].srv = testnet.Start(t, fmt.Sprintf("ct-srv-%d", port), testnet.Role{Server: true, NS: ns.Path(),
			Addr: fmt.Sprintf("%s:%d", host, port), Conns: 1, Send: 100, Recv: 200})
		pairs[i].srv.Expect(t, "listening")
	}
	for i, p := range pairs {
		pairs[i].cli = testnet.Start(t, fmt.Sprintf("ct-cli-%d", p.port), testnet.Role{NS: ns.Path(),
			Addr: fmt.Sprintf("%s:%d", host, p.port), Send: 200, Recv: 100, Pause: hold})
	}
	for i := range pairs {
		pairs[i].cli.Expect(t, "ready")
		pairs[i].local = pairs[i].cli.Expect(t, "connected")
	}
	for _, p := range pairs {
		p.cli.Wait(t)
		p.srv.Wait(t)
	}
	return pairs
}

// TestPortFilter: of three concurrent connections, --port shows exactly one,
// with all five of its events.
func TestPortFilter(t *testing.T) {
	ns := testnet.NewNS(t)
	s := startTracer(t, tracer.Config{Ports: []uint16{23402}})
	pairs := runPairs(t, ns, "127.0.0.1", 23401, 23402, 23403)
	s.waitFor(t, 2, func(ev *tracer.Event) bool { return ev.Type == tracer.EventClose })
	evs := s.stop(t)

	want := map[tracer.EventType]int{tracer.EventListen: pairs[1].srv.PID, tracer.EventConnect: pairs[1].cli.PID,
		tracer.EventAccept: pairs[1].srv.PID}
	if len(evs) != 5 {
		t.Fatalf("want 5 events of port 23402, got %d:\n%s", len(evs), dump(evs))
	}
	for _, ev := range evs {
		if ev.LPort != 23402 && ev.RPort != 23402 {
			t.Errorf("event not on port 23402:\n%s", dump([]tracer.Event{ev}))
		}
		if pid, ok := want[ev.Type]; ok && int(ev.PID) != pid {
			t.Errorf("%s by pid %d, want %d", ev.Type, ev.PID, pid)
		}
	}
	if n := len(ofType(tracer.EventClose, evs)); n != 2 {
		t.Errorf("want 2 closes, got %d", n)
	}
}

// TestPortFilterLocalPort: --port of a client's local port, which the
// kernel picks after connect() began, from the namespace's
// ip_local_port_range (here that one port, outside the host's range):
// the refused connects of a blocking and a non-blocking client and a
// connection from that port are shown, whole.
func TestPortFilterLocalPort(t *testing.T) {
	ns := testnet.NewNS(t)
	ns.Sysctl(t, "net/ipv4/ip_local_port_range", "23480 23480")
	s := startTracer(t, tracer.Config{Ports: []uint16{23480}})
	var failed []*testnet.Proc
	for _, blocking := range []bool{true, false} {
		failed = append(failed, runFailingClient(t, testnet.Role{NS: ns.Path(), Addr: "127.0.0.1:23482", Blocking: blocking}, "ECONNREFUSED"))
	}
	pairs := runPairs(t, ns, "127.0.0.1", 23481)
	s.waitFor(t, 2, func(ev *tracer.Event) bool { return ev.Type == tracer.EventClose })
	time.Sleep(200 * time.Millisecond) // anything more would arrive by now
	evs := s.stop(t)

	cli, srv := pairs[0].cli.PID, pairs[0].srv.PID
	want := []string{
		fmt.Sprintf("connect_fail %d 23480->23482", failed[0].PID),
		fmt.Sprintf("connect_fail %d 23480->23482", failed[1].PID),
		fmt.Sprintf("connect %d 23480->23481", cli),
		fmt.Sprintf("accept %d 23481->23480", srv),
		fmt.Sprintf("close %d 23480->23481", cli),
		fmt.Sprintf("close %d 23481->23480", srv),
	}
	var got []string
	for _, ev := range evs {
		got = append(got, fmt.Sprintf("%s %d %d->%d", ev.Type, ev.PID, ev.LPort, ev.RPort))
	}
	slices.Sort(want)
	slices.Sort(got)
	if !slices.Equal(got, want) {
		t.Fatalf("want %q, got:\n%s", want, dump(evs))
	}
}

// twoClients starts a server for two connections in ns, and two clients
// of it that connect when told to (Go).
func twoClients(t *testing.T, ns *testnet.NS) (srv *testnet.Proc, cli [2]*testnet.Proc) {
	t.Helper()
	srv = testnet.Start(t, "ct-server", testnet.Role{Server: true, NS: ns.Path(),
		Addr: "127.0.0.1:8080", Conns: 2, Send: 100, Recv: 200})
	srv.Expect(t, "listening")
	for i := range cli {
		cli[i] = testnet.Start(t, "ct-client", testnet.Role{NS: ns.Path(), Addr: "127.0.0.1:8080",
			Send: 200, Recv: 100, WaitGo: true})
		cli[i].Expect(t, "ready")
	}
	return srv, cli
}

// connectBoth lets both clients connect and waits until all three are
// done; it returns the first client's local address.
func connectBoth(t *testing.T, srv *testnet.Proc, cli [2]*testnet.Proc) string {
	t.Helper()
	for _, c := range cli {
		c.Go(t)
	}
	local := cli[0].Expect(t, "connected")
	cli[1].Expect(t, "connected")
	for _, c := range cli {
		c.Wait(t)
	}
	srv.Wait(t)
	return local
}

// TestPIDFilter: two clients of one server; --pid of one client shows its
// connect and close and nothing of the other client or the server.
func TestPIDFilter(t *testing.T) {
	testnet.RequireRoot(t)
	srv, cli := twoClients(t, testnet.NewNS(t))
	// The pid is known only now; the client connects after the tracer starts.
	s := startTracer(t, tracer.Config{PIDs: []uint32{uint32(cli[0].PID)}})
	local := connectBoth(t, srv, cli)
	s.waitFor(t, 1, func(ev *tracer.Event) bool { return ev.Type == tracer.EventClose })
	evs := s.stop(t)

	if len(evs) != 2 || evs[0].Type != tracer.EventConnect || evs[1].Type != tracer.EventClose {
		t.Fatalf("want connect and close of pid %d only, got:\n%s", cli[0].PID, dump(evs))
	}
	lp := addrPort(t, local)
	for _, ev := range evs {
		if int(ev.PID) != cli[0].PID || ev.LPort != lp.Port() || ev.RPort != 8080 || ev.TxBytes != uint64(200*b2i(ev.Type == tracer.EventClose)) {
			t.Errorf("unexpected event:\n%s", dump([]tracer.Event{ev}))
		}
	}
}

// TestCommEventsFamilyFilters: --comm, --events and -6 together, all in the
// kernel: only the IPv6 server's accept and close remain.
func TestCommEventsFamilyFilters(t *testing.T) {
	ns := testnet.NewNS(t)
	mask, err := tracer.ParseEvents("accept,close")
	if err != nil {
		t.Fatal(err)
	}
	s := startTracer(t, tracer.Config{Comms: []string{"ct-srv-23411"}, Events: mask, Family: tracer.FamilyIPv6})
	runPairs(t, ns, "127.0.0.1", 23411) // IPv4: filtered out by -6
	pairs := runPairs(t, ns, "[::1]", 23411)
	runPairs(t, ns, "[::1]", 23412) // another comm
	s.waitFor(t, 1, func(ev *tracer.Event) bool { return ev.Type == tracer.EventClose })
	evs := s.stop(t)

	if len(evs) != 2 || evs[0].Type != tracer.EventAccept || evs[1].Type != tracer.EventClose {
		t.Fatalf("want the IPv6 server's accept and close only, got:\n%s", dump(evs))
	}
	for _, ev := range evs {
		if int(ev.PID) != pairs[0].srv.PID || ev.Family != tracer.FamilyIPv6 || ev.LPort != 23411 || ev.Direction != tracer.DirIn {
			t.Errorf("unexpected event:\n%s", dump([]tracer.Event{ev}))
		}
	}
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}

// TestCgroupFilter: two clients of one server, one in a cgroup below the
// one filtered on: only its connect and close, each with its cgroup's id
// and path, and no container.
func TestCgroupFilter(t *testing.T) {
	testnet.RequireRoot(t)
	inner := testnet.NewCgroup(t, "app/inner")
	other := testnet.NewCgroup(t, "other")
	srv, cli := twoClients(t, testnet.NewNS(t))
	inner.Add(t, cli[0].PID)
	other.Add(t, cli[1].PID)
	s := startTracer(t, tracer.Config{Cgroups: []string{inner.Parent() + "/app"}})
	connectBoth(t, srv, cli)
	s.waitFor(t, 1, func(ev *tracer.Event) bool { return ev.Type == tracer.EventClose })
	evs := s.stop(t)

	if len(evs) != 2 || evs[0].Type != tracer.EventConnect || evs[1].Type != tracer.EventClose {
		t.Fatalf("want connect and close of pid %d only, got:\n%s", cli[0].PID, dump(evs))
	}
	for _, ev := range evs {
		if int(ev.PID) != cli[0].PID || ev.CgroupID != inner.ID || ev.Cgroup == nil || ev.Cgroup.Path != inner.Path || ev.Cgroup.Container != nil {
			t.Errorf("unexpected event (want cgroup %d %s):\n%s %+v", inner.ID, inner.Path, dump([]tracer.Event{ev}), ev.Cgroup)
		}
	}
}

// TestCgroupFilterUDP: two UDP clients of one server, one in a cgroup
// below the one filtered on: only its flow, with its process and cgroup.
// (A socket's owner and cgroup are its creator's: the clients make theirs
// once in their cgroups.)
func TestCgroupFilterUDP(t *testing.T) {
	testnet.RequireRoot(t)
	inner := testnet.NewCgroup(t, "app/inner")
	other := testnet.NewCgroup(t, "other")
	ns := testnet.NewNS(t)
	srv := testnet.Start(t, "ct-udp-srv", testnet.Role{UDP: true, Server: true, NS: ns.Path(), Addr: "127.0.0.1:5356", Conns: 2, Send: 10})
	srv.Expect(t, "bound")
	var cli [2]*testnet.Proc
	for i, cg := range []*testnet.Cgroup{inner, other} {
		cli[i] = testnet.Start(t, "ct-udp-cli", testnet.Role{UDP: true, Connected: true, NS: ns.Path(), Addr: "127.0.0.1:5356", Send: 20, Recv: 10, WaitGo: true})
		cli[i].Expect(t, "ready")
		cg.Add(t, cli[i].PID)
	}
	s := startTracer(t, tracer.Config{Cgroups: []string{inner.Parent() + "/app"}})
	for _, c := range cli {
		c.Go(t)
		c.Expect(t, "sent")
		c.Wait(t)
	}
	closeServer(t, srv)
	s.waitFor(t, 1, func(ev *tracer.Event) bool { return ev.Type == tracer.EventClose })
	time.Sleep(200 * time.Millisecond) // what else would come, by now
	evs := s.stop(t)

	if len(evs) != 2 || evs[0].Type != tracer.EventConnect || evs[1].Type != tracer.EventClose {
		t.Fatalf("want connect and close of pid %d only, got:\n%s", cli[0].PID, dump(evs))
	}
	for _, ev := range evs {
		if int(ev.PID) != cli[0].PID || ev.Proto != tracer.ProtoUDP || ev.CgroupID != inner.ID || ev.Cgroup == nil || ev.Cgroup.Path != inner.Path ||
			ev.Type == tracer.EventClose && (ev.TxBytes != 20 || ev.RxBytes != 10) {
			t.Errorf("unexpected event (want cgroup %d %s):\n%s %+v", inner.ID, inner.Path, dump([]tracer.Event{ev}), ev.Cgroup)
		}
	}
}

// TestProtoFilter: --udp and --tcp (Config.Proto) on the same traffic, a
// TCP connection, a UDP flow, a UDP and a TCP bind conflict on one port:
// each shows its protocol's events only. (Without TCP, only bind()'s programs are
// loaded: TestHooksPerMode.)
func TestProtoFilter(t *testing.T) {
	for _, proto := range []tracer.Proto{tracer.ProtoUDP, tracer.ProtoTCP} {
		t.Run(proto.String(), func(t *testing.T) {
			ns := testnet.NewNS(t)
			s := startTracer(t, tracer.Config{Ports: []uint16{23411}, Proto: proto})
			pairs := runPairs(t, ns, "127.0.0.1", 23411)
			udpCli := udpExchange(t, ns, "127.0.0.1:23411")
			failers := map[tracer.Proto]*testnet.Proc{}
			for _, p := range []tracer.Proto{tracer.ProtoUDP, tracer.ProtoTCP} {
				udp := p == tracer.ProtoUDP
				holder, got := bindAs(t, "ct-holder", testnet.Role{NS: ns.Path(), Addr: "0.0.0.0:23411", UDP: udp, Listen: !udp})
				if got != "bound" {
					t.Fatalf("holder: %s", got)
				}
				defer holder.Go(t)
				failer, got := bindAs(t, "ct-binder", testnet.Role{NS: ns.Path(), Addr: "0.0.0.0:23411", UDP: udp})
				if got != "failed EADDRINUSE" {
					t.Fatalf("binder: %s", got)
				}
				failer.Wait(t)
				failers[p] = failer
			}
			s.waitFor(t, 1, func(ev *tracer.Event) bool { return ev.Type == tracer.EventBindFail })
			time.Sleep(200 * time.Millisecond) // what else would come, by now
			evs := s.stop(t)
			want := 7 // two listens (the server, the holder), connect, accept, two closes, bind_fail
			if proto == tracer.ProtoUDP {
				want = 5 // the flow's connect, accept, two closes, bind_fail
			}
			if len(evs) != want {
				t.Fatalf("want %d events, got %d:\n%s", want, len(evs), dump(evs))
			}
			for _, ev := range evs {
				if ev.Proto != proto {
					t.Errorf("a %s event:\n%s", ev.Proto, dump([]tracer.Event{ev}))
				}
			}
			if fails := ofType(tracer.EventBindFail, evs); len(fails) != 1 || int(fails[0].PID) != failers[proto].PID {
				t.Errorf("want the %s binder's bind_fail (pid %d):\n%s", proto, failers[proto].PID, dump(evs))
			}
			client := map[tracer.Proto]int{tracer.ProtoTCP: pairs[0].cli.PID, tracer.ProtoUDP: udpCli.PID}[proto]
			if c := ofType(tracer.EventConnect, evs); len(c) != 1 || int(c[0].PID) != client {
				t.Errorf("want the %s client's connect (pid %d):\n%s", proto, client, dump(evs))
			}
		})
	}
}
