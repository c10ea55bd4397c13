// SPDX-License-Identifier: Apache-2.0

package tracer_test

import (
	"testing"

	"github.com/conntrace/conntrace/tracer"
	"github.com/conntrace/conntrace/tracer/testnet"
)

// TestProcessAndThreadNames: COMM and the comm filter are the process's
// name (its thread-group leader's, as /proc/PID/comm shows), not the name
// a thread gave itself; the event carries that thread's name besides.
// Several names filter together, in the kernel.
func TestProcessAndThreadNames(t *testing.T) {
	ns := testnet.NewNS(t)
	s := startTracer(t, tracer.Config{Ports: []uint16{23420}, Comms: []string{"ct-client", "ct-other"}})
	srv := testnet.Start(t, "ct-server", testnet.Role{Server: true, NS: ns.Path(), Addr: "127.0.0.1:23420", Conns: 4})
	srv.Expect(t, "listening")
	pids := map[string]int{}
	for _, c := range []struct{ comm, thread string }{
		{"ct-client", "worker-thr"}, // renamed thread, process name matches
		{"ct-other", ""},
		{"ct-third", ""},           // another name: filtered out
		{"ct-fourth", "ct-client"}, // a thread named like a match is no match
	} {
		cli := testnet.Start(t, c.comm, testnet.Role{NS: ns.Path(), Addr: "127.0.0.1:23420", Thread: c.thread})
		cli.Expect(t, "ready")
		cli.Expect(t, "connected")
		cli.Wait(t)
		pids[c.comm] = cli.PID
	}
	srv.Wait(t)
	s.waitFor(t, 2, func(ev *tracer.Event) bool { return ev.Type == tracer.EventClose })
	evs := s.stop(t)

	want := map[string]string{"ct-client": "worker-thr", "ct-other": ""}
	seen := map[string]int{}
	for _, ev := range evs {
		comm := string(ev.CommBytes())
		thread, ok := want[comm]
		if !ok || int(ev.PID) != pids[comm] || string(ev.ThreadBytes()) != thread || ev.Direction != tracer.DirOut {
			t.Errorf("unexpected event (want %q's with thread %q):\n%s", comm, thread, dump([]tracer.Event{ev}))
		}
		seen[comm]++
	}
	if seen["ct-client"] != 2 || seen["ct-other"] != 2 {
		t.Errorf("want connect and close of ct-client and ct-other, got:\n%s", dump(evs))
	}
}
