// SPDX-License-Identifier: Apache-2.0

package output

import (
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/conntrace/conntrace/tracer/event"
	"github.com/conntrace/conntrace/tracer/sockets"
)

// appendExplanation says in words what a failure means:
// "ECONNREFUSED: nothing listening on 10.0.0.7:5432".
func appendExplanation(dst []byte, ev *event.Event) []byte {
	dst = append(dst, ev.ErrorName()...)
	dst = append(dst, ": "...)
	if ev.Type == event.BindFail {
		return appendBindExplanation(dst, ev)
	}
	if ev.Proto == event.ProtoUDP {
		return appendUDPError(dst, ev)
	}
	peer := func(dst []byte) []byte { return AppendAddrPort(dst, ev.RAddr, ev.RPort) }
	if rejectedHere(ev) {
		dst = append(dst, "a firewall rule on this host rejected the connection to "...)
		dst = peer(dst)
		return append(dst, " (netfilter dropped the SYN, NETFILTER_DROP, and answered in the peer's place)"...)
	}
	if ev.ICMPFrom.IsValid() && ev.Errno != 0 && !(ev.Drops > 0 && ev.DropReason == "NEIGH_FAILED") {
		dst = ev.ICMPFrom.AppendTo(dst)
		dst = append(dst, " answered the SYN to "...)
		dst = peer(dst)
		dst = append(dst, " with "...)
		return appendICMPCause(appendICMP(dst, ev), ev)
	}
	switch ev.ErrorName() {
	case "ECONNREFUSED":
		if ev.Listeners != nil {
			return appendRefusedHere(dst, ev)
		}
		dst = append(dst, "nothing listening on "...)
		dst = peer(dst)
		return append(dst, " (or a firewall rejected it)"...)
	case "ETIMEDOUT":
		return appendTimedOut(dst, ev)
	case "EHOSTUNREACH":
		if ev.Drops > 0 && ev.DropReason == "NEIGH_FAILED" {
			dst = append(dst, "no ARP/NDP answer from the next hop to "...)
			dst = ev.RAddr.AppendTo(dst)
			dst = appendDevice(dst, ev)
			return append(dst, " (NEIGH_FAILED): no host has that address on the link"...)
		}
		// Not "no route to host" (strerror's words): without the
		// ICMP error itself (the tracepoint mode) it may as well be a
		// firewall's REJECT, with a route all the way.
		dst = ev.RAddr.AppendTo(dst)
		dst = append(dst, " cannot be reached: an ICMP error answered the SYN (a router with no way there, or a firewall's REJECT on the path or at the peer), or a route here says unreachable"...)
		if ev.DropsWatched && ev.Drops == 0 {
			dst = append(dst, "; this host dropped nothing"...)
		}
		return dst
	case "ENETUNREACH":
		if a := ev.RAddr.Unmap(); a.IsMulticast() || a == netip.AddrFrom4([4]byte{255, 255, 255, 255}) {
			// The kernel refuses a TCP connect to a route of either.
			dst = a.AppendTo(dst)
			if a.IsMulticast() {
				return append(dst, " is a multicast address: TCP connects to one host only"...)
			}
			return append(dst, " is the broadcast address: TCP connects to one host only"...)
		}
		dst = append(dst, "no route to the network of "...)
		return ev.RAddr.AppendTo(dst)
	case "EADDRNOTAVAIL":
		dst = append(dst, "no free local port to reach "...)
		dst = peer(dst)
		return append(dst, " (ephemeral ports exhausted), or the source address is not on this host"...)
	case "EACCES", "EPERM":
		dst = append(dst, "connecting to "...)
		dst = peer(dst)
		return append(dst, " was refused by local policy (firewall, cgroup or security module)"...)
	case "aborted":
		dst = append(dst, "the application closed the socket before the handshake completed"...)
		if ev.Drops > 0 && !ev.DropInbound {
			// An ICMP error from a REJECT here comes while connect()
			// holds the socket: a soft error, which SO_ERROR hands the
			// application (and clears), and the socket stays open.
			dst = append(dst, ", after this host dropped its SYN ("...)
			dst = append(dst, ev.DropReason...)
			dst = appendDevice(dst, ev)
			dst = append(dst, ')')
			if ev.DropReason == "NETFILTER_DROP" {
				dst = append(dst, ": a firewall rule here (a REJECT's ICMP error reaches the application only through SO_ERROR)"...)
			}
		}
		if ev.ICMPFrom.IsValid() {
			dst = append(dst, "; "...)
			dst = appendICMP(dst, ev)
			dst = append(dst, " came from "...)
			dst = ev.ICMPFrom.AppendTo(dst)
			dst = append(dst, " while connect() held the socket: a soft error, which only SO_ERROR returns"...)
		}
		return dst
	}
	dst = append(dst, "connect to "...)
	dst = peer(dst)
	return append(dst, " failed"...)
}

