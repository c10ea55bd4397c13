// SPDX-License-Identifier: Apache-2.0

package tracer

import (
	"fmt"
	"time"
	"unsafe"

	"github.com/conntrace/conntrace/tracer/dns"
	"github.com/conntrace/conntrace/tracer/event"
	"github.com/conntrace/conntrace/tracer/internal/bpfobj"
)

// DefaultDNSTimeout is Config.DNSTimeout's default: resolv.conf's
// "options timeout" default, and Go's resolver's.
const DefaultDNSTimeout = 5 * time.Second

// dnsReader makes lookups of the dns records beside nothing else: the
// reader parses each message (a few hundred bytes; no lookup waits) and
// keeps the names answers give for the other events' peers.
type dnsReader struct {
	msg     dns.Message
	lookups *dns.Lookups
	names   *dns.Names
	streams *dns.Streams
	// ready: the lookups a TCP segment's answers ended (one segment can
	// hold several), written after it (writeReady) with base, the
	// segment's record, as their event.
	ready []readyLookup
	base  Event
}

type readyLookup struct {
	l  *event.Lookup
	ts uint64
}

func newDNSReader(timeout time.Duration) *dnsReader {
	if timeout <= 0 {
		timeout = DefaultDNSTimeout
	}
	r := &dnsReader{lookups: dns.NewLookups(timeout, dns.DefaultMaxInFlight), names: dns.NewNames(dns.DefaultMaxNames),
		streams: dns.NewStreams()}
	// The UDP kfree_skb program reports a DNS flow's drops.
	r.lookups.DropsWatched = dropsHooked()
	return r
}

// dnsHead is the size of a dns record without its payload.
const dnsHead = int(unsafe.Offsetof(bpfobj.ConntraceDnsRecord{}.Payload))

// absorbDNS reads a dns record decoded into ev: a query waits for its
// answer (false: no event now); an answer is the lookup's event, when
// the message passes the filters. Every answer to a query seen names its
// addresses, whatever the filters. A TCP segment's messages are split
// first; the lookups its answers end are written after it (ready).
func absorbDNS(t *Tracer, raw []byte, ev *pending) bool {
	d := t.dns
	if d == nil {
		return false
	}
	r := (*bpfobj.ConntraceDnsRecord)(unsafe.Pointer(&raw[0]))
	payload := raw[dnsHead:r.Head.Size]
	// A lookup goes out from this end, whichever message told it.
	ev.Direction = DirOut
	if ev.Proto == ProtoTCP {
		d.base = ev.Event
		t.stats.DNSStreamSkipped += uint64(d.streams.Split(r.Sock, r.Head.Direction == uint8(DirOut), payload, int(r.Len), r.Gap != 0,
			func(msg []byte, cut bool) {
				if l := absorbMessage(t, r, &d.base, ev.ts, msg, cut); l != nil {
					d.ready = append(d.ready, readyLookup{l, ev.ts})
				}
			}))
		return false
	}
	l := absorbMessage(t, r, &ev.Event, ev.ts, payload, int(r.Len) > len(payload))
	ev.DNS = l
	return l != nil
}

// absorbMessage reads one DNS message of record r (ev its head, ts its
// time; cut: the message goes on past msg) and returns the lookup it
// ends, when that is to be written.
func absorbMessage(t *Tracer, r *bpfobj.ConntraceDnsRecord, ev *Event, ts uint64, msg []byte, cut bool) *event.Lookup {
	d := t.dns
	m := &d.msg
	if err := m.Parse(msg); err != nil {
		t.stats.DNSMalformed++
		if err == dns.ErrNoQuestion && m.Response && r.Dropped == 0 {
			// Its header was read: the query of its id has an answer
			// that says nothing.
			d.lookups.Unreadable(ev, r.Sock, m.ID)
		}
		return nil
	}
	m.Partial = m.Partial || cut
	if r.Dropped != 0 {
		// A query a rule here dropped: its lookup ends now.
		if m.Response || r.Shown == 0 {
			return nil
		}
		return d.lookups.Blocked(m)
	}
	if !m.Response {
		d.lookups.Query(ev, ts, r.Sock, m, r.Shown != 0)
		return nil
	}
	l, paired, hidden := d.lookups.Answer(ev, ts, r.Sock, m)
	if paired && m.RCode == 0 {
		d.names.Add(ev.NetNS, m.Name, m.Answers, ts)
	}
	if hidden || r.Shown == 0 {
		d.lookups.Release(l)
		return nil
	}
	if m.RCode == 3 { // NXDOMAIN: of a name a search list made?
		l.ResolvedWithoutSuffix = append(l.ResolvedWithoutSuffix[:0], d.names.WithoutSuffix(ev.NetNS, m.Name, ts)...)
	}
	return l
}

