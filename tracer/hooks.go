// SPDX-License-Identifier: Apache-2.0

package tracer

import (
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"sync"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/btf"
	"github.com/cilium/ebpf/features"
	"github.com/cilium/ebpf/link"
	"golang.org/x/sys/unix"

	"github.com/conntrace/conntrace/tracer/internal/bpfobj"
)

// Hooks says how connections are attributed to the processes that make
// them: at tcp_connect() and inet_csk_accept() through fentry/fexit or
// kprobes, or from the TCP state tracepoint and the accept syscalls. Every
// mode reports the same events with the same fields; the state, bind and
// connect tracepoints are attached in all of them.
type Hooks uint8

const (
	// HooksAuto picks the first mode that loads and attaches, in the order
	// of HookModes.
	HooksAuto Hooks = iota
	// HooksFentry: fentry/tcp_connect, fexit/inet_csk_accept (a BPF
	// trampoline: the cheapest per call).
	HooksFentry
	// HooksKprobe: kprobe/tcp_connect, kretprobe/inet_csk_accept.
	HooksKprobe
	// HooksTracepoint: CLOSE -> SYN_SENT in sock:inet_sock_set_state and
	// the accept syscalls' exits. Needs neither fentry nor kprobes.
	HooksTracepoint
)

// HookModes lists the modes, best first: the order auto tries them in.
var HookModes = []Hooks{HooksFentry, HooksKprobe, HooksTracepoint}

var hookNames = [...]string{"auto", "fentry", "kprobe", "tracepoint"}

func (h Hooks) String() string {
	if int(h) < len(hookNames) {
		return hookNames[h]
	}
	return fmt.Sprintf("hooks(%d)", uint8(h))
}

// ParseHooks parses auto, fentry, kprobe or tracepoint, in any case.
func ParseHooks(s string) (Hooks, error) {
	for i, n := range hookNames {
		if strings.EqualFold(s, n) {
			return Hooks(i), nil
		}
	}
	return 0, fmt.Errorf("unknown hook mode %q (want %s)", s, strings.Join(hookNames[:], ", "))
}

// candidates are the modes Open tries, in order.
func (h Hooks) candidates() []Hooks {
	if h == HooksAuto {
		return HookModes
	}
	return []Hooks{h}
}

// Hook is one attachment point, read from its program's ELF section:
// Kind is tracepoint, tp_btf, fentry, fexit, kprobe or kretprobe; Target
// is group:name for tracepoints, the tracepoint's name for tp_btf, else
// the kernel function.
type Hook struct {
	Kind, Target string
	prog         string // the program's name in the BPF object
	rescue       bool   // the state tracepoint's second program (bpf/tcp_state.bpf.c)
	// attach: a cgroup program's attach type (Kind cgroup or
	// cgroup_skb), at the root of the cgroup v2 hierarchy.
	attach ebpf.AttachType
}

func (h Hook) String() string {
	if h.rescue {
		return h.Kind + "/" + h.Target + " (rescue)"
	}
	return h.Kind + "/" + h.Target
}

