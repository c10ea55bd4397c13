// SPDX-License-Identifier: Apache-2.0

package main

import (
	"encoding/json"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/conntrace/conntrace/tracer/audit"
	"github.com/conntrace/conntrace/tracer/sockets"
	"github.com/conntrace/conntrace/tracer/testnet"
)

// auditNets makes a client namespace with 20 ephemeral ports (40000-40019)
// at 198.18.0.1 and a server namespace at 198.18.0.2, joined by a veth
// pair, with a server on 198.18.0.2:9443 that accepts conns connections.
func auditNets(t *testing.T, conns int) (cliNS, srvNS *testnet.NS) {
	t.Helper()
	cliNS, srvNS = testnet.NewNS(t), testnet.NewNS(t)
	testnet.Veth(t, cliNS, []string{"198.18.0.1/24"}, srvNS, []string{"198.18.0.2/24"})
	cliNS.Sysctl(t, "net/ipv4/ip_local_port_range", "40000 40019")
	// TIME_WAIT ignores RSTs (RFC 1337). In an emulated VM a FIN can be
	// slow enough to be retransmitted after the peer has closed, and the
	// peer's RST answer would end TIME_WAIT early: the counts below would
	// change with the machine's speed.
	cliNS.Sysctl(t, "net/ipv4/tcp_rfc1337", "1")
	srv := testnet.Start(t, "ct-server", testnet.Role{Server: true, NS: srvNS.Path(), Addr: "198.18.0.2:9443", Conns: conns})
	srv.Expect(t, "listening")
	return cliNS, srvNS
}

// dumpSockets lists a namespace's TCP sockets, for failure messages.
func dumpSockets(t *testing.T, n *testnet.NS) string {
	ns, err := sockets.OpenNS(n.Path())
	if err != nil {
		return err.Error()
	}
	defer ns.Close()
	socks, err := sockets.List(ns, []string{"tcp"}, nil)
	var b strings.Builder
	for _, s := range socks {
		fmt.Fprintf(&b, "  %s %v:%d -> %v:%d %v\n", s.State, s.LAddr, s.LPort, s.RAddr, s.RPort, s.Procs)
	}
	if err != nil {
		b.WriteString(err.Error())
	}
	// Counters that say why a socket left early (aborts, TIME_WAIT
	// overflow, resets, retransmissions).
	ns.Do(func() error {
		netstat, err := os.ReadFile("/proc/thread-self/net/netstat")
		if err != nil {
			return err
		}
		snmp, err := os.ReadFile("/proc/thread-self/net/snmp")
		if err != nil {
			return err
		}
		rows := strings.Split(string(netstat)+string(snmp), "\n")
		for i := 0; i+1 < len(rows); i += 2 {
			names, values := strings.Fields(rows[i]), strings.Fields(rows[i+1])
			for j := 1; j < len(names) && j < len(values); j++ {
				if values[j] != "0" && (strings.Contains(names[j], "Abort") || strings.Contains(names[j], "TimeWait") ||
					strings.Contains(names[j], "TW") || strings.Contains(names[j], "Rst") || strings.Contains(names[j], "Retrans")) {
					fmt.Fprintf(&b, "  %s %s\n", names[j], values[j])
				}
			}
		}
		return nil
	})
	return b.String()
}

// history lists, from every report in out, the ports in use and in
// TIME_WAIT towards 198.18.0.2:port, for failure messages.
func history(out string, port uint16) string {
	var b strings.Builder
	for _, l := range strings.Split(out, "\n") {
		var rep audit.Report
		if json.Unmarshal([]byte(l), &rep) != nil {
			continue
		}
		for _, d := range rep.Destinations {
			if d.DAddr == "198.18.0.2" && d.DPort == port {
				fmt.Fprintf(&b, " %s:%d/%d", rep.Time.Format("05.000"), d.InUse, d.TimeWait)
			}
		}
	}
	return b.String()
}

