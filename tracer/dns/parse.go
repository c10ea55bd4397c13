// SPDX-License-Identifier: Apache-2.0

// Package dns makes DNS lookups of the messages the kernel side copies
// (bpf/udp_dns.bpf.h): it parses them with golang.org/x/net/dns/dnsmessage,
// pairs each query with its answer or its timeout (Lookups), and keeps the
// names each network namespace resolved addresses to (Names).
package dns

import (
	"bytes"
	"errors"
	"net/netip"

	"golang.org/x/net/dns/dnsmessage"

	"github.com/conntrace/conntrace/tracer/event"
)

// Message is what a lookup needs of one DNS message. Parse fills it
// without allocating once its slices have grown.
type Message struct {
	ID       uint16
	Response bool
	RCode    uint16
	TC       bool
	Name     []byte // the question's
	QType    uint16
	// Answers: the A and AAAA records of the question's name or of a
	// name in its CNAME chain; AnswerCount counts those past the cap.
	Answers     []event.DNSAnswer
	AnswerCount int
	CNAMEs      [][]byte
	// Partial: the answer section could not be read to its end (the
	// message was cut or malformed there).
	Partial bool

	p   dnsmessage.Parser
	cur []byte // the name the chain has reached
}

// ErrNoQuestion: a message with no question (or an unreadable one) is
// of no lookup.
var ErrNoQuestion = errors.New("DNS message without a question")

// Parse reads msg: its header and first question, and a response's
// answers. An error means the message cannot be a lookup's.
func (m *Message) Parse(msg []byte) error {
	h, err := m.p.Start(msg)
	if err != nil {
		return err
	}
	m.ID, m.Response, m.RCode, m.TC = h.ID, h.Response, uint16(h.RCode), h.Truncated
	m.Answers, m.AnswerCount, m.CNAMEs, m.Partial = m.Answers[:0], 0, m.CNAMEs[:0], false
	q, err := m.p.Question()
	if err != nil {
		return ErrNoQuestion
	}
	m.Name = append(m.Name[:0], q.Name.Data[:q.Name.Length]...)
	m.QType = uint16(q.Type)
	if !m.Response {
		return nil
	}
	if err := m.p.SkipAllQuestions(); err != nil {
		m.Partial = true
		return nil
	}
	m.cur = append(m.cur[:0], m.Name...)
	for {
		rh, err := m.p.AnswerHeader()
		if errors.Is(err, dnsmessage.ErrSectionDone) {
			return nil
		}
		if err != nil {
			m.Partial = true
			return nil
		}
		if err := m.answer(rh); err != nil {
			m.Partial = true
			return nil
		}
	}
}

// answer reads one answer record: an address or a CNAME of the chain's
// current name (names compare case-insensitively), or one of no interest.
func (m *Message) answer(rh dnsmessage.ResourceHeader) error {
	ours := bytes.EqualFold(rh.Name.Data[:rh.Name.Length], m.cur)
	if !ours || rh.Class != dnsmessage.ClassINET {
		return m.p.SkipAnswer()
	}
	switch rh.Type {
	case dnsmessage.TypeA:
		r, err := m.p.AResource()
		if err != nil {
			return err
		}
		m.add(netip.AddrFrom4(r.A), rh.TTL)
	case dnsmessage.TypeAAAA:
		r, err := m.p.AAAAResource()
		if err != nil {
			return err
		}
		m.add(netip.AddrFrom16(r.AAAA), rh.TTL)
	case dnsmessage.TypeCNAME:
		r, err := m.p.CNAMEResource()
		if err != nil {
			return err
		}
		target := r.CNAME.Data[:r.CNAME.Length]
		if len(m.CNAMEs) < MaxCNAMEs {
			m.CNAMEs = appendName(m.CNAMEs, target)
		}
		m.cur = append(m.cur[:0], target...)
	default:
		return m.p.SkipAnswer()
	}
	return nil
}

// MaxCNAMEs bounds the chain a lookup lists (it is followed to its end).
const MaxCNAMEs = 16

// appendName appends a copy of name to names, in the buffer of a name
// removed from it before when there is one.
func appendName(names [][]byte, name []byte) [][]byte {
	if n := len(names); n < cap(names) {
		names = names[:n+1]
		names[n] = append(names[n][:0], name...)
		return names
	}
	return append(names, append([]byte(nil), name...))
}

func (m *Message) add(a netip.Addr, ttl uint32) {
	m.AnswerCount++
	if len(m.Answers) < event.MaxDNSAnswers {
		m.Answers = append(m.Answers, event.DNSAnswer{Addr: a, TTL: ttl})
	}
}
