// SPDX-License-Identifier: Apache-2.0

package main

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// initMain is PID 1 in the VM.
func initMain() int {
	code := runPlan()
	fmt.Printf("%s %s\n", resultMarker, map[bool]string{true: "PASS", false: "FAIL"}[code == 0])
	unix.Sync()
	unix.Reboot(unix.LINUX_REBOOT_CMD_POWER_OFF)
	return code
}

func runPlan() int {
	for _, m := range []struct{ src, dst, fs string }{
		{"proc", "/proc", "proc"},
		{"sysfs", "/sys", "sysfs"},
		{"devtmpfs", "/dev", "devtmpfs"},
		{"tmpfs", "/tmp", "tmpfs"},
		{"tmpfs", "/run", "tmpfs"},
		{"bpf", "/sys/fs/bpf", "bpf"},
		{"tracefs", "/sys/kernel/tracing", "tracefs"},
		// As systemd mounts it: the cgroup v2 hierarchy (containers,
		// --cgroup).
		{"cgroup2", "/sys/fs/cgroup", "cgroup2"},
	} {
		os.MkdirAll(m.dst, 0o755)
		if err := unix.Mount(m.src, m.dst, m.fs, 0, ""); err != nil {
			fmt.Printf("vmtest: mount %s: %v\n", m.dst, err)
			return 1
		}
	}
	var uts unix.Utsname
	unix.Uname(&uts)
	fmt.Printf("vmtest: kernel %s\n", unix.ByteSliceToString(uts.Release[:]))

	data, err := os.ReadFile("/vmtest.json")
	if err != nil {
		fmt.Printf("vmtest: %v\n", err)
		return 1
	}
	var p plan
	if err := json.Unmarshal(data, &p); err != nil {
		fmt.Printf("vmtest: plan: %v\n", err)
		return 1
	}
	for _, m := range p.Modules {
		if err := loadModule(m); err != nil {
			fmt.Printf("vmtest: load %s: %v\n", m, err)
			return 1
		}
	}
	if lo, err := netlink.LinkByName("lo"); err == nil {
		netlink.LinkSetUp(lo)
	}

	// The host boots a VM per run and names it on the command line.
	runs := p.Runs
	cmdline, _ := os.ReadFile("/proc/cmdline")
	for _, f := range strings.Fields(string(cmdline)) {
		if v, ok := strings.CutPrefix(f, runParam); ok {
			i, err := strconv.Atoi(v)
			if err != nil || i < 0 || i >= len(p.Runs) {
				fmt.Printf("vmtest: %s%s: the plan has %d runs\n", runParam, v, len(p.Runs))
				return 1
			}
			runs = p.Runs[i : i+1]
		}
	}
	failed := 0
	for _, r := range runs {
		start := time.Now()
		fmt.Printf("vmtest: === %s\n", r.Name)
		cmd := exec.Command(r.Bin, r.Args...)
		cmd.Env = append([]string{"PATH=/bin", "HOME=/tmp", "TMPDIR=/tmp"}, r.Env...)
		cmd.Dir = r.Dir
		cmd.Stdout, cmd.Stderr = os.Stdout, os.Stdout
		err := cmd.Run()
		status := "ok"
		if err != nil {
			status = "FAILED: " + err.Error()
			failed++
		}
		fmt.Printf("vmtest: --- %s: %s (%.1fs)\n", r.Name, status, time.Since(start).Seconds())
	}
	return failed
}

func loadModule(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	flags := 0
	if strings.HasSuffix(path, ".xz") || strings.HasSuffix(path, ".zst") {
		flags = unix.MODULE_INIT_COMPRESSED_FILE // the kernel decompresses it
	}
	if err := unix.FinitModule(int(f.Fd()), "", flags); err != nil && err != unix.EEXIST {
		return err
	}
	return nil
}
