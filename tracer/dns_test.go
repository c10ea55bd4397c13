// SPDX-License-Identifier: Apache-2.0

package tracer_test

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/conntrace/conntrace/tracer"
	"golang.org/x/net/dns/dnsmessage"

	"github.com/conntrace/conntrace/tracer/event"
	"github.com/conntrace/conntrace/tracer/output"
	"github.com/conntrace/conntrace/tracer/testnet"
)

// dnsNet is testnet.DNSNet: dnsmasq serves test.example (newDNSNet: api,
// and www its CNAME, at 198.18.0.10, TTL 300).
type dnsNet struct {
	cli, srv *testnet.NS
	service  *testnet.Proc
}

const dnsService = testnet.DNSService

func newDNSNet(t *testing.T) *dnsNet {
	return newDNSNetOf(t, "--host-record=api.test.example,198.18.0.10", "--cname=www.test.example,api.test.example")
}

// newDNSNetOf is a dnsNet whose zone has records instead.
func newDNSNetOf(t *testing.T, records ...string) *dnsNet {
	d := testnet.NewDNSNet(t, records...)
	return &dnsNet{cli: d.Cli, srv: d.Srv, service: d.Service}
}

// goLookup resolves name with Go's own resolver in the client namespace,
// asking server, and connects to the service's port at the address
// when it resolves (want: the address, or "" for a failure).
func (n *dnsNet) goLookup(t *testing.T, comm, server, name, want string) *testnet.Proc {
	t.Helper()
	p := n.startLookup(t, comm, server, name, want)
	n.endLookup(t, p, want)
	return p
}

// startLookup starts goLookup's process; endLookup waits for its end.
func (n *dnsNet) startLookup(t *testing.T, comm, server, name, want string) *testnet.Proc {
	t.Helper()
	p := testnet.Start(t, comm, testnet.Role{NS: n.cli.Path(), DNS: server + ":53", Addr: fmt.Sprintf("%s:%d", name, dnsService),
		Send: 4, Recv: 4, MayFail: want == "", Timeout: 2 * time.Second})
	p.Expect(t, "ready")
	return p
}

func (n *dnsNet) endLookup(t *testing.T, p *testnet.Proc, want string) {
	t.Helper()
	if want == "" {
		p.Expect(t, "failed")
		p.Wait(t)
		return
	}
	if got := p.Expect(t, "resolved"); got != want {
		t.Fatalf("resolved %q, want %q", got, want)
	}
	p.Expect(t, "connected")
	p.Wait(t)
}

