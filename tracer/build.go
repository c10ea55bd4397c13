// SPDX-License-Identifier: Apache-2.0

package tracer

import (
	"github.com/conntrace/conntrace/tracer/internal/bpfobj"
)

// ObjectSHA256 is the SHA-256, in hex, of the BPF object built into this
// binary for its architecture.
func ObjectSHA256() string { return bpfobj.ObjectSHA256() }

// CompiledHookModes lists, in HookModes' order, the hook modes whose
// programs the built-in BPF object has: the modes this binary can run,
// whatever the kernel offers.
func CompiledHookModes() ([]Hooks, error) {
	spec, err := bpfobj.LoadConntrace()
	if err != nil {
		return nil, err
	}
	var modes []Hooks
	for _, m := range HookModes {
		have := true
		for _, name := range modePrograms[m] {
			if spec.Programs[name] == nil {
				have = false
			}
		}
		if have {
			modes = append(modes, m)
		}
	}
	return modes, nil
}
