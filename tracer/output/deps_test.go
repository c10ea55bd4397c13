// SPDX-License-Identifier: Apache-2.0

package output

import (
	"os/exec"
	"strings"
	"testing"
)

// TestNoLoaderImported: the formatters, the metrics and the audit are
// used and tested without the BPF loader (package tracer) and without
// cilium/ebpf: they know events (package event) only.
func TestNoLoaderImported(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", ".", "../metrics", "../audit").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	for _, p := range strings.Fields(string(out)) {
		if p == "github.com/conntrace/conntrace/tracer" || strings.HasPrefix(p, "github.com/cilium/ebpf") || strings.HasSuffix(p, "/bpfobj") {
			t.Errorf("output, metrics or audit imports %s", p)
		}
	}
}
