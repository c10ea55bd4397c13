// SPDX-License-Identifier: Apache-2.0

package main

import (
	"bufio"
	"bytes"
	"fmt"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
)

// hostTools are the host's programs the tests run in the VMs: a real DNS
// server (dnsmasq), glibc's resolver (getent) and iproute2's "ip netns
// exec" for them. They are the host's amd64 binaries, with the shared
// libraries they load: an amd64 VM gets them, the arm64 one does not
// (its plan leaves out the tests that need them). dig is not among them:
// its libraries are 55 MB, and every boot would unpack them.
var hostTools = []string{"dnsmasq", "getent", "ip"}

// hostToolsFor is every file of hostTools, by their path in the VM: the
// programs in /bin (the tests' PATH), their libraries and the dynamic
// loader where the host has them. None for another architecture.
func hostToolsFor(arch string) (map[string]string, error) {
	if arch != runtime.GOARCH {
		return nil, nil
	}
	files := map[string]string{}
	for _, name := range hostTools {
		path, err := exec.LookPath(name)
		if err != nil {
			return nil, fmt.Errorf("%s: %v (make deps installs it)", name, err)
		}
		files["bin/"+name] = path
		out, err := exec.Command("ldd", path).Output()
		if err != nil {
			return nil, fmt.Errorf("ldd %s: %v", path, err)
		}
		// "libc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x...)" and
		// "/lib64/ld-linux-x86-64.so.2 (0x...)".
		sc := bufio.NewScanner(bytes.NewReader(out))
		for sc.Scan() {
			for _, f := range strings.Fields(sc.Text()) {
				if filepath.IsAbs(f) {
					files[strings.TrimPrefix(f, "/")] = f
				}
			}
		}
	}
	return files, nil
}

// etcFiles are what those programs read of /etc: the users dnsmasq runs
// as, and the resolv.conf "ip netns exec" mounts a namespace's over.
var etcFiles = map[string]string{
	"etc/passwd":      "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n",
	"etc/group":       "root:x:0:\nnogroup:x:65534:\n",
	"etc/resolv.conf": "",
}