// TestDNS: real lookups from a client namespace to Debian's dnsmasq in a
// server namespace, by glibc (getent: A and AAAA in parallel on one
// socket) and Go's own resolver: one dns event per query with its
// process, server, name, type, outcome and answers; the connection that
// follows carries the name it was resolved from; NXDOMAIN, REFUSED, a
// timeout (a server address nobody has; one whose answer a rule here
// drops), a refusal (a host with no server: ICMP port unreachable, at
// once, not a timeout) and a query a rule here drops (EPERM) are told as
// such. One tracer for every case, with only DNS events and connections
// asked for: the refusal's connect_fail, not asked for, still ends its
// lookup.
func TestDNS(t *testing.T) {
	n := newDNSNet(t)
	events, err := tracer.ParseEvents("dns,connect,close")
	if err != nil {
		t.Fatal(err)
	}
	s := startTracer(t, tracer.Config{Ports: []uint16{53, dnsService}, Events: events, DNSTimeout: 1500 * time.Millisecond})
	// Rules in the client's namespace drop what 198.18.0.4 answers, and
	// every query to 198.18.0.5.
	n.cli.Firewall(t, testnet.Firewall{UDP: true, SPort: 53, From: netip.MustParseAddr("198.18.0.4")})
	n.cli.Firewall(t, testnet.Firewall{UDP: true, Output: true, DPort: 53, To: netip.MustParseAddr("198.18.0.5")})
	// The ones that wait for nothing, meanwhile the others.
	silent := n.startLookup(t, "ct-dns-silent", "198.18.0.3", "api.test.example", "")
	dropped := n.startLookup(t, "ct-dns-dropped", "198.18.0.4", "api.test.example", "")
	if out, err := n.cli.Exec(t, "getent", "ahosts", "api.test.example"); err != nil || !strings.Contains(out, "198.18.0.10") {
		t.Fatalf("getent ahosts: %v\n%s", err, out)
	}
	cli := n.goLookup(t, "ct-dns-go", "198.18.0.2", "www.test.example", "198.18.0.10")
	n.goLookup(t, "ct-dns-nx", "198.18.0.2", "nope.test.example", "")
	n.goLookup(t, "ct-dns-refused", "198.18.0.2", "elsewhere.example", "")
	n.goLookup(t, "ct-dns-closed", "198.18.0.10", "api.test.example", "") // a host, no server
	n.goLookup(t, "ct-dns-blocked", "198.18.0.5", "api.test.example", "")
	n.endLookup(t, silent, "")
	n.endLookup(t, dropped, "")
	s.waitFor(t, 2, func(ev *tracer.Event) bool { return ev.Type == tracer.EventDNS && ev.DNS.Outcome == event.TimedOut })
	all := s.stop(t)

	server, nobody := netip.MustParseAddr("198.18.0.2"), netip.MustParseAddr("198.18.0.3")
	lookups := func(comm string, to netip.Addr, name, qtype string) []tracer.Event {
		var out []tracer.Event
		for _, ev := range all {
			if ev.Type == tracer.EventDNS && string(ev.CommBytes()) == comm && ev.RAddr == to && string(ev.DNS.Name) == name && ev.DNS.QTypeName() == qtype {
				out = append(out, ev)
			}
		}
		return out
	}
	check := func(what string, evs []tracer.Event, from netip.Addr, rcode string, answers ...string) {
		t.Helper()
		if len(evs) != 1 {
			t.Errorf("%s: want one dns event, got %d:\n%s", what, len(evs), dump(all))
			return
		}
		ev := evs[0]
		l := ev.DNS
		var got []string
		for _, a := range l.Answers {
			got = append(got, a.Addr.String())
		}
		if ev.RAddr != from || ev.RPort != 53 || ev.Direction != tracer.DirOut || ev.Proto != tracer.ProtoUDP || ev.NetNS != n.cli.Inode(t) || ev.PID == 0 ||
			l.RCodeName() != rcode || strings.Join(got, ",") != strings.Join(answers, ",") || l.AnswerCount != len(answers) {
			t.Errorf("%s: want %s from %s:53 with %v, got:\n%s", what, rcode, from, answers, dump(evs))
		}
		if rcode == "NOERROR" && len(answers) > 0 && (l.Latency <= 0 || l.Latency > time.Second || l.Answers[0].TTL != 300) {
			t.Errorf("%s: want a latency and the TTL 300, got %v %d", what, l.Latency, l.Answers[0].TTL)
		}
	}
	check("NXDOMAIN", lookups("ct-dns-nx", server, "nope.test.example.", "A"), server, "NXDOMAIN")
	check("REFUSED", lookups("ct-dns-refused", server, "elsewhere.example.", "A"), server, "REFUSED")
	timeout := lookups("ct-dns-silent", nobody, "api.test.example.", "A")
	check("timeout", timeout, nobody, "timeout")
	if fails := ofType(tracer.EventConnectFail, all); len(fails) != 0 {
		t.Errorf("connect_fail not asked for, got:\n%s", dump(fails))
	}
	closed := netip.MustParseAddr("198.18.0.10")
	refused := lookups("ct-dns-closed", closed, "api.test.example.", "A")
	check("port unreachable", refused, closed, "unreachable")
	if len(refused) == 1 {
		l := refused[0].DNS
		switch mode := s.t.Mode(); {
		case l.Errno != 111 || l.Latency <= 0 || l.Latency > time.Second:
			t.Errorf("port unreachable: want ECONNREFUSED at once, got errno %d after %v", l.Errno, l.Latency)
		case tracer.UDPICMPHooked(mode) && (l.ICMPFrom != closed || l.ICMPType != 3 || l.ICMPCode != 3):
			t.Errorf("port unreachable: %s hooks: want ICMP 3/3 from %s, got %d/%d from %v", mode, closed, l.ICMPType, l.ICMPCode, l.ICMPFrom)
		case !tracer.UDPICMPHooked(mode) && l.ICMPFrom.IsValid():
			t.Errorf("port unreachable: %s hooks: want no ICMP sender, got %v", mode, l.ICMPFrom)
		}
	}
	if len(timeout) == 1 && (timeout[0].DNS.Latency != 1500*time.Millisecond || !timeout[0].DNS.DropsWatched || timeout[0].DNS.Drops != 0) {
		t.Errorf("timeout: want it waited the DNS timeout, nothing dropped here, got %+v", timeout[0].DNS)
	}
	// The answer a rule here dropped: a timeout that says so.
	firewalled := netip.MustParseAddr("198.18.0.4")
	drop := lookups("ct-dns-dropped", firewalled, "api.test.example.", "A")
	check("answer dropped here", drop, firewalled, "timeout")
	if len(drop) == 1 {
		if l := drop[0].DNS; !l.DropsWatched || l.Drops != 1 || l.DropReason != "NETFILTER_DROP" || l.DropOut {
			t.Errorf("answer dropped here: want 1 answer dropped (NETFILTER_DROP), got %+v", l)
		}
	}
	// The query a rule here dropped on its way out: EPERM, at once.
	blockedAt := netip.MustParseAddr("198.18.0.5")
	blocked := lookups("ct-dns-blocked", blockedAt, "api.test.example.", "A")
	check("query dropped here", blocked, blockedAt, "unreachable")
	if len(blocked) == 1 {
		if l := blocked[0].DNS; l.Errno != 1 || l.Drops != 1 || l.DropReason != "NETFILTER_DROP" || !l.DropOut {
			t.Errorf("query dropped here: want EPERM, NETFILTER_DROP on its way out, got %+v", l)
		}
	}
	if drops := ofType(tracer.EventDrop, all); len(drops) != 0 {
		t.Errorf("drop events not asked for:\n%s", dump(drops))
	}
	check("getent A", lookups("getent", server, "api.test.example.", "A"), server, "NOERROR", "198.18.0.10")
	check("getent AAAA", lookups("getent", server, "api.test.example.", "AAAA"), server, "NOERROR")
	goA := lookups("ct-dns-go", server, "www.test.example.", "A")
	check("Go resolver", goA, server, "NOERROR", "198.18.0.10")
	if len(goA) == 1 && (len(goA[0].DNS.CNAMEs) != 1 || !bytes.Equal(goA[0].DNS.CNAMEs[0], []byte("api.test.example."))) {
		t.Errorf("Go resolver: want the CNAME api.test.example., got %q", goA[0].DNS.CNAMEs)
	}
	// The connection after the lookup has the name asked for.
	var conns []tracer.Event
	for _, ev := range all {
		if ev.RPort == dnsService && ev.Type != tracer.EventDNS {
			conns = append(conns, ev)
		}
	}
	if len(conns) != 2 || conns[0].Type != tracer.EventConnect || conns[1].Type != tracer.EventClose ||
		conns[0].RName != "www.test.example" || conns[1].RName != "www.test.example" || int(conns[0].PID) != cli.PID {
		t.Errorf("want the Go client's connect and close named www.test.example, got:\n%s", dump(conns))
	}
	// The server's end of the same connection is not in the client's
	// namespace: no name there.
	for _, ev := range all {
		if ev.LPort == dnsService && ev.RName != "" {
			t.Errorf("the server's end got a name from the client's namespace:\n%s", dump([]tracer.Event{ev}))
		}
	}
}

