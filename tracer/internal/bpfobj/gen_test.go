// SPDX-License-Identifier: Apache-2.0

package bpfobj

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestGeneratedUpToDate reruns the go:generate lines of gen.go into a
// temporary directory and compares with the committed bpf2go output, so a
// change to bpf/ without `make generate` fails here. It needs clang, which
// `make test` installs.
func TestGeneratedUpToDate(t *testing.T) {
	src, err := os.ReadFile("gen.go")
	if err != nil {
		t.Fatal(err)
	}
	var runs [][]string
	for _, line := range strings.Split(string(src), "\n") {
		if rest, ok := strings.CutPrefix(line, "//go:generate go tool bpf2go "); ok {
			runs = append(runs, strings.Fields(rest))
		}
	}
	if len(runs) == 0 {
		t.Fatal("no bpf2go line in gen.go")
	}
	requireClang(t)
	for _, args := range runs {
		out := t.TempDir()
		cmd := exec.Command("go", append([]string{"tool", "bpf2go", "-output-dir", out, "-go-package", "bpfobj"}, args...)...)
		cmd.Env = append(os.Environ(), "GOPACKAGE=bpfobj")
		if b, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("bpf2go: %v\n%s", err, b)
		}
		files, _ := filepath.Glob(filepath.Join(out, "*"))
		if len(files) == 0 {
			t.Fatal("bpf2go wrote nothing")
		}
		for _, f := range files {
			fresh, _ := os.ReadFile(f)
			committed, err := os.ReadFile(filepath.Base(f))
			if err != nil || !bytes.Equal(fresh, committed) {
				t.Errorf("%s is not what bpf/ compiles to: run 'make generate' and commit", filepath.Base(f))
			}
		}
	}
}

// TestEachSourceCompilesAlone: every bpf/*.bpf.c includes what it uses
// and compiles by itself; bpf2go builds them as one unit (conntrace.bpf.c
// includes them all) only so that they share one set of maps.
func TestEachSourceCompilesAlone(t *testing.T) {
	requireClang(t)
	sources, err := filepath.Glob("../../../bpf/*.bpf.c")
	if err != nil || len(sources) < 2 {
		t.Fatalf("sources %v: %v", sources, err)
	}
	for _, src := range sources {
		for _, arch := range []string{"x86", "arm64"} {
			out := filepath.Join(t.TempDir(), "x.o")
			cmd := exec.Command("clang", "-target", "bpf", "-D__TARGET_ARCH_"+arch, "-O2", "-g", "-Wall", "-Werror",
				"-I../../../bpf", "-I../../..", "-c", src, "-o", out)
			if b, err := cmd.CombinedOutput(); err != nil {
				t.Errorf("%s does not compile alone for %s: %v\n%s", filepath.Base(src), arch, err, b)
			}
		}
	}
}

// TestBothArchitectures: gen.go builds the objects for amd64 and arm64,
// and both are committed (TestGeneratedUpToDate compares them).
func TestBothArchitectures(t *testing.T) {
	src, err := os.ReadFile("gen.go")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(src), " -target amd64,arm64 ") {
		t.Error("gen.go's bpf2go line does not build for amd64 and arm64")
	}
	for _, f := range []string{"conntrace_x86_bpfel.o", "conntrace_x86_bpfel.go", "conntrace_arm64_bpfel.o", "conntrace_arm64_bpfel.go"} {
		if _, err := os.Stat(f); err != nil {
			t.Errorf("%v: run make generate and commit", err)
		}
	}
}

// requireClang skips under -short (make unit), fails in CI, which
// installs clang, when it is missing, and skips elsewhere.
func requireClang(t *testing.T) {
	t.Helper()
	if testing.Short() {
		t.Skip("needs clang: not run with -short")
	}
	if _, err := exec.LookPath("clang"); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("clang is missing; make test installs it")
		}
		t.Skip("clang is not installed")
	}
}
