// SPDX-License-Identifier: Apache-2.0

package dns

import (
	"fmt"
	"net/netip"
	"runtime"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/dns/dnsmessage"

	"github.com/conntrace/conntrace/tracer/event"
)

// message builds a DNS message: a query for name and qtype, or its answer
// with records rrs (each "A 1.2.3.4", "AAAA ::1", "CNAME x.", of owner
// name unless "owner=..." comes first).
func message(t testing.TB, id uint16, response bool, rcode dnsmessage.RCode, name string, qtype dnsmessage.Type, rrs ...string) []byte {
	t.Helper()
	b := dnsmessage.NewBuilder(nil, dnsmessage.Header{ID: id, Response: response, RCode: rcode})
	b.EnableCompression()
	must := func(err error) {
		if err != nil {
			t.Fatal(err)
		}
	}
	must(b.StartQuestions())
	must(b.Question(dnsmessage.Question{Name: dnsmessage.MustNewName(name), Type: qtype, Class: dnsmessage.ClassINET}))
	must(b.StartAnswers())
	for _, rr := range rrs {
		owner := name
		if o, rest, ok := strings.Cut(rr, " "); ok && strings.HasPrefix(o, "owner=") {
			owner, rr = strings.TrimPrefix(o, "owner="), rest
		}
		kind, value, _ := strings.Cut(rr, " ")
		h := dnsmessage.ResourceHeader{Name: dnsmessage.MustNewName(owner), Class: dnsmessage.ClassINET, TTL: 300}
		switch kind {
		case "A":
			must(b.AResource(h, dnsmessage.AResource{A: netip.MustParseAddr(value).As4()}))
		case "AAAA":
			must(b.AAAAResource(h, dnsmessage.AAAAResource{AAAA: netip.MustParseAddr(value).As16()}))
		case "CNAME":
			must(b.CNAMEResource(h, dnsmessage.CNAMEResource{CNAME: dnsmessage.MustNewName(value)}))
		case "TXT":
			must(b.TXTResource(h, dnsmessage.TXTResource{TXT: []string{value}}))
		}
	}
	msg, err := b.Finish()
	must(err)
	return msg
}

func TestParse(t *testing.T) {
	var m Message
	msg := message(t, 7, true, dnsmessage.RCodeSuccess, "www.test.example.", dnsmessage.TypeA,
		"CNAME api.test.example.", "owner=api.test.example. A 198.18.0.10", "owner=other.example. A 198.18.0.99",
		"owner=api.test.example. TXT hello", "owner=api.test.example. A 198.18.0.11")
	if err := m.Parse(msg); err != nil {
		t.Fatal(err)
	}
	if m.ID != 7 || !m.Response || string(m.Name) != "www.test.example." || m.QType != 1 || m.Partial ||
		len(m.CNAMEs) != 1 || string(m.CNAMEs[0]) != "api.test.example." || m.AnswerCount != 2 ||
		len(m.Answers) != 2 || m.Answers[0].Addr != netip.MustParseAddr("198.18.0.10") || m.Answers[1].Addr != netip.MustParseAddr("198.18.0.11") ||
		m.Answers[0].TTL != 300 {
		t.Errorf("parsed %+v", m)
	}
	// Cut short in the answers: what came before, and Partial.
	if err := m.Parse(msg[:len(msg)-6]); err != nil || !m.Partial || m.AnswerCount != 1 {
		t.Errorf("cut: %v %+v", err, m)
	}
	// No allocation once the buffers have grown.
	if n := testing.AllocsPerRun(100, func() { m.Parse(msg) }); n != 0 {
		t.Errorf("Parse allocates %v times", n)
	}
	for what, bad := range map[string][]byte{
		"empty":       nil,
		"header only": msg[:12],
		"no question": message(t, 1, true, 0, "x.", 1)[:12],
	} {
		if err := m.Parse(bad); err == nil {
			t.Errorf("%s: no error", what)
		}
	}
}

