// SPDX-License-Identifier: Apache-2.0

package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/urfave/cli/v2"
	"golang.org/x/sys/unix"

	"github.com/conntrace/conntrace/tracer"
	"github.com/conntrace/conntrace/tracer/output"
	"github.com/conntrace/conntrace/tracer/testnet"
)

// asMainEnv makes the test binary act as conntrace itself, so end-to-end
// tests run the real CLI without building it first.
const asMainEnv = "CONNTRACE_TEST_AS_MAIN"

// hideBTFEnv, with asMainEnv, first hides the kernel's BTF behind an empty
// tmpfs, as on a kernel built without it. The process must have been
// started in a mount namespace of its own (Unshareflags CLONE_NEWNS).
const hideBTFEnv = "CONNTRACE_TEST_HIDE_BTF"

// unmountTracefsEnv, with asMainEnv, first unmounts tracefs (in a mount
// namespace of its own, as for hideBTFEnv), as on a machine that never
// mounted it.
const unmountTracefsEnv = "CONNTRACE_TEST_UNMOUNT_TRACEFS"

func TestMain(m *testing.M) {
	testnet.RunHelper()
	if os.Getenv(hideBTFEnv) != "" {
		if err := unix.Mount("tmpfs", "/sys/kernel/btf", "tmpfs", 0, ""); err != nil {
			fmt.Fprintf(os.Stderr, "hide BTF: %v\n", err)
			os.Exit(3)
		}
	}
	if os.Getenv(unmountTracefsEnv) != "" {
		for _, dir := range []string{"/sys/kernel/debug/tracing", "/sys/kernel/tracing"} {
			for unix.Unmount(dir, unix.MNT_DETACH) == nil {
			}
		}
		if _, err := os.Stat("/sys/kernel/tracing/events"); err == nil {
			fmt.Fprintln(os.Stderr, "tracefs is still mounted")
			os.Exit(3)
		}
	}
	if os.Getenv(asMainEnv) != "" {
		os.Exit(run(append([]string{"conntrace"}, os.Args[1:]...), os.Stdout, os.Stderr))
	}
	os.Exit(m.Run())
}

