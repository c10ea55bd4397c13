// SPDX-License-Identifier: Apache-2.0

// Package event is what the tracer reports: one Event per record, its
// types and values, and the Sink that receives them. It knows nothing of
// BPF or of loading: output formats and metrics import it alone.
package event

import (
	"bytes"
	"fmt"
	"net/netip"
	"strconv"
	"time"

	"golang.org/x/sys/unix"

	"github.com/conntrace/conntrace/tracer/containers"
	"github.com/conntrace/conntrace/tracer/sockets"
)

// Sink receives events. Write must not keep ev: it is reused.
type Sink interface {
	Write(ev *Event) error
	// Flush is called when the ring buffer has gone quiet, and at the end.
	Flush() error
}

// Type is what happened to a connection. The values are the kernel's
// (enum event_type in bpf/conntrace.h; the tracer's tests hold them
// equal); Lost is made in user space.
type Type uint8

const (
	Listen  Type = 1
	Connect Type = 2
	Accept  Type = 3
	Close   Type = 4
	// ConnectFail: an outbound connection failed (Event.Errno).
	ConnectFail Type = 5
	// BindFail: bind() failed (Event.Errno, Event.Holders).
	BindFail Type = 6
	// Drop: UDP datagrams this host dropped before a socket had them
	// (Event.Drops, DropReason, RcvBuf, Queued): a socket's, or those
	// sent to a port with no socket (Listeners) or with a wrong checksum,
	// of no process.
	Drop Type = 7
	// DNS: a lookup and its outcome (Event.DNS): a query this host's
	// socket sent to port 53 over UDP, with its answer, or none within
	// the timeout. The peer is the server asked.
	DNS Type = 8
	// Lost reports records the kernel could not queue (Event.Lost).
	Lost Type = 32
)

// All lists the types a user can select, in display order.
var All = []Type{Listen, Connect, Accept, Close, ConnectFail, BindFail, Drop, DNS}

// Kind is what every part of the tracer knows of one type of event, in
// one place. The parts that do something per type (the reader's decoding
// and lookups, output, metrics) keep a row of their own for each type in
// All, and a test of theirs fails for a type without one.
type Kind struct {
	Name string
	// Conn: the event is of a connection, with a peer and a conn_id
	// (not listen, bind_fail or lost).
	Conn bool
	// Failure: the event is a failed call, with an errno and an
	// explanation of what the kernel saw.
	Failure bool
}

// kinds is indexed by type (an array: it is read for every event).
var kinds = [...]Kind{
	Listen:      {Name: "listen"},
	Connect:     {Name: "connect", Conn: true},
	Accept:      {Name: "accept", Conn: true},
	Close:       {Name: "close", Conn: true},
	ConnectFail: {Name: "connect_fail", Conn: true, Failure: true},
	BindFail:    {Name: "bind_fail", Failure: true},
	Drop:        {Name: "drop", Conn: true},
	DNS:         {Name: "dns", Conn: true},
	Lost:        {Name: "lost"},
}

// Kind is t's row; the zero Kind for a type of no row.
func (t Type) Kind() Kind {
	if int(t) < len(kinds) {
		return kinds[t]
	}
	return Kind{}
}

// HasPeer reports whether events of type t are of a connection, with a
// peer and a conn_id: not listen or bind_fail (nor lost).
func (t Type) HasPeer() bool { return t.Kind().Conn }

// IsFailure reports whether t is a failed call: connect_fail, bind_fail.
func (t Type) IsFailure() bool { return t.Kind().Failure }

// Known reports whether t is a type of this package.
func (t Type) Known() bool { return t.Kind().Name != "" }

func (t Type) String() string {
	if name := t.Kind().Name; name != "" {
		return name
	}
	return fmt.Sprintf("event(%d)", uint8(t))
}

// Direction says which end opened the connection.
type Direction uint8

const (
	DirNone Direction = 0
	DirOut  Direction = 1
	DirIn   Direction = 2
)

func (d Direction) String() string {
	switch d {
	case DirOut:
		return "out"
	case DirIn:
		return "in"
	}
	return ""
}

// Reason says how an established connection ended (close events).
type Reason uint8

const (
	ReasonNone     Reason = 0
	ReasonFIN      Reason = 1
	ReasonResetIn  Reason = 2
	ReasonResetOut Reason = 3
	ReasonTimeout  Reason = 4
	// UDP's: the socket was closed; no datagram either way for the
	// idle time.
	ReasonClosed Reason = 5
	ReasonIdle   Reason = 6
)

func (r Reason) String() string {
	switch r {
	case ReasonFIN:
		return "fin"
	case ReasonResetIn:
		return "reset_in"
	case ReasonResetOut:
		return "reset_out"
	case ReasonTimeout:
		return "timeout"
	case ReasonClosed:
		return "closed"
	case ReasonIdle:
		return "idle"
	}
	return ""
}