// TestDNSDig: dig's lookups (the host's dig: the VMs have none), an
// answer and an NXDOMAIN, each one event of dig's. Beside it, a tracer
// whose port filter leaves DNS out still names the connection that
// follows a lookup, and reports no lookup; another network namespace
// (the same addresses, its own server) resolves another name to the same
// address: each connection has its own namespace's name; --name keeps
// what it names.
func TestDNSDig(t *testing.T) {
	n := newDNSNet(t)
	other := newDNSNetOf(t, "--host-record=other.test.example,198.18.0.10")
	s := startTracer(t, tracer.Config{Ports: []uint16{53}})
	named := startTracer(t, tracer.Config{Ports: []uint16{dnsService}})
	www := startTracer(t, tracer.Config{Names: []string{"*.TEST.example."}, Ports: []uint16{53, dnsService}})
	for _, name := range []string{"api.test.example", "nope.test.example"} {
		if out, err := n.cli.Exec(t, "dig", "+tries=1", "+timeout=2", "@198.18.0.2", name, "A"); err != nil {
			t.Fatalf("dig %s: %v\n%s", name, err, out)
		}
	}
	cli := n.goLookup(t, "ct-dns-go", "198.18.0.2", "www.test.example", "198.18.0.10")
	otherCli := other.goLookup(t, "ct-dns-other", "198.18.0.2", "other.test.example", "198.18.0.10")
	s.waitFor(t, 4, func(ev *tracer.Event) bool { return ev.Type == tracer.EventDNS })
	named.waitFor(t, 2, func(ev *tracer.Event) bool { return ev.Type == tracer.EventClose && ev.RPort == dnsService })
	all := ofType(tracer.EventDNS, s.stop(t))
	if len(all) != 4 || string(all[0].CommBytes()) != "dig" || string(all[0].DNS.Name) != "api.test.example." || all[0].DNS.RCodeName() != "NOERROR" ||
		len(all[0].DNS.Answers) != 1 || all[0].DNS.Answers[0].Addr != netip.MustParseAddr("198.18.0.10") ||
		string(all[1].CommBytes()) != "dig" || all[1].DNS.RCodeName() != "NXDOMAIN" || all[1].NetNS != n.cli.Inode(t) {
		t.Errorf("want dig's answer and its NXDOMAIN, then the Go client's, got:\n%s", dump(all))
	}
	var conns, otherConns []tracer.Event
	for _, ev := range named.stop(t) {
		switch {
		case ev.Type == tracer.EventDNS:
			t.Errorf("a lookup the port filter leaves out:\n%s", dump([]tracer.Event{ev}))
		case ev.LPort != dnsService && int(ev.PID) == cli.PID:
			conns = append(conns, ev)
		case ev.LPort != dnsService && int(ev.PID) == otherCli.PID:
			otherConns = append(otherConns, ev)
		}
	}
	if len(conns) != 2 || conns[0].RName != "www.test.example" || conns[1].RName != "www.test.example" {
		t.Errorf("want the Go client's connect and close named, got:\n%s", dump(conns))
	}
	if len(otherConns) != 2 || otherConns[0].RName != "other.test.example" || otherConns[0].NetNS != other.cli.Inode(t) ||
		otherConns[0].RAddr != conns[0].RAddr {
		t.Errorf("want the other namespace's connect to the same address named by its own lookup, got:\n%s", dump(otherConns))
	}
	// --name: the lookups of names below test.example and the events
	// of peers resolved from one; no flow to port 53 (no name), nothing
	// of the server's end.
	var kinds []string
	for _, ev := range www.stop(t) {
		switch {
		case ev.Type == tracer.EventDNS:
			kinds = append(kinds, "dns "+string(ev.DNS.Name))
		case int(ev.PID) == cli.PID || int(ev.PID) == otherCli.PID:
			kinds = append(kinds, ev.Type.String()+" "+ev.RName)
		default:
			t.Errorf("--name let through:\n%s", dump([]tracer.Event{ev}))
		}
	}
	slices.Sort(kinds)
	if got := strings.Join(kinds, ","); got != "close other.test.example,close www.test.example,connect other.test.example,connect www.test.example,"+
		"dns api.test.example.,dns nope.test.example.,dns other.test.example.,dns www.test.example." {
		t.Errorf("--name *.test.example: got %s", got)
	}
}

