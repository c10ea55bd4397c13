// SPDX-License-Identifier: Apache-2.0

// Package tracer loads conntrace's BPF programs, attaches them, and turns
// their ring-buffer records into Events.
package tracer

import (
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/btf"
	"github.com/cilium/ebpf/link"
	"github.com/cilium/ebpf/ringbuf"
	"github.com/cilium/ebpf/rlimit"
	"golang.org/x/sys/unix"

	"github.com/conntrace/conntrace/tracer/containers"
	"github.com/conntrace/conntrace/tracer/dns"
	"github.com/conntrace/conntrace/tracer/internal/bpfobj"
	"github.com/conntrace/conntrace/tracer/sockets/owners"
)

// ErrStop, returned by a Sink, ends Run without an error.
var ErrStop = errors.New("stop")

// Stats counts what a Tracer delivered and what the kernel dropped.
type Stats struct {
	Events uint64 // events delivered to the sink (not counting lost reports)
	Lost   uint64 // Dropped + Skipped + Evicted + Unaccepted
	// Dropped counts records the ring buffer had no room for.
	Dropped uint64
	// Skipped counts hook runs the kernel skipped because the program was
	// already running on that CPU (a softirq interrupting it), less those
	// the state tracepoint's rescue program handled, and connections whose
	// end the hooks never saw (the socket was reused first): each may have
	// cost an event.
	Skipped uint64
	// Evicted counts the events lost with the connections the full
	// socket table had no room for (Config.SocketTableSize): each
	// connect, accept, close or connect_fail they would have reported,
	// counted as it would have been, after the filters (past a second
	// table of 65,536, two for each connection, counted when it was
	// turned away); and with the UDP flows the full flow table had none
	// for (Config.UDPFlows), their start and end, counted when the flow
	// was turned away (one still open when the run stops would not have
	// reported its end).
	Evicted uint64
	// Unaccepted counts the accept events lost with the inbound
	// connections still waiting in an accept queue when the run stopped,
	// after stopWait for them (their client's connect may be reported;
	// their close has not happened): none when accept events are not
	// asked for. Counted before the process filters, which need the
	// accepting process.
	Unaccepted uint64
	// DNSMalformed counts DNS messages that were no lookup's: no header
	// or no question could be read.
	DNSMalformed uint64
	// DNSUnfollowed counts DNS queries not followed because 65,536 were
	// in flight: their answers are reported without them (latency 0),
	// and no timeout of theirs is.
	DNSUnfollowed uint64
	// DNSStreamSkipped counts the segments of DNS over TCP where a
	// message's start could not be found (its length past what the
	// kernel copies, or bytes unseen in the middle of a message): their
	// messages are not read.
	DNSStreamSkipped uint64
}

// Tracer is a loaded and attached set of programs.
type Tracer struct {
	coll  *ebpf.Collection // the programs (and data sections) of one mode
	maps  bpfobj.ConntraceMaps
	links []link.Link
	hooks []Hook // what links attached, in order
	rd    *ringbuf.Reader
	clock Clock
	ev    pending // the event being delivered, when none is held back
	stats Stats
	mode  Hooks
	// storage: connections live in socket storage, not the socket table.
	storage bool
	// udpOwned: the UDP sockets open at the start given their owners.
	udpOwned uint32

	holders *holderLookups // bind_fail holder lookups (Run)
	// containers: where events' cgroups and containers are looked up,
	// and the filter of Config.Cgroups and Config.Containers.
	containers *containers.Lookups
	cgLookup   *cgroupLookups // (Run)
	backlog    backlog        // events held back behind a lookup
	lost       lossCounter
	// unusable says why the better modes were passed over (auto).
	unusable []*ModeError
	// ownersErr: why sockets' processes are found by walking /proc.
	ownersErr error
	// lookupWait is Config.LookupWait (or its default).
	lookupWait time.Duration
	// unaccepted is Stats.Unaccepted, once the run has stopped.
	unaccepted uint64
	// onStopping, set by tests, runs once the programs know the run is
	// stopping.
	onStopping func()
	// sweeper ends UDP flows the kernel does not (udp.go); nil when UDP
	// is not traced, and then udpErr says why, if it was asked for.
	sweeper *sweeper
	udpErr  error
	// dns makes lookups of DNS messages and names peers (nil: UDP is not
	// traced, or no event needs it).
	dns *dnsReader
	// events is Config.Events: the kernel reports some beyond it.
	events EventMask
	// names is Config.Names (nil: none).
	names *dns.Filter
}