// Proto is the transport protocol (IPPROTO_*).
type Proto uint8

const (
	ProtoTCP Proto = 6
	ProtoUDP Proto = 17
)

func (p Proto) String() string {
	if p == ProtoUDP {
		return "udp"
	}
	return "tcp"
}

// Holder is a socket that holds a port, with every process that has it
// open: a listener inherited through fork() is one socket in several
// processes.
type Holder struct {
	LAddr netip.Addr
	LPort uint16
	State string // "LISTEN", "ESTABLISHED", "TIME_WAIT", ... ; UDP: "UNCONN"
	Inode uint32
	Procs []sockets.Proc // none for a socket no process has open (TIME_WAIT)
	// ProcsSeen: Procs is every process that has it open (the kernel's
	// answer); else some could not be seen, and none found is not "none".
	ProcsSeen bool
	UID       uint32 // the socket's owner
	// Expires: TIME_WAIT, how long until the kernel lets it go.
	Expires time.Duration
	// ReusePort is the socket's SO_REUSEPORT, read from the socket itself
	// when ReusePortKnown (it takes a process that has it open).
	ReusePort, ReusePortKnown bool
	// Queued and Backlog: a listener's accept queue and its backlog.
	Queued, Backlog uint32
}

// Family is the address family of a connection.
type Family uint8

const (
	FamilyAny  Family = 0
	FamilyIPv4 Family = 2  // AF_INET
	FamilyIPv6 Family = 10 // AF_INET6
)

func (f Family) String() string {
	switch f {
	case FamilyIPv4:
		return "ipv4"
	case FamilyIPv6:
		return "ipv6"
	}
	return ""
}