// The programs each mode attaches, by name; where each attaches is its
// SEC() in bpf/ (hookOf). Adding a program to a mode is its C function and
// its name here (bpf/README.md).
var (
	// modePrograms: how each mode attributes connections. fexit has a
	// program per signature of inet_csk_accept (acceptFexit).
	modePrograms = map[Hooks][]string{
		HooksFentry:     {bpfobj.ConntraceProgHandleConnectFentry, bpfobj.ConntraceProgHandleAcceptFexit},
		HooksKprobe:     {bpfobj.ConntraceProgHandleConnectKprobe, bpfobj.ConntraceProgHandleAcceptKretprobe},
		HooksTracepoint: {bpfobj.ConntraceProgHandleAccept4Exit, bpfobj.ConntraceProgHandleAcceptExit},
	}
	// statePrograms, attached in every mode: the state and reset
	// tracepoints, in two flavours (bpf/tcp_state.bpf.c). tp_btf where the
	// kernel has its own BTF, since a classic tracepoint program can be
	// skipped without a trace on kernels before 6.7; classic otherwise.
	statePrograms = map[bool][]string{
		true: {bpfobj.ConntraceProgHandleSetStateBtf, bpfobj.ConntraceProgHandleSetStateBtfRescue,
			bpfobj.ConntraceProgHandleReceiveResetBtf, bpfobj.ConntraceProgHandleSendResetBtf},
		false: {bpfobj.ConntraceProgHandleSetState, bpfobj.ConntraceProgHandleReceiveReset, bpfobj.ConntraceProgHandleSendReset},
	}
	// syscallPrograms, attached in every mode: the failures, what bind()
	// and connect() asked for, and the errno SO_ERROR hands out.
	syscallPrograms = slices.Concat(connectPrograms, []string{
		bpfobj.ConntraceProgHandleBindEnter, bpfobj.ConntraceProgHandleBindExit,
		bpfobj.ConntraceProgHandleGetsockoptEnter, bpfobj.ConntraceProgHandleGetsockoptExit})
	// connectPrograms: connect()'s entry and exit, one program each for
	// every protocol traced (bpf/connect.bpf.c): TCP's failures, UDP's
	// flows' start.
	connectPrograms = []string{bpfobj.ConntraceProgHandleConnectEnter, bpfobj.ConntraceProgHandleConnectExit}
	// dropProgram, attached in every mode where the kernel's
	// skb:kfree_skb has a drop reason (dropsHooked): what this host
	// dropped of a connection in its handshake (bpf/tcp_drops.bpf.c).
	dropProgram = bpfobj.ConntraceProgHandleKfreeSkbBtf
	// rescuePrograms run after the main program on the same hook, and
	// their skips lose nothing (bpf/tcp_state.bpf.c).
	rescuePrograms = map[string]bool{bpfobj.ConntraceProgHandleSetStateBtfRescue: true}
)

// icmpPrograms: the fentry and kprobe modes' hooks on TCP's ICMP error
// handlers, IPv4 and IPv6 (bpf/tcp_icmp.bpf.c), where this kernel has both
// functions (icmpHookable).
var icmpPrograms = map[Hooks][]string{
	HooksFentry: {bpfobj.ConntraceProgHandleIcmp4Fentry, bpfobj.ConntraceProgHandleIcmp6Fentry},
	HooksKprobe: {bpfobj.ConntraceProgHandleIcmp4Kprobe, bpfobj.ConntraceProgHandleIcmp6Kprobe},
}

// bindPrograms are the only ones of any protocol: with TCP filtered out
// (Config.Proto), no other of TCP's is loaded.
var bindPrograms = []string{bpfobj.ConntraceProgHandleBindEnter, bpfobj.ConntraceProgHandleBindExit}

// udpPrograms, attached in every mode where UDP is traced: cgroup
// programs at the root of the cgroup v2 hierarchy (bpf/udp_flows.bpf.c),
// those that find the socket's owner first. udpSweep is loaded with them
// and run by Go, not attached. udpTracepoints, where the kernel has its
// own BTF (tp_btf programs): datagrams dropped on their way in
// (bpf/udp_drops.bpf.c), ICMP errors of connected sockets, and failed
// sends where the kernel has the tracepoints (bpf/udp_errors.bpf.c).
var (
	// sock_create first: the sockets made before it get their owners
	// (ownExisting) before the datagram programs attach.
	udpPrograms = []string{bpfobj.ConntraceProgUdpSockCreate,
		bpfobj.ConntraceProgUdpSendmsg4, bpfobj.ConntraceProgUdpSendmsg6, bpfobj.ConntraceProgUdpRecvmsg4, bpfobj.ConntraceProgUdpRecvmsg6,
		bpfobj.ConntraceProgUdpEgress, bpfobj.ConntraceProgUdpIngress, bpfobj.ConntraceProgUdpSockRelease,
		// DNS over TCP's connections' owners (bpf/tcp_dns.bpf.h).
		bpfobj.ConntraceProgDnsConnect4, bpfobj.ConntraceProgDnsConnect6}
	udpSweep = bpfobj.ConntraceProgUdpSweepFlows
	// Every kernel with its own BTF has these two (drops, ICMP errors);
	// udpTracepointsHere adds the others where it has them.
	udpTracepoints = []string{bpfobj.ConntraceProgUdpQueueFail, bpfobj.ConntraceProgUdpErrorReport}
	// Who sent a connected socket's ICMP error: UDP's error handlers,
	// IPv4 and IPv6, in the fentry and kprobe modes (bpf/udp_icmp.bpf.c),
	// where the kernel has both (udpICMPHookable).
	udpICMPPrograms = map[Hooks][]string{
		HooksFentry: {bpfobj.ConntraceProgUdpIcmp4Fentry, bpfobj.ConntraceProgUdpIcmp6Fentry},
		HooksKprobe: {bpfobj.ConntraceProgUdpIcmp4Kprobe, bpfobj.ConntraceProgUdpIcmp6Kprobe},
	}
)

