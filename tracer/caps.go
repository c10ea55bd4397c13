// SPDX-License-Identifier: Apache-2.0

package tracer

import (
	"fmt"
	"strings"
	"unsafe"

	"golang.org/x/sys/unix"
	"kernel.org/pub/linux/libs/security/libcap/psx"
)

// Capability is a Linux capability number (capabilities(7)).
type Capability uint

// The capabilities conntrace uses, and what for.
const (
	CapDACOverride   Capability = unix.CAP_DAC_OVERRIDE    // --ready-file in a directory only root may write by override (not deployed)
	CapDACReadSearch Capability = unix.CAP_DAC_READ_SEARCH // read other users' /proc/PID/fd (holders, ports)
	CapNetAdmin      Capability = unix.CAP_NET_ADMIN       // sock_diag details
	CapSysPtrace     Capability = unix.CAP_SYS_PTRACE      // other processes' sockets (their fds, pidfd_getfd)
	CapSysAdmin      Capability = unix.CAP_SYS_ADMIN       // covers CAP_BPF and CAP_PERFMON; setns for holders
	CapSysResource   Capability = unix.CAP_SYS_RESOURCE    // raise RLIMIT_MEMLOCK on kernels before 5.11
	CapPerfmon       Capability = unix.CAP_PERFMON         // attach tracing programs (Linux 5.8+)
	CapBPF           Capability = unix.CAP_BPF             // load programs, create maps (Linux 5.8+)
)

// UsedCapabilities lists them, by number.
var UsedCapabilities = []Capability{CapDACReadSearch, CapNetAdmin, CapSysPtrace, CapSysAdmin, CapSysResource, CapPerfmon, CapBPF}

var capNames = map[Capability]string{
	CapDACOverride:   "CAP_DAC_OVERRIDE",
	CapDACReadSearch: "CAP_DAC_READ_SEARCH",
	CapNetAdmin:      "CAP_NET_ADMIN",
	CapSysPtrace:     "CAP_SYS_PTRACE",
	CapSysAdmin:      "CAP_SYS_ADMIN",
	CapSysResource:   "CAP_SYS_RESOURCE",
	CapPerfmon:       "CAP_PERFMON",
	CapBPF:           "CAP_BPF",
}

func (c Capability) String() string {
	if n, ok := capNames[c]; ok {
		return n
	}
	return fmt.Sprintf("capability %d", uint(c))
}

// HasCapability reports whether this process holds c (effective); ok is
// false when that cannot be told.
func HasCapability(c Capability) (has, ok bool) {
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	var data [2]unix.CapUserData
	if err := unix.Capget(&hdr, &data[0]); err != nil {
		return false, false
	}
	return data[c/32].Effective&(1<<(c%32)) != 0, true
}

// LookupCapabilities are what finding sockets and their processes in any
// network namespace takes: setns(2) into it (CAP_SYS_ADMIN) and reading
// /proc/PID/fd of any user's process (CAP_SYS_PTRACE, CAP_DAC_READ_SEARCH).
var LookupCapabilities = []Capability{CapSysAdmin, CapSysPtrace, CapDACReadSearch}

// CapabilitiesAfterAttach lists what a tracer opened with c still uses:
// CAP_BPF to read its own counters (kernels before 6.5 check it on every
// bpf(2) call, even on a map the caller already holds), and the lookup
// capabilities when bind_fail events name who holds the port.
func (c Config) CapabilitiesAfterAttach() []Capability {
	keep := []Capability{CapBPF}
	if c.Events.Has(EventBindFail) {
		keep = append(keep, LookupCapabilities...)
	}
	return keep
}

// DropCapabilities leaves every thread of the process with only keep (of
// what it holds now) in its effective and permitted sets, and nothing
// inheritable. It cannot be undone. Where the kernel predates CAP_BPF
// (5.8), CAP_SYS_ADMIN stands in for it. Capabilities belong to each
// thread: psx runs capset(2) on all of them at once, in a cgo build too
// (where Go's own syscall.AllThreadsSyscall refuses).
func DropCapabilities(keep []Capability) (kept []Capability, err error) {
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	var have, want [2]unix.CapUserData
	if err := unix.Capget(&hdr, &have[0]); err != nil {
		return nil, fmt.Errorf("capget: %w", err)
	}
	holds := func(c Capability) bool { return have[c/32].Permitted&(1<<(c%32)) != 0 }
	add := func(c Capability) {
		if holds(c) && want[c/32].Permitted&(1<<(c%32)) == 0 {
			want[c/32].Permitted |= 1 << (c % 32)
			want[c/32].Effective |= 1 << (c % 32)
			kept = append(kept, c)
		}
	}
	for _, c := range keep {
		if c == CapBPF && !holds(CapBPF) {
			c = CapSysAdmin
		}
		add(c)
	}
	if _, _, errno := psx.Syscall3(unix.SYS_CAPSET, uintptr(unsafe.Pointer(&hdr)), uintptr(unsafe.Pointer(&want[0])), 0); errno != 0 {
		return nil, fmt.Errorf("capset: %w", errno)
	}
	return kept, nil
}

// CapabilityList is caps as "CAP_A, CAP_B" ("none" when empty).
func CapabilityList(caps []Capability) string {
	if len(caps) == 0 {
		return "none"
	}
	names := make([]string, len(caps))
	for i, c := range caps {
		names[i] = c.String()
	}
	return strings.Join(names, ", ")
}