const (
	// pollEvery is how often Run reads the ring when the kernel side has
	// not woken it (it wakes the reader only when the ring fills up:
	// bpf/events.bpf.h), and flushes the sink: it bounds how long an event
	// waits.
	pollEvery = 10 * time.Millisecond
	// lostEvery is how often Run reads the loss counters.
	lostEvery = 250 * time.Millisecond
	// wakeupShare: the kernel side wakes the reader when the ring is this
	// much (1/wakeupShare) full.
	wakeupShare = 16
	// housekeepEvery is how often a busy Run checks its context and losses,
	// in events.
	housekeepEvery = 4096
	// stopWait is how long a stopping Run waits for the connections in
	// accept queues to be accepted; stopStall, how long it waits while
	// none is.
	stopWait  = time.Second
	stopStall = 200 * time.Millisecond
)

// Open loads the programs with cfg's filters compiled in and attaches them,
// with the hook mode cfg.Hooks names, or with the best one that works.
// Events are queued from the moment Open returns.
func Open(cfg Config) (*Tracer, error) {
	spec, opts, err := prepare(&cfg)
	if err != nil {
		return nil, err
	}
	look, err := containers.Open(containers.Options{Cgroups: cfg.Cgroups, Containers: cfg.Containers, NoCgroup2: noCgroup2ForTest})
	if err != nil {
		return nil, err
	}
	var unusable []*ModeError
	candidates := cfg.Hooks.candidates()
	if cfg.Proto == ProtoUDP && cfg.Hooks == HooksAuto {
		// The modes differ in TCP's hooks only: bind()'s are
		// tracepoints in all.
		candidates = []Hooks{HooksTracepoint}
	}
	// UDP's flows need the cgroup v2 hierarchy; without it UDP is still
	// traced where it is bind()'s.
	udp := udpTarget{}
	if cfg.Proto != ProtoTCP {
		udp.root, udp.err = udpRoot()
	}
	for _, m := range candidates {
		t, err := openMode(spec, opts, m, &cfg, udp)
		if err == nil {
			t.udpErr = udp.err
			t.events = cfg.Events
			if len(cfg.Names) > 0 {
				if t.names, err = namesFilter(&cfg, t); err != nil {
					t.Close()
					look.Close()
					return nil, err
				}
			}
			t.unusable = unusable
			t.containers = look
			t.lookupWait = cfg.LookupWait
			if t.lookupWait <= 0 {
				t.lookupWait = DefaultLookupWait
			}
			if filter := look.Filter(); filter != nil {
				put := func(id uint64) error { return t.maps.CgroupFilter.Put(id, uint8(1)) }
				if err := filter.Start(put); err != nil {
					t.Close()
					return nil, err
				}
			}
			if cfg.Events.Has(EventBindFail) || cfg.Events.Has(EventConnectFail) {
				// Now, while loading is allowed (capabilities are
				// dropped after Open) and not at the first failure.
				// Where it cannot load, holders are found in /proc.
				t.ownersErr = owners.Prepare()
			}
			return t, nil
		}
		unusable = append(unusable, &ModeError{Mode: m, Err: err})
	}
	look.Close()
	if len(unusable) == 1 {
		return nil, unusable[0]
	}
	return nil, fmt.Errorf("no hook mode works on this kernel: %s", joinModeErrors(unusable))
}

