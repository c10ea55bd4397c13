// SPDX-License-Identifier: Apache-2.0

package testnet

import (
	"encoding/binary"
	"fmt"
	"net"
	"net/netip"
	"testing"

	"golang.org/x/sys/unix"
)

// SendUDP sends count datagrams of payload to addr with sendto() from one
// socket of the test process inside n, and returns the socket's port.
// Nothing need be bound at addr: an unconnected socket is told of no ICMP
// error.
func (n *NS) SendUDP(t testing.TB, addr netip.AddrPort, payload []byte, count int) uint16 {
	t.Helper()
	var from uint16
	n.do(t, func() error {
		c, err := net.ListenUDP("udp", nil)
		if err != nil {
			return err
		}
		defer c.Close()
		from = c.LocalAddr().(*net.UDPAddr).AddrPort().Port()
		for range count {
			if _, err := c.WriteToUDPAddrPort(payload, addr); err != nil {
				return fmt.Errorf("send to %s: %w", addr, err)
			}
		}
		return nil
	})
	return from
}

// SendBadChecksum sends count datagrams of payload to addr (a loopback
// address, which is also their source) from port srcPort inside n, each
// with a wrong UDP checksum: a raw socket writes the UDP header itself.
func (n *NS) SendBadChecksum(t testing.TB, addr netip.AddrPort, srcPort uint16, payload []byte, count int) {
	t.Helper()
	dst := addr.Addr()
	dgram := make([]byte, 8+len(payload))
	binary.BigEndian.PutUint16(dgram[0:], srcPort)
	binary.BigEndian.PutUint16(dgram[2:], addr.Port())
	binary.BigEndian.PutUint16(dgram[4:], uint16(len(dgram)))
	copy(dgram[8:], payload)
	// The right checksum (source and destination the same address),
	// then one bit off; never 0, which IPv4 reads as "none".
	sum := udpChecksum(dst, dst, dgram)
	binary.BigEndian.PutUint16(dgram[6:], sum^0x0100)
	n.do(t, func() error {
		family, sa := unix.AF_INET, unix.Sockaddr(&unix.SockaddrInet4{Addr: dst.As4()})
		if dst.Is6() {
			family, sa = unix.AF_INET6, &unix.SockaddrInet6{Addr: dst.As16()}
		}
		fd, err := unix.Socket(family, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.IPPROTO_UDP)
		if err != nil {
			return err
		}
		defer unix.Close(fd)
		if err := unix.Bind(fd, sa); err != nil {
			return err
		}
		for range count {
			if err := unix.Sendto(fd, dgram, 0, sa); err != nil {
				return fmt.Errorf("raw send to %s: %w", addr, err)
			}
		}
		return nil
	})
}

// udpChecksum is RFC 768's (RFC 8200's for IPv6) over the pseudo-header
// and dgram, whose checksum field is zero.
func udpChecksum(src, dst netip.Addr, dgram []byte) uint16 {
	var sum uint32
	add := func(b []byte) {
		for i := 0; i+1 < len(b); i += 2 {
			sum += uint32(binary.BigEndian.Uint16(b[i:]))
		}
		if len(b)%2 == 1 {
			sum += uint32(b[len(b)-1]) << 8
		}
	}
	add(src.AsSlice())
	add(dst.AsSlice())
	sum += unix.IPPROTO_UDP + uint32(len(dgram))
	add(dgram)
	for sum>>16 != 0 {
		sum = sum&0xffff + sum>>16
	}
	if c := ^uint16(sum); c != 0 {
		return c
	}
	return 0xffff
}