// Bad input: one clear line on stderr, exit 2, before anything is loaded
// (so this needs no root).
func TestUsageErrors(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"watch", "--port", "70000"}, `--port "70000": want a port number from 1 to 65535, in decimal`},
		{[]string{"watch", "--port", "0"}, `--port "0": want a port number from 1 to 65535`},
		{[]string{"watch", "-P", "-1"}, `--port "-1": want a port number`},
		{[]string{"watch", "--port", "http"}, `--port "http": want a port number`},
		{[]string{"watch", "--port", "010"}, `--port "010": want a port number from 1 to 65535, in decimal`},
		{[]string{"watch", "--port", "0x50"}, `--port "0x50": want a port number`},
		{[]string{"watch", "--port", "80,,443"}, `--port "": want a port number`},
		{[]string{"watch", "--port", "+80"}, `--port "+80": want a port number`},
		{[]string{"watch", "--pid", "0"}, `--pid "0": want a process id from 1 to 4194304, in decimal`},
		{[]string{"watch", "--pid", "0x10"}, `--pid "0x10": want a process id`},
		{[]string{"watch", "--pid", "012"}, `--pid "012": want a process id`},
		{[]string{"watch", "-4", "-6"}, "-4 and -6 exclude each other"},
		{[]string{"watch", "--events", "connect,bogus"}, `--events: unknown event "bogus"`},
		{[]string{"watch", "-o", "yaml"}, `-o: unknown output format "yaml"`},
		{[]string{"watch", "--duration", "-1s"}, `--duration "-1s": want a positive duration with a unit, e.g. 500ms, 30s, 5m or 1h30m`},
		{[]string{"watch", "--duration", "soon"}, `--duration "soon": want a positive duration`},
		{[]string{"watch", "-d", "5"}, `--duration "5": want a positive duration with a unit`},
		{[]string{"watch", "-d", "0"}, `--duration "0": want a positive duration`},
		{[]string{"watch", "--count", "-3"}, `--count "-3": want a positive number of events, in decimal (leave it out for no limit)`},
		{[]string{"watch", "-n", "0"}, `--count "0": want a positive number of events`},
		{[]string{"watch", "-n", "ten"}, `--count "ten": want a positive number of events`},
		{[]string{"watch", "--comm", "a-very-long-process-name"}, `--comm "a-very-long-process-name": want a process name of 1 to 15 bytes`},
		{[]string{"watch", "--comm", "curl,"}, `--comm "": want a process name of 1 to 15 bytes`},
		{[]string{"watch", "--container", "web,"}, `--container "": want a container name, or an id or id prefix of 12 hex digits or more`},
		{[]string{"watch", "--container", "../../etc/passwd"}, `--container "../../etc/passwd": want a container name`},
		{[]string{"watch", "--container", "a\x1bb"}, `--container "a\x1bb": want a container name`},
		{[]string{"watch", "--cgroup", "/no/such/cgroup-here"}, `--cgroup "/no/such/cgroup-here": no such cgroup in /sys/fs/cgroup`},
		{[]string{"watch", "--cgroup", "../../../etc"}, `--cgroup "../../../etc": no such cgroup in /sys/fs/cgroup`},
		{[]string{"watch", "--name", "a b.example"}, `--name "a b.example": ' ' in a label: want a name (api.example.com) or *.domain (*.example.com)`},
		{[]string{"watch", "--name", "*.*.example"}, `--name "*.*.example": '*' in a label`},
		{[]string{"watch", "--name", "api.example,"}, `--name "": 0 bytes`},
		{[]string{"watch", "-t", "--name", "api.example"}, "--name needs DNS lookups, which are UDP's: not with -t"},
		{[]string{"watch", "--dns-timeout", "10ms"}, "--dns-timeout 10ms: want 100ms to 1m"},
		{[]string{"watch", "--max-connections", "15"}, `--max-connections "15": want 16 to 16777216 connection ends, in decimal`},
		{[]string{"serve", "--max-connections", "16777217"}, `--max-connections "16777217": want 16 to 16777216 connection ends, in decimal`},
		{[]string{"top", "--max-connections", "1e6"}, `--max-connections "1e6": want 16 to 16777216 connection ends, in decimal`},
		{[]string{"top", "--interval", "10ms"}, "--interval 10ms: want 100ms to 1h"},
		{[]string{"top", "--rows", "-1"}, `--rows "-1": want a positive number of rows, in decimal`},
		{[]string{"doctor", "--cost", "500ms"}, "--cost 500ms: want 1s to 10m"},
		{[]string{"doctor", "--cost", "5"}, `--cost "5": want a positive duration with a unit, e.g. 500ms, 30s, 5m or 1h30m`},
		{[]string{"watch", "-f", "--failures"}, "-f and --failures are one flag: use one of the forms"},
		{[]string{"watch", "443"}, `watch takes no arguments, got "443"`},
		{[]string{"watch", "--bogus"}, "flag provided but not defined: -bogus"},
		{[]string{"frobnicate"}, `unknown command "frobnicate"`},
		{[]string{"watch", "--failures", "--events", "connect"}, "--failures and --events exclude each other"},
		{[]string{"watch", "--ready-file", "/nonexistent-dir/ready"}, `--ready-file "/nonexistent-dir/ready": its directory: no such file or directory`},
		{[]string{"watch", "--ready-file", "/"}, `--ready-file "/" exists and is not a regular file (a directory)`},
		{[]string{"who"}, "who takes one PORT"},
		{[]string{"who", "http"}, `port "http": want a port number from 1 to 65535, in decimal`},
		{[]string{"who", "0"}, `port "0": want a port number`},
		{[]string{"who", "010"}, `port "010": want a port number`},
		{[]string{"who", "80", "81"}, "who takes one PORT"},
		{[]string{"ports", "extra"}, `ports takes no arguments, got "extra"`},
		{[]string{"ports", "-o", "xml"}, `-o: unknown output format "xml"`},
		{[]string{"watch", "--hooks", "magic"}, `--hooks: unknown hook mode "magic" (want auto, fentry, kprobe, tracepoint)`},
		{[]string{"doctor", "extra"}, `doctor takes no arguments, got "extra"`},
		{[]string{"audit", "extra"}, `audit takes no arguments, got "extra"`},
		{[]string{"audit", "--port", "70000"}, `--port "70000": want a port number`},
		{[]string{"audit", "--pid", "-2"}, `--pid "-2": want a process id`},
		{[]string{"audit", "--interval", "10ms"}, "--interval 10ms: give 100ms or more"},
		{[]string{"audit", "--interval", "1"}, `--interval "1": want a positive duration with a unit`},
		{[]string{"audit", "--duration", "-5s"}, `--duration "-5s": want a positive duration`},
		{[]string{"audit", "-o", "csv"}, `-o: unknown output format "csv"`},
		{[]string{"audit", "--hooks", "bpf"}, `--hooks: unknown hook mode "bpf"`},
		{[]string{"doctor", "-o", "yaml"}, `-o: unknown output format "yaml"`},
		{[]string{"serve", "extra"}, `serve takes no arguments, got "extra"`},
		{[]string{"serve", "--listen", "10843"}, `--listen "10843": want host:port or :port`},
		{[]string{"serve", "--listen", ":70000"}, `--listen ":70000": want a port number from 0 (any free one) to 65535, in decimal`},
		{[]string{"serve", "-l", "127.0.0.1:http"}, `--listen "127.0.0.1:http": want a port number`},
		{[]string{"serve", "--max-series", "0"}, `--max-series "0": want a number from 1 to 1048576`},
		{[]string{"serve", "--max-series", "lots"}, `--max-series "lots": want a number`},
		{[]string{"serve", "--labels", "comm,pid"}, `--labels: unknown label "pid" (want comm, container, port, or none)`},
		{[]string{"serve", "--labels", "none,comm"}, `--labels "none,comm": none stands alone (--labels none); otherwise list any of comm, container, port`},
		{[]string{"watch", "-d", "99999999h"}, `--duration "99999999h": too long (at most 2562047h); leave it out to run until stopped`},
		{[]string{"who", "8080", "--netns", "/proc/version"}, "--netns: /proc/version is not a network namespace (want /run/netns/NAME or /proc/PID/ns/net)"},
		{[]string{"ports", "--netns", "/no/such/netns"}, "--netns: network namespace /no/such/netns: no such file or directory"},
		{[]string{"serve", "--port", "70000"}, `--port "70000": want a port number`},
		{[]string{"serve", "-o", "json"}, "flag provided but not defined: -o"},
		{[]string{"serve", "--container", "../x"}, `--container "../x": want a container name`},
		{[]string{"serve", "--events", "nope"}, `--events: unknown event "nope"`},
		{[]string{"serve", "--hooks", "magic"}, `--hooks: unknown hook mode "magic"`},
		{[]string{"deploy", "helm"}, `unknown deploy target "helm" (want kubernetes, systemd, rules or dashboard)`},
		{[]string{"deploy", "kubernetes", "--namespace", "Prod"}, `--namespace "Prod": want a DNS label`},
		{[]string{"deploy", "kubernetes", "--image", "x:1\nkind: Secret"}, `--image "x:1\nkind: Secret": want an image reference`},
		{[]string{"deploy", "kubernetes", "--port", "0"}, `--port "0": want a port number`},
		{[]string{"deploy", "kubernetes", "extra"}, `takes no arguments, got "extra"`},
		{[]string{"deploy", "systemd", "--binary", "conntrace"}, `--binary "conntrace": want an absolute path`},
		{[]string{"deploy", "systemd", "--listen", ":1 --events x"}, `--listen ":1 --events x": want a port number from 0 (any free one) to 65535, in decimal`},
		{[]string{"deploy", "rules", "--bogus"}, "flag provided but not defined: -bogus"},
		{[]string{"version", "extra"}, `version takes no arguments, got "extra"`},
		{[]string{"version", "-o", "yaml"}, `-o: unknown output format "yaml"`},
		{[]string{"-v"}, "flag provided but not defined: -v"},
		{[]string{"completion"}, "completion takes one argument, the shell: bash, zsh or fish"},
		{[]string{"completion", "tcsh"}, `completion: unknown shell "tcsh" (want bash, zsh or fish)`},
		{[]string{"completion", "bash", "zsh"}, "completion takes one argument"},
		{[]string{"man", "1"}, `man takes no arguments, got "1"`},
	} {
		var stdout, stderr bytes.Buffer
		code := run(append([]string{"conntrace"}, tc.args...), &stdout, &stderr)
		msg := stderr.String()
		if code != exitUsage {
			t.Errorf("%v: exit %d, want %d (stderr %q)", tc.args, code, exitUsage, msg)
		}
		if !strings.Contains(msg, tc.want) {
			t.Errorf("%v: stderr %q does not say %q", tc.args, msg, tc.want)
		}
		if last := strings.TrimSpace(lastLine(msg)); !strings.HasPrefix(last, "conntrace: ") {
			t.Errorf("%v: last stderr line %q is not our one-line error", tc.args, last)
		}
		if strings.Contains(msg, "goroutine") || strings.Contains(msg, "panic") {
			t.Errorf("%v: stack trace in %q", tc.args, msg)
		}
	}
}

