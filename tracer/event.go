// SPDX-License-Identifier: Apache-2.0

package tracer

import (
	"fmt"
	"net/netip"
	"time"
	"unsafe"

	"github.com/conntrace/conntrace/tracer/event"
	"github.com/conntrace/conntrace/tracer/internal/bpfobj"
)

// What the tracer reports is package event's; these names are the
// tracer's for it.
type (
	Event     = event.Event
	EventType = event.Type
	Direction = event.Direction
	Reason    = event.Reason
	Proto     = event.Proto
	Family    = event.Family
	Holder    = event.Holder
	Sink      = event.Sink
)

const (
	EventListen      = event.Listen
	EventConnect     = event.Connect
	EventAccept      = event.Accept
	EventClose       = event.Close
	EventConnectFail = event.ConnectFail
	EventBindFail    = event.BindFail
	EventDrop        = event.Drop
	EventDNS         = event.DNS
	EventLost        = event.Lost

	DirNone = event.DirNone
	DirOut  = event.DirOut
	DirIn   = event.DirIn

	ReasonNone     = event.ReasonNone
	ReasonFIN      = event.ReasonFIN
	ReasonResetIn  = event.ReasonResetIn
	ReasonResetOut = event.ReasonResetOut
	ReasonTimeout  = event.ReasonTimeout
	ReasonClosed   = event.ReasonClosed
	ReasonIdle     = event.ReasonIdle

	ProtoTCP = event.ProtoTCP
	ProtoUDP = event.ProtoUDP

	FamilyAny  = event.FamilyAny
	FamilyIPv4 = event.FamilyIPv4
	FamilyIPv6 = event.FamilyIPv6
)

// pending is an event on its way to the sink, with what it waits for.
type pending struct {
	Event
	ts       uint64        // the record's time (bpf_ktime_get_ns)
	lookup   *holderLookup // bind_fail, connect_fail: the lookup it waits for
	cgLookup *cgroupLookup // the lookup of its cgroup it waits for
	heldAt   time.Time     // when it was held back behind a lookup
}

// recordTime is the time of a record decode accepted.
func recordTime(raw []byte) uint64 {
	return (*bpfobj.ConntraceRecordHead)(unsafe.Pointer(&raw[0])).TsNs
}

const headSize = int(unsafe.Sizeof(bpfobj.ConntraceRecordHead{}))

// RecordSize is the size of the record of events of type t (0: none).
func RecordSize(t EventType) int {
	if int(t) < len(kindTable) {
		return kindTable[t].size
	}
	return 0
}

// decode fills ev from one ring-buffer record, read in place (ring-buffer
// samples are 8-byte aligned), not copied with encoding/binary: decoding
// allocates nothing.
func decode(raw []byte, clk Clock, ev *Event) error {
	if len(raw) < headSize {
		return fmt.Errorf("short record: %d bytes, want at least %d", len(raw), headSize)
	}
	h := (*bpfobj.ConntraceRecordHead)(unsafe.Pointer(&raw[0]))
	t := EventType(h.Kind)
	size := RecordSize(t)
	if size == 0 {
		return fmt.Errorf("record of unknown kind %d", h.Kind)
	}
	if int(h.Size) < size || int(h.Size) > len(raw) {
		return fmt.Errorf("%s record of %d bytes (%d read), want %d", t, h.Size, len(raw), size)
	}
	*ev = Event{
		Type:       t,
		Time:       clk.Wall(h.TsNs),
		ConnID:     h.ConnId,
		PID:        h.Pid,
		UID:        h.Uid,
		Family:     Family(h.Family),
		Direction:  Direction(h.Direction),
		LPort:      h.Sport,
		RPort:      h.Dport,
		Proto:      Proto(h.Proto),
		NetNS:      h.Netns,
		CgroupID:   h.Cgroup,
		BoundPort0: h.Flags&uint8(bpfobj.ConntraceEventFlagsFLAG_BOUND_PORT0) != 0,
		Comm:       *(*[16]byte)(unsafe.Pointer(&h.Comm)),
		Thread:     *(*[16]byte)(unsafe.Pointer(&h.Thread)),
	}
	switch ev.Family {
	case FamilyIPv4:
		ev.LAddr = netip.AddrFrom4([4]byte(h.Saddr[:4]))
		ev.RAddr = netip.AddrFrom4([4]byte(h.Daddr[:4]))
	case FamilyIPv6:
		ev.LAddr = netip.AddrFrom16(h.Saddr)
		ev.RAddr = netip.AddrFrom16(h.Daddr)
	default:
		return fmt.Errorf("record with unknown address family %d", h.Family)
	}
	if !t.HasPeer() {
		ev.RAddr, ev.RPort = netip.Addr{}, 0
	}
	if body := kindTable[t].body; body != nil {
		body(raw, ev)
	}
	return nil
}