// TestAudit: a client namespace with 20 ephemeral ports and a server in
// another, joined by a veth pair. A connection opened before the audit is
// counted from the snapshot; 15 held connections are 75% of the range and
// warned about, naming the process; closed, they sit in TIME_WAIT; going
// past the range fails with EADDRNOTAVAIL, counted against the process.
func TestAudit(t *testing.T) {
	cliNS, srvNS := auditNets(t, 20)
	other := testnet.Start(t, "ct-server", testnet.Role{Server: true, NS: srvNS.Path(), Addr: "198.18.0.2:9444", Conns: 1})
	other.Expect(t, "listening")
	early := testnet.Start(t, "ct-early", testnet.Role{NS: cliNS.Path(), Addr: "198.18.0.2:9444", Hold: 1})
	early.Expect(t, "ready")
	early.Expect(t, "connected")

	r := startCLI(t, "audit", "-o", "json", "--interval", "300ms")
	var lines []string
	// report waits for an interval report that satisfies ok.
	report := func(what string, ok func(*audit.Report) bool) *audit.Report {
		t.Helper()
		for deadline := time.Now().Add(15 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
			lines = strings.Split(strings.TrimSpace(r.stdout.String()), "\n")
			for i := len(lines) - 1; i >= 0; i-- {
				var rep audit.Report
				if json.Unmarshal([]byte(lines[i]), &rep) == nil && ok(&rep) {
					return &rep
				}
			}
		}
		t.Fatalf("no report with %s within 15s; last:\n%s\nstderr:\n%s\nin use/TIME_WAIT to :9443 by report time:%s\nclient sockets:\n%s\nserver sockets:\n%s",
			what, lines[len(lines)-1], r.stderr.String(), history(r.stdout.String(), 9443), dumpSockets(t, cliNS), dumpSockets(t, srvNS))
		return nil
	}
	dest := func(rep *audit.Report, port uint16) *audit.DestReport {
		for i := range rep.Destinations {
			d := &rep.Destinations[i]
			if d.SAddr == "198.18.0.1" && d.DAddr == "198.18.0.2" && d.DPort == port {
				return d
			}
		}
		return nil
	}

	// The connection from before the audit, with its process, from the
	// first snapshot.
	rep := report("the early connection", func(rep *audit.Report) bool { return dest(rep, 9444) != nil })
	if d := dest(rep, 9444); d.InUse != 1 || d.Usable != 20 || d.Opened != 0 ||
		!slices.Equal(d.Processes, []audit.ProcRef{{PID: uint32(early.PID), Comm: "ct-early"}}) {
		t.Errorf("early connection: %+v", d)
	}

	holder := testnet.Start(t, "ct-holder", testnet.Role{NS: cliNS.Path(), Addr: "198.18.0.2:9443", Hold: 15})
	holder.Expect(t, "ready")
	for range 15 {
		holder.Expect(t, "connected")
	}
	rep = report("15 in use", func(rep *audit.Report) bool { d := dest(rep, 9443); return d != nil && d.InUse == 15 })
	d := dest(rep, 9443)
	if d.UsePct != 75 || d.Peak != 15 || d.TimeWait != 0 || d.Opened != 15 ||
		!slices.Equal(d.Processes, []audit.ProcRef{{PID: uint32(holder.PID), Comm: "ct-holder"}}) {
		t.Errorf("15 held: %+v", d)
	}
	want := "198.18.0.1 -> 198.18.0.2:9443: 15 of 20 usable ephemeral ports in use at the peak (75%, over 50%) by " +
		strconv.Itoa(holder.PID) + " ct-holder: half the range or more is taken"
	if !slices.ContainsFunc(rep.Warnings, func(w string) bool { return strings.HasPrefix(w, want) }) {
		t.Errorf("warnings %q lack %q", rep.Warnings, want)
	}

	// Closed by the client first: 15 ports in TIME_WAIT, still taken.
	holder.Go(t)
	holder.Wait(t)
	rep = report("15 in TIME_WAIT", func(rep *audit.Report) bool { d := dest(rep, 9443); return d != nil && d.TimeWait == 15 })
	if d := dest(rep, 9443); d.InUse != 15 || d.TimeWaitPct != 100 || d.Closed != 15 {
		t.Errorf("after close: %+v", d)
	}

	// 5 ports are left for this destination: 3 of 8 connects fail.
	greedy := testnet.Start(t, "ct-greedy", testnet.Role{NS: cliNS.Path(), Addr: "198.18.0.2:9443", Hold: 8, MayFail: true})
	greedy.Expect(t, "ready")
	var failed int
	for range 8 {
		if line := greedy.Line(t); line == "failed EADDRNOTAVAIL" {
			failed++
		} else if line != "connected" {
			t.Fatalf("greedy: %q", line)
		}
	}
	if failed != 3 {
		t.Fatalf("%d connects failed, want 3", failed)
	}
	report("the failures", func(rep *audit.Report) bool { d := dest(rep, 9443); return d != nil && d.EADDRNOTAVAIL == 3 })
	r.cmd.Process.Signal(syscall.SIGINT)
	r.wait(t)
	greedy.Go(t)
	greedy.Wait(t)

	lines = strings.Split(strings.TrimSpace(r.stdout.String()), "\n")
	last := lines[len(lines)-1]
	t.Logf("summary: %s", last)
	var m map[string]any
	if err := json.Unmarshal([]byte(last), &m); err != nil {
		t.Fatalf("summary: %v: %s", err, last)
	}
	if got := keys(m); got != "destinations,duration_s,limits,lost,processes,ts,type,warnings" {
		t.Errorf("summary fields: %s", got)
	}
	var sum audit.Report
	json.Unmarshal([]byte(last), &sum)
	if sum.Type != "summary" || sum.Lost != 0 {
		t.Errorf("summary type %q lost %d", sum.Type, sum.Lost)
	}
	var dm map[string]any
	for _, x := range m["destinations"].([]any) {
		if x.(map[string]any)["dport"] == 9443.0 {
			dm = x.(map[string]any)
		}
	}
	if got := keys(dm); got != "closed,daddr,dport,eaddrnotavail,in_use,netns,opened,opened_per_s,peak,peak_pct,processes,saddr,short_lived_pct,time_wait,time_wait_pct,usable_ports,use_pct" {
		t.Errorf("destination fields: %s", got)
	}
	d = dest(&sum, 9443)
	if d.InUse != 20 || d.Peak != 20 || d.PeakPct != 100 || d.TimeWait != 15 || d.Opened != 20 || d.Closed != 15 || d.EADDRNOTAVAIL != 3 {
		t.Errorf("summary destination: %+v", d)
	}
	procs := map[string]audit.ProcReport{}
	for _, p := range sum.Processes {
		procs[p.Comm] = p
	}
	if p := procs["ct-greedy"]; p.PID != uint32(greedy.PID) || p.Opened != 5 || p.EADDRNOTAVAIL != 3 || p.OutsideEphemeral != 0 {
		t.Errorf("greedy: %+v", p)
	}
	if p := procs["ct-holder"]; p.Opened != 15 || p.Closed != 15 || p.AvgLifetimeMs <= 0 {
		t.Errorf("holder: %+v", p)
	}
	// The machine's other namespaces may have outbound connections too.
	i := slices.IndexFunc(sum.Limits, func(l audit.Limits) bool { return l.NetNS == d.NetNS })
	if i < 0 || sum.Limits[i] != (audit.Limits{NetNS: d.NetNS, PortRange: [2]uint16{40000, 40019}, Usable: 20, TWReuse: 2, FinTimeout: 60}) {
		t.Errorf("limits %+v, want the client namespace's", sum.Limits)
	}
	for _, want := range []string{
		"198.18.0.1 -> 198.18.0.2:9443: 20 of 20 usable ephemeral ports in use at the peak (100%, over 80%)",
		strconv.Itoa(greedy.PID) + " ct-greedy: 3 connect() calls failed with EADDRNOTAVAIL",
	} {
		if !slices.ContainsFunc(sum.Warnings, func(w string) bool { return strings.HasPrefix(w, want) }) {
			t.Errorf("summary warnings %q lack %q", sum.Warnings, want)
		}
	}
	early.Go(t)
}