// appendUDPError explains the ICMP error a connected UDP socket got for
// its flow, which its next send or recv returns.
func appendUDPError(dst []byte, ev *event.Event) []byte {
	peer := func(dst []byte) []byte { return AppendAddrPort(dst, ev.RAddr, ev.RPort) }
	switch ev.ErrorName() {
	case "ECONNREFUSED":
		if ev.Listeners != nil {
			dst = appendRefusedHere(dst, ev)
		} else {
			dst = append(dst, "nothing is bound to "...)
			dst = append(peer(dst), " (or a firewall rejected the datagrams)"...)
		}
		if ev.ICMPFrom.IsValid() {
			dst = ev.ICMPFrom.AppendTo(append(dst, "; "...))
			return appendICMP(append(dst, " answered with "...), ev)
		}
		return append(dst, "; ICMP port unreachable came back"...)
	case "EHOSTUNREACH", "ENETUNREACH":
		dst = ev.RAddr.AppendTo(dst)
		switch {
		case !ev.ICMPWatched: // the send failed
			return append(dst, " cannot be reached: no route here"...)
		case ev.ICMPFrom.IsValid():
			dst = append(dst, " cannot be reached: "...)
			dst = ev.ICMPFrom.AppendTo(dst)
			return appendICMP(append(dst, " answered with "...), ev)
		}
		return append(dst, " cannot be reached: an ICMP error came back (a router with no way there, or a firewall's REJECT)"...)
	case "EPERM", "EACCES":
		dst = peer(append(dst, "sending to "...))
		if ev.DropReason == "NETFILTER_DROP" {
			return append(dst, " was refused by a firewall rule on this host, which dropped the datagram (NETFILTER_DROP)"...)
		}
		return append(dst, " was refused by local policy (a firewall rule, cgroup or security module)"...)
	case "EAGAIN":
		return append(dst, "the socket's send buffer was full (a non-blocking send): datagrams are sent faster than the device takes them"...)
	case "EMSGSIZE":
		dst = peer(append(dst, "a datagram to "...))
		if !ev.ICMPWatched {
			return append(dst, " was larger than the socket sends (65,507 bytes, or the path's MTU with IP_PMTUDISC_DO)"...)
		}
		if ev.ICMPFrom.IsValid() {
			dst = append(dst, " was larger than the path takes: "...)
			return appendICMP(append(ev.ICMPFrom.AppendTo(dst), " answered with "...), ev)
		}
		return append(dst, " was larger than the path takes (ICMP fragmentation needed)"...)
	}
	if ev.ICMPFrom.IsValid() {
		dst = ev.ICMPFrom.AppendTo(append(peer(append(dst, "the datagrams to "...)), " got an answer from "...))
		return appendICMP(append(dst, ": "...), ev)
	}
	if ev.ICMPWatched {
		return peer(append(dst, "an ICMP error came back for the datagrams to "...))
	}
	return peer(append(dst, "sending to "...))
}

// appendICMP names ev's ICMP error: "ICMP host unreachable (type 3, code
// 1)".
func appendICMP(dst []byte, ev *event.Event) []byte {
	if ev.ICMPFrom.Is4() {
		dst = append(dst, "ICMP "...)
	} else {
		dst = append(dst, "ICMPv6 "...)
	}
	dst = append(dst, ev.ICMPName()...)
	dst = append(dst, " (type "...)
	dst = strconv.AppendUint(dst, uint64(ev.ICMPType), 10)
	dst = append(dst, ", code "...)
	dst = strconv.AppendUint(dst, uint64(ev.ICMPCode), 10)
	return append(dst, ')')
}

