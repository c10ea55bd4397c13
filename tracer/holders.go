// SPDX-License-Identifier: Apache-2.0

package tracer

import (
	"errors"
	"fmt"
	"net/netip"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/conntrace/conntrace/tracer/sockets"
)

// Holder lookups: who holds the port a bind() failed on, and who listens
// on the port a connect() was refused on, at other addresses. They take
// milliseconds (setns, a sock_diag dump, a walk of /proc), so they run
// beside the ring-buffer reader, never on it: the reader holds the
// events behind such a failure back, in order, until its lookup is done
// (backlog.go). A burst of failures asks the same question again and
// again; one lookup answers every failure of the same key that comes
// while it runs and for holderCacheFor after it.

const (
	// holderLookupsAtOnce bounds the lookups running at a time.
	holderLookupsAtOnce = 4
	// holderCacheFor is how long a finished lookup answers again.
	holderCacheFor = 250 * time.Millisecond
	// holderCacheMax is the number of keys past which expired answers are
	// forgotten.
	holderCacheMax = 256
)

// beforeListenerLookup, set by tests, runs as a listener lookup starts.
var beforeListenerLookup func()

// lookupKind says what a lookup looks for.
type lookupKind uint8

const (
	lookHolders   lookupKind = iota // bind_fail EADDRINUSE: who holds the port
	lookListeners                   // connect_fail ECONNREFUSED, ETIMEDOUT: who listens there
	lookDevice                      // connect_fail after a drop: the device's name
)

// holderKey is what a lookup's answer depends on.
type holderKey struct {
	kind  lookupKind
	netns uint32
	proto Proto
	addr  netip.Addr
	port  uint16
	index uint32 // lookDevice: the interface
}

// holderLookup is one lookup, running or done.
type holderLookup struct {
	done    doneChan // closed when holders and err are set
	holders []Holder // shared by every event it answers: read only
	netns   uint32   // lookListeners: the namespace looked in (0: none)
	// lookListeners: that namespace's ListenOverflows, when known.
	overflows      uint64
	overflowsKnown bool
	device         string // lookDevice: the interface's name
	err            error
	ended          time.Time // when it was done (under holderLookups.mu)
}

// doneChan is closed when a lookup beside the reader has its answer.
type doneChan chan struct{}

func (d doneChan) isDone() bool {
	select {
	case <-d:
		return true
	default:
		return false
	}
}

// holderLookups runs lookups for a tracer.
type holderLookups struct {
	wake    func() // called when a lookup is done: the reader may go on
	running chan struct{}
	wg      sync.WaitGroup

	mu    sync.Mutex
	byKey map[holderKey]*holderLookup
	// listening counts connect_fail lookups not done: past
	// holderLookupsAtOnce a failed connect goes without one (a port scan
	// must not hold the reader up; its explanation stays general).
	listening int
}

func newHolderLookups(wake func()) *holderLookups {
	return &holderLookups{wake: wake, running: make(chan struct{}, holderLookupsAtOnce), byKey: map[holderKey]*holderLookup{}}
}

// holdersOf is the lookup of who holds ev's local address and port.
func holdersOf(ev *Event) holderKey {
	return holderKey{kind: lookHolders, netns: ev.NetNS, proto: ev.Proto, addr: ev.LAddr, port: ev.LPort}
}

// listenersOf is the lookup of who listens on ev's peer's port, in the
// namespace here that has its address.
func listenersOf(ev *Event) holderKey {
	return holderKey{kind: lookListeners, netns: ev.NetNS, proto: ev.Proto, addr: ev.RAddr, port: ev.RPort}
}

// boundElsewhereOf is the lookup of who is bound to ev's local port (a
// datagram's destination), in the namespace here that has its address.
func boundElsewhereOf(ev *Event) holderKey {
	return holderKey{kind: lookListeners, netns: ev.NetNS, proto: ev.Proto, addr: ev.LAddr, port: ev.LPort}
}

// deviceOf is the lookup of the name of the device ev's last drop was on.
func deviceOf(ev *Event) holderKey {
	return holderKey{kind: lookDevice, netns: ev.NetNS, index: ev.DropIfindex}
}

