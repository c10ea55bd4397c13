// SPDX-License-Identifier: Apache-2.0

package tracer_test

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/conntrace/conntrace/tracer"
	"github.com/conntrace/conntrace/tracer/containers"
	"github.com/conntrace/conntrace/tracer/output"
	"github.com/conntrace/conntrace/tracer/testnet"
)

// TestContainerByPIDWithoutCgroup2: on a host without cgroup v2 (hidden
// here), a process in a cgroup v1 hierarchy named as docker names a
// container's is found in its container by its /proc/PID/cgroup; the
// server, in none, has none; there is no cgroup id to print.
func TestContainerByPIDWithoutCgroup2(t *testing.T) {
	testnet.RequireRoot(t)
	id := strings.Repeat("c0ffee", 10) + "c0de"
	// A named v1 hierarchy of the test's own: no controller, so it mounts
	// whatever the host's layout.
	mnt := t.TempDir()
	if err := unix.Mount("cgroup", mnt, "cgroup", 0, "none,name=conntrace-test"); err != nil {
		t.Fatalf("mount a cgroup v1 hierarchy: %v", err)
	}
	dir := filepath.Join(mnt, "docker", id)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		os.Remove(dir)
		os.Remove(filepath.Dir(dir))
		unix.Unmount(mnt, 0)
	})
	ns := testnet.NewNS(t)
	srv := testnet.Start(t, "ct-server", testnet.Role{Server: true, NS: ns.Path(), Addr: "127.0.0.1:8080", Conns: 1})
	srv.Expect(t, "listening")
	// The client lives on a while after connecting: a process is looked
	// up by its pid, so one gone by then could not be.
	cli := testnet.Start(t, "ct-client", testnet.Role{NS: ns.Path(), Addr: "127.0.0.1:8080", WaitGo: true, Pause: hold})
	cli.Expect(t, "ready")
	if err := os.WriteFile(filepath.Join(dir, "cgroup.procs"), []byte(strconv.Itoa(cli.PID)), 0); err != nil {
		t.Fatal(err)
	}
	if c := containers.OfPID(uint32(cli.PID), containers.DefaultState()); c == nil || c.ID != id {
		t.Fatalf("OfPID: %+v", c)
	}
	restore := tracer.HideCgroup2ForTest()
	s := startTracer(t, tracer.Config{})
	restore()
	cli.Go(t)
	cli.Expect(t, "connected")
	cli.Wait(t)
	srv.Wait(t)
	s.waitFor(t, 2, func(ev *tracer.Event) bool { return ev.Type == tracer.EventClose })
	evs := s.stop(t)

	var seen int
	for _, ev := range evs {
		switch {
		case int(ev.PID) == cli.PID && ev.Type == tracer.EventConnect:
			seen++
			line := string(output.AppendJSON(nil, &ev))
			if ev.Cgroup == nil || ev.Cgroup.Container == nil || ev.Cgroup.Container.ID != id || ev.Cgroup.Container.Runtime != "docker" ||
				!strings.Contains(line, `"cgroup":"/docker/`+id+`","container":{"id":"`+id+`","runtime":"docker"}`) || strings.Contains(line, "cgroup_id") {
				t.Errorf("connect of the client in container %s: %s", id[:12], line)
			}
		case int(ev.PID) == srv.PID:
			if ev.Cgroup != nil && ev.Cgroup.Container != nil {
				t.Errorf("a process in no container has one:\n%s", dump([]tracer.Event{ev}))
			}
		}
	}
	if seen != 1 {
		t.Errorf("the client's connect: seen %d times in:\n%s", seen, dump(evs))
	}
}
