package tracer

import (
	"errors"
	"fmt"

	"golang.org/x/sys/unix"

	"github.com/conntrace/conntrace/tracer/sockets"
)

// lookupHolders finds who holds the port a bind() failed on, in the
// failing process's own network namespace (it may be a container's). For
// TCP the listeners are the holders when there are any; otherwise any
// socket bound there (a client's, or TIME_WAIT without SO_REUSEADDR).
// The list is empty, never nil, when nobody was found; an error says why
// the lookup itself failed.
func lookupHolders(ev *Event) ([]Holder, error) {
	holders := []Holder{}
	if ev.Errno != uint32(unix.EADDRINUSE) {
		return holders, nil
	}
	ns, ok := sockets.OpenNSByInode(ev.NetNS, ev.PID)
	if !ok {
		return holders, fmt.Errorf("who holds port %d: network namespace %d has no process left", ev.LPort, ev.NetNS)
	}
	defer ns.Close()
	socks, err := sockets.List(ns, []string{ev.Proto.String()}, func(s *sockets.Socket) bool {
		return s.LPort == ev.LPort && sockets.Conflicts(ev.LAddr, s.LAddr)
	})
	if errors.Is(err, unix.EPROTONOSUPPORT) || errors.Is(err, unix.ENOENT) {
		return holders, fmt.Errorf("who holds port %d: %w (is the %s_diag kernel module available? try 'modprobe %s_diag')",
			ev.LPort, err, ev.Proto, ev.Proto)
	}
	if err != nil {
		return holders, fmt.Errorf("who holds port %d: %w", ev.LPort, err)
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
	return holders, nil
}
