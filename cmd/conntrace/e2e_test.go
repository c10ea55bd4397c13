// SPDX-License-Identifier: Apache-2.0

package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/conntrace/conntrace/tracer/testnet"
)

type cliRun struct {
	cmd            *exec.Cmd
	stdout, stderr bytes.Buffer
	ready          string
	exited         chan error
}

// cliCommand is conntrace with args: the test binary acting as main.
func cliCommand(t *testing.T, args ...string) *exec.Cmd {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(exe, args...)
	cmd.Env = append(os.Environ(), asMainEnv+"=1")
	return cmd
}

// startCLI runs conntrace with args plus --ready-file and waits until it
// has attached.
func startCLI(t *testing.T, args ...string) *cliRun {
	t.Helper()
	return startCmd(t, func(*exec.Cmd) {}, args...)
}

// startCmd is startCLI with a hook to change the command before it starts.
func startCmd(t *testing.T, setup func(*exec.Cmd), args ...string) *cliRun {
	t.Helper()
	testnet.RequireRoot(t)
	r := &cliRun{ready: filepath.Join(t.TempDir(), "ready"), exited: make(chan error, 1)}
	if len(args) > 0 && (args[0] == "watch" || args[0] == "top") && os.Getenv("CONNTRACE_EMULATED") != "" {
		// An emulated CPU takes more than the default 500 ms for a
		// lookup now and then; the tests check what it finds.
		args = append(args, "--lookup-wait", "30s")
	}
	r.cmd = cliCommand(t, append(args, "--ready-file", r.ready)...)
	r.cmd.Stdout, r.cmd.Stderr = &r.stdout, &r.stderr
	setup(r.cmd)
	if err := r.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { r.exited <- r.cmd.Wait() }()
	t.Cleanup(func() { r.cmd.Process.Kill() })
	// Loading takes well under a second here; an emulated CPU on a busy
	// host (vmtest) has taken over 10 s for the first load after boot.
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		if data, err := os.ReadFile(r.ready); err == nil && string(data) == "ready\n" {
			return r
		}
		select {
		case err := <-r.exited:
			t.Fatalf("conntrace exited before it was ready: %v\n%s", err, r.stderr.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("conntrace not ready within 30s:\n%s", r.stderr.String())
		}
	}
}

// wait waits for the exit and requires status 0, and the ready file gone.
func (r *cliRun) wait(t *testing.T) {
	t.Helper()
	select {
	case err := <-r.exited:
		if err != nil {
			t.Fatalf("conntrace: %v\nstderr:\n%s", err, r.stderr.String())
		}
	case <-time.After(15 * time.Second):
		t.Fatalf("conntrace did not exit within 15s\nstderr:\n%s", r.stderr.String())
	}
	if _, err := os.Lstat(r.ready); err == nil {
		t.Errorf("the ready file %s is left behind", r.ready)
	}
}

// exchange runs one client/server connection in ns on 127.0.0.1:port.
func exchange(t *testing.T, ns *testnet.NS, addr string) (srv, cli *testnet.Proc) {
	t.Helper()
	srv = testnet.Start(t, "ct-server", testnet.Role{Server: true, NS: ns.Path(), Addr: addr, Conns: 1, Send: 3000, Recv: 10000})
	srv.Expect(t, "listening")
	cli = testnet.Start(t, "ct-client", testnet.Role{NS: ns.Path(), Addr: addr, Send: 10000, Recv: 3000, Pause: 100 * time.Millisecond})
	cli.Expect(t, "ready")
	cli.Expect(t, "connected")
	cli.Wait(t)
	srv.Wait(t)
	return srv, cli
}

func keys(m map[string]any) string {
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return strings.Join(ks, ",")
}