func TestHelp(t *testing.T) {
	var stdout, stderr bytes.Buffer
	if code := run([]string{"conntrace", "watch", "--help"}, &stdout, &stderr); code != exitOK {
		t.Fatalf("watch --help: exit %d: %s", code, stderr.String())
	}
	for _, flag := range []string{"--port PORT, -P PORT", "--pid PID, -p PID", "--comm", "--container NAME", "--cgroup PATH", "--ipv4, -4", "--ipv6, -6", "--tcp, -t", "--udp, -u",
		"--events", "--failures, -f", "--output FORMAT, -o FORMAT", "--duration", "--count", "--ready-file",
		"--hooks MODE", "--btf PATH"} {
		if !strings.Contains(stdout.String(), flag) {
			t.Errorf("watch --help lacks %q", flag)
		}
	}
}

func lastLine(s string) string {
	s = strings.TrimRight(s, "\n")
	return s[strings.LastIndexByte(s, '\n')+1:]
}

func TestFlagsFirst(t *testing.T) {
	app := newApp(nil, nil)
	for _, tc := range []struct{ in, want string }{
		{"conntrace who 8080 -o json", "conntrace who -o json -- 8080"},
		{"conntrace who -o json 8080", "conntrace who -o json -- 8080"},
		{"conntrace who 8080 --netns=/x", "conntrace who --netns=/x -- 8080"},
		{"conntrace watch -4 -P 80", "conntrace watch -4 -P 80"},
		{"conntrace nosuch 1 -x", "conntrace nosuch 1 -x"},
	} {
		if got := strings.Join(flagsFirst(app, strings.Fields(tc.in)), " "); got != tc.want {
			t.Errorf("%q -> %q, want %q", tc.in, got, tc.want)
		}
	}
}

