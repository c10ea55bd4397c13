// SPDX-License-Identifier: Apache-2.0

package main

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"crypto/md5"
	"crypto/sha256"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"
)

type config struct {
	out, version, commit string
	date                 time.Time
	arches               []string
}

// file is one file of a package: its path inside, mode and content.
type file struct {
	path string
	mode int64
	data []byte
}

// release builds conntrace for each architecture and writes the
// tarballs, the Debian packages and SHA256SUMS into c.out, returning
// their paths.
func release(c config) ([]string, error) {
	// Both go into file names and the linker's flags.
	if !regexp.MustCompile(`^[0-9A-Za-z][0-9A-Za-z.+~_-]{0,63}$`).MatchString(c.version) {
		return nil, fmt.Errorf("version %q: want letters, digits and . + ~ _ - (as git describe writes it)", c.version)
	}
	if !regexp.MustCompile(`^([0-9a-f]{40}|[0-9a-f]{64})?$`).MatchString(c.commit) {
		return nil, fmt.Errorf("commit %q: want a full hash (git rev-parse HEAD)", c.commit)
	}
	if err := os.RemoveAll(c.out); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(c.out, 0o755); err != nil {
		return nil, err
	}
	work, err := os.MkdirTemp("", "conntrace-release-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(work)

	bins := map[string][]byte{}
	for _, arch := range c.arches {
		if arch != "amd64" && arch != "arm64" {
			return nil, fmt.Errorf("architecture %q: conntrace's BPF objects are built for amd64 and arm64", arch)
		}
		bin := filepath.Join(work, arch, "conntrace")
		if err := c.build(arch, bin); err != nil {
			return nil, err
		}
		if bins[arch], err = os.ReadFile(bin); err != nil {
			return nil, err
		}
	}
	// The man page and completions come from the definitions compiled
	// into the binary, the same for every architecture: this machine's
	// build writes them.
	docs, err := c.docs(work)
	if err != nil {
		return nil, err
	}
	common := []file{}
	for _, f := range []struct{ src, dst string }{{"README.md", "README.md"}, {"LICENSE", "LICENSE"}, {"bpf/LICENSE", "LICENSE.bpf"}} {
		data, err := os.ReadFile(f.src)
		if err != nil {
			return nil, err
		}
		common = append(common, file{f.dst, 0o644, data})
	}

	var written []string
	for _, arch := range c.arches {
		name := fmt.Sprintf("conntrace-%s-linux-%s", c.version, arch)
		files := []file{{"conntrace", 0o755, bins[arch]}}
		files = append(files, common...)
		files = append(files,
			file{"conntrace.8", 0o644, docs.man},
			file{"completions/conntrace.bash", 0o644, docs.bash},
			file{"completions/_conntrace", 0o644, docs.zsh},
			file{"completions/conntrace.fish", 0o644, docs.fish})
		tgz := filepath.Join(c.out, name+".tar.gz")
		if err := writeTarGz(tgz, name, files, c.date); err != nil {
			return nil, err
		}
		deb, err := c.deb(work, arch, bins[arch], docs)
		if err != nil {
			return nil, err
		}
		written = append(written, tgz, deb)
	}
	sums := filepath.Join(c.out, "SHA256SUMS")
	if err := writeSums(sums, written); err != nil {
		return nil, err
	}
	return append(written, sums), nil
}

// build compiles a static conntrace for arch into bin, with the version
// conntrace version prints, stripped of its symbol tables (-s -w: a third
// smaller; the Go build information stays).
func (c config) build(arch, bin string) error {
	ldflags := fmt.Sprintf("-s -w -X main.buildVersion=%s -X main.buildCommit=%s -X main.buildDate=%s",
		c.version, c.commit, c.date.Format(time.RFC3339))
	cmd := exec.Command("go", "build", "-trimpath", "-ldflags", ldflags, "-o", bin, "./cmd/conntrace")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH="+arch)
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("go build for %s: %w", arch, err)
	}
	return nil
}

type docs struct{ man, bash, zsh, fish []byte }

