// SPDX-License-Identifier: Apache-2.0

// Package audit follows outbound TCP connections and ephemeral-port use per
// destination, so that exhaustion (connect() failing with EADDRNOTAVAIL) is
// seen coming. It combines the tracer's live events (who opens
// connections, how fast, how long they live, which fail) with periodic
// sock_diag snapshots of every network namespace (how many local ports each
// destination holds right now, TIME_WAIT included, which no event shows).
package audit

import (
	"fmt"
	"net/netip"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/conntrace/conntrace/tracer/event"
	"github.com/conntrace/conntrace/tracer/sockets"
)

// Thresholds, in percent of a destination's usable ephemeral ports.
const (
	warnPct   = 50
	dangerPct = 80
	// shortLived: connections that lived less than this count as churn.
	shortLived = time.Second
)

// Config selects what is audited.
type Config struct {
	// Ports keeps only destinations with these ports (none: all).
	Ports []uint16
	// PIDs keeps only these processes and the destinations they connect
	// to (none: all). A destination's ports are shared by every process
	// that connects there, so its counts include theirs.
	PIDs []uint32
}

// destKey is a destination as ephemeral ports are allotted: one local port
// can serve one connection per (source address, destination address, port).
type destKey struct {
	netns        uint32
	saddr, daddr netip.Addr
	dport        uint16
}

type dest struct {
	inUse, timeWait, peak int
	opened, closed, short int
	eaddrnotavail         int
	procs                 []ProcRef
}

type proc struct {
	ProcRef
	opened, closed   int
	lifetime         time.Duration
	eaddrnotavail    int
	outsideEphemeral int
	boundPort0       int
}

type namespace struct {
	limits  Limits
	listens map[uint16]bool // listening ports: sockets on them are inbound
}

// Auditor collects. It is an event.Sink; Snapshot may run concurrently.
type Auditor struct {
	mu    sync.Mutex
	cfg   Config
	start time.Time
	ns    map[uint32]*namespace
	dests map[destKey]*dest
	procs map[uint32]*proc
	lost  uint64
}

// New starts an audit now.
func New(cfg Config) *Auditor {
	return &Auditor{cfg: cfg, start: time.Now(), ns: map[uint32]*namespace{},
		dests: map[destKey]*dest{}, procs: map[uint32]*proc{}}
}

// Snapshot counts the local ports every destination holds now, in every
// network namespace, from sock_diag (all TCP states, TIME_WAIT included).
// withProcs also names the processes holding them (a /proc scan: for the
// first and last snapshots, when events have not named them). A namespace
// that cannot be read (gone since it was listed) is left out this time.
func (a *Auditor) Snapshot(withProcs bool) {
	type nsSnap struct {
		ino    uint32
		limits *Limits
		socks  []sockets.Socket
	}
	var snaps []nsSnap
	for ino, path := range sockets.Namespaces() {
		ns, err := sockets.OpenNS(path)
		if err != nil {
			continue // gone since listed
		}
		snap := nsSnap{ino: ino}
		a.mu.Lock()
		known := a.ns[ino] != nil
		a.mu.Unlock()
		if !known {
			l, err := readLimits(ns, ino)
			if err == nil {
				snap.limits = &l
			}
		}
		list := sockets.ListBare
		if withProcs {
			list = sockets.List
		}
		snap.socks, err = list(ns, []string{"tcp"}, nil)
		ns.Close()
		if err != nil {
			continue
		}
		snaps = append(snaps, snap)
	}

	a.mu.Lock()
	defer a.mu.Unlock()
	for _, d := range a.dests {
		d.inUse, d.timeWait = 0, 0
	}
	for _, s := range snaps {
		n := a.ns[s.ino]
		if n == nil {
			if s.limits == nil {
				continue
			}
			n = &namespace{limits: *s.limits}
			a.ns[s.ino] = n
		}
		n.listens = map[uint16]bool{}
		for i := range s.socks {
			if s.socks[i].State == "LISTEN" {
				n.listens[s.socks[i].LPort] = true
			}
		}
		for i := range s.socks {
			sk := &s.socks[i]
			// Outbound: not a listener, not a connection accepted on
			// a listening port.
			if sk.State == "LISTEN" || n.listens[sk.LPort] || sk.RPort == 0 || !a.portWanted(sk.RPort) {
				continue
			}
			d := a.dest(destKey{s.ino, sk.LAddr, sk.RAddr, sk.RPort})
			d.inUse++
			if sk.State == "TIME_WAIT" {
				d.timeWait++
			}
			for _, p := range sk.Procs {
				d.addProc(ProcRef{PID: p.PID, Comm: p.Comm, Container: p.Container})
			}
		}
	}
	for _, d := range a.dests {
		d.peak = max(d.peak, d.inUse)
	}
}

func (a *Auditor) portWanted(p uint16) bool {
	return len(a.cfg.Ports) == 0 || slices.Contains(a.cfg.Ports, p)
}