// appendICMPCause says what an ICMP error about a SYN means when it is
// not a router's plain "unreachable": a firewall's rejection, said as
// one (administratively prohibited), or the destination itself answering
// that it is unreachable, which only a REJECT does (a TCP stack with
// nothing listening answers with a reset).
func appendICMPCause(dst []byte, ev *event.Event) []byte {
	code := [2]uint8{ev.ICMPType, ev.ICMPCode}
	var prohibited, unreachable bool
	if ev.ICMPFrom.Is4() {
		prohibited = code == [2]uint8{3, 9} || code == [2]uint8{3, 10} || code == [2]uint8{3, 13}
		unreachable = code == [2]uint8{3, 1} || code == [2]uint8{3, 3}
	} else {
		prohibited = code == [2]uint8{1, 1} || code == [2]uint8{1, 5} || code == [2]uint8{1, 6}
		unreachable = code == [2]uint8{1, 3} || code == [2]uint8{1, 4}
	}
	peer := ev.ICMPFrom == ev.RAddr.Unmap()
	switch {
	case prohibited && peer:
		return append(dst, ": a firewall at the peer rejected the connection"...)
	case prohibited:
		return append(dst, ": a firewall on the path rejected the connection"...)
	case unreachable && peer:
		return append(dst, ": the peer itself answered, so it is up and a firewall there rejected the connection (REJECT)"...)
	}
	return dst
}

// explained says whether ev has an explanation: a failure, or a close
// that was not orderly (reset, timeout).
func explained(ev *event.Event) bool {
	return ev.Type.IsFailure() || ev.Type == event.Close && ev.Proto != event.ProtoUDP && ev.Reason != event.ReasonFIN && ev.Reason != event.ReasonNone
}

// appendCloseExplanation says why a connection ended abruptly, from what
// the kernel had at the close: "reset by the peer after 35.200s without a
// packet from it: an idle timeout (...)".
func appendCloseExplanation(dst []byte, ev *event.Event) []byte {
	silent := func(dst []byte, who string) []byte {
		// Idle is counted in the kernel's ticks: 0 is "within one",
		// not a silence worth naming.
		if !ev.IdleKnown || ev.Idle == 0 {
			return dst
		}
		dst = append(dst, " after "...)
		dst = appendDuration(dst, ev.Idle)
		dst = append(dst, " without a packet from "...)
		return append(dst, who...)
	}
	switch ev.Reason {
	case event.ReasonResetIn:
		dst = append(dst, "reset by the peer"...)
		if ev.PeerUnaccepted {
			// Not an idle timeout: the peer never took it.
			return append(dst, ", a listener on this host that never accepted the connection: it waited in the accept queue until the listener closed (a full or unserved accept queue)"...)
		}
		dst = silent(dst, "it")
		if ev.IdleKnown && ev.Idle >= time.Second {
			dst = append(dst, ": an idle timeout (the peer's, or a load balancer's, NAT's or firewall's on the path)"...)
		}
	case event.ReasonResetOut:
		dst = append(dst, "reset by this side"...)
		dst = silent(dst, "the peer")
		switch {
		case ev.Linger0:
			dst = append(dst, ": SO_LINGER 0 at close()"...)
		case ev.Unread > 0:
			dst = append(dst, ": closed with "...)
			dst = strconv.AppendUint(dst, uint64(ev.Unread), 10)
			dst = append(dst, " bytes unread"...)
		}
	case event.ReasonTimeout:
		dst = append(dst, "timed out"...)
		dst = silent(dst, "the peer")
		if ev.Retransmits > 0 {
			dst = append(dst, ": "...)
			dst = strconv.AppendUint(dst, uint64(ev.Retransmits), 10)
			dst = append(dst, " segments sent again went unanswered"...)
		}
	}
	return dst
}

// rejectedHere says a failure came from this host's firewall: the SYN was
// dropped by netfilter going out, and an answer came anyway (a REJECT's
// reset or ICMP error: refused, unreachable), where a drop alone would
// have timed out.
func rejectedHere(ev *event.Event) bool {
	return ev.Drops > 0 && ev.DropReason == "NETFILTER_DROP" && !ev.DropInbound && ev.Errno != 0 &&
		ev.ErrorName() != "ETIMEDOUT"
}

