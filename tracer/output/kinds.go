// SPDX-License-Identifier: Apache-2.0

package output

import (
	"strconv"

	"github.com/conntrace/conntrace/tracer/event"
)

// kindFormat is how one kind of event is written after the fields every
// event has: its own fields, its explanation and what the tracer looked
// up for it, in the order of the contract (README).
type kindFormat struct {
	json func(dst []byte, ev *event.Event) []byte
	text func(dst []byte, ev *event.Event) []byte
}

// kindFormats has a row for each type in event.All (TestKindFormats),
// indexed by type. Lost is written apart: it has none of the fields
// every other event has.
var kindFormats = [...]kindFormat{
	event.Listen:      {json: noFields, text: noFields},
	event.Connect:     {json: connectJSON, text: connectText},
	event.Accept:      {json: noFields, text: noFields},
	event.Close:       {json: closeJSON, text: closeText},
	event.ConnectFail: {json: connectFailJSON, text: failureText},
	event.BindFail:    {json: bindFailJSON, text: failureText},
	event.Drop:        {json: dropJSON, text: dropText},
	event.DNS:         {json: dnsJSON, text: dnsText},
}

func noFields(dst []byte, _ *event.Event) []byte { return dst }

// A UDP flow has no handshake: its connect has no latency, its close
// counts datagrams instead of TCP's health.

func connectJSON(dst []byte, ev *event.Event) []byte {
	if ev.Proto == event.ProtoUDP {
		return dst
	}
	dst = append(dst, `,"latency_us":`...)
	return strconv.AppendInt(dst, ev.Latency.Microseconds(), 10)
}

func connectText(dst []byte, ev *event.Event) []byte {
	if ev.Proto == event.ProtoUDP {
		return dst
	}
	dst = append(dst, " latency="...)
	return appendDuration(dst, ev.Latency)
}

func closeJSON(dst []byte, ev *event.Event) []byte {
	dst = append(dst, `,"duration_ms":`...)
	dst = appendMillis(dst, ev.Duration)
	dst = append(dst, `,"tx_bytes":`...)
	dst = strconv.AppendUint(dst, ev.TxBytes, 10)
	dst = append(dst, `,"rx_bytes":`...)
	dst = strconv.AppendUint(dst, ev.RxBytes, 10)
	if ev.Proto == event.ProtoUDP {
		dst = append(dst, `,"tx_packets":`...)
		dst = strconv.AppendUint(dst, ev.TxPackets, 10)
		dst = append(dst, `,"rx_packets":`...)
		dst = strconv.AppendUint(dst, ev.RxPackets, 10)
		dst = append(dst, `,"drops":`...)
		dst = strconv.AppendUint(dst, uint64(ev.Drops), 10)
		if ev.Drops > 0 {
			dst = append(dst, `,"drop_reason":`...)
			dst = AppendJSONString(dst, []byte(ev.DropReason))
		}
		dst = append(dst, `,"reason":"`...)
		dst = append(dst, ev.Reason.String()...)
		return append(dst, '"')
	}
	dst = append(dst, `,"reason":"`...)
	dst = append(dst, ev.Reason.String()...)
	dst = append(dst, `","retransmits":`...)
	dst = strconv.AppendUint(dst, uint64(ev.Retransmits), 10)
	dst = append(dst, `,"srtt_us":`...)
	dst = strconv.AppendInt(dst, ev.SRTT.Microseconds(), 10)
	if explained(ev) {
		if ev.IdleKnown {
			dst = append(dst, `,"idle_ms":`...)
			dst = appendMillis(dst, ev.Idle)
		} else {
			dst = append(dst, `,"idle_ms":null`...)
		}
		dst = append(dst, `,"unread_bytes":`...)
		dst = strconv.AppendUint(dst, uint64(ev.Unread), 10)
		dst = append(dst, `,"linger0":`...)
		dst = strconv.AppendBool(dst, ev.Linger0)
	}
	if ev.PeerUnaccepted {
		dst = append(dst, `,"peer_never_accepted":true`...)
	}
	if explained(ev) {
		// The text's explanation (escaped there for a terminal), built
		// on the stack first.
		var buf [512]byte
		dst = append(dst, `,"explain":`...)
		dst = AppendJSONString(dst, appendCloseExplanation(buf[:0], ev))
	}
	return dst
}