// prepare checks the environment and readies the embedded object: filters
// set, and the kernel's types from cfg.BTFPath when given.
func prepare(cfg *Config) (*ebpf.CollectionSpec, ebpf.CollectionOptions, error) {
	var opts ebpf.CollectionOptions
	if err := cfg.Validate(); err != nil {
		return nil, opts, err
	}
	if err := checkEnvironment(cfg.BTFPath); err != nil {
		return nil, opts, err
	}
	if err := rlimit.RemoveMemlock(); err != nil {
		return nil, opts, privilegeError("raise the locked-memory limit", err)
	}
	if cfg.BTFPath != "" {
		kt, err := btf.LoadSpec(cfg.BTFPath)
		if err != nil {
			return nil, opts, fmt.Errorf("read kernel BTF from %s: %w", cfg.BTFPath, err)
		}
		opts.Programs.KernelTypes = kt
	}
	spec, err := loadSpec()
	if err != nil {
		return nil, opts, fmt.Errorf("read the embedded BPF object: %w", err)
	}
	if err := configure(spec, cfg); err != nil {
		return nil, opts, err
	}
	return spec, opts, nil
}

// loadMode loads the programs of mode m (and every map), with
// connections in socket storage where the mode and kernel allow it
// (storageTried): a kernel before 5.11, whose tracing programs cannot
// reach socket storage, refuses those programs, and then the socket table
// holds them all. storage says which it is.
func loadMode(spec *ebpf.CollectionSpec, opts ebpf.CollectionOptions, m Hooks, cfg *Config, udp udpTarget) (coll *ebpf.Collection, storage bool, err error) {
	if err := haveProgramType(m); err != nil {
		return nil, false, err
	}
	var loadErr error
	for _, storage := range []bool{true, false} {
		if storage && !storageTried(m, cfg) {
			continue
		}
		ms, err := modeSpec(spec, m, storage, cfg.SocketTableSize, cfg.Proto != ProtoUDP, udp.root != "", cfg.UDPFlows)
		if err != nil {
			return nil, false, err
		}
		if coll, loadErr = ebpf.NewCollectionWithOptions(ms, opts); loadErr == nil {
			return coll, storage, nil
		}
	}
	return nil, false, privilegeError("load the BPF programs", loadErr)
}

// udpTarget is where UDP's programs attach: the root of the cgroup v2
// hierarchy; none when UDP's flows are not traced (err: why not, when
// asked for).
type udpTarget struct {
	root string
	err  error
}

func openMode(spec *ebpf.CollectionSpec, opts ebpf.CollectionOptions, m Hooks, cfg *Config, udp udpTarget) (_ *Tracer, err error) {
	coll, storage, err := loadMode(spec, opts, m, cfg, udp)
	if err != nil {
		return nil, err
	}
	t := &Tracer{coll: coll, clock: NewClock(), mode: m, storage: storage}
	defer func() {
		if err != nil {
			t.Close()
		}
	}()
	if err := coll.Assign(&t.maps); err != nil {
		return nil, err
	}
	if err := fillFilters(&t.maps, cfg); err != nil {
		return nil, err
	}
	if t.rd, err = ringbuf.NewReader(t.maps.Events); err != nil {
		return nil, fmt.Errorf("open the ring buffer: %w", err)
	}
	hooks, err := hooksOf(spec, m, cfg.Proto != ProtoUDP, udp.root != "")
	if err != nil {
		return nil, err
	}
	for _, h := range hooks {
		prog := coll.Programs[h.prog]
		l, err := attachHook(h, prog, udp.root)
		if err != nil {
			return nil, privilegeError("attach to "+h.String(), err)
		}
		t.links = append(t.links, l)
		t.hooks = append(t.hooks, h)
		// The rescue program's skips lose nothing: the main one ran.
		if !h.rescue {
			t.lost.progs = append(t.lost.progs, prog)
		}
		if h.Kind == "kprobe" || h.Kind == "kretprobe" {
			t.lost.kprobes = append(t.lost.kprobes, l)
		}
		// The sockets made before this one attached get their owners
		// before a datagram is counted (udpPrograms' order).
		if h.prog == bpfobj.ConntraceProgUdpSockCreate {
			if t.udpOwned, err = ownExisting(coll); err != nil {
				return nil, err
			}
		}
	}
	if udp.root != "" {
		t.sweeper = startSweeper(coll.Programs[udpSweep], cfg.UDPIdle)
		if dnsTap(cfg) {
			t.dns = newDNSReader(cfg.DNSTimeout)
		}
	}
	return t, nil
}