// hostileDNS answers as no real server would, by the question's first
// label: a compression pointer to itself (loop), a CNAME to a name of
// terminal escapes and the address behind it (esc), a record cut by
// the message's end (pastend), a label of a reserved type (label), no
// question at all (noquestion), SERVFAIL (servfail); anything else gets
// 198.18.0.78, TTL 60.
func hostileDNS(query []byte) []byte {
	var p dnsmessage.Parser
	h, err := p.Start(query)
	if err != nil {
		return nil
	}
	q, err := p.Question()
	if err != nil {
		return nil
	}
	end := 12 + int(q.Name.Length) + 1 + 4 // the question: its name's wire bytes (no pointer), type, class
	if q.Name.Length == 1 {
		end = 12 + 1 + 4
	}
	label, _, _ := strings.Cut(q.Name.String(), ".")
	msg := binary.BigEndian.AppendUint16(nil, h.ID)
	flags, qd, an := uint16(0x8180), uint16(1), uint16(1) // QR RD RA, NOERROR
	switch label {
	case "servfail":
		flags, an = flags|2, 0
	case "noquestion":
		qd, an = 0, 0
	case "esc":
		an = 2
	}
	for _, v := range []uint16{flags, qd, an, 0, 0} {
		msg = binary.BigEndian.AppendUint16(msg, v)
	}
	if qd == 1 {
		msg = append(msg, query[12:end]...)
	}
	rr := func(name []byte, typ uint16, rdata []byte) {
		msg = append(msg, name...)
		msg = binary.BigEndian.AppendUint16(msg, typ)
		msg = binary.BigEndian.AppendUint16(msg, 1)
		msg = binary.BigEndian.AppendUint32(msg, 60)
		msg = binary.BigEndian.AppendUint16(msg, uint16(len(rdata)))
		msg = append(msg, rdata...)
	}
	question := []byte{0xc0, 12}
	switch label {
	case "servfail", "noquestion":
	case "loop":
		self := len(msg)
		rr([]byte{0xc0 | byte(self>>8), byte(self)}, 1, []byte{198, 18, 0, 79})
	case "esc":
		evil := "\x1b]0;pwn\x07\x1b[2J\x07"
		target := append(append([]byte{byte(len(evil))}, evil...), "\x07hostile\x04test\x00"...)
		at := len(msg) + len(question) + 10
		rr(question, 5, target)
		rr([]byte{0xc0 | byte(at>>8), byte(at)}, 1, []byte{198, 18, 0, 77})
	case "pastend":
		rr(question, 1, []byte{198, 18, 0, 80})
		msg = msg[:len(msg)-2] // half its address
	case "label":
		rr([]byte{0x7f, 'x', 0}, 1, []byte{198, 18, 0, 81})
	default:
		rr(question, 1, []byte{198, 18, 0, 78})
	}
	return msg
}

