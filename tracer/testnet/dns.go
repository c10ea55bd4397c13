// SPDX-License-Identifier: Apache-2.0

package testnet

import (
	"bufio"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// Dnsmasq runs Debian's dnsmasq in n, answering on listen (an address of
// n's, port 53) from what args say (--host-record, --local, ...) and
// nothing else: no /etc/hosts, no resolv.conf, no upstream but the ones
// args name. It stops with the test.
func Dnsmasq(t testing.TB, n *NS, listen string, args ...string) *exec.Cmd {
	t.Helper()
	bin, err := exec.LookPath("dnsmasq")
	if err != nil {
		t.Fatalf("dnsmasq: %v (apt-get install dnsmasq-base; make deps does)", err)
	}
	all := append([]string{"netns", "exec", n.Name, bin, "--keep-in-foreground", "--log-facility=-", "--log-queries",
		"--no-resolv", "--no-hosts", "--no-poll", "--bind-interfaces", "--listen-address=" + listen, "--port=53",
		"--user=root", "--pid-file=", "--conf-file=/dev/null"}, args...)
	cmd := exec.Command("ip", all...)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("dnsmasq: %v", err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})
	started := make(chan string, 1)
	var mu sync.Mutex
	var log []string
	t.Cleanup(func() {
		if t.Failed() {
			mu.Lock()
			t.Logf("dnsmasq in %s said:\n%s", n.Name, strings.Join(log, "\n"))
			mu.Unlock()
		}
	})
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			mu.Lock()
			log = append(log, sc.Text())
			mu.Unlock()
			if strings.Contains(sc.Text(), "started, version") || strings.Contains(sc.Text(), "FAILED") {
				select {
				case started <- sc.Text():
				default:
				}
			}
		}
		mu.Lock()
		all := strings.Join(log, "\n")
		mu.Unlock()
		select {
		case started <- all:
		default:
		}
	}()
	select {
	case line := <-started:
		if !strings.Contains(line, "started, version") {
			t.Fatalf("dnsmasq did not start: %s", line)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("dnsmasq did not start within 10 s")
	}
	return cmd
}

// ResolvConf makes n's processes started with "ip netns exec" (libc's
// resolver) ask nameserver, with options (e.g. "timeout:1").
func ResolvConf(t testing.TB, n *NS, nameserver string, options ...string) {
	t.Helper()
	lines := []string{"nameserver " + nameserver}
	if len(options) > 0 {
		lines = append(lines, "options "+strings.Join(options, " "))
	}
	ResolvConfLines(t, n, lines...)
}

// ResolvConfLines is ResolvConf with resolv.conf's lines as given
// ("search test.example", ...).
func ResolvConfLines(t testing.TB, n *NS, lines ...string) {
	t.Helper()
	dir := filepath.Join("/etc/netns", n.Name)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.WriteFile(filepath.Join(dir, "resolv.conf"), []byte(strings.Join(lines, "\n")+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
}

// Exec runs name in n ("ip netns exec", which also puts /etc/netns/NAME's
// files over /etc's) and returns its output.
func (n *NS) Exec(t testing.TB, name string, args ...string) (string, error) {
	t.Helper()
	out, err := exec.Command("ip", append([]string{"netns", "exec", n.Name, name}, args...)...).CombinedOutput()
	return string(out), err
}
