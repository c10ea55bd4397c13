// SPDX-License-Identifier: Apache-2.0

package tracer_test

import (
	"testing"

	"github.com/conntrace/conntrace/tracer"
	"github.com/conntrace/conntrace/tracer/testnet"
)

// TestFloorAttaches: the hook-cost floor (make bench) loads and attaches in
// the mode under test, every hook of it, and reports nothing: its programs
// return at once, and its cgroup programs let every socket and packet
// through (a TCP connection and a UDP exchange work).
func TestFloorAttaches(t *testing.T) {
	tracer.UseFloorForTest(t)
	ns := testnet.NewNS(t)
	s := startTracer(t, tracer.Config{})
	exchangeOn(t, ns, "127.0.0.1:23430")
	udpExchange(t, ns, "127.0.0.1:23430")
	if evs := s.stop(t); len(evs) != 0 {
		t.Errorf("the floor reported events:\n%s", dump(evs))
	}
}