// appendTimedOut explains a handshake without an answer by what this host
// saw: "no answer from 198.18.0.2:5432 to 2 SYNs over 3.008s; this host
// dropped them (NETFILTER_DROP): a firewall rule here".
func appendTimedOut(dst []byte, ev *event.Event) []byte {
	dst = append(dst, "no answer from "...)
	dst = AppendAddrPort(dst, ev.RAddr, ev.RPort)
	dst = append(dst, " to "...)
	dst = strconv.AppendUint(dst, uint64(ev.Retransmits)+1, 10)
	if ev.Retransmits == 0 {
		dst = append(dst, " SYN over "...)
	} else {
		dst = append(dst, " SYNs over "...)
	}
	dst = appendDuration(dst, ev.Latency)
	if h := fullListener(ev); h != nil && ev.Drops == 0 {
		dst = append(dst, "; the listener on "...)
		dst = AppendAddrPort(dst, h.LAddr, h.LPort)
		dst = append(dst, ", "...)
		dst = appendProcs(dst, h.Procs, h.ProcsSeen)
		dst = append(dst, ", has a full accept queue ("...)
		dst = strconv.AppendUint(dst, uint64(h.Queued), 10)
		dst = append(dst, " waiting, backlog "...)
		dst = strconv.AppendUint(dst, uint64(h.Backlog), 10)
		dst = append(dst, "): it is not accepting, so this host drops the SYNs"...)
		if ev.OverflowsKnown {
			dst = append(dst, " (ListenOverflows "...)
			dst = strconv.AppendUint(dst, ev.ListenOverflows, 10)
			dst = append(dst, " in its network namespace)"...)
		}
		return dst
	}
	switch {
	case !ev.DropsWatched:
		return append(dst, " (host down or packets dropped; drops on this host are not watched here)"...)
	case ev.Drops == 0:
		return append(dst, "; this host dropped none of them: a firewall on the path or at the peer, or the peer is down"...)
	case ev.DropInbound:
		dst = append(dst, "; this host dropped the answers ("...)
	default:
		dst = append(dst, "; this host dropped them ("...)
	}
	dst = append(dst, ev.DropReason...)
	dst = appendDevice(dst, ev)
	dst = append(dst, ')')
	return appendDropCause(dst, ev.DropReason)
}

// appendDropCause says what a drop reason of this host's means, for the
// reasons a timeout is most often made of.
func appendDropCause(dst []byte, reason string) []byte {
	switch reason {
	case "NETFILTER_DROP":
		dst = append(dst, ": a firewall rule here (nftables, iptables)"...)
	case "NEIGH_FAILED":
		dst = append(dst, ": no ARP/NDP answer from the next hop"...)
	case "SOCKET_RCVBUFF":
		dst = append(dst, ": the socket's receive buffer was full"...)
	}
	return dst
}

// fullListener is the listener on this host that a timed-out connect
// reached and whose accept queue is full (more waiting than its backlog:
// the kernel then drops new SYNs), or nil.
// FullListener is, for a connect_fail whose Listeners were looked up, the
// listener on the address connected to whose accept queue was over its
// backlog (it drops SYNs); nil when none.
func FullListener(ev *event.Event) *event.Holder { return fullListener(ev) }

func fullListener(ev *event.Event) *event.Holder {
	for i := range ev.Listeners {
		if h := &ev.Listeners[i]; sockets.Conflicts(ev.RAddr, h.LAddr) && h.Queued > h.Backlog {
			return h
		}
	}
	return nil
}

// appendDevice appends " on veth0", the device of the last drop, by name
// when it could be looked up.
func appendDevice(dst []byte, ev *event.Event) []byte {
	switch {
	case ev.DropDevice != "":
		dst = append(dst, " on "...)
		return AppendTextSafe(dst, []byte(ev.DropDevice))
	case ev.DropIfindex != 0:
		dst = append(dst, " on interface "...)
		return strconv.AppendUint(dst, uint64(ev.DropIfindex), 10)
	}
	return dst
}

