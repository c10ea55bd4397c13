// SPDX-License-Identifier: Apache-2.0

package top

import (
	"cmp"
	"hash/maphash"
	"maps"
	"net/netip"
	"slices"
	"time"

	"github.com/conntrace/conntrace/tracer/containers"
	"github.com/conntrace/conntrace/tracer/event"
	"github.com/conntrace/conntrace/tracer/output"
)

// Snapshot is the state of every table at a Tick. Its JSON field names are
// the contract of `conntrace top -o json` (one Snapshot per interval).
// Strings are as the kernel gave them (a process or DNS name is
// attacker-controlled): escape them before printing to a terminal.
type Snapshot struct {
	Time     time.Time `json:"ts"`
	Interval float64   `json:"interval_s"` // seconds since the previous snapshot
	// Events in the interval (lost reports not counted), and per second.
	Events     uint64  `json:"events"`
	EventsPerS float64 `json:"events_per_s"`
	// Lost: events the kernel could not deliver, since the start.
	Lost uint64 `json:"lost"`
	// OtherEvents: events counted in an "(other)" row because their
	// table was full, since the start.
	OtherEvents uint64         `json:"other_events"`
	Processes   []ProcRow      `json:"processes"`
	Containers  []ContainerRow `json:"containers"`
	Peers       []PeerRow      `json:"peers"`
	Failures    []FailureRow   `json:"failures"`
	Listeners   []ListenerRow  `json:"listeners"`
}

// Figures are a row's rates over the interval and totals since the row
// began. Bytes and retransmits are counted when a connection closes.
type Figures struct {
	InPerS       float64 `json:"in_per_s"`  // connections accepted (UDP: flows a peer started) per second
	OutPerS      float64 `json:"out_per_s"` // connections made (UDP: flows this end started) per second
	Active       int64   `json:"active"`    // opened since the start and not closed yet
	FailuresPerS float64 `json:"failures_per_s"`
	TxPerS       float64 `json:"tx_bytes_per_s"`
	RxPerS       float64 `json:"rx_bytes_per_s"`
	Connections  uint64  `json:"connections"` // opened, in and out
	Failures     uint64  `json:"failures"`    // connect_fail
	// Errors counts the failures by error name (ECONNREFUSED, ...).
	Errors      map[string]uint64 `json:"errors,omitempty"`
	TxBytes     uint64            `json:"tx_bytes"`
	RxBytes     uint64            `json:"rx_bytes"`
	Retransmits uint64            `json:"retransmits"`
	// LatencyP50 and P99: handshake times of the connections made in the
	// last 30 to 60 seconds, microseconds (within 12.5%); null without one.
	LatencyP50 *float64 `json:"latency_p50_us"`
	LatencyP99 *float64 `json:"latency_p99_us"`
	// History: connections/s, in and out, of the last intervals, oldest
	// first (the sparkline).
	History []float64 `json:"-"`
	// Other: the row that counts what its full table had no room for
	// (named "(other)"; a process may name itself so too).
	Other bool `json:"other,omitempty"`
	key   Key
}

// ProcRow is a process: its pid and name.
type ProcRow struct {
	PID       uint32 `json:"pid"`
	Comm      string `json:"comm"`
	Container string `json:"container,omitempty"` // its name, or short id
	Figures
}

// ContainerRow is a container (processes in none have no row).
type ContainerRow struct {
	Container string `json:"container"`
	ID        string `json:"container_id"`
	Figures
}

// PeerRow is a peer: an outbound connection's address and port, or an
// inbound one's address and the local port it came to.
type PeerRow struct {
	Addr      string `json:"raddr"`
	Port      uint16 `json:"port"`
	Direction string `json:"direction"`
	Proto     string `json:"proto"`
	Name      string `json:"rname,omitempty"` // the DNS name the address was resolved from
	Figures
}

