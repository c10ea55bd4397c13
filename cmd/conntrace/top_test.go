// SPDX-License-Identifier: Apache-2.0

package main

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/conntrace/conntrace/tracer/testnet"
)

// topTraffic is known traffic in a network namespace of its own, from
// named processes: ct-topsrv listens on 127.0.0.1:port and serves three
// connections of ct-topcli (1,000 bytes up, 3,000 down each); ct-refused
// is refused on port+1; ct-binder fails twice to bind the server's
// address. 16 events: listen, 3 connects, 3 accepts, 6 closes, a
// connect_fail, two bind_fails.
func topTraffic(t *testing.T, port int) {
	t.Helper()
	ns := testnet.NewNS(t)
	addr := "127.0.0.1:" + strconv.Itoa(port)
	srv := testnet.Start(t, "ct-topsrv", testnet.Role{Server: true, NS: ns.Path(), Addr: addr, Conns: 3, Send: 3000, Recv: 1000})
	srv.Expect(t, "listening")
	cli := testnet.Start(t, "ct-topcli", testnet.Role{NS: ns.Path(), Addr: addr, Repeat: 3, Send: 1000, Recv: 3000})
	cli.Expect(t, "ready")
	cli.Wait(t)
	srv.Wait(t)
	refused := testnet.Start(t, "ct-refused", testnet.Role{NS: ns.Path(), Addr: "127.0.0.1:" + strconv.Itoa(port+1), MayFail: true})
	refused.Expect(t, "ready")
	refused.Expect(t, "failed ECONNREFUSED")
	refused.Wait(t)
	// The listener is gone with its server: the binder needs one.
	hold := testnet.Start(t, "ct-topsrv", testnet.Role{Bind: true, Listen: true, NS: ns.Path(), Addr: addr})
	hold.Expect(t, "bound")
	binder := testnet.Start(t, "ct-binder", testnet.Role{Bind: true, NS: ns.Path(), Addr: addr, Repeat: 2})
	binder.Expect(t, "failed EADDRINUSE 2")
	binder.Wait(t)
	// Who holds the port is looked up beside the reader: the holder
	// stays until then.
	time.Sleep(time.Second)
	hold.Go(t)
	hold.Wait(t)
}

// topEvents is what topTraffic makes: its first listener's listen, the
// second's, and the rest.
const topEvents = 17

// TestTopOutputs: two runs of top watch the same traffic, one with -o
// json, one printing text (no terminal).
func TestTopOutputs(t *testing.T) {
	js := startCLI(t, "top", "-o", "json", "--interval", "300ms", "--port", "9460,9461")
	text := startCLI(t, "top", "--interval", "300ms", "--port", "9460,9461", "--rows", "1")
	topTraffic(t, 9460)
	// The run's end prints the interval it ended in.
	for _, r := range []*cliRun{js, text} {
		r.cmd.Process.Signal(os.Interrupt)
	}
	for _, r := range []*cliRun{js, text} {
		r.wait(t)
	}
	t.Run("json", func(t *testing.T) { checkTopJSON(t, js) })
	t.Run("batch", func(t *testing.T) { checkTopBatch(t, text) })
}

