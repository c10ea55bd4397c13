// SPDX-License-Identifier: Apache-2.0

package output

import (
	"strconv"

	"github.com/conntrace/conntrace/tracer/event"
)

// dnsName is a name as the output has it: without its final dot (the
// root stays ".").
func dnsName(name []byte) []byte {
	if len(name) > 1 && name[len(name)-1] == '.' {
		return name[:len(name)-1]
	}
	return name
}

func dnsJSON(dst []byte, ev *event.Event) []byte {
	l := ev.DNS
	if l == nil {
		return dst
	}
	dst = append(dst, `,"id":`...)
	dst = strconv.AppendUint(dst, uint64(l.ID), 10)
	dst = append(dst, `,"name":`...)
	dst = AppendJSONString(dst, dnsName(l.Name))
	dst = append(dst, `,"qtype":"`...)
	dst = append(dst, l.QTypeName()...)
	dst = append(dst, `","rcode":"`...)
	dst = append(dst, l.RCodeName()...)
	dst = append(dst, `","latency_us":`...)
	dst = strconv.AppendInt(dst, l.Latency.Microseconds(), 10)
	if l.Outcome == event.Answered {
		dst = append(dst, `,"truncated":`...)
		dst = strconv.AppendBool(dst, l.Truncated)
		dst = append(dst, `,"answers":[`...)
		for i, a := range l.Answers {
			if i > 0 {
				dst = append(dst, ',')
			}
			dst = append(dst, `{"addr":"`...)
			dst = a.Addr.AppendTo(dst)
			dst = append(dst, `","ttl":`...)
			dst = strconv.AppendUint(dst, uint64(a.TTL), 10)
			dst = append(dst, '}')
		}
		dst = append(dst, `],"answer_count":`...)
		dst = strconv.AppendInt(dst, int64(l.AnswerCount), 10)
		dst = append(dst, `,"cnames":[`...)
		for i, c := range l.CNAMEs {
			if i > 0 {
				dst = append(dst, ',')
			}
			dst = AppendJSONString(dst, dnsName(c))
		}
		dst = append(dst, ']')
	}
	if l.Outcome == event.TimedOut || l.Drops > 0 {
		if !l.DropsWatched {
			dst = append(dst, `,"drops":null`...)
		} else {
			dst = append(dst, `,"drops":`...)
			dst = strconv.AppendUint(dst, uint64(l.Drops), 10)
			if l.Drops > 0 {
				dst = append(dst, `,"drop_reason":`...)
				dst = AppendJSONString(dst, l.DropReason)
				if l.DropOut {
					dst = append(dst, `,"drop_direction":"out"`...)
				} else {
					dst = append(dst, `,"drop_direction":"in"`...)
				}
			}
		}
	}
	if l.Outcome == event.Unreachable {
		fail := lookupICMP(l)
		dst = appendErrorJSON(dst, &fail)
		if l.ICMPFrom.IsValid() {
			dst = appendICMPJSON(dst, &fail)
		}
	}
	if l.RetryOfTruncated {
		dst = append(dst, `,"retry_of_truncated":true`...)
	}
	if len(l.ResolvedWithoutSuffix) > 0 {
		dst = append(dst, `,"resolved_without_suffix":`...)
		dst = AppendJSONString(dst, dnsName(l.ResolvedWithoutSuffix))
	}
	if l.Unreadable > 0 {
		dst = append(dst, `,"unreadable_answers":`...)
		dst = strconv.AppendUint(dst, uint64(l.Unreadable), 10)
	}
	if l.Partial {
		dst = append(dst, `,"partial":true`...)
	}
	if l.Failed() {
		var buf [256]byte
		dst = append(dst, `,"explain":`...)
		dst = AppendJSONString(dst, appendDNSExplanation(buf[:0], ev))
	}
	return dst
}

func dnsText(dst []byte, ev *event.Event) []byte {
	l := ev.DNS
	if l == nil {
		return dst
	}
	dst = append(dst, ' ')
	dst = append(dst, l.QTypeName()...)
	dst = append(dst, ' ')
	dst = AppendTextSafe(dst, dnsName(l.Name))
	dst = append(dst, ' ')
	dst = append(dst, l.RCodeName()...)
	if l.Outcome == event.Answered && l.Latency > 0 {
		dst = append(dst, " latency="...)
		dst = appendDuration(dst, l.Latency)
	}
	if len(l.CNAMEs) > 0 {
		dst = append(dst, " cname="...)
		for i, c := range l.CNAMEs {
			if i > 0 {
				dst = append(dst, ',')
			}
			dst = AppendTextSafe(dst, dnsName(c))
		}
	}
	if len(l.Answers) > 0 {
		dst = append(dst, " answers="...)
		for i, a := range l.Answers {
			if i > 0 {
				dst = append(dst, ',')
			}
			dst = a.Addr.AppendTo(dst)
		}
		if l.AnswerCount > len(l.Answers) {
			dst = append(dst, ",..."...)
		}
	}
	if l.Truncated {
		dst = append(dst, " truncated"...)
	}
	if l.RetryOfTruncated {
		dst = append(dst, " retry-of-truncated"...)
	}
	if l.Partial {
		dst = append(dst, " partial"...)
	}
	if l.Failed() {
		dst = append(dst, ": "...)
		dst = appendDNSExplanation(dst, ev)
	}
	return dst
}

