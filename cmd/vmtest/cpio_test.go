// SPDX-License-Identifier: Apache-2.0

package main

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// TestCPIO unpacks our archive with cpio(1), when present, and compares.
func TestCPIO(t *testing.T) {
	var buf bytes.Buffer
	c := newCPIO(&buf)
	if err := c.File("a/b/init", 0o755, []byte("hello")); err != nil {
		t.Fatal(err)
	}
	if err := c.File("x", 0o644, []byte("12345678")); err != nil {
		t.Fatal(err)
	}
	c.Dir("empty/dir")
	c.Close()
	if buf.Len()%4 != 0 {
		t.Errorf("archive length %d not 4-aligned", buf.Len())
	}
	if _, err := exec.LookPath("cpio"); err != nil {
		t.Skip("cpio(1) not installed")
	}
	dir := t.TempDir()
	cmd := exec.Command("cpio", "-idm", "--quiet")
	cmd.Dir, cmd.Stdin = dir, &buf
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("cpio: %v: %s", err, out)
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "a/b/init")); string(b) != "hello" {
		t.Errorf("a/b/init = %q", b)
	}
	if st, err := os.Stat(filepath.Join(dir, "a/b/init")); err != nil || st.Mode().Perm() != 0o755 {
		t.Errorf("a/b/init mode: %v %v", st, err)
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "x")); string(b) != "12345678" {
		t.Errorf("x = %q", b)
	}
	if st, err := os.Stat(filepath.Join(dir, "empty/dir")); err != nil || !st.IsDir() {
		t.Errorf("empty/dir: %v", err)
	}
}
