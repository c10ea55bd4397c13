// SPDX-License-Identifier: Apache-2.0

// Package top turns the tracer's events into the tables of `conntrace
// top`: per process (or container), per peer, failures grouped by cause,
// and listeners. Write runs on the tracer's reader at a constant cost per
// event (a few map lookups and a copy into a ring); Tick, called once an
// interval from elsewhere, turns the counts into rates and returns a
// Snapshot to draw from. Every table is bounded (Config.MaxRows).
package top

import (
	"hash/maphash"
	"net/netip"
	"sync"
	"time"

	"github.com/conntrace/conntrace/tracer/containers"
	"github.com/conntrace/conntrace/tracer/event"
	"github.com/conntrace/conntrace/tracer/output"
)

// Config bounds what an Aggregator keeps.
type Config struct {
	// MaxRows bounds each table; past it, new rows' events count in one
	// "(other)" row of that table. 0: DefaultMaxRows.
	MaxRows int
	// Recent is how many events are kept for a row's detail. 0:
	// DefaultRecent.
	Recent int
	// Idle: a row with nothing open and no event for this long is
	// dropped at a Tick. 0: DefaultIdle.
	Idle time.Duration
	// History: rate samples kept per row for its sparkline. 0: 60.
	History int
}

const (
	DefaultMaxRows = 2048
	DefaultRecent  = 4096
	DefaultIdle    = 2 * time.Minute
)

// counts are a row's counters, since the last Tick (cur) and since the
// row began (total).
type counts struct {
	in, out, closes, fails, tx, rx, retrans uint64
}

func (c *counts) add(o *counts) {
	c.in += o.in
	c.out += o.out
	c.closes += o.closes
	c.fails += o.fails
	c.tx += o.tx
	c.rx += o.rx
	c.retrans += o.retrans
}

// row is one line of the processes, containers or peers table.
type row struct {
	cur, total counts
	active     int64
	errors     map[string]uint64 // failures by error name, since the row began
	latency    windowed
	history    rates     // connections/s, in and out
	last       time.Time // of its last event
	ident      ident
}

// ident is what a row shows of who it is; set when the row is made.
type ident struct {
	pid   uint32
	comm  string
	cont  *containers.Container // nil for a process in none
	addr  netip.Addr
	port  uint16
	dir   event.Direction
	proto event.Proto
	name  string
}

type procKey struct {
	pid  uint32
	comm [16]byte
}

// peerKey: an outbound connection's peer is its address and port; an
// inbound one's, its address and the local port it came to (its own port
// is ephemeral: one row per client port would say nothing).
type peerKey struct {
	addr  netip.Addr
	port  uint16
	dir   event.Direction
	proto event.Proto
}

// failKey: a failure's process is its name (and container), not its pid:
// short-lived clients (curl, a cron job) fail the same way with a new pid
// each time.
type failKey struct {
	comm  [16]byte
	cont  string
	typ   event.Type
	proto event.Proto
	addr  netip.Addr
	port  uint16
	err   uint32 // errno; dns: the rcode, or 0x10000 + the outcome
	name  uint64 // dns: the question name's hash
}

type failRow struct {
	cur, total  uint64
	first, last time.Time
	ident       ident
	typ         event.Type
	errName     string
	explain     string
	explained   time.Time // when explain was last formatted
	history     rates     // failures/s
}

type listenKey struct {
	netns uint32
	port  uint16
	proto event.Proto
}

type listenRow struct {
	cur, total uint64 // accepts
	active     int64
	queueFull  uint64 // connects from here that failed with its accept queue full
	last       time.Time
	ident      ident // the listener (listen), else the first acceptor
	listening  bool  // a listen event was seen
	history    rates // accepts/s
}

// Aggregator is an event.Sink; Tick and Recent may run concurrently with
// Write.
type Aggregator struct {
	cfg       Config
	mu        sync.Mutex
	procs     map[procKey]*row
	conts     map[string]*row
	peers     map[peerKey]*row
	fails     map[failKey]*failRow
	listens   map[listenKey]*listenRow
	other     [3]*row // processes, containers, peers past MaxRows
	otherFail *failRow
	otherLis  *listenRow
	dropped   uint64 // events counted in an "(other)" row
	full      bool   // this event went to an "(other)" row

	events   uint64 // since the last Tick
	lost     uint64
	lastTick time.Time
	seed     maphash.Seed

	recent []slot
	rnext  uint64 // events written to recent
}