// Event is one decoded record. It holds no pointers into the ring buffer
// and decoding it allocates nothing; a reader reuses one Event.
type Event struct {
	Type      Type
	Time      time.Time // wall clock
	ConnID    uint64
	PID       uint32
	UID       uint32
	Comm      [16]byte // the process's name, NUL-padded; see CommBytes
	Thread    [16]byte // the thread's name, NUL-padded; see ThreadBytes
	Family    Family
	Direction Direction
	LAddr     netip.Addr // the attributed process's end
	LPort     uint16
	RAddr     netip.Addr // the peer; invalid for listen
	RPort     uint16
	// RName is the name the socket's network namespace last resolved to
	// RAddr (dns answers seen by the tracer), while its TTL and a grace
	// period last; "" when none did. Attacker-controlled: escape it.
	RName    string
	Latency  time.Duration // connect: handshake; connect_fail: until the failure
	Duration time.Duration // close: lifetime (UDP, idle: to the last datagram)
	TxBytes  uint64        // close: payload bytes
	RxBytes  uint64        // close
	// TxPackets, RxPackets: close of a UDP flow, its datagrams.
	TxPackets, RxPackets uint64
	Reason               Reason // close
	// Retransmits: close, the segments sent again in the connection's
	// life; connect_fail, the SYNs sent again before it failed.
	Retransmits uint32
	SRTT        time.Duration // close: smoothed round-trip time
	// Close, not orderly (reset or timeout): Idle is the time since the
	// peer's last packet (to a kernel tick), when IdleKnown; Unread the
	// bytes the application left unread (close() then resets); Linger0
	// that SO_LINGER 0 asked for the reset.
	Idle      time.Duration
	IdleKnown bool
	Unread    uint32
	Linger0   bool
	// PeerUnaccepted (close, reset_in): the peer was a socket on this
	// host that closed in its listener's accept queue, never accepted.
	PeerUnaccepted bool
	Errno          uint32 // connect_fail, bind_fail (0: aborted by the application)
	Proto          Proto
	NetNS          uint32 // network namespace inode of the socket (bind_fail: where to look for holders)
	// CgroupID is the cgroup (v2) of the process, taken when it
	// connected, accepted, listened or failed; 0 when unknown. Cgroup is
	// what it resolves to: its path and the container in it (nil when
	// the tracer has no cgroup v2 hierarchy to look in).
	CgroupID uint64
	Cgroup   *containers.Cgroup
	// BoundPort0: connect, close, connect_fail of a socket that was bound
	// to port 0 before connect(), reserving a local port for itself.
	BoundPort0 bool
	// Holders (bind_fail EADDRINUSE): who holds the port, looked up by the
	// tracer in the failing process's network namespace; empty, not nil,
	// when nobody was found or the error was another. HoldersError says
	// why the lookup failed, when it did.
	Holders      []Holder
	HoldersError string
	// bind_fail: the failing socket's SO_REUSEADDR, SO_REUSEPORT and
	// IPV6_V6ONLY, read in the kernel at the failure.
	ReuseAddr, ReusePort, V6Only bool
	// PortStart: bind_fail EACCES, the namespace's
	// net.ipv4.ip_unprivileged_port_start (ports below it need
	// CAP_NET_BIND_SERVICE).
	PortStart uint16
	// Listeners (connect_fail ECONNREFUSED or ETIMEDOUT to an address of
	// this host): the sockets listening on the port in the network
	// namespace that has the address (ListenersNetNS: the failing
	// socket's own, or another's on this host). For a refused connect,
	// none took it (bound to another address or family); for a timed
	// out one, a listener whose accept queue is full drops SYNs. For a
	// drop NO_SOCKET, the sockets bound to the local port (the
	// datagrams' destination) on another address.
	// Empty when nothing listens on the port there; nil when the address
	// is no namespace's here, or the lookup failed. ListenOverflows is
	// that namespace's TcpExt ListenOverflows, when OverflowsKnown.
	Listeners       []Holder
	ListenersNetNS  uint32
	ListenOverflows uint64
	OverflowsKnown  bool
	// ListenAfter (connect_fail ECONNREFUSED with Listeners): how long
	// after the refusal a socket last started listening on the port in
	// ListenersNetNS, as the kernel side saw it; 0 when none did while
	// the tracer ran. The listeners found may then not have been there.
	ListenAfter time.Duration
	// Drops (connect_fail): the connection's packets this host dropped
	// during the handshake, counted when DropsWatched (otherwise nobody
	// looked: an old kernel, socket storage). DropReason is the last
	// drop's reason, the kernel's name without SKB_DROP_REASON_
	// ("NETFILTER_DROP", "NEIGH_FAILED"); DropInbound says it was the
	// peer's answer coming in, not a SYN going out; DropIfindex the
	// device, named DropDevice in the socket's network namespace when the
	// tracer could look it up.
	// A UDP flow's close: its datagrams dropped on their way in, and the
	// last one's reason. Drop: the socket's datagrams dropped since its
	// previous drop event, their reason, and its receive buffer: RcvBuf
	// bytes (the kernel's, twice SO_RCVBUF), Queued in it at the drop;
	// or, with no socket (NO_SOCKET, UDP_CSUM; RcvBuf 0), the local
	// port's since its previous one; or a DNS client's message this host
	// dropped for any reason, one each (DropInbound: an answer, else its
	// query).
	DropsWatched bool
	Drops        uint32
	DropReason   string
	DropInbound  bool
	DropIfindex  uint32
	DropDevice   string
	RcvBuf       uint32
	Queued       uint32
	// ICMP (connect_fail): an ICMP error about the handshake, when
	// ICMPWatched (fentry and kprobe modes): its sender ICMPFrom (invalid
	// when none came), type and code.
	ICMPWatched        bool
	ICMPFrom           netip.Addr
	ICMPType, ICMPCode uint8
	// Lost (Lost): what was lost since the last lost event, the sum
	// of LostDropped (records the full ring buffer had no room for),
	// LostSkipped (hook runs the kernel skipped), LostEvicted (the events
	// of connections or UDP flows a full table had no room for) and
	// LostUnaccepted (the accepts of connections still in an accept queue
	// when the run stopped, in the last lost event only).
	Lost           uint64
	LostDropped    uint64
	LostSkipped    uint64
	LostEvicted    uint64
	LostUnaccepted uint64
	// DNS (dns events): the lookup. Valid during Sink.Write only.
	DNS *Lookup
}

// CommBytes is the process name without NUL padding. It is whatever the
// process set (prctl can put any byte there): escape it before printing.
func (e *Event) CommBytes() []byte { return unpad(e.Comm[:]) }

// ThreadBytes is the name of the thread that made the event, when it is
// not the process's (a thread can rename itself); nil otherwise, and for
// events in no thread's context. Escape it before printing.
func (e *Event) ThreadBytes() []byte {
	if e.Thread[0] == 0 || e.Thread == e.Comm {
		return nil
	}
	return unpad(e.Thread[:])
}

func unpad(name []byte) []byte {
	if i := bytes.IndexByte(name, 0); i >= 0 {
		return name[:i]
	}
	return name
}

// ErrorName is the errno's symbol (ECONNREFUSED), or "aborted" for a
// connect_fail with no error: the application closed the socket first.
func (e *Event) ErrorName() string {
	if e.Errno == 0 {
		return "aborted"
	}
	if name := unix.ErrnoName(unix.Errno(e.Errno)); name != "" {
		return name
	}
	return "errno " + strconv.Itoa(int(e.Errno))
}