func closeText(dst []byte, ev *event.Event) []byte {
	dst = append(dst, " duration="...)
	dst = appendDuration(dst, ev.Duration)
	dst = append(dst, " tx="...)
	dst = strconv.AppendUint(dst, ev.TxBytes, 10)
	dst = append(dst, " rx="...)
	dst = strconv.AppendUint(dst, ev.RxBytes, 10)
	if ev.Proto == event.ProtoUDP {
		dst = append(dst, " tx_pkts="...)
		dst = strconv.AppendUint(dst, ev.TxPackets, 10)
		dst = append(dst, " rx_pkts="...)
		dst = strconv.AppendUint(dst, ev.RxPackets, 10)
		if ev.Drops > 0 {
			dst = append(dst, " drops="...)
			dst = strconv.AppendUint(dst, uint64(ev.Drops), 10)
			dst = append(dst, " drop_reason="...)
			dst = append(dst, ev.DropReason...)
		}
	}
	dst = append(dst, " reason="...)
	dst = append(dst, ev.Reason.String()...)
	if ev.SRTT > 0 {
		dst = append(dst, " rtt="...)
		dst = appendDuration(dst, ev.SRTT)
	}
	if ev.Retransmits > 0 {
		dst = append(dst, " retrans="...)
		dst = strconv.AppendUint(dst, uint64(ev.Retransmits), 10)
	}
	if explained(ev) {
		dst = append(dst, ' ')
		dst = appendCloseExplanation(dst, ev)
	}
	return dst
}

func connectFailJSON(dst []byte, ev *event.Event) []byte {
	dst = appendErrorJSON(dst, ev)
	dst = append(dst, `,"waited_ms":`...)
	dst = appendMillis(dst, ev.Latency)
	if ev.Proto != event.ProtoUDP { // a UDP flow's has no handshake
		dst = append(dst, `,"syn_retransmits":`...)
		dst = strconv.AppendUint(dst, uint64(ev.Retransmits), 10)
		dst = appendDropsJSON(dst, ev)
	} else if ev.DropReason != "" {
		dst = append(dst, `,"drop_reason":`...)
		dst = AppendJSONString(dst, []byte(ev.DropReason))
	}
	dst = append(dst, `,"icmp_watched":`...)
	dst = strconv.AppendBool(dst, ev.ICMPWatched)
	if ev.ICMPFrom.IsValid() {
		dst = appendICMPJSON(dst, ev)
	}
	dst = appendFailureExplanationJSON(dst, ev)
	if ev.Listeners != nil {
		if ev.ErrorName() == "ETIMEDOUT" {
			dst = appendHoldersJSON(append(dst, `,"listeners":`...), ev.Listeners)
		} else {
			dst = appendHoldersJSON(append(dst, `,"listeners_elsewhere":`...), ev.Listeners)
		}
		dst = append(dst, `,"listeners_netns":`...)
		dst = strconv.AppendUint(dst, uint64(ev.ListenersNetNS), 10)
		if ev.OverflowsKnown {
			dst = append(dst, `,"listen_overflows":`...)
			dst = strconv.AppendUint(dst, ev.ListenOverflows, 10)
		}
		if ev.ListenAfter > 0 {
			dst = append(dst, `,"listened_after_ms":`...)
			dst = appendMillis(dst, ev.ListenAfter)
		}
	}
	return dst
}

func bindFailJSON(dst []byte, ev *event.Event) []byte {
	dst = appendErrorJSON(dst, ev)
	dst = append(dst, `,"reuseaddr":`...)
	dst = strconv.AppendBool(dst, ev.ReuseAddr)
	dst = append(dst, `,"reuseport":`...)
	dst = strconv.AppendBool(dst, ev.ReusePort)
	dst = append(dst, `,"v6only":`...)
	dst = strconv.AppendBool(dst, ev.V6Only)
	dst = appendFailureExplanationJSON(dst, ev)
	dst = appendHoldersJSON(append(dst, `,"holders":`...), ev.Holders)
	if ev.HoldersError != "" {
		dst = append(dst, `,"holders_error":`...)
		dst = AppendJSONString(dst, []byte(ev.HoldersError))
	}
	return dst
}

