package tracer

import (
	"golang.org/x/sys/unix"

	"github.com/conntrace/conntrace/tracer/sockets"
)

// lookupHolders finds who holds the port a bind() failed on, in the
// failing process's own network namespace (it may be a container's). For
// TCP the listeners are the holders when there are any; otherwise any
// socket bound there (a client's, or TIME_WAIT without SO_REUSEADDR).
func lookupHolders(ev *Event) []Holder {
	holders := []Holder{}
	if ev.Errno != uint32(unix.EADDRINUSE) {
		return holders
	}
	ns, ok := sockets.OpenNSByInode(ev.NetNS, ev.PID)
	if !ok {
		return holders
	}
	defer ns.Close()
	socks, err := sockets.List(ns, []string{ev.Proto.String()}, func(s *sockets.Socket) bool {
		return s.LPort == ev.LPort && sockets.Conflicts(ev.LAddr, s.LAddr)
	})
	if err != nil {
		return holders
	}
	listeners := false
	for _, s := range socks {
		listeners = listeners || s.State == "LISTEN"
	}
	for _, s := range socks {
		if listeners && s.State != "LISTEN" {
			continue
		}
		h := Holder{LAddr: s.LAddr, LPort: s.LPort, State: s.State}
		if len(s.Procs) == 0 {
			holders = append(holders, h)
		}
		for _, p := range s.Procs {
			h.PID, h.Comm = p.PID, p.Comm
			holders = append(holders, h)
		}
	}
	return holders
}