// TestParseHostile: messages a hostile server may send are parsed or
// refused, never a hang: a compression pointer to itself, a label past
// the end, a name of escape bytes, a flood of answers.
func TestParseHostile(t *testing.T) {
	var m Message
	hdr := []byte{0, 1, 0x81, 0x80, 0, 1, 0, 1, 0, 0, 0, 0} // response, 1 question, 1 answer
	loop := append(append([]byte{}, hdr...), 0xc0, 12, 0, 1, 0, 1)
	if err := m.Parse(loop); err == nil {
		t.Error("compression loop in the question: no error")
	}
	past := append(append([]byte{}, hdr...), 63, 'a', 'b')
	if err := m.Parse(past); err == nil {
		t.Error("label past the end: no error")
	}
	// A question "a." then an answer whose name points at itself.
	selfAns := append(append([]byte{}, hdr...), 1, 'a', 0, 0, 1, 0, 1, 0xc0, 19, 0, 1, 0, 1, 0, 0, 0, 1, 0, 4, 1, 2, 3, 4)
	if err := m.Parse(selfAns); err != nil || !m.Partial || m.AnswerCount != 0 {
		t.Errorf("answer pointing at itself: %v %+v", err, m)
	}
	// Escape bytes in a label are the name's bytes: escaping is output's.
	esc := append(append([]byte{}, hdr[:7]...), 0, 0, 0, 0, 0, 5, 0x1b, ']', '0', ';', 7, 0, 0, 1, 0, 1)
	if err := m.Parse(esc); err != nil || string(m.Name) != "\x1b]0;\x07." {
		t.Errorf("escapes: %v %q", err, m.Name)
	}
	rrs := make([]string, 100)
	for i := range rrs {
		rrs[i] = "A 198.18.0.1"
	}
	if err := m.Parse(message(t, 1, true, 0, "many.example.", dnsmessage.TypeA, rrs...)); err != nil ||
		m.AnswerCount != 100 || len(m.Answers) != event.MaxDNSAnswers {
		t.Errorf("100 answers: %v, %d counted, %d kept", err, m.AnswerCount, len(m.Answers))
	}
}

func queryEvent(netns uint32, server string) *event.Event {
	return &event.Event{Type: event.DNS, NetNS: netns, PID: 42, RAddr: netip.MustParseAddr(server), RPort: 53}
}

