// SPDX-License-Identifier: Apache-2.0

package loadgen

import (
	"errors"
	"fmt"
	"net/netip"
	"runtime"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// The UDP storms (UDPOptions.Mode).
const (
	// UDPStream: each sender sends datagrams to a server socket of its
	// own as fast as they go; the rate is of those received.
	UDPStream = "stream"
	// UDPRequestResponse: each sender sends a datagram and waits for the
	// answer before the next, on one socket (a DNS client's exchange);
	// the rate is of exchanges.
	UDPRequestResponse = "rr"
	// UDPFlows: each exchange from a new socket (a DNS client with a
	// random source port, a port scan): a new flow per exchange.
	UDPFlows = "flows"
)

// UDPOptions say what UDP storm to make, on loopback.
type UDPOptions struct {
	Senders  int           // concurrent senders
	Duration time.Duration // how long to run
	Payload  int           // bytes per datagram (each way)
	Mode     string        // UDPStream, UDPRequestResponse or UDPFlows
	Addr     string        // the servers' address, port 0 (e.g. 127.0.0.1:0)
}

// UDPStorm runs the senders against server sockets of its own until the
// duration is over. PerSecond is datagrams received (stream) or exchanges
// (rr, flows) per second; Conns counts them, Failures the exchanges that
// got no answer within a second (a datagram dropped) or failed.
func UDPStorm(o UDPOptions) (Result, error) {
	ap, err := netip.ParseAddrPort(o.Addr)
	if err != nil {
		return Result{}, err
	}
	if o.Mode != UDPStream && o.Mode != UDPRequestResponse && o.Mode != UDPFlows {
		return Result{}, fmt.Errorf("unknown UDP storm %q", o.Mode)
	}
	// A server socket per sender: one reader each, no receive buffer
	// shared by all.
	servers := make([]int, o.Senders)
	addrs := make([]unix.Sockaddr, o.Senders)
	defer func() {
		for _, fd := range servers {
			if fd > 0 {
				unix.Close(fd)
			}
		}
	}()
	for i := range servers {
		if servers[i], addrs[i], err = udpBind(ap); err != nil {
			return Result{}, err
		}
	}
	var stop atomic.Bool
	var received, done, failed atomic.Uint64
	var wg sync.WaitGroup
	for _, fd := range servers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			udpServe(fd, o.Mode != UDPStream, &stop, &received)
		}()
	}
	start := time.Now()
	for i := range o.Senders {
		wg.Add(1)
		go func() {
			defer wg.Done()
			runtime.LockOSThread()
			buf := make([]byte, max(o.Payload, 1))
			fd := -1
			if o.Mode != UDPFlows { // one socket for the whole storm
				var err error
				if fd, err = udpDial(addrs[i], o.Mode == UDPRequestResponse); err != nil {
					failed.Add(1)
					return
				}
				defer unix.Close(fd)
			}
			for !stop.Load() {
				var err error
				switch o.Mode {
				case UDPStream:
					err = unix.Send(fd, buf[:o.Payload], 0)
				case UDPRequestResponse:
					err = exchange(fd, buf[:o.Payload])
				case UDPFlows:
					err = udpOnce(addrs[i], buf[:o.Payload])
				}
				if err != nil {
					failed.Add(1)
					continue
				}
				done.Add(1)
			}
		}()
	}
	time.Sleep(o.Duration)
	stop.Store(true)
	secs := time.Since(start).Seconds()
	wg.Wait()
	n := done.Load()
	if o.Mode == UDPStream {
		n = received.Load()
	}
	port := 0
	if a, ok := addrs[0].(*unix.SockaddrInet4); ok {
		port = a.Port
	} else if a, ok := addrs[0].(*unix.SockaddrInet6); ok {
		port = a.Port
	}
	return Result{Conns: n, Accepted: received.Load(), Failures: failed.Load(), Seconds: secs,
		PerSecond: float64(n) / secs, Port: fmt.Sprint(port)}, nil
}

// udpBind makes a server socket on ap's address, a port of its own, that
// gives up a read after 100 ms (to see the storm's end).
func udpBind(ap netip.AddrPort) (int, unix.Sockaddr, error) {
	family, sa := sockaddr(ap)
	fd, err := unix.Socket(family, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return -1, nil, err
	}
	unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUF, 4<<20)
	unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &unix.Timeval{Usec: 100000})
	if err := unix.Bind(fd, sa); err == nil {
		if sa, err = unix.Getsockname(fd); err == nil {
			return fd, sa, nil
		}
	}
	unix.Close(fd)
	return -1, nil, err
}

// udpServe reads datagrams, and answers each with one as long when echo,
// until stop.
func udpServe(fd int, echo bool, stop *atomic.Bool, received *atomic.Uint64) {
	runtime.LockOSThread()
	buf := make([]byte, 65536)
	var from unix.RawSockaddrAny
	for !stop.Load() {
		n, fromLen, err := recvFrom(fd, buf, &from)
		if err != nil {
			continue // the read timed out, or a signal
		}
		received.Add(1)
		if echo {
			sendTo(fd, buf[:n], &from, fromLen)
		}
	}
}

// recvFrom and sendTo are recvfrom(2) and sendto(2) with the peer's
// address as the kernel wrote it, as a server in C has it: unix.Recvfrom
// asks the socket's protocol (getsockopt) at every datagram to convert
// it, a system call no server makes and that conntrace's TCP hooks see.
func recvFrom(fd int, p []byte, from *unix.RawSockaddrAny) (int, uint32, error) {
	fromLen := uint32(unix.SizeofSockaddrAny)
	n, _, errno := unix.Syscall6(unix.SYS_RECVFROM, uintptr(fd), uintptr(unsafe.Pointer(unsafe.SliceData(p))), uintptr(len(p)), 0,
		uintptr(unsafe.Pointer(from)), uintptr(unsafe.Pointer(&fromLen)))
	if errno != 0 {
		return 0, 0, errno
	}
	return int(n), fromLen, nil
}

func sendTo(fd int, p []byte, to *unix.RawSockaddrAny, toLen uint32) error {
	_, _, errno := unix.Syscall6(unix.SYS_SENDTO, uintptr(fd), uintptr(unsafe.Pointer(unsafe.SliceData(p))), uintptr(len(p)), 0,
		uintptr(unsafe.Pointer(to)), uintptr(toLen))
	if errno != 0 {
		return errno
	}
	return nil
}

// udpDial makes a socket connected to sa; one that waits for answers
// gives up after a second.
func udpDial(sa unix.Sockaddr, answers bool) (int, error) {
	family := unix.AF_INET
	if _, ok := sa.(*unix.SockaddrInet6); ok {
		family = unix.AF_INET6
	}
	fd, err := unix.Socket(family, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return -1, err
	}
	if answers {
		unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &unix.Timeval{Sec: 1})
	}
	if err := unix.Connect(fd, sa); err != nil {
		unix.Close(fd)
		return -1, err
	}
	return fd, nil
}

var errShort = errors.New("short answer")

// exchange sends payload and reads the answer.
func exchange(fd int, payload []byte) error {
	if err := unix.Send(fd, payload, 0); err != nil {
		return err
	}
	n, err := unix.Read(fd, payload[:cap(payload)])
	if err == nil && n != len(payload) {
		err = errShort
	}
	return err
}

// udpOnce is one exchange from a new socket.
func udpOnce(sa unix.Sockaddr, payload []byte) error {
	fd, err := udpDial(sa, true)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	return exchange(fd, payload)
}