// TestWatchJSON: -o json on real traffic is the contract, field for field;
// --count ends the run by itself with exit 0 and a summary.
func TestWatchJSON(t *testing.T) {
	ns := testnet.NewNS(t)
	r := startCLI(t, "watch", "-o", "json", "--port", "9443", "--count", "5")
	srv, cli := exchange(t, ns, "127.0.0.1:9443")
	r.wait(t)

	lines := strings.Split(strings.TrimSuffix(r.stdout.String(), "\n"), "\n")
	if len(lines) != 5 {
		t.Fatalf("want 5 JSON lines, got %d:\n%s", len(lines), r.stdout.String())
	}
	const common = "comm,event,family,laddr,lport,pid,proto,ts,uid"
	wantKeys := map[string]string{
		"listen":  common,
		"connect": "comm,conn_id,direction,event,family,laddr,latency_us,lport,pid,proto,raddr,rport,ts,uid",
		"accept":  "comm,conn_id,direction,event,family,laddr,lport,pid,proto,raddr,rport,ts,uid",
		"close":   "comm,conn_id,direction,duration_ms,event,family,laddr,lport,pid,proto,raddr,reason,retransmits,rport,rx_bytes,srtt_us,ts,tx_bytes,uid",
	}
	seen := map[string]int{}
	for _, line := range lines {
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("not JSON: %q: %v", line, err)
		}
		ev, _ := m["event"].(string)
		seen[ev]++
		if got := keys(m); got != wantKeys[ev] {
			t.Errorf("%s fields: %s, want %s", ev, got, wantKeys[ev])
		}
		ts, err := time.Parse(time.RFC3339Nano, m["ts"].(string))
		if err != nil || time.Since(ts) > time.Minute || time.Since(ts) < -time.Second {
			t.Errorf("ts %v: %v", m["ts"], err)
		}
		if m["proto"] != "tcp" || m["family"] != "ipv4" || m["uid"] != 0.0 {
			t.Errorf("proto/family/uid in %s", line)
		}
		pid, comm := srv.PID, "ct-server"
		if m["direction"] == "out" {
			pid, comm = cli.PID, "ct-client"
		}
		if int(m["pid"].(float64)) != pid || m["comm"] != comm {
			t.Errorf("%s: pid/comm %v/%v, want %d/%s", ev, m["pid"], m["comm"], pid, comm)
		}
		if ev == "close" {
			tx, rx := 3000.0, 10000.0
			if m["direction"] == "out" {
				tx, rx = rx, tx
			}
			if m["tx_bytes"] != tx || m["rx_bytes"] != rx || m["duration_ms"].(float64) < 100 || m["reason"] != "fin" {
				t.Errorf("close: %s", line)
			}
		}
	}
	if seen["listen"] != 1 || seen["connect"] != 1 || seen["accept"] != 1 || seen["close"] != 2 {
		t.Errorf("events: %v", seen)
	}
	if !strings.Contains(r.stderr.String(), "conntrace: 5 events, 0 lost") {
		t.Errorf("no summary on stderr:\n%s", r.stderr.String())
	}
}

// TestWatchSIGINT: Ctrl-C detaches, flushes what was seen, prints the
// summary and exits 0.
func TestWatchSIGINT(t *testing.T) {
	ns := testnet.NewNS(t)
	r := startCLI(t, "watch", "--port", "9443")
	exchange(t, ns, "127.0.0.1:9443")
	time.Sleep(200 * time.Millisecond) // let the last close arrive
	r.cmd.Process.Signal(syscall.SIGINT)
	r.wait(t)

	out := r.stdout.String()
	if n := strings.Count(out, "\n"); n != 6 || !strings.HasPrefix(out, "TIME ") {
		t.Errorf("want the header and 5 event lines, got:\n%s", out)
	}
	for _, w := range []string{"listen ", "connect ", "accept ", "close ", "127.0.0.1:9443", "ct-client", "ct-server", "tx=10000 rx=3000", "tx=3000 rx=10000"} {
		if !strings.Contains(out, w) {
			t.Errorf("text output lacks %q:\n%s", w, out)
		}
	}
	if !strings.Contains(r.stderr.String(), "conntrace: 5 events, 0 lost") {
		t.Errorf("no summary on stderr:\n%s", r.stderr.String())
	}
}

// TestWatchDuration: --duration ends the run by itself.
func TestWatchDuration(t *testing.T) {
	start := time.Now()
	r := startCLI(t, "watch", "--duration", "500ms", "--port", "1")
	r.wait(t)
	if d := time.Since(start); d < 500*time.Millisecond {
		t.Errorf("exited after %v, before --duration", d)
	}
	if !strings.Contains(r.stderr.String(), "conntrace: 0 events, 0 lost") {
		t.Errorf("stderr:\n%s", r.stderr.String())
	}
}

