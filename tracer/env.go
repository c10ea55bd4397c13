package tracer

import (
	"errors"
	"fmt"
	"io/fs"
	"os"

	"golang.org/x/sys/unix"
)

// Capabilities conntrace uses, by number (linux/capability.h).
const (
	capDACReadSearch = 2  // read other users' /proc/PID/fd (holders, ports)
	capNetAdmin      = 12 // sock_diag details
	capSysPtrace     = 19 // resolve other processes' socket inodes
	capSysAdmin      = 21 // covers CAP_BPF and CAP_PERFMON; setns for holders
	capSysResource   = 24 // raise RLIMIT_MEMLOCK on kernels before 5.11
	capPerfmon       = 38 // attach tracing programs (Linux 5.8+)
	capBPF           = 39 // load BPF programs, create maps (Linux 5.8+)
)

// CapabilityNames lists the capabilities conntrace uses.
var CapabilityNames = map[uint]string{
	capDACReadSearch: "CAP_DAC_READ_SEARCH",
	capNetAdmin:      "CAP_NET_ADMIN",
	capSysPtrace:     "CAP_SYS_PTRACE",
	capSysAdmin:      "CAP_SYS_ADMIN",
	capSysResource:   "CAP_SYS_RESOURCE",
	capPerfmon:       "CAP_PERFMON",
	capBPF:           "CAP_BPF",
}

// HasCapability reports whether this process holds capability c
// (effective); ok is false when that cannot be told.
func HasCapability(c uint) (has, ok bool) {
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	var data [2]unix.CapUserData
	if err := unix.Capget(&hdr, &data[0]); err != nil {
		return false, false
	}
	return data[c/32].Effective&(1<<(c%32)) != 0, true
}

// ErrNeedRoot says what loading and attaching need.
var ErrNeedRoot = errors.New("this needs root: run it with sudo (or grant CAP_BPF and CAP_PERFMON)")

// checkPrivileges says in one line what is missing, before the kernel
// answers EPERM somewhere less obvious.
func checkPrivileges() error {
	admin, ok := HasCapability(capSysAdmin)
	if !ok || admin {
		return nil // held, or cannot tell: let the kernel decide
	}
	bpf, _ := HasCapability(capBPF)
	perfmon, _ := HasCapability(capPerfmon)
	if bpf && perfmon {
		return nil
	}
	return ErrNeedRoot
}

// KernelBTF is where the running kernel publishes its BTF.
const KernelBTF = "/sys/kernel/btf/vmlinux"

// checkEnvironment reports what the kernel lacks in one line, and mounts
// tracefs where it is missing (tracepoints are attached through it).
// btfPath is the user's BTF for a kernel without its own ("": none).
func checkEnvironment(btfPath string) error {
	if err := checkPrivileges(); err != nil {
		return err
	}
	if btfPath == "" {
		if _, err := os.Stat(KernelBTF); err != nil {
			return fmt.Errorf("kernel BTF not found at %s (a kernel built without CONFIG_DEBUG_INFO_BTF): give one for this kernel with --btf PATH", KernelBTF)
		}
	} else if _, err := os.Stat(btfPath); err != nil {
		return fmt.Errorf("--btf: %w", err)
	}
	return mountTracefs()
}

// mountTracefs mounts tracefs at /sys/kernel/tracing unless it is there.
// Only there: /sys/kernel/debug/tracing is an automount that appears when
// looked at, and cilium/ebpf may have settled on the canonical path before.
func mountTracefs() error {
	const dir = "/sys/kernel/tracing"
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err == nil && st.Type == unix.TRACEFS_MAGIC {
		return nil
	}
	err := unix.Mount("tracefs", dir, "tracefs", 0, "")
	if err == nil {
		return nil
	}
	if other, _ := Tracefs(); other != "" {
		return nil // mounted elsewhere; the tracepoints attach through that
	}
	return fmt.Errorf("tracefs is not mounted and mounting it failed (%v): run 'mount -t tracefs tracefs %s'", err, dir)
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
