// SPDX-License-Identifier: Apache-2.0

package testnet

import (
	"bufio"
	"fmt"
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

// DNSNet is a client namespace and a server namespace where Debian's
// dnsmasq serves test.example on 198.18.0.2, also on 198.18.0.4 (the
// records given; nothing else: NXDOMAIN; no upstream: REFUSED for other
// names), and Service, a server on 198.18.0.10:8053, takes one
// connection. 198.18.0.3 is nobody's. glibc in the client asks
// 198.18.0.2.
type DNSNet struct {
	Cli, Srv *NS
	Service  *Proc
}

// DNSService is the port of DNSNet's service.
const DNSService = 8053

// NewDNSNet makes a DNSNet whose zone has records (dnsmasq's options:
// "--host-record=api.test.example,198.18.0.10").
func NewDNSNet(t testing.TB, records ...string) *DNSNet {
	t.Helper()
	n := &DNSNet{Cli: NewNS(t), Srv: NewNS(t)}
	Veth(t, n.Cli, []string{"198.18.0.1/24"}, n.Srv, []string{"198.18.0.2/24", "198.18.0.4/24", "198.18.0.10/24"})
	Dnsmasq(t, n.Srv, "198.18.0.2", append([]string{"--listen-address=198.18.0.4", "--local=/test.example/", "--local-ttl=300"}, records...)...)
	n.Service = Start(t, "ct-dns-srv", Role{Server: true, NS: n.Srv.Path(), Addr: fmt.Sprintf("198.18.0.10:%d", DNSService), Conns: 1, Recv: 4, Send: 4})
	n.Service.Expect(t, "listening")
	ResolvConf(t, n.Cli, "198.18.0.2", "timeout:1", "attempts:1")
	return n
}