// New starts aggregating now.
func New(cfg Config) *Aggregator {
	if cfg.MaxRows <= 0 {
		cfg.MaxRows = DefaultMaxRows
	}
	if cfg.Recent <= 0 {
		cfg.Recent = DefaultRecent
	}
	if cfg.Idle <= 0 {
		cfg.Idle = DefaultIdle
	}
	if cfg.History <= 0 {
		cfg.History = 60
	}
	now := time.Now()
	return &Aggregator{cfg: cfg, procs: map[procKey]*row{}, conts: map[string]*row{},
		peers: map[peerKey]*row{}, fails: map[failKey]*failRow{}, listens: map[listenKey]*listenRow{},
		lastTick: now, seed: maphash.MakeSeed(), recent: make([]slot, cfg.Recent)}
}

// Flush is part of event.Sink.
func (a *Aggregator) Flush() error { return nil }

// Write takes one event.
func (a *Aggregator) Write(ev *event.Event) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if ev.Type == event.Lost {
		a.lost += ev.Lost
		return nil
	}
	a.events++
	a.keep(ev)
	a.full = false
	defer func() {
		if a.full {
			a.dropped++
		}
	}()
	now := ev.Time
	switch ev.Type {
	case event.Connect, event.Accept, event.Close, event.ConnectFail:
		var c counts
		switch ev.Type {
		case event.Connect, event.Accept:
			if ev.Direction == event.DirIn {
				c.in = 1
			} else {
				c.out = 1
			}
		case event.Close:
			c.closes, c.tx, c.rx, c.retrans = 1, ev.TxBytes, ev.RxBytes, uint64(ev.Retransmits)
		case event.ConnectFail:
			c.fails = 1
		}
		a.count(a.proc(ev), ev, &c, now)
		if r := a.container(ev); r != nil {
			a.count(r, ev, &c, now)
		}
		a.count(a.peer(ev), ev, &c, now)
	}
	switch ev.Type {
	case event.Listen:
		l := a.listener(ev)
		l.listening, l.last = true, now
		l.ident = identOf(ev, ev.LAddr)
		l.ident.port = ev.LPort
	case event.Accept:
		l := a.listener(ev)
		l.cur++
		l.active++
		l.last = now
	case event.Close:
		if ev.Direction == event.DirIn {
			if l := a.listens[listenKey{ev.NetNS, ev.LPort, ev.Proto}]; l != nil && l.active > 0 {
				l.active--
			}
		}
	case event.ConnectFail, event.BindFail:
		a.failure(ev, 0, 0)
		if h := output.FullListener(ev); h != nil && ev.Type == event.ConnectFail {
			// The listener is in ListenersNetNS, on the port connected to.
			k := listenKey{ev.ListenersNetNS, ev.RPort, ev.Proto}
			if l := a.listens[k]; l != nil {
				l.queueFull++
			}
		}
	case event.DNS:
		if l := ev.DNS; l != nil && l.Failed() {
			code := uint32(l.RCode)
			if l.Outcome != event.Answered {
				code = 0x10000 + uint32(l.Outcome)
			}
			a.failure(ev, code, maphash.Bytes(a.seed, l.Name))
		}
	}
	return nil
}

func (a *Aggregator) count(r *row, ev *event.Event, c *counts, now time.Time) {
	r.cur.add(c)
	r.last = now
	switch ev.Type {
	case event.Connect, event.Accept:
		r.active++
		if ev.Type == event.Connect && ev.Latency > 0 {
			r.latency.add(ev.Latency, now)
		}
	case event.Close:
		// A connection opened before the run closes without having been
		// counted open.
		if r.active > 0 {
			r.active--
		}
	case event.ConnectFail:
		if r.errors == nil {
			r.errors = map[string]uint64{}
		}
		r.errors[ev.ErrorName()]++
	}
}

func identOf(ev *event.Event, addr netip.Addr) ident {
	id := ident{pid: ev.PID, comm: string(ev.CommBytes()), addr: addr, proto: ev.Proto, dir: ev.Direction}
	if cg := ev.Cgroup; cg != nil {
		id.cont = cg.Container
	}
	return id
}