// checkTopJSON: -o json is one object per interval with the contract's
// fields, and one more for the interval the run ended in; the totals of
// the last one are the traffic's, exactly, and the intervals' events add
// up to every event.
func checkTopJSON(t *testing.T, r *cliRun) {

	lines := strings.Split(strings.TrimSuffix(r.stdout.String(), "\n"), "\n")
	if len(lines) < 2 {
		t.Fatalf("want an object per interval, got:\n%s", r.stdout.String())
	}
	type obj = map[string]any
	var last obj
	var events float64
	for _, l := range lines {
		var o obj
		if err := json.Unmarshal([]byte(l), &o); err != nil {
			t.Fatalf("not JSON: %v\n%s", err, l)
		}
		if got := keys(o); got != "containers,ephemeral,events,events_per_s,failures,hooks,interval_s,listeners,lost,other_events,peers,processes,ts" {
			t.Fatalf("keys %s", got)
		}
		events += o["events"].(float64)
		last = o
	}
	if events != topEvents || last["lost"] != 0.0 || last["other_events"] != 0.0 {
		t.Errorf("events %v (want %d), lost %v, other %v", events, topEvents, last["lost"], last["other_events"])
	}
	rows := func(table string) []obj {
		var out []obj
		for _, r := range last[table].([]any) {
			out = append(out, r.(obj))
		}
		return out
	}
	find := func(table, field, value string) obj {
		for _, r := range rows(table) {
			if fmt.Sprint(r[field]) == value {
				return r
			}
		}
		t.Fatalf("no %s row with %s %s in %v", table, field, value, rows(table))
		return nil
	}
	figures := "active,comm,connections,failures,failures_per_s,in_per_s,latency_p50_us,latency_p99_us,out_per_s,pid,retransmits,rx_bytes,rx_bytes_per_s,tx_bytes,tx_bytes_per_s"
	cli := find("processes", "comm", "ct-topcli")
	if got := keys(cli); got != figures {
		t.Errorf("process keys %s", got)
	}
	if cli["connections"] != 3.0 || cli["active"] != 0.0 || cli["tx_bytes"] != 3000.0 || cli["rx_bytes"] != 9000.0 || cli["failures"] != 0.0 ||
		cli["latency_p50_us"] == nil || cli["in_per_s"] != 0.0 || cli["out_per_s"] != 0.0 {
		t.Errorf("ct-topcli: %v", cli)
	}
	srv := find("processes", "comm", "ct-topsrv")
	if srv["connections"] != 3.0 || srv["tx_bytes"] != 9000.0 || srv["rx_bytes"] != 3000.0 || srv["latency_p50_us"] != nil {
		t.Errorf("ct-topsrv: %v", srv)
	}
	ref := find("processes", "comm", "ct-refused")
	if ref["failures"] != 1.0 || ref["connections"] != 0.0 || fmt.Sprint(ref["errors"]) != "map[ECONNREFUSED:1]" {
		t.Errorf("ct-refused: %v", ref)
	}
	if len(rows("processes")) != 3 || len(rows("containers")) != 0 {
		t.Errorf("processes %v, containers %v", rows("processes"), rows("containers"))
	}

	// Peers: 127.0.0.1:9460 out, 127.0.0.1 in to :9460, 127.0.0.1:9461 refused.
	if p := rows("peers"); len(p) != 3 {
		t.Fatalf("peers %v", p)
	}
	for _, p := range rows("peers") {
		want := map[string]string{"out 9460": "3 0", "in 9460": "3 0", "out 9461": "0 1"}[fmt.Sprint(p["direction"], " ", p["port"])]
		if got := fmt.Sprint(p["connections"], " ", p["failures"]); p["raddr"] != "127.0.0.1" || p["proto"] != "tcp" || got != want {
			t.Errorf("peer %v: connections and failures %s, want %q", p, got, want)
		}
	}

	fails := rows("failures")
	if len(fails) != 2 {
		t.Fatalf("failures %v", fails)
	}
	if f := fails[0]; keys(f) != "addr,comm,count,error,event,explain,first,last,per_s,pid,port,proto" ||
		f["event"] != "bind_fail" || f["comm"] != "ct-binder" || f["count"] != 2.0 || f["error"] != "EADDRINUSE" || f["port"] != 9460.0 ||
		!strings.HasPrefix(f["explain"].(string), "EADDRINUSE: 127.0.0.1:9460 is held by ") || !strings.Contains(f["explain"].(string), "ct-topsrv (LISTEN)") {
		t.Errorf("failure 0: %v", f)
	}
	if f := fails[1]; f["event"] != "connect_fail" || f["comm"] != "ct-refused" || f["count"] != 1.0 || f["error"] != "ECONNREFUSED" ||
		f["addr"] != "127.0.0.1" || f["port"] != 9461.0 || !strings.HasPrefix(f["explain"].(string), "ECONNREFUSED: nothing listens on 127.0.0.1:9461") {
		t.Errorf("failure 1: %v", f)
	}
	l := find("listeners", "lport", "9460")
	if keys(l) != "accepts,accepts_per_s,active,comm,laddr,listen_seen,lport,pid,proto,queue_full" ||
		l["comm"] != "ct-topsrv" || l["accepts"] != 3.0 || l["active"] != 0.0 || l["listen_seen"] != true || l["laddr"] != "127.0.0.1" {
		t.Errorf("listener: %v", l)
	}
	if !strings.Contains(r.stderr.String(), fmt.Sprintf("conntrace: %d events, 0 lost", topEvents)) {
		t.Errorf("stderr:\n%s", r.stderr.String())
	}
}