// TestHostileDNS: a server of the test's own answers with what a hostile
// one would send (hostileDNS) and a client asks names of terminal
// escapes: every lookup is an event or a counted parse error, its bytes
// escaped in both outputs, what could not be read marked partial; a
// compression loop neither hangs nor crashes the reader. No real server
// would send these: no tools, so it runs on arm64 too.
func TestHostileDNS(t *testing.T) {
	cli, srv := testnet.NewNS(t), testnet.NewNS(t)
	testnet.Veth(t, cli, []string{"198.18.0.1/24"}, srv, []string{"198.18.0.2/24"})
	server := netip.MustParseAddrPort("198.18.0.2:53")
	testnet.DNSServer(t, srv, server, hostileDNS)
	s := startTracer(t, tracer.Config{Ports: []uint16{53}, DNSTimeout: 500 * time.Millisecond})
	names := []string{"loop.hostile.test.", "esc.hostile.test.", "pastend.hostile.test.", "label.hostile.test.",
		"noquestion.hostile.test.", "servfail.hostile.test.", "\x1b[31mred\x07\x00.hostile.test."}
	var queries [][]byte
	for i, name := range names {
		queries = append(queries, testnet.DNSQuery(t, uint16(0x100+i), name, dnsmessage.TypeA))
	}
	answers := cli.AskDNS(t, server, 2*time.Second, queries...)
	for i, a := range answers {
		if a == nil {
			t.Fatalf("no answer to %q", names[i])
		}
	}
	// The one answer with no question is no lookup's: its query times
	// out, with that answer.
	s.waitFor(t, len(names), func(ev *tracer.Event) bool { return ev.Type == tracer.EventDNS })
	all := ofType(tracer.EventDNS, s.stop(t))
	if st := s.t.Stats(); st.DNSMalformed != 1 {
		t.Errorf("want 1 malformed message counted (the answer with no question), got %d", st.DNSMalformed)
	}
	type want struct {
		outcome string
		partial bool
		answers string
		cnames  string
	}
	wants := map[string]want{
		names[0]: {"NOERROR", true, "", ""},
		names[1]: {"NOERROR", false, "198.18.0.77", "\x1b]0;pwn\x07\x1b[2J\x07.hostile.test."},
		names[2]: {"NOERROR", true, "", ""},
		names[3]: {"NOERROR", true, "", ""},
		names[4]: {"timeout", false, "", ""},
		names[5]: {"SERVFAIL", false, "", ""},
		names[6]: {"NOERROR", false, "198.18.0.78", ""},
	}
	if len(all) != len(names) {
		t.Errorf("want %d lookups, got %d:\n%s", len(names), len(all), dump(all))
	}
	for _, ev := range all {
		l := ev.DNS
		w, ok := wants[string(l.Name)]
		if !ok {
			t.Errorf("a lookup of %q, not asked:\n%s", l.Name, dump([]tracer.Event{ev}))
			continue
		}
		delete(wants, string(l.Name))
		var got, cnames []string
		for _, a := range l.Answers {
			got = append(got, a.Addr.String())
		}
		for _, c := range l.CNAMEs {
			cnames = append(cnames, string(c))
		}
		if l.RCodeName() != w.outcome || l.Partial != w.partial || strings.Join(got, ",") != w.answers || strings.Join(cnames, ",") != w.cnames ||
			ev.RAddr != server.Addr() || ev.NetNS != cli.Inode(t) {
			t.Errorf("%q: want %+v, got %s partial %v answers %v cnames %q", l.Name, w, l.RCodeName(), l.Partial, got, cnames)
		}
		// Both outputs: valid, no byte of the names raw.
		js := output.AppendJSON(nil, &ev)
		var line map[string]any
		if err := json.Unmarshal(js, &line); err != nil {
			t.Errorf("%q: invalid JSON %q: %v", l.Name, js, err)
		}
		for _, out := range [][]byte{js, output.AppendText(nil, &ev)} {
			if i := bytes.IndexFunc(bytes.TrimSuffix(out, []byte("\n")), func(r rune) bool { return r < 0x20 || r == 0x7f }); i >= 0 {
				t.Errorf("%q: a control byte in %q", l.Name, out)
			}
		}
		if unreadable := string(l.Name) == names[4]; unreadable != (l.Unreadable == 1) || unreadable != (line["unreadable_answers"] == 1.0) ||
			unreadable && !strings.Contains(string(output.AppendText(nil, &ev)), "1 came with the query's id but no question") {
			t.Errorf("%q: want the unreadable answer told, got %d: %s", l.Name, l.Unreadable, output.AppendText(nil, &ev))
		}
		if string(l.Name) == names[1] && !strings.Contains(string(output.AppendText(nil, &ev)), `\x1b]0;pwn\x07`) {
			t.Errorf("the CNAME's escapes are not shown escaped: %s", output.AppendText(nil, &ev))
		}
	}
}

