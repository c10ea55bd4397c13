package tracer

import (
	"errors"
	"fmt"
	"io/fs"
	"os"

	"golang.org/x/sys/unix"
)

// Capabilities that loading and attaching need: CAP_BPF and CAP_PERFMON
// (Linux 5.8+), or CAP_SYS_ADMIN, which covers both.
const (
	capSysAdmin = 21
	capPerfmon  = 38
	capBPF      = 39
)

// checkPrivileges says in one line what is missing, before the kernel
// answers EPERM somewhere less obvious.
func checkPrivileges() error {
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	var data [2]unix.CapUserData
	if err := unix.Capget(&hdr, &data[0]); err != nil {
		return nil // cannot tell; let the kernel decide
	}
	has := func(c uint) bool { return data[c/32].Effective&(1<<(c%32)) != 0 }
	if has(capSysAdmin) || (has(capBPF) && has(capPerfmon)) {
		return nil
	}
	return errors.New("this needs root: run it with sudo (or grant CAP_BPF and CAP_PERFMON)")
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
	for _, dir := range []string{"/sys/kernel/tracing", "/sys/kernel/debug/tracing"} {
		_, err := os.Stat(dir + "/events")
		if err == nil {
			return nil
		}
		if !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("tracefs at %s: %w", dir, err)
		}
	}
	if err := unix.Mount("tracefs", "/sys/kernel/tracing", "tracefs", 0, ""); err != nil {
		return fmt.Errorf("tracefs is not mounted and mounting it failed (%v): run 'mount -t tracefs tracefs /sys/kernel/tracing'", err)
	}
	return nil
}
