// SPDX-License-Identifier: Apache-2.0

package dns

import (
	"bytes"
	"net/netip"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/conntrace/conntrace/tracer/event"
)

// Lookups pairs the queries a socket sends with the answers it gets: by
// network namespace, socket, server and id, and the question (an answer
// that does not repeat it is not the query's). A query with no answer
// within the timeout is a timed-out lookup; so is one sent again (same
// socket, server and id) before its answer came. At most max queries are
// in flight; one more is not followed (Overflow counts it: its answer is
// then reported without its query).
type Lookups struct {
	// DropsWatched: the kernel side reports this host's drops of DNS
	// messages (DroppedHere); a timeout says whether there were any.
	DropsWatched bool
	timeout      time.Duration
	max          int
	flight       map[flightKey]*flight
	order        []sent    // in the order sent: the timeouts' order too
	done         []*flight // ended before their time (sent again, refused): their Outcome is set
	free         []*flight
	seq          uint64
	// truncated: when each truncated answer over UDP came, until its
	// retry over TCP.
	truncated map[truncKey]uint64
	// Overflow counts queries not followed: max were in flight.
	Overflow uint64
}

// truncKey is what a retry over TCP of a truncated answer's query has
// in common with it.
type truncKey struct {
	netns, pid uint32
	server     netip.Addr
	qtype      uint16
	name       string
}

// maxTruncated bounds the truncated answers waiting for their retry; one
// more forgets them.
const maxTruncated = 1024

// DefaultMaxInFlight bounds the queries followed at once.
const DefaultMaxInFlight = 65536

// flightKey is plain memory (the server's address as 16 bytes, not a
// netip.Addr): hashed in one call.
type flightKey struct {
	sock   uint64
	server [16]byte
	netns  uint32
	port   uint16
	id     uint16
}

// A flight is a query in flight, then the lookup of its event until it
// is written (Release), then free for the next query.
type flight struct {
	lookup event.Lookup // first: Release finds the flight from it
	key    flightKey
	seq    uint64 // in flight as the seq-th query; 0: no more
	sentTs uint64
	query  event.Event // the query's record, for its process and addresses
	// hidden: the filters leave the lookup out: its answer only names
	// addresses.
	hidden bool
}

// sent is a query's place in the order they were sent; stale once its
// flight has moved on (its seq differs).
type sent struct {
	f   *flight
	seq uint64
}

// NewLookups follows up to max queries, each for timeout.
func NewLookups(timeout time.Duration, max int) *Lookups {
	return &Lookups{timeout: timeout, max: max, flight: make(map[flightKey]*flight), truncated: make(map[truncKey]uint64)}
}

// Timeout is how long a query waits for its answer.
func (ls *Lookups) Timeout() time.Duration { return ls.timeout }

// InFlight is the number of queries waiting for their answer.
func (ls *Lookups) InFlight() int { return len(ls.flight) }

// Waiting is InFlight and the lookups that ended with no answer and are
// not reported yet: Expired has something to say only when it is not 0.
func (ls *Lookups) Waiting() int { return len(ls.flight) + len(ls.done) }

func keyOf(ev *event.Event, sock uint64, id uint16) flightKey {
	return flightKey{sock: sock, server: ev.RAddr.As16(), netns: ev.NetNS, port: ev.RPort, id: id}
}

// Query notes query m, sent at ts by ev's socket (sock its cookie);
// shown: it is to be reported (else its answer only names addresses).
func (ls *Lookups) Query(ev *event.Event, ts, sock uint64, m *Message, shown bool) {
	k := keyOf(ev, sock, m.ID)
	if old, ok := ls.flight[k]; ok {
		delete(ls.flight, k)
		old.lookup.Outcome = event.TimedOut
		ls.done = append(ls.done, old)
	}
	if len(ls.flight) >= ls.max {
		ls.Overflow++
		return
	}
	f := ls.get()
	ls.seq++
	f.key, f.seq, f.sentTs, f.query, f.hidden = k, ls.seq, ts, *ev, !shown
	f.query.DNS = nil
	fill(&f.lookup, m)
	if ev.Proto == event.ProtoTCP && len(ls.truncated) > 0 {
		tk := truncKey{ev.NetNS, ev.PID, ev.RAddr, m.QType, string(m.Name)}
		if at, ok := ls.truncated[tk]; ok {
			delete(ls.truncated, tk)
			f.lookup.RetryOfTruncated = ts-min(ts, at) <= uint64(ls.timeout)
		}
	}
	ls.flight[k] = f
	ls.order = append(ls.order, sent{f, f.seq})
}

