// SPDX-License-Identifier: Apache-2.0

package main

import (
	"bytes"
	"encoding/json"
	"regexp"
	"runtime"
	"slices"
	"strings"
	"testing"
)

// TestVersion: --version and version print the build, version -o json
// the same as an object. The test binary is built without make's linker
// flags: its version is Go's stamp or dev, its date unknown. (The
// release test checks a build made with them, installed from its .deb.)
func TestVersion(t *testing.T) {
	var text, long, stderr bytes.Buffer
	if code := run([]string{"conntrace", "--version"}, &text, &stderr); code != exitOK {
		t.Fatalf("--version: exit %d: %s", code, stderr.String())
	}
	if code := run([]string{"conntrace", "version"}, &long, &stderr); code != exitOK {
		t.Fatalf("version: exit %d: %s", code, stderr.String())
	}
	if text.String() != long.String() {
		t.Errorf("--version %q and version %q differ", text.String(), long.String())
	}
	var js bytes.Buffer
	if code := run([]string{"conntrace", "version", "-o", "json"}, &js, &stderr); code != exitOK {
		t.Fatalf("version -o json: exit %d: %s", code, stderr.String())
	}
	if strings.Count(js.String(), "\n") != 1 {
		t.Errorf("version -o json is not one line: %q", js.String())
	}
	var fields map[string]any
	if err := json.Unmarshal(js.Bytes(), &fields); err != nil {
		t.Fatal(err)
	}
	var keys []string
	for k := range fields {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	if want := []string{"arch", "bpf_object_sha256", "build_date", "commit", "dirty", "go_version", "hooks", "os", "version"}; !slices.Equal(keys, want) {
		t.Errorf("version -o json fields %q, want %q", keys, want)
	}
	var b buildInfo
	json.Unmarshal(js.Bytes(), &b)
	if b.Version == "" || b.GoVersion != runtime.Version() || b.OS != "linux" || b.Arch != runtime.GOARCH ||
		!regexp.MustCompile(`^[0-9a-f]{64}$`).MatchString(b.BPFObject) || !slices.Equal(b.Hooks, []string{"fentry", "kprobe", "tracepoint"}) {
		t.Errorf("version -o json: %+v", b)
	}
	for _, want := range []string{"conntrace " + b.Version + "\n", "go          " + runtime.Version() + " linux/" + runtime.GOARCH,
		"bpf object  sha256:" + b.BPFObject, "hooks       fentry, kprobe, tracepoint"} {
		if !strings.Contains(text.String(), want) {
			t.Errorf("--version does not say %q:\n%s", want, text.String())
		}
	}
}