// TestDNSOverTCP: Go's resolver gets a truncated answer over UDP (120
// addresses: more than 1,232 bytes) and asks again over TCP: both are
// lookups of its process, the second one tied to the first; its answer
// (1,965 bytes, more than the tracer copies) names the connection after.
// Lookups sent over TCP from the start: an answer and an NXDOMAIN.
func TestDNSOverTCP(t *testing.T) {
	records := []string{"--host-record=api.test.example,198.18.0.10"}
	for i := 1; i <= 120; i++ {
		records = append(records, fmt.Sprintf("--host-record=big.test.example,198.18.1.%d", i))
	}
	n := newDNSNetOf(t, records...)
	// Every address of big is the server's namespace's (Go's resolver
	// sorts them: the client connects to any), on port 8054.
	if out, err := n.srv.Exec(t, "ip", "route", "add", "local", "198.18.1.0/24", "dev", "lo"); err != nil {
		t.Fatalf("ip route add local: %v: %s", err, out)
	}
	n.cli.Via(t, "198.18.1.0/24", "198.18.0.2")
	const bigPort = 8054
	big := testnet.Start(t, "ct-dns-bigsrv", testnet.Role{Server: true, NS: n.srv.Path(), Addr: fmt.Sprintf("0.0.0.0:%d", bigPort), Conns: 1, Recv: 4, Send: 4})
	big.Expect(t, "listening")
	s := startTracer(t, tracer.Config{Ports: []uint16{53, dnsService, bigPort}, DNSTimeout: 1500 * time.Millisecond})
	retry := testnet.Start(t, "ct-dns-retry", testnet.Role{NS: n.cli.Path(), DNS: "198.18.0.2:53", Addr: fmt.Sprintf("big.test.example:%d", bigPort),
		Send: 4, Recv: 4, Timeout: 2 * time.Second})
	retry.Expect(t, "ready")
	if got := retry.Expect(t, "resolved"); !netip.MustParsePrefix("198.18.1.0/24").Contains(netip.MustParseAddr(got)) {
		t.Fatalf("big.test.example resolved to %s", got)
	}
	retry.Expect(t, "connected")
	retry.Wait(t)
	lookup := func(comm, name, want string) *testnet.Proc {
		p := testnet.Start(t, comm, testnet.Role{NS: n.cli.Path(), DNS: "198.18.0.2:53", DNSTCP: true, Addr: name + ":8053",
			Send: 4, Recv: 4, MayFail: want == "", Timeout: 2 * time.Second})
		p.Expect(t, "ready")
		n.endLookup(t, p, want)
		return p
	}
	tcp := lookup("ct-dns-tcp", "api.test.example", "198.18.0.10")
	lookup("ct-dns-tcpnx", "nope.test.example", "")
	s.waitFor(t, 3, func(ev *tracer.Event) bool {
		return ev.Type == tracer.EventClose && (ev.RPort == dnsService || ev.RPort == bigPort) || ev.Type == tracer.EventDNS && ev.DNS.RCode == 3
	})
	all := s.stop(t)
	var dnsEvs []string
	for _, ev := range ofType(tracer.EventDNS, all) {
		l := ev.DNS
		dnsEvs = append(dnsEvs, fmt.Sprintf("%s %s %s %s %s trunc=%v retry=%v partial=%v answers=%d/%d", ev.CommBytes(), ev.Proto, l.Name, l.QTypeName(), l.RCodeName(),
			l.Truncated, l.RetryOfTruncated, l.Partial, len(l.Answers), l.AnswerCount))
		if ev.RAddr != netip.MustParseAddr("198.18.0.2") || ev.RPort != 53 || ev.NetNS != n.cli.Inode(t) || ev.PID == 0 {
			t.Errorf("a lookup not of the client's namespace to 198.18.0.2:53:\n%s", dump([]tracer.Event{ev}))
		}
		if want := map[string]int{"ct-dns-retry": retry.PID, "ct-dns-tcp": tcp.PID}[string(ev.CommBytes())]; want != 0 && int(ev.PID) != want {
			t.Errorf("lookup of pid %d, want %d", ev.PID, want)
		}
		// Over TCP, the lookup has its connection's conn_id.
		if ev.Proto == tracer.ProtoTCP && !slices.ContainsFunc(all, func(c tracer.Event) bool {
			return c.Type == tracer.EventConnect && c.ConnID == ev.ConnID && c.PID == ev.PID && c.RPort == 53 && c.LPort == ev.LPort
		}) {
			t.Errorf("a lookup over TCP without its connection's conn_id:\n%s", dump([]tracer.Event{ev}))
		}
	}
	// The answer over UDP held what 1,232 bytes hold (74 addresses); over
	// TCP, the tracer copied 1,232 of its 1,965 bytes: 74 of the 120 too.
	want := []string{
		"ct-dns-retry udp big.test.example. A NOERROR trunc=true retry=false partial=false answers=16/74",
		"ct-dns-retry tcp big.test.example. A NOERROR trunc=false retry=true partial=true answers=16/74",
		"ct-dns-tcp tcp api.test.example. A NOERROR trunc=false retry=false partial=false answers=1/1",
		"ct-dns-tcpnx tcp nope.test.example. A NXDOMAIN trunc=false retry=false partial=false answers=0/0",
	}
	if strings.Join(dnsEvs, "\n") != strings.Join(want, "\n") {
		t.Errorf("lookups:\n%s\nwant:\n%s", strings.Join(dnsEvs, "\n"), strings.Join(want, "\n"))
	}
	named := map[string]string{}
	for _, ev := range all {
		if ev.Type == tracer.EventConnect && (ev.RPort == dnsService || ev.RPort == bigPort) {
			named[string(ev.CommBytes())] = ev.RName
		}
	}
	if named["ct-dns-retry"] != "big.test.example" || named["ct-dns-tcp"] != "api.test.example" {
		t.Errorf("want the connections named by the lookups over TCP, got %v", named)
	}
	if st := s.t.Stats(); st.DNSMalformed != 0 || st.DNSUnfollowed != 0 || st.DNSStreamSkipped != 0 {
		t.Errorf("want every message read, got %d malformed, %d unfollowed, %d segments skipped", st.DNSMalformed, st.DNSUnfollowed, st.DNSStreamSkipped)
	}
}