// appendRefusedHere explains a refusal by an address of this host from
// who listens on the port there: "nothing listens on 127.0.0.2:9002;
// 127.0.0.1:9002 is held by 5120 python3 (LISTEN): the service is bound to
// another address".
//
// When a socket started listening on the port after the refusal, the
// listeners found are named, not blamed: "nothing listened on
// 127.0.0.1:9002 then; a socket started listening on port 9002 40ms
// after the refusal; now 0.0.0.0:9002 is held by 5120 python3 (LISTEN)".
func appendRefusedHere(dst []byte, ev *event.Event) []byte {
	later := ev.ListenAfter > 0
	if later {
		dst = append(dst, "nothing listened on "...)
	} else {
		dst = append(dst, "nothing listens on "...)
	}
	dst = AppendAddrPort(dst, ev.RAddr, ev.RPort)
	if ev.ListenersNetNS != ev.NetNS {
		dst = append(dst, " (an address of network namespace "...)
		dst = strconv.AppendUint(dst, uint64(ev.ListenersNetNS), 10)
		dst = append(dst, ')')
	}
	if len(ev.Listeners) == 0 {
		dst = append(dst, ", nor on any other address of port "...)
		return strconv.AppendUint(dst, uint64(ev.RPort), 10)
	}
	if later {
		dst = append(dst, " then; a socket started listening on port "...)
		dst = strconv.AppendUint(dst, uint64(ev.RPort), 10)
		dst = append(dst, ' ')
		dst = appendDuration(dst, ev.ListenAfter)
		dst = append(dst, " after the refusal; now "...)
	} else {
		dst = append(dst, "; "...)
	}
	dst, otherFamily, takes := appendBound(dst, ev.Listeners, ev.RAddr)
	dest := ev.RAddr.Unmap()
	switch {
	case later:
		return dst
	case takes && ev.Proto == event.ProtoUDP:
		return append(dst, ", which takes this address, yet the datagrams were refused: a firewall rule (REJECT)"...)
	case takes:
		return append(dst, ", which takes this address, yet the connection was refused: a firewall rule (REJECT), or a full accept queue with net.ipv4.tcp_abort_on_overflow=1"...)
	case otherFamily == len(ev.Listeners) && dest.Is6():
		return append(dst, ": the service takes IPv4 only"...)
	case otherFamily == len(ev.Listeners):
		return append(dst, ": the service takes IPv6 only (IPV6_V6ONLY)"...)
	}
	return append(dst, ": the service is bound to another address"...)
}

// appendBound appends "127.0.0.1:9002 is held by 5120 python3 (LISTEN)"
// for each socket bound to the port, and says how many are of the other
// family than dest and whether one takes dest.
func appendBound(dst []byte, bound []event.Holder, dest netip.Addr) (_ []byte, otherFamily int, takes bool) {
	dest = dest.Unmap()
	for i := range bound {
		l := &bound[i]
		if i > 0 {
			dst = append(dst, "; "...)
		}
		dst = AppendAddrPort(dst, l.LAddr, l.LPort)
		dst = append(dst, " is held by "...)
		dst = appendProcs(dst, l.Procs, l.ProcsSeen)
		dst = append(dst, " ("...)
		dst = append(dst, l.State...)
		dst = append(dst, ')')
		addr := l.LAddr.Unmap()
		switch {
		case addr.Is4() != dest.Is4():
			otherFamily++
		case addr == dest || addr.IsUnspecified():
			takes = true
		}
	}
	return dst, otherFamily, takes
}

// appendNoSocket explains UDP datagrams sent to a port nothing was bound
// to: "nothing is bound to 198.18.0.1:5353; 127.0.0.1:5353 is held by 812
// dnsmasq (UNCONN): the service is bound to another address; the sender
// gets ICMP port unreachable".
func appendNoSocket(dst []byte, ev *event.Event) []byte {
	dst = append(dst, "nothing is bound to "...)
	dst = AppendAddrPort(dst, ev.LAddr, ev.LPort)
	if ev.Listeners != nil && len(ev.Listeners) == 0 {
		dst = append(dst, ", nor to any other address of port "...)
		dst = strconv.AppendUint(dst, uint64(ev.LPort), 10)
	} else if ev.Listeners != nil {
		dst = append(dst, "; "...)
		var otherFamily int
		var takes bool
		dst, otherFamily, takes = appendBound(dst, ev.Listeners, ev.LAddr)
		switch {
		case takes:
			dst = append(dst, ", which takes this address: bound since"...)
		case otherFamily == len(ev.Listeners) && ev.LAddr.Unmap().Is6():
			dst = append(dst, ": the service takes IPv4 only"...)
		case otherFamily == len(ev.Listeners):
			dst = append(dst, ": the service takes IPv6 only (IPV6_V6ONLY)"...)
		default:
			dst = append(dst, ": the service is bound to another address"...)
		}
	}
	return append(dst, "; the sender gets ICMP port unreachable"...)
}

