// SPDX-License-Identifier: Apache-2.0

package tracer

import (
	"fmt"
	"strings"
	"time"

	"github.com/conntrace/conntrace/tracer/event"
)

// EventMask selects event types; bit (1 << EventType). Zero means all.
type EventMask uint32

// AllEvents lists the event types a user can select, in display order.
var AllEvents = event.All

// Failures selects connect_fail and bind_fail (watch --failures).
const Failures EventMask = 1<<EventConnectFail | 1<<EventBindFail

// Has reports whether t is selected.
func (m EventMask) Has(t EventType) bool { return m == 0 || m&(1<<t) != 0 }

// ParseEvents parses a comma-separated list such as "connect,close", in
// any case.
func ParseEvents(s string) (EventMask, error) {
	var m EventMask
	for _, name := range strings.Split(s, ",") {
		name = strings.ToLower(strings.TrimSpace(name))
		if name == "" {
			continue
		}
		found := false
		for _, t := range AllEvents {
			if t.String() == name {
				m |= 1 << t
				found = true
			}
		}
		if !found {
			return 0, fmt.Errorf("unknown event %q (want one of %s)", name, eventList())
		}
	}
	if m == 0 {
		return 0, fmt.Errorf("no events selected (want one or more of %s)", eventList())
	}
	return m, nil
}

func eventList() string {
	names := make([]string, len(AllEvents))
	for i, t := range AllEvents {
		names[i] = t.String()
	}
	return strings.Join(names, ",")
}

// Config selects what the kernel reports. Every filter here runs in the
// kernel; an empty filter matches everything.
type Config struct {
	// Ports matches the local or the remote port of a connection.
	Ports []uint16
	// PIDs matches the process (tgid) that connected, accepted or listened.
	PIDs []uint32
	// Comms match the process's name (its thread-group leader's, as
	// /proc/PID/comm shows it) exactly, each at most 15 bytes.
	Comms []string
	// Cgroups match processes in these cgroups (v2 paths, as in
	// /proc/PID/cgroup, or under the hierarchy's mount point) or below
	// them. Each must exist when the tracer opens.
	Cgroups []string
	// Containers match processes in these containers: names, or ids and
	// id prefixes of 12 hex digits or more. A container that starts later
	// is matched from its start; a name that matches nothing is no error.
	Containers []string
	// Family restricts to IPv4 or IPv6 (FamilyAny: both).
	Family Family
	// Proto restricts to TCP or UDP (0: both). Without TCP, none of
	// TCP's programs is loaded; without UDP, none of UDP's flows'.
	Proto Proto
	// UDPIdle ends a UDP flow after this long without a datagram either
	// way (0: DefaultUDPIdleOneWay for a flow only one side sent on,
	// DefaultUDPIdleBoth once both did, as the kernel's conntrack).
	UDPIdle time.Duration
	// UDPFlows is how many UDP flows the flow table holds at once (0:
	// DefaultUDPFlows). Past it, new flows go untraced, counted as lost
	// once each.
	UDPFlows uint32
	// Events selects the event types (0: all).
	Events EventMask
	// Names keeps only the DNS lookups of these names and the events
	// whose peer was resolved from one (RName): exact names, or
	// "*.domain" for every name below domain. Filtered in user space, where
	// names are known; it needs UDP traced.
	Names []string
	// DNSTimeout is how long a DNS query waits for its answer before it
	// is reported as timed out (0: DefaultDNSTimeout).
	DNSTimeout time.Duration
	// RingBytes is the ring buffer's size, a power of two multiple of the
	// page size (0: DefaultRingBytes).
	RingBytes uint32
	// LookupWait bounds how long an event waits for its lookups beside
	// the reader (holders, listeners, a device's or a cgroup's name), and
	// so every event behind it; past it, the event goes out with what is
	// known (0: DefaultLookupWait).
	LookupWait time.Duration
	// SocketTableSize is how many connections the socket table holds at
	// once (0: DefaultSocketTableSize): all of them where socket storage
	// is not used (Tracer.SocketStorage), else the tracepoint mode's
	// inbound ones. Past it new connections go unreported, their events
	// counted as evicted.
	SocketTableSize uint32
	// SocketStorage keeps connections in socket-local storage where the
	// programs can reach it (fentry and tracepoint modes with the kernel's
	// BTF, Linux 5.11+; the tracepoint mode's inbound ones stay in the
	// socket table): no table size, no evictions. Not the default: a
	// close no tracing program could see (a kernel that runs none while
	// some task is current: bpf/README.md, known gap) the table counts as
	// skipped when the socket's memory is reused; storage cannot count it.
	SocketStorage bool
	// Hooks selects the hook mode (HooksAuto: the best that works).
	Hooks Hooks
	// BTFPath, if set, is the kernel's BTF (for a kernel without
	// /sys/kernel/btf/vmlinux).
	BTFPath string
}

