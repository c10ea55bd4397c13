// SPDX-License-Identifier: Apache-2.0

package event

import (
	"net/netip"
	"strconv"
	"time"
)

// Lookup is one DNS lookup: a query and its outcome. The tracer reuses it once
// Sink.Write returns; its byte slices are the message's, unescaped.
type Lookup struct {
	ID    uint16
	Name  []byte // the question's name, with its final dot ("api.example.com.")
	QType uint16 // the question's type (1 A, 28 AAAA, ...)
	// RCode is the answer's response code when Outcome is Answered.
	RCode   uint16
	Outcome Outcome
	// Latency: query to answer; for a timeout, how long it went
	// unanswered. 0 for an answer whose query was not seen.
	Latency time.Duration
	// Truncated is the answer's TC bit: the client should ask again over
	// TCP.
	Truncated bool
	// RetryOfTruncated: a query over TCP that asks again what a query
	// over UDP got a truncated answer to (the same process, server, name
	// and type, within the DNS timeout).
	RetryOfTruncated bool
	// Answers are the addresses the answer gives for the name (A, AAAA,
	// after the CNAME chain), up to MaxDNSAnswers; AnswerCount is how many
	// it gives.
	Answers     []DNSAnswer
	AnswerCount int
	// CNAMEs is the chain of canonical names the answer went through.
	CNAMEs [][]byte
	// Sent is how many times the same query (socket, server, id) was sent
	// before its outcome.
	Sent int
	// Errno (Outcome Unreachable): the error the query's socket got
	// instead of an answer (ECONNREFUSED: ICMP port unreachable), with
	// the ICMP error's sender, type and code when known (ICMPFrom valid).
	Errno              uint32
	ICMPFrom           netip.Addr
	ICMPType, ICMPCode uint8
	// DropsWatched (a timeout): this host's drops of the lookup's messages
	// were watched (skb:kfree_skb); Drops of them it dropped, the last
	// one's DropReason ("NETFILTER_DROP"), DropOut: it was the query
	// going out (else an answer coming in).
	DropsWatched bool
	Drops        uint32
	DropReason   string
	DropOut      bool
	// Unreadable (a timeout, or none yet at the run's end): answers that
	// came from the server to the query's socket with its id, but that
	// could not be read as one (no question: a malformed message).
	Unreadable uint32
	// ResolvedWithoutSuffix (an NXDOMAIN): the name less a trailing part
	// of it, which resolved in the same network namespace within
	// dns.ResolvedFor: the name a search list (resolv.conf's search and
	// ndots) made this one from. With its final dot.
	ResolvedWithoutSuffix []byte
	// Partial: the message was longer than the tracer copies
	// (DNS_PAYLOAD_MAX) or malformed past its question: what it holds
	// beyond is not known.
	Partial bool
}

// MaxDNSAnswers bounds the addresses an event lists.
const MaxDNSAnswers = 16

// DNSAnswer is an address an answer gives, with its TTL.
type DNSAnswer struct {
	Addr netip.Addr
	TTL  uint32
}

// Outcome is how a lookup ended.
type Outcome uint8

const (
	// Answered: an answer came (RCode says which).
	Answered Outcome = iota
	// TimedOut: none came within the DNS timeout, nor before the same
	// query was sent again.
	TimedOut
	// Unanswered: none had come when the run stopped.
	Unanswered
	// Unreachable: an ICMP error came back instead (Errno): nothing
	// listens there (port unreachable), or no route to the server.
	Unreachable
)

// RCodeName is the outcome as the rcode field says it: the response
// code's name (NOERROR, NXDOMAIN, SERVFAIL, ...), "timeout" or
// "unanswered".
func (d *Lookup) RCodeName() string {
	switch d.Outcome {
	case TimedOut:
		return "timeout"
	case Unanswered:
		return "unanswered"
	case Unreachable:
		return "unreachable"
	}
	if int(d.RCode) < len(rcodeNames) && rcodeNames[d.RCode] != "" {
		return rcodeNames[d.RCode]
	}
	return "RCODE" + strconv.Itoa(int(d.RCode))
}

// Failed reports whether the lookup did not get its addresses: no answer,
// or an error code.
func (d *Lookup) Failed() bool { return d.Outcome != Answered || d.RCode != 0 }

var rcodeNames = [...]string{
	0: "NOERROR", 1: "FORMERR", 2: "SERVFAIL", 3: "NXDOMAIN", 4: "NOTIMP", 5: "REFUSED",
	6: "YXDOMAIN", 7: "YXRRSET", 8: "NXRRSET", 9: "NOTAUTH", 10: "NOTZONE",
}

// QTypeName is the question's type by name (A, AAAA, ...), or TYPEn.
func (d *Lookup) QTypeName() string {
	switch d.QType {
	case 1:
		return "A"
	case 2:
		return "NS"
	case 5:
		return "CNAME"
	case 6:
		return "SOA"
	case 12:
		return "PTR"
	case 15:
		return "MX"
	case 16:
		return "TXT"
	case 28:
		return "AAAA"
	case 33:
		return "SRV"
	case 64:
		return "SVCB"
	case 65:
		return "HTTPS"
	case 255:
		return "ANY"
	}
	return "TYPE" + strconv.Itoa(int(d.QType))
}

// Clone is a copy of l that shares nothing with it, for a sink that keeps
// events past Write.
func (l *Lookup) Clone() *Lookup {
	c := *l
	c.Name = append([]byte(nil), l.Name...)
	c.Answers = append([]DNSAnswer(nil), l.Answers...)
	c.ResolvedWithoutSuffix = append([]byte(nil), l.ResolvedWithoutSuffix...)
	c.CNAMEs = nil
	for _, n := range l.CNAMEs {
		c.CNAMEs = append(c.CNAMEs, append([]byte(nil), n...))
	}
	return &c
}
