// SPDX-License-Identifier: Apache-2.0

package tracer

import (
	"net/netip"
	"reflect"
	"strings"
	"testing"
	"time"
	"unsafe"

	"github.com/cilium/ebpf/btf"

	"github.com/conntrace/conntrace/tracer/containers"
	"github.com/conntrace/conntrace/tracer/event"
	"github.com/conntrace/conntrace/tracer/internal/bpfobj"
)

// record lays out r, a record of bpfobj's (its head alone, or a kind's
// record), exactly as the kernel writes it, its size in its head.
func record[R any](r R) []byte {
	b := make([]byte, unsafe.Sizeof(r))
	*(*R)(unsafe.Pointer(&b[0])) = r
	(*bpfobj.ConntraceRecordHead)(unsafe.Pointer(&b[0])).Size = uint16(len(b))
	return b
}

func comm16(s string) (c [16]int8) {
	for i := 0; i < len(s); i++ {
		c[i] = int8(s[i])
	}
	return c
}

func TestDecode(t *testing.T) {
	clk := ClockWithOffset(1_000 * time.Second)
	v6 := netip.MustParseAddr("2001:db8::1").As16()
	tests := []struct {
		name string
		in   []byte
		want Event
	}{
		{
			name: "connect ipv4",
			in: record(bpfobj.ConntraceConnectRecord{Head: bpfobj.ConntraceRecordHead{TsNs: 5_000_000_123, ConnId: 17, Pid: 4242, Uid: 1000,
				Saddr: [16]uint8{10, 0, 0, 5}, Daddr: [16]uint8{93, 184, 216, 34}, Sport: 51234, Dport: 443,
				Kind: uint8(EventConnect), Family: 2, Direction: uint8(DirOut), Proto: 6, Comm: comm16("curl")}, LatencyNs: 1_234_000}),
			want: Event{Type: EventConnect, Time: time.Unix(1005, 123).UTC(), ConnID: 17, PID: 4242, UID: 1000,
				Comm: [16]byte{'c', 'u', 'r', 'l'}, Family: FamilyIPv4, Direction: DirOut,
				LAddr: netip.MustParseAddr("10.0.0.5"), LPort: 51234, RAddr: netip.MustParseAddr("93.184.216.34"), RPort: 443,
				Latency: 1234 * time.Microsecond, Proto: ProtoTCP},
		},
		{
			name: "close ipv6",
			in: record(bpfobj.ConntraceCloseRecord{Head: bpfobj.ConntraceRecordHead{TsNs: 1, ConnId: 3,
				Saddr: v6, Daddr: v6, Sport: 8443, Dport: 40000, Kind: uint8(EventClose), Family: 10, Direction: uint8(DirIn), Proto: 6},
				DurationNs: 2_500_000_000, TxBytes: 10000, RxBytes: 3000, Reason: uint8(ReasonResetIn)}),
			want: Event{Type: EventClose, Time: time.Unix(1000, 1).UTC(), ConnID: 3, Family: FamilyIPv6, Direction: DirIn,
				LAddr: netip.AddrFrom16(v6), LPort: 8443, RAddr: netip.AddrFrom16(v6), RPort: 40000,
				Duration: 2500 * time.Millisecond, TxBytes: 10000, RxBytes: 3000, Reason: ReasonResetIn, Proto: ProtoTCP},
		},
		{
			name: "bind_fail has no peer",
			in: record(bpfobj.ConntraceBindFailRecord{Head: bpfobj.ConntraceRecordHead{Saddr: [16]uint8{127, 0, 0, 1}, Daddr: [16]uint8{1, 2, 3, 4},
				Sport: 80, Dport: 9, Kind: uint8(EventBindFail), Family: 2, Proto: 17, Netns: 4026531840}, Error: 98}),
			want: Event{Type: EventBindFail, Time: time.Unix(1000, 0).UTC(), Family: FamilyIPv4,
				LAddr: netip.MustParseAddr("127.0.0.1"), LPort: 80, Errno: 98, Proto: ProtoUDP, NetNS: 4026531840},
		},
		{
			name: "listen has no peer",
			in:   record(bpfobj.ConntraceRecordHead{Saddr: [16]uint8{127, 0, 0, 1}, Sport: 80, Kind: uint8(EventListen), Family: 2}),
			want: Event{Type: EventListen, Time: time.Unix(1000, 0).UTC(), Family: FamilyIPv4,
				LAddr: netip.MustParseAddr("127.0.0.1"), LPort: 80},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var got Event
			if err := decode(tc.in, clk, &got); err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("decode:\n got %+v\nwant %+v", got, tc.want)
			}
		})
	}
}

