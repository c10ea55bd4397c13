package tracer

import (
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/features"
	"github.com/cilium/ebpf/link"
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

// Hook is one attachment point: Kind is tracepoint, tp_btf, fentry, fexit,
// kprobe or kretprobe; Target is group:name for tracepoints, the
// tracepoint's name for tp_btf, else the kernel function.
type Hook struct {
	Kind, Target string
	prog         string // the program's name in the BPF object
	rescue       bool   // the state tracepoint's second program (bpf/state.bpf.c)
}

func (h Hook) String() string {
	if h.rescue {
		return h.Kind + "/" + h.Target + " (rescue)"
	}
	return h.Kind + "/" + h.Target
}

// commonHooks are attached in every mode. The state and reset tracepoints
// come in two flavours (see bpf/state.bpf.c): tp_btf where the kernel has
// its own BTF, since a classic tracepoint program can be skipped without
// a trace on kernels before 6.7; classic tracepoints otherwise.
func commonHooks() []Hook {
	hooks := []Hook{
		{"tracepoint", "syscalls:sys_enter_connect", conntraceProgHandleConnectEnter, false},
		{"tracepoint", "syscalls:sys_exit_connect", conntraceProgHandleConnectExit, false},
		{"tracepoint", "syscalls:sys_enter_bind", conntraceProgHandleBindEnter, false},
		{"tracepoint", "syscalls:sys_exit_bind", conntraceProgHandleBindExit, false},
	}
	if _, err := os.Stat(KernelBTF); err == nil {
		return append([]Hook{
			{"tp_btf", "inet_sock_set_state", conntraceProgHandleSetStateBtf, false},
			// After the main program: see bpf/state.bpf.c.
			{"tp_btf", "inet_sock_set_state", conntraceProgHandleSetStateBtfRescue, true},
			{"tp_btf", "tcp_receive_reset", conntraceProgHandleReceiveResetBtf, false},
			{"tp_btf", "tcp_send_reset", conntraceProgHandleSendResetBtf, false},
		}, hooks...)
	}
	return append([]Hook{
		{"tracepoint", "sock:inet_sock_set_state", conntraceProgHandleSetState, false},
		{"tracepoint", "tcp:tcp_receive_reset", conntraceProgHandleReceiveReset, false},
		{"tracepoint", "tcp:tcp_send_reset", conntraceProgHandleSendReset, false},
	}, hooks...)
}

// modeHooks returns the hooks a mode adds to the common ones.
func modeHooks(m Hooks) []Hook {
	switch m {
	case HooksFentry:
		return []Hook{
			{"fentry", "tcp_connect", conntraceProgHandleConnectFentry, false},
			{"fexit", "inet_csk_accept", conntraceProgHandleAcceptFexit, false},
		}
	case HooksKprobe:
		return []Hook{
			{"kprobe", "tcp_connect", conntraceProgHandleConnectKprobe, false},
			{"kretprobe", "inet_csk_accept", conntraceProgHandleAcceptKretprobe, false},
		}
	case HooksTracepoint:
		return []Hook{
			{"tracepoint", "syscalls:sys_exit_accept4", conntraceProgHandleAccept4Exit, false},
			{"tracepoint", "syscalls:sys_exit_accept", conntraceProgHandleAcceptExit, false},
		}
	}
	return nil
}

// AllHooks returns every hook a mode attaches, the mode's own first.
func AllHooks(m Hooks) []Hook {
	return append(modeHooks(m), commonHooks()...)
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
		if _, err := os.Stat(KernelBTF); err != nil {
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

// modeSpec copies spec with only mode's programs, and tells the state
// program whether tcp_connect() is hooked.
func modeSpec(spec *ebpf.CollectionSpec, m Hooks) (*ebpf.CollectionSpec, error) {
	spec = spec.Copy()
	keep := map[string]bool{}
	for _, h := range AllHooks(m) {
		keep[h.prog] = true
	}
	for name := range spec.Programs {
		if !keep[name] {
			delete(spec.Programs, name)
		}
	}
	if err := spec.Variables[conntraceVarTcpConnectHooked].Set(b2u8(m != HooksTracepoint)); err != nil {
		return nil, fmt.Errorf("set %s: %w", conntraceVarTcpConnectHooked, err)
	}
	return spec, nil
}

// attachHook attaches prog at h.
func attachHook(h Hook, prog *ebpf.Program) (link.Link, error) {
	switch h.Kind {
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