// programs lists the programs mode m attaches, in attach order: the mode's
// own first. tcp, udp: the protocols traced.
func programs(m Hooks, tcp, udp bool) []string {
	var all []string
	if tcp {
		all = tcpPrograms(m)
	} else {
		all = slices.Clone(bindPrograms)
	}
	if udp {
		all = append(all, udpPrograms...)
		// A UDP connect() starts its flow: connect()'s programs,
		// which TCP's include.
		if !tcp {
			all = append(all, connectPrograms...)
		}
		if kernelHasBTF() {
			all = append(all, udpTracepointsHere()...)
			if udpICMPHookable() {
				all = append(all, udpICMPPrograms[m]...)
			}
		}
	}
	return all
}

// tcpPrograms lists TCP's programs and bind()'s in mode m.
func tcpPrograms(m Hooks) []string {
	own := slices.Clone(modePrograms[m])
	if m == HooksFentry {
		own[1] = acceptFexit()
	}
	if icmpHookable() {
		own = append(own, icmpPrograms[m]...)
	}
	all := slices.Concat(own, statePrograms[kernelHasBTF()], syscallPrograms)
	if kernelHasBTF() && dropsHooked() {
		all = append(all, dropProgram)
	}
	return all
}

// noKernelBTFForTest: Open acts as on a kernel without BTF of its own
// (given with --btf).
var noKernelBTFForTest bool

// kernelHasBTF says whether the running kernel publishes its own BTF
// (KernelBTF), which tp_btf and fentry programs and BTF-typed helpers
// need: --btf gives CO-RE the kernel's types, not the kernel.
func kernelHasBTF() bool {
	if noKernelBTFForTest {
		return false
	}
	_, err := os.Stat(KernelBTF)
	return err == nil
}

// udpTracepointsHere are the udpTracepoints this kernel has: all but a
// failed send's (sock:sock_send_length, Linux 6.3+) and a firewall's drop
// (skb:kfree_skb with a drop reason) where it has not.
func udpTracepointsHere() []string {
	tps := slices.Clone(udpTracepoints)
	if dropsHooked() {
		tps = append(tps, bpfobj.ConntraceProgUdpKfreeSkb)
	}
	if sendsHooked() {
		tps = append(tps, bpfobj.ConntraceProgUdpSendError)
	}
	return tps
}

// sendsHooked says whether the kernel has sock:sock_send_length, which
// sees a send's return value.
var sendsHooked = sync.OnceValue(func() bool {
	var fn *btf.Typedef
	spec, err := btf.LoadKernelSpec()
	return err == nil && spec.TypeByName("btf_trace_sock_send_length", &fn) == nil
})

// icmpHookable says whether the kernel's BTF has tcp_v4_err and
// tcp_v6_err (IPv6 may be a module, or absent).
var icmpHookable = sync.OnceValue(func() bool { return kernelHasFuncs("tcp_v4_err", "tcp_v6_err") })

// udpICMPHookable: likewise for __udp4_lib_err and icmpv6_notify.
var udpICMPHookable = sync.OnceValue(func() bool { return kernelHasFuncs("__udp4_lib_err", "icmpv6_notify") })

// kernelHasFuncs says whether the kernel's BTF has every one of names,
// functions not inlined away.
func kernelHasFuncs(names ...string) bool {
	spec, err := btf.LoadKernelSpec()
	if err != nil {
		return false
	}
	for _, name := range names {
		var fn *btf.Func
		if spec.TypeByName(name, &fn) != nil {
			return false
		}
	}
	return true
}

// dropsHooked says whether the drop program can attach: a tp_btf program
// (the kernel's own BTF) on a skb:kfree_skb that passes a drop reason
// (Linux 5.17+). Elsewhere connect failures say drops were not watched.
var dropsHooked = sync.OnceValue(func() bool {
	var fn *btf.Typedef
	spec, err := btf.LoadKernelSpec()
	if err != nil || spec.TypeByName("btf_trace_kfree_skb", &fn) != nil {
		return false
	}
	ptr, ok := fn.Type.(*btf.Pointer)
	if !ok {
		return false
	}
	proto, ok := ptr.Target.(*btf.FuncProto)
	// The first parameter is the tracepoint's data; then skb, location,
	// reason.
	return ok && len(proto.Params) >= 4
})

