// SPDX-License-Identifier: Apache-2.0

package main

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"debug/elf"
	"encoding/hex"
	"encoding/json"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestDebVersion(t *testing.T) {
	date := time.Date(2026, 12, 3, 9, 0, 0, 0, time.UTC)
	commit := "fa9a2c1d75d9d8e16d5192fc89a3b899619b0a23"
	for _, c := range []struct{ version, want string }{
		{"v1.2.0", "1.2.0"},
		{"1.2.0", "1.2.0"},
		{"v1.2.0-rc1", "1.2.0~rc1"},
		{"v1.2.0-3-gabc1234", "1.2.0+3.gabc1234"},
		{"v1.2.0-3-gabc1234-dirty", "1.2.0+3.gabc1234.dirty"},
		{"v1.2.0-dirty", "1.2.0+dirty"},
		{"fa9a2c1", "0~20261203090000.gfa9a2c1d75d9"},
		{"fa9a2c1-dirty", "0~20261203090000.gfa9a2c1d75d9.dirty"},
		// A hash may start with a digit: still no release.
		{"272b858", "0~20261203090000.gfa9a2c1d75d9"},
		{"2725858", "0~20261203090000.gfa9a2c1d75d9"},
		{"272b858-dirty", "0~20261203090000.gfa9a2c1d75d9.dirty"},
		{"dev", "0~20261203090000.gfa9a2c1d75d9"},
	} {
		if got := debVersion(c.version, commit, date); got != c.want {
			t.Errorf("debVersion(%q) = %q, want %q", c.version, got, c.want)
		}
	}
	// Ordered as dpkg orders them.
	order := []string{"0~20261203090000.gfa9a2c1d75d9", "1.2.0~rc1", "1.2.0", "1.2.0+3.gabc1234", "1.2.1"}
	for i := 1; i < len(order); i++ {
		if err := exec.Command("dpkg", "--compare-versions", order[i-1], "lt", order[i]).Run(); err != nil {
			t.Errorf("dpkg does not order %s before %s", order[i-1], order[i])
		}
	}
}

func TestBadInput(t *testing.T) {
	for _, c := range []config{
		{out: t.TempDir(), version: "../../etc/x", arches: []string{"amd64"}},
		{out: t.TempDir(), version: "v1 -X main.x=y", arches: []string{"amd64"}},
		{out: t.TempDir(), version: "v1", commit: "HEAD", arches: []string{"amd64"}},
		{out: t.TempDir(), version: "v1", arches: []string{"riscv64"}},
	} {
		if _, err := release(c); err == nil {
			t.Errorf("release(%+v): no error", c)
		} else if strings.Contains(err.Error(), "\n") {
			t.Errorf("release(%+v): %q is not one line", c, err)
		}
	}
}