// FailureRow is one kind of failure: a process name (and container), a
// peer (bind_fail: the address it asked for; dns: the server) and a cause.
type FailureRow struct {
	PID       uint32    `json:"pid"` // the latest one's
	Comm      string    `json:"comm"`
	Container string    `json:"container,omitempty"`
	Event     string    `json:"event"` // connect_fail, bind_fail, dns
	Proto     string    `json:"proto"`
	Addr      string    `json:"addr"`
	Port      uint16    `json:"port"`
	Name      string    `json:"name,omitempty"` // dns: the name looked up
	Error     string    `json:"error"`          // ECONNREFUSED; dns: NXDOMAIN, timeout, ...
	Count     uint64    `json:"count"`          // since the start
	PerS      float64   `json:"per_s"`
	First     time.Time `json:"first"`
	Last      time.Time `json:"last"`
	Explain   string    `json:"explain"`         // of the latest (formatted at most once a second)
	History   []float64 `json:"-"`               // failures/s of the last intervals, oldest first
	Other     bool      `json:"other,omitempty"` // as Figures.Other
	key       Key
}

// ListenerRow is a port connections are accepted on.
type ListenerRow struct {
	PID       uint32  `json:"pid"` // the listener's (listen seen), else the first acceptor's
	Comm      string  `json:"comm"`
	Container string  `json:"container,omitempty"`
	Proto     string  `json:"proto"`
	Addr      string  `json:"laddr"`
	Port      uint16  `json:"lport"`
	Listening bool    `json:"listen_seen"` // its listen() happened during the run
	AcceptsPS float64 `json:"accepts_per_s"`
	Accepts   uint64  `json:"accepts"`
	Active    int64   `json:"active"`
	// QueueFull: connects from this host that failed while its accept
	// queue was over its backlog (SYNs dropped), since the start.
	QueueFull uint64    `json:"queue_full"`
	History   []float64 `json:"-"`               // accepts/s of the last intervals, oldest first
	Other     bool      `json:"other,omitempty"` // as Figures.Other
	key       Key
}

// Key identifies a row for Recent.
type Key struct {
	table table
	proc  procKey
	cont  string
	peer  peerKey
	fail  failKey
	lis   listenKey
}

type table uint8

const (
	tProc table = iota + 1
	tCont
	tPeer
	tFail
	tListen
)

// Key of a row, for Aggregator.Recent.
func (r *Figures) Key() Key     { return r.key }
func (r *FailureRow) Key() Key  { return r.key }
func (r *ListenerRow) Key() Key { return r.key }

// Tick ends an interval at now: the rates are over the time since the
// previous Tick. Rows with nothing open and no event for Config.Idle are
// dropped. The Snapshot's tables are sorted by connections/s (failures by
// count, listeners by accepts/s), then by name; an "(other)" row comes last.
func (a *Aggregator) Tick(now time.Time) *Snapshot {
	a.mu.Lock()
	defer a.mu.Unlock()
	dt := now.Sub(a.lastTick).Seconds()
	if dt <= 0 {
		dt = 1e-9
	}
	a.lastTick = now
	s := &Snapshot{Time: now, Interval: dt, Events: a.events, EventsPerS: float64(a.events) / dt,
		Lost: a.lost, OtherEvents: a.dropped}
	a.events = 0

	for k, r := range a.procs {
		s.Processes = append(s.Processes, ProcRow{PID: r.ident.pid, Comm: r.ident.comm,
			Container: label(r.ident.cont), Figures: a.figures(r, now, dt, Key{table: tProc, proc: k})})
		if a.idle(r, now) {
			delete(a.procs, k)
		}
	}
	for k, r := range a.conts {
		s.Containers = append(s.Containers, ContainerRow{ID: k, Container: label(r.ident.cont), Figures: a.figures(r, now, dt, Key{table: tCont, cont: k})})
		if a.idle(r, now) {
			delete(a.conts, k)
		}
	}
	for k, r := range a.peers {
		s.Peers = append(s.Peers, PeerRow{Addr: addrString(r.ident.addr), Port: r.ident.port, Direction: r.ident.dir.String(),
			Proto: r.ident.proto.String(), Name: r.ident.name, Figures: a.figures(r, now, dt, Key{table: tPeer, peer: k})})
		if a.idle(r, now) {
			delete(a.peers, k)
		}
	}
	for k, f := range a.fails {
		s.Failures = append(s.Failures, a.failureRow(f, dt, Key{table: tFail, fail: k}))
		if now.Sub(f.last) > a.cfg.Idle {
			delete(a.fails, k)
		}
	}
	for k, l := range a.listens {
		s.Listeners = append(s.Listeners, a.listenerRow(l, dt, Key{table: tListen, lis: k}))
		if l.active <= 0 && now.Sub(l.last) > a.cfg.Idle {
			delete(a.listens, k)
		}
	}
	sortRows(s)
	// "(other)" rows last, whatever their figures.
	other := func(r *row) Figures {
		f := a.figures(r, now, dt, Key{})
		f.Other = true
		return f
	}
	if r := a.other[0]; r != nil {
		s.Processes = append(s.Processes, ProcRow{Comm: Other, Figures: other(r)})
	}
	if r := a.other[1]; r != nil {
		s.Containers = append(s.Containers, ContainerRow{Container: Other, Figures: other(r)})
	}
	if r := a.other[2]; r != nil {
		s.Peers = append(s.Peers, PeerRow{Addr: Other, Figures: other(r)})
	}
	if f := a.otherFail; f != nil {
		fr := a.failureRow(f, dt, Key{})
		fr.Event, fr.Proto, fr.Other = "", "", true
		s.Failures = append(s.Failures, fr)
	}
	if l := a.otherLis; l != nil {
		lr := a.listenerRow(l, dt, Key{})
		lr.Proto, lr.Other = "", true
		s.Listeners = append(s.Listeners, lr)
	}
	return s
}