// docs runs this machine's build for the man page and completions.
func (c config) docs(work string) (docs, error) {
	bin := filepath.Join(work, runtime.GOARCH, "conntrace")
	if _, err := os.Stat(bin); err != nil {
		bin = filepath.Join(work, "host", "conntrace")
		if err := c.build(runtime.GOARCH, bin); err != nil {
			return docs{}, err
		}
	}
	run := func(args ...string) ([]byte, error) {
		out, err := exec.Command(bin, args...).Output()
		if err != nil {
			return nil, fmt.Errorf("conntrace %s: %w", strings.Join(args, " "), err)
		}
		return out, nil
	}
	var d docs
	var err error
	for _, x := range []struct {
		dst  *[]byte
		args []string
	}{{&d.man, []string{"man"}}, {&d.bash, []string{"completion", "bash"}}, {&d.zsh, []string{"completion", "zsh"}}, {&d.fish, []string{"completion", "fish"}}} {
		if *x.dst, err = run(x.args...); err != nil {
			return d, err
		}
	}
	return d, nil
}

// describe matches git describe past a tag: TAG-N-gHASH[-dirty].
var describe = regexp.MustCompile(`^(.+)-([0-9]+)-g([0-9a-f]+)(-dirty)?$`)

// bareHash is git describe --always on a commit no tag reaches: the
// abbreviated hash, which may start with a digit too.
var bareHash = regexp.MustCompile(`^[0-9a-f]{7,40}(-dirty)?$`)

// debVersion is version as Debian orders it: v1.2.0 is 1.2.0, v1.2.0-rc1
// 1.2.0~rc1 (before 1.2.0); git describe's v1.2.0-3-gabc1234 (three
// commits past the tag) is 1.2.0+3.gabc1234, after 1.2.0; an untagged
// build (a commit's hash, or dev) is 0~DATE.gHASH, before any release.
func debVersion(version, commit string, date time.Time) string {
	v := strings.TrimPrefix(version, "v")
	if v != "" && v[0] >= '0' && v[0] <= '9' && !bareHash.MatchString(version) {
		suffix := ""
		if m := describe.FindStringSubmatch(v); m != nil {
			v, suffix = m[1], "+"+m[2]+".g"+m[3]
			if m[4] != "" {
				suffix += ".dirty"
			}
		} else if base, found := strings.CutSuffix(v, "-dirty"); found {
			v, suffix = base, "+dirty"
		}
		v = strings.Map(func(r rune) rune {
			switch {
			case r == '-' || r == '_':
				return '~'
			case r >= '0' && r <= '9', r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r == '.', r == '+', r == '~':
				return r
			}
			return -1
		}, v)
		return v + suffix
	}
	d := "0~" + date.Format("20060102150405")
	if len(commit) >= 12 {
		d += ".g" + commit[:12]
	}
	if strings.HasSuffix(version, "-dirty") {
		d += ".dirty"
	}
	return d
}

// deb builds conntrace_VERSION_ARCH.deb with dpkg-deb: the binary, the
// man page, the completions, the copyright and changelog Debian asks
// for; no dependencies (a static binary).
func (c config) deb(work, arch string, bin []byte, d docs) (string, error) {
	version := debVersion(c.version, c.commit, c.date)
	root := filepath.Join(work, "deb-"+arch)
	man, err := gzipped(d.man, c.date)
	if err != nil {
		return "", err
	}
	changelog, err := gzipped([]byte(fmt.Sprintf(`conntrace (%s) unstable; urgency=medium

  * Built from %s,
    commit %s.

 -- conntrace developers <conntrace@users.noreply.github.com>  %s
`, version, c.version, or(c.commit, "unknown"), c.date.Format(time.RFC1123Z))), c.date)
	if err != nil {
		return "", err
	}
	files := []file{
		{"usr/bin/conntrace", 0o755, bin},
		{"usr/share/man/man8/conntrace.8.gz", 0o644, man},
		{"usr/share/bash-completion/completions/conntrace", 0o644, d.bash},
		{"usr/share/zsh/vendor-completions/_conntrace", 0o644, d.zsh},
		{"usr/share/fish/vendor_completions.d/conntrace.fish", 0o644, d.fish},
		{"usr/share/doc/conntrace/copyright", 0o644, []byte(copyright)},
		{"usr/share/doc/conntrace/changelog.gz", 0o644, changelog},
		// A Go program is static by design: nothing to link against.
		{"usr/share/lintian/overrides/conntrace", 0o644, []byte("conntrace: statically-linked-binary [usr/bin/conntrace]\n")},
	}
	size := 0
	var md5sums strings.Builder // dpkg --verify checks them
	for _, f := range files {
		if err := writeFile(filepath.Join(root, f.path), f.mode, f.data); err != nil {
			return "", err
		}
		size += (len(f.data) + 1023) / 1024
		fmt.Fprintf(&md5sums, "%x  %s\n", md5.Sum(f.data), f.path)
	}
	if err := writeFile(filepath.Join(root, "DEBIAN", "md5sums"), 0o644, []byte(md5sums.String())); err != nil {
		return "", err
	}
	control := fmt.Sprintf(`Package: conntrace
Version: %s
Architecture: %s
Maintainer: conntrace developers <conntrace@users.noreply.github.com>
Installed-Size: %d
Section: net
Priority: optional
Homepage: https://github.com/conntrace/conntrace
Description: trace TCP connections and UDP flows live, with the process behind every event
 conntrace follows TCP connections with eBPF: who listens, who connects to
 whom and how long the handshake took, who accepts, each close with its
 duration, bytes and reason, and every failed connect() or bind() with its
 cause and, for a port in use, the process holding it. IPv4 and IPv6,
 filtered in the kernel. It also serves Prometheus metrics, audits
 ephemeral-port use, and lists who holds which port.
`, version, arch, size)
	if err := writeFile(filepath.Join(root, "DEBIAN", "control"), 0o644, []byte(control)); err != nil {
		return "", err
	}
	deb := filepath.Join(c.out, fmt.Sprintf("conntrace_%s_%s.deb", version, arch))
	cmd := exec.Command("dpkg-deb", "--root-owner-group", "-Zxz", "--build", root, deb)
	// Files dated the build date: the same package from the same commit.
	cmd.Env = append(os.Environ(), "SOURCE_DATE_EPOCH="+strconv.FormatInt(c.date.Unix(), 10))
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("dpkg-deb --build: %v: %s", err, out)
	}
	return deb, nil
}

