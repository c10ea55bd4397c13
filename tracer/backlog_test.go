// SPDX-License-Identifier: Apache-2.0

package tracer

import (
	"net/netip"
	"testing"
	"time"

	"github.com/conntrace/conntrace/tracer/internal/bpfobj"
)

type recordingSink struct{ evs []Event }

func (s *recordingSink) Write(ev *Event) error { s.evs = append(s.evs, *ev); return nil }
func (s *recordingSink) Flush() error          { return nil }

// TestBacklogKeepsOrder: the events after a bind_fail whose holder lookup
// runs are held back, not written before it, and come out in order,
// holders filled, once it is done; the reader meanwhile never waits.
func TestBacklogKeepsOrder(t *testing.T) {
	tr := &Tracer{clock: NewClock(), holders: newHolderLookups(func() {}), lookupWait: DefaultLookupWait}
	lookup := &holderLookup{done: make(chan struct{})}
	tr.holders.byKey[holderKey{netns: 7, proto: ProtoTCP, addr: netip.MustParseAddr("127.0.0.1"), port: 8080}] = lookup
	sink := &recordingSink{}
	closeRec := func(id uint64) []byte {
		return record(bpfobj.ConntraceCloseRecord{Head: bpfobj.ConntraceRecordHead{ConnId: id, Kind: uint8(EventClose), Family: 2, Proto: 6, Comm: comm16("curl")}})
	}
	deliver := func(raw []byte) {
		t.Helper()
		if err := tr.deliver(raw, sink); err != nil {
			t.Fatal(err)
		}
	}
	deliver(closeRec(1))
	deliver(record(bpfobj.ConntraceBindFailRecord{Head: bpfobj.ConntraceRecordHead{Kind: uint8(EventBindFail), Family: 2, Proto: 6, Netns: 7,
		Saddr: [16]uint8{127, 0, 0, 1}, Sport: 8080, Comm: comm16("nginx")}, Error: 98}))
	const behind = 300 // more than the backlog's first size
	for id := range uint64(behind) {
		deliver(closeRec(2 + id))
	}
	if len(sink.evs) != 1 || tr.stats.Events != 1 {
		t.Fatalf("%d events written while the lookup runs, want only the one before it", len(sink.evs))
	}
	lookup.holders = []Holder{{State: "LISTEN", LPort: 8080}}
	close(lookup.done)
	if err := tr.release(sink, false); err != nil {
		t.Fatal(err)
	}
	if len(sink.evs) != 2+behind || !tr.backlog.empty() {
		t.Fatalf("%d events written, want %d", len(sink.evs), 2+behind)
	}
	if ev := sink.evs[1]; ev.Type != EventBindFail || len(ev.Holders) != 1 || ev.HoldersError != "" {
		t.Errorf("second event %+v, want the bind_fail with its holder", ev)
	}
	for i, ev := range sink.evs[2:] {
		if ev.Type != EventClose || ev.ConnID != uint64(2+i) {
			t.Fatalf("event %d: %s conn %d, want close conn %d", 2+i, ev.Type, ev.ConnID, 2+i)
		}
	}
	// With nothing held back, events go straight through again.
	deliver(closeRec(999))
	if len(sink.evs) != 3+behind {
		t.Errorf("an event with nothing held back was not written at once")
	}
}

// TestHolderLookupsShareAnswers: failures with the same key while a
// lookup runs, or just after, get its answer; another key gets its own.
func TestHolderLookupsShareAnswers(t *testing.T) {
	h := newHolderLookups(func() {})
	a := &Event{NetNS: 1, Proto: ProtoTCP, LAddr: netip.MustParseAddr("127.0.0.1"), LPort: 1}
	running := &holderLookup{done: make(chan struct{})}
	h.byKey[holderKey{netns: 1, proto: ProtoTCP, addr: a.LAddr, port: 1}] = running
	if h.start(holdersOf(a), 0) != running {
		t.Error("a running lookup for the same key was not shared")
	}
	close(running.done)
	running.ended = running.ended.Add(-holderCacheFor) // long done
	fresh := h.start(holdersOf(a), 0)
	if fresh == running {
		t.Fatal("an expired answer was given again")
	}
	<-fresh.done // a real lookup, in a namespace that is no process's
	if fresh.err == nil || fresh.holders == nil {
		t.Errorf("lookup in netns 1: holders %v, error %v; want an empty list and an error", fresh.holders, fresh.err)
	}
	if h.start(holdersOf(a), 0) != fresh {
		t.Error("a fresh answer was not given again")
	}
	b := *a
	b.LPort = 2
	if h.start(holdersOf(&b), 0) == fresh {
		t.Error("another port got the same answer")
	}
	h.wait()
}