// TestPanicIsOneLine: a bug that panics ends in one line and exit 1, not
// a stack trace.
func TestPanicIsOneLine(t *testing.T) {
	var stdout, stderr bytes.Buffer
	app := newApp(&stdout, &stderr)
	app.Commands = append(app.Commands, &cli.Command{Name: "crash", Action: func(*cli.Context) error {
		var m map[string]int
		m["x"] = 1 // assignment to entry in nil map
		return nil
	}})
	code := runApp(app, []string{"conntrace", "crash"}, &stderr)
	want := "conntrace: internal error: assignment to entry in nil map (please report it; CONNTRACE_DEBUG=1 shows where)\n"
	if code != exitError || stderr.String() != want {
		t.Errorf("exit %d, stderr %q, want 1 and %q", code, stderr.String(), want)
	}
}

// TestPanicOnAGoroutine: a panic on another goroutine (audit's reporter)
// becomes the same one-line internal error, and ends the run.
func TestPanicOnAGoroutine(t *testing.T) {
	errs := make(chan error, 1)
	ctx, cancel := context.WithCancel(context.Background())
	goSafely(errs, cancel, func() error {
		var m map[string]int
		m["x"] = 1
		return nil
	})
	err := <-errs
	<-ctx.Done()
	want := "internal error: assignment to entry in nil map (please report it; CONNTRACE_DEBUG=1 shows where)"
	if err == nil || err.Error() != want {
		t.Errorf("error %v, want %q", err, want)
	}
}

