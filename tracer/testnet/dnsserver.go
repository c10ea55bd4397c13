// SPDX-License-Identifier: Apache-2.0

package testnet

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"testing"
	"time"

	"golang.org/x/net/dns/dnsmessage"
)

// DNSServer answers DNS queries on addr (UDP, in n) from the test
// process itself, with what answer makes of each query's bytes: what no
// real server would send (a hostile server's messages), byte by byte.
// A nil answer sends nothing. It stops with the test.
func DNSServer(t testing.TB, n *NS, addr netip.AddrPort, answer func(query []byte) []byte) {
	t.Helper()
	var c *net.UDPConn
	n.do(t, func() (err error) {
		c, err = net.ListenUDP("udp", net.UDPAddrFromAddrPort(addr))
		return err
	})
	done := make(chan struct{})
	t.Cleanup(func() {
		c.Close()
		<-done
	})
	go func() {
		defer close(done)
		buf := make([]byte, 1500)
		for {
			k, from, err := c.ReadFromUDPAddrPort(buf)
			if err != nil {
				return
			}
			if msg := answer(buf[:k]); msg != nil {
				c.WriteToUDPAddrPort(msg, from)
			}
		}
	}()
}

// AskDNS sends each query to server from one socket of the test process
// in n (connected: the server's ICMP errors come back to it) and waits up
// to wait for an answer to each; it returns them in order (nil: none).
func (n *NS) AskDNS(t testing.TB, server netip.AddrPort, wait time.Duration, queries ...[]byte) [][]byte {
	t.Helper()
	var c *net.UDPConn
	n.do(t, func() (err error) {
		c, err = net.DialUDP("udp", nil, net.UDPAddrFromAddrPort(server))
		return err
	})
	defer c.Close()
	answers := make([][]byte, len(queries))
	buf := make([]byte, 65536)
	for i, q := range queries {
		if _, err := c.Write(q); err != nil {
			t.Fatalf("DNS query to %s: %v", server, err)
		}
		c.SetReadDeadline(time.Now().Add(wait))
		k, err := c.Read(buf)
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			continue
		} else if err != nil {
			t.Fatalf("DNS answer from %s: %v", server, err)
		}
		answers[i] = append([]byte(nil), buf[:k]...)
	}
	return answers
}

// DNSQuery is a query of id for name (in any bytes: a hostile client's)
// and type, with recursion desired, as a stub resolver sends it.
func DNSQuery(t testing.TB, id uint16, name string, qtype dnsmessage.Type) []byte {
	t.Helper()
	b := dnsmessage.NewBuilder(nil, dnsmessage.Header{ID: id, RecursionDesired: true})
	b.EnableCompression()
	q, err := queryName(name)
	if err == nil {
		err = b.StartQuestions()
	}
	if err == nil {
		err = b.Question(dnsmessage.Question{Name: q, Type: qtype, Class: dnsmessage.ClassINET})
	}
	msg, err2 := b.Finish()
	if err = errors.Join(err, err2); err != nil {
		t.Fatalf("DNS query of %q: %v", name, err)
	}
	return msg
}

// queryName is name as dnsmessage takes it, any byte but the dots
// allowed in its labels.
func queryName(name string) (dnsmessage.Name, error) {
	var n dnsmessage.Name
	if len(name) > len(n.Data) {
		return n, fmt.Errorf("name of %d bytes", len(name))
	}
	n.Length = uint8(copy(n.Data[:], name))
	return n, nil
}
