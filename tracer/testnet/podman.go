// SPDX-License-Identifier: Apache-2.0

package testnet

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// Podman runs Debian's podman the way this kind of machine needs: runc
// (crun fails on hybrid cgroups), the cgroupfs manager, and no default
// ulimits (podman's open-files default is over the machine's hard limit).
type Podman struct {
	t   testing.TB
	env []string
}

// NewPodman checks that podman and runc are installed (make deps installs
// them) and writes the containers.conf it runs with.
func NewPodman(t testing.TB) *Podman {
	t.Helper()
	RequireRoot(t)
	for _, bin := range []string{"podman", "runc"} {
		if _, err := exec.LookPath(bin); err != nil {
			t.Fatalf("%s not found (make deps installs podman and runc)", bin)
		}
	}
	conf := filepath.Join(t.TempDir(), "containers.conf")
	if err := os.WriteFile(conf, []byte("[containers]\ndefault_ulimits = []\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	return &Podman{t: t, env: append(os.Environ(), "CONTAINERS_CONF="+conf)}
}

// Env is the environment podman runs with (for make image, say).
func (p *Podman) Env() []string { return p.env }

// Cmd is podman with args.
func (p *Podman) Cmd(args ...string) *exec.Cmd {
	cmd := exec.Command("podman", append([]string{"--runtime", "runc", "--cgroup-manager", "cgroupfs"}, args...)...)
	cmd.Env = p.env
	return cmd
}

// Try runs podman: its standard output, or an error with its standard
// error (podman and conmon also print warnings there).
func (p *Podman) Try(args ...string) (string, error) {
	var stderr strings.Builder
	cmd := p.Cmd(args...)
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		err = fmt.Errorf("%w: %s", err, strings.TrimSpace(stderr.String()))
	}
	return strings.TrimSpace(string(out)), err
}

// Run is Try, failing the test on an error.
func (p *Podman) Run(args ...string) string {
	p.t.Helper()
	out, err := p.Try(args...)
	if err != nil {
		p.t.Fatalf("podman %s: %v (output %q)", strings.Join(args, " "), err, out)
	}
	return out
}

// Busybox runs real containers from a directory holding busybox (sh,
// httpd, wget, nc, sleep; /www/index.html says "hello"), with runc and
// the cgroupfs manager, on a podman network of the test's own, Subnet.0/24
// in 198.18.0.0/15 (benchmarking space), and removes everything it made.
type Busybox struct {
	*Podman
	Rootfs  string
	Network string
	Subnet  string // "198.18.N"
}

// NewBusybox makes the root file system and the network.
func NewBusybox(t testing.TB) *Busybox {
	t.Helper()
	pm := NewPodman(t)
	busybox, err := exec.LookPath("busybox")
	if err != nil {
		t.Fatalf("busybox not found (make deps installs busybox-static)")
	}
	rootfs := filepath.Join(t.TempDir(), "rootfs")
	for _, d := range []string{"bin", "www", "etc"} {
		if err := os.MkdirAll(filepath.Join(rootfs, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	data, err := os.ReadFile(busybox)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(rootfs, "bin", "busybox"), data, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, app := range []string{"sh", "httpd", "wget", "nc", "sleep"} {
		if err := os.Symlink("busybox", filepath.Join(rootfs, "bin", app)); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(rootfs, "www", "index.html"), []byte("hello\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	n := os.Getpid()%200 + 20
	b := &Busybox{Podman: pm, Rootfs: rootfs, Network: fmt.Sprintf("conntrace-test-%d", os.Getpid()), Subnet: fmt.Sprintf("198.18.%d", n)}
	b.Run("network", "create", "--subnet", b.Subnet+".0/24", b.Network)
	t.Cleanup(func() { b.Try("network", "rm", "-f", b.Network) })
	return b
}

// Start runs a container in the background at ip on the network; it is
// removed at the end. The id is the last line podman prints.
func (b *Busybox) Start(name, ip string, args ...string) string {
	b.t.Helper()
	b.t.Cleanup(func() { b.Try("rm", "-f", "-t", "0", name) })
	out := b.Run(append([]string{"run", "-d", "--name", name, "--network", b.Network, "--ip", ip, "--rootfs", b.Rootfs}, args...)...)
	lines := strings.Split(out, "\n")
	return strings.TrimSpace(lines[len(lines)-1])
}

// Once runs a container at ip on the network to its end, removed then,
// and returns its output.
func (b *Busybox) Once(name, ip string, args ...string) string {
	b.t.Helper()
	return b.Run(append([]string{"run", "--rm", "--name", name, "--network", b.Network, "--ip", ip, "--rootfs", b.Rootfs}, args...)...)
}