// appendProcs names the processes that have a socket: "1156 nginx, 1157
// nginx in container web"; "no process" when the kernel said so, else "a
// process that could not be seen".
func appendProcs(dst []byte, procs []sockets.Proc, seen bool) []byte {
	switch {
	case len(procs) == 0 && seen:
		return append(dst, "no process"...)
	case len(procs) == 0:
		return append(dst, "a process that could not be seen"...)
	}
	for j, p := range procs {
		if j > 0 {
			dst = append(dst, ", "...)
		}
		dst = strconv.AppendUint(dst, uint64(p.PID), 10)
		dst = append(dst, ' ')
		dst = AppendTextSafe(dst, p.Comm)
		if p.Container != nil {
			dst = append(dst, " in container "...)
			dst = AppendTextSafe(dst, p.Container.Label())
		}
	}
	return dst
}

func appendBindExplanation(dst []byte, ev *event.Event) []byte {
	local := func(dst []byte) []byte { return AppendAddrPort(dst, ev.LAddr, ev.LPort) }
	switch ev.ErrorName() {
	case "EADDRINUSE":
		return appendHolders(append(local(dst), ' '), ev)
	case "EACCES":
		if ev.PortStart == 0 || ev.LPort >= ev.PortStart {
			// Not the privileged ports: a security module's or a
			// cgroup program's policy.
			dst = append(dst, "binding "...)
			dst = local(dst)
			return append(dst, " was refused by local policy (a security module or a cgroup's BPF program)"...)
		}
		dst = append(dst, "ports below "...)
		dst = strconv.AppendUint(dst, uint64(ev.PortStart), 10)
		dst = append(dst, " (net.ipv4.ip_unprivileged_port_start here) need root or CAP_NET_BIND_SERVICE (binding "...)
		dst = local(dst)
		return append(dst, ')')
	case "EADDRNOTAVAIL":
		dst = ev.LAddr.AppendTo(dst)
		return append(dst, " is not an address of this host (or of the process's network namespace)"...)
	case "EINVAL":
		dst = append(dst, "the socket is already bound, or the address is invalid ("...)
		dst = local(dst)
		return append(dst, ')')
	}
	dst = append(dst, "bind to "...)
	dst = local(dst)
	return append(dst, " failed"...)
}

// appendHolders says who holds the port: "is held by 1156 nginx, 1157
// nginx (0.0.0.0:8080 LISTEN, one socket in 2 processes)", each socket
// in turn, and whether several share the port with SO_REUSEPORT.
func appendHolders(dst []byte, ev *event.Event) []byte {
	if ev.HoldersError != "" {
		dst = append(dst, "is in use; who holds it is unknown: "...)
		for i, word := range strings.Split(ev.HoldersError, " ") {
			if i > 0 {
				dst = append(dst, ' ')
			}
			dst = AppendTextSafe(dst, []byte(word))
		}
		return dst
	}
	if len(ev.Holders) == 0 {
		return append(dst, "is in use (the holder has gone or could not be seen)"...)
	}
	if onlyTimeWait(ev) {
		return appendTimeWait(dst, ev)
	}
	dst = append(dst, "is held by "...)
	reuse, written := 0, 0
	for i := range ev.Holders {
		h := &ev.Holders[i]
		if h.ReusePort {
			reuse++
		}
		// Sockets alike (an SO_REUSEPORT group in one process) are
		// named once, with their number, at the first of them.
		same := 1
		for j := range ev.Holders {
			if sameHolder(h, &ev.Holders[j]) {
				if j < i {
					same = 0
					break
				}
				if j > i {
					same++
				}
			}
		}
		if same == 0 {
			continue
		}
		if written++; written > 1 {
			dst = append(dst, "; "...)
		}
		dst = appendProcs(dst, h.Procs, h.ProcsSeen)
		dst = append(dst, " ("...)
		if h.LAddr != ev.LAddr {
			dst = AppendAddrPort(dst, h.LAddr, h.LPort)
			dst = append(dst, ' ')
		}
		dst = append(dst, h.State...)
		if same > 1 {
			dst = append(dst, ", "...)
			dst = strconv.AppendInt(dst, int64(same), 10)
			dst = append(dst, " sockets"...)
		}
		if len(h.Procs) > 1 {
			if same > 1 {
				dst = append(dst, " in "...) // "2 sockets in 2 processes"
			} else {
				dst = append(dst, ", one socket in "...)
			}
			dst = strconv.AppendInt(dst, int64(len(h.Procs)), 10)
			dst = append(dst, " processes"...)
		}
		dst = append(dst, ')')
	}
	n := len(ev.Holders)
	if n > 1 && reuse == n {
		dst = append(dst, "; "...)
		dst = strconv.AppendInt(dst, int64(n), 10)
		dst = append(dst, " sockets share it with SO_REUSEPORT"...)
	} else if reuse == n {
		dst = append(dst, "; it has SO_REUSEPORT"...)
	}
	if reuse == n {
		return appendReusePortConflict(dst, ev)
	}
	return appendAddressConflict(dst, ev)
}