func (a *Aggregator) idle(r *row, now time.Time) bool {
	return r.active <= 0 && now.Sub(r.last) > a.cfg.Idle
}

func (a *Aggregator) figures(r *row, now time.Time, dt float64, k Key) Figures {
	c := r.cur
	r.total.add(&c)
	r.cur = counts{}
	rate := func(n uint64) float64 { return float64(n) / dt }
	r.history.push(rate(c.in+c.out), a.cfg.History)
	f := Figures{InPerS: rate(c.in), OutPerS: rate(c.out), Active: r.active, FailuresPerS: rate(c.fails),
		TxPerS: rate(c.tx), RxPerS: rate(c.rx), Connections: r.total.in + r.total.out, Failures: r.total.fails,
		TxBytes: r.total.tx, RxBytes: r.total.rx, Retransmits: r.total.retrans, key: k}
	if len(r.errors) > 0 {
		f.Errors = maps.Clone(r.errors)
	}
	r.latency.roll(now)
	f.LatencyP50, f.LatencyP99 = r.latency.quantile(0.5), r.latency.quantile(0.99)
	f.History = r.history.oldestFirst()
	return f
}

func (a *Aggregator) failureRow(f *failRow, dt float64, k Key) FailureRow {
	f.total += f.cur
	f.history.push(float64(f.cur)/dt, a.cfg.History)
	fr := FailureRow{PID: f.ident.pid, Comm: f.ident.comm, Container: label(f.ident.cont), Event: f.typ.String(),
		Proto: f.ident.proto.String(), Addr: addrString(f.ident.addr), Port: f.ident.port, Name: f.ident.name,
		Error: f.errName, Count: f.total, PerS: float64(f.cur) / dt, First: f.first, Last: f.last, Explain: f.explain,
		History: f.history.oldestFirst(), key: k}
	f.cur = 0
	return fr
}

func (a *Aggregator) listenerRow(l *listenRow, dt float64, k Key) ListenerRow {
	l.total += l.cur
	l.history.push(float64(l.cur)/dt, a.cfg.History)
	lr := ListenerRow{PID: l.ident.pid, Comm: l.ident.comm, Container: label(l.ident.cont), Proto: l.ident.proto.String(),
		Addr: addrString(l.ident.addr), Port: l.ident.port, Listening: l.listening,
		AcceptsPS: float64(l.cur) / dt, Accepts: l.total, Active: l.active, QueueFull: l.queueFull,
		History: l.history.oldestFirst(), key: k}
	l.cur = 0
	return lr
}

func addrString(a netip.Addr) string {
	if !a.IsValid() {
		return ""
	}
	return a.String()
}

func label(c *containers.Container) string {
	if c == nil {
		return ""
	}
	return c.Label()
}

