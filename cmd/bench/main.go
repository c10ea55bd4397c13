// SPDX-License-Identifier: Apache-2.0

// Command bench measures what tracing costs a connection storm: connstorm
// alone, then with conntrace in several configurations, libbpf-tools'
// tcplife, the hook-cost floor (conntrace built with -tags floor: the same
// hooks, programs that return at once), and bpftrace counting on the same
// tracepoints (a floor from outside). Configurations alternate within each
// round to cancel machine drift; medians over the rounds are reported as a
// markdown table, against the baseline and against the floor. `make bench`
// builds the binaries and runs it.
package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/conntrace/conntrace/tracer"
	"github.com/conntrace/conntrace/tracer/containers"
)

type config struct {
	name string
	cmd  []string // the tracer; nil for the baseline
	// ownReady: the tool takes --ready-file; else it is ready at its
	// first line of output.
	ownReady bool
	// lineEvents: each further line of its output is an event.
	lineEvents bool
	// profile: in the last round, write a CPU profile (conntrace's
	// CONNTRACE_CPUPROFILE) here.
	profile string
	// inContainer: the storm runs in a cgroup named as podman names a
	// container's, so that every event carries a cgroup and container.
	inContainer bool
}

type sample struct {
	connPerS  float64
	events    uint64
	lost      uint64
	cpu       float64 // tracer's user+system seconds
	rssMB     float64 // tracer's peak RSS
	cswPerS   float64 // tracer's context switches per second (voluntary and not)
	readyMs   float64
	failures  uint64
	hasCounts bool
	// progs: what each of the tracer's BPF programs cost over the storm.
	progs map[string]progCost
}

