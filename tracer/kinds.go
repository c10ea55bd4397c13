// SPDX-License-Identifier: Apache-2.0

package tracer

import (
	"net/netip"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/conntrace/conntrace/tracer/internal/bpfobj"
)

// kindOps is what the reader does with one kind of event: its record and
// how it decodes, and what it looks up beside the reader. What a kind is
// (its name, whether it has a peer) is package event's; how it is written
// is package output's.
type kindOps struct {
	// size is the kind's record: its head and body (a payload may follow).
	size int
	// body decodes the kind's own fields; nil: the record is the head.
	body func(raw []byte, ev *Event)
	// lookup starts what the event waits for beside the reader, or
	// returns nil when it needs nothing; nil: the kind needs nothing.
	lookup func(t *Tracer, ev *Event) *holderLookup
	// absorb takes what the record says beyond its event (a DNS
	// message) and reports whether an event is to go out now.
	absorb func(t *Tracer, raw []byte, ev *pending) bool
	// settle puts a lookup's answer in the event; done false: none came
	// in time, giveUp: because the backlog was full.
	settle func(t *Tracer, ev *pending, l *holderLookup, done, giveUp bool)
}

// kindTable has a row for each type in event.All (TestKindTable),
// indexed by type: the record's kind (enum event_type).
var kindTable = [...]kindOps{
	EventListen:      {size: headSize},
	EventConnect:     {size: sizeOf[bpfobj.ConntraceConnectRecord](), body: decodeConnect},
	EventAccept:      {size: headSize},
	EventClose:       {size: sizeOf[bpfobj.ConntraceCloseRecord](), body: decodeClose},
	EventConnectFail: {size: sizeOf[bpfobj.ConntraceConnectFailRecord](), body: decodeConnectFail, absorb: absorbConnectFail, lookup: connectFailLookup, settle: connectFailSettle},
	EventBindFail:    {size: sizeOf[bpfobj.ConntraceBindFailRecord](), body: decodeBindFail, lookup: bindFailLookup, settle: bindFailSettle},
	EventDrop:        {size: sizeOf[bpfobj.ConntraceDropRecord](), body: decodeDrop, absorb: absorbDrop, lookup: dropLookup, settle: dropSettle},
	EventDNS:         {size: dnsHead, absorb: absorbDNS},
}

func sizeOf[R any]() int {
	var r R
	return int(unsafe.Sizeof(r))
}

func decodeConnect(raw []byte, ev *Event) {
	r := (*bpfobj.ConntraceConnectRecord)(unsafe.Pointer(&raw[0]))
	ev.Latency = time.Duration(r.LatencyNs)
}

func decodeClose(raw []byte, ev *Event) {
	r := (*bpfobj.ConntraceCloseRecord)(unsafe.Pointer(&raw[0]))
	ev.Duration = time.Duration(r.DurationNs)
	ev.TxBytes, ev.RxBytes = r.TxBytes, r.RxBytes
	ev.TxPackets, ev.RxPackets = r.TxPackets, r.RxPackets
	ev.Reason = Reason(r.Reason)
	ev.Retransmits = r.Retransmits
	ev.SRTT = time.Duration(r.SrttUs) * time.Microsecond
	ev.Unread = r.Unread
	ev.Linger0 = r.Head.Flags&uint8(bpfobj.ConntraceEventFlagsFLAG_LINGER0) != 0
	ev.PeerUnaccepted = r.PeerUnaccepted != 0
	ev.Drops = r.Drops
	if r.DropReason != 0 {
		ev.DropReason = DropReasonName(r.DropReason)
	}
	if r.Head.Flags&uint8(bpfobj.ConntraceEventFlagsFLAG_IDLE_KNOWN) != 0 {
		// Counted in kernel ticks: up to one more than the connection's
		// own life, which bounds it.
		ev.Idle, ev.IdleKnown = min(time.Duration(r.IdleNs), ev.Duration), true
	}
}

