// SPDX-License-Identifier: Apache-2.0

package main

import (
	"fmt"
	"os"
	"runtime/pprof"

	"golang.org/x/sys/unix"
)

// profileEnv names a file for a CPU profile of the whole run (make bench
// reads it with go tool pprof). The file must not exist yet, and a
// symlink is refused.
const profileEnv = "CONNTRACE_CPUPROFILE"

// startProfile starts the CPU profile path asks for ("": none) and returns
// what stops it.
func startProfile(path string) (stop func(), err error) {
	if path == "" {
		return func() {}, nil
	}
	fd, err := unix.Open(path, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o600)
	if err != nil {
		return nil, fmt.Errorf("%s=%q: %w", profileEnv, path, err)
	}
	f := os.NewFile(uintptr(fd), path)
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, fmt.Errorf("%s: %w", profileEnv, err)
	}
	return func() {
		pprof.StopCPUProfile()
		f.Close()
	}, nil
}