func main() {
	bin := flag.String("bin", "bin", "folder with conntrace, conntrace-floor and connstorm")
	rounds := flag.Int("rounds", 3, "rounds; each runs every configuration once")
	dur := flag.Duration("d", 10*time.Second, "storm duration per run")
	conns := flag.Int("c", 4, "concurrent dialers")
	closeHow := flag.String("close", "rst", "how connstorm's clients close: rst (SO_LINGER 0: the machine's full rate) or fin")
	payload := flag.Int("payload", 0, "bytes each side of a storm connection sends (UDP: each datagram's)")
	udp := flag.String("udp", "", "a UDP storm instead (connstorm -udp): stream, rr or flows")
	dns := flag.Bool("dns", false, "a DNS query storm instead: dnsperf asking dnsmasq, each in a network namespace of its own")
	out := flag.String("o", "", "also write the markdown table to this file")
	tcplife := flag.String("tcplife", "/usr/sbin/tcplife", "libbpf-tools tcplife")
	bpftrace := flag.String("bpftrace", "/usr/bin/bpftrace", "bpftrace")
	only := flag.String("only", "", "run only the configurations whose name matches this regexp (and the baseline)")
	other := flag.String("other", "", "also run this conntrace binary (another build: what a change costs)")
	otherArgs := flag.String("other-args", "watch -o json", "the -other binary's arguments (output to /dev/null)")
	flag.Parse()
	var err error
	if bpfStats, err = tracer.EnableStats(); err != nil {
		fmt.Fprintf(os.Stderr, "bench: %v\n", err)
		os.Exit(1)
	}
	storm := stormArgs{conns: *conns, close: *closeHow, payload: *payload, udp: *udp}
	if *dns {
		queries, undo, err := dnsSetup()
		if err != nil {
			fmt.Fprintf(os.Stderr, "bench: -dns: %v\n", err)
			os.Exit(1)
		}
		atExit = undo
		storm.dns = queries
	}

	ct, floor := filepath.Join(*bin, "conntrace"), filepath.Join(*bin, "conntrace-floor")
	profile := filepath.Join(os.TempDir(), fmt.Sprintf("bench-json-%d.prof", os.Getpid()))
	configs := []config{
		{name: "baseline (no tracer)"},
		{name: "conntrace watch -o json > /dev/null", cmd: []string{ct, "watch", "-o", "json"}, ownReady: true, profile: profile},
		{name: "conntrace watch -o json > /dev/null, storm in a container's cgroup", cmd: []string{ct, "watch", "-o", "json"}, ownReady: true, inContainer: true},
		{name: "conntrace watch -o json -t > /dev/null (UDP not traced)", cmd: []string{ct, "watch", "-o", "json", "-t"}, ownReady: true},
		{name: "conntrace watch --port 1 (all filtered in the kernel)", cmd: []string{ct, "watch", "--port", "1"}, ownReady: true},
		{name: "conntrace watch -o text > /dev/null", cmd: []string{ct, "watch", "-o", "text"}, ownReady: true},
		// top's aggregation of every event, an object a second.
		{name: "conntrace top -o json > /dev/null", cmd: []string{ct, "top", "-o", "json"}, ownReady: true},
		// Counting into metrics instead of writing lines (no scraper: a
		// scrape's cost is per series, not per event).
		{name: "conntrace serve (Prometheus metrics)", cmd: []string{ct, "serve", "--listen", "127.0.0.1:0"}, ownReady: true},
		{name: "hook-cost floor (same hooks, empty programs)", cmd: []string{floor, "watch", "-o", "json"}, ownReady: true},
	}
	if *other != "" {
		configs = append(configs, config{name: "other build: " + *other + " " + *otherArgs,
			cmd: append([]string{*other}, strings.Fields(*otherArgs)...), ownReady: true})
	}
	// bpftrace's count and tcplife are TCP's.
	tcp := *udp == "" && !*dns
	if _, err := os.Stat(*bpftrace); tcp && err == nil {
		// Ready at its first line ("Attaching N probes...").
		configs = append(configs, config{name: "bpftrace counting on the same tracepoints", cmd: []string{*bpftrace, "-e", bpftraceCount}})
	} else if tcp {
		fmt.Fprintf(os.Stderr, "bench: %s not found (apt-get install bpftrace): skipped\n", *bpftrace)
	}
	if _, err := os.Stat(*tcplife); tcp && err == nil {
		// Line-buffered: its header says when it is attached.
		configs = append(configs, config{name: "libbpf-tools tcplife > /dev/null", cmd: []string{"stdbuf", "-oL", *tcplife}, lineEvents: true})
	} else if tcp {
		fmt.Fprintf(os.Stderr, "bench: %s not found (apt-get install libbpf-tools): skipped\n", *tcplife)
	}

	if *only != "" {
		re, err := regexp.Compile(*only)
		if err != nil {
			fmt.Fprintf(os.Stderr, "bench: -only: %v\n", err)
			exit(2)
		}
		configs = slices.DeleteFunc(configs, func(c config) bool { return c.cmd != nil && !re.MatchString(c.name) })
	}
	results := make([][]sample, len(configs))
	for r := range *rounds {
		order := make([]int, len(configs))
		for i := range order {
			order[i] = (i + r) % len(configs) // rotate: no config always first
		}
		for _, i := range order {
			c := configs[i]
			if r < *rounds-1 {
				c.profile = ""
			}
			s, err := runOnce(c, filepath.Join(*bin, "connstorm"), *dur, storm)
			if err != nil {
				fmt.Fprintf(os.Stderr, "bench: %s: %v\n", configs[i].name, err)
				exit(1)
			}
			fmt.Fprintf(os.Stderr, "bench: round %d: %-55s %8.0f %s\n", r+1, configs[i].name, s.connPerS, storm.unit())
			results[i] = append(results[i], s)
		}
	}

	table := render(configs, results, *dur, storm, *rounds) + renderCosts(configs, results, *dur, storm.unit()) + profileTop(ct, profile)
	fmt.Print(table)
	if *out != "" {
		if err := os.WriteFile(*out, []byte(table), 0o644); err != nil {
			fmt.Fprintf(os.Stderr, "bench: %v\n", err)
			exit(1)
		}
	}
	exit(0)
}

// bpfStats keeps bpf_stats on while the bench runs (for every
// configuration, the baseline's none included: its cost is in each).
var bpfStats io.Closer

