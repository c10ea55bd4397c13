// SPDX-License-Identifier: Apache-2.0

package tracer_test

import (
	"fmt"
	"os"
	"testing"

	"github.com/conntrace/conntrace/tracer"
	"github.com/conntrace/conntrace/tracer/testnet"
)

func TestMain(m *testing.M) {
	testnet.RunHelper()
	// A fresh machine may not have tracefs mounted; the tracepoints attach
	// through it. The CLI mounts it (cmd/conntrace/hooks.go), a library
	// user must (tracer.MountTracefs), and so do the tests, as root.
	if os.Geteuid() == 0 {
		if _, err := tracer.MountTracefs(); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
	}
	os.Exit(m.Run())
}
