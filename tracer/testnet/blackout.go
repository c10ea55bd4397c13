// SPDX-License-Identifier: Apache-2.0

package testnet

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// Blackout collects the TCP state changes no tracing program can see.
//
// The kernel of the machine the tests were written on (a Firecracker
// guest's Linux 6.18) runs no tracing program while a thread of its init
// (PID 1, the sandbox's process API) is the current task: no tp_btf
// program, no perf tracepoint program, no perf sample. A softirq that
// runs on top of one of those threads still processes other processes'
// packets, and their sockets' state changes then reach no BPF program at
// all (bpf/README.md, known gap). The kernel's own trace event,
// sock:inet_sock_set_state, still records them, with the task that was
// current: a tracefs instance of the test's own collects those of its
// ports made while a thread of PID 1 (one it had when the watch began)
// was current, so that a test can hold every event the tracer missed to
// one of them.
type Blackout struct {
	dir string
}

// BlackoutChanges counts the state changes a Blackout saw, by the state
// the socket entered.
type BlackoutChanges struct {
	Established, SynRecv, Close, Other int
}

// Events is the most events the changes can cost a tracer: a connection
// whose start went unseen has neither its connect (or accept) nor its
// close reported; an unseen close costs that close.
func (c BlackoutChanges) Events() int { return 2*(c.Established+c.SynRecv) + c.Close }

func (c BlackoutChanges) String() string {
	return fmt.Sprintf("%d ESTABLISHED, %d SYN_RECV, %d CLOSE, %d other", c.Established, c.SynRecv, c.Close, c.Other)
}

// WatchBlackout starts collecting the changes of sockets with one of
// ports at either end, until Stop.
func WatchBlackout(t testing.TB, ports ...uint16) *Blackout {
	t.Helper()
	root := "/sys/kernel/tracing"
	if _, err := os.Stat(root + "/events"); err != nil {
		if err := unix.Mount("tracefs", root, "tracefs", 0, ""); err != nil {
			t.Fatalf("mount tracefs: %v", err)
		}
	}
	threads, err := os.ReadDir("/proc/1/task")
	if err != nil || len(threads) == 0 {
		t.Fatalf("PID 1's threads: %v", err)
	}
	var byPort, byTask []string
	for _, p := range ports {
		byPort = append(byPort, fmt.Sprintf("sport == %d || dport == %d", p, p))
	}
	for _, th := range threads {
		byTask = append(byTask, "common_pid == "+th.Name())
	}
	b := &Blackout{dir: filepath.Join(root, "instances", fmt.Sprintf("conntrace-test-%d", os.Getpid()))}
	os.Remove(b.dir) // one left by a test killed before its Stop
	if err := os.Mkdir(b.dir, 0o755); err != nil {
		t.Fatalf("tracefs instance: %v", err)
	}
	event := filepath.Join(b.dir, "events/sock/inet_sock_set_state")
	for _, w := range []struct{ file, val string }{
		{event + "/filter", "(" + strings.Join(byPort, " || ") + ") && (" + strings.Join(byTask, " || ") + ")"},
		{event + "/enable", "1"},
	} {
		if err := os.WriteFile(w.file, []byte(w.val), 0); err != nil {
			os.Remove(b.dir)
			t.Fatalf("%s: %v", w.file, err)
		}
	}
	return b
}

// Stop stops collecting, counts what was collected and removes the
// instance. An overrun buffer fails the test: its count would be short.
func (b *Blackout) Stop(t testing.TB) BlackoutChanges {
	t.Helper()
	defer os.Remove(b.dir)
	if err := os.WriteFile(filepath.Join(b.dir, "tracing_on"), []byte("0"), 0); err != nil {
		t.Fatalf("stop tracing: %v", err)
	}
	var c BlackoutChanges
	f, err := os.Open(filepath.Join(b.dir, "trace"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		_, state, ok := strings.Cut(line, " newstate=")
		if !ok || strings.HasPrefix(line, "#") {
			continue
		}
		switch state {
		case "TCP_ESTABLISHED":
			c.Established++
		case "TCP_SYN_RECV":
			c.SynRecv++
		case "TCP_CLOSE":
			c.Close++
		default:
			c.Other++
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	cpus, _ := filepath.Glob(filepath.Join(b.dir, "per_cpu/cpu*/stats"))
	for _, st := range cpus {
		data, err := os.ReadFile(st)
		if err != nil {
			t.Fatal(err)
		}
		for _, l := range strings.Split(string(data), "\n") {
			if v, ok := strings.CutPrefix(l, "overrun: "); ok {
				if n, _ := strconv.Atoi(v); n > 0 {
					t.Fatalf("%s: %d state changes overran the trace buffer", st, n)
				}
			}
		}
	}
	// Disabled, so that the instance can be removed.
	os.WriteFile(filepath.Join(b.dir, "events/sock/inet_sock_set_state/enable"), []byte("0"), 0)
	return c
}