// TestWatchWithoutRoot: an unprivileged user gets one line saying what is
// missing, and exit 1.
func TestWatchWithoutRoot(t *testing.T) {
	code, _, stderr := runAsNobody(t, "watch", "--port", "443")
	if code != exitError {
		t.Fatalf("exit %d, want %d; stderr %q", code, exitError, stderr)
	}
	if stderr != "conntrace: this needs root: run it with sudo (or grant CAP_BPF and CAP_PERFMON)\n" {
		t.Errorf("stderr %q", stderr)
	}
}

// runAsNobody runs conntrace as user nobody and returns its exit status and
// output.
func runAsNobody(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	testnet.RequireRoot(t) // to switch to nobody
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	// A copy that nobody may execute (the test binary's own folder is 0700).
	dir, err := os.MkdirTemp("", "conntrace-nobody")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	bin := filepath.Join(dir, "conntrace")
	data, err := os.ReadFile(exe)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(bin, data, 0o755); err != nil {
		t.Fatal(err)
	}
	os.Chmod(dir, 0o755)

	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), asMainEnv+"=1")
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err = cmd.Run()
	var ee *exec.ExitError
	if err != nil && !errors.As(err, &ee) {
		t.Fatal(err)
	}
	return cmd.ProcessState.ExitCode(), out.String(), errOut.String()
}

// TestWatchFailures: --failures shows the refused connection, explained,
// and nothing of a connection that worked.
func TestWatchFailures(t *testing.T) {
	ns := testnet.NewNS(t)
	r := startCLI(t, "watch", "--failures", "--port", "9444", "--port", "9443", "--count", "1")
	exchange(t, ns, "127.0.0.1:9443")
	cli := testnet.Start(t, "ct-client", testnet.Role{NS: ns.Path(), Addr: "127.0.0.1:9444", MayFail: true, Blocking: true})
	cli.Expect(t, "ready")
	cli.Expect(t, "failed")
	cli.Wait(t)
	r.wait(t)
	lines := strings.Split(strings.TrimSpace(r.stdout.String()), "\n")
	if len(lines) != 2 || !strings.Contains(lines[1], "connect_fail") || !strings.Contains(lines[1], "ct-client") ||
		!strings.HasSuffix(lines[1], "ECONNREFUSED: nothing listens on 127.0.0.1:9444, nor on any other address of port 9444") {
		t.Errorf("want the header and one explained connect_fail, got:\n%s", r.stdout.String())
	}
}

// TestMaxConnections: --max-connections sizes the socket table. One
// server's 40 connections fill a table of 16 before the other's: the
// first server's 40 closes (the events asked for) are counted as lost,
// none reported; the summary and the warning say so.
func TestMaxConnections(t *testing.T) {
	const per = 40
	ports := []uint16{9470, 9471}
	crowd := testnet.NewCrowd(t, testnet.NewNS(t), ports, per)
	r := startCLI(t, "watch", "--max-connections", "16", "--port", "9470,9471", "--pid", strconv.Itoa(crowd.Servers[0].PID), "-e", "close")
	blackout := testnet.WatchBlackout(t, ports...)
	crowd.Run(t)
	time.Sleep(500 * time.Millisecond) // the last records
	r.cmd.Process.Signal(os.Interrupt)
	r.wait(t)
	unseeable := blackout.Stop(t).Events()
	var lost int
	if _, err := fmt.Sscanf(r.stderr.String()[strings.LastIndex(r.stderr.String(), "conntrace: "):], "conntrace: 0 events, %d lost", &lost); err != nil {
		t.Fatalf("no summary of 0 events: %v\n%s", err, r.stderr.String())
	}
	if lost > per || lost+unseeable < per || !strings.Contains(r.stderr.String(), " events of connections or UDP flows a full table had no room for") {
		t.Errorf("%d lost (%d changes no program could see), want %d:\n%s", lost, unseeable, per, r.stderr.String())
	}
	if strings.Count(r.stdout.String(), "\n") != 1 {
		t.Errorf("events reported:\n%s", r.stdout.String())
	}
}