func configure(spec *ebpf.CollectionSpec, cfg *Config) error {
	set := func(name string, v any) error {
		if err := spec.Variables[name].Set(v); err != nil {
			return fmt.Errorf("set %s: %w", name, err)
		}
		return nil
	}
	mask := uint32(cfg.Events)
	if mask == 0 {
		mask = ^uint32(0)
	}
	for _, v := range []struct {
		name string
		val  any
	}{
		{bpfobj.ConntraceVarFilterPorts, b2u8(len(cfg.Ports) > 0)},
		{bpfobj.ConntraceVarFilterPortMin, slices.Min(append([]uint16{65535}, cfg.Ports...))},
		{bpfobj.ConntraceVarFilterPortMax, slices.Max(append([]uint16{0}, cfg.Ports...))},
		{bpfobj.ConntraceVarFilterPids, b2u8(len(cfg.PIDs) > 0)},
		{bpfobj.ConntraceVarFilterFamily, uint8(cfg.Family)},
		{bpfobj.ConntraceVarFilterProto, uint8(cfg.Proto)},
		{bpfobj.ConntraceVarFilterComms, b2u8(len(cfg.Comms) > 0)},
		{bpfobj.ConntraceVarFilterCgroups, b2u8(len(cfg.Cgroups)+len(cfg.Containers) > 0)},
		{bpfobj.ConntraceVarEventMask, mask},
		{bpfobj.ConntraceVarDnsTap, b2u8(dnsTap(cfg))},
	} {
		if err := set(v.name, v.val); err != nil {
			return err
		}
	}
	ring := cfg.RingBytes
	if ring == 0 {
		ring = DefaultRingBytes
	}
	spec.Maps[bpfobj.ConntraceMapEvents].MaxEntries = ring
	if err := set(bpfobj.ConntraceVarWakeupBytes, uint64(ring/wakeupShare)); err != nil {
		return err
	}
	if hz := kernelHZ(); hz != 0 {
		if err := set(bpfobj.ConntraceVarJiffyNs, uint64(time.Second)/hz); err != nil {
			return err
		}
	}
	return nil
}

// dnsTap: DNS messages are wanted, for dns events or the names of other
// events' peers.
func dnsTap(cfg *Config) bool {
	if cfg.Proto == ProtoTCP {
		return false
	}
	for _, k := range AllEvents {
		if cfg.Events.Has(k) && (k == EventDNS || k.HasPeer()) {
			return true
		}
	}
	return false
}

func fillFilters(maps *bpfobj.ConntraceMaps, cfg *Config) error {
	one := uint8(1)
	for _, p := range cfg.Ports {
		if err := maps.PortFilter.Put(uint32(p), one); err != nil {
			return fmt.Errorf("port filter: %w", err)
		}
	}
	for _, p := range cfg.PIDs {
		if err := maps.PidFilter.Put(p, one); err != nil {
			return fmt.Errorf("pid filter: %w", err)
		}
	}
	for _, c := range cfg.Comms {
		var key [16]byte // NUL-padded, as the kernel reads names
		copy(key[:], c)
		if err := maps.CommFilter.Put(key, one); err != nil {
			return fmt.Errorf("comm filter: %w", err)
		}
	}
	return nil
}

// Mode is the hook mode in use.
func (t *Tracer) Mode() Hooks { return t.mode }

