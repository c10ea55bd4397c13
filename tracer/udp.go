// SPDX-License-Identifier: Apache-2.0

package tracer

import (
	"errors"
	"fmt"
	"math"
	"sync"
	"time"

	"github.com/cilium/ebpf"

	"github.com/conntrace/conntrace/tracer/containers"
	"github.com/conntrace/conntrace/tracer/internal/bpfobj"
)

// UDP's flows are followed by cgroup programs at the root of the cgroup
// v2 hierarchy (bpf/udp_flows.bpf.c), in every hook mode. A flow ends in
// the kernel when its socket, with no other flow, closes; the sweep ends
// the rest: the flows of sockets closed with several, and idle ones.
const (
	// sweepEvery is how often the sweep runs, at most; a shorter idle
	// time runs it four times as often.
	sweepEvery = time.Second
	// udpIdleMin bounds Config.UDPIdle from below.
	udpIdleMin = time.Second
)

// cgroup2Root is where UDP's programs attach.
var cgroup2Root = sync.OnceValues(containers.Mount)

// udpRoot is the cgroup v2 hierarchy's root, or why UDP's flows cannot be
// followed.
func udpRoot() (string, error) {
	if noCgroup2ForTest {
		return "", errors.New("no cgroup v2 hierarchy is mounted")
	}
	root, err := cgroup2Root()
	if err != nil {
		return "", fmt.Errorf("no cgroup v2 hierarchy to attach to: %w", err)
	}
	return root, nil
}

// sweeper runs the sweep program from Open to the run's stop, beside the
// reader: its records come through the ring like every other.
type sweeper struct {
	prog *ebpf.Program
	args bpfobj.ConntraceUdpSweep
	stop chan struct{}
	done chan struct{}

	mu  sync.Mutex
	err error // the first sweep that failed
}

func startSweeper(prog *ebpf.Program, idle time.Duration) *sweeper {
	s := &sweeper{prog: prog, stop: make(chan struct{}), done: make(chan struct{})}
	s.args.IdleOneWay, s.args.IdleBoth = uint64(DefaultUDPIdleOneWay), uint64(DefaultUDPIdleBoth)
	every := sweepEvery
	if idle > 0 {
		s.args.IdleOneWay, s.args.IdleBoth = uint64(idle), uint64(idle)
		every = min(every, idle/4)
	}
	go func() {
		defer close(s.done)
		tick := time.NewTicker(every)
		defer tick.Stop()
		for {
			select {
			case <-s.stop:
				return
			case <-tick.C:
				s.sweep()
			}
		}
	}()
	return s
}

// sweep runs the program once.
func (s *sweeper) sweep() {
	_, err := s.prog.Run(&ebpf.RunOptions{Context: &s.args, ContextOut: &s.args})
	if err != nil {
		s.mu.Lock()
		if s.err == nil {
			s.err = fmt.Errorf("the UDP flow sweep failed: %w", err)
		}
		s.mu.Unlock()
	}
}

// final stops the sweeps and runs a last one that ends the flows of the
// sockets closed since the one before, and no idle flow, and tells the
// drops of no socket not told yet.
func (s *sweeper) final() {
	if s == nil {
		return
	}
	s.close()
	s.args.IdleOneWay, s.args.IdleBoth = math.MaxInt64, math.MaxInt64
	s.args.Last = 1
	s.sweep()
}

// close stops the sweeps; safe to call more than once.
func (s *sweeper) close() {
	if s == nil {
		return
	}
	select {
	case <-s.stop:
	default:
		close(s.stop)
	}
	<-s.done
}

// failed is the first sweep's error, or nil.
func (s *sweeper) failed() error {
	if s == nil {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.err
}
