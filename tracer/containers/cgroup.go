// SPDX-License-Identifier: Apache-2.0

package containers

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// Cgroup is what a cgroup v2 id resolves to. Never changed once made:
// every event of the cgroup shares it.
type Cgroup struct {
	ID uint64
	// Path in the cgroup v2 hierarchy ("/" for its root); "" when the
	// cgroup was gone before it could be looked up.
	Path string
	// Container runs in it; nil for a cgroup of no container (the host's
	// services and sessions).
	Container *Container

	retryAt time.Time // a container whose state was not found yet: look again then
}

// Root says whether this is the hierarchy's root: a process in no
// cgroup of its own (or on a host that does not use cgroup v2).
func (c *Cgroup) Root() bool { return c.Path == "/" }

const (
	// fileIDKernfs is the kernel's FILEID_KERNFS: a cgroup's file handle
	// is its id.
	fileIDKernfs = 0xfe
	// cacheMax bounds the cache; past it, it starts again (cgroup ids
	// are never reused, so a cached answer is never wrong, only old).
	cacheMax = 16384
	// retryAfter: a container's metadata may be written just after its
	// first process runs; an answer without it is asked again after this.
	retryAfter = 2 * time.Second
)

// Resolver turns cgroup ids into paths and containers, with a cache.
// Resolve may take milliseconds (a file handle, a few small files);
// Cached never blocks on the file system. Safe for concurrent use.
type Resolver struct {
	mount  string // where cgroup v2 is mounted
	mnt    *os.File
	rootID uint64
	state  State

	mu    sync.Mutex
	cache map[uint64]*Cgroup
}

// Mount is where this host's cgroup v2 hierarchy is mounted.
func Mount() (string, error) { return cgroup2Mount("/proc/self/mountinfo") }

// Dir is the directory of cgroup p ("/system.slice/x.service", or the
// same under the mount point) in the hierarchy mounted at mount; never
// above it, whatever p says.
func Dir(mount, p string) string {
	rel := filepath.Clean("/" + p)
	if rel == mount || strings.HasPrefix(rel, mount+"/") {
		rel = rel[len(mount):]
	}
	return filepath.Join(mount, rel)
}

// Exists says whether cgroup p exists in the hierarchy mounted at mount.
func Exists(mount, p string) bool {
	st, err := os.Stat(Dir(mount, p))
	return err == nil && st.IsDir()
}

// NewResolver finds the cgroup v2 hierarchy (/sys/fs/cgroup, or
// /sys/fs/cgroup/unified on a hybrid host).
func NewResolver(state State) (*Resolver, error) {
	mount, err := Mount()
	if err != nil {
		return nil, err
	}
	return newResolver(mount, state)
}

func newResolver(mount string, state State) (*Resolver, error) {
	mnt, err := os.Open(mount)
	if err != nil {
		return nil, fmt.Errorf("cgroup v2: %w", err)
	}
	var st unix.Stat_t
	if err := unix.Fstat(int(mnt.Fd()), &st); err != nil {
		mnt.Close()
		return nil, fmt.Errorf("cgroup v2: %w", err)
	}
	r := &Resolver{mount: mount, mnt: mnt, rootID: st.Ino, state: state, cache: map[uint64]*Cgroup{}}
	r.cache[r.rootID] = &Cgroup{ID: r.rootID, Path: "/"}
	return r, nil
}

// Mount is where the cgroup v2 hierarchy is mounted.
func (r *Resolver) Mount() string { return r.mount }

// RootID is the id of the hierarchy's root cgroup.
func (r *Resolver) RootID() uint64 { return r.rootID }

// Close releases the hierarchy.
func (r *Resolver) Close() error { return r.mnt.Close() }

// Cached is the cached answer for id, if there is one still good.
func (r *Resolver) Cached(id uint64) (*Cgroup, bool) {
	r.mu.Lock()
	cg, ok := r.cache[id]
	r.mu.Unlock()
	if ok && !cg.retryAt.IsZero() && time.Now().After(cg.retryAt) {
		return cg, false
	}
	return cg, ok
}

