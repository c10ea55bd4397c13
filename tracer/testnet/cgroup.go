// SPDX-License-Identifier: Apache-2.0

package testnet

import (
	"os"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"

	"github.com/conntrace/conntrace/tracer/containers"
)

// Cgroup is a cgroup v2 directory a test made; it is removed at the end
// (after the helpers started later, which cleanup ends first).
type Cgroup struct {
	Path string // in the hierarchy, "/conntrace-test-.../NAME"
	Dir  string // on disk
	ID   uint64
}

// NewCgroup makes cgroup rel (a path below a directory of this test's
// own) in the cgroup v2 hierarchy.
func NewCgroup(t testing.TB, rel string) *Cgroup {
	t.Helper()
	RequireRoot(t)
	mount, err := containers.Mount()
	if err != nil {
		t.Fatal(err)
	}
	top := "/conntrace-test-" + strconv.Itoa(os.Getpid())
	path := filepath.Join(top, filepath.Clean("/"+rel))
	dir := filepath.Join(mount, path)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		// Deepest first; each fails while a process is still in it.
		for d := dir; d != mount && d != "/"; d = filepath.Dir(d) {
			os.Remove(d)
		}
	})
	st, err := os.Stat(dir)
	if err != nil {
		t.Fatal(err)
	}
	return &Cgroup{Path: path, Dir: dir, ID: st.Sys().(*syscall.Stat_t).Ino}
}

// Parent is the test's own directory of cgroups, above every NewCgroup.
func (c *Cgroup) Parent() string { return "/conntrace-test-" + strconv.Itoa(os.Getpid()) }

// Add moves process pid into the cgroup.
func (c *Cgroup) Add(t testing.TB, pid int) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(c.Dir, "cgroup.procs"), []byte(strconv.Itoa(pid)), 0); err != nil {
		t.Fatalf("move %d into cgroup %s: %v", pid, c.Path, err)
	}
}
