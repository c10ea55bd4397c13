// SPDX-License-Identifier: Apache-2.0

package containers_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/conntrace/conntrace/tracer"
	"github.com/conntrace/conntrace/tracer/output"
	"github.com/conntrace/conntrace/tracer/sockets"
	"github.com/conntrace/conntrace/tracer/testnet"
)

func TestMain(m *testing.M) {
	if os.Geteuid() == 0 {
		if _, err := tracer.MountTracefs(); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
	}
	os.Exit(m.Run())
}

// events is a Sink that keeps a copy of every event.
type events struct {
	mu  sync.Mutex
	evs []tracer.Event
}

func (e *events) Write(ev *tracer.Event) error {
	e.mu.Lock()
	e.evs = append(e.evs, *ev)
	e.mu.Unlock()
	return nil
}

func (e *events) Flush() error { return nil }

// waitFor waits for an event that ok accepts, and returns the first.
func (e *events) waitFor(t *testing.T, what string, ok func(*tracer.Event) bool) tracer.Event {
	t.Helper()
	return e.waitForN(t, what, 1, ok)
}

// waitForN waits for n events that ok accepts, and returns the first.
func (e *events) waitForN(t *testing.T, what string, n int, ok func(*tracer.Event) bool) tracer.Event {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		e.mu.Lock()
		var found []tracer.Event
		for i := range e.evs {
			if ok(&e.evs[i]) {
				found = append(found, e.evs[i])
			}
		}
		e.mu.Unlock()
		if len(found) >= n {
			return found[0]
		}
		time.Sleep(20 * time.Millisecond)
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	var got []string
	for i := range e.evs {
		got = append(got, string(output.AppendJSON(nil, &e.evs[i])))
	}
	t.Fatalf("fewer than %d %s events; got:\n%s", n, what, strings.Join(got, ""))
	return tracer.Event{}
}

func containerName(ev *tracer.Event) string {
	if ev.Cgroup == nil || ev.Cgroup.Container == nil {
		return ""
	}
	return ev.Cgroup.Container.Name
}

// TestPodmanContainers: a server container and a client container on a
// network of their own. The listen and the accept have the server's
// container, the connect the client's, each close its own end's; the
// JSON says so in the contract's fields; a connection from a host process
// to the same server has no container.
func TestPodmanContainers(t *testing.T) {
	p := testnet.NewBusybox(t)
	const port = 18080
	tr, err := tracer.Open(tracer.Config{Ports: []uint16{port}})
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Close()
	if err := tr.ContainersError(); err != nil {
		t.Fatalf("no cgroup v2 to resolve containers in: %v", err)
	}
	var sink events
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- tr.Run(ctx, &sink) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("run: %v", err)
		}
	}()

	suffix := fmt.Sprint(os.Getpid())
	server, client := "ct-web-"+suffix, "ct-client-"+suffix
	serverIP, clientIP := p.Subnet+".2", p.Subnet+".3"
	serverID := p.Start(server, serverIP, "/bin/httpd", "-f", "-p", fmt.Sprint(port), "-h", "/www")
	listen := sink.waitFor(t, "listen", func(ev *tracer.Event) bool { return ev.Type == tracer.EventListen })
	if got := containerName(&listen); got != server {
		t.Fatalf("listen: container %q, want %q (%s)", got, server, output.AppendJSON(nil, &listen))
	}
	out := p.Run("run", "--rm", "--name", client, "--network", p.Network, "--ip", clientIP, "--rootfs", p.Rootfs,
		"/bin/wget", "-q", "-O", "-", fmt.Sprintf("http://%s:%d/index.html", serverIP, port))
	if !strings.Contains(out, "hello") {
		t.Fatalf("wget: %q", out)
	}
	connect := sink.waitFor(t, "connect", func(ev *tracer.Event) bool { return ev.Type == tracer.EventConnect })
	accept := sink.waitFor(t, "accept", func(ev *tracer.Event) bool { return ev.Type == tracer.EventAccept })
	closeOut := sink.waitFor(t, "client close", func(ev *tracer.Event) bool {
		return ev.Type == tracer.EventClose && ev.Direction == tracer.DirOut
	})
	closeIn := sink.waitFor(t, "server close", func(ev *tracer.Event) bool {
		return ev.Type == tracer.EventClose && ev.Direction == tracer.DirIn
	})
	for _, c := range []struct {
		ev   tracer.Event
		want string
	}{{listen, server}, {accept, server}, {closeIn, server}, {connect, client}, {closeOut, client}} {
		if got := containerName(&c.ev); got != c.want {
			t.Errorf("%s %s: container %q, want %q", c.ev.Type, c.ev.Direction, got, c.want)
		}
	}
	if connect.LAddr.String() != clientIP || connect.RAddr.String() != serverIP || accept.LAddr.String() != serverIP {
		t.Errorf("addresses: connect %s -> %s, accept %s", connect.LAddr, connect.RAddr, accept.LAddr)
	}

	// The contract: "cgroup" is the container's cgroup (podman's
	// libpod-ID), "container" has its full id, runtime and name.
	var j struct {
		CgroupID  uint64 `json:"cgroup_id"`
		Cgroup    string `json:"cgroup"`
		Container *struct {
			ID, Runtime, Name string
		} `json:"container"`
	}
	line := output.AppendJSON(nil, &accept)
	if err := json.Unmarshal(line, &j); err != nil {
		t.Fatalf("%s: %v", line, err)
	}
	if j.Container == nil || j.Container.ID != serverID || j.Container.Runtime != "podman" || j.Container.Name != server ||
		!strings.HasSuffix(j.Cgroup, "/libpod-"+serverID) || j.CgroupID != accept.CgroupID || j.CgroupID == 0 {
		t.Errorf("accept JSON: %s (server id %s)", line, serverID)
	}
	for _, ev := range []*tracer.Event{&listen, &connect, &accept, &closeOut, &closeIn} {
		t.Logf("%s", output.AppendJSON(nil, ev))
	}
	text := string(output.AppendText(nil, &connect))
	if !strings.Contains(text, " container="+client) {
		t.Errorf("connect text has no container=%s: %s", client, text)
	}

	// A process on the host: no container, no cgroup field.
	c, err := net.DialTimeout("tcp", fmt.Sprintf("%s:%d", serverIP, port), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	c.Close()
	host := sink.waitFor(t, "host connect", func(ev *tracer.Event) bool {
		return ev.Type == tracer.EventConnect && ev.PID == uint32(os.Getpid())
	})
	if host.Cgroup == nil {
		t.Errorf("host connect: no cgroup resolved")
	} else if line := string(output.AppendJSON(nil, &host)); host.Cgroup.Container != nil || strings.Contains(line, `"container"`) {
		t.Errorf("host connect has a container: %s", line)
	}
}