// TestDNSStub: a local stub resolver, as systemd-resolved's on
// 127.0.0.53 (here Debian's dnsmasq, forwarding to the server): the
// application's lookup and the stub's own upstream are both lookups,
// each of its own process; the connection after is named.
func TestDNSStub(t *testing.T) {
	n := newDNSNet(t)
	if out, err := n.cli.Exec(t, "ip", "link", "set", "lo", "up"); err != nil {
		t.Fatalf("ip link set lo up: %v: %s", err, out)
	}
	stub := testnet.Dnsmasq(t, n.cli, "127.0.0.53", "--server=198.18.0.2", "--no-negcache", "--cache-size=0")
	s := startTracer(t, tracer.Config{Ports: []uint16{53, dnsService}})
	cli := n.goLookup(t, "ct-dns-app", "127.0.0.53", "api.test.example", "198.18.0.10")
	s.waitFor(t, 1, func(ev *tracer.Event) bool { return ev.Type == tracer.EventClose && ev.RPort == dnsService })
	all := s.stop(t)
	var got []string
	for _, ev := range ofType(tracer.EventDNS, all) {
		var answers []string
		for _, a := range ev.DNS.Answers {
			answers = append(answers, a.Addr.String())
		}
		got = append(got, fmt.Sprintf("%d %s -> %s %s %s %s %v", ev.PID, ev.CommBytes(), netip.AddrPortFrom(ev.RAddr, ev.RPort), ev.DNS.Name, ev.DNS.QTypeName(), ev.DNS.RCodeName(), answers))
	}
	slices.Sort(got)
	want := []string{
		fmt.Sprintf("%d ct-dns-app -> 127.0.0.53:53 api.test.example. A NOERROR [198.18.0.10]", cli.PID),
		fmt.Sprintf("%d dnsmasq -> 198.18.0.2:53 api.test.example. A NOERROR [198.18.0.10]", stub.Process.Pid),
	}
	slices.Sort(want)
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("lookups:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	for _, ev := range all {
		if ev.Type == tracer.EventConnect && ev.RPort == dnsService && ev.RName != "api.test.example" {
			t.Errorf("want the connection named:\n%s", dump([]tracer.Event{ev}))
		}
	}
}