// ContainersError says why events carry no cgroup ids and are matched to
// containers by their process's /proc/PID/cgroup instead (no cgroup v2
// hierarchy), or nil.
func (t *Tracer) ContainersError() error { return t.containers.Err() }

// Warnings are problems that do not stop the tracer but make it see less
// than asked (a --container filter that cannot name containers, or that
// stopped watching for new ones).
func (t *Tracer) Warnings() []string {
	var ws []string
	if filter := t.containers.Filter(); filter != nil {
		if w := filter.Warning(); w != "" {
			ws = append(ws, w)
		}
	}
	if t.ownersErr != nil {
		ws = append(ws, fmt.Sprintf("who holds a port is found by walking /proc, slowly on a host with many open files: %v", t.ownersErr))
	}
	if t.udpErr != nil {
		ws = append(ws, fmt.Sprintf("UDP flows are not traced (UDP's bind failures are): %v", t.udpErr))
	}
	if err := t.sweeper.failed(); err != nil {
		ws = append(ws, err.Error())
	}
	return ws
}

// SocketStorage reports whether connections are kept in socket-local
// storage (no table size, no evictions), rather than in the socket table
// of Config.SocketTableSize.
func (t *Tracer) SocketStorage() bool { return t.storage }

// Unusable says why auto passed over better modes than Mode.
func (t *Tracer) Unusable() []*ModeError { return t.unusable }

// Stats returns the counts so far.
func (t *Tracer) Stats() Stats {
	st := t.stats
	if t.dns != nil {
		st.DNSUnfollowed = t.dns.lookups.Overflow
	}
	return st
}

// Run delivers events to sink until ctx is done or sink returns ErrStop.
// When ctx ends nothing new starts, the connections in accept queues get
// up to stopWait to be accepted, then it detaches the programs and drains
// what is queued: no event that happened before the stop is lost, and the
// connections left in the queues are counted (Stats.Unaccepted). Losses
// in the kernel are delivered as EventLost events. A bind_fail's holders
// are looked up beside the reader; the events after it wait for that, in
// order.
func (t *Tracer) Run(ctx context.Context, sink Sink) error {
	var rec ringbuf.Record
	dirty := false
	n := 0
	rd := t.rd
	// Wake a waiting read as soon as ctx ends, or a holder lookup is done
	// (Flush needs no lock).
	defer context.AfterFunc(ctx, func() { rd.Flush() })()
	t.holders = newHolderLookups(func() { rd.Flush() })
	defer t.holders.wait()
	t.cgLookup = newCgroupLookups(t.containers, func() { rd.Flush() })
	defer t.cgLookup.wait()
	t.rd.SetDeadline(time.Now().Add(pollEvery))
	lostAt := time.Now()
	for {
		err := t.rd.ReadInto(&rec)
		if err == nil {
			if err := t.deliver(rec.RawSample, sink); err != nil {
				return t.end(sink, err)
			}
			dirty = true
			if n++; n%housekeepEvery == 0 {
				if ctx.Err() != nil {
					return t.stop(sink)
				}
				if err := t.reportLost(sink); err != nil {
					return t.end(sink, err)
				}
			}
			continue
		}
		if !errors.Is(err, os.ErrDeadlineExceeded) && !errors.Is(err, ringbuf.ErrFlushed) {
			return t.end(sink, fmt.Errorf("read ring buffer: %w", err))
		}
		// The ring is empty (after the poll's deadline passed), ctx
		// ended, or a lookup is done.
		written := t.stats.Events
		if err := t.release(sink, false); err != nil {
			return t.end(sink, err)
		}
		if err := t.expireDNS(sink, false); err != nil {
			return t.end(sink, err)
		}
		if dirty || t.stats.Events != written {
			if err := sink.Flush(); err != nil {
				return err
			}
			dirty = false
		}
		if ctx.Err() != nil {
			return t.stop(sink)
		}
		if now := time.Now(); now.Sub(lostAt) >= lostEvery {
			lostAt = now
			if err := t.reportLost(sink); err != nil {
				return t.end(sink, err)
			}
		}
		t.rd.SetDeadline(time.Now().Add(pollEvery))
	}
}