func (a *Aggregator) proc(ev *event.Event) *row {
	k := procKey{ev.PID, ev.Comm}
	if r := a.procs[k]; r != nil {
		return r
	}
	if len(a.procs) >= a.cfg.MaxRows {
		return a.overflow(0)
	}
	r := &row{ident: identOf(ev, netip.Addr{})}
	a.procs[k] = r
	return r
}

// container is the row of ev's container; nil for a process in none.
func (a *Aggregator) container(ev *event.Event) *row {
	cg := ev.Cgroup
	if cg == nil || cg.Container == nil {
		return nil
	}
	if r := a.conts[cg.Container.ID]; r != nil {
		return r
	}
	if len(a.conts) >= a.cfg.MaxRows {
		return a.overflow(1)
	}
	r := &row{ident: ident{cont: cg.Container}}
	a.conts[cg.Container.ID] = r
	return r
}

func (a *Aggregator) peer(ev *event.Event) *row {
	k := peerKey{ev.RAddr, ev.RPort, ev.Direction, ev.Proto}
	if ev.Direction == event.DirIn {
		k.port = ev.LPort
	}
	if r := a.peers[k]; r != nil {
		if ev.RName != "" {
			r.ident.name = ev.RName
		}
		return r
	}
	if len(a.peers) >= a.cfg.MaxRows {
		return a.overflow(2)
	}
	r := &row{ident: ident{addr: k.addr, port: k.port, dir: k.dir, proto: k.proto, name: ev.RName}}
	a.peers[k] = r
	return r
}

func (a *Aggregator) overflow(table int) *row {
	a.full = true
	if a.other[table] == nil {
		a.other[table] = &row{ident: ident{comm: Other}}
	}
	return a.other[table]
}

// Other names the row that counts what a full table had no room for.
const Other = "(other)"

func (a *Aggregator) listener(ev *event.Event) *listenRow {
	k := listenKey{ev.NetNS, ev.LPort, ev.Proto}
	if l := a.listens[k]; l != nil {
		return l
	}
	if len(a.listens) >= a.cfg.MaxRows {
		a.full = true
		if a.otherLis == nil {
			a.otherLis = &listenRow{ident: ident{comm: Other}}
		}
		return a.otherLis
	}
	l := &listenRow{ident: identOf(ev, ev.LAddr)}
	l.ident.port = ev.LPort
	a.listens[k] = l
	return l
}

// explainEvery bounds how often a failure group's explanation is
// formatted again (from its latest event): a storm of one failure costs
// one formatting a second.
const explainEvery = time.Second

func (a *Aggregator) failure(ev *event.Event, code uint32, name uint64) {
	k := failKey{comm: ev.Comm, typ: ev.Type, proto: ev.Proto, addr: ev.RAddr, port: ev.RPort, err: ev.Errno, name: name}
	k.cont = containerID(ev)
	if ev.Type == event.BindFail {
		k.addr, k.port = ev.LAddr, ev.LPort
	}
	if ev.Type == event.DNS {
		k.err = code
	}
	f := a.fails[k]
	if f == nil {
		if len(a.fails) >= a.cfg.MaxRows {
			a.full = true
			if a.otherFail == nil {
				a.otherFail = &failRow{ident: ident{comm: Other}, first: ev.Time}
			}
			f = a.otherFail
		} else {
			f = &failRow{ident: identOf(ev, k.addr), typ: ev.Type, first: ev.Time}
			f.ident.port = k.port
			a.fails[k] = f
		}
	}
	f.cur++
	f.last = ev.Time
	f.ident.pid = ev.PID
	if f == a.otherFail || ev.Time.Sub(f.explained) < explainEvery {
		return
	}
	f.explained = ev.Time
	var buf [512]byte
	if ev.Type == event.DNS {
		f.errName = ev.DNS.RCodeName()
		f.ident.name = string(trimDot(ev.DNS.Name))
	} else {
		f.errName = ev.ErrorName()
	}
	f.explain = string(output.AppendExplanation(buf[:0], ev))
}

func trimDot(name []byte) []byte {
	if n := len(name); n > 1 && name[n-1] == '.' {
		return name[:n-1]
	}
	return name
}