// appendDNSExplanation says why a lookup got no addresses.
func appendDNSExplanation(dst []byte, ev *event.Event) []byte {
	l := ev.DNS
	server := func(dst []byte) []byte { return AppendAddrPort(dst, ev.RAddr, ev.RPort) }
	if l.Unreadable > 0 && (l.Outcome == event.TimedOut || l.Outcome == event.Unanswered) {
		dst = append(dst, "no answer from "...)
		dst = server(dst)
		dst = append(dst, " that could be read: "...)
		dst = strconv.AppendUint(dst, uint64(l.Unreadable), 10)
		return append(dst, " came with the query's id but no question (a malformed message, counted as such at the end)"...)
	}
	switch l.Outcome {
	case event.TimedOut:
		dst = append(dst, "no answer from "...)
		dst = server(dst)
		dst = append(dst, " within "...)
		dst = appendDuration(dst, l.Latency)
		switch {
		case !l.DropsWatched:
			return dst
		case l.Drops == 0:
			return append(dst, "; this host dropped neither the query nor an answer: the server or the path is silent (a firewall there, the server down or overloaded)"...)
		case l.DropOut:
			dst = append(dst, "; this host dropped the query ("...)
		default:
			dst = append(dst, "; this host dropped "...)
			dst = strconv.AppendUint(dst, uint64(l.Drops), 10)
			if l.Drops == 1 {
				dst = append(dst, " answer ("...)
			} else {
				dst = append(dst, " answers ("...)
			}
		}
		dst = append(dst, l.DropReason...)
		dst = append(dst, ')')
		return appendDropCause(dst, l.DropReason)
	case event.Unanswered:
		dst = append(dst, "no answer from "...)
		dst = server(dst)
		return append(dst, " yet when the run stopped"...)
	case event.Unreachable:
		fail := lookupICMP(l)
		dst = append(dst, fail.ErrorName()...)
		if l.DropOut && l.Drops > 0 {
			dst = append(dst, ": this host dropped the query to "...)
			dst = server(dst)
			dst = append(dst, " on its way out ("...)
			dst = append(dst, l.DropReason...)
			dst = append(dst, ')')
			return appendDropCause(dst, l.DropReason)
		}
		dst = append(dst, ": the query to "...)
		dst = server(dst)
		if l.ICMPFrom.IsValid() {
			dst = append(dst, " was answered by "...)
			dst = l.ICMPFrom.AppendTo(dst)
			dst = append(dst, " with "...)
			dst = appendICMP(dst, &fail)
		} else {
			dst = append(dst, " came back as an ICMP error"...)
		}
		if l.Errno == 111 { // ECONNREFUSED
			dst = append(dst, ": no DNS server listens there"...)
		}
		return dst
	}
	switch l.RCode {
	case 3:
		dst = append(dst, "NXDOMAIN: "...)
		dst = server(dst)
		dst = append(dst, " says "...)
		dst = AppendTextSafe(dst, dnsName(l.Name))
		dst = append(dst, " does not exist"...)
		if base := l.ResolvedWithoutSuffix; len(base) > 0 && len(base) < len(l.Name) {
			dst = append(dst, "; "...)
			dst = AppendTextSafe(dst, dnsName(base))
			dst = append(dst, " resolved in this network namespace in the last 10 minutes: a search list (resolv.conf's search and ndots) appended "...)
			dst = AppendTextSafe(dst, dnsName(l.Name[len(base):]))
			dst = append(dst, " to it"...)
		}
		return dst
	case 2:
		dst = append(dst, "SERVFAIL from "...)
		dst = server(dst)
		return append(dst, ": the server could not get an answer (its upstream failed, refused or timed out, or DNSSEC validation failed)"...)
	case 5:
		dst = append(dst, "REFUSED by "...)
		dst = server(dst)
		return append(dst, ": it does not answer this client or this name (an access rule, or not a recursive server)"...)
	case 1:
		dst = append(dst, "FORMERR from "...)
		dst = server(dst)
		return append(dst, ": the server could not read the query"...)
	}
	dst = append(dst, l.RCodeName()...)
	dst = append(dst, " from "...)
	return server(dst)
}

// lookupICMP is the lookup's error as a failure event has it, for the
// failures' names.
func lookupICMP(l *event.Lookup) event.Event {
	return event.Event{Errno: l.Errno, ICMPFrom: l.ICMPFrom, ICMPType: l.ICMPType, ICMPCode: l.ICMPCode}
}
