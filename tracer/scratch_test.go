// SPDX-License-Identifier: Apache-2.0

package tracer

import (
	"context"
	"testing"

	"github.com/conntrace/conntrace/tracer/testnet"
)

// TestScratchMapsEmptied: the per-thread bind/connect entries live for one
// syscall, whatever it returned.
func TestScratchMapsEmptied(t *testing.T) {
	testnet.RequireRoot(t)
	ns := testnet.NewNS(t)
	tr, err := Open(Config{Hooks: HooksUnderTest(t)})
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Close()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- tr.Run(ctx, discard{}) }()

	holder := testnet.Start(t, "ct-holder", testnet.Role{Bind: true, NS: ns.Path(), Addr: "127.0.0.1:7000", Listen: true})
	holder.Expect(t, "bound")
	for _, r := range []testnet.Role{
		{Bind: true, NS: ns.Path(), Addr: "127.0.0.1:7000"},                       // EADDRINUSE
		{Bind: true, NS: ns.Path(), Addr: "127.0.0.1:7001"},                       // success
		{NS: ns.Path(), Addr: "127.0.0.1:7002", Blocking: true, MayFail: true},    // refused
		{NS: ns.Path(), Addr: "127.0.0.1:7000", Blocking: true},                   // success
		{NS: ns.Path(), Addr: "198.51.100.1:7000", Blocking: true, MayFail: true}, // unreachable
	} {
		p := testnet.Start(t, "ct-scratch", r)
		line := p.Line(t) // "bound"/"failed ..." for a binder, "ready" for a dialer
		if r.Bind {
			if line == "bound" { // a failed binder exits by itself
				p.Go(t)
			}
		} else {
			p.Line(t) // "connected" or "failed ..."
		}
		p.Wait(t)
	}
	holder.Go(t)
	holder.Wait(t)
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	for name, m := range map[string]interface{ NextKey(any, any) error }{
		"bind_calls": tr.maps.BindCalls, "connect_calls": tr.maps.ConnectCalls} {
		var key uint64
		if err := m.NextKey(nil, &key); err == nil {
			t.Errorf("%s still holds an entry for thread %d", name, key)
		}
	}
}

type discard struct{}

func (discard) Write(*Event) error { return nil }
func (discard) Flush() error       { return nil }
