// SPDX-License-Identifier: Apache-2.0

package main

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
)

// kernelSeries are the kernels the suite boots: Debian bookworm's cloud
// kernels, with kprobes, fentry and BTF, and veth as a module. 6.12 is past
// Linux 6.10, where inet_csk_accept() changed its arguments; arm64's runs
// the objects and binaries built for arm64. The pattern selects the
// package; its number orders the builds, newest wins.
var kernelSeries = []series{
	{"6.1", "amd64", regexp.MustCompile(`^linux-image-6\.1\.0-(\d+)-cloud-amd64-unsigned$`)},
	{"6.12", "amd64", regexp.MustCompile(`^linux-image-6\.12\.(\d+)\+deb12-cloud-amd64-unsigned$`)},
	{"6.12-arm64", "arm64", regexp.MustCompile(`^linux-image-6\.12\.(\d+)\+deb12-cloud-arm64-unsigned$`)},
}

type series struct {
	name    string
	arch    string // GOARCH and Debian's architecture
	pattern *regexp.Regexp
}

func hostMain(args []string) int {
	fs := flag.NewFlagSet("vmtest", flag.ContinueOnError)
	cache := fs.String("cache", ".cache/vmtest", "where kernels and builds are kept")
	// A VM runs one suite: 1.5 to 4 minutes here (measured 2026-12-03:
	// the tracer's suite 146 to 251 s), more when the host is slow.
	timeout := fs.Duration("timeout", 15*time.Minute, "give up on a VM after this long")
	run := fs.String("run", "", "only tests matching this regexp (go test -run)")
	kernels := fs.String("kernels", "6.1,6.12,6.12-arm64", "the kernel series to boot, comma-separated")
	count := fs.Int("count", 1, "run each test this many times (go test -count), to chase a flake")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if err := host(*cache, *timeout, *run, *count, strings.Split(*kernels, ",")); err != nil {
		fmt.Fprintf(os.Stderr, "vmtest: %v\n", err)
		return 1
	}
	return 0
}