func (a *Auditor) dest(k destKey) *dest {
	d := a.dests[k]
	if d == nil {
		d = &dest{}
		a.dests[k] = d
	}
	return d
}

func (d *dest) addProc(p ProcRef) {
	if !slices.ContainsFunc(d.procs, func(q ProcRef) bool { return q.PID == p.PID }) {
		d.procs = append(d.procs, p)
	}
}

func (a *Auditor) proc(ev *event.Event) *proc {
	p := a.procs[ev.PID]
	if p == nil {
		p = &proc{ProcRef: ProcRef{PID: ev.PID, Comm: string(ev.CommBytes())}}
		if ev.Cgroup != nil {
			p.Container = ev.Cgroup.Container
		}
		a.procs[ev.PID] = p
	}
	return p
}

// Write takes one tracer event: outbound connects, their closes and
// failures; the rest is ignored.
func (a *Auditor) Write(ev *event.Event) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if ev.Type == event.Lost {
		a.lost += ev.Lost
		return nil
	}
	if ev.Direction != event.DirOut || !a.portWanted(ev.RPort) {
		return nil
	}
	k := destKey{ev.NetNS, ev.LAddr, ev.RAddr, ev.RPort}
	switch ev.Type {
	case event.Connect:
		d, p := a.dest(k), a.proc(ev)
		d.opened++
		d.addProc(p.ProcRef)
		p.opened++
		if n := a.ns[ev.NetNS]; n != nil && !n.limits.ephemeral(ev.LPort) {
			p.outsideEphemeral++
		}
		if ev.BoundPort0 {
			p.boundPort0++
		}
	case event.Close:
		d, p := a.dest(k), a.proc(ev)
		d.closed++
		if ev.Duration < shortLived {
			d.short++
		}
		p.closed++
		p.lifetime += ev.Duration
	case event.ConnectFail:
		if ev.Errno != uint32(unix.EADDRNOTAVAIL) {
			return nil
		}
		if !k.saddr.IsValid() || k.saddr.IsUnspecified() {
			// No source address was chosen: charge the destination
			// already known with this peer.
			for o := range a.dests {
				if o.netns == k.netns && o.daddr == k.daddr && o.dport == k.dport {
					k = o
					break
				}
			}
		}
		d, p := a.dest(k), a.proc(ev)
		d.eaddrnotavail++
		d.addProc(p.ProcRef)
		p.eaddrnotavail++
	}
	return nil
}

// Flush is part of event.Sink.
func (a *Auditor) Flush() error { return nil }

// Limits are a network namespace's settings that bound outbound
// connections.
type Limits struct {
	NetNS uint32 `json:"netns"`
	// PortRange is net.ipv4.ip_local_port_range.
	PortRange [2]uint16 `json:"port_range"`
	// Reserved counts the ports of ip_local_reserved_ports in the range.
	Reserved int `json:"reserved_ports"`
	// Usable = the range's size less Reserved: the most connections one
	// source address can hold to one destination.
	Usable     int `json:"usable_ports"`
	TWReuse    int `json:"tcp_tw_reuse"`
	FinTimeout int `json:"tcp_fin_timeout"`
}

func (l *Limits) ephemeral(port uint16) bool {
	return port >= l.PortRange[0] && port <= l.PortRange[1]
}

func readLimits(ns sockets.NS, ino uint32) (Limits, error) {
	l := Limits{NetNS: ino}
	err := ns.Do(func() error {
		read := func(name string) (string, error) {
			b, err := os.ReadFile("/proc/sys/net/ipv4/" + name)
			return strings.TrimSpace(string(b)), err
		}
		rng, err := read("ip_local_port_range")
		if err != nil {
			return err
		}
		if _, err := fmt.Sscan(rng, &l.PortRange[0], &l.PortRange[1]); err != nil {
			return fmt.Errorf("ip_local_port_range %q: %w", rng, err)
		}
		if s, err := read("ip_local_reserved_ports"); err == nil {
			l.Reserved = countReserved(s, l.PortRange)
		}
		if s, err := read("tcp_tw_reuse"); err == nil {
			l.TWReuse, _ = strconv.Atoi(s)
		}
		if s, err := read("tcp_fin_timeout"); err == nil {
			l.FinTimeout, _ = strconv.Atoi(s)
		}
		return nil
	})
	l.Usable = int(l.PortRange[1]) - int(l.PortRange[0]) + 1 - l.Reserved
	return l, err
}

// countReserved counts the ports of a list such as "8080,9000-9010" that
// fall inside rng.
func countReserved(list string, rng [2]uint16) int {
	n := 0
	for _, part := range strings.Split(list, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		lo, hi, found := strings.Cut(part, "-")
		if !found {
			hi = lo
		}
		l, err1 := strconv.Atoi(lo)
		h, err2 := strconv.Atoi(hi)
		if err1 != nil || err2 != nil {
			continue
		}
		l, h = max(l, int(rng[0])), min(h, int(rng[1]))
		if h >= l {
			n += h - l + 1
		}
	}
	return n
}