// TestAuditText: the text summary has the tables and the warning lines.
func TestAuditText(t *testing.T) {
	cliNS, _ := auditNets(t, 12)

	r := startCLI(t, "audit", "--port", "9443")
	holder := testnet.Start(t, "ct-holder", testnet.Role{NS: cliNS.Path(), Addr: "198.18.0.2:9443", Hold: 12})
	holder.Expect(t, "ready")
	for range 12 {
		holder.Expect(t, "connected")
	}
	time.Sleep(600 * time.Millisecond) // two snapshots
	r.cmd.Process.Signal(syscall.SIGINT)
	r.wait(t)
	holder.Go(t)
	out := r.stdout.String()
	t.Logf("conntrace audit --port 9443:\n%s", out)
	for _, want := range []string{
		"conntrace audit summary after ",
		"EPHEMERAL RANGE", "40000-40019", "DESTINATION", "198.18.0.1 -> 198.18.0.2:9443",
		"60% (peak 60%)", strconv.Itoa(holder.PID) + " ct-holder",
		"WARNING: 198.18.0.1 -> 198.18.0.2:9443: 12 of 20 usable ephemeral ports in use at the peak (60%, over 50%) by " + strconv.Itoa(holder.PID) + " ct-holder",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("audit text lacks %q:\n%s", want, out)
		}
	}
}

