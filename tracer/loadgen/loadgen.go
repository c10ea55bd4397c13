// SPDX-License-Identifier: Apache-2.0

// Package loadgen makes TCP connections as fast as the kernel takes them:
// N concurrent dialers against a listener of its own, each connection
// connected, a payload sent and echoed, then closed with FIN or RST; and
// UDP storms (udp.go). It is cmd/connstorm's engine, and the storm in the
// tracer's tests.
package loadgen

import (
	"fmt"
	"net/netip"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"
)

// Options say what storm to make.
type Options struct {
	Conns    int           // concurrent dialers
	Duration time.Duration // how long to run
	Payload  int           // bytes each side sends per connection
	Close    string        // how the client closes: "fin" or "rst"
	Addr     string        // the listener's address, e.g. 127.0.0.1:0
}

// Result is what a storm did. The JSON names are read by cmd/bench.
type Result struct {
	Conns     uint64  `json:"conns"`    // completed by the dialers
	Accepted  uint64  `json:"accepted"` // accepted (and closed) by the listener's side
	Failures  uint64  `json:"failures"`
	Seconds   float64 `json:"seconds"`
	PerSecond float64 `json:"conn_per_s"`
	Port      string  `json:"port"` // the listener's port
}

// Storm runs the dialers against a listener of its own until the duration
// is over. Blocking system calls on locked threads, not the net package:
// its poller costs more per connection than the kernel's TCP does, and the
// point is to load the kernel's hooks.
func Storm(o Options) (r Result, err error) {
	ap, err := netip.ParseAddrPort(o.Addr)
	if err != nil {
		return Result{}, err
	}
	ln, err := listen(ap)
	if err != nil {
		return Result{}, err
	}
	sa, err := unix.Getsockname(ln)
	if err != nil {
		unix.Close(ln)
		return Result{}, err
	}
	var servers sync.WaitGroup
	var accepted atomic.Uint64
	for range max(2, o.Conns/4) {
		servers.Add(1)
		go func() {
			defer servers.Done()
			serve(ln, o.Payload, &accepted)
		}()
	}
	defer func() {
		// Wake the servers blocked in accept() (close alone does not),
		// and wait for them: none may outlive the storm.
		unix.Shutdown(ln, unix.SHUT_RDWR)
		servers.Wait()
		unix.Close(ln)
		r.Accepted = accepted.Load()
	}()

	var done, failed atomic.Uint64
	var stop atomic.Bool
	var wg sync.WaitGroup
	start := time.Now()
	for range o.Conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			runtime.LockOSThread()
			buf := make([]byte, max(o.Payload, 1))
			for !stop.Load() {
				if err := once(sa, buf[:o.Payload], o.Close == "rst"); err != nil {
					failed.Add(1)
					continue
				}
				done.Add(1)
			}
		}()
	}
	time.Sleep(o.Duration)
	stop.Store(true)
	wg.Wait()
	secs := time.Since(start).Seconds()
	// Let the servers take what is queued before the listener closes.
	for deadline := time.Now().Add(5 * time.Second); accepted.Load() < done.Load() && time.Now().Before(deadline); {
		time.Sleep(10 * time.Millisecond)
	}
	port := 0
	switch a := sa.(type) {
	case *unix.SockaddrInet4:
		port = a.Port
	case *unix.SockaddrInet6:
		port = a.Port
	}
	return Result{Conns: done.Load(), Failures: failed.Load(), Seconds: secs,
		PerSecond: float64(done.Load()) / secs, Port: fmt.Sprint(port)}, nil
}

func sockaddr(ap netip.AddrPort) (int, unix.Sockaddr) {
	if ap.Addr().Is4() {
		return unix.AF_INET, &unix.SockaddrInet4{Addr: ap.Addr().As4(), Port: int(ap.Port())}
	}
	return unix.AF_INET6, &unix.SockaddrInet6{Addr: ap.Addr().As16(), Port: int(ap.Port())}
}

func listen(ap netip.AddrPort) (int, error) {
	family, sa := sockaddr(ap)
	fd, err := unix.Socket(family, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return -1, err
	}
	unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_REUSEADDR, 1)
	if err := unix.Bind(fd, sa); err != nil {
		unix.Close(fd)
		return -1, err
	}
	if err := unix.Listen(fd, 4096); err != nil {
		unix.Close(fd)
		return -1, err
	}
	return fd, nil
}

// once makes one connection: send the payload, read the echo, close (with
// RST when rst: SO_LINGER 0).
func once(sa unix.Sockaddr, payload []byte, rst bool) error {
	family := unix.AF_INET
	if _, ok := sa.(*unix.SockaddrInet6); ok {
		family = unix.AF_INET6
	}
	fd, err := unix.Socket(family, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	if err := unix.Connect(fd, sa); err != nil {
		return err
	}
	if len(payload) > 0 {
		if err := writeAll(fd, payload); err != nil {
			return err
		}
		if err := readFull(fd, payload); err != nil {
			return err
		}
	}
	if rst {
		return unix.SetsockoptLinger(fd, unix.SOL_SOCKET, unix.SO_LINGER, &unix.Linger{Onoff: 1, Linger: 0})
	}
	return nil
}

// serve accepts, echoes payload bytes, and closes after the client did.
func serve(ln, payload int, accepted *atomic.Uint64) {
	runtime.LockOSThread()
	buf := make([]byte, max(payload, 512))
	for {
		fd, _, err := unix.Accept4(ln, unix.SOCK_CLOEXEC)
		if err == unix.EINTR || err == unix.ECONNABORTED {
			continue
		}
		if err != nil {
			return // the listener was closed
		}
		accepted.Add(1)
		if payload > 0 && readFull(fd, buf[:payload]) == nil {
			writeAll(fd, buf[:payload])
		}
		for { // until the client's FIN (or RST)
			if n, err := unix.Read(fd, buf); n <= 0 || err != nil {
				break
			}
		}
		unix.Close(fd)
	}
}

func writeAll(fd int, b []byte) error {
	for len(b) > 0 {
		n, err := unix.Write(fd, b)
		if err != nil {
			return err
		}
		b = b[n:]
	}
	return nil
}

func readFull(fd int, b []byte) error {
	for len(b) > 0 {
		n, err := unix.Read(fd, b)
		if err != nil {
			return err
		}
		if n == 0 {
			return fmt.Errorf("connection closed early")
		}
		b = b[n:]
	}
	return nil
}