// acceptFexit is the fexit program for this kernel's inet_csk_accept():
// Linux 6.10 took its four arguments down to two, which moves the return
// value in the program's context.
var acceptFexit = sync.OnceValue(func() string {
	var fn *btf.Func
	if spec, err := btf.LoadKernelSpec(); err == nil && spec.TypeByName("inet_csk_accept", &fn) == nil {
		if proto, ok := fn.Type.(*btf.FuncProto); ok && len(proto.Params) == 4 {
			return bpfobj.ConntraceProgHandleAcceptFexit4
		}
	}
	return bpfobj.ConntraceProgHandleAcceptFexit
})

// storageTried says whether mode m tries to keep connections in socket
// storage: where every program that reaches them has the socket as a
// typed pointer, or (the tracepoint mode) all but accept's, which the
// socket table bridges (bpf/tcp_track.bpf.h). Not kprobes, and not the classic
// state tracepoint (no kernel BTF).
func storageTried(m Hooks, cfg *Config) bool {
	return kernelHasBTF() && m != HooksKprobe && cfg.SocketStorage
}

// hooksOf returns the hooks mode m attaches, read from spec.
func hooksOf(spec *ebpf.CollectionSpec, m Hooks, tcp, udp bool) ([]Hook, error) {
	var hooks []Hook
	for _, name := range programs(m, tcp, udp) {
		p := spec.Programs[name]
		if p == nil {
			return nil, fmt.Errorf("the BPF object has no program %s", name)
		}
		h, err := hookOf(name, p)
		if err != nil {
			return nil, err
		}
		hooks = append(hooks, h)
	}
	return hooks, nil
}

// hookOf reads where program name attaches from its ELF section.
func hookOf(name string, p *ebpf.ProgramSpec) (Hook, error) {
	h := Hook{Target: p.AttachTo, prog: name, rescue: rescuePrograms[name]}
	switch {
	case p.Type == ebpf.CGroupSock || p.Type == ebpf.CGroupSockAddr || p.Type == ebpf.CGroupSKB:
		// cgroup/sock_create, cgroup_skb/egress: no target but the
		// cgroup.
		h.Kind, h.Target, _ = strings.Cut(p.SectionName, "/")
		h.attach = p.AttachType
	case p.Type == ebpf.TracePoint:
		h.Kind = "tracepoint"
		h.Target = strings.Replace(p.AttachTo, "/", ":", 1)
	case p.Type == ebpf.Tracing && p.AttachType == ebpf.AttachTraceRawTp:
		h.Kind = "tp_btf"
	case p.Type == ebpf.Tracing && p.AttachType == ebpf.AttachTraceFEntry:
		h.Kind = "fentry"
	case p.Type == ebpf.Tracing && p.AttachType == ebpf.AttachTraceFExit:
		h.Kind = "fexit"
	case p.Type == ebpf.Kprobe:
		h.Kind, _, _ = strings.Cut(p.SectionName, "/") // kprobe or kretprobe
	}
	if h.Kind == "" || h.Target == "" {
		return Hook{}, fmt.Errorf("program %s: no hook kind for section %q", name, p.SectionName)
	}
	return h, nil
}

// haveProgramType asks the kernel whether a mode's programs can load and
// attach at all (cilium/ebpf's feature probes, the kprobe interfaces),
// before a whole load is tried.
func haveProgramType(m Hooks) error {
	var err error
	switch m {
	case HooksFentry:
		// The kernel resolves fentry targets in its own BTF; --btf
		// cannot stand in for it.
		if !kernelHasBTF() {
			return fmt.Errorf("fentry needs the kernel's own BTF (%s)", KernelBTF)
		}
		err = features.HaveProgramType(ebpf.Tracing)
	case HooksKprobe:
		if !haveKprobes() {
			return errors.New("the kernel has no kprobes (neither the kprobe PMU nor kprobe_events in tracefs)")
		}
		err = features.HaveProgramType(ebpf.Kprobe)
	}
	if errors.Is(err, ebpf.ErrNotSupported) {
		return fmt.Errorf("the kernel does not support %s programs", m)
	}
	if err != nil {
		return fmt.Errorf("the kernel refuses %s programs: %w", m, err)
	}
	return nil
}

