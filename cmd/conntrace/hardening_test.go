// SPDX-License-Identifier: Apache-2.0

package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"

	"github.com/conntrace/conntrace/tracer/doctor"
	"github.com/conntrace/conntrace/tracer/testnet"
)

// hostileName is what a local process can call itself with
// prctl(PR_SET_NAME): 15 bytes of screen clearing, a window-title escape,
// invalid UTF-8 and line breaks.
var hostileName = []byte("\x1b[2J\x1b]0;x\a\xff\xfe\n\r")

// TestHostileProcessName: a real process renames itself to terminal
// escapes and invalid UTF-8, then connects. Text output shows the bytes
// escaped (\xNN) in one line per event; JSON stays valid UTF-8 and decodes
// to the name with U+FFFD for each invalid byte.
func TestHostileProcessName(t *testing.T) {
	for _, format := range []string{"text", "json"} {
		t.Run(format, func(t *testing.T) {
			ns := testnet.NewNS(t)
			r := startCLI(t, "watch", "-o", format, "--port", "9443", "--count", "5")
			srv := testnet.Start(t, "ct-server", testnet.Role{Server: true, NS: ns.Path(), Addr: "127.0.0.1:9443", Conns: 1, Send: 10, Recv: 10})
			srv.Expect(t, "listening")
			cli := testnet.Start(t, "ct-client", testnet.Role{NS: ns.Path(), Addr: "127.0.0.1:9443", Send: 10, Recv: 10, Rename: hostileName})
			cli.Expect(t, "ready")
			cli.Expect(t, "connected")
			cli.Wait(t)
			srv.Wait(t)
			r.wait(t)

			out := r.stdout.Bytes()
			for i, c := range out {
				if (c < ' ' && c != '\n') || c == 0x7f || (format == "text" && c > 0x7f) {
					t.Fatalf("raw byte %#x at %d reached the terminal:\n%q", c, i, out)
				}
			}
			lines := strings.Split(strings.TrimSuffix(string(out), "\n"), "\n")
			clientLines := 0
			switch format {
			case "text":
				if len(lines) != 6 {
					t.Fatalf("want the header and 5 lines, got %d:\n%s", len(lines), out)
				}
				const escaped = `\x1b[2J\x1b]0;x\x07\xff\xfe\x0a\x0d`
				for _, l := range lines[1:] {
					if strings.Contains(l, " "+escaped+" ") {
						clientLines++
					}
				}
			case "json":
				if !utf8.Valid(out) {
					t.Fatalf("JSON output is not valid UTF-8: %q", out)
				}
				want := string([]rune(string(hostileName))) // U+FFFD per invalid byte
				for _, l := range lines {
					var m map[string]any
					if err := json.Unmarshal([]byte(l), &m); err != nil {
						t.Fatalf("not JSON: %q: %v", l, err)
					}
					if m["comm"] == want {
						clientLines++
					}
				}
			}
			if clientLines != 2 { // connect and the client's close
				t.Errorf("%d lines name the client as %q, want 2:\n%s", clientLines, hostileName, out)
			}
		})
	}
}

// bpfObjects lists the BPF programs, maps and links process pid holds, by
// kernel id, from its file descriptors' fdinfo.
func bpfObjects(t *testing.T, pid int) (progs, maps, links []uint32) {
	t.Helper()
	dir := fmt.Sprintf("/proc/%d/fdinfo", pid)
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		data, err := os.ReadFile(dir + "/" + e.Name())
		if err != nil {
			continue // closed meanwhile
		}
		var prog, mp, lnk uint32
		sc := bufio.NewScanner(bytes.NewReader(data))
		for sc.Scan() {
			k, v, _ := strings.Cut(sc.Text(), ":")
			n, _ := strconv.ParseUint(strings.TrimSpace(v), 10, 32)
			switch k {
			case "prog_id":
				prog = uint32(n)
			case "map_id":
				mp = uint32(n)
			case "link_id":
				lnk = uint32(n)
			}
		}
		switch {
		case lnk != 0: // a link's fdinfo names its program too
			links = append(links, lnk)
		case prog != 0:
			progs = append(progs, prog)
		case mp != 0:
			maps = append(maps, mp)
		}
	}
	return progs, maps, links
}