// appendFailureExplanationJSON appends the text's explanation of a
// failure (escaped there for a terminal), built on the stack first.
func appendFailureExplanationJSON(dst []byte, ev *event.Event) []byte {
	var buf [512]byte
	dst = append(dst, `,"explain":`...)
	return AppendJSONString(dst, appendExplanation(buf[:0], ev))
}

func failureText(dst []byte, ev *event.Event) []byte {
	return appendExplanation(append(dst, ' '), ev)
}

// A drop is of a UDP socket (what it dropped since the last, why, and its
// receive buffer) or of a port no socket had the datagrams of.

func dropJSON(dst []byte, ev *event.Event) []byte {
	dst = append(dst, `,"drops":`...)
	dst = strconv.AppendUint(dst, uint64(ev.Drops), 10)
	dst = append(dst, `,"drop_reason":`...)
	dst = AppendJSONString(dst, []byte(ev.DropReason))
	dst = append(dst, `,"rcvbuf":`...)
	dst = strconv.AppendUint(dst, uint64(ev.RcvBuf), 10)
	dst = append(dst, `,"queued":`...)
	dst = strconv.AppendUint(dst, uint64(ev.Queued), 10)
	var buf [512]byte
	dst = append(dst, `,"explain":`...)
	dst = AppendJSONString(dst, appendDropExplanation(buf[:0], ev))
	if ev.Listeners != nil {
		dst = appendHoldersJSON(append(dst, `,"listeners_elsewhere":`...), ev.Listeners)
		dst = append(dst, `,"listeners_netns":`...)
		dst = strconv.AppendUint(dst, uint64(ev.ListenersNetNS), 10)
	}
	return dst
}

func dropText(dst []byte, ev *event.Event) []byte {
	dst = append(dst, " drops="...)
	dst = strconv.AppendUint(dst, uint64(ev.Drops), 10)
	dst = append(dst, " drop_reason="...)
	dst = append(dst, ev.DropReason...)
	if ev.RcvBuf > 0 { // a socket's: none for datagrams no socket had
		dst = append(dst, " rcvbuf="...)
		dst = strconv.AppendUint(dst, uint64(ev.RcvBuf), 10)
		dst = append(dst, " queued="...)
		dst = strconv.AppendUint(dst, uint64(ev.Queued), 10)
	}
	return appendDropExplanation(append(dst, ' '), ev)
}

// appendDropExplanation says what a drop's reason means for the socket.
func appendDropExplanation(dst []byte, ev *event.Event) []byte {
	switch ev.DropReason {
	case "SOCKET_RCVBUFF":
		dst = append(dst, "its receive buffer was full ("...)
		if ev.Queued > 0 { // none said when a socket's last drops are told at its close
			dst = strconv.AppendUint(dst, uint64(ev.Queued), 10)
			dst = append(dst, " of "...)
		}
		dst = strconv.AppendUint(dst, uint64(ev.RcvBuf), 10)
		return append(dst, " bytes): the process reads slower than datagrams arrive (a larger SO_RCVBUF, up to net.core.rmem_max, absorbs bursts)"...)
	case "PROTO_MEM":
		return append(dst, "UDP's memory on this host was used up (net.ipv4.udp_mem)"...)
	case "NO_SOCKET":
		return appendNoSocket(dst, ev)
	case "UDP_CSUM":
		return append(dst, "their UDP checksum was wrong: damaged on the way (a faulty NIC, driver, cable or middlebox)"...)
	}
	// A DNS client's message, either way (udp_errors.bpf.c).
	if ev.DropInbound {
		dst = append(dst, "this host dropped it before the socket got it ("...)
	} else {
		dst = append(dst, "this host dropped it on its way out ("...)
	}
	dst = append(dst, ev.DropReason...)
	return appendDropCause(append(dst, ')'), ev.DropReason)
}

// appendICMPJSON appends the "icmp" object of a failure's ICMP error.
func appendICMPJSON(dst []byte, ev *event.Event) []byte {
	dst = append(dst, `,"icmp":{"from":"`...)
	dst = ev.ICMPFrom.AppendTo(dst)
	dst = append(dst, `","type":`...)
	dst = strconv.AppendUint(dst, uint64(ev.ICMPType), 10)
	dst = append(dst, `,"code":`...)
	dst = strconv.AppendUint(dst, uint64(ev.ICMPCode), 10)
	dst = append(dst, `,"name":"`...)
	dst = append(dst, ev.ICMPName()...)
	return append(dst, `"}`...)
}
