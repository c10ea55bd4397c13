// SPDX-License-Identifier: Apache-2.0

package containers

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// The tracer's cgroup filter (--cgroup, --container) runs in the kernel:
// a map of cgroup ids, and a process passes when its cgroup or one above
// it is there (bpf/filters.bpf.h). Filter finds the ids and gives them to
// the tracer through one function (Start's put). A --cgroup is one id,
// found when the tracer opens. Containers come and go, so their
// cgroups are watched: the hierarchy is scanned when the tracer opens,
// and inotify reports every cgroup made after (a watch on each directory
// of the hierarchy). A new cgroup whose path is a container's is
// described (its runtime's state) and, when it is one of the wanted
// containers, added at once: its processes are not running yet when
// their runtime makes the cgroup, so a container that starts later is
// traced from its first connection.

// FilterMax is the most cgroups a Filter gives: the size of the kernel's
// map (cgroup_filter).
const FilterMax = 4096

// nameRetries: when a container's cgroup appears before its runtime
// wrote the state that names it, it is described again after these.
var nameRetries = []time.Duration{20 * time.Millisecond, 100 * time.Millisecond, 500 * time.Millisecond, 2 * time.Second}

// Filter finds the cgroups of the wanted cgroups and containers, now and
// as containers start.
type Filter struct {
	r       *Resolver
	state   State
	want    []string // container names, or id prefixes of 12 or more hex digits
	inotify *os.File

	mu      sync.Mutex
	ids     map[uint64]bool        // in the filter (or to be, before the map exists)
	put     func(uint64) error     // adds an id to the kernel's map, once it exists
	watches map[int32]string       // watch descriptor: absolute directory
	warning string                 // the first problem, for Warnings
	retries map[string]*time.Timer // by path: the next check of a container not named yet
	done    chan struct{}
	wg      sync.WaitGroup
}

// NewFilter finds the ids of the wanted cgroups (paths in r's hierarchy)
// and of the wanted containers (names, or id prefixes of 12 or more hex
// digits) that exist now, and starts watching for new ones (given from
// Start on; inotify queues what comes before).
func NewFilter(r *Resolver, state State, cgroups, wanted []string) (*Filter, error) {
	f := &Filter{r: r, state: state, want: wanted, ids: map[uint64]bool{}, watches: map[int32]string{},
		retries: map[string]*time.Timer{}, done: make(chan struct{})}
	for _, p := range cgroups {
		id, err := cgroupID(r.Mount(), p)
		if err != nil {
			return nil, err
		}
		f.ids[id] = true
	}
	if len(wanted) == 0 {
		return f, nil
	}
	if len(state.Found()) == 0 {
		f.warning = "--container: no container runtime's state found (docker, podman, containerd, CRI-O): containers match by id only"
	}
	fd, err := unix.InotifyInit1(unix.IN_NONBLOCK | unix.IN_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("watch cgroups: %w", err)
	}
	f.inotify = os.NewFile(uintptr(fd), "inotify")
	f.scan(r.Mount())
	return f, nil
}

// cgroupID is the id of the cgroup at path p of the hierarchy mounted at
// mount ("/system.slice/x.service", or the same under the mount point).
func cgroupID(mount, p string) (uint64, error) {
	st, err := os.Stat(Dir(mount, p))
	if err != nil || !st.IsDir() {
		return 0, fmt.Errorf("cgroup %q: no such cgroup in %s", p, mount)
	}
	return st.Sys().(*syscall.Stat_t).Ino, nil
}

// scan watches dir and every directory below it, and takes the wanted
// containers' cgroups among them.
func (f *Filter) scan(dir string) {
	filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || !d.IsDir() {
			return nil
		}
		wd, err := unix.InotifyAddWatch(int(f.inotify.Fd()), p, unix.IN_CREATE|unix.IN_ONLYDIR)
		if err != nil {
			// Quoted: with a delegated subtree, anyone names cgroups.
			f.warn(fmt.Sprintf("--container: cannot watch %q for new containers: %v", p, err))
		} else {
			f.mu.Lock()
			f.watches[int32(wd)] = p
			f.mu.Unlock()
		}
		f.check(p, 0)
		return nil
	})
}

