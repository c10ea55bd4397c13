// SPDX-License-Identifier: Apache-2.0

package testnet

import (
	"fmt"
	"net"
	"net/netip"

	"golang.org/x/sys/unix"
)

// serveUDP: a UDP server on Addr. It says "bound", answers each of Conns
// datagrams, from any client, with one of Send bytes, says "served", and
// holds the socket until Go.
func (r Role) serveUDP() error {
	c, err := net.ListenPacket("udp", r.Addr)
	if err != nil {
		return err
	}
	defer c.Close()
	if r.RcvBuf > 0 {
		return drainLater(c.(*net.UDPConn), r.RcvBuf)
	}
	fmt.Println("bound")
	buf := make([]byte, 65536)
	for range r.Conns {
		_, from, err := c.ReadFrom(buf)
		if err != nil {
			return err
		}
		if _, err := c.WriteTo(make([]byte, r.Send), from); err != nil {
			return err
		}
	}
	fmt.Println("served")
	waitGo()
	return nil
}

// dialUDP: a UDP client of Addr, its socket connected (Connected) or not
// (sendto), made after "ready" and Go with WaitGo. It sends Repeat
// datagrams (one if 0, none with NoSend) of Send bytes, each answered by one of Recv bytes
// when Recv > 0 (after "ready" and Go with SendOnGo), says "sent LOCAL",
// then holds the socket until Go with Keep. With MayFail, a failed send
// or read says "failed ENAME" after "sent LOCAL" instead of failing.
func (r Role) dialUDP() error {
	to, err := netip.ParseAddrPort(r.Addr)
	if err != nil {
		return err
	}
	if r.WaitGo {
		fmt.Println("ready")
		waitGo()
	}
	var c net.Conn
	var pc net.PacketConn
	if r.Connected {
		c, err = net.Dial("udp", r.Addr)
		pc, _ = c.(net.PacketConn)
	} else {
		network := "udp4"
		if to.Addr().Is6() {
			network = "udp6"
		}
		pc, err = net.ListenPacket(network, "")
	}
	if err != nil {
		return err
	}
	defer pc.Close()
	if r.SendOnGo {
		fmt.Println("ready")
		waitGo()
	}
	buf := make([]byte, 65536)
	n := max(r.Repeat, 1)
	if r.NoSend {
		n = 0
	}
	for range n {
		if c != nil {
			_, err = c.Write(make([]byte, r.Send))
		} else {
			_, err = pc.WriteTo(make([]byte, r.Send), net.UDPAddrFromAddrPort(to))
		}
		if err != nil {
			fmt.Println("sent", pc.LocalAddr())
			return r.failed(err)
		}
		if r.Recv > 0 {
			// A connected socket reads with read(2), naming no address.
			var n int
			if c != nil {
				n, err = c.Read(buf)
			} else {
				n, _, err = pc.ReadFrom(buf)
			}
			if err != nil && r.MayFail {
				fmt.Println("sent", pc.LocalAddr())
				return r.failed(err)
			}
			if err != nil || n != r.Recv {
				return fmt.Errorf("read %d bytes (%v), want %d", n, err, r.Recv)
			}
		}
	}
	fmt.Println("sent", pc.LocalAddr())
	if r.Keep {
		waitGo()
	}
	return nil
}

// drainLater: a server too slow for its clients. Its receive buffer set
// to rcvbuf bytes, it says "bound" and reads nothing until Go; then it
// reads what the buffer holds, without waiting (MSG_DONTWAIT), says
// "read N" (datagrams), and holds the socket until Go.
func drainLater(c *net.UDPConn, rcvbuf int) error {
	if err := c.SetReadBuffer(rcvbuf); err != nil {
		return err
	}
	fmt.Println("bound")
	waitGo()
	rc, err := c.SyscallConn()
	if err != nil {
		return err
	}
	buf := make([]byte, 65536)
	n := 0
	var rerr error
	if err := rc.Read(func(fd uintptr) bool {
		for {
			_, _, err := unix.Recvfrom(int(fd), buf, unix.MSG_DONTWAIT)
			if err == unix.EAGAIN {
				return true
			}
			if err != nil {
				rerr = err
				return true
			}
			n++
		}
	}); err != nil {
		return err
	}
	if rerr != nil {
		return rerr
	}
	fmt.Println("read", n)
	waitGo()
	return nil
}
