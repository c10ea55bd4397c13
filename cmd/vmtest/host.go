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
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
)

// kernelSeries are the kernels the suite boots: Debian bookworm's cloud
// kernels, with kprobes, fentry and BTF, and veth as a module. 6.12 is past
// Linux 6.10, where inet_csk_accept() changed its arguments. The pattern
// selects the package; its number orders the builds, newest wins.
var kernelSeries = []struct {
	name    string
	pattern *regexp.Regexp
}{
	{"6.1", regexp.MustCompile(`^linux-image-6\.1\.0-(\d+)-cloud-amd64-unsigned$`)},
	{"6.12", regexp.MustCompile(`^linux-image-6\.12\.(\d+)\+deb12-cloud-amd64-unsigned$`)},
}

func hostMain(args []string) int {
	fs := flag.NewFlagSet("vmtest", flag.ContinueOnError)
	cache := fs.String("cache", ".cache/vmtest", "where kernels and builds are kept")
	// A VM takes 11-12 minutes here (measured 2026-12-03: Linux 6.1's
	// tracer suites 218, 193 and 178 s in the three modes, then the CLI's),
	// more when the host is slow; both run at once.
	timeout := fs.Duration("timeout", 18*time.Minute, "give up on a VM after this long")
	run := fs.String("run", "", "only tests matching this regexp (go test -run)")
	kernels := fs.String("kernels", "6.1,6.12", "the kernel series to boot, comma-separated")
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
	bin := filepath.Join(cache, "bin")
	builds := []struct{ out, pkg string }{
		{"tracer.test", "./tracer"},
		{"conntrace.test", "./cmd/conntrace"},
	}
	for _, b := range builds {
		if err := goBuild("test", "-c", "-o", filepath.Join(bin, b.out), b.pkg); err != nil {
			return err
		}
	}
	if err := goBuild("build", "-o", filepath.Join(bin, "init"), "./cmd/vmtest"); err != nil {
		return err
	}

	// The tracer's suite runs once per hook mode (the kernel has them all);
	// the mode comparison, which tries every mode itself, runs once.
	// TestCgoBuildDropsCapabilities needs the Go toolchain and a C
	// compiler, which the VM does not have; the host runs it. TestStorm
	// runs its short storm (3 s) in every mode: the function hooks are only
	// here.
	expect := "CONNTRACE_EXPECT_HOOKS=fentry,kprobe,tracepoint"
	// TestSocketTableFull fills a smaller table than the host's run: 136,000
	// sockets are more than an emulated VM opens in good time.
	// TestManyConnections likewise holds 2,000, not 100,000.
	socketTable := "CONNTRACE_SOCKET_TABLE=2048"
	manyConns := "CONNTRACE_MANY_CONNS=2000"
	// Timing targets are the host's (TestEventDelay).
	emulated := "CONNTRACE_EMULATED=1"
	args := func(skip string) []string {
		a := []string{"-test.v", "-test.count=" + strconv.Itoa(count), "-test.timeout=" + (timeout / 2).String(), "-test.skip=" + skip}
		if runFilter != "" {
			a = append(a, "-test.run="+runFilter)
		}
		return a
	}
	var p plan
	for i, mode := range []string{"fentry", "kprobe", "tracepoint"} {
		skip := ""
		if i > 0 {
			skip = "TestHookModesAgree"
		}
		p.Runs = append(p.Runs, run{Name: "./tracer (" + mode + " hooks)", Bin: "/bin/tracer.test",
			Args: args(skip), Dir: "/", Env: []string{"CONNTRACE_TEST_HOOKS=" + mode, expect, socketTable, manyConns, emulated}})
	}
	// The VMs have no Go toolchain to build with, no podman and no
	// Prometheus server (TestServeMetrics reads serve's /metrics there).
	p.Runs = append(p.Runs, run{Name: "./cmd/conntrace", Bin: "/bin/conntrace.test",
		Args: args("TestCgoBuildDropsCapabilities|TestServePrometheus|TestServeImage"), Dir: "/", Env: []string{expect, emulated}})
	var tests []string
	for _, b := range builds {
		tests = append(tests, b.out)
	}
	// The kernels are fetched one after the other (apt-get), then booted
	// at once: a VM is one host thread (single-threaded TCG, see boot), so
	// two run side by side on two CPUs in the time of one. Each line of
	// theirs is printed with its kernel's name in front.
	type vm struct{ name, kdir string }
	var vms []vm
	var failed []string
	for _, k := range kernelSeries {
		if !slices.Contains(kernels, k.name) {
			continue
		}
		kdir, err := kernel(cache, k.pattern)
		if err != nil {
			fmt.Printf("vmtest: Linux %s: %v\n", k.name, err)
			failed = append(failed, k.name)
			continue
		}
		vms = append(vms, vm{k.name, kdir})
	}
	var mu sync.Mutex
	var wg sync.WaitGroup
	for _, v := range vms {
		wg.Add(1)
		go func() {
			defer wg.Done()
			out := &prefixWriter{prefix: v.name + "| ", mu: &mu}
			fmt.Fprintf(out, "vmtest: ===== Linux %s\n", v.name)
			if err := bootKernel(cache, v.name, v.kdir, bin, tests, p, timeout, out); err != nil {
				fmt.Fprintf(out, "vmtest: Linux %s: %v\n", v.name, err)
				mu.Lock()
				failed = append(failed, v.name)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if failed != nil {
		return fmt.Errorf("failed on Linux %s", strings.Join(failed, ", "))
	}
	return nil
}

// prefixWriter writes each line with prefix in front, whole, under mu:
// two VMs' output, line by line.
type prefixWriter struct {
	prefix string
	mu     *sync.Mutex
}

func (w *prefixWriter) Write(b []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, line := range strings.SplitAfter(string(b), "\n") {
		if line != "" {
			fmt.Print(w.prefix + line)
		}
	}
	return len(b), nil
}

// bootKernel runs plan p on the extracted kernel package kdir (Linux name).
func bootKernel(cache, name, kdir, bin string, tests []string, p plan, timeout time.Duration, out io.Writer) error {
	vmlinuz, _ := filepath.Glob(filepath.Join(kdir, "boot", "vmlinuz-*"))
	if len(vmlinuz) != 1 {
		return fmt.Errorf("%s: no vmlinuz", kdir)
	}
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
		found, _ := filepath.Glob(filepath.Join(kdir, "lib", "modules", "*", "kernel", m+"*"))
		if len(found) != 1 {
			return fmt.Errorf("%s: no module %s", kdir, m)
		}
		modules = append(modules, found[0])
		p.Modules = append(p.Modules, "/lib/modules/"+filepath.Base(found[0]))
	}
	initrd := filepath.Join(cache, "initramfs-"+name+".cpio.gz")
	if err := writeInitramfs(initrd, bin, tests, modules, p); err != nil {
		return err
	}
	return boot(vmlinuz[0], initrd, timeout, out)
}

// kernel returns the extracted kernel package matching pattern,
// downloading it once.
func kernel(cache string, pattern *regexp.Regexp) (string, error) {
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
	name, err := newestKernelPackage(pattern)
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

func newestKernelPackage(pattern *regexp.Regexp) (string, error) {
	search := func() []string {
		out, _ := exec.Command("apt-cache", "search", "--names-only", `^linux-image-.*-cloud-amd64-unsigned$`).Output()
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

// sortByBuild orders package names (or folders named after them) by the
// number pattern captures.
func sortByBuild(names []string, pattern *regexp.Regexp) {
	build := func(n string) int {
		v, _ := strconv.Atoi(pattern.FindStringSubmatch(filepath.Base(n))[1])
		return v
	}
	sort.Slice(names, func(i, j int) bool { return build(names[i]) < build(names[j]) })
}

func goBuild(args ...string) error {
	cmd := exec.Command("go", args...)
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("go %s: %w", strings.Join(args, " "), err)
	}
	return nil
}

// writeInitramfs packs the init, the test binaries in bin, the modules and
// the plan.
func writeInitramfs(path, bin string, tests, modules []string, p plan) error {
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
	for _, b := range tests {
		if err := add("bin/"+b, filepath.Join(bin, b), 0o755); err != nil {
			return err
		}
	}
	for i, m := range modules {
		if err := add(p.Modules[i], m, 0o644); err != nil {
			return err
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
func boot(vmlinuz, initrd string, timeout time.Duration, w io.Writer) error {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	// Single-threaded TCG: with one host thread per vCPU (thread=multi), a
	// vCPU can keep running a stale translation of kernel text that another
	// vCPU live-patches (jump labels flipped when tracepoints attach) and
	// spin there forever: soft lockups in syscall_trace_enter.
	cmd := exec.CommandContext(ctx, "qemu-system-x86_64",
		"-accel", "tcg,thread=single", "-cpu", "max", "-smp", "2", "-m", "2048",
		"-nographic", "-no-reboot", "-nodefaults", "-serial", "stdio",
		"-kernel", vmlinuz, "-initrd", initrd,
		"-append", "console=ttyS0 panic=-1 loglevel=4 rdinit=/init")
	out, err := cmd.StdoutPipe()
	if err != nil {
		return err
	}
	cmd.Stderr = os.Stderr
	start := time.Now()
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("qemu: %w", err)
	}
	verdict := ""
	sc := bufio.NewScanner(io.TeeReader(out, io.Discard))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := strings.TrimRight(sc.Text(), "\r")
		fmt.Fprintln(w, line)
		if rest, ok := strings.CutPrefix(line, resultMarker); ok {
			verdict = strings.TrimSpace(rest)
		}
	}
	werr := cmd.Wait()
	fmt.Fprintf(w, "vmtest: VM ran %.0fs\n", time.Since(start).Seconds())
	switch {
	case ctx.Err() != nil:
		return fmt.Errorf("the VM did not finish within %v", timeout)
	case verdict == "PASS":
		return nil
	case verdict == "":
		return fmt.Errorf("the VM stopped without a verdict (qemu: %v)", werr)
	}
	return errors.New("tests failed in the VM")
}
