// SPDX-License-Identifier: Apache-2.0

package tracer

import (
	"os"
	"slices"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/conntrace/conntrace/tracer/internal/bpfobj"
)

func TestParseHooks(t *testing.T) {
	for _, name := range []string{"auto", "fentry", "kprobe", "tracepoint"} {
		h, err := ParseHooks(name)
		if err != nil || h.String() != name {
			t.Errorf("ParseHooks(%q) = %v, %v", name, h, err)
		}
	}
	if _, err := ParseHooks("ebpf"); err == nil || err.Error() != `unknown hook mode "ebpf" (want auto, fentry, kprobe, tracepoint)` {
		t.Errorf("ParseHooks(ebpf): %v", err)
	}
	if got := HooksAuto.candidates(); len(got) != 3 || got[0] != HooksFentry || got[2] != HooksTracepoint {
		t.Errorf("auto tries %v", got)
	}
	if got := HooksKprobe.candidates(); len(got) != 1 || got[0] != HooksKprobe {
		t.Errorf("kprobe tries %v", got)
	}
}

// Every mode attaches its own two hooks and the same common ones, each
// with a program of its own that exists in the object, on the hook its
// section names.
func TestHooksPerMode(t *testing.T) {
	spec, err := loadSpec()
	if err != nil {
		t.Fatal(err)
	}
	common := len(syscallPrograms) + len(statePrograms[true])
	if _, err := os.Stat(KernelBTF); err != nil {
		common = len(syscallPrograms) + len(statePrograms[false])
	}
	// Every kernel the tests run on (6.1 and later) passes skb:kfree_skb
	// a drop reason.
	if !dropsHooked() {
		t.Error("skb:kfree_skb has no drop reason here")
	}
	common++
	for _, m := range HookModes {
		hooks, err := hooksOf(spec, m, true, false)
		if err != nil {
			t.Fatal(err)
		}
		want := common + 2
		if icmpHookable() {
			want += len(icmpPrograms[m])
		}
		if len(hooks) != want {
			t.Errorf("%s: %d hooks, want %d", m, len(hooks), want)
		}
		progs := map[string]bool{}
		for _, h := range hooks {
			if progs[h.prog] {
				t.Errorf("%s: program %q twice", m, h.prog)
			}
			progs[h.prog] = true
		}
		for _, storage := range []bool{false, true} {
			ms, err := modeSpec(spec, m, storage, 0, true, false, 0)
			if err != nil || len(ms.Programs) != len(hooks) {
				t.Errorf("%s (storage %v): the mode's spec keeps %d programs (%v), want %d", m, storage, len(ms.Programs), err, len(hooks))
				continue
			}
			// The socket table: of the default size and growing as it
			// fills, for every connection or the tracepoint mode's
			// inbound ones; unused otherwise.
			socks := ms.Maps[bpfobj.ConntraceMapSocks]
			want, prealloc := uint32(DefaultSocketTableSize), false
			if storage && m != HooksTracepoint {
				want, prealloc = 1, true
			}
			if socks.MaxEntries != want || (socks.Flags&unix.BPF_F_NO_PREALLOC == 0) != prealloc {
				t.Errorf("%s (storage %v): socket table of %d, flags %#x; want %d, preallocated %v", m, storage, socks.MaxEntries, socks.Flags, want, prealloc)
			}
		}
	}
	// Without TCP: bind()'s programs only, and no socket table.
	for _, m := range HookModes {
		hooks, err := hooksOf(spec, m, false, false)
		ms, merr := modeSpec(spec, m, true, 0, false, false, 0)
		if err != nil || merr != nil || len(hooks) != 2 || hooks[0].prog != bpfobj.ConntraceProgHandleBindEnter ||
			hooks[1].prog != bpfobj.ConntraceProgHandleBindExit || len(ms.Programs) != 2 || ms.Maps[bpfobj.ConntraceMapSocks].MaxEntries != 1 {
			t.Errorf("%s without TCP: hooks %v (%v), spec of %d programs (%v); want bind()'s two, and a socket table of 1", m, hooks, err, len(ms.Programs), merr)
		}
	}
	// With UDP: its cgroup programs after the others, then its
	// tracepoints (this kernel has its BTF) and, where the mode and
	// kernel have them, its ICMP error handlers; the sweep and the
	// owners' iterators loaded, not attached; the flow table not
	// preallocated.
	here := udpTracepointsHere()
	if len(here) < 3 || len(here) == 3 && sendsHooked() {
		t.Errorf("UDP's tracepoints here: %v", here)
	}
	for _, m := range HookModes {
		for _, tcp := range []bool{true, false} {
			without, _ := hooksOf(spec, m, tcp, false)
			hooks, err := hooksOf(spec, m, tcp, true)
			ms, merr := modeSpec(spec, m, false, 0, tcp, true, 0)
			tail := here
			if udpICMPHookable() && m != HooksTracepoint {
				tail = slices.Concat(here, udpICMPPrograms[m])
			}
			connect := 0 // connect()'s programs: TCP's already
			if !tcp {
				connect = len(connectPrograms)
			}
			if err != nil || merr != nil || len(hooks) != len(without)+len(udpPrograms)+connect+len(tail) ||
				hooks[len(without)].prog != udpPrograms[0] || hooks[len(hooks)-1].prog != tail[len(tail)-1] ||
				len(ms.Programs) != len(hooks)+3 || ms.Programs[udpSweep] == nil || ms.Programs[udpOwnerFiles] == nil || ms.Programs[udpOwnerSocks] == nil {
				t.Errorf("%s (tcp %v) with UDP: hooks %v (%v), spec of %d programs (%v)", m, tcp, hooks, err, len(ms.Programs), merr)
				continue
			}
			flows := ms.Maps[bpfobj.ConntraceMapUdpFlows]
			if flows.MaxEntries != DefaultUDPFlows || flows.Flags&unix.BPF_F_NO_PREALLOC == 0 {
				t.Errorf("%s with UDP: flow table of %d, flags %#x", m, flows.MaxEntries, flows.Flags)
			}
		}
	}
	// Every program of the object is some mode's (or UDP's, run by Go).
	used := map[string]bool{udpSweep: true, udpOwnerFiles: true, udpOwnerSocks: true}
	for _, list := range [][]string{syscallPrograms, statePrograms[true], statePrograms[false],
		modePrograms[HooksFentry], modePrograms[HooksKprobe], modePrograms[HooksTracepoint],
		{bpfobj.ConntraceProgHandleAcceptFexit4, dropProgram}, icmpPrograms[HooksFentry], icmpPrograms[HooksKprobe], udpPrograms,
		udpTracepoints, {bpfobj.ConntraceProgUdpKfreeSkb, bpfobj.ConntraceProgUdpSendError}, udpICMPPrograms[HooksFentry], udpICMPPrograms[HooksKprobe]} {
		for _, name := range list {
			used[name] = true
		}
	}
	for name := range spec.Programs {
		if !used[name] {
			t.Errorf("program %s is attached in no mode", name)
		}
	}
}