// Answer pairs answer m, received at ts by ev's socket, with its query,
// and returns the lookup to report with ev (Release it once written, or
// at once when it is not to be), whether it was paired (only a paired
// answer may name addresses: anyone can send a datagram from port 53 to
// an open socket), and whether its query was hidden.
func (ls *Lookups) Answer(ev *event.Event, ts, sock uint64, m *Message) (l *event.Lookup, paired, hidden bool) {
	k := keyOf(ev, sock, m.ID)
	f, ok := ls.flight[k]
	if ok && (f.lookup.QType != m.QType || !bytes.EqualFold(f.lookup.Name, m.Name)) {
		ok = false // not its answer
	}
	if ok {
		hidden = f.hidden
		delete(ls.flight, k)
		if m.TC && ev.Proto == event.ProtoUDP {
			if len(ls.truncated) >= maxTruncated {
				clear(ls.truncated)
			}
			ls.truncated[truncKey{ev.NetNS, ev.PID, ev.RAddr, m.QType, string(m.Name)}] = ts
		}
		f.seq = 0 // its place in order is stale
		f.lookup.Latency = time.Duration(ts - f.sentTs)
		if len(ls.flight) == 0 && len(ls.done) == 0 {
			ls.order = ls.order[:0] // every place in it is stale
		}
	} else {
		f = ls.get()
		fill(&f.lookup, m)
		f.lookup.Latency = 0
	}
	l = &f.lookup
	l.Outcome, l.RCode, l.Truncated = event.Answered, m.RCode, m.TC
	l.Errno, l.ICMPFrom, l.ICMPType, l.ICMPCode = 0, netip.Addr{}, 0, 0
	l.Answers = append(l.Answers[:0], m.Answers...)
	l.AnswerCount = m.AnswerCount
	l.ResolvedWithoutSuffix = l.ResolvedWithoutSuffix[:0]
	l.CNAMEs = l.CNAMEs[:0]
	for _, c := range m.CNAMEs {
		l.CNAMEs = appendName(l.CNAMEs, c)
	}
	l.Partial = l.Partial || m.Partial
	return l, ok, hidden
}

// Refused ends the lookups in flight of the UDP flow of fail, a
// connect_fail (an ICMP error, for a connected socket): their answer will
// not come. Expired reports them, with ts, the failure's time.
func (ls *Lookups) Refused(fail *event.Event, ts uint64) {
	if fail.ConnID == 0 {
		return
	}
	for _, o := range ls.order {
		f := o.f
		if f.seq != o.seq || f.query.ConnID != fail.ConnID || f.key.netns != fail.NetNS || ls.flight[f.key] != f {
			continue
		}
		delete(ls.flight, f.key)
		l := &f.lookup
		l.Outcome, l.Errno = event.Unreachable, fail.Errno
		l.ICMPFrom, l.ICMPType, l.ICMPCode = fail.ICMPFrom, fail.ICMPType, fail.ICMPCode
		l.Latency = time.Duration(ts - min(ts, f.sentTs))
		ls.done = append(ls.done, f)
	}
}

// Blocked is the lookup of query m, which a firewall rule here dropped
// on its way out: the application got EPERM. Release it once written.
func (ls *Lookups) Blocked(m *Message) *event.Lookup {
	f := ls.get()
	f.seq = 0
	fill(&f.lookup, m)
	l := &f.lookup
	l.Outcome, l.RCode, l.Truncated, l.Latency = event.Unreachable, 0, false, 0
	l.Errno, l.ICMPFrom, l.ICMPType, l.ICMPCode = uint32(unix.EPERM), netip.Addr{}, 0, 0
	l.Answers, l.AnswerCount, l.CNAMEs = l.Answers[:0], 0, l.CNAMEs[:0]
	l.DropsWatched, l.Drops, l.DropReason, l.DropOut = true, 1, "NETFILTER_DROP", true
	return l
}

// Unreadable notes an answer with id that came to ev's socket (sock)
// but could not be read (Message.Parse failed past its header): the
// query of that id in flight there, if any, has one more.
func (ls *Lookups) Unreadable(ev *event.Event, sock uint64, id uint16) {
	if f, ok := ls.flight[keyOf(ev, sock, id)]; ok {
		f.lookup.Unreadable++
	}
}