func TestLookups(t *testing.T) {
	const s = uint64(time.Second)
	ls := NewLookups(5*time.Second, 3)
	var q, a Message
	parse := func(m *Message, msg []byte) *Message {
		if err := m.Parse(msg); err != nil {
			t.Fatal(err)
		}
		return m
	}
	ev := queryEvent(1, "198.18.0.2")
	ls.Query(ev, 10*s, 100, parse(&q, message(t, 1, false, 0, "a.example.", dnsmessage.TypeA)), true)
	ls.Query(ev, 10*s, 100, parse(&q, message(t, 2, false, 0, "b.example.", dnsmessage.TypeA)), true)
	// Another namespace's socket with the same cookie and id is another query.
	ls.Query(queryEvent(2, "198.18.0.2"), 11*s, 100, parse(&q, message(t, 1, false, 0, "a.example.", dnsmessage.TypeA)), true)
	ls.Query(ev, 11*s, 101, parse(&q, message(t, 3, false, 0, "c.example.", dnsmessage.TypeA)), true) // over max
	if ls.InFlight() != 3 || ls.Overflow != 1 {
		t.Fatalf("in flight %d, overflow %d", ls.InFlight(), ls.Overflow)
	}
	// An answer that is not the question's: not paired.
	l, paired, _ := ls.Answer(ev, 10*s+1000, 100, parse(&a, message(t, 1, true, 0, "evil.example.", dnsmessage.TypeA, "A 6.6.6.6")))
	if paired || l.Latency != 0 || string(l.Name) != "evil.example." || ls.InFlight() != 3 {
		t.Errorf("spoofed answer paired: %+v", l)
	}
	ls.Release(l)
	l, paired, hidden := ls.Answer(ev, 10*s+2000, 100, parse(&a, message(t, 1, true, 0, "A.Example.", dnsmessage.TypeA, "A 198.18.0.10")))
	if !paired || hidden || l.Latency != 2000 || l.Outcome != event.Answered || len(l.Answers) != 1 || ls.InFlight() != 2 {
		t.Errorf("answer: %+v", l)
	}
	ls.Release(l)
	var out event.Event
	if _, ok := ls.Expired(14*s, &out); ok {
		t.Error("expired before its time")
	}
	at, ok := ls.Expired(15*s, &out)
	if !ok || at != 15*s || out.DNS.Outcome != event.TimedOut || string(out.DNS.Name) != "b.example." || out.PID != 42 || out.DNS.Latency != 5*time.Second {
		t.Fatalf("timeout: %v %d %+v", ok, at, out.DNS)
	}
	ls.Release(out.DNS)
	// Sent again before an answer: the first one timed out then.
	ev2 := queryEvent(2, "198.18.0.2")
	ls.Query(ev2, 12*s, 100, parse(&q, message(t, 1, false, 0, "a.example.", dnsmessage.TypeA)), true)
	at, ok = ls.Expired(12*s, &out)
	if !ok || at != 16*s || out.DNS.Outcome != event.TimedOut || out.NetNS != 2 {
		t.Fatalf("sent again: %v %d %+v", ok, at, out)
	}
	ls.Release(out.DNS)
	at, ok = ls.Unanswered(&out)
	if !ok || at != 12*s || out.DNS.Outcome != event.Unanswered || out.DNS.Latency != 0 {
		t.Fatalf("unanswered at the end: %v %d %+v", ok, at, out.DNS)
	}
	ls.Release(out.DNS)
	if _, ok := ls.Unanswered(&out); ok || ls.InFlight() != 0 {
		t.Errorf("left in flight: %d", ls.InFlight())
	}
	// A query the filters leave out: its answer is paired (it names) but
	// hidden; its timeout is not reported.
	ls.Query(ev, 20*s, 102, parse(&q, message(t, 5, false, 0, "e.example.", dnsmessage.TypeA)), false)
	l, paired, hidden = ls.Answer(ev, 20*s+5, 102, parse(&a, message(t, 5, true, 0, "e.example.", dnsmessage.TypeA, "A 198.18.0.11")))
	if !paired || !hidden {
		t.Errorf("hidden query's answer: paired %v, hidden %v", paired, hidden)
	}
	ls.Release(l)
	ls.Query(ev, 20*s, 103, parse(&q, message(t, 6, false, 0, "f.example.", dnsmessage.TypeA)), false)
	if _, ok := ls.Expired(30*s, &out); ok || ls.Waiting() != 0 {
		t.Errorf("a hidden query's timeout reported, or kept (%d waiting)", ls.Waiting())
	}
	// Flights are reused, and a reused one's old place in the order is
	// not taken for it.
	ls.Query(ev, 20*s, 100, parse(&q, message(t, 9, false, 0, "d.example.", dnsmessage.TypeA)), true)
	if _, ok := ls.Expired(24*s, &out); ok {
		t.Error("a reused flight expired by its old place")
	}
	for {
		if _, ok := ls.Unanswered(&out); !ok {
			break
		}
		ls.Release(out.DNS)
	}
	parse(&q, message(t, 1, false, 0, "a.example.", dnsmessage.TypeA))
	parse(&a, message(t, 1, true, 0, "a.example.", dnsmessage.TypeA, "A 198.18.0.10"))
	if n := testing.AllocsPerRun(100, func() {
		ls.Query(ev, 30*s, 100, &q, true)
		l, _, _ := ls.Answer(ev, 30*s+1, 100, &a)
		ls.Release(l)
	}); n != 0 || ls.InFlight() != 0 {
		t.Errorf("a lookup allocates %v times", n)
	}
}

func TestNames(t *testing.T) {
	const s = uint64(time.Second)
	n := NewNames(10)
	a := netip.MustParseAddr("198.18.0.10")
	n.Add(1, []byte("api.test.example."), []event.DNSAnswer{{Addr: a, TTL: 60}}, 100*s)
	n.Add(2, []byte("other.example."), []event.DNSAnswer{{Addr: a, TTL: 60}}, 100*s)
	if got := n.Get(1, a, 101*s); got != "api.test.example" {
		t.Errorf("netns 1: %q", got)
	}
	if got := n.Get(2, netip.AddrFrom16(a.As16()), 101*s); got != "other.example" {
		t.Errorf("netns 2, v4-mapped: %q", got)
	}
	if got := n.Get(3, a, 101*s); got != "" {
		t.Errorf("netns 3: %q", got)
	}
	expires := 100*s + 60*s + uint64(NameGrace)
	if n.Get(1, a, expires) == "" || n.Get(1, a, expires+1) != "" {
		t.Error("not expired at TTL + grace")
	}
	for i := range 20 {
		n.Add(1, []byte("many.example."), []event.DNSAnswer{{Addr: netip.AddrFrom4([4]byte{198, 18, 1, byte(i)}), TTL: 60}}, 200*s)
		if n.Len() > 10 {
			t.Fatalf("%d names, bound 10", n.Len())
		}
	}
	if n := testing.AllocsPerRun(100, func() {
		n.Add(1, []byte("many.example."), []event.DNSAnswer{{Addr: netip.AddrFrom4([4]byte{198, 18, 1, 19}), TTL: 60}}, 200*s)
		n.Get(1, a, 200*s)
	}); n != 0 {
		t.Errorf("a known name allocates %v times", n)
	}
	// What a search list made of a name that resolved: the longest such
	// name, in the same namespace, within ResolvedFor, in any case.
	n.Add(1, []byte("API.example.com."), []event.DNSAnswer{{Addr: a, TTL: 60}}, 300*s)
	for _, c := range []struct {
		netns uint32
		name  string
		at    uint64
		want  string
	}{
		{1, "api.example.com.ns.svc.cluster.local.", 301 * s, "api.example.com."},
		{1, "Api.Example.Com.corp.example.", 301 * s, "Api.Example.Com."},
		{1, "api.example.com.", 301 * s, ""},
		{1, "www.example.com.corp.example.", 301 * s, ""},
		{2, "api.example.com.corp.example.", 301 * s, ""},
		{1, "api.example.com.corp.example.", 300*s + uint64(ResolvedFor) + 1, ""},
	} {
		if got := string(n.WithoutSuffix(c.netns, []byte(c.name), c.at)); got != c.want {
			t.Errorf("WithoutSuffix(%d, %q) = %q, want %q", c.netns, c.name, got, c.want)
		}
	}
}