func TestDecodeRejects(t *testing.T) {
	var ev Event
	for name, raw := range map[string][]byte{
		"short head":  make([]byte, headSize-1),
		"short body":  record(bpfobj.ConntraceRecordHead{Kind: uint8(EventClose), Family: 2}),
		"size beyond": record(bpfobj.ConntraceConnectRecord{Head: bpfobj.ConntraceRecordHead{Kind: uint8(EventConnect), Family: 2}})[:headSize+4],
		"bad family":  record(bpfobj.ConntraceCloseRecord{Head: bpfobj.ConntraceRecordHead{Kind: uint8(EventClose), Family: 7}}),
		"bad type":    record(bpfobj.ConntraceCloseRecord{Head: bpfobj.ConntraceRecordHead{Kind: 99, Family: 2}}),
		"lost inside": record(bpfobj.ConntraceCloseRecord{Head: bpfobj.ConntraceRecordHead{Kind: uint8(EventLost), Family: 2}}),
	} {
		if err := decode(raw, Clock{}, &ev); err == nil {
			t.Errorf("%s: decode accepted it", name)
		}
	}
}

func TestDecodeAllocs(t *testing.T) {
	raw := record(bpfobj.ConntraceConnectRecord{Head: bpfobj.ConntraceRecordHead{Kind: uint8(EventConnect), Family: 10, Comm: comm16("x")}})
	var ev Event
	if n := testing.AllocsPerRun(100, func() { _ = decode(raw, Clock{}, &ev) }); n != 0 {
		t.Errorf("decode allocates %v times per event", n)
	}
}

func TestCommBytes(t *testing.T) {
	ev := Event{Comm: [16]byte{'a', 'b', 0, 'z'}}
	if got := string(ev.CommBytes()); got != "ab" {
		t.Errorf("CommBytes = %q", got)
	}
	full := Event{Comm: [16]byte{'0', '1', '2', '3', '4', '5', '6', '7', '8', '9', 'a', 'b', 'c', 'd', 'e', 'f'}}
	if got := string(full.CommBytes()); got != "0123456789abcdef" {
		t.Errorf("CommBytes = %q", got)
	}
}

func TestClock(t *testing.T) {
	clk := NewClock()
	mono := monotonicNow()
	got := clk.Wall(uint64(mono))
	if d := time.Since(got); d < -50*time.Millisecond || d > 50*time.Millisecond {
		t.Errorf("Wall(now) is %v away from time.Now", d)
	}
	if got.Location() != time.UTC {
		t.Errorf("Wall returns %v, want UTC", got.Location())
	}
}

func TestParseEvents(t *testing.T) {
	m, err := ParseEvents("connect, close")
	if err != nil {
		t.Fatal(err)
	}
	if !m.Has(EventConnect) || !m.Has(EventClose) || m.Has(EventAccept) || m.Has(EventListen) {
		t.Errorf("mask %b", m)
	}
	for _, bad := range []string{"conect", "", ",", "lost"} {
		if _, err := ParseEvents(bad); err == nil {
			t.Errorf("ParseEvents(%q) accepted", bad)
		}
	}
	if !EventMask(0).Has(EventListen) {
		t.Error("zero mask must select everything")
	}
}

