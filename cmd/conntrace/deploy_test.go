// SPDX-License-Identifier: Apache-2.0

package main

import (
	"bytes"
	"strings"
	"testing"

	"github.com/conntrace/conntrace/cmd/conntrace/deploy"
	"github.com/conntrace/conntrace/tracer"
)

// TestDeployCommand: each target prints its file; flags after the
// target's name are the target's; the unit bounds the capabilities to
// those conntrace uses.
func TestDeployCommand(t *testing.T) {
	out := func(args ...string) string {
		t.Helper()
		var stdout, stderr bytes.Buffer
		if code := run(append([]string{"conntrace", "deploy"}, args...), &stdout, &stderr); code != exitOK || stderr.Len() != 0 {
			t.Fatalf("deploy %v: exit %d: %s", args, code, stderr.String())
		}
		return stdout.String()
	}
	k := out("kubernetes", "--podmonitor", "--namespace", "obs", "--image", "reg.example.com/ct:v1", "--port", "9999")
	for _, want := range []string{"\nkind: PodMonitor\n", "\n  namespace: \"obs\"\n", "image: \"reg.example.com/ct:v1\"\n", `args: ["serve", "--listen", ":9999"]`} {
		if !strings.Contains(k, want) {
			t.Errorf("kubernetes lacks %q", want)
		}
	}
	if k := out("kubernetes"); strings.Contains(k, "PodMonitor") || !strings.Contains(k, "image: \""+defaultImage+"\"\n") ||
		!strings.Contains(k, `"--listen", ":10843"`) {
		t.Errorf("kubernetes defaults:\n%s", k)
	}
	var caps []string
	for _, c := range tracer.UsedCapabilities {
		caps = append(caps, c.String())
	}
	// The test binary is no conntrace: make install's path.
	if u := out("systemd"); !strings.Contains(u, "\nCapabilityBoundingSet="+strings.Join(caps, " ")+"\n") ||
		!strings.Contains(u, "\nExecStart=/usr/local/bin/conntrace serve --listen :10843\n") {
		t.Errorf("systemd:\n%s", u)
	}
	if u := out("systemd", "--binary", "/opt/ct/conntrace"); !strings.Contains(u, "\nExecStart=/opt/ct/conntrace serve") {
		t.Errorf("systemd --binary:\n%s", u)
	}
	// A --listen serve refuses is refused here too.
	for _, listen := range []string{":99999", ":010", "[[::1]]:80", "localhost"} {
		var stdout, stderr bytes.Buffer
		if code := run([]string{"conntrace", "deploy", "systemd", "--listen", listen}, &stdout, &stderr); code != exitUsage ||
			stdout.Len() != 0 || strings.Count(stderr.String(), "\n") != 1 {
			t.Errorf("deploy systemd --listen %s: exit %d, %q", listen, code, stderr.String())
		}
	}
	if out("rules") != string(deploy.Rules) || out("dashboard") != string(deploy.Dashboard) {
		t.Error("rules or dashboard differ from the embedded files")
	}
}
