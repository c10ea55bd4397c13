// SPDX-License-Identifier: Apache-2.0

package tracer_test

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/conntrace/conntrace/tracer"
	"github.com/conntrace/conntrace/tracer/testnet"
)

// collector is a Sink that keeps copies of all events.
type collector struct {
	mu  sync.Mutex
	evs []tracer.Event
}

func (c *collector) Write(ev *tracer.Event) error {
	c.mu.Lock()
	c.evs = append(c.evs, *ev)
	if ev.DNS != nil { // the tracer reuses it
		c.evs[len(c.evs)-1].DNS = ev.DNS.Clone()
	}
	c.mu.Unlock()
	return nil
}

func (c *collector) Flush() error { return nil }

func (c *collector) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.evs)
}

func (c *collector) snapshot() []tracer.Event {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]tracer.Event(nil), c.evs...)
}

// session is a tracer running for one test.
type session struct {
	c      collector
	cancel context.CancelFunc
	done   chan error
	t      *tracer.Tracer
}

func startTracer(t *testing.T, cfg tracer.Config) *session {
	t.Helper()
	testnet.RequireRoot(t)
	if cfg.Hooks == tracer.HooksAuto {
		cfg.Hooks = tracer.HooksUnderTest(t)
	}
	if cfg.LookupWait == 0 && os.Getenv("CONNTRACE_EMULATED") != "" {
		// An emulated CPU, some 30 times slower, takes more than the
		// default 500 ms for a lookup now and then; the tests check what
		// it finds, not how fast.
		cfg.LookupWait = 30 * time.Second
	}
	tr, err := tracer.Open(cfg)
	if err != nil {
		t.Fatalf("open tracer: %v", err)
	}
	if cfg.Hooks != tracer.HooksAuto && tr.Mode() != cfg.Hooks {
		t.Fatalf("opened with %s hooks, asked for %s", tr.Mode(), cfg.Hooks)
	}
	ctx, cancel := context.WithCancel(context.Background())
	s := &session{cancel: cancel, done: make(chan error, 1), t: tr}
	go func() { s.done <- tr.Run(ctx, &s.c) }()
	t.Cleanup(func() {
		s.stop(t)
		tr.Close()
	})
	return s
}

// stop ends the run (detach, drain) and returns every event seen.
func (s *session) stop(t *testing.T) []tracer.Event {
	t.Helper()
	if s.cancel != nil {
		s.cancel()
		s.cancel = nil
		if err := <-s.done; err != nil {
			t.Errorf("tracer run: %v", err)
		}
	}
	return s.c.snapshot()
}