// TestAuditBinds: bind(port 0) before connect() is counted and warned
// about, unless IP_BIND_ADDRESS_NO_PORT defers the port to connect(); a
// source port bound outside the ephemeral range is counted.
func TestAuditBinds(t *testing.T) {
	cliNS, _ := auditNets(t, 5)

	r := startCLI(t, "audit", "-o", "json", "--port", "9443")
	pids := map[string]int{}
	for _, c := range []struct {
		comm string
		role testnet.Role
	}{
		{"ct-bind0", testnet.Role{Hold: 2, BindAddr: "0.0.0.0:0"}},
		{"ct-noport", testnet.Role{Hold: 2, BindAddr: "0.0.0.0:0", NoPort: true}},
		{"ct-fixed", testnet.Role{Hold: 1, BindAddr: "198.18.0.1:30000"}},
	} {
		c.role.NS, c.role.Addr = cliNS.Path(), "198.18.0.2:9443"
		p := testnet.Start(t, c.comm, c.role)
		pids[c.comm] = p.PID
		p.Expect(t, "ready")
		for range c.role.Hold {
			p.Expect(t, "connected")
		}
		defer p.Go(t)
	}
	time.Sleep(300 * time.Millisecond)
	r.cmd.Process.Signal(syscall.SIGINT)
	r.wait(t)

	lines := strings.Split(strings.TrimSpace(r.stdout.String()), "\n")
	var sum audit.Report
	if err := json.Unmarshal([]byte(lines[len(lines)-1]), &sum); err != nil {
		t.Fatalf("summary: %v\n%s", err, r.stdout.String())
	}
	got := map[string]audit.ProcReport{}
	for _, p := range sum.Processes {
		got[p.Comm] = p
	}
	for comm, want := range map[string]struct{ opened, bound0, outside int }{
		"ct-bind0": {2, 2, 0}, "ct-noport": {2, 0, 0}, "ct-fixed": {1, 0, 1}} {
		p := got[comm]
		if int(p.PID) != pids[comm] || p.Opened != want.opened || p.BoundPort0 != want.bound0 || p.OutsideEphemeral != want.outside {
			t.Errorf("%s: %+v, want opened %d, bound_port0 %d, outside_ephemeral %d", comm, p, want.opened, want.bound0, want.outside)
		}
	}
	want := strconv.Itoa(pids["ct-bind0"]) + " ct-bind0: 2 connections bound to port 0 before connect()"
	if !slices.ContainsFunc(sum.Warnings, func(w string) bool { return strings.HasPrefix(w, want) }) || len(sum.Warnings) != 1 {
		t.Errorf("warnings %q, want only %q...", sum.Warnings, want)
	}
}