// atExit undoes what the run set up (the DNS storm's namespaces).
var atExit = func() {}

func exit(code int) {
	atExit()
	os.Exit(code)
}

var summaryRE = regexp.MustCompile(`conntrace: (\d+) events, (\d+) lost`)

// bpftraceCount counts on every tracepoint conntrace's tracepoint mode
// attaches to, doing nothing else.
const bpftraceCount = `tracepoint:sock:inet_sock_set_state, tracepoint:tcp:tcp_receive_reset, tracepoint:tcp:tcp_send_reset,
tracepoint:syscalls:sys_enter_connect, tracepoint:syscalls:sys_exit_connect, tracepoint:syscalls:sys_enter_bind,
tracepoint:syscalls:sys_exit_bind, tracepoint:syscalls:sys_exit_accept4, tracepoint:syscalls:sys_exit_accept { @ = count(); }`

// stormArgs say what storm connstorm makes.
type stormArgs struct {
	conns, payload int
	close, udp     string
	dns            string // dnsperf's query file: a DNS storm
}

func (a stormArgs) String() string {
	if a.dns != "" {
		return fmt.Sprintf("(dnsperf -c %d asking dnsmasq for %d names, over a veth pair)", a.conns, dnsNames)
	}
	if a.udp != "" {
		return fmt.Sprintf("-udp %s -c %d -payload %d", a.udp, a.conns, a.payload)
	}
	return fmt.Sprintf("-c %d -close %s -payload %d", a.conns, a.close, a.payload)
}

// args are connstorm's arguments.
func (a stormArgs) args(dur time.Duration) []string {
	args := []string{"-json", "-d", dur.String(), "-c", strconv.Itoa(a.conns), "-payload", strconv.Itoa(a.payload)}
	if a.udp != "" {
		return append(args, "-udp", a.udp)
	}
	return append(args, "-close", a.close)
}

// unit is what the storm's rate counts.
func (a stormArgs) unit() string {
	if a.dns != "" {
		return "queries/s"
	}
	switch a.udp {
	case "":
		return "conn/s"
	case "stream":
		return "datagrams/s"
	case "flows":
		return "flows/s"
	}
	return "exchanges/s"
}

