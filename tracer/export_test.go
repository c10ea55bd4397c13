// SPDX-License-Identifier: Apache-2.0

package tracer

import (
	"errors"
	"os"
	"testing"

	"github.com/cilium/ebpf"

	"github.com/conntrace/conntrace/tracer/internal/bpfobj"
)

// HooksUnderTest is the hook mode the integration tests open the tracer
// with: $CONNTRACE_TEST_HOOKS (vmtest runs the suite once per mode), or
// auto.
func HooksUnderTest(tb testing.TB) Hooks {
	s := os.Getenv("CONNTRACE_TEST_HOOKS")
	if s == "" {
		return HooksAuto
	}
	h, err := ParseHooks(s)
	if err != nil {
		tb.Fatalf("CONNTRACE_TEST_HOOKS: %v", err)
	}
	return h
}

// DecodeForTest is decode, for the benchmarks in package tracer_test.
func DecodeForTest(raw []byte, clk Clock, ev *Event) error { return decode(raw, clk, ev) }

// CloseRecordForTest is one ring-buffer record of a typical event: an
// IPv4 close with bytes, duration and a reason.
func CloseRecordForTest() []byte {
	return record(bpfobj.ConntraceCloseRecord{Head: bpfobj.ConntraceRecordHead{TsNs: 5_000_000_123, ConnId: 17,
		Pid: 4242, Uid: 1000, Saddr: [16]uint8{10, 0, 0, 5}, Daddr: [16]uint8{93, 184, 216, 34}, Sport: 51234, Dport: 443,
		Kind: uint8(EventClose), Family: 2, Direction: uint8(DirOut), Proto: 6, Comm: comm16("curl")},
		DurationNs: 2_500_000_000, TxBytes: 10000, RxBytes: 3000, Reason: uint8(ReasonFIN)})
}

// SeedRecordsForTest are ring-buffer records of each event type, for the
// fuzz targets' seed corpus.
func SeedRecordsForTest() [][]byte {
	v6 := [16]uint8{0x20, 0x01, 0x0d, 0xb8, 15: 1}
	return [][]byte{
		CloseRecordForTest(),
		record(bpfobj.ConntraceConnectRecord{Head: bpfobj.ConntraceRecordHead{TsNs: 1, ConnId: 1, Pid: 1, Saddr: v6, Daddr: v6, Sport: 40000, Dport: 443,
			Kind: uint8(EventConnect), Family: 10, Direction: uint8(DirOut), Proto: 6, Comm: comm16("curl")}, LatencyNs: 41_000}),
		record(bpfobj.ConntraceBindFailRecord{Head: bpfobj.ConntraceRecordHead{Pid: 2, Saddr: [16]uint8{127, 0, 0, 1}, Sport: 8080,
			Kind: uint8(EventBindFail), Family: 2, Proto: 6, Comm: comm16("\x1b[2J\xff")}, Error: 98}),
		record(bpfobj.ConntraceRecordHead{Pid: 3, Sport: 22, Kind: uint8(EventListen), Family: 10, Proto: 6, Comm: comm16("sshd")}),
		record(bpfobj.ConntraceConnectFailRecord{Head: bpfobj.ConntraceRecordHead{Pid: 4, Saddr: [16]uint8{10, 0, 0, 1}, Daddr: [16]uint8{10, 0, 0, 2},
			Sport: 1, Dport: 9, Kind: uint8(EventConnectFail), Family: 2, Proto: 6, Comm: comm16("nc")}, Error: 111}),
		record(bpfobj.ConntraceRecordHead{Pid: 5, Saddr: v6, Daddr: v6, Kind: uint8(EventAccept), Family: 10, Direction: uint8(DirIn), Proto: 6,
			Flags: uint8(bpfobj.ConntraceEventFlagsFLAG_BOUND_PORT0), Comm: comm16("a\"b\\c\n")}),
	}
}

// SocketTableLen counts the connections the kernel side remembers now,
// a syscall each.
func SocketTableLen(t *Tracer) (int, error) {
	var key, next uint64
	n := 0
	err := t.maps.Socks.NextKey(nil, &next)
	for ; err == nil; err = t.maps.Socks.NextKey(&key, &next) {
		n++
		key = next
	}
	if !errors.Is(err, ebpf.ErrKeyNotExist) {
		return 0, err
	}
	return n, nil
}

// UseFloorForTest makes Open load the hook-cost floor until the test ends.
func UseFloorForTest(tb testing.TB) {
	loadSpec = loadFloor
	tb.Cleanup(func() { loadSpec = bpfobj.LoadConntrace })
}

// HideCgroup2ForTest makes Open act as on a host without cgroup v2 until
// the returned function is called.
func HideCgroup2ForTest() (restore func()) {
	noCgroup2ForTest = true
	return func() { noCgroup2ForTest = false }
}

// HideKernelBTFForTest makes Open act as on a kernel without BTF of its
// own until the returned function is called.
func HideKernelBTFForTest() (restore func()) {
	noKernelBTFForTest = true
	return func() { noKernelBTFForTest = false }
}

// OnStoppingForTest makes f run once the programs know the run is
// stopping, before the queued connections get their moment (settle).
func (t *Tracer) OnStoppingForTest(f func()) { t.onStopping = f }

// BeforeListenerLookupForTest makes f run as each listener lookup starts
// (nil: nothing).
func BeforeListenerLookupForTest(f func()) { beforeListenerLookup = f }

// SendsHooked says whether failed UDP sends are seen on this kernel.
func SendsHooked() bool { return sendsHooked() }

// UDPICMPHooked says whether mode m hooks UDP's ICMP errors here (who
// sent a connected socket's error).
func UDPICMPHooked(m Hooks) bool { return m != HooksTracepoint && udpICMPHookable() }
