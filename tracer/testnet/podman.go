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
