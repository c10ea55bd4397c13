// SPDX-License-Identifier: Apache-2.0

package main

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"

	"github.com/conntrace/conntrace/tracer/testnet"
)

type socketLine struct {
	Proto, State, Laddr, Class, Service, Comm string
	Lport, Pid                                int
}

func runJSON(t *testing.T, args ...string) []socketLine {
	t.Helper()
	var stdout, stderr bytes.Buffer
	if code := run(append([]string{"conntrace"}, args...), &stdout, &stderr); code != exitOK {
		t.Fatalf("%v: exit %d: %s", args, code, stderr.String())
	}
	var out []socketLine
	for _, line := range strings.Split(strings.TrimSpace(stdout.String()), "\n") {
		var s socketLine
		if err := json.Unmarshal([]byte(line), &s); err != nil {
			t.Fatalf("not JSON: %q", line)
		}
		out = append(out, s)
	}
	return out
}

// TestPortsAndWho: listeners the test starts in its own namespace, found by
// pid and port, with classes from that namespace's ephemeral range.
func TestPortsAndWho(t *testing.T) {
	testnet.RequireRoot(t)
	ns := testnet.NewNS(t)
	ns.Sysctl(t, "net/ipv4/ip_local_port_range", "50000 50010")
	hold := func(comm, addr string, udp bool) *testnet.Proc {
		p := testnet.Start(t, comm, testnet.Role{Bind: true, NS: ns.Path(), Addr: addr, UDP: udp, Listen: !udp})
		if got := p.Expect(t, "bound"); got != "" {
			t.Fatalf("%s: %s", comm, got)
		}
		t.Cleanup(func() { p.Go(t) })
		return p
	}
	web := hold("ct-web", "0.0.0.0:80", false)
	mdns := hold("ct-mdns", "0.0.0.0:5353", true)
	eph := hold("ct-eph", "127.0.0.1:50005", false)

	got := runJSON(t, "ports", "--netns", ns.Path(), "-o", "json")
	want := []socketLine{
		{Proto: "tcp", State: "LISTEN", Laddr: "0.0.0.0", Lport: 80, Class: "well-known", Service: "http", Pid: web.PID, Comm: "ct-web"},
		{Proto: "udp", State: "UNCONN", Laddr: "0.0.0.0", Lport: 5353, Class: "registered", Service: "mdns", Pid: mdns.PID, Comm: "ct-mdns"},
		{Proto: "tcp", State: "LISTEN", Laddr: "127.0.0.1", Lport: 50005, Class: "ephemeral", Service: "", Pid: eph.PID, Comm: "ct-eph"},
	}
	if len(got) != len(want) {
		t.Fatalf("ports: got %+v, want %+v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("ports line %d: got %+v, want %+v", i, got[i], want[i])
		}
	}

	// who, with the flags after the port as people type them.
	if w := runJSON(t, "who", "5353", "--netns", ns.Path(), "-o", "json"); len(w) != 1 || w[0].Pid != mdns.PID || w[0].Proto != "udp" {
		t.Errorf("who 5353: %+v", w)
	}
	var stdout, stderr bytes.Buffer
	if code := run([]string{"conntrace", "who", "--netns", ns.Path(), "81"}, &stdout, &stderr); code != exitError ||
		stderr.String() != "conntrace: nothing holds port 81 (TCP or UDP)\n" {
		t.Errorf("who 81: exit %d, stderr %q", code, stderr.String())
	}
	stdout.Reset()
	if code := run([]string{"conntrace", "ports", "--netns", ns.Path()}, &stdout, &stderr); code != exitOK ||
		!strings.Contains(stdout.String(), "0.0.0.0:80/http") || !strings.Contains(stdout.String(), "ct-web") {
		t.Errorf("ports text: exit %d:\n%s", code, stdout.String())
	}
}
