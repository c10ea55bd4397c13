// SPDX-License-Identifier: Apache-2.0

package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// The DNS storm: Debian's dnsperf in a client network namespace asks
// Debian's dnsmasq in a server one, over a veth pair, for names of a zone
// dnsmasq serves from its configuration (no upstream, no cache misses):
// the rate the server and the two CPUs allow, every query a lookup the
// tracer reports.
const (
	dnsCliNS, dnsSrvNS = "ct-bench-dns-cli", "ct-bench-dns-srv"
	dnsServer          = "198.18.5.2"
	dnsNames           = 100
)

// dnsSetup makes the namespaces, starts dnsmasq and writes dnsperf's
// query file; undo removes them all.
func dnsSetup() (queries string, undo func(), err error) {
	for _, bin := range []string{"ip", "dnsmasq", "dnsperf"} {
		if _, err := exec.LookPath(bin); err != nil {
			return "", nil, fmt.Errorf("%s: %v (make deps installs it)", bin, err)
		}
	}
	var dnsmasq *exec.Cmd
	dir, err := os.MkdirTemp("", "bench-dns")
	if err != nil {
		return "", nil, err
	}
	undo = func() {
		if dnsmasq != nil {
			dnsmasq.Process.Kill()
			dnsmasq.Wait()
		}
		exec.Command("ip", "netns", "del", dnsCliNS).Run()
		exec.Command("ip", "netns", "del", dnsSrvNS).Run()
		os.RemoveAll(dir)
	}
	ip := func(args ...string) error {
		if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
			return fmt.Errorf("ip %s: %v: %s", strings.Join(args, " "), err, out)
		}
		return nil
	}
	for _, args := range [][]string{
		{"netns", "add", dnsCliNS}, {"netns", "add", dnsSrvNS},
		{"-n", dnsCliNS, "link", "add", "bdns0", "type", "veth", "peer", "name", "bdns1", "netns", dnsSrvNS},
		{"-n", dnsCliNS, "addr", "add", "198.18.5.1/24", "dev", "bdns0"},
		{"-n", dnsSrvNS, "addr", "add", dnsServer + "/24", "dev", "bdns1"},
		{"-n", dnsCliNS, "link", "set", "bdns0", "up"}, {"-n", dnsSrvNS, "link", "set", "bdns1", "up"},
		{"-n", dnsCliNS, "link", "set", "lo", "up"}, {"-n", dnsSrvNS, "link", "set", "lo", "up"},
	} {
		if err := ip(args...); err != nil {
			undo()
			return "", nil, err
		}
	}
	args := []string{"netns", "exec", dnsSrvNS, "dnsmasq", "--keep-in-foreground", "--no-resolv", "--no-hosts", "--no-poll",
		"--bind-interfaces", "--listen-address=" + dnsServer, "--user=root", "--pid-file=", "--conf-file=/dev/null",
		"--local=/bench.example/", "--local-ttl=300", "--dns-forward-max=1000"}
	var q strings.Builder
	for i := range dnsNames {
		name := fmt.Sprintf("host%d.bench.example", i)
		args = append(args, fmt.Sprintf("--host-record=%s,198.18.6.%d", name, i))
		fmt.Fprintf(&q, "%s A\n", name)
	}
	queries = filepath.Join(dir, "queries")
	if err := os.WriteFile(queries, []byte(q.String()), 0o644); err != nil {
		undo()
		return "", nil, err
	}
	dnsmasq = exec.Command("ip", args...)
	if err := dnsmasq.Start(); err != nil {
		undo()
		return "", nil, err
	}
	// Ready when it answers.
	for start := time.Now(); ; time.Sleep(50 * time.Millisecond) {
		out, _ := exec.Command("ip", "netns", "exec", dnsCliNS, "dnsperf", "-s", dnsServer, "-d", queries, "-n", "1").CombinedOutput()
		if strings.Contains(string(out), "Queries completed:    100 ") {
			break
		}
		if time.Since(start) > 10*time.Second {
			undo()
			return "", nil, fmt.Errorf("dnsmasq does not answer dnsperf: %s", out)
		}
	}
	return queries, undo, nil
}

// dnsStorm is dnsperf asking for dur, with conns sockets: as fast as it
// is answered.
func dnsStorm(queries string, dur time.Duration, conns int) *exec.Cmd {
	return exec.Command("ip", "netns", "exec", dnsCliNS, "dnsperf", "-s", dnsServer, "-d", queries,
		"-l", strconv.Itoa(int(dur.Seconds())), "-c", strconv.Itoa(conns), "-T", "1", "-q", "100", "-t", "2")
}

var (
	dnsperfQPS  = regexp.MustCompile(`Queries per second:\s+([0-9.]+)`)
	dnsperfLost = regexp.MustCompile(`Queries lost:\s+(\d+)`)
)

// parseDnsperf reads dnsperf's report: queries answered a second, and
// those that went unanswered.
func parseDnsperf(out []byte) (qps float64, lost uint64, err error) {
	m := dnsperfQPS.FindSubmatch(out)
	if m == nil {
		return 0, 0, fmt.Errorf("dnsperf said %q", out)
	}
	qps, _ = strconv.ParseFloat(string(m[1]), 64)
	if m := dnsperfLost.FindSubmatch(out); m != nil {
		lost, _ = strconv.ParseUint(string(m[1]), 10, 64)
	}
	return qps, lost, nil
}