// TestHookOf: where a program attaches, from its section.
func TestHookOf(t *testing.T) {
	spec, err := loadSpec()
	if err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]string{
		bpfobj.ConntraceProgHandleConnectEnter:      "tracepoint/syscalls:sys_enter_connect",
		bpfobj.ConntraceProgHandleSetStateBtf:       "tp_btf/inet_sock_set_state",
		bpfobj.ConntraceProgHandleSetStateBtfRescue: "tp_btf/inet_sock_set_state (rescue)",
		bpfobj.ConntraceProgHandleSetState:          "tracepoint/sock:inet_sock_set_state",
		bpfobj.ConntraceProgHandleConnectFentry:     "fentry/tcp_connect",
		bpfobj.ConntraceProgHandleAcceptFexit:       "fexit/inet_csk_accept",
		bpfobj.ConntraceProgHandleAcceptFexit4:      "fexit/inet_csk_accept",
		bpfobj.ConntraceProgHandleConnectKprobe:     "kprobe/tcp_connect",
		bpfobj.ConntraceProgHandleAcceptKretprobe:   "kretprobe/inet_csk_accept",
		bpfobj.ConntraceProgUdpSockCreate:           "cgroup/sock_create",
		bpfobj.ConntraceProgUdpSockRelease:          "cgroup/sock_release",
		bpfobj.ConntraceProgUdpRecvmsg6:             "cgroup/recvmsg6",
		bpfobj.ConntraceProgUdpEgress:               "cgroup_skb/egress",
		bpfobj.ConntraceProgUdpIngress:              "cgroup_skb/ingress",
	} {
		h, err := hookOf(name, spec.Programs[name])
		if err != nil || h.String() != want {
			t.Errorf("%s: %v (%v), want %s", name, h, err, want)
		}
	}
}
