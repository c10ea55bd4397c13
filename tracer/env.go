// SPDX-License-Identifier: Apache-2.0

package tracer

import (
	"errors"
	"fmt"
	"io/fs"
	"os"

	"golang.org/x/sys/unix"
)

// ErrNeedRoot says what loading and attaching need.
var ErrNeedRoot = errors.New("this needs root: run it with sudo (or grant CAP_BPF and CAP_PERFMON)")

// checkPrivileges says in one line what is missing, before the kernel
// answers EPERM somewhere less obvious.
func checkPrivileges() error {
	admin, ok := HasCapability(CapSysAdmin)
	if !ok || admin {
		return nil // held, or cannot tell: let the kernel decide
	}
	bpf, _ := HasCapability(CapBPF)
	perfmon, _ := HasCapability(CapPerfmon)
	if bpf && perfmon {
		return nil
	}
	return ErrNeedRoot
}

// KernelBTF is where the running kernel publishes its BTF.
const KernelBTF = "/sys/kernel/btf/vmlinux"

// checkEnvironment reports what the kernel lacks in one line. btfPath is
// the user's BTF for a kernel without its own ("": none).
func checkEnvironment(btfPath string) error {
	if err := checkPrivileges(); err != nil {
		return err
	}
	if btfPath == "" {
		if !kernelHasBTF() {
			return fmt.Errorf("kernel BTF not found at %s (a kernel built without CONFIG_DEBUG_INFO_BTF): give one for this kernel with --btf PATH", KernelBTF)
		}
	} else if _, err := os.Stat(btfPath); err != nil {
		return fmt.Errorf("--btf: %w", err)
	}
	dir, err := Tracefs()
	if err != nil {
		return err
	}
	if dir == "" {
		return ErrNoTracefs
	}
	return nil
}

// ErrNoTracefs: Open needs tracefs mounted (MountTracefs).
var ErrNoTracefs = errors.New("tracefs is not mounted, and the tracepoints attach through it: mount it with 'mount -t tracefs tracefs " + tracefsDir + "'")

// tracefsDir is tracefs's canonical mount point.
const tracefsDir = "/sys/kernel/tracing"

// MountTracefs mounts tracefs at /sys/kernel/tracing unless it is mounted
// already, there or at /sys/kernel/debug/tracing; mounted says it did.
// Only there: /sys/kernel/debug/tracing is an automount that appears when
// looked at, and cilium/ebpf may have settled on the canonical path before.
func MountTracefs() (mounted bool, err error) {
	var st unix.Statfs_t
	if err := unix.Statfs(tracefsDir, &st); err == nil && st.Type == unix.TRACEFS_MAGIC {
		return false, nil
	}
	err = unix.Mount("tracefs", tracefsDir, "tracefs", 0, "")
	if err == nil {
		return true, nil
	}
	if other, _ := Tracefs(); other != "" {
		return false, nil // mounted elsewhere; the tracepoints attach through that
	}
	return false, fmt.Errorf("tracefs is not mounted and mounting it failed (%v): run 'mount -t tracefs tracefs %s'", err, tracefsDir)
}

// Tracefs returns where tracefs is mounted, or "" when it is not.
func Tracefs() (string, error) {
	for _, dir := range []string{"/sys/kernel/tracing", "/sys/kernel/debug/tracing"} {
		_, err := os.Stat(dir + "/events")
		if err == nil {
			return dir, nil
		}
		if !errors.Is(err, fs.ErrNotExist) {
			return "", fmt.Errorf("tracefs at %s: %w", dir, err)
		}
	}
	return "", nil
}