// TestDNSSearchList: glibc with a search list and ndots:5, as a
// Kubernetes pod has, asks for api.test.example.test.example first
// (NXDOMAIN), then api.test.example; the second time round, the NXDOMAIN
// says the name without the suffix resolved.
func TestDNSSearchList(t *testing.T) {
	n := newDNSNet(t)
	testnet.ResolvConfLines(t, n.cli, "nameserver 198.18.0.2", "search test.example", "options ndots:5 timeout:1 attempts:1")
	s := startTracer(t, tracer.Config{Ports: []uint16{53}})
	for range 2 {
		if out, err := n.cli.Exec(t, "getent", "hosts", "api.test.example"); err != nil || !strings.Contains(out, "198.18.0.10") {
			t.Fatalf("getent hosts: %v\n%s", err, out)
		}
	}
	s.waitFor(t, 4, func(ev *tracer.Event) bool { return ev.Type == tracer.EventDNS && ev.DNS.QTypeName() == "A" })
	var got []string
	for _, ev := range ofType(tracer.EventDNS, s.stop(t)) {
		if ev.DNS.QTypeName() != "A" {
			continue
		}
		line := fmt.Sprintf("%s %s %q", ev.DNS.Name, ev.DNS.RCodeName(), ev.DNS.ResolvedWithoutSuffix)
		if text := strings.TrimSuffix(string(output.AppendText(nil, &ev)), "\n"); ev.DNS.RCode == 3 {
			_, explain, _ := strings.Cut(text, ": ")
			line += " " + explain
		}
		got = append(got, line)
	}
	const nx = `NXDOMAIN: 198.18.0.2:53 says api.test.example.test.example does not exist`
	want := []string{
		`api.test.example.test.example. NXDOMAIN "" ` + nx,
		`api.test.example. NOERROR ""`,
		`api.test.example.test.example. NXDOMAIN "api.test.example." ` + nx + `; api.test.example resolved in this network namespace in the last 10 minutes: a search list (resolv.conf's search and ndots) appended test.example to it`,
		`api.test.example. NOERROR ""`,
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("lookups:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}