// runTracer opens a tracer with cfg and runs it into a new events sink
// until the test ends.
func runTracer(t *testing.T, cfg tracer.Config) (*tracer.Tracer, *events) {
	t.Helper()
	tr, err := tracer.Open(cfg)
	if err != nil {
		t.Fatal(err)
	}
	sink := &events{}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- tr.Run(ctx, sink) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("run: %v", err)
		}
		tr.Close()
	})
	return tr, sink
}

// TestPodmanContainerFilter: --container by name, the tracer opened
// before the container started, traces it from its first event (the
// listen); by id prefix, opened while it runs. Neither shows the client
// container's nor a host process's end of their connections to it.
func TestPodmanContainerFilter(t *testing.T) {
	p := testnet.NewBusybox(t)
	const port = 18081
	suffix := fmt.Sprint(os.Getpid())
	server, client := "ct-fweb-"+suffix, "ct-fclient-"+suffix
	serverIP, clientIP := p.Subnet+".12", p.Subnet+".13"
	byName, named := runTracer(t, tracer.Config{Ports: []uint16{port}, Containers: []string{server}})
	if w := byName.Warnings(); len(w) > 0 {
		t.Errorf("warnings: %q", w)
	}
	serverID := p.Start(server, serverIP, "/bin/httpd", "-f", "-p", fmt.Sprint(port), "-h", "/www")
	named.waitFor(t, "listen", func(ev *tracer.Event) bool { return ev.Type == tracer.EventListen })
	_, prefixed := runTracer(t, tracer.Config{Ports: []uint16{port}, Containers: []string{serverID[:12]}})

	p.Run("run", "--rm", "--name", client, "--network", p.Network, "--ip", clientIP, "--rootfs", p.Rootfs,
		"/bin/wget", "-q", "-O", "/dev/null", fmt.Sprintf("http://%s:%d/index.html", serverIP, port))
	c, err := net.DialTimeout("tcp", fmt.Sprintf("%s:%d", serverIP, port), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	c.Close()
	for name, sink := range map[string]*events{"by name": named, "by id prefix": prefixed} {
		sink.waitForN(t, "server close", 2, func(ev *tracer.Event) bool {
			return ev.Type == tracer.EventClose && ev.Direction == tracer.DirIn
		})
		time.Sleep(100 * time.Millisecond) // anything else on its way
		sink.mu.Lock()
		var types []string
		for i := range sink.evs {
			ev := &sink.evs[i]
			types = append(types, ev.Type.String())
			if containerName(ev) != server || ev.Cgroup.Container.ID != serverID {
				t.Errorf("%s: event not of container %s: %s", name, server, output.AppendJSON(nil, ev))
			}
		}
		sink.mu.Unlock()
		want := "accept close accept close"
		if name == "by name" {
			want = "listen " + want
		}
		if got := strings.Join(types, " "); got != want {
			t.Errorf("%s: events %q, want %q", name, got, want)
		}
	}
}

// TestPodmanBindConflict: two containers on the host's network want the
// same port; the second's bind_fail names its container, and the holder's
// process its own.
func TestPodmanBindConflict(t *testing.T) {
	p := testnet.NewBusybox(t)
	const port = 18082
	suffix := fmt.Sprint(os.Getpid())
	first, second := "ct-bind1-"+suffix, "ct-bind2-"+suffix
	_, sink := runTracer(t, tracer.Config{Ports: []uint16{port}})
	t.Cleanup(func() { p.Try("rm", "-f", "-t", "0", first) })
	p.Run("run", "-d", "--name", first, "--network", "host", "--rootfs", p.Rootfs, "/bin/httpd", "-f", "-p", fmt.Sprint(port), "-h", "/www")
	sink.waitFor(t, "listen", func(ev *tracer.Event) bool { return ev.Type == tracer.EventListen })
	out, err := p.Try("run", "--rm", "--name", second, "--network", "host", "--rootfs", p.Rootfs, "/bin/httpd", "-f", "-p", fmt.Sprint(port), "-h", "/www")
	if err == nil {
		t.Fatalf("the second httpd did not fail: %s", out)
	}
	fail := sink.waitFor(t, "bind_fail", func(ev *tracer.Event) bool { return ev.Type == tracer.EventBindFail })
	line := output.AppendJSON(nil, &fail)
	t.Logf("%s", line)
	if got := containerName(&fail); got != second {
		t.Errorf("bind_fail by container %q, want %q", got, second)
	}
	if len(fail.Holders) != 1 || len(fail.Holders[0].Procs) != 1 || fail.Holders[0].Procs[0].Container == nil ||
		fail.Holders[0].Procs[0].Container.Name != first || fail.Holders[0].Procs[0].Container.Runtime != "podman" {
		t.Errorf("holders do not name container %s: %s", first, line)
	}
	// What ports and who list: the listener, with its process's container.
	socks, err := sockets.List(sockets.NS{}, []string{"tcp"}, func(s *sockets.Socket) bool { return s.LPort == port && s.State == "LISTEN" })
	if err != nil {
		t.Fatal(err)
	}
	if len(socks) != 1 || len(socks[0].Procs) != 1 || socks[0].Procs[0].Container == nil || socks[0].Procs[0].Container.Name != first {
		t.Errorf("listeners on %d: %+v", port, socks)
	}
	text := string(output.AppendText(nil, &fail))
	if !strings.Contains(text, " container="+second+" ") || !strings.Contains(text, " httpd in container "+first+" (LISTEN)") {
		t.Errorf("text: %s", text)
	}
}

// TestPodmanImage: a container made from an image (imported from the
// busybox directory: no registry) is named with its image, from podman's
// own storage.
func TestPodmanImage(t *testing.T) {
	p := testnet.NewBusybox(t)
	const port = 18083
	suffix := fmt.Sprint(os.Getpid())
	image := "localhost/conntrace-test-busybox:" + suffix
	tarball := filepath.Join(t.TempDir(), "rootfs.tar")
	if out, err := exec.Command("tar", "-C", p.Rootfs, "-cf", tarball, ".").CombinedOutput(); err != nil {
		t.Fatalf("tar: %v: %s", err, out)
	}
	p.Run("import", tarball, image)
	t.Cleanup(func() { p.Try("rmi", "-f", image) })
	_, sink := runTracer(t, tracer.Config{Ports: []uint16{port}})
	name := "ct-img-" + suffix
	t.Cleanup(func() { p.Try("rm", "-f", "-t", "0", name) })
	id := p.Run("run", "-d", "--name", name, "--network", p.Network, "--ip", p.Subnet+".22", image, "/bin/httpd", "-f", "-p", fmt.Sprint(port), "-h", "/www")
	id = id[strings.LastIndexByte(id, '\n')+1:]
	listen := sink.waitFor(t, "listen", func(ev *tracer.Event) bool { return ev.Type == tracer.EventListen })
	if listen.Cgroup == nil {
		t.Fatalf("listen has no cgroup: %s", output.AppendJSON(nil, &listen))
	}
	c := listen.Cgroup.Container
	if c == nil || c.ID != id || c.Name != name || c.Image != image {
		t.Errorf("listen: %s, want container %s %s of image %s", output.AppendJSON(nil, &listen), id, name, image)
	}
}
