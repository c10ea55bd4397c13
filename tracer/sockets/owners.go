// SPDX-License-Identifier: Apache-2.0

package sockets

import (
	"sync"

	"github.com/conntrace/conntrace/tracer/containers"
)

// Owner is one process's descriptor of a socket.
type Owner struct {
	Inode, PID uint32
	FD         int32
	Comm       string
}

// OwnerFinder finds sockets' processes in the kernel (package
// tracer/sockets/owners, which registers itself when imported).
type OwnerFinder interface {
	// Find returns every process's descriptors of the sockets with
	// these inodes.
	Find(inodes []uint32) ([]Owner, error)
}

var (
	findersMu   sync.Mutex
	loadFinder  func() (OwnerFinder, error)
	finder      OwnerFinder
	finderFound bool
)

// UseOwnerFinder makes load, called at the first lookup, what finds
// sockets' processes; when it fails, or without one, a walk of /proc
// answers (WalkProcs).
func UseOwnerFinder(load func() (OwnerFinder, error)) {
	findersMu.Lock()
	defer findersMu.Unlock()
	loadFinder, finder, finderFound = load, nil, false
}

func ownerFinder() OwnerFinder {
	findersMu.Lock()
	defer findersMu.Unlock()
	if !finderFound && loadFinder != nil {
		finder, _ = loadFinder()
		finderFound = true
	}
	return finder
}

// ownersInKernel finds the processes of socks through the finder; false
// when there is none here.
func ownersInKernel(socks []Socket, want map[uint32][]int) bool {
	f := ownerFinder()
	if f == nil {
		return false
	}
	inodes := make([]uint32, 0, len(want))
	for ino := range want {
		inodes = append(inodes, ino)
	}
	found, err := f.Find(inodes)
	if err != nil {
		return false
	}
	type procSocket struct{ pid, inode uint32 }
	seen := map[procSocket]bool{}
	ctrs := containerCache{}
	for _, o := range found {
		if seen[procSocket{o.PID, o.Inode}] {
			continue // its first descriptor only
		}
		seen[procSocket{o.PID, o.Inode}] = true
		for _, i := range want[o.Inode] {
			socks[i].Procs = append(socks[i].Procs, Proc{PID: o.PID, Comm: o.Comm, FD: int(o.FD), Container: ctrs.of(o.PID)})
		}
	}
	for i := range socks {
		socks[i].ProcsSeen = true
	}
	return true
}

// containerCache names each process's container once per lookup.
type containerCache map[uint32]*containers.Container

func (c containerCache) of(pid uint32) *containers.Container {
	ctr, ok := c[pid]
	if !ok {
		ctr = containers.OfPID(pid, state)
		c[pid] = ctr
	}
	return ctr
}
