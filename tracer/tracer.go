// Package tracer loads conntrace's BPF programs, attaches them, and turns
// their ring-buffer records into Events.
package tracer

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/btf"
	"github.com/cilium/ebpf/link"
	"github.com/cilium/ebpf/ringbuf"
	"github.com/cilium/ebpf/rlimit"
	"golang.org/x/sys/unix"
)

// Sink receives events from Run. Write must not keep ev: it is reused.
type Sink interface {
	Write(ev *Event) error
	// Flush is called when the ring buffer has gone quiet, and at the end.
	Flush() error
}

// ErrStop, returned by a Sink, ends Run without an error.
var ErrStop = errors.New("stop")

// Stats counts what a Tracer delivered and what the kernel dropped.
type Stats struct {
	Events uint64 // events delivered to the sink (not counting lost reports)
	Lost   uint64 // Dropped + Skipped + Evicted
	// Dropped counts records the ring buffer had no room for.
	Dropped uint64
	// Skipped counts hook runs the kernel skipped because the program was
	// already running on that CPU (a softirq interrupting it), less those
	// the state tracepoint's rescue program handled, and connections whose
	// end the hooks never saw (the socket was reused first): each may have
	// cost an event.
	Skipped uint64
	// Evicted counts connections dropped from the full socket table while
	// open (Config.SocketTableSize): their close is not reported.
	Evicted uint64
}

// Tracer is a loaded and attached set of programs.
type Tracer struct {
	coll  *ebpf.Collection // the programs (and data sections) of one mode
	maps  conntraceMaps
	links []link.Link
	rd    *ringbuf.Reader
	clock Clock
	ev    Event
	stats Stats
	mode  Hooks
	// unusable says why the better modes were passed over (auto).
	unusable []*ModeError

	warn         func(error)     // Config.OnWarning
	lostBuf      []uint64        // per-CPU read buffer for lost_events
	progs        []*ebpf.Program // attached, for their recursion-miss counters
	kprobes      []link.Link     // kprobe links, for the hits the kernel missed
	kprobeMissed uint64          // their misses, as last read

	socksMax      uint32    // the socket table's size
	lastSockCount time.Time // when the socket table's entries were last counted
}

const (
	// flushDelay bounds how long an event waits in the sink's buffer.
	flushDelay = 10 * time.Millisecond
	// idlePoll is how often an idle Run checks its context and losses.
	idlePoll = 250 * time.Millisecond
	// housekeepEvery is how often a busy Run does the same, in events.
	housekeepEvery = 4096
)