// Resolve looks id up and caches the answer.
func (r *Resolver) Resolve(id uint64) *Cgroup {
	cg := &Cgroup{ID: id}
	if p, err := r.Path(id); err == nil {
		cg.Path = p
		if rt, cid, ok := FromPath(p); ok {
			cg.Container = r.state.Describe(rt, cid)
			if cg.Container.Name == "" {
				cg.retryAt = time.Now().Add(retryAfter)
			}
		}
	}
	r.mu.Lock()
	if len(r.cache) >= cacheMax {
		r.cache = map[uint64]*Cgroup{r.rootID: {ID: r.rootID, Path: "/"}}
	}
	r.cache[id] = cg
	r.mu.Unlock()
	return cg
}

// Path is the cgroup's path in the hierarchy: from its file handle (the
// id is one, for kernfs), or, where the kernel refuses handles, by
// walking the hierarchy for the directory whose inode is the id.
func (r *Resolver) Path(id uint64) (string, error) {
	if id == r.rootID {
		return "/", nil
	}
	var h [8]byte
	binary.NativeEndian.PutUint64(h[:], id)
	fd, err := unix.OpenByHandleAt(int(r.mnt.Fd()), unix.NewFileHandle(fileIDKernfs, h[:]), unix.O_RDONLY|unix.O_CLOEXEC|unix.O_DIRECTORY)
	if err == nil {
		link, err := os.Readlink("/proc/self/fd/" + strconv.Itoa(fd))
		unix.Close(fd)
		if err == nil {
			if rel, ok := r.relative(link); ok {
				return rel, nil
			}
		}
	}
	if errors.Is(err, unix.ESTALE) || errors.Is(err, unix.ENOENT) {
		return "", fmt.Errorf("cgroup %d: gone", id)
	}
	return r.walk(id)
}

func (r *Resolver) relative(abs string) (string, bool) {
	if abs == r.mount {
		return "/", true
	}
	rest, ok := strings.CutPrefix(abs, r.mount+"/")
	if !ok {
		return "", false
	}
	return "/" + rest, true
}

var errFound = errors.New("found")

func (r *Resolver) walk(id uint64) (string, error) {
	var found string
	err := filepath.WalkDir(r.mount, func(p string, d fs.DirEntry, err error) error {
		if err != nil || !d.IsDir() {
			return nil
		}
		info, err := d.Info()
		if err != nil {
			return nil
		}
		if st, ok := info.Sys().(*syscall.Stat_t); ok && st.Ino == id {
			found = p
			return errFound
		}
		return nil
	})
	if errors.Is(err, errFound) {
		if rel, ok := r.relative(found); ok {
			return rel, nil
		}
	}
	return "", fmt.Errorf("cgroup %d: not found under %s", id, r.mount)
}

// cgroup2Mount is the mount point of the cgroup v2 hierarchy whose root
// is the hierarchy's root, /sys/fs/cgroup first.
func cgroup2Mount(mountinfo string) (string, error) {
	f, err := os.Open(mountinfo)
	if err != nil {
		return "", fmt.Errorf("cgroup v2: %w", err)
	}
	defer f.Close()
	var mounts []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if p, ok := parseCgroup2(sc.Text()); ok {
			mounts = append(mounts, p)
		}
	}
	for _, p := range mounts {
		if p == "/sys/fs/cgroup" {
			return p, nil
		}
	}
	if len(mounts) > 0 {
		return mounts[0], nil
	}
	return "", errors.New("cgroup v2 is not mounted")
}

// parseCgroup2 takes one line of mountinfo: the mount point of a cgroup2
// file system mounted from the hierarchy's root.
func parseCgroup2(line string) (string, bool) {
	pre, post, ok := strings.Cut(line, " - ")
	if !ok || !strings.HasPrefix(post, "cgroup2 ") {
		return "", false
	}
	f := strings.Fields(pre)
	if len(f) < 5 || f[3] != "/" {
		return "", false
	}
	return unescapeMount(f[4]), true
}

