// SPDX-License-Identifier: Apache-2.0

package tracer_test

import (
	"os"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/conntrace/conntrace/tracer"
	"github.com/conntrace/conntrace/tracer/testnet"
)

// TestResetInQueueMany: more connections than a listener's default queue
// holds (net.core.somaxconn, 4,096) wait in it, each reset by its client;
// then the server accepts them all. Every one is reported: connect,
// accept, and both closes. (An LRU of 4,096 for the connections closed in
// the queue lost hundreds of accepts a second in a storm of resetting
// clients, silently.)
func TestResetInQueueMany(t *testing.T) {
	testnet.RequireRoot(t)
	const port = 18092
	n := 6000
	if os.Getenv("CONNTRACE_EMULATED") != "" {
		n = 600 // 6,000 connections take minutes in an emulated VM
	}
	const somaxconn = "/proc/sys/net/core/somaxconn"
	old, err := os.ReadFile(somaxconn)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(somaxconn, []byte(strconv.Itoa(2*n)), 0); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.WriteFile(somaxconn, []byte(strings.TrimSpace(string(old))), 0) })

	s := startTracer(t, tracer.Config{Ports: []uint16{port}})
	ln, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC|unix.SOCK_NONBLOCK, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(ln)
	unix.SetsockoptInt(ln, unix.SOL_SOCKET, unix.SO_REUSEADDR, 1)
	addr := &unix.SockaddrInet4{Port: port, Addr: [4]byte{127, 0, 0, 1}}
	if err := unix.Bind(ln, addr); err != nil {
		t.Fatal(err)
	}
	if err := unix.Listen(ln, 2*n); err != nil {
		t.Fatal(err)
	}
	for i := range n {
		fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			t.Fatal(err)
		}
		if err := unix.Connect(fd, addr); err != nil {
			t.Fatalf("connection %d: %v", i, err)
		}
		unix.SetsockoptLinger(fd, unix.SOL_SOCKET, unix.SO_LINGER, &unix.Linger{Onoff: 1, Linger: 0})
		unix.Close(fd) // RST: the connection closes in the queue
	}
	accepted := 0
	for {
		fd, _, err := unix.Accept4(ln, unix.SOCK_CLOEXEC)
		if err == unix.EAGAIN {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		unix.Close(fd)
		accepted++
	}
	if accepted != n {
		t.Fatalf("accepted %d of %d connections", accepted, n)
	}
	s.waitFor(t, 4*n, func(ev *tracer.Event) bool { return ev.Type != tracer.EventListen })
	evs := s.stop(t)
	count := map[tracer.EventType]int{}
	var closesIn int
	for _, ev := range evs {
		count[ev.Type]++
		if ev.Type == tracer.EventClose && ev.Direction == tracer.DirIn {
			closesIn++
			if ev.Reason != tracer.ReasonResetIn {
				t.Errorf("server close %s, want reset by the peer", ev.Reason)
			}
		}
	}
	if count[tracer.EventConnect] != n || count[tracer.EventAccept] != n || count[tracer.EventClose] != 2*n || closesIn != n || count[tracer.EventLost] != 0 {
		t.Errorf("for %d connections: %v events (%d server closes), want a connect, an accept and two closes each, nothing lost", n, count, closesIn)
	}
}