// check takes the cgroup at p if it is a wanted container's; a container
// whose state does not name it yet is checked again later.
func (f *Filter) check(p string, try int) {
	rel := strings.TrimPrefix(p, f.r.Mount())
	runtime, id, ok := FromPath(rel)
	if !ok {
		return
	}
	c := &Container{ID: id, Runtime: runtime}
	if !f.wants(c) {
		c = f.state.Describe(runtime, id)
		if !f.wants(c) {
			if c.Name == "" && try < len(nameRetries) {
				f.mu.Lock()
				select {
				case <-f.done:
				default:
					f.wg.Add(1)
					f.retries[p] = time.AfterFunc(nameRetries[try], func() {
						defer f.wg.Done()
						f.check(p, try+1)
					})
				}
				f.mu.Unlock()
				return
			}
			f.forget(p)
			return
		}
	}
	f.forget(p)
	st, err := os.Stat(p)
	if err != nil {
		return // gone already
	}
	f.add(st.Sys().(*syscall.Stat_t).Ino)
}

// forget drops p's retry, once its checks are over.
func (f *Filter) forget(p string) {
	f.mu.Lock()
	delete(f.retries, p)
	f.mu.Unlock()
}

func (f *Filter) wants(c *Container) bool {
	for _, w := range f.want {
		if w == c.Name && c.Name != "" || len(w) >= 12 && strings.HasPrefix(c.ID, w) {
			return true
		}
	}
	return false
}

func (f *Filter) add(id uint64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.ids[id] {
		return
	}
	if len(f.ids) >= FilterMax {
		f.warnLocked(fmt.Sprintf("--container: more than %d cgroups match; the others are not traced", FilterMax))
		return
	}
	f.ids[id] = true
	if f.put != nil {
		if err := f.put(id); err != nil {
			f.warnLocked(fmt.Sprintf("--container: add cgroup %d to the filter: %v", id, err))
		}
	}
}

func (f *Filter) warn(w string) {
	f.mu.Lock()
	f.warnLocked(w)
	f.mu.Unlock()
}

func (f *Filter) warnLocked(w string) {
	if f.warning == "" {
		f.warning = w
	}
}

// Start gives put the ids found so far, and from then on each new one as
// its cgroup appears. put adds an id to the kernel's map.
func (f *Filter) Start(put func(id uint64) error) error {
	f.mu.Lock()
	for id := range f.ids {
		if err := put(id); err != nil {
			f.mu.Unlock()
			return fmt.Errorf("cgroup filter: %w", err)
		}
	}
	f.put = put
	f.mu.Unlock()
	if f.inotify != nil {
		f.wg.Add(1)
		go f.watch()
	}
	return nil
}

// watch reads inotify until close: each new directory is watched in
// turn, with what was made below it before its watch.
func (f *Filter) watch() {
	defer f.wg.Done()
	buf := make([]byte, 64<<10)
	for {
		n, err := f.inotify.Read(buf)
		if err != nil {
			if !errors.Is(err, os.ErrClosed) {
				f.warn(fmt.Sprintf("--container: watching for new containers stopped: %v", err))
			}
			return
		}
		for off := 0; off+unix.SizeofInotifyEvent <= n; {
			ev := (*unix.InotifyEvent)(unsafe.Pointer(&buf[off]))
			name := strings.TrimRight(string(buf[off+unix.SizeofInotifyEvent:off+unix.SizeofInotifyEvent+int(ev.Len)]), "\x00")
			off += unix.SizeofInotifyEvent + int(ev.Len)
			if ev.Mask&unix.IN_Q_OVERFLOW != 0 {
				f.warn("--container: too many new cgroups at once; rescanning")
				f.scan(f.r.Mount())
				continue
			}
			if ev.Mask&unix.IN_IGNORED != 0 { // its directory is gone
				f.mu.Lock()
				delete(f.watches, ev.Wd)
				f.mu.Unlock()
				continue
			}
			if ev.Mask&unix.IN_ISDIR == 0 || ev.Mask&unix.IN_CREATE == 0 {
				continue
			}
			f.mu.Lock()
			parent, ok := f.watches[ev.Wd]
			f.mu.Unlock()
			if ok {
				f.scan(filepath.Join(parent, name))
			}
		}
	}
}

// Warning is the first problem the filter met, or "".
func (f *Filter) Warning() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.warning
}

// Close stops watching.
func (f *Filter) Close() {
	f.mu.Lock()
	close(f.done)
	for _, t := range f.retries {
		if t.Stop() { // it will not run
			f.wg.Done()
		}
	}
	f.mu.Unlock()
	if f.inotify != nil {
		f.inotify.Close()
	}
	f.wg.Wait()
}