// DroppedHere notes the drop event of a DNS flow: this host dropped its
// query on the way out, or answers on the way in (ev.DropInbound). The
// lookups in flight on it have them.
func (ls *Lookups) DroppedHere(ev *event.Event) {
	if ev.ConnID == 0 {
		return
	}
	for _, o := range ls.order {
		f := o.f
		if f.seq != o.seq || f.query.ConnID != ev.ConnID || f.key.netns != ev.NetNS {
			continue
		}
		l := &f.lookup
		l.Drops += ev.Drops
		l.DropReason, l.DropOut = ev.DropReason, !ev.DropInbound
	}
}

// Expired returns the next query unanswered at now, or one sent again:
// ev gets its record (the lookup in ev.DNS; Release it once written),
// and at is when it timed out. ok is false when none is.
func (ls *Lookups) Expired(now uint64, ev *event.Event) (at uint64, ok bool) {
	for len(ls.done) > 0 {
		f := ls.done[0]
		ls.done = ls.done[1:]
		if f.hidden {
			f.seq = 0
			ls.put(f)
			continue
		}
		if f.lookup.Outcome == event.Unreachable {
			latency := f.lookup.Latency
			ls.expire(f, ev, event.Unreachable)
			ev.DNS.Latency = latency
			return f.sentTs + uint64(latency), true
		}
		return ls.expire(f, ev, event.TimedOut), true
	}
	for len(ls.order) > 0 {
		o := ls.order[0]
		if o.f.seq != o.seq {
			ls.order = ls.order[1:]
			continue
		}
		if now < o.f.sentTs+uint64(ls.timeout) {
			return 0, false
		}
		ls.order = ls.order[1:]
		delete(ls.flight, o.f.key)
		if o.f.hidden {
			o.f.seq = 0
			ls.put(o.f)
			continue
		}
		return ls.expire(o.f, ev, event.TimedOut), true
	}
	ls.order = ls.order[:0] // keeps its array
	return 0, false
}

// Unanswered returns the next query still in flight, at a run's end, as
// Expired does; at is when it was sent.
func (ls *Lookups) Unanswered(ev *event.Event) (at uint64, ok bool) {
	if at, ok := ls.Expired(0, ev); ok { // those sent again
		return at, ok
	}
	for len(ls.order) > 0 {
		o := ls.order[0]
		ls.order = ls.order[1:]
		if o.f.seq != o.seq {
			continue
		}
		delete(ls.flight, o.f.key)
		if o.f.hidden {
			o.f.seq = 0
			ls.put(o.f)
			continue
		}
		at := o.f.sentTs
		ls.expire(o.f, ev, event.Unanswered)
		ev.DNS.Latency = 0
		return at, true
	}
	return 0, false
}

func (ls *Lookups) expire(f *flight, ev *event.Event, o event.Outcome) uint64 {
	f.seq = 0
	*ev = f.query
	l := &f.lookup
	if o != event.Unreachable {
		l.Errno, l.ICMPFrom, l.ICMPType, l.ICMPCode = 0, netip.Addr{}, 0, 0
	}
	l.Outcome, l.RCode, l.Truncated = o, 0, false
	l.Answers, l.AnswerCount, l.CNAMEs = l.Answers[:0], 0, l.CNAMEs[:0]
	l.DropsWatched = ls.DropsWatched
	l.Latency = ls.timeout
	ev.DNS = l
	return f.sentTs + uint64(ls.timeout)
}

// Release gives back a lookup once its event is written.
func (ls *Lookups) Release(l *event.Lookup) {
	// The lookup is its flight's first field.
	ls.put((*flight)(unsafe.Pointer(l)))
}

func fill(l *event.Lookup, m *Message) {
	l.ID, l.QType = m.ID, m.QType
	l.Drops, l.DropReason, l.DropOut, l.Unreadable, l.RetryOfTruncated = 0, "", false, 0, false
	l.ResolvedWithoutSuffix = l.ResolvedWithoutSuffix[:0]
	l.Name = append(l.Name[:0], m.Name...)
	l.Partial = m.Partial
}

func (ls *Lookups) get() *flight {
	if n := len(ls.free); n > 0 {
		f := ls.free[n-1]
		ls.free = ls.free[:n-1]
		return f
	}
	return new(flight)
}

func (ls *Lookups) put(f *flight) {
	if len(ls.free) < 1024 {
		ls.free = append(ls.free, f)
	}
}