func decodeConnectFail(raw []byte, ev *Event) {
	r := (*bpfobj.ConntraceConnectFailRecord)(unsafe.Pointer(&raw[0]))
	ev.Latency = time.Duration(r.LatencyNs)
	ev.Errno = uint32(r.Error)
	ev.Retransmits = r.Retransmits
	ev.DropsWatched = r.Head.Flags&uint8(bpfobj.ConntraceEventFlagsFLAG_DROPS_WATCHED) != 0
	ev.Drops = uint32(r.Drops)
	ev.DropInbound = r.Head.Flags&uint8(bpfobj.ConntraceEventFlagsFLAG_DROP_INBOUND) != 0
	ev.DropIfindex = r.DropIfindex
	if r.DropReason != 0 {
		ev.DropReason = DropReasonName(r.DropReason)
	}
	ev.ICMPWatched = r.IcmpWatched != 0
	ev.ICMPType, ev.ICMPCode = r.IcmpType, r.IcmpCode
	switch Family(r.IcmpFamily) {
	case FamilyIPv4:
		ev.ICMPFrom = netip.AddrFrom4([4]byte(r.IcmpFrom[:4]))
	case FamilyIPv6:
		ev.ICMPFrom = netip.AddrFrom16(r.IcmpFrom)
	}
}

func decodeDrop(raw []byte, ev *Event) {
	r := (*bpfobj.ConntraceDropRecord)(unsafe.Pointer(&raw[0]))
	ev.Drops = r.Drops
	ev.DropReason = DropReasonName(r.Reason)
	ev.RcvBuf, ev.Queued = r.Rcvbuf, r.Queued
	ev.DropInbound = r.Head.Flags&uint8(bpfobj.ConntraceEventFlagsFLAG_DROP_INBOUND) != 0
}

func decodeBindFail(raw []byte, ev *Event) {
	r := (*bpfobj.ConntraceBindFailRecord)(unsafe.Pointer(&raw[0]))
	ev.Errno = uint32(r.Error)
	ev.ReuseAddr = r.Head.Flags&uint8(bpfobj.ConntraceEventFlagsFLAG_REUSEADDR) != 0
	ev.ReusePort = r.Head.Flags&uint8(bpfobj.ConntraceEventFlagsFLAG_REUSEPORT) != 0
	ev.V6Only = r.Head.Flags&uint8(bpfobj.ConntraceEventFlagsFLAG_V6ONLY) != 0
	ev.PortStart = r.PortStart
}

// connectFailLookup: who listens on the peer's port here, for a refused
// connect or one that timed out with no drop seen on a device (a
// listener whose accept queue is full drops SYNs); the device's name for
// one whose packets were dropped on one.
func connectFailLookup(t *Tracer, ev *Event) *holderLookup {
	switch {
	case ev.Errno == uint32(unix.ECONNREFUSED) || ev.Errno == uint32(unix.ETIMEDOUT) && ev.DropIfindex == 0:
		return t.holders.start(listenersOf(ev), ev.PID)
	case ev.DropIfindex != 0:
		return t.holders.start(deviceOf(ev), ev.PID)
	}
	return nil
}

func connectFailSettle(t *Tracer, ev *pending, l *holderLookup, done, _ bool) {
	switch {
	case !done:
		// Unknown, not "nobody": the explanation stays general.
	case l.device != "":
		ev.DropDevice = l.device
	case l.err == nil && (ev.Errno == uint32(unix.ECONNREFUSED) || ev.Errno == uint32(unix.ETIMEDOUT)):
		ev.Listeners, ev.ListenersNetNS = l.holders, l.netns
		ev.ListenOverflows, ev.OverflowsKnown = l.overflows, l.overflowsKnown
		if len(ev.Listeners) > 0 && ev.Errno == uint32(unix.ECONNREFUSED) {
			ev.ListenAfter = t.listenAfter(ev)
		}
	}
}

// dropLookup: for datagrams to a port nothing was bound to, the sockets
// bound to it on another address.
func dropLookup(t *Tracer, ev *Event) *holderLookup {
	if ev.DropReason != "NO_SOCKET" {
		return nil
	}
	return t.holders.start(boundElsewhereOf(ev), ev.PID)
}

func dropSettle(_ *Tracer, ev *pending, l *holderLookup, done, _ bool) {
	if done && l.err == nil {
		ev.Listeners, ev.ListenersNetNS = l.holders, l.netns
	}
}

// bindFailLookup: who holds the port, for EADDRINUSE.
func bindFailLookup(t *Tracer, ev *Event) *holderLookup {
	ev.Holders = []Holder{} // empty, not nil: nobody found, or another error
	if ev.Errno != uint32(unix.EADDRINUSE) {
		return nil
	}
	return t.holders.start(holdersOf(ev), ev.PID)
}

func bindFailSettle(t *Tracer, ev *pending, l *holderLookup, done, giveUp bool) {
	if !done {
		ev.HoldersError = t.lookupLate(giveUp)
		return
	}
	ev.Holders = l.holders
	if l.err != nil {
		ev.HoldersError = l.err.Error()
	}
}