// deliver decodes one record and writes it, or holds it back behind a
// lookup.
func (t *Tracer) deliver(raw []byte, sink Sink) error {
	ev, err := t.slot(sink)
	if err != nil {
		return err
	}
	if err := decode(raw, t.clock, &ev.Event); err != nil {
		t.unslot(ev)
		return err
	}
	ev.ts = recordTime(raw)
	if absorb := kindTable[ev.Type].absorb; absorb != nil && !absorb(t, raw, ev) {
		t.unslot(ev)
		if t.dns != nil && len(t.dns.ready) > 0 {
			return t.writeReady(sink)
		}
		return nil
	}
	return t.route(ev, sink)
}

// slot is where the next event goes: the reader's own, or the backlog's
// next slot when events are held back (then a full backlog first lets
// its oldest go).
func (t *Tracer) slot(sink Sink) (*pending, error) {
	if t.backlog.empty() {
		return &t.ev, nil
	}
	if t.backlog.full() {
		if err := t.release(sink, true); err != nil {
			return nil, err
		}
		if t.backlog.empty() {
			return &t.ev, nil
		}
	}
	return t.backlog.push(), nil
}

// unslot gives back a slot no event went into.
func (t *Tracer) unslot(ev *pending) {
	if ev != &t.ev {
		t.backlog.unpush()
	}
}

// route starts what ev waits for beside the reader, then writes it, or
// holds it back until that is done (and writes what it let go).
func (t *Tracer) route(ev *pending, sink Sink) error {
	ev.lookup, ev.cgLookup, ev.heldAt = nil, nil, time.Time{}
	if t.dns != nil && ev.Type.HasPeer() && ev.Type != EventDNS {
		ev.RName = t.dns.names.Get(ev.NetNS, ev.RAddr, ev.ts)
	}
	if t.names != nil && !t.namesMatch(&ev.Event) {
		if ev.DNS != nil {
			t.dns.lookups.Release(ev.DNS)
			ev.DNS = nil
		}
		t.unslot(ev)
		return t.release(sink, false)
	}
	if lookup := kindTable[ev.Type].lookup; lookup != nil {
		ev.lookup = lookup(t, &ev.Event)
	}
	if key := t.cgroupKey(&ev.Event); key != 0 {
		ev.Cgroup, ev.cgLookup = t.cgLookup.get(key)
	}
	if ev.lookup != nil || ev.cgLookup != nil {
		ev.heldAt = time.Now()
	}
	if ev == &t.ev {
		if ev.lookup == nil && ev.cgLookup == nil {
			return t.write(sink, &ev.Event)
		}
		*t.backlog.push() = *ev
	}
	return t.release(sink, false)
}

// cgroupKey is what ev's cgroup is looked up by: its id, or without
// cgroup v2 its process (0: nothing to look up).
func (t *Tracer) cgroupKey(ev *Event) uint64 {
	if t.containers != nil && t.containers.ByCgroup() {
		return ev.CgroupID
	}
	return uint64(ev.PID)
}

// release writes the held-back events whose lookups are done, oldest
// first. The oldest goes out without what its lookups have not found
// once it has waited Config.LookupWait, or at once with giveUp (the backlog
// is full): the stream never waits longer on a lookup, and the event
// says what is not known.
func (t *Tracer) release(sink Sink, giveUp bool) error {
	for !t.backlog.empty() {
		ev := t.backlog.front()
		// Asked only of an event whose lookups are not done.
		late := func() bool { return giveUp || time.Since(ev.heldAt) >= t.lookupWait }
		if l := ev.lookup; l != nil {
			if !l.done.isDone() && !late() {
				return nil
			}
			ev.lookup = nil
			kindTable[ev.Type].settle(t, ev, l, l.done.isDone(), giveUp)
		}
		if l := ev.cgLookup; l != nil {
			if !l.done.isDone() && !late() {
				return nil
			}
			if l.done.isDone() {
				ev.Cgroup = l.cg
			}
			ev.cgLookup = nil
		}
		giveUp = false
		err := t.write(sink, &ev.Event)
		t.backlog.pop()
		if err != nil {
			return err
		}
	}
	return nil
}