// TestListenerLookupsBounded: refused connects to many ports (a port
// scan) start at most holderLookupsAtOnce listener lookups; the rest go
// without one, so the reader never waits on them, and a port whose
// lookup runs still shares it.
func TestListenerLookupsBounded(t *testing.T) {
	h := newHolderLookups(func() {})
	h.listening = holderLookupsAtOnce // as if that many were under way
	ev := &Event{Type: EventConnectFail, Errno: 111, NetNS: 1, Proto: ProtoTCP, RAddr: netip.MustParseAddr("192.0.2.1"), RPort: 1}
	if l := h.start(listenersOf(ev), 0); l != nil {
		t.Errorf("a listener lookup past the bound: %+v", l)
	}
	running := &holderLookup{done: make(chan struct{})}
	h.byKey[holderKey{kind: lookListeners, netns: 1, proto: ProtoTCP, addr: ev.RAddr, port: 1}] = running
	if h.start(listenersOf(ev), 0) != running {
		t.Error("a running listener lookup for the same key was not shared")
	}
	h.listening = 0
	ev.RPort = 2
	l := h.start(listenersOf(ev), 0)
	if l == nil {
		t.Fatal("no listener lookup under the bound")
	}
	<-l.done // 192.0.2.1 is no namespace's here: not looked up
	if l.holders != nil || l.netns != 0 || l.err != nil || h.listening != 0 {
		t.Errorf("lookup of a remote address: %+v, %d under way", l, h.listening)
	}
	h.wait()
}

// TestBacklogWaitBounded: a lookup that does not finish holds the stream
// back Config.LookupWait at most; its event then goes out saying so, and the
// events behind it follow in order. A full backlog gives up at once.
func TestBacklogWaitBounded(t *testing.T) {
	tr := &Tracer{clock: NewClock(), holders: newHolderLookups(func() {}), lookupWait: DefaultLookupWait}
	stuck := &holderLookup{done: make(chan struct{})}
	tr.holders.byKey[holderKey{netns: 7, proto: ProtoTCP, addr: netip.MustParseAddr("127.0.0.1"), port: 8080}] = stuck
	sink := &recordingSink{}
	bindFail := record(bpfobj.ConntraceBindFailRecord{Head: bpfobj.ConntraceRecordHead{Kind: uint8(EventBindFail), Family: 2, Proto: 6, Netns: 7,
		Saddr: [16]uint8{127, 0, 0, 1}, Sport: 8080, Comm: comm16("nginx")}, Error: 98})
	closeRec := func(id uint64) []byte {
		return record(bpfobj.ConntraceCloseRecord{Head: bpfobj.ConntraceRecordHead{ConnId: id, Kind: uint8(EventClose), Family: 2, Proto: 6, Comm: comm16("curl")}})
	}
	if err := tr.deliver(bindFail, sink); err != nil {
		t.Fatal(err)
	}
	if err := tr.deliver(closeRec(1), sink); err != nil {
		t.Fatal(err)
	}
	if len(sink.evs) != 0 {
		t.Fatalf("%d events written while the lookup runs", len(sink.evs))
	}
	tr.backlog.front().heldAt = time.Now().Add(-DefaultLookupWait) // its time is up
	if err := tr.release(sink, false); err != nil {
		t.Fatal(err)
	}
	if len(sink.evs) != 2 || !tr.backlog.empty() {
		t.Fatalf("%d events written after the bound, want 2", len(sink.evs))
	}
	if ev := sink.evs[0]; ev.Type != EventBindFail || ev.HoldersError != "the lookup took longer than 500ms" || len(ev.Holders) != 0 {
		t.Errorf("late bind_fail: %+v", ev)
	}

	// A full backlog: the oldest goes out at once, and those behind it
	// (with no lookups of their own) follow.
	if err := tr.deliver(bindFail, sink); err != nil {
		t.Fatal(err)
	}
	// Only the full backlog may let it go (filling it takes seconds in
	// an emulated VM, past the time bound).
	tr.backlog.front().heldAt = time.Now().Add(time.Hour)
	for id := range uint64(backlogMax) {
		if err := tr.deliver(closeRec(2+id), sink); err != nil {
			t.Fatal(err)
		}
	}
	if len(sink.evs) != 3+backlogMax || !tr.backlog.empty() {
		t.Fatalf("%d events written, %d held; want all %d written", len(sink.evs), tr.backlog.size, 3+backlogMax)
	}
	if ev := sink.evs[2]; ev.HoldersError != "the lookup was still running when 65536 events waited behind it" {
		t.Errorf("bind_fail behind a full backlog: %q", ev.HoldersError)
	}
}