// TestWatchFlagValues: what watch makes of its flags: lists repeat and
// split at commas, numbers are decimal, names of values take any case.
func TestWatchFlagValues(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want func(o watchOptions) bool
	}{
		{[]string{"--comm", "curl", "--comm", "python3"}, func(o watchOptions) bool { return slices.Equal(o.cfg.Comms, []string{"curl", "python3"}) }},
		{[]string{"-c", "curl,python3", "-c", "nginx"}, func(o watchOptions) bool {
			return slices.Equal(o.cfg.Comms, []string{"curl", "python3", "nginx"})
		}},
		{[]string{"--container", "web,0123456789ab", "--container", "db"}, func(o watchOptions) bool {
			return slices.Equal(o.cfg.Containers, []string{"web", "0123456789ab", "db"})
		}},
		{[]string{"--cgroup", "/"}, func(o watchOptions) bool { return slices.Equal(o.cfg.Cgroups, []string{"/"}) }},
		{[]string{"-P", "80,443", "-P", "8080"}, func(o watchOptions) bool { return slices.Equal(o.cfg.Ports, []uint16{80, 443, 8080}) }},
		{[]string{"-p", "1,4194304"}, func(o watchOptions) bool { return slices.Equal(o.cfg.PIDs, []uint32{1, 4194304}) }},
		{[]string{"--events", "Connect,CLOSE"}, func(o watchOptions) bool {
			return o.cfg.Events == 1<<tracer.EventConnect|1<<tracer.EventClose
		}},
		{[]string{"-o", "JSON", "--hooks", "Tracepoint"}, func(o watchOptions) bool {
			return o.format == output.JSON && o.cfg.Hooks == tracer.HooksTracepoint
		}},
		{[]string{"-d", "1m30s", "-n", "10"}, func(o watchOptions) bool { return o.duration == 90*time.Second && o.count == 10 }},
		{[]string{"--max-connections", "16777216"}, func(o watchOptions) bool { return o.cfg.SocketTableSize == 1<<24 }},
		{nil, func(o watchOptions) bool {
			return o.duration == 0 && o.count == 0 && o.ready == nil && o.cfg.Comms == nil && o.cfg.SocketTableSize == 0
		}},
	} {
		cmd := watchCommand()
		var got watchOptions
		cmd.Action = func(c *cli.Context) (err error) {
			got, err = parseWatch(c)
			return err
		}
		app := &cli.App{Name: "conntrace", Commands: []*cli.Command{cmd}, Writer: io.Discard, ErrWriter: io.Discard}
		if err := app.Run(append([]string{"conntrace", "watch"}, tc.args...)); err != nil {
			t.Errorf("%v: %v", tc.args, err)
			continue
		}
		if !tc.want(got) {
			t.Errorf("%v: got %+v", tc.args, got)
		}
	}
}