// DefaultLookupWait is Config.LookupWait's default.
const DefaultLookupWait = 500 * time.Millisecond

// DefaultRingBytes holds about 37k events.
const DefaultRingBytes = 4 << 20

// DefaultSocketTableSize is the socket table's size by default: not
// preallocated, it takes about 150 bytes of kernel memory per connection
// it holds, and a million open at once is a large proxy's.
const DefaultSocketTableSize = 1 << 20

// The UDP flows' defaults: the idle times (those of the kernel's
// conntrack: nf_conntrack_udp_timeout, _stream) and the table's size,
// which takes memory only for the flows it holds (about 250 bytes each).
const (
	DefaultUDPIdleOneWay = 30 * time.Second
	DefaultUDPIdleBoth   = 120 * time.Second
	DefaultUDPFlows      = 65536
)

// Validate checks what the kernel side cannot represent.
func (c *Config) Validate() error {
	for _, p := range c.Ports {
		if p == 0 {
			return fmt.Errorf("port 0 is not a valid filter (ports are 1-65535)")
		}
	}
	for _, p := range c.PIDs {
		if p == 0 {
			return fmt.Errorf("pid 0 is not a valid filter")
		}
	}
	if len(c.Ports) > maxFilterEntries || len(c.PIDs) > maxFilterEntries {
		return fmt.Errorf("at most %d ports and %d pids can be filtered", maxFilterEntries, maxFilterEntries)
	}
	if len(c.Comms) > maxCommFilters {
		return fmt.Errorf("at most %d process names can be filtered", maxCommFilters)
	}
	for _, name := range c.Comms {
		if name == "" || len(name) > 15 || strings.IndexByte(name, 0) >= 0 {
			return fmt.Errorf("process name %q is not 1 to 15 bytes without NUL, as the kernel keeps names", name)
		}
	}
	if len(c.Cgroups) > maxCommFilters || len(c.Containers) > maxCommFilters {
		return fmt.Errorf("at most %d cgroups and %d containers can be filtered", maxCommFilters, maxCommFilters)
	}
	for _, p := range c.Cgroups {
		if p == "" || strings.ContainsFunc(p, isControl) {
			return fmt.Errorf("cgroup %q is not a cgroup path", p)
		}
	}
	for _, n := range c.Containers {
		if n == "" || len(n) > 253 || strings.ContainsFunc(n, isControl) || strings.ContainsRune(n, '/') {
			return fmt.Errorf("container %q is not a container name or id", n)
		}
	}
	switch c.Family {
	case FamilyAny, FamilyIPv4, FamilyIPv6:
	default:
		return fmt.Errorf("unknown address family %d", c.Family)
	}
	switch c.Proto {
	case 0, ProtoTCP, ProtoUDP:
	default:
		return fmt.Errorf("unknown protocol %d", c.Proto)
	}
	if int(c.Hooks) >= len(hookNames) {
		return fmt.Errorf("unknown hook mode %d", c.Hooks)
	}
	if c.UDPIdle < 0 || c.UDPIdle > 0 && c.UDPIdle < udpIdleMin {
		return fmt.Errorf("UDP idle time %v is below the minimum of %v", c.UDPIdle, udpIdleMin)
	}
	if n := c.UDPFlows; n != 0 && n < 16 {
		return fmt.Errorf("UDP flow table size %d is below the minimum of 16", n)
	}
	if n := c.SocketTableSize; n != 0 && n < 16 {
		return fmt.Errorf("socket table size %d is below the minimum of 16", n)
	}
	if r := c.RingBytes; r != 0 && (r < 4096 || r&(r-1) != 0) {
		return fmt.Errorf("ring buffer size %d is not a power of two of at least 4096", r)
	}
	return nil
}

func isControl(r rune) bool { return r < ' ' || r == 0x7f }

// maxFilterEntries is the size of the port_filter and pid_filter maps,
// maxCommFilters that of comm_filter.
const (
	maxFilterEntries = 1024
	maxCommFilters   = 64
)