// waitFor polls until n events satisfy match, or fails after a timeout.
func (s *session) waitFor(t *testing.T, n int, match func(*tracer.Event) bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		got := 0
		for _, ev := range s.c.snapshot() {
			if match(&ev) {
				got++
			}
		}
		if got >= n {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("timed out waiting for %d matching events; have:\n%s", n, dump(s.c.snapshot()))
}

func dump(evs []tracer.Event) string {
	var b strings.Builder
	for _, ev := range evs {
		fmt.Fprintf(&b, "  %-7s conn=%d pid=%d comm=%q dir=%s %s %v:%d -> %v:%d tx=%d rx=%d dur=%v lat=%v lost=%d\n",
			ev.Type, ev.ConnID, ev.PID, ev.CommBytes(), ev.Direction, ev.Family,
			ev.LAddr, ev.LPort, ev.RAddr, ev.RPort, ev.TxBytes, ev.RxBytes, ev.Duration, ev.Latency, ev.Lost)
		if ev.RName != "" {
			fmt.Fprintf(&b, "          rname=%q\n", ev.RName)
		}
		if l := ev.DNS; l != nil {
			fmt.Fprintf(&b, "          dns id=%d %s %q %s latency=%v answers=%v (%d) cnames=%q tc=%v partial=%v\n",
				l.ID, l.QTypeName(), l.Name, l.RCodeName(), l.Latency, l.Answers, l.AnswerCount, l.CNAMEs, l.Truncated, l.Partial)
		}
	}
	return b.String()
}

// onPort selects the events of connections and listeners on port.
func onPort(port uint16) func(*tracer.Event) bool {
	return func(ev *tracer.Event) bool { return ev.LPort == port || ev.RPort == port }
}

func ofType(tt tracer.EventType, evs []tracer.Event) []tracer.Event {
	var out []tracer.Event
	for _, ev := range evs {
		if ev.Type == tt {
			out = append(out, ev)
		}
	}
	return out
}

func one(t *testing.T, tt tracer.EventType, evs []tracer.Event) tracer.Event {
	t.Helper()
	got := ofType(tt, evs)
	if len(got) != 1 {
		t.Fatalf("want exactly one %s event, got %d:\n%s", tt, len(got), dump(evs))
	}
	return got[0]
}

func addrPort(t *testing.T, s string) netip.AddrPort {
	t.Helper()
	ap, err := netip.ParseAddrPort(s)
	if err != nil {
		t.Fatalf("parse %q: %v", s, err)
	}
	return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
}

const (
	payloadOut = 10000 // client -> server
	payloadIn  = 3000  // server -> client
	hold       = 300 * time.Millisecond
)

// TestLifecycle runs one connection per case between a client and a server
// process and checks every event of its life: who, where, how long, how
// many bytes.
func TestLifecycle(t *testing.T) {
	testnet.RequireRoot(t)
	cases := []struct {
		name       string
		veth       bool
		listen     string // server's listen address
		dial       string // what the client dials
		family     tracer.Family
		serverAddr string // the server's end as the kernel reports it
	}{
		{"veth-ipv4", true, "198.18.0.2", "198.18.0.2", tracer.FamilyIPv4, "198.18.0.2"},
		{"veth-ipv6", true, "[2001:db8::2]", "[2001:db8::2]", tracer.FamilyIPv6, "2001:db8::2"},
		{"loopback-ipv4", false, "127.0.0.1", "127.0.0.1", tracer.FamilyIPv4, "127.0.0.1"},
		{"loopback-ipv6", false, "[::1]", "[::1]", tracer.FamilyIPv6, "::1"},
		// A dual-stack listener accepting IPv4: v4-mapped, reported as IPv4.
		{"dual-stack-v4-mapped", false, "[::]", "127.0.0.1", tracer.FamilyIPv4, "127.0.0.1"},
	}
	// One tracer for every case (a load takes seconds in an emulated
	// VM), each case on a port of its own.
	const firstPort = 8443
	var ports []uint16
	for i := range cases {
		ports = append(ports, firstPort+uint16(i))
	}
	s := startTracer(t, tracer.Config{Ports: ports})
	for i, tc := range cases {
		port := ports[i]
		listenAddr, dialAddr := fmt.Sprintf("%s:%d", tc.listen, port), fmt.Sprintf("%s:%d", tc.dial, port)
		t.Run(tc.name, func(t *testing.T) {
			srvNS := testnet.NewNS(t)
			cliNS := srvNS
			if tc.veth {
				cliNS = testnet.NewNS(t)
				testnet.Veth(t, cliNS, []string{"198.18.0.1/24", "2001:db8::1/64"},
					srvNS, []string{"198.18.0.2/24", "2001:db8::2/64"})
			}
			srv := testnet.Start(t, "ct-server", testnet.Role{Server: true, NS: srvNS.Path(),
				Addr: listenAddr, Conns: 1, Send: payloadIn, Recv: payloadOut})
			srv.Expect(t, "listening")
			cli := testnet.Start(t, "ct-client", testnet.Role{NS: cliNS.Path(),
				Addr: dialAddr, Send: payloadOut, Recv: payloadIn, Pause: hold})
			cli.Expect(t, "ready")
			local := addrPort(t, cli.Expect(t, "connected"))
			cli.Wait(t)
			srv.Wait(t)
			mine := onPort(port)
			s.waitFor(t, 2, func(ev *tracer.Event) bool { return ev.Type == tracer.EventClose && mine(ev) })
			var evs []tracer.Event
			for _, ev := range s.c.snapshot() {
				if mine(&ev) {
					evs = append(evs, ev)
				}
			}

			if len(evs) != 5 {
				t.Fatalf("want listen, connect, accept and two closes, got %d events:\n%s", len(evs), dump(evs))
			}
			server := netip.MustParseAddr(tc.serverAddr)
			check := func(what string, ev tracer.Event, pid int, comm string, l netip.Addr, lport uint16, r netip.Addr, rport uint16, dir tracer.Direction) {
				t.Helper()
				if int(ev.PID) != pid || string(ev.CommBytes()) != comm {
					t.Errorf("%s: pid/comm = %d/%q, want %d/%q", what, ev.PID, ev.CommBytes(), pid, comm)
				}
				if ev.LAddr != l || ev.LPort != lport || ev.RAddr != r || ev.RPort != rport {
					t.Errorf("%s: %v:%d -> %v:%d, want %v:%d -> %v:%d", what, ev.LAddr, ev.LPort, ev.RAddr, ev.RPort, l, lport, r, rport)
				}
				if ev.Direction != dir || ev.Family != tc.family || ev.UID != 0 {
					t.Errorf("%s: direction/family/uid = %s/%s/%d, want %s/%s/0", what, ev.Direction, ev.Family, ev.UID, dir, tc.family)
				}
			}

			listen := one(t, tracer.EventListen, evs)
			if tc.listen == "[::]" {
				// The listener itself is IPv6 (dual-stack): ::, not mapped.
				if listen.LAddr != netip.IPv6Unspecified() || listen.Family != tracer.FamilyIPv6 || int(listen.PID) != srv.PID {
					t.Errorf("listen = %v %s pid %d, want :: ipv6 pid %d", listen.LAddr, listen.Family, listen.PID, srv.PID)
				}
			} else {
				check("listen", listen, srv.PID, "ct-server", server, port, netip.Addr{}, 0, tracer.DirNone)
			}

			conn := one(t, tracer.EventConnect, evs)
			check("connect", conn, cli.PID, "ct-client", local.Addr(), local.Port(), server, port, tracer.DirOut)
			if conn.Latency <= 0 || conn.Latency > time.Second {
				t.Errorf("connect latency %v, want (0, 1s]", conn.Latency)
			}

			acc := one(t, tracer.EventAccept, evs)
			check("accept", acc, srv.PID, "ct-server", server, port, local.Addr(), local.Port(), tracer.DirIn)
			if acc.ConnID == conn.ConnID || acc.ConnID == 0 || conn.ConnID == 0 {
				t.Errorf("conn ids: connect %d, accept %d: want distinct and non-zero", conn.ConnID, acc.ConnID)
			}

			for _, cl := range ofType(tracer.EventClose, evs) {
				var tx, rx uint64
				switch cl.ConnID {
				case conn.ConnID:
					check("client close", cl, cli.PID, "ct-client", local.Addr(), local.Port(), server, port, tracer.DirOut)
					tx, rx = payloadOut, payloadIn
				case acc.ConnID:
					check("server close", cl, srv.PID, "ct-server", server, port, local.Addr(), local.Port(), tracer.DirIn)
					tx, rx = payloadIn, payloadOut
				default:
					t.Fatalf("close with conn_id %d matches neither connect nor accept:\n%s", cl.ConnID, dump(evs))
				}
				if cl.TxBytes != tx || cl.RxBytes != rx {
					t.Errorf("conn %d close: tx/rx = %d/%d, want %d/%d", cl.ConnID, cl.TxBytes, cl.RxBytes, tx, rx)
				}
				if cl.Duration < hold || cl.Duration > hold+3*time.Second {
					t.Errorf("conn %d close: duration %v, want %v..%v", cl.ConnID, cl.Duration, hold, hold+3*time.Second)
				}
			}
			if t.Failed() {
				t.Logf("events:\n%s", dump(evs))
			}
		})
	}
}
