// SPDX-License-Identifier: Apache-2.0

package tracer

import (
	"testing"
	"time"
	"unsafe"

	"golang.org/x/net/dns/dnsmessage"

	"github.com/conntrace/conntrace/tracer/containers"
	"github.com/conntrace/conntrace/tracer/internal/bpfobj"
)

// discardSink writes nothing: what the reader costs alone.
type discardSink struct{ n int }

func (s *discardSink) Write(*Event) error { s.n++; return nil }
func (s *discardSink) Flush() error       { return nil }

// knownCgroups has every process's cgroup cached (none): no event waits.
type knownCgroups struct{}

func (knownCgroups) Cached(uint64) (*containers.Cgroup, bool) { return nil, true }
func (knownCgroups) Resolve(uint64) *containers.Cgroup        { return nil }

// dnsRecord is a dns record of a message over UDP, as the kernel writes
// it: out, a query going out; else its answer coming in.
func dnsRecord(tb testing.TB, ts uint64, msg []byte, out bool) []byte {
	dir := DirIn
	if out {
		dir = DirOut
	}
	head := bpfobj.ConntraceDnsRecord{Head: bpfobj.ConntraceRecordHead{TsNs: ts, ConnId: 1, Pid: 4242, Netns: 4026531840,
		Saddr: [16]uint8{198, 18, 5, 1}, Daddr: [16]uint8{198, 18, 5, 2}, Sport: 40000, Dport: 53,
		Kind: uint8(EventDNS), Family: 2, Direction: uint8(dir), Proto: 17, Comm: comm16("dnsperf")},
		Sock: 77, Len: uint32(len(msg)), Shown: 1}
	// Its head's bytes, then the message: the record is no longer than
	// what it uses, as in the ring.
	b := append(unsafe.Slice((*byte)(unsafe.Pointer(&head)), dnsHead), msg...)
	(*bpfobj.ConntraceRecordHead)(unsafe.Pointer(&b[0])).Size = uint16(len(b))
	return b
}

// dnsMessage is a query of id for host7.bench.example A, or its answer.
func dnsMessage(tb testing.TB, id uint16, answer bool) []byte {
	b := dnsmessage.NewBuilder(nil, dnsmessage.Header{ID: id, Response: answer, RecursionDesired: true, RecursionAvailable: answer})
	b.EnableCompression()
	name := dnsmessage.MustNewName("host7.bench.example.")
	err := b.StartQuestions()
	if err == nil {
		err = b.Question(dnsmessage.Question{Name: name, Type: dnsmessage.TypeA, Class: dnsmessage.ClassINET})
	}
	if err == nil && answer {
		if err = b.StartAnswers(); err == nil {
			err = b.AResource(dnsmessage.ResourceHeader{Name: name, Class: dnsmessage.ClassINET, TTL: 300}, dnsmessage.AResource{A: [4]byte{198, 18, 6, 7}})
		}
	}
	msg, err2 := b.Finish()
	if err != nil || err2 != nil {
		tb.Fatal(err, err2)
	}
	return msg
}

// BenchmarkDNSLookup: a query and its answer through the reader, to the
// lookup's event (written to a sink that keeps nothing): what each
// lookup costs the reader beside the output's formatting.
func BenchmarkDNSLookup(b *testing.B) {
	benchDNSLookup(b, true)
}

// BenchmarkDNSLookupHidden: the same, its lookup left out by the filters
// (its answer still names the address).
func BenchmarkDNSLookupHidden(b *testing.B) {
	benchDNSLookup(b, false)
}

func benchDNSLookup(b *testing.B, shown bool) {
	t := &Tracer{clock: NewClock(), holders: newHolderLookups(func() {}), lookupWait: DefaultLookupWait, dns: newDNSReader(5 * time.Second)}
	t.cgLookup = newCgroupLookups(knownCgroups{}, func() {})
	// Ids cycle as dnsperf's do; each pair is a fresh record of both.
	const ids = 64
	var queries, answers [ids][]byte
	for i := range ids {
		queries[i] = dnsRecord(b, 0, dnsMessage(b, uint16(i), false), true)
		answers[i] = dnsRecord(b, 0, dnsMessage(b, uint16(i), true), false)
		if !shown {
			(*bpfobj.ConntraceDnsRecord)(unsafe.Pointer(&queries[i][0])).Shown = 0
			(*bpfobj.ConntraceDnsRecord)(unsafe.Pointer(&answers[i][0])).Shown = 0
		}
	}
	sink := &discardSink{}
	ts := uint64(1_000_000_000)
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		q, a := queries[i%ids], answers[i%ids]
		i++
		ts += 1000
		(*bpfobj.ConntraceRecordHead)(unsafe.Pointer(&q[0])).TsNs = ts
		(*bpfobj.ConntraceRecordHead)(unsafe.Pointer(&a[0])).TsNs = ts + 500
		if err := t.deliver(q, sink); err != nil {
			b.Fatal(err)
		}
		if err := t.deliver(a, sink); err != nil {
			b.Fatal(err)
		}
	}
	if want := 0; shown {
		want = i
		if sink.n != want {
			b.Fatalf("%d lookups written, want %d", sink.n, want)
		}
	} else if sink.n != want {
		b.Fatalf("%d lookups written, want none", sink.n)
	}
}