// runOnce starts the tracer (if any), waits until it is attached, runs the
// storm, stops the tracer with SIGINT and collects its numbers.
func runOnce(c config, connstorm string, dur time.Duration, a stormArgs) (sample, error) {
	var s sample
	var tr *exec.Cmd
	var progsBefore map[string]progCost
	lastProg := lastProgID()
	var stderr bytes.Buffer
	lines := make(chan int, 1)
	if c.cmd != nil {
		tr = exec.Command(c.cmd[0], c.cmd[1:]...)
		tr.Stderr = &stderr
		if c.profile != "" {
			os.Remove(c.profile)
			tr.Env = append(os.Environ(), "CONNTRACE_CPUPROFILE="+c.profile)
		}
		ready := filepath.Join(os.TempDir(), fmt.Sprintf("bench-ready-%d", os.Getpid()))
		os.Remove(ready)
		if c.ownReady {
			tr.Args = append(tr.Args, "--ready-file", ready)
			tr.Stdout = io.Discard // /dev/null: the writes still happen
		}
		var stdout io.ReadCloser
		if !c.ownReady {
			var err error
			if stdout, err = tr.StdoutPipe(); err != nil {
				return s, err
			}
		}
		start := time.Now()
		if err := tr.Start(); err != nil {
			return s, err
		}
		if c.ownReady {
			for {
				if _, err := os.Stat(ready); err == nil {
					break
				}
				if time.Since(start) > 30*time.Second {
					tr.Process.Kill()
					return s, fmt.Errorf("not ready after 30s: %s", stderr.String())
				}
				time.Sleep(2 * time.Millisecond)
			}
			os.Remove(ready)
		} else {
			// Ready at its header line; then count event lines.
			br := bufio.NewReader(stdout)
			if _, err := br.ReadString('\n'); err != nil {
				tr.Process.Kill()
				return s, fmt.Errorf("no output: %v: %s", err, stderr.String())
			}
			go func() {
				n := 0
				for {
					if _, err := br.ReadSlice('\n'); err == bufio.ErrBufferFull {
						continue
					} else if err != nil {
						break
					}
					n++
				}
				lines <- n
			}()
		}
		s.readyMs = float64(time.Since(start).Microseconds()) / 1000
		var err error
		if progsBefore, err = progCosts(lastProg); err != nil {
			tr.Process.Kill()
			return s, err
		}
	}

	storm := exec.Command(connstorm, a.args(dur)...)
	if a.dns != "" {
		storm = dnsStorm(a.dns, dur, a.conns)
	}
	if c.inContainer {
		cg, remove, err := containerCgroup()
		if err != nil {
			if tr != nil {
				tr.Process.Kill()
			}
			return s, err
		}
		defer remove()
		storm.SysProcAttr = &syscall.SysProcAttr{UseCgroupFD: true, CgroupFD: int(cg.Fd())}
	}
	out, err := storm.Output()
	if err != nil {
		if tr != nil {
			tr.Process.Kill()
		}
		return s, fmt.Errorf("connstorm: %v", err)
	}
	if a.dns != "" {
		if s.connPerS, s.failures, err = parseDnsperf(out); err != nil {
			return s, err
		}
	} else {
		var res struct {
			PerSecond float64 `json:"conn_per_s"`
			Failures  uint64  `json:"failures"`
		}
		if err := json.Unmarshal(out, &res); err != nil {
			return s, fmt.Errorf("connstorm said %q: %v", out, err)
		}
		s.connPerS, s.failures = res.PerSecond, res.Failures
	}

	if tr != nil {
		after, err := progCosts(lastProg)
		if err != nil {
			tr.Process.Kill()
			return s, err
		}
		s.progs = since(progsBefore, after)
		time.Sleep(200 * time.Millisecond) // the last closes
		tr.Process.Signal(syscall.SIGINT)
		if !c.ownReady {
			// All reads before Wait, which closes the pipe.
			s.events = uint64(<-lines)
			s.hasCounts = c.lineEvents
		}
		tr.Wait()
		if ru, ok := tr.ProcessState.SysUsage().(*syscall.Rusage); ok {
			s.cpu = time.Duration(ru.Utime.Nano() + ru.Stime.Nano()).Seconds()
			s.rssMB = float64(ru.Maxrss) / 1024
			s.cswPerS = float64(ru.Nvcsw+ru.Nivcsw) / dur.Seconds()
		}
		if m := summaryRE.FindStringSubmatch(stderr.String()); m != nil {
			s.events, _ = strconv.ParseUint(m[1], 10, 64)
			s.lost, _ = strconv.ParseUint(m[2], 10, 64)
			s.hasCounts = true
		}
	}
	return s, nil
}

// profileTop is the top 10 of the JSON run's CPU profile, as markdown.
func profileTop(bin, profile string) string {
	defer os.Remove(profile)
	out, err := exec.Command("go", "tool", "pprof", "-top", "-nodecount", "10", bin, profile).CombinedOutput()
	if err != nil {
		return fmt.Sprintf("\nno profile of the JSON run: %v: %s\n", err, out)
	}
	return "\nCPU profile of `conntrace watch -o json` (last round, `go tool pprof -top -nodecount 10`):\n\n```\n" + string(out) + "```\n"
}

func median(xs []float64) float64 {
	xs = slices.Clone(xs)
	slices.Sort(xs)
	if len(xs)%2 == 1 {
		return xs[len(xs)/2]
	}
	return (xs[len(xs)/2-1] + xs[len(xs)/2]) / 2
}