func host(cache string, timeout time.Duration, runFilter string, count int, kernels []string) error {
	cache, err := filepath.Abs(cache)
	if err != nil {
		return err
	}
	var chosen []series
	for _, k := range kernelSeries {
		if slices.Contains(kernels, k.name) {
			chosen = append(chosen, k)
		}
	}
	if len(chosen) == 0 {
		return fmt.Errorf("no kernel series among %q (have 6.1, 6.12, 6.12-arm64)", kernels)
	}
	// The test binaries and the init, built once per architecture.
	built := map[string]bool{}
	for _, k := range chosen {
		if built[k.arch] {
			continue
		}
		built[k.arch] = true
		bin := filepath.Join(cache, "bin", k.arch)
		for _, b := range testBuilds {
			if err := goBuild(k.arch, "test", "-c", "-o", filepath.Join(bin, b.out), b.pkg); err != nil {
				return err
			}
		}
		if err := goBuild(k.arch, "build", "-o", filepath.Join(bin, "init"), "./cmd/vmtest"); err != nil {
			return err
		}
	}

	// The kernels are fetched one after the other (apt-get). Then each run
	// of each kernel's plan boots a VM of its own (a boot takes seconds),
	// as many at once as the host has CPUs: a VM is one host thread
	// (single-threaded TCG, see boot), so two run side by side on two CPUs
	// in the time of one, and whichever finishes first takes the next run.
	// Each line of theirs is printed with its kernel and run in front.
	type vm struct {
		series
		vmlinuz, initrd string
		plan            plan
	}
	var vms []*vm
	var failed, crashed []string
	for _, k := range chosen {
		kdir, err := kernel(cache, k)
		if err == nil {
			v := &vm{series: k, initrd: filepath.Join(cache, "initramfs-"+k.name+".cpio.gz"),
				plan: testPlan(k.arch, timeout, runFilter, count)}
			if v.vmlinuz, err = writeKernelInitramfs(v.initrd, k, kdir, &v.plan); err == nil {
				vms = append(vms, v)
				continue
			}
		}
		fmt.Printf("vmtest: Linux %s: %v\n", k.name, err)
		failed = append(failed, k.name)
	}
	// The queue, longest runs first: on two CPUs, the two lanes end
	// closest together.
	type unit struct {
		*vm
		run int
	}
	var queue []unit
	for _, v := range vms {
		for i := range v.plan.Runs {
			queue = append(queue, unit{v, i})
		}
	}
	slices.SortStableFunc(queue, func(a, b unit) int { return b.plan.Runs[b.run].Cost - a.plan.Runs[a.run].Cost })
	var mu sync.Mutex
	var wg sync.WaitGroup
	var outs []*prefixWriter
	slots := make(chan struct{}, max(1, runtime.NumCPU()))
	start := time.Now()
	for _, u := range queue {
		wg.Add(1)
		slots <- struct{}{}
		go func() {
			defer func() { <-slots; wg.Done() }()
			r := u.plan.Runs[u.run]
			out := &prefixWriter{prefix: u.name + " " + r.Short + "| ", mu: &mu}
			mu.Lock()
			outs = append(outs, out)
			mu.Unlock()
			fmt.Fprintf(out, "vmtest: ===== Linux %s (%s): %s\n", u.name, u.arch, r.Name)
			err := boot(u.arch, u.vmlinuz, u.initrd, u.run, timeout, out)
			var crash guestCrash
			if errors.As(err, &crash) {
				// Once: see guestCrash.
				fmt.Fprintf(out, "vmtest: Linux %s, %s: %v; running it once more\n", u.name, r.Name, err)
				mu.Lock()
				crashed = append(crashed, fmt.Sprintf("%s (%s): %s", u.name, r.Name, crash))
				mu.Unlock()
				err = boot(u.arch, u.vmlinuz, u.initrd, u.run, timeout, out)
			}
			if err != nil {
				fmt.Fprintf(out, "vmtest: Linux %s, %s: %v\n", u.name, r.Name, err)
				mu.Lock()
				failed = append(failed, u.name+" ("+r.Name+")")
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	// Last, what failed and the lines before it: a log's tail shows it.
	for _, o := range outs {
		for _, line := range o.failures {
			fmt.Print("vmtest: failed: " + line)
		}
	}
	for _, c := range crashed {
		fmt.Println("vmtest: ran again after the guest kernel crashed: " + c)
	}
	fmt.Printf("vmtest: %d runs on %d kernels in %.0fs\n", len(queue), len(vms), time.Since(start).Seconds())
	if failed != nil {
		return fmt.Errorf("failed on Linux %s", strings.Join(failed, ", "))
	}
	return nil
}

// testBuilds are the test binaries the VMs run.
var testBuilds = []struct{ out, pkg string }{
	{"tracer.test", "./tracer"},
	{"conntrace.test", "./cmd/conntrace"},
}

// testPlan is what a VM of architecture arch runs.
func testPlan(arch string, timeout time.Duration, runFilter string, count int) plan {
	// The tracer's suite runs once per hook mode (the kernel has them all);
	// the mode comparison, which tries every mode itself, runs once.
	// TestCgoBuildDropsCapabilities needs the Go toolchain and a C
	// compiler, which the VM does not have; the host runs it. TestStorm
	// runs its short storm (3 s) in every mode: the function hooks are only
	// here.
	expect := "CONNTRACE_EXPECT_HOOKS=fentry,kprobe,tracepoint"
	// TestSocketTableFull fills a smaller table than the host's run: 136,000
	// sockets are more than an emulated VM opens in good time.
	// TestManyConnections likewise holds 1,000, not 100,000.
	socketTable := "CONNTRACE_SOCKET_TABLE=1024"
	manyConns := "CONNTRACE_MANY_CONNS=1000"
	// Timing targets are the host's (TestEventDelay).
	emulated := "CONNTRACE_EMULATED=1"
	args := func(skip, only string) []string {
		a := []string{"-test.v", "-test.count=" + strconv.Itoa(count), "-test.timeout=" + (timeout / 2).String(), "-test.skip=" + skip}
		if runFilter != "" {
			only = runFilter
		}
		if only != "" {
			a = append(a, "-test.run="+only)
		}
		return a
	}
	// arm64 is emulated at about the speed of amd64 (6.12: the tracer's
	// suite 236, 194 and 169 s in the three modes, the CLI's 174 s), but a
	// third kernel on a host of two CPUs adds half its time to make test.
	// It runs the tracer's whole suite in every mode (the kprobe and fentry
	// programs' register reads, the record as the arm64 build decodes it,
	// attribution on both ends) and, of the CLI's, the tests of its own
	// syscalls and netlink (capabilities, sock_diag), the end-to-end runs,
	// and the build's hook modes: the rest is the same Go code as amd64's.
	modes := []string{"fentry", "kprobe", "tracepoint"}
	// Seconds each run takes (measured on 6.1 and 6.12, 2026-12-06, in a
	// full make test): the longest start first.
	cost := map[string]int{"fentry": 260, "kprobe": 240, "tracepoint": 240, "cli": 180}
	cliOnly := ""
	if arch == "arm64" {
		cost = map[string]int{"fentry": 225, "kprobe": 205, "tracepoint": 240, "cli": 75}
		cliOnly = "^(TestVersion|TestDoctor|TestCapabilitiesDropped|TestWatchJSON|TestWatchFailures|TestServeMetrics|TestPortsAndWho|TestAudit)$"
	}
	// UDP's programs are the same in every mode (cgroup programs and
	// tp_btf): arm64 runs UDP's own tests in the tracepoint mode only
	// (amd64 in every mode).
	var p plan
	for i, mode := range modes {
		var skips []string
		if i > 0 {
			skips = append(skips, "TestHookModesAgree")
		}
		if arch == "arm64" && mode != "tracepoint" {
			skips = append(skips, "TestUDP", "TestHTTP3", "TestHostileDNS")
		}
		// DNS over TCP, the stub, the search list and the hostile
		// answers run the cgroup programs only, the same in every mode
		// (TestDNS, whose connections are named, runs in all three). The
		// backlog's bound is Go alone (16 to 28 s an arm64 run): amd64's
		// tracepoint mode runs it.
		if mode != "tracepoint" || arch == "arm64" {
			skips = append(skips, "TestBacklogWaitBounded")
		}
		if mode != "tracepoint" {
			skips = append(skips, "TestDNSOverTCP", "TestDNSStub", "TestDNSSearchList", "TestHostileDNS")
		}
		// The DNS tests run the host's programs (tools.go): amd64's, and
		// not dig. TestHostileDNS runs none.
		if arch == "arm64" {
			skips = append(skips, "TestDNS")
		} else {
			skips = append(skips, "TestDNSDig")
		}
		skip := strings.Join(skips, "|")
		p.Runs = append(p.Runs, run{Name: "./tracer (" + mode + " hooks)", Short: mode, Cost: cost[mode], Bin: "/bin/tracer.test",
			Args: args(skip, ""), Dir: "/", Env: []string{"CONNTRACE_TEST_HOOKS=" + mode, expect, socketTable, manyConns, emulated}})
	}
	// The VMs have no Go toolchain to build with, no podman, no
	// Prometheus server (TestServeMetrics reads serve's /metrics there),
	// and no shells or groff for the completions and the man page.
	// TestBindFailManyFilesUnderStorm holds lookups to a real-time bound
	// that an emulated CPU cannot meet. top's tables and the wiring of
	// --max-connections are Go over the tracer's events, whose own suites
	// run in every mode above: the host runs their tests.
	p.Runs = append(p.Runs, run{Name: "./cmd/conntrace", Short: "cli", Cost: cost["cli"], Bin: "/bin/conntrace.test",
		Args: args("TestCgoBuildDropsCapabilities|TestServePrometheus|TestServeImage|TestCompletionShells|TestManPage|TestBindFailManyFilesUnderStorm|TestTop|TestMaxConnections", cliOnly), Dir: "/", Env: []string{expect, emulated}})
	return p
}

// prefixWriter writes each line with prefix in front, whole, under mu:
// two VMs' output, line by line. It keeps each failed test's line and
// the lines before it (its log), to say again at the end.
type prefixWriter struct {
	prefix   string
	mu       *sync.Mutex
	recent   []string // the last failContext lines
	failures []string
}

const failContext = 12

func (w *prefixWriter) Write(b []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, line := range strings.SplitAfter(string(b), "\n") {
		if line == "" {
			continue
		}
		line = w.prefix + line
		fmt.Print(line)
		if strings.Contains(line, "--- FAIL: ") || strings.Contains(line, "panic: ") {
			if len(w.failures) < 10*failContext {
				w.failures = append(append(w.failures, w.recent...), line)
			}
			w.recent = w.recent[:0]
			continue
		}
		if len(w.recent) == failContext {
			w.recent = w.recent[1:]
		}
		w.recent = append(w.recent, line)
	}
	return len(b), nil
}

// writeKernelInitramfs packs plan p for k's extracted kernel package kdir
// into initrd, with the modules p needs from it, and returns the kernel.
func writeKernelInitramfs(initrd string, k series, kdir string, p *plan) (vmlinuz string, err error) {
	found, _ := filepath.Glob(filepath.Join(kdir, "boot", "vmlinuz-*"))
	if len(found) != 1 {
		return "", fmt.Errorf("%s: no vmlinuz", kdir)
	}
	kernel := found[0]
	// What the tests need that this kernel builds as modules (a normal host
	// loads them on demand through modprobe; the VM has none), in load
	// order; xz-compressed in newer packages.
	var modules []string
	p.Modules = nil
	for _, m := range []string{"drivers/net/veth.ko", "net/ipv4/inet_diag.ko", "net/ipv4/tcp_diag.ko", "net/ipv4/udp_diag.ko",
		// nftables, for the tests' firewall rules (drops, REJECT).
		"lib/libcrc32c.ko", "net/netfilter/nfnetlink.ko", "net/netfilter/nf_tables.ko",
		"net/ipv4/netfilter/nf_reject_ipv4.ko", "net/ipv6/netfilter/nf_reject_ipv6.ko",
		"net/netfilter/nft_reject.ko", "net/netfilter/nft_reject_inet.ko"} {
		found, _ = filepath.Glob(filepath.Join(kdir, "lib", "modules", "*", "kernel", m+"*"))
		if len(found) != 1 {
			return "", fmt.Errorf("%s: no module %s", kdir, m)
		}
		modules = append(modules, found[0])
		p.Modules = append(p.Modules, "/lib/modules/"+filepath.Base(found[0]))
	}
	tools, err := hostToolsFor(k.arch)
	if err != nil {
		return "", err
	}
	return kernel, writeInitramfs(initrd, filepath.Join(filepath.Dir(initrd), "bin", k.arch), modules, tools, *p)
}

// kernel returns k's extracted kernel package, downloading it once.
func kernel(cache string, k series) (string, error) {
	pattern := k.pattern
	var cached []string
	dirs, _ := filepath.Glob(filepath.Join(cache, "linux-image-*"))
	for _, d := range dirs {
		if pattern.MatchString(filepath.Base(d)) {
			cached = append(cached, d)
		}
	}
	if len(cached) > 0 {
		sortByBuild(cached, pattern)
		return cached[len(cached)-1], nil
	}
	name, err := newestKernelPackage(k)
	if err != nil {
		return "", err
	}
	dl := filepath.Join(cache, "download")
	if err := os.MkdirAll(dl, 0o755); err != nil {
		return "", err
	}
	fmt.Printf("vmtest: downloading %s\n", name)
	cmd := exec.Command("apt-get", "download", "-qq", name)
	cmd.Dir, cmd.Stdout, cmd.Stderr = dl, os.Stdout, os.Stderr
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("apt-get download %s: %w", name, err)
	}
	debs, _ := filepath.Glob(filepath.Join(dl, name+"_*.deb"))
	if len(debs) != 1 {
		return "", fmt.Errorf("apt-get download %s left %d packages", name, len(debs))
	}
	dir := filepath.Join(cache, name)
	tmp := dir + ".tmp"
	os.RemoveAll(tmp)
	if out, err := exec.Command("dpkg-deb", "-x", debs[0], tmp).CombinedOutput(); err != nil {
		return "", fmt.Errorf("dpkg-deb -x: %v: %s", err, out)
	}
	os.Remove(debs[0])
	return dir, os.Rename(tmp, dir)
}

func newestKernelPackage(k series) (string, error) {
	pattern := k.pattern
	if err := addArchitecture(k.arch); err != nil {
		return "", err
	}
	search := func() []string {
		out, _ := exec.Command("apt-cache", "search", "--names-only", `^linux-image-.*-cloud-`+k.arch+`-unsigned$`).Output()
		var names []string
		for _, line := range strings.Split(string(out), "\n") {
			if name, _, ok := strings.Cut(line, " "); ok && pattern.MatchString(name) {
				names = append(names, name)
			}
		}
		return names
	}
	names := search()
	if len(names) == 0 {
		// Fresh machines have empty package lists.
		exec.Command("apt-get", "update", "-qq").Run()
		names = search()
	}
	if len(names) == 0 {
		return "", fmt.Errorf("no package matching %s in apt's lists", pattern)
	}
	sortByBuild(names, pattern)
	return names[len(names)-1], nil
}

// addArchitecture lets apt fetch arch's packages: dpkg --add-architecture
// (a foreign one) and a fresh package list. Nothing is installed: the
// kernel package is only downloaded and unpacked.
func addArchitecture(arch string) error {
	native, err := exec.Command("dpkg", "--print-architecture").Output()
	if err != nil {
		return fmt.Errorf("dpkg --print-architecture: %w", err)
	}
	foreign, _ := exec.Command("dpkg", "--print-foreign-architectures").Output()
	if strings.TrimSpace(string(native)) == arch || slices.Contains(strings.Fields(string(foreign)), arch) {
		return nil
	}
	fmt.Printf("vmtest: dpkg --add-architecture %s\n", arch)
	if out, err := exec.Command("dpkg", "--add-architecture", arch).CombinedOutput(); err != nil {
		return fmt.Errorf("dpkg --add-architecture %s: %v: %s", arch, err, out)
	}
	if out, err := exec.Command("apt-get", "update", "-qq").CombinedOutput(); err != nil {
		return fmt.Errorf("apt-get update: %v: %s", err, out)
	}
	return nil
}

// sortByBuild orders package names (or folders named after them) by the
// number pattern captures.
func sortByBuild(names []string, pattern *regexp.Regexp) {
	build := func(n string) int {
		v, _ := strconv.Atoi(pattern.FindStringSubmatch(filepath.Base(n))[1])
		return v
	}
	sort.Slice(names, func(i, j int) bool { return build(names[i]) < build(names[j]) })
}

func goBuild(arch string, args ...string) error {
	cmd := exec.Command("go", args...)
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOARCH="+arch)
	cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("go %s: %w", strings.Join(args, " "), err)
	}
	return nil
}

// writeInitramfs packs the init, the test binaries in bin, the modules,
// the host's tools (by their path in the VM) and the plan.
func writeInitramfs(path, bin string, modules []string, tools map[string]string, p plan) error {
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	c := newCPIO(zw)
	for _, d := range []string{"proc", "sys", "dev", "tmp", "run", "etc"} {
		if err := c.Dir(d); err != nil {
			return err
		}
	}
	add := func(dst, src string, perm uint32) error {
		data, err := os.ReadFile(src)
		if err != nil {
			return err
		}
		return c.File(dst, perm, data)
	}
	if err := add("init", filepath.Join(bin, "init"), 0o755); err != nil {
		return err
	}
	for _, b := range testBuilds {
		if err := add("bin/"+b.out, filepath.Join(bin, b.out), 0o755); err != nil {
			return err
		}
	}
	for i, m := range modules {
		if err := add(p.Modules[i], m, 0o644); err != nil {
			return err
		}
	}
	if len(tools) > 0 {
		for _, dst := range slices.Sorted(maps.Keys(tools)) {
			if err := add(dst, tools[dst], 0o755); err != nil {
				return err
			}
		}
		for _, dst := range slices.Sorted(maps.Keys(etcFiles)) {
			if err := c.File(dst, 0o644, []byte(etcFiles[dst])); err != nil {
				return err
			}
		}
	}
	planJSON, _ := json.Marshal(p)
	if err := c.File("vmtest.json", 0o644, planJSON); err != nil {
		return err
	}
	if err := c.Close(); err != nil {
		return err
	}
	if err := zw.Close(); err != nil {
		return err
	}
	return os.WriteFile(path, buf.Bytes(), 0o644)
}

// boot runs the VM, streams its console, and reads the verdict.
func boot(arch, vmlinuz, initrd string, runIndex int, timeout time.Duration, w io.Writer) error {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	// Single-threaded TCG: with one host thread per vCPU (thread=multi), a
	// vCPU can keep running a stale translation of kernel text that another
	// vCPU live-patches (jump labels flipped when tracepoints attach) and
	// spin there forever: soft lockups in syscall_trace_enter.
	qemu, console := "qemu-system-x86_64", "ttyS0"
	machine := []string{"-cpu", "max"}
	if arch == "arm64" {
		// The virt board's PL011 UART is its console. Pointer
		// authentication with QEMU's own (cheap) algorithm: the
		// architected one costs most of an emulated arm64's time.
		qemu, console = "qemu-system-aarch64", "ttyAMA0"
		machine = []string{"-machine", "virt", "-cpu", "max,pauth-impdef=on"}
	}
	cmd := exec.CommandContext(ctx, qemu, append(machine,
		"-accel", "tcg,thread=single", "-smp", "2", "-m", "2048",
		"-nographic", "-no-reboot", "-nodefaults", "-serial", "stdio",
		"-kernel", vmlinuz, "-initrd", initrd,
		"-append", fmt.Sprintf("console=%s panic=-1 loglevel=4 rdinit=/init %s%d", console, runParam, runIndex))...)
	out, err := cmd.StdoutPipe()
	if err != nil {
		return err
	}
	cmd.Stderr = os.Stderr
	start := time.Now()
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("qemu: %w", err)
	}
	verdict, crash := "", guestCrash("")
	sc := bufio.NewScanner(io.TeeReader(out, io.Discard))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := strings.TrimRight(sc.Text(), "\r")
		fmt.Fprintln(w, line)
		if rest, ok := strings.CutPrefix(line, resultMarker); ok {
			verdict = strings.TrimSpace(rest)
		}
		if crash == "" {
			crash = crashLine(line)
		}
	}
	werr := cmd.Wait()
	fmt.Fprintf(w, "vmtest: VM ran %.0fs\n", time.Since(start).Seconds())
	switch {
	case ctx.Err() != nil:
		return fmt.Errorf("the VM did not finish within %v", timeout)
	case verdict == "PASS":
		return nil
	case verdict == "" && crash != "":
		return crash
	case verdict == "":
		return fmt.Errorf("the VM stopped without a verdict (qemu: %v)", werr)
	}
	return errors.New("tests failed in the VM")
}

// guestCrash is a run the guest kernel ended by crashing (the console's
// first line of it), before the tests' verdict. Emulation has done that
// once here: a double fault in the slab allocator with reserved EFLAGS
// bits set, no stack overflow, during a BPF program load that the
// same run on the same kernel loads in every other run (CI,
// 2026-12-04). A crashed run runs once more and is named at the end;
// one that crashes again fails, as does any test that failed.
type guestCrash string

func (c guestCrash) Error() string { return "the guest kernel crashed: " + string(c) }

// crashLine returns line when it says the kernel crashed, else "".
func crashLine(line string) guestCrash {
	for _, s := range []string{"Kernel panic - not syncing", "] Oops: ", "] BUG: ", "PANIC: double fault"} {
		if i := strings.Index(line, s); i >= 0 {
			return guestCrash(strings.TrimLeft(line[i:], "] "))
		}
	}
	return ""
}
