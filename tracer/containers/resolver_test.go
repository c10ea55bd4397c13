// SPDX-License-Identifier: Apache-2.0

package containers_test

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/conntrace/conntrace/tracer/containers"
	"github.com/conntrace/conntrace/tracer/testnet"
)

// TestResolver: a real cgroup, made here, resolved from its id to its
// path (and again from the cache); once removed, its id resolves to no
// path; the root is "/".
func TestResolver(t *testing.T) {
	testnet.RequireRoot(t)
	r, err := containers.NewResolver(containers.DefaultState())
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	rel := "/conntrace-test-" + strings.TrimPrefix(filepath.Base(t.TempDir()), "TestResolver")
	dir := filepath.Join(r.Mount(), rel, "docker", "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	defer func() {
		os.Remove(dir)
		os.Remove(filepath.Dir(dir))
		os.Remove(filepath.Join(r.Mount(), rel))
	}()
	st, err := os.Stat(dir)
	if err != nil {
		t.Fatal(err)
	}
	id := st.Sys().(*syscall.Stat_t).Ino
	if _, ok := r.Cached(id); ok {
		t.Fatal("cached before it was looked up")
	}
	cg := r.Resolve(id)
	want := rel + "/docker/0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
	if cg.Path != want || cg.Container == nil || cg.Container.Runtime != containers.Docker || cg.Root() {
		t.Fatalf("Resolve(%d) = %+v, want path %s, a docker container", id, cg, want)
	}
	if c, ok := r.Cached(id); !ok || c != cg {
		// A container without a name is looked up again, but not at once.
		t.Errorf("not cached: %+v %v", c, ok)
	}
	if root := r.Resolve(r.RootID()); !root.Root() || root.Container != nil {
		t.Errorf("root: %+v", root)
	}
	os.Remove(dir)
	if p, err := r.Path(id); err == nil {
		t.Errorf("removed cgroup resolves to %q", p)
	}
}
