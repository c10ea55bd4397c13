package tracer

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cilium/ebpf"
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
	if _, err := exec.LookPath("clang"); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("clang is missing; make test installs it")
		}
		t.Skip("clang is not installed")
	}
	for _, args := range runs {
		out := t.TempDir()
		cmd := exec.Command("go", append([]string{"tool", "bpf2go", "-output-dir", out, "-go-package", "tracer"}, args...)...)
		cmd.Env = append(os.Environ(), "GOPACKAGE=tracer")
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

// TestFloorMatches: the hook-cost floor (bpf/floor.bpf.c, make bench) must
// have every program and map of the real object, or the loader, which is
// the same for both, cannot load it.
func TestFloorMatches(t *testing.T) {
	spec, err := loadConntrace()
	if err != nil {
		t.Fatal(err)
	}
	floor, err := ebpf.LoadCollectionSpec("conntracefloor_x86_bpfel.o")
	if err != nil {
		t.Fatal(err)
	}
	for name, p := range spec.Programs {
		if f, ok := floor.Programs[name]; !ok || f.SectionName != p.SectionName {
			t.Errorf("program %s (%s): the floor has none on that hook", name, p.SectionName)
		}
	}
	for name := range spec.Maps {
		if _, ok := floor.Maps[name]; !ok {
			t.Errorf("map %s: the floor has none", name)
		}
	}
}
