// SPDX-License-Identifier: Apache-2.0

// Package owners finds the processes that have sockets open, in the
// kernel: a task_file BPF iterator (bpf/owners.bpf.c) that makes one pass
// over every process's open files and writes out the sockets asked
// about. Its cost grows with the host's open files, as a walk of
// /proc/*/fd does, but at about a third of a microsecond a file in the
// kernel instead of a readlink(2) each (96,000 files: 32 ms against 625
// ms; TestOwnersManyFiles). Importing it makes package sockets use it;
// where it cannot be loaded (before Linux 5.8, no BTF, no CAP_BPF) the
// /proc walk answers.
package owners

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"sync"
	"unsafe"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"

	"github.com/conntrace/conntrace/tracer/internal/bpfobj"
	"github.com/conntrace/conntrace/tracer/sockets"
)

// ownerIter is the loaded iterator. Its runs are one at a time, since
// the wanted inodes are a map they share; the requests that come while
// one runs are answered together by the next.
type ownerIter struct {
	objs bpfobj.OwnersObjects
	iter *link.Iter

	mu      sync.Mutex
	queue   []*ownerRequest // waiting for the next run
	running bool            // a caller is running the iterator
}

// ownerRequest is one caller's question and, once done is closed, its
// answer.
type ownerRequest struct {
	inodes []uint32
	found  []sockets.Owner
	err    error
	done   chan struct{}
}

var (
	once    sync.Once
	owners  *ownerIter
	loadErr error
)

func init() {
	sockets.UseOwnerFinder(func() (sockets.OwnerFinder, error) {
		if err := Prepare(); err != nil {
			return nil, err
		}
		return owners, nil
	})
}

// Prepare loads the iterator that finds sockets' processes, if it is not
// loaded yet. Call it while the process still has CAP_BPF and CAP_PERFMON
// (or CAP_SYS_ADMIN); running it later takes CAP_BPF only. An error says
// why the slower /proc walk will answer instead.
func Prepare() error {
	once.Do(func() { owners, loadErr = loadOwners() })
	return loadErr
}

func loadOwners() (*ownerIter, error) {
	o := &ownerIter{}
	if err := bpfobj.LoadOwnersObjects(&o.objs, nil); err != nil {
		return nil, fmt.Errorf("load the socket owners iterator: %w", err)
	}
	it, err := link.AttachIter(link.IterOptions{Program: o.objs.SocketOwners})
	if err != nil {
		o.objs.Close()
		return nil, fmt.Errorf("attach the socket owners iterator: %w", err)
	}
	o.iter = it
	return o, nil
}

// wantedMax is how many inodes one run asks about: wanted_inodes's
// max_entries (TestOwnersMapSize).
const wantedMax = 16384

// Find returns, for each of inodes, every process's descriptors of it.
// The first caller runs the iterator, for itself and every request that
// queues meanwhile, until none is left.
func (o *ownerIter) Find(inodes []uint32) ([]sockets.Owner, error) {
	req := &ownerRequest{inodes: inodes, done: make(chan struct{})}
	o.mu.Lock()
	o.queue = append(o.queue, req)
	if o.running {
		o.mu.Unlock()
		<-req.done
		return req.found, req.err
	}
	o.running = true
	for len(o.queue) > 0 {
		batch := o.queue
		o.queue = nil
		o.mu.Unlock()
		o.answer(batch)
		o.mu.Lock()
	}
	o.running = false
	o.mu.Unlock()
	return req.found, req.err
}

// answer runs the iterator once (or once per wantedMax inodes) for all of
// batch.
func (o *ownerIter) answer(batch []*ownerRequest) {
	asked := map[uint32]bool{}
	var inodes []uint32
	for _, r := range batch {
		for _, ino := range r.inodes {
			if !asked[ino] {
				asked[ino] = true
				inodes = append(inodes, ino)
			}
		}
	}
	var found []sockets.Owner
	var err error
	for len(inodes) > 0 && err == nil {
		n := min(len(inodes), wantedMax)
		var got []sockets.Owner
		got, err = o.run(inodes[:n])
		found = append(found, got...)
		inodes = inodes[n:]
	}
	for _, r := range batch {
		if len(batch) == 1 {
			r.found = found
		} else {
			mine := make(map[uint32]bool, len(r.inodes))
			for _, ino := range r.inodes {
				mine[ino] = true
			}
			for _, f := range found {
				if mine[f.Inode] {
					r.found = append(r.found, f)
				}
			}
		}
		r.err = err
		close(r.done)
	}
}

// run asks about inodes (at most wantedMax) in one pass.
func (o *ownerIter) run(inodes []uint32) (out []sockets.Owner, err error) {
	one := uint8(1)
	put := 0
	defer func() {
		for _, ino := range inodes[:put] {
			key := uint64(ino)
			if derr := o.objs.WantedInodes.Delete(&key); derr != nil && !errors.Is(derr, ebpf.ErrKeyNotExist) && err == nil {
				err = fmt.Errorf("socket owners iterator: %w", derr)
			}
		}
	}()
	for _, ino := range inodes {
		key := uint64(ino)
		if err := o.objs.WantedInodes.Put(&key, &one); err != nil {
			return nil, fmt.Errorf("socket owners iterator: %w", err)
		}
		put++
	}
	rd, err := o.iter.Open()
	if err != nil {
		return nil, fmt.Errorf("socket owners iterator: %w", err)
	}
	defer rd.Close()
	br := bufio.NewReaderSize(rd, 64<<10)
	var rec bpfobj.OwnersOwner
	buf := make([]byte, unsafe.Sizeof(rec))
	for {
		if _, err := io.ReadFull(br, buf); err != nil {
			if errors.Is(err, io.EOF) {
				return out, nil
			}
			return nil, fmt.Errorf("socket owners iterator: %w", err)
		}
		if _, err := binary.Decode(buf, binary.NativeEndian, &rec); err != nil {
			return nil, fmt.Errorf("socket owners iterator: %w", err)
		}
		comm := make([]byte, 0, len(rec.Comm))
		for _, c := range rec.Comm {
			if c == 0 {
				break
			}
			comm = append(comm, byte(c))
		}
		out = append(out, sockets.Owner{Inode: uint32(rec.Inode), PID: rec.Pid, FD: rec.Fd, Comm: string(comm)})
	}
}
