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

// TestHTTP3: a real HTTP/3 client and server (quic-go) in two network
// namespaces exchange a request on UDP 443, the server's answer 200 KB:
// one flow on each side, with the processes, and what each side sent is
// what the other received, datagram for datagram and byte for byte (less
// what the receiver dropped, counted apart, and what came after its
// socket closed). With GSO (quic-go's
// default) a batch leaves as one skb of gso_segs datagrams and arrives
// split; without it, datagram by datagram: the counts agree either way.
func TestHTTP3(t *testing.T) {
	testnet.RequireRoot(t)
	const port, body = 443, 200000
	for _, gso := range []bool{true, false} {
		t.Run(fmt.Sprintf("gso=%v", gso), func(t *testing.T) {
			if !gso {
				t.Setenv("QUIC_GO_DISABLE_GSO", "true") // the helpers inherit it
			}
			srvNS, cliNS := testnet.NewNS(t), testnet.NewNS(t)
			testnet.Veth(t, cliNS, []string{"198.18.0.1/24"}, srvNS, []string{"198.18.0.2/24"})
			addr := fmt.Sprintf("198.18.0.2:%d", port)
			s := startTracer(t, tracer.Config{Ports: []uint16{port}})
			srv := testnet.Start(t, "ct-h3-server", testnet.Role{HTTP3: true, Server: true, NS: srvNS.Path(), Addr: addr, Conns: 1, Send: body})
			srv.Expect(t, "bound")
			// The client holds its socket until the server has closed
			// its own: nothing either sends meets a closed port.
			cli := testnet.Start(t, "ct-h3-client", testnet.Role{HTTP3: true, NS: cliNS.Path(), Addr: addr, Keep: true})
			got := strings.Fields(cli.Expect(t, "got"))
			if len(got) != 2 || got[0] != fmt.Sprint(body) {
				t.Fatalf("client: got %q, want %d bytes and its address", got, body)
			}
			local := addrPort(t, got[1])
			closeServer(t, srv)
			cli.Go(t)
			cli.Wait(t)
			s.waitFor(t, 2, func(ev *tracer.Event) bool { return ev.Type == tracer.EventClose })
			evs := s.stop(t)

			var out, in *tracer.Event
			noSocket := map[uint32]uint64{} // by network namespace
			drops := 0
			for i, ev := range evs {
				switch {
				case ev.Type == tracer.EventDrop && ev.DropReason == "NO_SOCKET" && ev.PID == 0:
					noSocket[ev.NetNS] += uint64(ev.Drops)
					drops++
				case ev.Type == tracer.EventClose && ev.Direction == tracer.DirOut:
					out = &evs[i]
				case ev.Type == tracer.EventClose && ev.Direction == tracer.DirIn:
					in = &evs[i]
				case ev.Type == tracer.EventConnect || ev.Type == tracer.EventAccept:
				default:
					t.Errorf("unexpected event:\n%s", dump([]tracer.Event{ev}))
				}
			}
			if len(evs)-drops != 4 || out == nil || in == nil {
				t.Fatalf("want a flow on each side (connect, accept, two closes), got:\n%s", dump(evs))
			}
			server := netip.MustParseAddr("198.18.0.2")
			if int(out.PID) != cli.PID || out.LPort != local.Port() || out.RAddr != server || out.RPort != port || out.Proto != tracer.ProtoUDP ||
				int(in.PID) != srv.PID || in.LAddr != server || in.LPort != port || in.RPort != local.Port() {
				t.Errorf("want the client's flow out to %s and the server's in from the client's port %d:\n%s", addr, local.Port(), dump(evs))
			}
			// QUIC's close races the sockets' (an endpoint closing
			// answers a late packet with its close again): a datagram
			// that came after the other side's socket closed is the
			// kernel's there (Udp NoPorts), and told as a drop of no
			// socket (NO_SOCKET) in its namespace.
			toServer, toClient := srvNS.SNMP(t, "Udp", "NoPorts"), cliNS.SNMP(t, "Udp", "NoPorts")
			if out.TxPackets != in.RxPackets+uint64(in.Drops)+toServer || in.TxPackets != out.RxPackets+uint64(out.Drops)+toClient ||
				out.TxBytes < in.RxBytes || in.TxBytes < out.RxBytes ||
				in.Drops+uint32(toServer) == 0 && out.TxBytes != in.RxBytes || out.Drops+uint32(toClient) == 0 && in.TxBytes != out.RxBytes {
				t.Errorf("what each side sent, the other received, dropped, or found no socket for (%d at the server, %d at the client):\n%s",
					toServer, toClient, dump([]tracer.Event{*out, *in}))
			}
			if noSocket[srvNS.Inode(t)] != toServer || noSocket[cliNS.Inode(t)] != toClient || len(noSocket) > 2 {
				t.Errorf("want the datagrams no socket had told as drops: %d at the server, %d at the client; got %v", toServer, toClient, noSocket)
			}
			if out.RxBytes < body || out.RxPackets < body/1500 {
				t.Errorf("the client received %d bytes in %d datagrams, want the %d-byte body's at least:\n%s", out.RxBytes, out.RxPackets, body, dump([]tracer.Event{*out}))
			}
			// The server's veth counts an skb a packet: fewer than its
			// datagrams when GSO sent batches, as many (and ARP's,
			// NDP's) without.
			skbs := srvNS.TxPackets(t)
			if gso && skbs >= in.TxPackets || !gso && skbs < in.TxPackets {
				t.Errorf("the server's device sent %d packets for its %d datagrams: GSO %v was not what happened", skbs, in.TxPackets, gso)
			}
			t.Logf("client: %d datagrams (%d bytes) out, %d (%d) in, %d dropped; server: %d datagrams in %d skbs, %d dropped",
				out.TxPackets, out.TxBytes, out.RxPackets, out.RxBytes, out.Drops, in.TxPackets, skbs, in.Drops)
		})
	}
}