// checkTopBatch: without a terminal, top prints its tables as text every
// interval (--batch not needed), escape-free; --rows cuts each table.
func checkTopBatch(t *testing.T, r *cliRun) {
	out := r.stdout.String()
	if strings.ContainsAny(out, "\x1b\r") {
		t.Errorf("terminal codes in the output:\n%q", out)
	}
	// A block per interval, each from its header line to a blank line.
	blocks := regexp.MustCompile(`(?m)^conntrace top `).Split(out, -1)
	if len(blocks) < 3 || blocks[0] != "" || !strings.HasSuffix(out, "\n\n") {
		t.Fatalf("want a block per interval:\n%s", out)
	}
	last := "conntrace top " + blocks[len(blocks)-1]
	for _, re := range []string{
		`(?m)^conntrace top \d\d:\d\d:\d\d  interval \d+\.\d\ds  events \d+ \(\S+/s\)  lost 0  hooks (fentry|kprobe|tracepoint)$`,
		`(?m)^PROCESSES \(1 of 3\)\n *PID +COMM +CONTAINER +IN/S +OUT/S +ACTIVE +FAIL/S +ERRORS +TX/S +RX/S +RETRANS +P50 +P99\n *\d+  ct-\w+ +-  `,
		`(?m)^FAILURES \(1 of 2\)\nCOUNT +PER/S +LAST +PID +COMM +EVENT +PEER +ERROR +EXPLANATION\n    2      0  \d\d:\d\d:\d\d +\d+  ct-binder  bind_fail  127\.0\.0\.1:9460  EADDRINUSE  EADDRINUSE: 127\.0\.0\.1:9460 is held by \d+ ct-topsrv \(LISTEN\)\n`,
		`(?m)^LISTENERS\nPORT +PROTO +ADDRESS +PID +COMM +CONTAINER +ACCEPTS/S +ACCEPTS +ACTIVE +QUEUE FULL\n9460  tcp    127\.0\.0\.1 +\d+  ct-topsrv  -  +0  +3  +0  +0\n`,
		`(?m)^PEERS \(1 of 3\)\n`,
	} {
		if !regexp.MustCompile(re).MatchString(last) {
			t.Errorf("the last interval does not match %s:\n%s", re, last)
		}
	}
}

// tmux runs a terminal of its own (a server of the test's) for the
// full-screen view.
type tmux struct {
	t      *testing.T
	socket string
}