// requireGone waits until none of the kernel objects exists any more: the
// kernel frees them once the last reference (an fd) is closed, some of it
// in deferred work.
func requireGone(t *testing.T, progs, maps, links []uint32) {
	t.Helper()
	var left []string
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		left = left[:0]
		for _, id := range progs {
			if p, err := ebpf.NewProgramFromID(ebpf.ProgramID(id)); err == nil {
				p.Close()
				left = append(left, fmt.Sprintf("prog %d", id))
			}
		}
		for _, id := range maps {
			if m, err := ebpf.NewMapFromID(ebpf.MapID(id)); err == nil {
				m.Close()
				left = append(left, fmt.Sprintf("map %d", id))
			}
		}
		for _, id := range links {
			if l, err := link.NewFromID(link.ID(id)); err == nil {
				l.Close()
				left = append(left, fmt.Sprintf("link %d", id))
			}
		}
		if len(left) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("left in the kernel 5s after exit: %s", strings.Join(left, ", "))
		}
	}
}

// TestSignalsLeaveNothing: SIGINT, SIGTERM and SIGHUP detach, flush, print
// the summary and exit 0; after those and after SIGKILL, none of the BPF
// programs, maps and links the run held is left in the kernel.
func TestSignalsLeaveNothing(t *testing.T) {
	for _, sig := range []syscall.Signal{syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP, syscall.SIGKILL} {
		t.Run(sig.String(), func(t *testing.T) {
			r := startCLI(t, "watch", "--port", "1")
			progs, maps, links := bpfObjects(t, r.cmd.Process.Pid)
			if len(progs) < 5 || len(maps) < 5 || len(links) < 5 {
				t.Fatalf("conntrace holds %d programs, %d maps, %d links: fewer than it loads", len(progs), len(maps), len(links))
			}
			// The check below can see them while they live.
			p, err := ebpf.NewProgramFromID(ebpf.ProgramID(progs[0]))
			if err != nil {
				t.Fatalf("program %d of the running conntrace: %v", progs[0], err)
			}
			p.Close()
			r.cmd.Process.Signal(sig)
			if sig == syscall.SIGKILL {
				select {
				case <-r.exited:
				case <-time.After(10 * time.Second):
					t.Fatal("not dead 10s after SIGKILL")
				}
			} else {
				r.wait(t)
				if !strings.HasSuffix(r.stderr.String(), "conntrace: 0 events, 0 lost\n") {
					t.Errorf("no summary at the end of stderr:\n%s", r.stderr.String())
				}
			}
			requireGone(t, progs, maps, links)
		})
	}
}

// TestClosedPipe: `conntrace watch | head -1` ends quietly with exit 0 once
// the reader is gone and the next event comes.
func TestClosedPipe(t *testing.T) {
	ns := testnet.NewNS(t)
	pr, pw, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	r := startCmd(t, func(cmd *exec.Cmd) { cmd.Stdout = pw }, "watch", "--port", "9443")
	pw.Close()
	header, err := bufio.NewReader(pr).ReadString('\n')
	if err != nil || !strings.HasPrefix(header, "TIME ") {
		t.Fatalf("first line %q, %v", header, err)
	}
	pr.Close() // head -1 is done
	exchange(t, ns, "127.0.0.1:9443")
	r.wait(t) // the next event meets the closed pipe: exit 0
	if s := r.stderr.String(); strings.Contains(s, "pipe") || strings.Contains(s, "events,") {
		t.Errorf("not quiet:\n%s", s)
	}
}

// TestCapabilitiesDropped: once attached, conntrace holds only what it
// still uses: CAP_BPF for its own counters, plus what finding a port's
// holder takes when bind_fail events are on. Capabilities are per thread:
// every thread is checked.
func TestCapabilitiesDropped(t *testing.T) {
	testCapabilitiesDropped(t, "")
}

// TestCgoBuildDropsCapabilities: the same for a plain `go build` with cgo
// on, as `go install` makes it for anyone with a C compiler (its threads
// are created by the C library, out of Go's sight).
func TestCgoBuildDropsCapabilities(t *testing.T) {
	testnet.RequireRoot(t)
	bin := filepath.Join(t.TempDir(), "conntrace")
	build := exec.Command("go", "build", "-o", bin, ".")
	build.Env = append(os.Environ(), "CGO_ENABLED=1")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build with cgo: %v\n%s", err, out)
	}
	info, err := exec.Command("go", "version", "-m", bin).Output()
	if err != nil || !strings.Contains(string(info), "CGO_ENABLED=1") {
		t.Fatalf("not a cgo build (%v):\n%s", err, info)
	}
	testCapabilitiesDropped(t, bin)
}