// Open loads the programs with cfg's filters compiled in and attaches them,
// with the hook mode cfg.Hooks names, or with the best one that works.
// Events are queued from the moment Open returns.
func Open(cfg Config) (*Tracer, error) {
	spec, opts, err := prepare(&cfg)
	if err != nil {
		return nil, err
	}
	var unusable []*ModeError
	for _, m := range cfg.Hooks.candidates() {
		t, err := openMode(spec, opts, m, &cfg)
		if err == nil {
			t.unusable = unusable
			return t, nil
		}
		unusable = append(unusable, &ModeError{Mode: m, Err: err})
	}
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

// loadMode loads the programs of mode m (and every map).
func loadMode(spec *ebpf.CollectionSpec, opts ebpf.CollectionOptions, m Hooks) (*ebpf.Collection, error) {
	if err := haveProgramType(m); err != nil {
		return nil, err
	}
	spec, err := modeSpec(spec, m)
	if err != nil {
		return nil, err
	}
	coll, err := ebpf.NewCollectionWithOptions(spec, opts)
	if err != nil {
		return nil, privilegeError("load the BPF programs", err)
	}
	return coll, nil
}

func openMode(spec *ebpf.CollectionSpec, opts ebpf.CollectionOptions, m Hooks, cfg *Config) (_ *Tracer, err error) {
	coll, err := loadMode(spec, opts, m)
	if err != nil {
		return nil, err
	}
	t := &Tracer{coll: coll, clock: NewClock(), mode: m, warn: cfg.OnWarning, socksMax: spec.Maps[conntraceMapSocks].MaxEntries}
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
	for _, h := range AllHooks(m) {
		prog := coll.Programs[h.prog]
		l, err := attachHook(h, prog)
		if err != nil {
			return nil, privilegeError("attach to "+h.String(), err)
		}
		t.links = append(t.links, l)
		// The rescue program's skips lose nothing: the main one ran.
		if !h.rescue {
			t.progs = append(t.progs, prog)
		}
		if h.Kind == "kprobe" || h.Kind == "kretprobe" {
			t.kprobes = append(t.kprobes, l)
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
	var comm [16]byte
	copy(comm[:], cfg.Comm)
	mask := uint32(cfg.Events)
	if mask == 0 {
		mask = ^uint32(0)
	}
	for _, v := range []struct {
		name string
		val  any
	}{
		{conntraceVarFilterPorts, b2u8(len(cfg.Ports) > 0)},
		{conntraceVarFilterPids, b2u8(len(cfg.PIDs) > 0)},
		{conntraceVarFilterFamily, uint8(cfg.Family)},
		{conntraceVarFilterCommSet, b2u8(cfg.Comm != "")},
		{conntraceVarFilterComm, comm},
		{conntraceVarEventMask, mask},
	} {
		if err := set(v.name, v.val); err != nil {
			return err
		}
	}
	ring := cfg.RingBytes
	if ring == 0 {
		ring = DefaultRingBytes
	}
	spec.Maps[conntraceMapEvents].MaxEntries = ring
	socks := cfg.SocketTableSize
	if socks == 0 {
		socks = DefaultSocketTableSize
	}
	spec.Maps[conntraceMapSocks].MaxEntries = socks
	return nil
}

func fillFilters(maps *conntraceMaps, cfg *Config) error {
	one := uint8(1)
	for _, p := range cfg.Ports {
		if err := maps.PortFilter.Put(p, one); err != nil {
			return fmt.Errorf("port filter: %w", err)
		}
	}
	for _, p := range cfg.PIDs {
		if err := maps.PidFilter.Put(p, one); err != nil {
			return fmt.Errorf("pid filter: %w", err)
		}
	}
	return nil
}

// Mode is the hook mode in use.
func (t *Tracer) Mode() Hooks { return t.mode }

// Unusable says why auto passed over better modes than Mode.
func (t *Tracer) Unusable() []*ModeError { return t.unusable }

// Stats returns the counts so far.
func (t *Tracer) Stats() Stats { return t.stats }

// Run delivers events to sink until ctx is done or sink returns ErrStop.
// When ctx ends it detaches the programs and drains what is queued, so no
// event that happened before the stop is lost. Losses in the kernel are
// delivered as EventLost events.
func (t *Tracer) Run(ctx context.Context, sink Sink) error {
	var rec ringbuf.Record
	dirty := false
	n := 0
	// Wake a waiting read as soon as ctx ends (Flush needs no lock).
	defer context.AfterFunc(ctx, func() { t.rd.Flush() })()
	t.rd.SetDeadline(time.Now().Add(idlePoll))
	for {
		err := t.rd.ReadInto(&rec)
		if err == nil {
			if err := t.deliver(rec.RawSample, sink); err != nil {
				return t.end(sink, err)
			}
			if !dirty {
				// First event since the last flush: flush soon.
				dirty = true
				t.rd.SetDeadline(time.Now().Add(flushDelay))
			}
			if n++; n%housekeepEvery == 0 {
				if ctx.Err() != nil {
					return t.stop(sink)
				}
				if err := t.reportLost(sink, false); err != nil {
					return t.end(sink, err)
				}
			}
			continue
		}
		if !errors.Is(err, os.ErrDeadlineExceeded) && !errors.Is(err, ringbuf.ErrFlushed) {
			return t.end(sink, fmt.Errorf("read ring buffer: %w", err))
		}
		// The ring is empty (or was, after the deadline passed), or ctx ended.
		if dirty {
			if err := sink.Flush(); err != nil {
				return err
			}
			dirty = false
		}
		if ctx.Err() != nil {
			return t.stop(sink)
		}
		if err := t.reportLost(sink, false); err != nil {
			return t.end(sink, err)
		}
		t.rd.SetDeadline(time.Now().Add(idlePoll))
	}
}

func (t *Tracer) deliver(raw []byte, sink Sink) error {
	if err := decode(raw, t.clock, &t.ev); err != nil {
		return err
	}
	if t.ev.Type == EventBindFail {
		var err error
		if t.ev.Holders, err = lookupHolders(&t.ev); err != nil && t.warn != nil {
			t.warn(err)
		}
	}
	t.stats.Events++
	return sink.Write(&t.ev)
}

// stop detaches, drains the ring, reports final losses and flushes.
func (t *Tracer) stop(sink Sink) error {
	t.detach()
	var rec ringbuf.Record
	t.rd.SetDeadline(time.Now())
	for {
		err := t.rd.ReadInto(&rec)
		if errors.Is(err, ringbuf.ErrFlushed) {
			continue // the wake-up from Run's ctx, not yet consumed
		}
		if err != nil {
			if !errors.Is(err, os.ErrDeadlineExceeded) {
				return t.end(sink, fmt.Errorf("read ring buffer: %w", err))
			}
			break
		}
		if err := t.deliver(rec.RawSample, sink); err != nil {
			return t.end(sink, err)
		}
	}
	return t.end(sink, t.reportLost(sink, true))
}

// end flushes the sink and turns ErrStop into success.
func (t *Tracer) end(sink Sink, err error) error {
	if ferr := sink.Flush(); err == nil || errors.Is(err, ErrStop) {
		err = ferr
	}
	return err
}

// reportLost delivers an EventLost when records were dropped, hook runs
// skipped or connections evicted since the last report (final: the last
// report of the run, which counts the socket table whatever the time).
func (t *Tracer) reportLost(sink Sink, final bool) error {
	dropped, err := t.sumPerCPU(t.maps.LostEvents, uint32(conntraceLostCauseLOST_RING_FULL))
	if err != nil {
		return fmt.Errorf("read lost-event counter: %w", err)
	}
	unseen, err := t.sumPerCPU(t.maps.LostEvents, uint32(conntraceLostCauseLOST_UNSEEN))
	if err != nil {
		return fmt.Errorf("read lost-event counter: %w", err)
	}
	// Misses first: a rescue always follows its miss, so reading the
	// rescues later can only undercount the skips for now, never count a
	// rescued one as lost.
	var misses uint64
	for _, p := range t.progs {
		if st, err := p.Stats(); err == nil {
			misses += st.RecursionMisses
		}
	}
	misses += t.kprobeMisses()
	rescued, err := t.sumPerCPU(t.maps.StateRescued, 0)
	if err != nil {
		return fmt.Errorf("read rescued-event counter: %w", err)
	}
	skipped := unseen
	if misses > rescued {
		skipped += misses - rescued
	}
	skipped = max(skipped, t.stats.Skipped)
	evicted, err := t.evictions(final)
	if err != nil {
		return fmt.Errorf("count the socket table: %w", err)
	}
	evicted = max(evicted, t.stats.Evicted)
	total := dropped + skipped + evicted
	if total <= t.stats.Lost {
		return nil
	}
	t.ev = Event{Type: EventLost, Time: time.Now().UTC(), Lost: total - t.stats.Lost,
		LostDropped: dropped - t.stats.Dropped, LostSkipped: skipped - t.stats.Skipped, LostEvicted: evicted - t.stats.Evicted}
	t.stats.Lost, t.stats.Dropped, t.stats.Skipped, t.stats.Evicted = total, dropped, skipped, evicted
	return sink.Write(&t.ev)
}

// sumPerCPU adds up entry key of a per-CPU array of counters.
func (t *Tracer) sumPerCPU(m *ebpf.Map, key uint32) (uint64, error) {
	if err := m.Lookup(key, &t.lostBuf); err != nil {
		return 0, err
	}
	var sum uint64
	for _, n := range t.lostBuf {
		sum += n
	}
	return sum, nil
}

// evictions is how many connections the socket table's LRU has evicted:
// entries added less those removed less those still there. Counting them
// takes a syscall per entry, so it is done only when the table may be
// near full (the LRU can evict a little before it is), at most once a
// second but for the final count.
func (t *Tracer) evictions(final bool) (uint64, error) {
	added, err := t.sumPerCPU(t.maps.SockCounts, 0)
	if err != nil {
		return 0, err
	}
	removed, err := t.sumPerCPU(t.maps.SockCounts, 1)
	if err != nil {
		return 0, err
	}
	if added <= removed || added-removed < uint64(t.socksMax)/2 || (!final && time.Since(t.lastSockCount) < time.Second) {
		return 0, nil
	}
	t.lastSockCount = time.Now()
	live, err := t.socketTableLen()
	if err != nil {
		return 0, err
	}
	// Entries added while counting make this an undercount, never more.
	if added-removed <= live {
		return 0, nil
	}
	return added - removed - live, nil
}

// socketTableLen counts the socket table's entries, a syscall each (at
// most the table's size: a key deleted while walking restarts the walk).
func (t *Tracer) socketTableLen() (uint64, error) {
	var key, next, n uint64
	err := t.maps.Socks.NextKey(nil, &next)
	for ; err == nil && n < uint64(t.socksMax); err = t.maps.Socks.NextKey(&key, &next) {
		n++
		key = next
	}
	if err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
		return 0, err
	}
	return n, nil
}

// kprobeMisses counts the kprobe hits that did not run their program: a
// kretprobe without a free instance, a kprobe inside another (the kernel
// tells since 6.7). Read before the links close, kept after.
func (t *Tracer) kprobeMisses() uint64 {
	var n uint64
	for _, l := range t.kprobes {
		info, err := l.Info()
		if err != nil {
			return t.kprobeMissed
		}
		if pe := info.PerfEvent(); pe != nil && pe.Kprobe() != nil {
			n += pe.Kprobe().Missed
		}
	}
	t.kprobeMissed = max(t.kprobeMissed, n)
	return t.kprobeMissed
}

func (t *Tracer) detach() {
	t.kprobeMisses()
	t.kprobes = nil
	for _, l := range t.links {
		l.Close()
	}
	t.links = nil
}

// Close detaches and frees everything. It is safe to call more than once.
func (t *Tracer) Close() error {
	t.detach()
	if t.rd != nil {
		t.rd.Close()
		t.rd = nil
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
