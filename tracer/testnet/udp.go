// SPDX-License-Identifier: Apache-2.0

package testnet

import (
	"fmt"
	"net"
	"net/netip"
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
// datagrams (one if 0) of Send bytes, each answered by one of Recv bytes
// when Recv > 0 (after "ready" and Go with SendOnGo), says "sent LOCAL",
// then holds the socket until Go with Keep.
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
	for range max(r.Repeat, 1) {
		if c != nil {
			_, err = c.Write(make([]byte, r.Send))
		} else {
			_, err = pc.WriteTo(make([]byte, r.Send), net.UDPAddrFromAddrPort(to))
		}
		if err != nil {
			return err
		}
		if r.Recv > 0 {
			// A connected socket reads with read(2), naming no address.
			var n int
			if c != nil {
				n, err = c.Read(buf)
			} else {
				n, _, err = pc.ReadFrom(buf)
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