// writeReady writes the lookups a TCP segment's answers ended.
func (t *Tracer) writeReady(sink Sink) error {
	d := t.dns
	for i, rl := range d.ready {
		ev, err := t.slot(sink)
		if err != nil {
			d.ready = d.ready[:0]
			return err
		}
		ev.Event = d.base
		ev.DNS = rl.l
		ev.ts = rl.ts
		d.ready[i].l = nil
		if err := t.route(ev, sink); err != nil {
			d.ready = d.ready[:0]
			return err
		}
	}
	d.ready = d.ready[:0]
	return nil
}

// expireDNS writes the lookups that timed out by now (ts, the kernel's
// clock) or, at the run's end (all), every one still in flight.
func (t *Tracer) expireDNS(sink Sink, all bool) error {
	if t.dns == nil || t.dns.lookups.Waiting() == 0 && !all {
		return nil
	}
	now := t.clock.Mono()
	for {
		ev, err := t.slot(sink)
		if err != nil {
			return err
		}
		var at uint64
		var ok bool
		if all {
			at, ok = t.dns.lookups.Unanswered(&ev.Event)
		} else {
			at, ok = t.dns.lookups.Expired(now, &ev.Event)
		}
		if !ok {
			t.unslot(ev)
			return nil
		}
		ev.Time = t.clock.Wall(at)
		ev.ts = at
		if err := t.route(ev, sink); err != nil {
			return err
		}
	}
}

// absorbDrop: this host dropped a DNS flow's messages (its query, or
// answers: a firewall rule, a full receive buffer): its lookups in flight
// have them, for their timeout. The event goes out if it was asked for
// (the kernel reports a DNS flow's for the lookups' sake).
func absorbDrop(t *Tracer, _ []byte, ev *pending) bool {
	if t.dns != nil && ev.Proto == ProtoUDP && ev.RPort == 53 {
		t.dns.lookups.DroppedHere(&ev.Event)
	}
	return t.events.Has(EventDrop)
}

// absorbConnectFail: a UDP flow's failure (an ICMP error) ends its
// lookups in flight; the event goes out if it was asked for (the kernel
// reports a DNS flow's for the lookups' sake).
func absorbConnectFail(t *Tracer, _ []byte, ev *pending) bool {
	// An ICMP error's (a failed send's is the query's own: dns_blocked).
	if t.dns != nil && ev.Proto == ProtoUDP && ev.ICMPWatched {
		t.dns.lookups.Refused(&ev.Event, ev.ts)
	}
	return t.events.Has(EventConnectFail)
}

// namesFilter is Config.Names' filter, or why it cannot be had here.
func namesFilter(cfg *Config, t *Tracer) (*dns.Filter, error) {
	f, err := dns.NewFilter(cfg.Names)
	if err != nil {
		return nil, fmt.Errorf("names: %w", err)
	}
	if t.dns == nil {
		why := "no event selected is a lookup or has a peer"
		switch {
		case cfg.Proto == ProtoTCP:
			why = "UDP is not traced"
		case t.udpErr != nil:
			why = t.udpErr.Error()
		}
		return nil, fmt.Errorf("names: DNS lookups cannot be traced: %s", why)
	}
	return f, nil
}

// namesMatch says whether ev passes Config.Names: a lookup of one of the
// names, or an event whose peer was resolved from one.
func (t *Tracer) namesMatch(ev *Event) bool {
	switch {
	case ev.Type == EventDNS:
		return ev.DNS != nil && t.names.Match(ev.DNS.Name)
	case ev.Type.HasPeer():
		return ev.RName != "" && t.names.MatchString(ev.RName)
	}
	return false
}