func (m *tmux) run(args ...string) string {
	m.t.Helper()
	out, err := exec.Command("tmux", append([]string{"-L", m.socket}, args...)...).CombinedOutput()
	if err != nil {
		m.t.Fatalf("tmux %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

func (m *tmux) screen() string { return m.run("capture-pane", "-p", "-t", "top") }

// key sends keys one at a time, letting each be read alone (an escape
// followed at once by a key reads as alt+key).
func (m *tmux) key(keys ...string) {
	m.t.Helper()
	for _, k := range keys {
		m.run("send-keys", "-t", "top", k)
		time.Sleep(150 * time.Millisecond)
	}
}

// waitFor waits until the screen matches every pattern.
func (m *tmux) waitFor(what string, patterns ...string) string {
	m.t.Helper()
	var s string
	for deadline := time.Now().Add(15 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		s = m.screen()
		if !slices.ContainsFunc(patterns, func(p string) bool { return !regexp.MustCompile(p).MatchString(s) }) {
			return s
		}
	}
	for _, p := range patterns {
		if !regexp.MustCompile(p).MatchString(s) {
			m.t.Errorf("%s: the screen does not match %s", what, p)
		}
	}
	m.t.Fatalf("%s: the screen:\n%s", what, s)
	return ""
}

// TestTopTerminal: top in a real terminal (tmux) draws the traffic's rows
// in each view; keys switch views, sort, filter, open a row's events,
// pause, and q quits with status 0 and the terminal restored.
func TestTopTerminal(t *testing.T) {
	testnet.RequireRoot(t)
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	ready, status := filepath.Join(dir, "ready"), filepath.Join(dir, "status")
	m := &tmux{t: t, socket: "conntrace-test-" + strconv.Itoa(os.Getpid())}
	t.Cleanup(func() { exec.Command("tmux", "-L", m.socket, "kill-server").Run() })
	// The shell stays after top exits, showing what top left on the
	// terminal.
	cmd := fmt.Sprintf("env %s=1 %s top --interval 300ms --port 9464,9465 --ready-file %s; echo status=$? > %s; exec sleep 60",
		asMainEnv, exe, ready, status)
	m.run("new-session", "-d", "-s", "top", "-x", "200", "-y", "40", cmd)
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if _, err := os.Stat(ready); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("top not ready within 30s:\n%s", m.screen())
		}
	}
	topTraffic(t, 9464)

	// Processes: each of the traffic's, ct-refused with its failure.
	m.waitFor("processes",
		`(?m)^conntrace top \d\d:\d\d:\d\d  interval \d+\.\d\ds  events \d+ \(\S+/s\)  lost 0  hooks \w+`,
		`(?m)^ 1 processes   2 peers   3 failures   4 ports`,
		`(?m)^ *PID +COMM +CONTAINER +IN/S +OUT/S +ACTIVE +FAIL/S +ERRORS +TX/S +RX/S +RETRANS +P50 +P99 +LAST MINUTE \(CONN/S\)`,
		`(?m)^ *\d+  ct-topcli  +-  .*  -  +0  +0  +0  +\d+µs`,
		`(?m)^ *\d+  ct-topsrv  +-  `,
		`(?m)^ *\d+  ct-refused  +-  +0  +0  +0  +0  ECONNREFUSED:1 `)
	m.key("2")
	m.waitFor("peers",
		`(?m)^PEER +DIR +PROTO +NAME +IN/S`,
		`(?m)^127\.0\.0\.1:9464  +out  tcp  `,
		`(?m)^127\.0\.0\.1 -> :9464  +in  +tcp  `,
		`(?m)^127\.0\.0\.1:9465  +out  tcp  .*ECONNREFUSED:1 `)
	m.key("3")
	m.waitFor("failures",
		`(?m)^COUNT +PER/S +LAST +PID +COMM +EVENT +PEER +ERROR +LAST MINUTE \(FAILURES/S\) +EXPLANATION`,
		`(?m)^    2 +0  \d\d:\d\d:\d\d +\d+  ct-binder +bind_fail +127\.0\.0\.1:9464 +EADDRINUSE .* EADDRINUSE: 127\.0\.0\.1:9464 is held by \d+ ct-topsrv \(LISTEN\)`,
		`(?m)^    1 +0  \d\d:\d\d:\d\d +\d+  ct-refused +connect_fail +127\.0\.0\.1:9465 +ECONNREFUSED .* ECONNREFUSED: nothing listens on 127\.0\.0\.1:9465`)
	// The second row's events: the refusal, as watch prints it.
	m.key("Down", "Enter")
	m.waitFor("a row's events",
		`(?m)^events of connect_fail ECONNREFUSED of \d+ ct-refused at 127\.0\.0\.1:9465 \(newest last; esc: back\)`,
		`(?m)^\d\d:\d\d:\d\d\.\d{6} connect_fail \d+ +ct-refused +127\.0\.0\.1:\d+ +-> +127\.0\.0\.1:9465 +conn=\d+ uid=0 ECONNREFUSED: nothing listens`)
	m.key("Escape", "4")
	m.waitFor("ports",
		`(?m)^PORT +PROTO +ADDRESS +PID +COMM +CONTAINER +ACCEPTS/S +ACCEPTS +ACTIVE +QUEUE FULL +LAST MINUTE \(ACCEPTS/S\)`,
		`(?m)^9464  tcp    127\.0\.0\.1 +\d+  ct-topsrv  -  +0  +3  +0  +0`,
		`(?m)^EPHEMERAL PORTS PER DESTINATION\nSOURCE +DESTINATION +IN USE +USABLE +USE% +PEAK%`,
		`(?m)^127\.0\.0\.1 +127\.0\.0\.1:9464 +3 +\S+ +0\.0 +0\.0 +3 `)
	// Containers: none here.
	m.key("1", "c")
	m.waitFor("containers", `(?m)^ 1 containers +2 peers`, `(?m)^CONTAINER +ID +IN/S +OUT/S`, `(?m)^  \(none yet\)$`)
	// Sort the processes by COMM (the second column), then the other way.
	m.key("c", "Right", "Right")
	m.waitFor("sorted by COMM", `(?m)^ *PID  COMM↑ `, `(?s)ct-refused.*ct-topcli.*ct-topsrv`)
	m.key("r")
	m.waitFor("sorted by COMM, reversed", `(?m)^ *PID  COMM↓ `, `(?s)ct-topsrv.*ct-topcli.*ct-refused`)
	m.key("/", "r", "e", "f", "Enter")
	s := m.waitFor("filtered", `(?m)^ 1 processes   2 peers   3 failures   4 ports +filter: ref$`, `ct-refused`)
	if strings.Contains(s, "ct-topcli") || strings.Contains(s, "ct-topsrv") {
		t.Errorf("the filter left other rows:\n%s", s)
	}
	m.key("p")
	m.waitFor("paused", `(?m)^conntrace top .*  PAUSED$`)
	m.key("q")
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		if data, err := os.ReadFile(status); err == nil {
			if string(data) != "status=0\n" {
				t.Errorf("top exited with %q", data)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("top did not exit on q:\n%s", m.screen())
		}
	}
	// The terminal is back: no alternate screen, and what top printed on
	// stderr around the view, with every event counted.
	if alt := strings.TrimSpace(m.run("display-message", "-p", "-t", "top", "#{alternate_on}")); alt != "0" {
		t.Errorf("alternate screen still on: %s", alt)
	}
	s = m.screen()
	if strings.Contains(s, "1 processes") || !strings.Contains(s, fmt.Sprintf("conntrace: %d events, 0 lost", topEvents)) {
		t.Errorf("the terminal after q:\n%s", s)
	}
}

// TestTopContainers: real containers (podman, busybox) on a network of
// the test's own: httpd in one serves wget in another, which then is
// refused on another port. The containers table has each, by name, and
// the processes and failures name theirs.
func TestTopContainers(t *testing.T) {
	b := testnet.NewBusybox(t)
	suffix := strconv.Itoa(os.Getpid())
	web, get := "ct-topweb-"+suffix, "ct-topget-"+suffix
	r := startCLI(t, "top", "-o", "json", "--interval", "300ms", "--port", "18090,18091")
	b.Start(web, b.Subnet+".2", "/bin/httpd", "-f", "-p", "18090", "-h", "/www")
	url := "http://" + b.Subnet + ".2:18090/index.html"
	if out := b.Once(get, b.Subnet+".3", "/bin/sh", "-c", "wget -q -O - "+url+"; wget -q -O - http://"+b.Subnet+".2:18091/ || true"); out != "hello" {
		t.Fatalf("wget: %q", out)
	}
	r.cmd.Process.Signal(os.Interrupt)
	r.wait(t)
	lines := strings.Split(strings.TrimSuffix(r.stdout.String(), "\n"), "\n")
	var last struct {
		Containers []struct {
			Container             string
			ID                    string `json:"container_id"`
			Connections, Failures float64
		}
		Processes []struct {
			Comm, Container       string
			Connections, Failures float64
		}
		Failures []struct {
			Comm, Container, Event, Error string
			Count                         float64
		}
	}
	if err := json.Unmarshal([]byte(lines[len(lines)-1]), &last); err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, c := range last.Containers {
		got[c.Container] = fmt.Sprint(c.Connections, " ", c.Failures, " ", len(c.ID))
	}
	if want := map[string]string{web: "1 0 64", get: "1 1 64"}; fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("containers (connections, failures, id length) %v, want %v", got, want)
	}
	// The refused wget is a process of its own: same name, another pid.
	var procs []string
	for _, p := range last.Processes {
		procs = append(procs, fmt.Sprint(p.Comm, " ", p.Container, " ", p.Connections, " ", p.Failures))
	}
	slices.Sort(procs)
	if want := []string{"httpd " + web + " 1 0", "wget " + get + " 0 1", "wget " + get + " 1 0"}; !slices.Equal(procs, want) {
		t.Errorf("processes (name, container, connections, failures) %q, want %q", procs, want)
	}
	if len(last.Failures) != 1 || last.Failures[0].Comm != "wget" || last.Failures[0].Container != get || last.Failures[0].Error != "ECONNREFUSED" || last.Failures[0].Count != 1 {
		t.Errorf("failures %+v", last.Failures)
	}
}