// TestRelease runs make release's program from the repository, then
// checks each file, installs the amd64 package into a scratch root with
// dpkg and runs what it installed, and has lintian check both packages.
func TestRelease(t *testing.T) {
	if testing.Short() {
		t.Skip("builds conntrace twice per architecture: not with -short")
	}
	for _, tool := range []string{"dpkg-deb", "lintian", "groff"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s is missing: make test installs it (make deps)", tool)
		}
	}
	t.Chdir("../..")
	date := time.Date(2026, 12, 3, 9, 30, 0, 0, time.UTC)
	c := config{out: filepath.Join(t.TempDir(), "dist"), version: "v1.2.0-3-gabc1234",
		commit: "abc1234d75d9d8e16d5192fc89a3b899619b0a23", date: date, arches: []string{"amd64", "arm64"}}
	files, err := release(c)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, f := range files {
		names = append(names, filepath.Base(f))
	}
	want := []string{"conntrace-v1.2.0-3-gabc1234-linux-amd64.tar.gz", "conntrace_1.2.0+3.gabc1234_amd64.deb",
		"conntrace-v1.2.0-3-gabc1234-linux-arm64.tar.gz", "conntrace_1.2.0+3.gabc1234_arm64.deb", "SHA256SUMS"}
	if !slices.Equal(names, want) {
		t.Fatalf("release wrote %q, want %q", names, want)
	}
	sums := exec.Command("sha256sum", "--check", "--strict", "SHA256SUMS")
	sums.Dir = c.out
	if out, err := sums.CombinedOutput(); err != nil {
		t.Errorf("sha256sum --check: %v\n%s", err, out)
	}

	machines := map[string]elf.Machine{"amd64": elf.EM_X86_64, "arm64": elf.EM_AARCH64}
	for _, arch := range c.arches {
		dir := "conntrace-v1.2.0-3-gabc1234-linux-" + arch + "/"
		entries := readTarGz(t, filepath.Join(c.out, "conntrace-v1.2.0-3-gabc1234-linux-"+arch+".tar.gz"))
		var got []string
		for name, e := range entries {
			if e.Uname != "root" || !e.ModTime.Equal(date) {
				t.Errorf("%s: owner %s, dated %v", name, e.Uname, e.ModTime)
			}
			if e.Typeflag == tar.TypeReg {
				got = append(got, strings.TrimPrefix(name, dir))
			}
		}
		slices.Sort(got)
		wantFiles := []string{"LICENSE", "LICENSE.bpf", "README.md", "completions/_conntrace", "completions/conntrace.bash",
			"completions/conntrace.fish", "conntrace", "conntrace.8"}
		if !slices.Equal(got, wantFiles) {
			t.Errorf("%s tarball: %q, want %q", arch, got, wantFiles)
		}
		bin := entries[dir+"conntrace"]
		if bin == nil || bin.Mode != 0o755 {
			t.Fatalf("%s tarball: no executable conntrace", arch)
		}
		checkStatic(t, arch, bin.data, machines[arch])

		deb := filepath.Join(c.out, "conntrace_1.2.0+3.gabc1234_"+arch+".deb")
		info := run(t, "dpkg-deb", "--field", deb)
		for _, field := range []string{"Package: conntrace\n", "Version: 1.2.0+3.gabc1234\n", "Architecture: " + arch + "\n"} {
			if !strings.Contains(info, field) {
				t.Errorf("%s: no %q in\n%s", deb, field, info)
			}
		}
		if strings.Contains(info, "Depends") {
			t.Errorf("%s depends on something:\n%s", deb, info)
		}
		run(t, "dpkg-deb", "--info", deb)
		var paths []string
		for _, line := range strings.Split(strings.TrimSpace(run(t, "dpkg-deb", "--contents", deb)), "\n") {
			if f := strings.Fields(line); len(f) == 6 && !strings.HasSuffix(f[5], "/") {
				paths = append(paths, f[5])
			}
		}
		wantPaths := []string{"./usr/bin/conntrace", "./usr/share/bash-completion/completions/conntrace",
			"./usr/share/doc/conntrace/changelog.gz", "./usr/share/doc/conntrace/copyright",
			"./usr/share/fish/vendor_completions.d/conntrace.fish", "./usr/share/lintian/overrides/conntrace",
			"./usr/share/man/man8/conntrace.8.gz", "./usr/share/zsh/vendor-completions/_conntrace"}
		if !slices.Equal(paths, wantPaths) {
			t.Errorf("%s: %q, want %q", deb, paths, wantPaths)
		}
		// Debian's own checks: no error, no warning.
		lint := exec.Command("lintian", "--fail-on", "error,warning", deb)
		if out, err := lint.CombinedOutput(); err != nil {
			t.Errorf("lintian %s: %v\n%s", filepath.Base(deb), err, out)
		}
	}

	// Installed by dpkg into a root of its own.
	root := t.TempDir()
	for _, d := range []string{"var/lib/dpkg/info", "var/lib/dpkg/updates"} {
		os.MkdirAll(filepath.Join(root, d), 0o755)
	}
	os.WriteFile(filepath.Join(root, "var/lib/dpkg/status"), nil, 0o644)
	run(t, "dpkg", "--root="+root, "--log=/dev/null", "--install", filepath.Join(c.out, "conntrace_1.2.0+3.gabc1234_amd64.deb"))
	run(t, "dpkg", "--root="+root, "--verify", "conntrace")
	installed := filepath.Join(root, "usr/bin/conntrace")
	if out := run(t, installed, "--version"); !strings.HasPrefix(out, "conntrace v1.2.0-3-gabc1234\n") ||
		!strings.Contains(out, "abc1234d75d9d8e16d5192fc89a3b899619b0a23") || !strings.Contains(out, "2026-12-03T09:30:00Z") {
		t.Errorf("installed conntrace --version:\n%s", out)
	}
	var v struct {
		Version, Commit, Arch string
		BuildDate             string   `json:"build_date"`
		BPFObject             string   `json:"bpf_object_sha256"`
		Hooks                 []string `json:"hooks"`
	}
	if err := json.Unmarshal([]byte(run(t, installed, "version", "-o", "json")), &v); err != nil {
		t.Fatal(err)
	}
	object, err := os.ReadFile("tracer/internal/bpfobj/conntrace_x86_bpfel.o")
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(object)
	if v.Version != "v1.2.0-3-gabc1234" || v.Commit != c.commit || v.BuildDate != "2026-12-03T09:30:00Z" || v.Arch != "amd64" ||
		v.BPFObject != hex.EncodeToString(sum[:]) || !slices.Equal(v.Hooks, []string{"fentry", "kprobe", "tracepoint"}) {
		t.Errorf("installed conntrace version -o json: %+v (the committed object's sha256 is %x)", v, sum)
	}
	// doctor loads and attaches every hook for real: it needs root,
	// which make test has.
	if out := run(t, installed, "doctor"); !strings.Contains(out, "auto picks") {
		t.Errorf("installed conntrace doctor:\n%s", out)
	}
	// The man page renders without a warning.
	groff := exec.Command("sh", "-c", "gzip -dc "+filepath.Join(root, "usr/share/man/man8/conntrace.8.gz")+" | groff -man -Tutf8 -ww -z")
	if out, err := groff.CombinedOutput(); err != nil || len(out) > 0 {
		t.Errorf("groff on the installed man page: %v\n%s", err, out)
	}
	// bash finds the installed completion.
	complete := exec.Command("bash", "-c", `source "$1"; COMP_WORDS=(conntrace watch --hooks ""); COMP_CWORD=3; _conntrace; echo "${COMPREPLY[*]}"`,
		"bash", filepath.Join(root, "usr/share/bash-completion/completions/conntrace"))
	if out, err := complete.Output(); err != nil || string(out) != "auto fentry kprobe tracepoint\n" {
		t.Errorf("installed bash completion of --hooks: %q %v", out, err)
	}

	// The same sources, date and version give the same files.
	again := c
	again.out = filepath.Join(t.TempDir(), "dist")
	if _, err := release(again); err != nil {
		t.Fatal(err)
	}
	a, _ := os.ReadFile(filepath.Join(c.out, "SHA256SUMS"))
	b, _ := os.ReadFile(filepath.Join(again.out, "SHA256SUMS"))
	if !bytes.Equal(a, b) {
		t.Errorf("a second release differs:\n%s\n%s", a, b)
	}
}

type tarEntry struct {
	*tar.Header
	data []byte
}

func readTarGz(t *testing.T, path string) map[string]*tarEntry {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	tr := tar.NewReader(zr)
	entries := map[string]*tarEntry{}
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return entries
		}
		if err != nil {
			t.Fatal(err)
		}
		data, _ := io.ReadAll(tr)
		entries[h.Name] = &tarEntry{h, data}
	}
}

// checkStatic: an executable for machine, with no interpreter (no libc).
func checkStatic(t *testing.T, arch string, data []byte, machine elf.Machine) {
	t.Helper()
	f, err := elf.NewFile(bytes.NewReader(data))
	if err != nil {
		t.Fatalf("%s binary: %v", arch, err)
	}
	if f.Machine != machine || f.Type != elf.ET_EXEC {
		t.Errorf("%s binary: %v %v, want %v ET_EXEC", arch, f.Machine, f.Type, machine)
	}
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			t.Errorf("%s binary has an interpreter: not static", arch)
		}
	}
}

func run(t *testing.T, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}