// start returns the lookup of key, for process pid (whose namespaces it
// looks in): one running or recently done for the same key, or a new one;
// nil for a listener or device lookup when too many are under way
// already (a port scan must not hold the reader up).
func (h *holderLookups) start(key holderKey, pid uint32) *holderLookup {
	now := time.Now()
	h.mu.Lock()
	defer h.mu.Unlock()
	if l, ok := h.byKey[key]; ok && (!l.done.isDone() || now.Sub(l.ended) < holderCacheFor) {
		return l
	}
	if len(h.byKey) >= holderCacheMax {
		for k, l := range h.byKey {
			if l.done.isDone() && now.Sub(l.ended) >= holderCacheFor {
				delete(h.byKey, k)
			}
		}
	}
	if key.kind != lookHolders {
		if h.listening >= holderLookupsAtOnce {
			return nil
		}
		h.listening++
	}
	l := &holderLookup{done: make(doneChan)}
	h.byKey[key] = l
	h.wg.Add(1)
	go func() {
		defer h.wg.Done()
		h.running <- struct{}{}
		var holders []Holder
		var netns uint32
		var device string
		var overflows uint64
		var overflowsKnown bool
		var err error
		switch key.kind {
		case lookListeners:
			if beforeListenerLookup != nil {
				beforeListenerLookup()
			}
			holders, netns, overflows, overflowsKnown, err = lookupListeners(key, pid)
		case lookDevice:
			device, err = lookupDevice(key, pid)
		default:
			holders, err = lookupHolders(key, pid)
		}
		<-h.running
		h.mu.Lock()
		l.holders, l.netns, l.device, l.err, l.ended = holders, netns, device, err, time.Now()
		l.overflows, l.overflowsKnown = overflows, overflowsKnown
		if key.kind != lookHolders {
			h.listening--
		}
		close(l.done)
		h.mu.Unlock()
		h.wake()
	}()
	return l
}

// wait waits for every lookup started so far.
func (h *holderLookups) wait() { h.wg.Wait() }

// lookupHolders finds who holds key's port, in the failing process's own
// network namespace (it may be a container's): the sockets bound to it
// that conflict with the requested address, each with the processes that
// have it open. For TCP the listeners are the holders when there are any;
// otherwise any socket bound there (a client's, or TIME_WAIT without
// SO_REUSEADDR). The list is empty, never nil, when nobody was found; an
// error says why the lookup itself failed.
func lookupHolders(key holderKey, pid uint32) ([]Holder, error) {
	holders := []Holder{}
	ns, ok := sockets.OpenNSByInode(key.netns, pid)
	if !ok {
		return holders, fmt.Errorf("network namespace %d has no process left", key.netns)
	}
	defer ns.Close()
	socks, err := sockets.OnPort(ns, key.proto.String(), key.port)
	if errors.Is(err, unix.EPROTONOSUPPORT) || errors.Is(err, unix.ENOENT) {
		return holders, fmt.Errorf("%w (is the %s_diag kernel module available? try 'modprobe %s_diag')", err, key.proto, key.proto)
	}
	if err != nil {
		return holders, err
	}
	listeners := false
	for i := range socks {
		listeners = listeners || socks[i].State == "LISTEN"
	}
	for i := range socks {
		s := &socks[i]
		if !sockets.Conflicts(key.addr, s.LAddr) || (listeners && s.State != "LISTEN") {
			continue
		}
		h := Holder{LAddr: s.LAddr, LPort: s.LPort, State: s.State, Inode: s.Inode, Procs: s.Procs, ProcsSeen: s.ProcsSeen, UID: s.UID, Expires: s.Expires}
		for _, p := range s.Procs {
			if v, err := sockets.ReusePort(p, s.Inode); err == nil {
				h.ReusePort, h.ReusePortKnown = v, true
				break
			}
		}
		holders = append(holders, h)
	}
	return holders, nil
}

// lookupListeners finds, when a connect() to key's address and port was
// refused or timed out and that address is this host's, the sockets
// listening on the port in the network namespace that has the address
// (the failing socket's own first, and always for a loopback address),
// with their accept queues, and that namespace's ListenOverflows. nil and
// namespace 0 when no namespace here has the address.
func lookupListeners(key holderKey, pid uint32) (listeners []Holder, ino uint32, overflows uint64, overflowsKnown bool, err error) {
	ino, ns, ok := sockets.OwnerOf(key.addr, key.netns, pid)
	if !ok {
		return nil, 0, 0, false, nil
	}
	defer ns.Close()
	socks, err := sockets.OnPort(ns, key.proto.String(), key.port)
	if err != nil {
		return nil, ino, 0, false, err
	}
	listeners = []Holder{}
	for i := range socks {
		// A UDP socket bound and not connected takes datagrams from
		// anyone.
		if s := &socks[i]; s.State == "LISTEN" || s.State == "UNCONN" {
			listeners = append(listeners, Holder{LAddr: s.LAddr, LPort: s.LPort, State: s.State, Inode: s.Inode, Procs: s.Procs,
				ProcsSeen: s.ProcsSeen, UID: s.UID, Queued: s.Queued, Backlog: s.Backlog})
		}
	}
	if key.proto != ProtoTCP {
		return listeners, ino, 0, false, nil
	}
	overflows, oerr := sockets.ListenOverflows(ns)
	return listeners, ino, overflows, oerr == nil, nil
}

// lookupDevice names the interface a connection's packet was dropped on,
// in the connecting socket's network namespace.
func lookupDevice(key holderKey, pid uint32) (string, error) {
	ns, ok := sockets.OpenNSByInode(key.netns, pid)
	if !ok {
		return "", fmt.Errorf("network namespace %d has no process left", key.netns)
	}
	defer ns.Close()
	return sockets.LinkName(ns, key.index)
}