func testCapabilitiesDropped(t *testing.T, bin string) {
	const lookup = 1<<21 | 1<<19 | 1<<2 // CAP_SYS_ADMIN, CAP_SYS_PTRACE, CAP_DAC_READ_SEARCH
	for _, tc := range []struct {
		args []string
		want uint64
	}{
		{[]string{"watch", "--port", "1"}, 1<<39 | lookup},
		{[]string{"watch", "--port", "1", "--events", "connect,close"}, 1 << 39},
		{[]string{"audit", "--port", "1"}, 1<<39 | lookup},
		{[]string{"top", "--port", "1", "--batch"}, 1<<39 | lookup},
		{[]string{"serve", "--listen", "127.0.0.1:0", "--port", "1"}, 1<<39 | lookup},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			r := startCmd(t, func(c *exec.Cmd) {
				if bin != "" {
					c.Path, c.Args[0] = bin, bin
				}
			}, tc.args...)
			defer r.wait(t)
			defer r.cmd.Process.Signal(syscall.SIGINT)
			if strings.Contains(r.stderr.String(), "warning") {
				t.Errorf("warned:\n%s", r.stderr.String())
			}
			threads, err := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/status", r.cmd.Process.Pid))
			if err != nil || len(threads) < 2 {
				t.Fatalf("threads %v: %v", threads, err)
			}
			for _, th := range threads {
				status, err := os.ReadFile(th)
				if err != nil {
					t.Fatal(err)
				}
				for _, set := range []string{"CapEff", "CapPrm", "CapInh"} {
					want := tc.want
					if set == "CapInh" {
						want = 0
					}
					if got := capSet(t, status, set); got != want {
						t.Errorf("%s: %s %#x, want %#x", th, set, got, want)
					}
				}
			}
		})
	}
}

func capSet(t *testing.T, status []byte, name string) uint64 {
	t.Helper()
	for _, l := range strings.Split(string(status), "\n") {
		if v, ok := strings.CutPrefix(l, name+":"); ok {
			n, err := strconv.ParseUint(strings.TrimSpace(v), 16, 64)
			if err != nil {
				t.Fatal(err)
			}
			return n
		}
	}
	t.Fatalf("no %s in /proc/PID/status", name)
	return 0
}

// TestWithoutTracefs: on a machine that never mounted tracefs, watch
// mounts it (the syscall tracepoints attach through it) and runs.
func TestWithoutTracefs(t *testing.T) {
	ns := testnet.NewNS(t)
	r := startCmd(t, func(cmd *exec.Cmd) {
		cmd.Env = append(cmd.Env, unmountTracefsEnv+"=1")
		cmd.SysProcAttr = &syscall.SysProcAttr{Unshareflags: syscall.CLONE_NEWNS}
	}, "watch", "--port", "9443", "--failures", "--count", "1", "--hooks", "tracepoint")
	// A refused connect: reported by the connect() exit tracepoint.
	cli := testnet.Start(t, "ct-client", testnet.Role{NS: ns.Path(), Addr: "127.0.0.1:9443", Blocking: true, MayFail: true})
	cli.Expect(t, "ready")
	if got := cli.Line(t); got != "failed ECONNREFUSED" {
		t.Fatalf("client: %q", got)
	}
	r.wait(t)
	if !strings.Contains(r.stdout.String(), "connect_fail") || !strings.Contains(r.stderr.String(), "conntrace: 1 events, 0 lost") {
		t.Errorf("stdout:\n%s\nstderr:\n%s", r.stdout.String(), r.stderr.String())
	}
}

// TestHookModeByHand: --hooks names a mode; one this kernel lacks (doctor
// says which) ends in one line saying why and exit 1, one it has runs.
func TestHookModeByHand(t *testing.T) {
	testnet.RequireRoot(t)
	out, err := cliCommand(t, "doctor", "-o", "json").Output()
	var r doctor.Report
	if jerr := json.Unmarshal(out, &r); jerr != nil {
		t.Fatalf("doctor: %v %v\n%s", err, jerr, out)
	}
	for _, mc := range r.Modes {
		cmd := cliCommand(t, "watch", "--hooks", mc.Mode, "--port", "1", "--duration", "200ms")
		var stdout, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		err := cmd.Run()
		code := cmd.ProcessState.ExitCode()
		if mc.OK {
			if err != nil || !strings.Contains(stderr.String(), "conntrace: attached ("+mc.Mode+" hooks)") {
				t.Errorf("--hooks %s (doctor: ok): exit %d\n%s", mc.Mode, code, stderr.String())
			}
			continue
		}
		want := "conntrace: " + mc.Mode + " hooks: "
		if code != exitError || !strings.HasPrefix(stderr.String(), want) || strings.Count(stderr.String(), "\n") != 1 {
			t.Errorf("--hooks %s (doctor: unavailable): exit %d, stderr %q, want one line %q...", mc.Mode, code, stderr.String(), want)
		}
	}
}