// haveKprobes reports whether kprobes can be created: through the kprobe
// PMU (perf_event_open, Linux 4.17+) or tracefs's kprobe_events.
func haveKprobes() bool {
	for _, p := range []string{"/sys/bus/event_source/devices/kprobe/type",
		"/sys/kernel/tracing/kprobe_events", "/sys/kernel/debug/tracing/kprobe_events"} {
		if _, err := os.Stat(p); err == nil {
			return true
		}
	}
	return false
}

// modeSpec copies spec with only mode m's programs, and tells them
// whether tcp_connect() is hooked and where connections live: in socket
// storage, or in a socket table of table entries (0:
// DefaultSocketTableSize), not preallocated. With storage, only the
// tracepoint mode has a table, for its inbound connections. Without tcp,
// only bind()'s programs, and no table.
func modeSpec(spec *ebpf.CollectionSpec, m Hooks, storage bool, table uint32, tcp, udp bool, flows uint32) (*ebpf.CollectionSpec, error) {
	spec = spec.Copy()
	keep := programs(m, tcp, udp)
	if udp {
		keep = append(keep, udpSweep)
		if ownersIterable() {
			keep = append(keep, udpOwnerFiles, udpOwnerSocks)
		}
	}
	for name := range spec.Programs {
		if !slices.Contains(keep, name) {
			delete(spec.Programs, name)
		}
	}
	inbound := tcp && storage && m == HooksTracepoint
	for _, v := range []struct {
		name string
		val  bool
	}{
		{bpfobj.ConntraceVarTcpConnectHooked, m != HooksTracepoint},
		{bpfobj.ConntraceVarConnectTcp, tcp},
		{bpfobj.ConntraceVarConnectUdp, udp},
		{bpfobj.ConntraceVarKernelBtf, kernelHasBTF()},
		{bpfobj.ConntraceVarSkStorage, storage},
		{bpfobj.ConntraceVarInboundInTable, inbound},
		{bpfobj.ConntraceVarDropsHooked, slices.Contains(keep, dropProgram)},
		{bpfobj.ConntraceVarIcmpHooked, len(icmpPrograms[m]) > 0 && slices.Contains(keep, icmpPrograms[m][0])},
	} {
		if err := spec.Variables[v.name].Set(b2u8(v.val)); err != nil {
			return nil, fmt.Errorf("set %s: %w", v.name, err)
		}
	}
	// The socket table takes memory only for what it holds.
	socks := spec.Maps[bpfobj.ConntraceMapSocks]
	switch {
	case !tcp || (storage && !inbound):
		table = 1 // unused
	case table == 0:
		table = DefaultSocketTableSize
	}
	if table > 1 {
		socks.Flags |= unix.BPF_F_NO_PREALLOC
	}
	socks.MaxEntries = table
	// UDP's flows take memory only for what they hold.
	switch {
	case !udp:
		flows = 1
	case flows == 0:
		flows = DefaultUDPFlows
	}
	spec.Maps[bpfobj.ConntraceMapUdpFlows].MaxEntries = flows
	spec.Maps[bpfobj.ConntraceMapUdpFlows].Flags |= unix.BPF_F_NO_PREALLOC
	if !udp {
		spec.Maps[bpfobj.ConntraceMapUdpReleased].MaxEntries = 1
		spec.Maps[bpfobj.ConntraceMapUdpTurnedAway].MaxEntries = 1
	}
	return spec, nil
}

// attachHook attaches prog at h; a cgroup program at cgroup, the root
// of the cgroup v2 hierarchy.
func attachHook(h Hook, prog *ebpf.Program, cgroup string) (link.Link, error) {
	switch h.Kind {
	case "cgroup", "cgroup_skb":
		return link.AttachCgroup(link.CgroupOptions{Path: cgroup, Attach: h.attach, Program: prog})
	case "tracepoint":
		group, name, _ := strings.Cut(h.Target, ":")
		return link.Tracepoint(group, name, prog, nil)
	case "fentry", "fexit", "tp_btf":
		return link.AttachTracing(link.TracingOptions{Program: prog})
	case "kprobe":
		return link.Kprobe(h.Target, prog, nil)
	case "kretprobe":
		return link.Kretprobe(h.Target, prog, nil)
	}
	return nil, fmt.Errorf("unknown hook kind %q", h.Kind)
}

// ModeError says why a hook mode could not be used.
type ModeError struct {
	Mode Hooks
	Err  error
}

func (e *ModeError) Error() string { return fmt.Sprintf("%s hooks: %v", e.Mode, e.Err) }
func (e *ModeError) Unwrap() error { return e.Err }