func FuzzParse(f *testing.F) {
	f.Add(message(f, 7, true, 0, "www.test.example.", dnsmessage.TypeA, "CNAME api.test.example.", "owner=api.test.example. A 198.18.0.10"))
	f.Add(message(f, 8, false, 0, "x.example.", dnsmessage.TypeAAAA))
	f.Add([]byte{0, 1, 0x81, 0x80, 0, 1, 0, 1, 0, 0, 0, 0, 0xc0, 12, 0, 1, 0, 1})
	f.Fuzz(func(t *testing.T, msg []byte) {
		var m Message
		if err := m.Parse(msg); err != nil {
			return
		}
		if len(m.Answers) > event.MaxDNSAnswers || len(m.CNAMEs) > MaxCNAMEs || len(m.Name) > 255 {
			t.Fatalf("unbounded: %d answers, %d cnames, name of %d", len(m.Answers), len(m.CNAMEs), len(m.Name))
		}
	})
}

// TestNamesMemory measures the cache full: DefaultMaxNames addresses
// (IPv4 and IPv6, a name for every 4), the heap it holds.
func TestNamesMemory(t *testing.T) {
	if testing.Short() {
		t.Skip("measures the heap")
	}
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	n := NewNames(DefaultMaxNames)
	for i := range DefaultMaxNames / 4 {
		name := []byte(fmt.Sprintf("host-%d.service.namespace.svc.cluster.local.", i))
		var answers []event.DNSAnswer
		for j := range 2 {
			answers = append(answers, event.DNSAnswer{Addr: netip.AddrFrom4([4]byte{10, byte(j), byte(i >> 8), byte(i)}), TTL: 30},
				event.DNSAnswer{Addr: netip.AddrFrom16([16]byte{0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, byte(j), 0, byte(i >> 16), byte(i >> 8), byte(i)}), TTL: 30})
		}
		n.Add(uint32(i%8), name, answers, 1)
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	if n.Len() != DefaultMaxNames {
		t.Fatalf("%d names", n.Len())
	}
	mb := float64(after.HeapAlloc-before.HeapAlloc) / (1 << 20)
	t.Logf("%d addresses: %.1f MB of heap", n.Len(), mb)
	runtime.KeepAlive(n)
	if mb > 12 {
		t.Errorf("%.1f MB for %d addresses: more than the 10.1 MB measured (names.go, README)", mb, n.Len())
	}
	// The names that resolved, full: as many names of one address each.
	runtime.GC()
	runtime.ReadMemStats(&before)
	n = NewNames(DefaultMaxNames)
	for i := range maxResolved {
		n.Add(uint32(i%8), []byte(fmt.Sprintf("host-%d.service.namespace.svc.cluster.local.", i)),
			[]event.DNSAnswer{{Addr: netip.AddrFrom4([4]byte{10, 0, byte(i >> 8), byte(i)}), TTL: 30}}, 1)
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	mb = float64(after.HeapAlloc-before.HeapAlloc) / (1 << 20)
	t.Logf("%d names resolved, one address each: %.1f MB of heap", n.nResolved, mb)
	runtime.KeepAlive(n)
	if n.nResolved != maxResolved || mb > 6 {
		t.Errorf("%.1f MB for %d names resolved: more than the 4.6 MB measured (README)", mb, n.nResolved)
	}
}

func TestFilter(t *testing.T) {
	f, err := NewFilter([]string{"api.example.com.", "*.Test.Example"})
	if err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]bool{
		"api.example.com": true, "API.Example.Com.": true, "x.api.example.com": false, "example.com": false,
		"www.test.example": true, "a.b.test.example.": true, "test.example": false, "xtest.example": false, "": false,
	} {
		if got := f.Match([]byte(name)); got != want {
			t.Errorf("%q: %v, want %v", name, got, want)
		}
	}
	for _, bad := range []string{"", "*", "*.", "a..b", "a b.example", "\x1b.example", "*.*.example", strings.Repeat("a", 64) + ".example"} {
		if _, err := NewFilter([]string{bad}); err == nil {
			t.Errorf("%q: no error", bad)
		}
	}
	if n := testing.AllocsPerRun(100, func() { f.Match([]byte("www.test.example.")) }); n != 0 {
		t.Errorf("Match allocates %v times", n)
	}
}

// TestStreams: DNS over TCP split into messages, whatever the segments'
// boundaries: two messages in one segment, one over three segments (its
// rest skipped), a segment of which only the start was copied, a gap in
// the middle of a message, a length cut in two.
func TestStreams(t *testing.T) {
	frame := func(msgs ...string) []byte {
		var b []byte
		for _, m := range msgs {
			b = append(b, byte(len(m)>>8), byte(len(m)))
			b = append(b, m...)
		}
		return b
	}
	type got struct {
		msg string
		cut bool
	}
	s := NewStreams()
	split := func(sock uint64, out bool, seg []byte, total int, gap bool) ([]got, int) {
		var gs []got
		n := s.Split(sock, out, seg, total, gap, func(msg []byte, cut bool) { gs = append(gs, got{string(msg), cut}) })
		return gs, n
	}
	check := func(what string, gs []got, n int, wantN int, want ...got) {
		t.Helper()
		if fmt.Sprint(gs) != fmt.Sprint(want) || n != wantN {
			t.Errorf("%s: got %v (%d unfollowed), want %v (%d)", what, gs, n, want, wantN)
		}
	}
	two := frame("query-a", "query-aaaa")
	gs, n := split(1, true, two, len(two), false)
	check("two in one", gs, n, 0, got{"query-a", false}, got{"query-aaaa", false})

	long := frame(strings.Repeat("x", 3000))
	gs, n = split(1, false, long[:1000], 1000, false)
	check("first of three", gs, n, 0, got{strings.Repeat("x", 998), true})
	gs, n = split(1, false, long[1000:2000], 1000, false)
	check("second of three", gs, n, 0)
	// The third segment ends the message and holds the next one whole;
	// the other direction is its own stream.
	third := append(append([]byte(nil), long[2000:]...), frame("next")...)
	gs, n = split(1, true, frame("q"), 3, false)
	check("the other way", gs, n, 0, got{"q", false})
	gs, n = split(1, false, third, len(third), false)
	check("third of three", gs, n, 0, got{"next", false})

	// Only the first 100 bytes of a 1,400-byte segment copied: the
	// message is cut, the next length unknown.
	seg := frame(strings.Repeat("y", 700), strings.Repeat("z", 694))
	gs, n = split(2, false, seg[:100], len(seg), false)
	check("copied in part", gs, n, 1, got{strings.Repeat("y", 98), true})

	// A gap inside a message: the segment is not read; at a message's
	// start, it is.
	gs, n = split(3, false, long[:1000], 1000, false)
	check("before the gap", gs, n, 0, got{strings.Repeat("x", 998), true})
	gs, n = split(3, false, long[2000:2500], 500, true)
	check("the gap", gs, n, 1)
	gs, n = split(3, false, frame("fresh"), 7, true)
	check("a gap at a message's start", gs, n, 0, got{"fresh", false})

	// A length cut in two.
	cut := append(frame("ab"), 0)
	gs, n = split(4, false, cut, len(cut), false)
	check("a length cut in two", gs, n, 1, got{"ab", false})
	if len(s.rest) != 0 {
		t.Errorf("streams left in the middle of a message: %v", s.rest)
	}
}