// copyright is the package's, in Debian's machine-readable format.
const copyright = `Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/
Upstream-Name: conntrace
Source: https://github.com/conntrace/conntrace

Files: *
Copyright: 2026 conntrace developers
License: Apache-2.0
 On Debian systems, the full text of the Apache License, Version 2.0 is in
 /usr/share/common-licenses/Apache-2.0.

Files: bpf/*
Copyright: 2026 conntrace developers
License: GPL-2.0-only
 The BPF programs embedded in /usr/bin/conntrace. On Debian systems, the
 full text of the GNU General Public License version 2 is in
 /usr/share/common-licenses/GPL-2.
`

func or(s, none string) string {
	if s == "" {
		return none
	}
	return s
}

func writeFile(path string, mode int64, data []byte) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	if err := os.WriteFile(path, data, os.FileMode(mode)); err != nil {
		return err
	}
	return os.Chmod(path, os.FileMode(mode)) // past the umask
}

// gzipped compresses data as gzip -9n would: no name, the given time.
func gzipped(data []byte, date time.Time) ([]byte, error) {
	var b bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&b, gzip.BestCompression)
	zw.ModTime = date
	if _, err := zw.Write(data); err != nil {
		return nil, err
	}
	if err := zw.Close(); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

// writeTarGz writes files under the folder dir, owned by root, dated date.
func writeTarGz(path, dir string, files []file, date time.Time) error {
	var b bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&b, gzip.BestCompression)
	tw := tar.NewWriter(zw)
	dirs := map[string]bool{}
	for _, f := range files {
		for _, d := range []string{dir, filepath.Join(dir, filepath.Dir(f.path))} {
			if !dirs[d] {
				dirs[d] = true
				if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: d + "/", Mode: 0o755, ModTime: date, Uname: "root", Gname: "root"}); err != nil {
					return err
				}
			}
		}
		h := &tar.Header{Typeflag: tar.TypeReg, Name: filepath.Join(dir, f.path), Mode: f.mode, Size: int64(len(f.data)), ModTime: date, Uname: "root", Gname: "root"}
		if err := tw.WriteHeader(h); err != nil {
			return err
		}
		if _, err := tw.Write(f.data); err != nil {
			return err
		}
	}
	if err := tw.Close(); err != nil {
		return err
	}
	if err := zw.Close(); err != nil {
		return err
	}
	return os.WriteFile(path, b.Bytes(), 0o644)
}

// writeSums writes sha256sum's format: a line per file, by name.
func writeSums(path string, files []string) error {
	files = slices.Sorted(slices.Values(files))
	var b strings.Builder
	for _, f := range files {
		h := sha256.New()
		r, err := os.Open(f)
		if err != nil {
			return err
		}
		_, err = io.Copy(h, r)
		r.Close()
		if err != nil {
			return err
		}
		fmt.Fprintf(&b, "%x  %s\n", h.Sum(nil), filepath.Base(f))
	}
	return os.WriteFile(path, []byte(b.String()), 0o644)
}