// sameHolder reports whether two sockets would be named alike: the same
// address, state and processes.
func sameHolder(a, b *event.Holder) bool {
	if a.LAddr != b.LAddr || a.LPort != b.LPort || a.State != b.State || a.ProcsSeen != b.ProcsSeen || len(a.Procs) != len(b.Procs) {
		return false
	}
	for i := range a.Procs {
		if a.Procs[i].PID != b.Procs[i].PID {
			return false
		}
	}
	return true
}

// appendReusePortConflict says why holders that all have SO_REUSEPORT
// keep this socket out: it did not set it, or runs as another user than
// the group's (the kernel lets only the same user join).
func appendReusePortConflict(dst []byte, ev *event.Event) []byte {
	if !ev.ReusePort {
		return append(dst, ", which this socket did not set"...)
	}
	for i := range ev.Holders {
		if h := &ev.Holders[i]; h.UID != ev.UID {
			dst = append(dst, "; this socket set it too, but runs as uid "...)
			dst = strconv.AppendUint(dst, uint64(ev.UID), 10)
			dst = append(dst, " and the group belongs to uid "...)
			return strconv.AppendUint(dst, uint64(h.UID), 10)
		}
	}
	return dst
}

// onlyTimeWait says whether ev's port is held by connections in
// TIME_WAIT alone (TCP): no process has it.
func onlyTimeWait(ev *event.Event) bool {
	for i := range ev.Holders {
		if ev.Holders[i].State != "TIME_WAIT" {
			return false
		}
	}
	return ev.Proto == event.ProtoTCP && len(ev.Holders) > 0
}

// appendTimeWait says how long TIME_WAIT connections hold the port, and
// what lets the bind through now.
func appendTimeWait(dst []byte, ev *event.Event) []byte {
	var wait time.Duration
	for i := range ev.Holders {
		wait = max(wait, ev.Holders[i].Expires)
	}
	dst = append(dst, "is held only by "...)
	dst = strconv.AppendInt(dst, int64(len(ev.Holders)), 10)
	if len(ev.Holders) == 1 {
		dst = append(dst, " connection"...)
	} else {
		dst = append(dst, " connections"...)
	}
	dst = append(dst, " in TIME_WAIT, for up to "...)
	dst = appendDuration(dst, wait.Round(time.Second))
	dst = append(dst, " more"...)
	if !ev.ReuseAddr {
		dst = append(dst, ": SO_REUSEADDR on this socket lets it bind now"...)
	}
	return dst
}

// appendAddressConflict says what the addresses of the failing socket and
// its holders have to do with the conflict: IPv6 wildcards take IPv4 too,
// unless IPV6_V6ONLY.
func appendAddressConflict(dst []byte, ev *event.Event) []byte {
	laddr := ev.LAddr.Unmap()
	for i := range ev.Holders {
		h := &ev.Holders[i]
		haddr := h.LAddr.Unmap()
		switch {
		case laddr.Is4() && haddr.Is6() && haddr.IsUnspecified():
			dst = append(dst, "; [::]:"...)
			dst = strconv.AppendUint(dst, uint64(h.LPort), 10)
			return append(dst, " takes IPv4 too (IPV6_V6ONLY off)"...)
		case laddr.Is6() && laddr.IsUnspecified() && haddr.Is4() && !ev.V6Only:
			return append(dst, "; this socket, [::] without IPV6_V6ONLY, takes IPv4 too: with IPV6_V6ONLY it would share the port"...)
		}
	}
	return dst
}

// AppendExplanation appends the one-line explanation of a failure: a
// connect_fail or bind_fail ("ECONNREFUSED: nothing listening on ..."), or
// a dns lookup that got no address; dst unchanged for any other event.
func AppendExplanation(dst []byte, ev *event.Event) []byte {
	switch {
	case ev.Type.IsFailure():
		return appendExplanation(dst, ev)
	case ev.Type == event.DNS && ev.DNS != nil && ev.DNS.Failed():
		return appendDNSExplanation(dst, ev)
	}
	return dst
}