// unescapeMount undoes mountinfo's octal escapes (\040 for a space).
func unescapeMount(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			if n, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(n))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// OfPID is the container process pid runs in, from /proc/PID/cgroup (as
// this process's cgroup namespace sees it): the cgroup v2 line first, then
// the v1 hierarchies' (a host without cgroup v2, or a runtime that puts
// its containers in v1 only). nil for none, or a process gone.
func OfPID(pid uint32, state State) *Container {
	if path, ok := procCgroup(pid, state); ok {
		return containerAt(path, state)
	}
	return nil
}

// procCgroup is the path in /proc/PID/cgroup that names a container, or
// the process's v2 path when none does.
func procCgroup(pid uint32, state State) (string, bool) {
	b, ok := readState(filepath.Join(state.Proc, strconv.FormatUint(uint64(pid), 10), "cgroup"))
	if !ok {
		return "", false
	}
	return containerPath(string(b)), true
}

// containerPath picks, from the lines of a /proc/PID/cgroup, the first
// path that is a container's (v2 first, then v1), else the v2 path ("/"
// for none).
func containerPath(s string) string {
	v2 := "/"
	var v1 []string
	for _, line := range strings.Split(s, "\n") {
		// hierarchy-ID:controllers:path; the path may hold colons.
		parts := strings.SplitN(line, ":", 3)
		if len(parts) != 3 {
			continue
		}
		if parts[0] == "0" && parts[1] == "" {
			v2 = parts[2]
		} else {
			v1 = append(v1, parts[2])
		}
	}
	for _, p := range append([]string{v2}, v1...) {
		if _, _, ok := FromPath(p); ok {
			return p
		}
	}
	return v2
}

func containerAt(path string, state State) *Container {
	if rt, id, ok := FromPath(path); ok {
		return state.Describe(rt, id)
	}
	return nil
}

// PIDResolver stands in for Resolver on a host without cgroup v2, where
// the kernel gives every process the same cgroup id: the container of a
// process from /proc/PID/cgroup (its v1 hierarchies), looked up by pid and
// cached for pidCacheFor (pids are reused, slowly). The Cgroup it gives has
// no ID; its Path is the v1 one that names the container. A process that
// exited before its event was read (a few milliseconds) is not found.
type PIDResolver struct {
	state State

	mu    sync.Mutex
	cache map[uint64]pidAnswer
}

type pidAnswer struct {
	cg *Cgroup
	at time.Time
}

// pidCacheFor is how long a process's answer is trusted.
const pidCacheFor = 10 * time.Second

// NewPIDResolver finds containers by pid.
func NewPIDResolver(state State) *PIDResolver {
	return &PIDResolver{state: state, cache: map[uint64]pidAnswer{}}
}

// Cached is the cached answer for process pid, if there is one still good.
func (r *PIDResolver) Cached(pid uint64) (*Cgroup, bool) {
	r.mu.Lock()
	a, ok := r.cache[pid]
	r.mu.Unlock()
	if ok && time.Since(a.at) > pidCacheFor {
		return a.cg, false
	}
	return a.cg, ok
}

// Resolve looks process pid up and caches the answer. A process gone has
// none (nil).
func (r *PIDResolver) Resolve(pid uint64) *Cgroup {
	var cg *Cgroup
	if path, ok := procCgroup(uint32(pid), r.state); ok {
		cg = &Cgroup{Path: path, Container: containerAt(path, r.state)}
	}
	r.mu.Lock()
	if len(r.cache) >= cacheMax {
		r.cache = map[uint64]pidAnswer{}
	}
	r.cache[pid] = pidAnswer{cg: cg, at: time.Now()}
	r.mu.Unlock()
	return cg
}
