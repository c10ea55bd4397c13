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
	EventLost        = event.Lost

	DirNone = event.DirNone
	DirOut  = event.DirOut
	DirIn   = event.DirIn

	ReasonNone     = event.ReasonNone
	ReasonFIN      = event.ReasonFIN
	ReasonResetIn  = event.ReasonResetIn
	ReasonResetOut = event.ReasonResetOut
	ReasonTimeout  = event.ReasonTimeout

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
	return (*bpfobj.ConntraceEvent)(unsafe.Pointer(&raw[0])).TsNs
}

// RecordSize is the size of one ring-buffer record.
const RecordSize = int(unsafe.Sizeof(bpfobj.ConntraceEvent{}))

// decode fills ev from one ring-buffer record. The record is read in place
// (ring-buffer samples are 8-byte aligned), not copied with encoding/binary.
func decode(raw []byte, clk Clock, ev *Event) error {
	if len(raw) < RecordSize {
		return fmt.Errorf("short record: %d bytes, want %d", len(raw), RecordSize)
	}
	r := (*bpfobj.ConntraceEvent)(unsafe.Pointer(&raw[0]))
	*ev = Event{
		Type:       EventType(r.Type),
		Time:       clk.Wall(r.TsNs),
		ConnID:     r.ConnId,
		PID:        r.Pid,
		UID:        r.Uid,
		Family:     Family(r.Family),
		Direction:  Direction(r.Direction),
		LPort:      r.Sport,
		RPort:      r.Dport,
		Latency:    time.Duration(r.LatencyNs),
		Duration:   time.Duration(r.DurationNs),
		TxBytes:    r.TxBytes,
		RxBytes:    r.RxBytes,
		Reason:     Reason(r.Reason),
		Errno:      uint32(r.Error),
		Proto:      Proto(r.Proto),
		NetNS:      r.Netns,
		CgroupID:   r.Cgroup,
		BoundPort0: r.Flags&uint8(bpfobj.ConntraceEventFlagsFLAG_BOUND_PORT0) != 0,

		Retransmits:  r.Retransmits,
		SRTT:         time.Duration(r.SrttUs) * time.Microsecond,
		DropsWatched: r.Flags&uint8(bpfobj.ConntraceEventFlagsFLAG_DROPS_WATCHED) != 0,
		Drops:        r.Drops,
		DropInbound:  r.Flags&uint8(bpfobj.ConntraceEventFlagsFLAG_DROP_INBOUND) != 0,
		DropIfindex:  r.DropIfindex,
		Unread:       r.Unread,
		Linger0:      r.Flags&uint8(bpfobj.ConntraceEventFlagsFLAG_LINGER0) != 0,

		PeerUnaccepted: r.PeerUnaccepted != 0,
	}
	if ev.Type == EventConnectFail {
		ev.ICMPWatched = r.IcmpWatched != 0
		ev.ICMPType, ev.ICMPCode = r.IcmpType, r.IcmpCode
		switch Family(r.IcmpFamily) {
		case FamilyIPv4:
			ev.ICMPFrom = netip.AddrFrom4([4]byte(r.IcmpFrom[:4]))
		case FamilyIPv6:
			ev.ICMPFrom = netip.AddrFrom16(r.IcmpFrom)
		}
	}
	if ev.Type == EventBindFail {
		ev.ReuseAddr = r.Flags&uint8(bpfobj.ConntraceEventFlagsFLAG_REUSEADDR) != 0
		ev.ReusePort = r.Flags&uint8(bpfobj.ConntraceEventFlagsFLAG_REUSEPORT) != 0
		ev.V6Only = r.Flags&uint8(bpfobj.ConntraceEventFlagsFLAG_V6ONLY) != 0
		ev.PortStart = r.PortStart
	}
	if ev.Type == EventClose {
		ev.Latency = 0
		if r.Flags&uint8(bpfobj.ConntraceEventFlagsFLAG_IDLE_KNOWN) != 0 {
			// Counted in kernel ticks: up to one more than the
			// connection's own life, which bounds it.
			ev.Idle, ev.IdleKnown = min(time.Duration(r.LatencyNs), ev.Duration), true
		}
	}
	if r.DropReason != 0 {
		ev.DropReason = DropReasonName(r.DropReason)
	}
	ev.Comm = *(*[16]byte)(unsafe.Pointer(&r.Comm))
	ev.Thread = *(*[16]byte)(unsafe.Pointer(&r.Thread))
	switch ev.Family {
	case FamilyIPv4:
		ev.LAddr = netip.AddrFrom4([4]byte(r.Saddr[:4]))
		ev.RAddr = netip.AddrFrom4([4]byte(r.Daddr[:4]))
	case FamilyIPv6:
		ev.LAddr = netip.AddrFrom16(r.Saddr)
		ev.RAddr = netip.AddrFrom16(r.Daddr)
	default:
		return fmt.Errorf("record with unknown address family %d", r.Family)
	}
	if !ev.Type.HasPeer() {
		ev.RAddr, ev.RPort = netip.Addr{}, 0
	}
	if !ev.Type.Known() || ev.Type == EventLost {
		return fmt.Errorf("record with unknown event type %d", r.Type)
	}
	return nil
}
