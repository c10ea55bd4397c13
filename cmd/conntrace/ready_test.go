// SPDX-License-Identifier: Apache-2.0

package main

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/conntrace/conntrace/tracer/testnet"
)

// TestReadyFileRefusesWhatIsNotOurs: in a world-writable sticky directory,
// another user's symlink (to a root-only file) or file at the path is
// refused with one line and exit 2, before anything is loaded, and the
// target is untouched. symlinks are refused whatever fs.protected_symlinks
// says.
func TestReadyFileRefusesWhatIsNotOurs(t *testing.T) {
	testnet.RequireRoot(t)
	dir := t.TempDir()
	if err := os.Chmod(dir, 0o1777); err != nil {
		t.Fatal(err)
	}
	secret := filepath.Join(t.TempDir(), "secret")
	if err := os.WriteFile(secret, []byte("root only\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(dir, "ready-link")
	if err := os.Symlink(secret, link); err != nil {
		t.Fatal(err)
	}
	if err := os.Lchown(link, 65534, 65534); err != nil {
		t.Fatal(err)
	}
	theirs := filepath.Join(dir, "ready-theirs")
	if err := os.WriteFile(theirs, []byte("theirs\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(theirs, 65534, 65534); err != nil {
		t.Fatal(err)
	}
	for path, want := range map[string]string{
		link:   `exists and is not a regular file (a symlink): remove it or choose another path`,
		theirs: `exists and belongs to uid 65534, not to this user: remove it or choose another path`,
	} {
		var stdout, stderr bytes.Buffer
		code := run([]string{"conntrace", "watch", "--ready-file", path, "--port", "1"}, &stdout, &stderr)
		if code != exitUsage || !strings.Contains(stderr.String(), want) || strings.Count(stderr.String(), "\n") != 1 {
			t.Errorf("%s: exit %d, stderr %q, want %d and %q", path, code, stderr.String(), exitUsage, want)
		}
	}
	if data, _ := os.ReadFile(secret); string(data) != "root only\n" {
		t.Errorf("the symlink's target was written: %q", data)
	}
	if data, _ := os.ReadFile(theirs); string(data) != "theirs\n" {
		t.Errorf("the other user's file was written: %q", data)
	}
}

// TestReadyFileLifetime: a stale ready file of ours (a run that was
// killed) is replaced, not written through; it says "ready" while the
// run lasts and is gone when it ends (cliRun.wait checks).
func TestReadyFileLifetime(t *testing.T) {
	var stale syscall.Stat_t
	r := startCmd(t, func(c *exec.Cmd) {
		path := c.Args[len(c.Args)-1] // startCmd's --ready-file
		if err := os.WriteFile(path, []byte("stale\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		syscall.Stat(path, &stale)
	}, "watch", "--port", "1")
	var now syscall.Stat_t
	if err := syscall.Stat(r.ready, &now); err != nil || now.Ino == stale.Ino || now.Mode&0o777 != 0o644 {
		t.Errorf("ready file inode %d mode %o (stale one %d): %v", now.Ino, now.Mode&0o777, stale.Ino, err)
	}
	r.cmd.Process.Signal(syscall.SIGINT)
	r.wait(t)
}

// TestReadyFileInAnotherUsersDirectory: sudo ... --ready-file ~/ready,
// a directory of another user's (mode 755) that root writes in only by
// CAP_DAC_OVERRIDE: the file appears once attached, after the other
// capabilities are dropped, and is gone at the end, with nothing left
// beside it.
func TestReadyFileInAnotherUsersDirectory(t *testing.T) {
	var dir string
	r := startCmd(t, func(c *exec.Cmd) {
		dir = filepath.Dir(c.Args[len(c.Args)-1]) // startCmd's --ready-file
		if err := os.Chown(dir, 65534, 65534); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(dir, 0o755); err != nil {
			t.Fatal(err)
		}
	}, "watch", "--port", "1")
	r.cmd.Process.Signal(syscall.SIGINT)
	r.wait(t)
	if left, _ := os.ReadDir(dir); len(left) != 0 {
		t.Errorf("left in %s: %v", dir, left)
	}
}

// TestReadyFileUnwritable: a read-only or a full file system is a usage
// error, one line and exit 2, before anything is loaded, and nothing is
// left behind.
func TestReadyFileUnwritable(t *testing.T) {
	testnet.RequireRoot(t)
	mount := func(t *testing.T, opts string) string {
		dir := t.TempDir()
		if err := syscall.Mount("tmpfs", dir, "tmpfs", 0, opts); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { syscall.Unmount(dir, syscall.MNT_DETACH) })
		return dir
	}
	readOnly := mount(t, "size=64k")
	if err := syscall.Mount("", readOnly, "", syscall.MS_REMOUNT|syscall.MS_RDONLY, "size=64k"); err != nil {
		t.Fatal(err)
	}
	full := mount(t, "size=4k")
	if err := os.WriteFile(filepath.Join(full, "filler"), make([]byte, 4096), 0o644); err != nil {
		t.Fatal(err)
	}
	for dir, want := range map[string]string{readOnly: "read-only file system", full: "no space left on device"} {
		for _, cmd := range []string{"watch", "serve"} {
			var stdout, stderr bytes.Buffer
			code := run([]string{"conntrace", cmd, "--ready-file", filepath.Join(dir, "ready"), "--port", "1"}, &stdout, &stderr)
			if code != exitUsage || !strings.Contains(stderr.String(), want) || strings.Count(stderr.String(), "\n") != 1 {
				t.Errorf("%s in %s: exit %d, stderr %q, want %d and %q", cmd, dir, code, stderr.String(), exitUsage, want)
			}
		}
		if left, _ := os.ReadDir(dir); len(left) > 1 || (len(left) == 1 && left[0].Name() != "filler") {
			t.Errorf("left in %s: %v", dir, left)
		}
	}
}
