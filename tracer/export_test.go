package tracer

import (
	"os"
	"testing"
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
	return record(conntraceEvent{TsNs: 5_000_000_123, ConnId: 17, DurationNs: 2_500_000_000, TxBytes: 10000, RxBytes: 3000,
		Pid: 4242, Uid: 1000, Saddr: [16]uint8{10, 0, 0, 5}, Daddr: [16]uint8{93, 184, 216, 34}, Sport: 51234, Dport: 443,
		Type: uint8(EventClose), Family: 2, Direction: uint8(DirOut), Reason: uint8(ReasonFIN), Proto: 6, Comm: comm16("curl")})
}
