// SPDX-License-Identifier: Apache-2.0

package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestStartProfile: a new file gets a profile; an existing file or a
// symlink is refused with the variable's name, and left alone.
func TestStartProfile(t *testing.T) {
	dir := t.TempDir()
	fresh := filepath.Join(dir, "cpu.prof")
	stop, err := startProfile(fresh)
	if err != nil {
		t.Fatal(err)
	}
	stop()
	if st, err := os.Stat(fresh); err != nil || st.Size() == 0 || st.Mode().Perm() != 0o600 {
		t.Fatalf("profile %s: %v %v", fresh, st, err)
	}
	target := filepath.Join(dir, "target")
	if err := os.WriteFile(target, []byte("keep"), 0o644); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(dir, "link")
	if err := os.Symlink(target, link); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{target, link} {
		if _, err := startProfile(p); err == nil || !strings.Contains(err.Error(), profileEnv) {
			t.Errorf("%s: got %v, want an error naming %s", p, err, profileEnv)
		}
	}
	if b, _ := os.ReadFile(target); string(b) != "keep" {
		t.Errorf("target changed: %q", b)
	}
}