func render(configs []config, results [][]sample, dur time.Duration, a stormArgs, rounds int) string {
	var b strings.Builder
	host, _ := os.Hostname()
	var uts syscall.Utsname
	syscall.Uname(&uts)
	release := ""
	for _, c := range uts.Release {
		if c == 0 {
			break
		}
		release += string(rune(c))
	}
	what := "connstorm %s -d %s on loopback"
	if a.dns != "" {
		what = "a DNS storm %s for %s"
	}
	fmt.Fprintf(&b, what+", %d rounds, medians; Linux %s, %d CPUs (%s)\n\n",
		a, dur, rounds, release, runtime.NumCPU(), host)
	b.WriteString("| configuration | " + a.unit() + " | vs baseline | vs floor | events | lost | tracer CPU s | peak RSS MB | ctx switches/s | ready ms | storm failures | BPF ns per " + perUnit(a.unit()) + " |\n")
	b.WriteString("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n")
	rateOf := func(i int) float64 {
		var xs []float64
		for _, s := range results[i] {
			xs = append(xs, s.connPerS)
		}
		return median(xs)
	}
	var base, floor float64
	for i, c := range configs {
		if strings.HasPrefix(c.name, "hook-cost floor") {
			floor = rateOf(i)
		}
	}
	for i, c := range configs {
		get := func(f func(sample) float64) float64 {
			var xs []float64
			for _, s := range results[i] {
				xs = append(xs, f(s))
			}
			return median(xs)
		}
		rate := rateOf(i)
		if i == 0 {
			base = rate
		}
		vsFloor := "-"
		if floor > 0 && c.cmd != nil {
			vsFloor = fmt.Sprintf("%.2fx", rate/floor)
		}
		cell := func(ok bool, v string) string {
			if !ok {
				return "-"
			}
			return v
		}
		tracer := c.cmd != nil
		counts := tracer && results[i][0].hasCounts
		var lost, failures uint64
		var rss float64
		for _, s := range results[i] {
			lost += s.lost
			failures += s.failures
			rss = max(rss, s.rssMB)
		}
		bpf := get(func(s sample) float64 {
			if s.connPerS == 0 {
				return 0
			}
			return float64(total(s.progs).Nanoseconds()) / (s.connPerS * dur.Seconds())
		})
		fmt.Fprintf(&b, "| %s | %.0f | %.2fx | %s | %s | %s | %s | %s | %s | %s | %d | %s |\n", c.name, rate, rate/base, vsFloor,
			cell(counts, fmt.Sprintf("%.0f", get(func(s sample) float64 { return float64(s.events) }))),
			cell(counts && c.ownReady, strconv.FormatUint(lost, 10)),
			cell(tracer, fmt.Sprintf("%.2f", get(func(s sample) float64 { return s.cpu }))),
			cell(tracer, fmt.Sprintf("%.1f", rss)),
			cell(tracer, fmt.Sprintf("%.0f", get(func(s sample) float64 { return s.cswPerS }))),
			cell(tracer && c.ownReady, fmt.Sprintf("%.0f", get(func(s sample) float64 { return s.readyMs }))), failures,
			cell(tracer, fmt.Sprintf("%.0f", bpf)))
	}
	b.WriteString("\nlost and storm failures: summed over the rounds (conntrace counts its losses; tcplife does not report any). events: median per run. BPF ns: the time of every program the tracer loaded (bpf_stats, on for every configuration), per unit of the storm, median.\n")
	return b.String()
}

// containerCgroup makes and opens a cgroup v2 directory named as podman
// names a container's, "libpod-" and 64 hex digits, for the storm to run
// in; remove closes and removes it once the storm has exited.
func containerCgroup() (cg *os.File, remove func(), err error) {
	mount, err := containers.Mount()
	if err != nil {
		return nil, nil, err
	}
	parent := filepath.Join(mount, fmt.Sprintf("conntrace-bench-%d", os.Getpid()))
	dir := filepath.Join(parent, "libpod-"+strings.Repeat("be", 32))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, nil, err
	}
	if cg, err = os.Open(dir); err != nil {
		os.Remove(dir)
		os.Remove(parent)
		return nil, nil, err
	}
	return cg, func() {
		cg.Close()
		os.Remove(dir)
		os.Remove(parent)
	}, nil
}