// listenAfter is how long after ev a socket last started listening on
// its remote port in the listeners' namespace (bpf/tcp_state.bpf.c), or 0.
func (t *Tracer) listenAfter(ev *pending) time.Duration {
	var at uint64
	key := bpfobj.ConntraceListenKey{Netns: ev.ListenersNetNS, Port: ev.RPort}
	if err := t.maps.ListenedAt.Lookup(&key, &at); err != nil || at <= ev.ts {
		return 0
	}
	return time.Duration(at - ev.ts)
}

// lookupLate is a holder lookup's error when its event could not wait.
func (t *Tracer) lookupLate(backlogFull bool) string {
	if backlogFull {
		return fmt.Sprintf("the lookup was still running when %d events waited behind it", backlogMax)
	}
	return fmt.Sprintf("the lookup took longer than %v", t.lookupWait)
}

// waitFront waits until the oldest held-back event's lookups are done or
// its time is up.
func (t *Tracer) waitFront() {
	ev := t.backlog.front()
	timer := time.NewTimer(max(0, t.lookupWait-time.Since(ev.heldAt)))
	defer timer.Stop()
	for _, done := range []doneChan{lookupDone(ev.lookup), cgLookupDone(ev.cgLookup)} {
		if done == nil {
			continue
		}
		select {
		case <-done:
		case <-timer.C:
			return
		}
	}
}

func lookupDone(l *holderLookup) doneChan {
	if l == nil {
		return nil
	}
	return l.done
}

func cgLookupDone(l *cgroupLookup) doneChan {
	if l == nil {
		return nil
	}
	return l.done
}

func (t *Tracer) write(sink Sink, ev *Event) error {
	t.stats.Events++
	err := sink.Write(ev)
	if ev.DNS != nil {
		t.dns.lookups.Release(ev.DNS)
		ev.DNS = nil
	}
	return err
}

// stop ends the run: nothing new starts in the kernel from here, the
// connections in accept queues get their moment to be accepted (settle),
// then it detaches, drains the ring and the backlog, counts the
// connections left in the queues, reports final losses and flushes.
func (t *Tracer) stop(sink Sink) error {
	if err := t.settle(sink); err != nil {
		return t.end(sink, err)
	}
	// UDP flows of sockets closed by now end; open ones are not
	// reported, as TCP's open connections.
	t.sweeper.final()
	t.detach()
	if err := t.drain(sink, time.Now()); err != nil {
		return t.end(sink, err)
	}
	// Lookups still waiting for an answer are said so.
	if err := t.expireDNS(sink, true); err != nil {
		return t.end(sink, err)
	}
	for !t.backlog.empty() {
		t.waitFront()
		if err := t.release(sink, false); err != nil {
			return t.end(sink, err)
		}
	}
	// Read after detaching: one accepted since then was not reported.
	// Each lost its accept (its close has not happened), if asked for.
	if t.events.Has(EventAccept) {
		t.unaccepted = uint64(max(t.queued(), 0))
	}
	return t.end(sink, t.reportLost(sink))
}

// drain delivers what the ring holds, waiting for more until deadline.
func (t *Tracer) drain(sink Sink, deadline time.Time) error {
	var rec ringbuf.Record
	t.rd.SetDeadline(deadline)
	for {
		err := t.rd.ReadInto(&rec)
		if errors.Is(err, ringbuf.ErrFlushed) {
			continue // a wake-up not yet consumed
		}
		if errors.Is(err, os.ErrDeadlineExceeded) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("read ring buffer: %w", err)
		}
		if err := t.deliver(rec.RawSample, sink); err != nil {
			return err
		}
	}
}

