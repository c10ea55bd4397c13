// SPDX-License-Identifier: Apache-2.0

package main

import (
	"fmt"
	"io"
	"runtime"
	"runtime/debug"
	"strings"
	"sync"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/conntrace/conntrace/tracer"
	"github.com/conntrace/conntrace/tracer/metrics"
	"github.com/conntrace/conntrace/tracer/output"
)

// Set by the linker (make build, make release):
//
//	-X main.buildVersion=$(git describe --tags --always --dirty)
//	-X main.buildCommit=$(git rev-parse HEAD)
//	-X main.buildDate=2026-12-03T09:38:46Z
//
// A plain `go build` or `go install` leaves them empty; versionInfo then
// reads what the Go toolchain stamped (the module version, the commit).
var buildVersion, buildCommit, buildDate string

// buildInfo is `conntrace version -o json`'s object (field names are
// the output contract) and conntrace_build_info's labels.
type buildInfo struct {
	// Version: the git tag or git describe of the source, the module
	// version `go install ...@version` records, else "dev".
	Version string `json:"version"`
	// Commit: the full hash, "" when unknown; Dirty: built with
	// uncommitted changes.
	Commit string `json:"commit"`
	Dirty  bool   `json:"dirty"`
	// BuildDate: when it was built (RFC 3339, UTC), "" when unknown.
	BuildDate string `json:"build_date"`
	GoVersion string `json:"go_version"`
	OS        string `json:"os"`
	Arch      string `json:"arch"`
	// BPFObject: the SHA-256 of the embedded BPF object.
	BPFObject string `json:"bpf_object_sha256"`
	// Hooks: the hook modes the object has programs for.
	Hooks []string `json:"hooks"`
}

// versionInfo is this binary's build, read once.
var versionInfo = sync.OnceValue(func() buildInfo {
	b := buildInfo{Version: buildVersion, Commit: buildCommit, BuildDate: buildDate,
		GoVersion: runtime.Version(), OS: runtime.GOOS, Arch: runtime.GOARCH, BPFObject: tracer.ObjectSHA256(), Hooks: []string{}}
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				if b.Commit == "" {
					b.Commit = s.Value
				}
			case "vcs.modified":
				b.Dirty = b.Dirty || s.Value == "true"
			}
		}
		if v := bi.Main.Version; b.Version == "" && v != "" && v != "(devel)" {
			b.Version = v
		}
	}
	if strings.HasSuffix(b.Version, "-dirty") {
		b.Dirty = true
	}
	if b.Version == "" {
		b.Version = "dev"
	}
	if b.BuildDate != "" {
		if t, err := time.Parse(time.RFC3339, b.BuildDate); err == nil {
			b.BuildDate = t.UTC().Format(time.RFC3339)
		} else {
			b.BuildDate = "" // not a date: the linker flag was wrong
		}
	}
	if modes, err := tracer.CompiledHookModes(); err == nil {
		for _, m := range modes {
			b.Hooks = append(b.Hooks, m.String())
		}
	}
	return b
})

func (b buildInfo) writeText(w io.Writer) error {
	or := func(s, none string) string {
		if s == "" {
			return none
		}
		return s
	}
	commit := or(b.Commit, "unknown")
	if b.Dirty && b.Commit != "" {
		commit += " (with uncommitted changes)"
	}
	_, err := fmt.Fprintf(w, "conntrace %s\n  commit      %s\n  built       %s\n  go          %s %s/%s\n  bpf object  sha256:%s\n  hooks       %s\n",
		b.Version, commit, or(b.BuildDate, "unknown"), b.GoVersion, b.OS, b.Arch, b.BPFObject, or(strings.Join(b.Hooks, ", "), "none"))
	return err
}

func versionCommand() *cli.Command {
	return &cli.Command{
		Name:  "version",
		Usage: "print the version, commit, build date, Go version, BPF object and hook modes of this binary",
		Flags: []cli.Flag{
			outputFlag(),
		},
		Action: func(c *cli.Context) error {
			if err := noArgs(c, ""); err != nil {
				return err
			}
			format, err := parseOutput(c)
			if err != nil {
				return err
			}
			if format == output.JSON {
				return writeJSON(c.App.Writer, versionInfo())
			}
			return versionInfo().writeText(c.App.Writer)
		},
		OnUsageError: onUsageError,
	}
}

func init() {
	// --version, as every tool has; no -v: it means verbose elsewhere.
	cli.VersionFlag = &cli.BoolFlag{Name: "version", Usage: "print the version and exit"}
	cli.VersionPrinter = func(c *cli.Context) { versionInfo().writeText(c.App.Writer) }
}

// labels are conntrace_build_info's.
func (b buildInfo) labels() metrics.BuildLabels {
	commit := b.Commit
	if b.Dirty && commit != "" {
		commit += "-dirty"
	}
	return metrics.BuildLabels{Version: b.Version, Commit: commit, BuildDate: b.BuildDate, GoVersion: b.GoVersion,
		Arch: b.Arch, BPFObject: b.BPFObject, HookModes: strings.Join(b.Hooks, ",")}
}
