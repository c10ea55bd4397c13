// SPDX-License-Identifier: Apache-2.0

// Command vmtest runs conntrace's test binaries on a second kernel, in a
// qemu VM under software emulation (TCG: nested KVM is not available).
//
// On the host it fetches a Debian kernel package (apt-get download, cached
// in .cache/vmtest), packs an initramfs with this program as /init, the
// static test binaries and the kernel modules they need, boots it and
// streams the console. Inside the VM, as PID 1, it mounts what the tests
// need, runs them, reports and powers off.
package main

import (
	"os"
)

func main() {
	if os.Getpid() == 1 {
		os.Exit(initMain())
	}
	os.Exit(hostMain(os.Args[1:]))
}