// TestTopDNS: real lookups (dnsmasq in a namespace of its own): the peer
// a name resolved to carries the name, and a name that does not exist is
// a failure of its own, named, with dnsmasq's answer explained.
func TestTopDNS(t *testing.T) {
	n := testnet.NewDNSNet(t, "--host-record=api.test.example,198.18.0.10")
	r := startCLI(t, "top", "-o", "json", "--interval", "300ms", "--port", "53,8053")
	for _, c := range []struct{ comm, name, want string }{{"ct-resolver", "api.test.example", "198.18.0.10"}, {"ct-typo", "nope.test.example", ""}} {
		p := testnet.Start(t, c.comm, testnet.Role{NS: n.Cli.Path(), DNS: "198.18.0.2:53", Addr: c.name + ":8053", Send: 4, Recv: 4,
			MayFail: c.want == "", Timeout: 2 * time.Second})
		p.Expect(t, "ready")
		if c.want == "" {
			p.Expect(t, "failed")
		} else if got := p.Expect(t, "resolved"); got != c.want {
			t.Fatalf("resolved %q, want %q", got, c.want)
		}
		if c.want != "" {
			p.Expect(t, "connected")
		}
		p.Wait(t)
	}
	n.Service.Wait(t)
	r.cmd.Process.Signal(os.Interrupt)
	r.wait(t)
	lines := strings.Split(strings.TrimSuffix(r.stdout.String(), "\n"), "\n")
	var last struct {
		Peers []struct {
			Addr        string `json:"raddr"`
			Port        int
			Direction   string
			Name        string `json:"rname"`
			Connections int
		}
		Failures []struct {
			Comm, Event, Addr, Name, Error, Explain string
			Port, Count                             int
		}
	}
	if err := json.Unmarshal([]byte(lines[len(lines)-1]), &last); err != nil {
		t.Fatal(err)
	}
	var peers []string
	for _, p := range last.Peers {
		peers = append(peers, fmt.Sprint(p.Addr, ":", p.Port, " ", p.Direction, " ", p.Name, " ", p.Connections))
	}
	slices.Sort(peers)
	// Both ends of each: the lookups' flows (UDP) to dnsmasq, and the
	// connection to the service.
	want := []string{"198.18.0.1:53 in  2", "198.18.0.1:8053 in  1", "198.18.0.10:8053 out api.test.example 1", "198.18.0.2:53 out  2"}
	slices.Sort(want)
	if !slices.Equal(peers, want) {
		t.Errorf("peers (address, direction, name, connections) %q, want %q", peers, want)
	}
	if len(last.Failures) != 1 {
		t.Fatalf("failures %+v", last.Failures)
	}
	if f := last.Failures[0]; f.Comm != "ct-typo" || f.Event != "dns" || f.Name != "nope.test.example" || f.Error != "NXDOMAIN" ||
		f.Addr != "198.18.0.2" || f.Port != 53 || f.Count != 1 || !strings.HasPrefix(f.Explain, "NXDOMAIN: 198.18.0.2:53 says nope.test.example does not exist") {
		t.Errorf("failure %+v", f)
	}
}
