package output

import (
	"strconv"

	"github.com/conntrace/conntrace/tracer"
)

// appendExplanation says in words what a failure means:
// "ECONNREFUSED: nothing listening on 10.0.0.7:5432".
func appendExplanation(dst []byte, ev *tracer.Event) []byte {
	dst = append(dst, ev.ErrorName()...)
	dst = append(dst, ": "...)
	if ev.Type == tracer.EventBindFail {
		return appendBindExplanation(dst, ev)
	}
	peer := func(dst []byte) []byte { return appendAddrPort(dst, ev.RAddr, ev.RPort) }
	switch ev.ErrorName() {
	case "ECONNREFUSED":
		dst = append(dst, "nothing listening on "...)
		dst = peer(dst)
		return append(dst, " (or a firewall rejected it)"...)
	case "ETIMEDOUT":
		dst = append(dst, "no answer to SYN from "...)
		dst = peer(dst)
		return append(dst, " (host down or packets dropped)"...)
	case "EHOSTUNREACH":
		dst = append(dst, "no route to host "...)
		return ev.RAddr.AppendTo(dst)
	case "ENETUNREACH":
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
		return append(dst, "the application closed the socket before the handshake completed"...)
	}
	dst = append(dst, "connect to "...)
	dst = peer(dst)
	return append(dst, " failed"...)
}

func appendBindExplanation(dst []byte, ev *tracer.Event) []byte {
	local := func(dst []byte) []byte { return appendAddrPort(dst, ev.LAddr, ev.LPort) }
	switch ev.ErrorName() {
	case "EADDRINUSE":
		dst = local(dst)
		if len(ev.Holders) == 0 {
			return append(dst, " is in use (the holder has gone or could not be seen)"...)
		}
		dst = append(dst, " is held by "...)
		listeners := 0
		for i := range ev.Holders {
			h := &ev.Holders[i]
			if i > 0 {
				dst = append(dst, ", "...)
			}
			if h.PID == 0 {
				dst = append(dst, "no process"...)
			} else {
				dst = strconv.AppendUint(dst, uint64(h.PID), 10)
				dst = append(dst, ' ')
				dst = AppendTextSafe(dst, []byte(h.Comm))
			}
			dst = append(dst, " ("...)
			if h.LAddr != ev.LAddr {
				dst = appendAddrPort(dst, h.LAddr, h.LPort)
				dst = append(dst, ' ')
			}
			dst = append(dst, h.State...)
			dst = append(dst, ')')
			if h.State == "LISTEN" {
				listeners++
			}
		}
		if listeners > 1 {
			dst = append(dst, "; several listeners share it with SO_REUSEPORT"...)
		}
		return dst
	case "EACCES":
		dst = append(dst, "ports below 1024 need root or CAP_NET_BIND_SERVICE (binding "...)
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