// settle tells the programs that the run is stopping, so that nothing new
// starts (bpf/filters.bpf.h), and delivers events while the inbound
// connections already followed are accepted: until none is left in an
// accept queue, none was accepted for stopStall, or stopWait passed. So
// a run's last connections are reported from both ends, and the count of
// those still queued (Stats.Unaccepted) is what no server took.
func (t *Tracer) settle(sink Sink) error {
	v := t.coll.Variables[bpfobj.ConntraceVarStopping]
	// Before Linux 5.5 the flag cannot be written: the run ends at once.
	if v == nil || v.Set(uint8(1)) != nil {
		return nil
	}
	if t.onStopping != nil {
		t.onStopping()
	}
	end := time.Now().Add(stopWait)
	left, progress := t.queued(), time.Now()
	for left > 0 && time.Since(progress) < stopStall && time.Now().Before(end) {
		if err := t.drain(sink, time.Now().Add(pollEvery)); err != nil {
			return err
		}
		if err := t.release(sink, false); err != nil {
			return err
		}
		if n := t.queued(); n < left {
			left, progress = n, time.Now()
		}
	}
	return nil
}

// queued is the number of inbound connections followed and not yet
// accepted (bpf/tcp_track.bpf.h), or 0 when it cannot be read.
func (t *Tracer) queued() int64 {
	var perCPU []int64
	if err := t.maps.Queued.Lookup(uint32(0), &perCPU); err != nil {
		return 0
	}
	var n int64
	for _, v := range perCPU {
		n += v
	}
	return n
}

// end flushes the sink and turns ErrStop into success.
func (t *Tracer) end(sink Sink, err error) error {
	if ferr := sink.Flush(); err == nil || errors.Is(err, ErrStop) {
		err = ferr
	}
	return err
}

// detach closes every link at once: closing a tracepoint's waits for an
// RCU grace period (some 50 ms), and they need not wait for each other.
func (t *Tracer) detach() {
	t.lost.detach()
	var wg sync.WaitGroup
	for _, l := range t.links {
		wg.Add(1)
		go func() {
			defer wg.Done()
			l.Close()
		}()
	}
	wg.Wait()
	t.links = nil
}

// Close detaches and frees everything. It is safe to call more than once.
func (t *Tracer) Close() error {
	t.sweeper.close()
	t.detach()
	if t.rd != nil {
		t.rd.Close()
		t.rd = nil
	}
	if t.containers != nil {
		t.containers.Close()
	}
	if t.coll != nil {
		t.maps.Close()
		t.coll.Close()
		t.coll = nil
	}
	return nil
}

// privilegeError names the missing privilege when the kernel said EPERM.
func privilegeError(what string, err error) error {
	var ve *ebpf.VerifierError
	if errors.As(err, &ve) {
		// Not a privilege problem: the kernel rejected our code.
		return fmt.Errorf("%s: the kernel's verifier rejected a program (please report this with 'uname -r'): %v", what, err)
	}
	if errors.Is(err, unix.EPERM) || errors.Is(err, unix.EACCES) {
		if os.Geteuid() != 0 {
			return fmt.Errorf("%s: permission denied: run as root (or with CAP_BPF, CAP_PERFMON and CAP_SYS_RESOURCE)", what)
		}
		return fmt.Errorf("%s: permission denied although running as root (kernel lockdown or a security module may forbid BPF): %v", what, err)
	}
	return fmt.Errorf("%s: %w", what, err)
}

// joinModeErrors puts the reasons on one line.
func joinModeErrors(ms []*ModeError) string {
	parts := make([]string, len(ms))
	for i, m := range ms {
		parts[i] = m.Error()
	}
	return strings.Join(parts, "; ")
}

func b2u8(b bool) uint8 {
	if b {
		return 1
	}
	return 0
}
