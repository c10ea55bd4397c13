// SPDX-License-Identifier: Apache-2.0

package testnet

import (
	"fmt"
	"strconv"
	"testing"
	"time"
)

// Crowd fills a connection table in a known order: two servers in n, on
// 127.0.0.1 at ports[0] and ports[1], each with a client ("ct-client")
// that holds per connections to it. Every one waits for Run.
type Crowd struct {
	Servers, Clients []*Proc
	per              int
}

// NewCrowd starts the servers ("ct-server") and the clients.
func NewCrowd(t testing.TB, n *NS, ports []uint16, per int) *Crowd {
	t.Helper()
	c := &Crowd{per: per}
	for _, port := range ports {
		addr := fmt.Sprintf("127.0.0.1:%d", port)
		srv := Start(t, "ct-server", Role{Server: true, NS: n.Path(), Addr: addr, Conns: per, WaitGo: len(c.Servers) == 1})
		srv.Expect(t, "listening")
		cli := Start(t, "ct-client", Role{NS: n.Path(), Addr: addr, Hold: per, Summary: true, WaitGo: true})
		cli.Expect(t, "ready")
		c.Servers, c.Clients = append(c.Servers, srv), append(c.Clients, cli)
	}
	return c
}

// Run connects the second client's connections (its server accepts none
// yet), then the first's (accepted at once), then lets the second server
// accept, closes everything and waits for every process's end.
func (c *Crowd) Run(t testing.TB) {
	t.Helper()
	for _, i := range []int{1, 0} {
		c.Clients[i].Go(t)
		if got := c.Clients[i].ExpectWithin(t, "held", time.Minute); got != strconv.Itoa(c.per) {
			t.Fatalf("client held %s connections, want %d", got, c.per)
		}
	}
	c.Servers[1].Go(t)
	for _, cli := range c.Clients {
		cli.Go(t)
		cli.Wait(t)
	}
	for _, srv := range c.Servers {
		srv.Wait(t)
	}
}