func sortRows(s *Snapshot) {
	byRate := func(a, b *Figures) int {
		return cmp.Compare(b.InPerS+b.OutPerS, a.InPerS+a.OutPerS)
	}
	slices.SortStableFunc(s.Processes, func(a, b ProcRow) int {
		return cmp.Or(byRate(&a.Figures, &b.Figures), cmp.Compare(b.Active, a.Active), cmp.Compare(a.Comm, b.Comm), cmp.Compare(a.PID, b.PID))
	})
	slices.SortStableFunc(s.Containers, func(a, b ContainerRow) int {
		return cmp.Or(byRate(&a.Figures, &b.Figures), cmp.Compare(b.Active, a.Active), cmp.Compare(a.Container, b.Container))
	})
	slices.SortStableFunc(s.Peers, func(a, b PeerRow) int {
		return cmp.Or(byRate(&a.Figures, &b.Figures), cmp.Compare(b.Active, a.Active), cmp.Compare(a.Addr, b.Addr), cmp.Compare(a.Port, b.Port), cmp.Compare(a.Direction, b.Direction))
	})
	slices.SortStableFunc(s.Failures, func(a, b FailureRow) int {
		return cmp.Or(cmp.Compare(b.Count, a.Count), b.Last.Compare(a.Last), cmp.Compare(a.Comm, b.Comm), cmp.Compare(a.Addr, b.Addr))
	})
	slices.SortStableFunc(s.Listeners, func(a, b ListenerRow) int {
		return cmp.Or(cmp.Compare(b.AcceptsPS, a.AcceptsPS), cmp.Compare(b.Accepts, a.Accepts), cmp.Compare(a.Port, b.Port))
	})
}

// slot is a kept event, with its own copy of a lookup (the tracer reuses
// the one it gives).
type slot struct {
	ev      event.Event
	dns     event.Lookup
	name    []byte
	answers []event.DNSAnswer
}

// keep copies ev into the ring of recent events (no allocation once the
// ring has gone round with lookups in it).
func (a *Aggregator) keep(ev *event.Event) {
	s := &a.recent[a.rnext%uint64(len(a.recent))]
	a.rnext++
	s.ev = *ev
	if l := ev.DNS; l != nil {
		s.dns = *l
		s.name = append(s.name[:0], l.Name...)
		s.answers = append(s.answers[:0], l.Answers...)
		s.dns.Name, s.dns.Answers, s.dns.CNAMEs, s.dns.ResolvedWithoutSuffix = s.name, s.answers, nil, nil
		s.ev.DNS = &s.dns
	}
}

// Recent formats the latest n events of the row k (oldest first), as
// watch's text lines (escaped), from the events still in the ring.
func (a *Aggregator) Recent(k Key, n int) []string {
	a.mu.Lock()
	defer a.mu.Unlock()
	var lines []string
	size := uint64(len(a.recent))
	for i := a.rnext; i > 0 && a.rnext-i < size && len(lines) < n; i-- {
		ev := &a.recent[(i-1)%size].ev
		if a.matches(k, ev) {
			lines = append(lines, string(output.AppendText(nil, ev)))
		}
	}
	slices.Reverse(lines)
	return lines
}

func containerID(ev *event.Event) string {
	if cg := ev.Cgroup; cg != nil && cg.Container != nil {
		return cg.Container.ID
	}
	return ""
}

func (a *Aggregator) matches(k Key, ev *event.Event) bool {
	switch k.table {
	case tProc:
		return ev.PID == k.proc.pid && ev.Comm == k.proc.comm
	case tCont:
		return ev.Cgroup != nil && ev.Cgroup.Container != nil && ev.Cgroup.Container.ID == k.cont
	case tPeer:
		if !ev.Type.HasPeer() || ev.Type == event.DNS {
			return false
		}
		pk := peerKey{ev.RAddr, ev.RPort, ev.Direction, ev.Proto}
		if ev.Direction == event.DirIn {
			pk.port = ev.LPort
		}
		return pk == k.peer
	case tFail:
		f := k.fail
		if ev.Type != f.typ || ev.Comm != f.comm || ev.Proto != f.proto || containerID(ev) != f.cont {
			return false
		}
		switch ev.Type {
		case event.BindFail:
			return ev.LAddr == f.addr && ev.LPort == f.port && ev.Errno == f.err
		case event.DNS:
			return ev.RAddr == f.addr && ev.DNS != nil && ev.DNS.Failed() && maphash.Bytes(a.seed, ev.DNS.Name) == f.name
		}
		return ev.RAddr == f.addr && ev.RPort == f.port && ev.Errno == f.err
	case tListen:
		l := k.lis
		return ev.NetNS == l.netns && ev.LPort == l.port && ev.Proto == l.proto &&
			(ev.Type == event.Listen || ev.Type == event.Accept || (ev.Type == event.Close && ev.Direction == event.DirIn))
	}
	return false
}
