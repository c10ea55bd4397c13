// SPDX-License-Identifier: Apache-2.0

package tracer

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"syscall"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/btf"
	"github.com/cilium/ebpf/link"
	"github.com/vishvananda/netns"

	"github.com/conntrace/conntrace/tracer/internal/bpfobj"
)

// The iterators that give the UDP sockets open at the start their owners
// (bpf/udp_owners.bpf.c): task_file (Linux 5.8) and udp (5.9) iterators.
const (
	udpOwnerFiles = bpfobj.ConntraceProgUdpOwnerFiles
	udpOwnerSocks = bpfobj.ConntraceProgUdpOwnerSocks
)

// ownersIterable says whether the kernel can run them: iterators attach
// by the kernel's own BTF, which names their contexts where it has them.
// Without, a socket made before conntrace gets its owner when its
// process names an address.
var ownersIterable = sync.OnceValue(func() bool {
	spec, err := btf.LoadKernelSpec()
	if err != nil {
		return false
	}
	var files, udp *btf.Struct
	return spec.TypeByName("bpf_iter__task_file", &files) == nil && spec.TypeByName("bpf_iter__udp", &udp) == nil
})

// ownExisting runs the iterators: the processes' files once, then the
// UDP sockets of every network namespace a thread is in (or /run/netns
// names). It returns how many sockets it gave an owner.
func ownExisting(coll *ebpf.Collection) (uint32, error) {
	files, socks := coll.Programs[udpOwnerFiles], coll.Programs[udpOwnerSocks]
	if files == nil || socks == nil {
		return 0, nil
	}
	if err := runIter(files); err != nil {
		return 0, err
	}
	// A thread of its own: it enters each namespace, and ends with the
	// thread if it cannot come back.
	done := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		home, err := netns.Get()
		if err != nil {
			runtime.UnlockOSThread()
			done <- fmt.Errorf("the UDP socket iterator: %w", err)
			return
		}
		defer home.Close()
		err = forEachNetNS(func() error { return runIter(socks) })
		if netns.Set(home) == nil {
			runtime.UnlockOSThread()
		}
		done <- err
	}()
	if err := <-done; err != nil {
		return 0, err
	}
	var n uint32
	if v := coll.Variables[bpfobj.ConntraceVarUdpOwned]; v != nil {
		if err := v.Get(&n); err != nil {
			return 0, fmt.Errorf("read the UDP socket iterator's count: %w", err)
		}
	}
	return n, nil
}

// forEachNetNS calls fn in each network namespace once, on the calling
// (locked) thread. A namespace gone meanwhile is skipped.
func forEachNetNS(fn func() error) error {
	paths, _ := filepath.Glob("/proc/[0-9]*/task/[0-9]*/ns/net")
	more, _ := filepath.Glob("/run/netns/*")
	seen := map[uint64]bool{}
	for _, p := range append(paths, more...) {
		st, err := os.Stat(p)
		if err != nil {
			continue
		}
		ino := st.Sys().(*syscall.Stat_t).Ino
		if seen[ino] {
			continue
		}
		seen[ino] = true
		h, err := netns.GetFromPath(p)
		if err != nil {
			continue
		}
		err = netns.Set(h)
		h.Close()
		if err != nil {
			continue
		}
		if err := fn(); err != nil {
			return err
		}
	}
	return nil
}

// runIter runs iterator prog once, to its end.
func runIter(prog *ebpf.Program) error {
	it, err := link.AttachIter(link.IterOptions{Program: prog})
	if err != nil {
		return fmt.Errorf("attach the iterator %s: %w", prog, err)
	}
	defer it.Close()
	rd, err := it.Open()
	if err != nil {
		return fmt.Errorf("run the iterator %s: %w", prog, err)
	}
	defer rd.Close()
	if _, err := io.Copy(io.Discard, rd); err != nil {
		return fmt.Errorf("run the iterator %s: %w", prog, err)
	}
	return nil
}

// ExistingUDPSockets is how many UDP sockets open when the tracer started
// were given their owners then.
func (t *Tracer) ExistingUDPSockets() int { return int(t.udpOwned) }