func TestConfigValidate(t *testing.T) {
	for name, c := range map[string]Config{
		"port 0":     {Ports: []uint16{0}},
		"pid 0":      {PIDs: []uint32{0}},
		"long comm":  {Comms: []string{"0123456789abcdef"}},
		"empty comm": {Comms: []string{""}},
		"family":     {Family: 3},
		"proto":      {Proto: 1},
		"ring":       {RingBytes: 5000},
	} {
		if err := c.Validate(); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	ok := Config{Ports: []uint16{443}, PIDs: []uint32{1}, Comms: []string{"nginx", "curl"}, Family: FamilyIPv6, RingBytes: 1 << 16}
	if err := ok.Validate(); err != nil {
		t.Errorf("valid config rejected: %v", err)
	}
}

// TestEventValuesAreTheKernels: package event's values are bpf/'s: every
// kind in enum event_type (EVENT_CONNECT_FAIL) is the type of that name
// (connect_fail), and every type a user can select is one of them.
func TestEventValuesAreTheKernels(t *testing.T) {
	spec, err := bpfobj.LoadConntrace()
	if err != nil {
		t.Fatal(err)
	}
	var kinds *btf.Enum
	if err := spec.Types.TypeByName("event_type", &kinds); err != nil {
		t.Fatal(err)
	}
	seen := map[EventType]bool{}
	for _, v := range kinds.Values {
		name := strings.ToLower(strings.TrimPrefix(v.Name, "EVENT_"))
		if got := EventType(v.Value).String(); got != name {
			t.Errorf("%s = %d: package event calls %d %q", v.Name, v.Value, v.Value, got)
		}
		seen[EventType(v.Value)] = true
	}
	for _, k := range event.All {
		if !seen[k] {
			t.Errorf("%s (%d) is no kind of the kernel's", k, k)
		}
	}
	for _, c := range []struct {
		name       string
		ours, bpfs uint8
	}{
		{"dir none", uint8(DirNone), uint8(bpfobj.ConntraceDirectionDIR_NONE)},
		{"dir out", uint8(DirOut), uint8(bpfobj.ConntraceDirectionDIR_OUT)},
		{"dir in", uint8(DirIn), uint8(bpfobj.ConntraceDirectionDIR_IN)},
		{"reason none", uint8(ReasonNone), uint8(bpfobj.ConntraceCloseReasonREASON_NONE)},
		{"fin", uint8(ReasonFIN), uint8(bpfobj.ConntraceCloseReasonREASON_FIN)},
		{"reset_in", uint8(ReasonResetIn), uint8(bpfobj.ConntraceCloseReasonREASON_RESET_IN)},
		{"reset_out", uint8(ReasonResetOut), uint8(bpfobj.ConntraceCloseReasonREASON_RESET_OUT)},
		{"timeout", uint8(ReasonTimeout), uint8(bpfobj.ConntraceCloseReasonREASON_TIMEOUT)},
		{"closed", uint8(ReasonClosed), uint8(bpfobj.ConntraceCloseReasonREASON_CLOSED)},
		{"idle", uint8(ReasonIdle), uint8(bpfobj.ConntraceCloseReasonREASON_IDLE)},
	} {
		if c.ours != c.bpfs {
			t.Errorf("%s: package event says %d, bpf/ %d", c.name, c.ours, c.bpfs)
		}
	}
}

// TestCgroupFilterSize: containers.Filter gives at most what the kernel's
// map holds.
func TestCgroupFilterSize(t *testing.T) {
	spec, err := bpfobj.LoadConntrace()
	if err != nil {
		t.Fatal(err)
	}
	if got := spec.Maps[bpfobj.ConntraceMapCgroupFilter].MaxEntries; got != containers.FilterMax {
		t.Errorf("cgroup_filter holds %d, containers.FilterMax is %d", got, containers.FilterMax)
	}
}

// TestKindTable: each kind has its row, and its record is its head and its
// own fields only (bytes in the ring, before its 8-byte sample header).
func TestKindTable(t *testing.T) {
	want := map[EventType]int{EventListen: 112, EventConnect: 120, EventAccept: 112, EventClose: 184,
		EventConnectFail: 160, EventBindFail: 120, EventDrop: 128, EventDNS: 128}
	for _, k := range event.All {
		if got := RecordSize(k); got != want[k] {
			t.Errorf("%s: %d bytes, want %d", k, got, want[k])
		}
	}
	if RecordSize(EventLost) != 0 {
		t.Error("lost has a record")
	}
	for _, k := range event.All {
		if ops := kindTable[k]; (ops.lookup == nil) != (ops.settle == nil) {
			t.Errorf("%s: a lookup without a settle, or the other way round", k)
		}
	}
	// A payload after a kind's fields (its head's size says so) is the
	// kind's to read: decode accepts it.
	raw := append(record(bpfobj.ConntraceConnectRecord{Head: bpfobj.ConntraceRecordHead{Kind: uint8(EventConnect), Family: 2}}), make([]byte, 40)...)
	(*bpfobj.ConntraceRecordHead)(unsafe.Pointer(&raw[0])).Size = uint16(len(raw) - 8)
	var ev Event
	if err := decode(raw, Clock{}, &ev); err != nil {
		t.Errorf("record with a payload: %v", err)
	}
}
