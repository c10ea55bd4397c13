// SPDX-License-Identifier: Apache-2.0

package tracer

import (
	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"

	"github.com/conntrace/conntrace/tracer/internal/bpfobj"
)

// loadSpec returns the embedded BPF object: conntrace's programs, or with
// -tags floor (spec_floor.go) the same hooks doing nothing.
var loadSpec = bpfobj.LoadConntrace

// floor is the hook-cost floor of spec, for `make bench`: every program's
// body replaced by "return 0" (a cgroup program's by "return 1": let the
// packet or the call through). The same programs attach to the same hooks
// with the same maps, so the loader is unchanged; what a storm loses with
// the floor attached is the price of the hooks themselves, which no
// program can go below.
func floor(spec *ebpf.CollectionSpec) *ebpf.CollectionSpec {
	for _, p := range spec.Programs {
		ret := int32(0)
		switch p.Type {
		case ebpf.CGroupSKB, ebpf.CGroupSock, ebpf.CGroupSockAddr:
			ret = 1
		}
		p.Instructions = asm.Instructions{asm.Mov.Imm(asm.R0, ret), asm.Return()}
	}
	return spec
}

// loadFloor is loadSpec for the floor.
func loadFloor() (*ebpf.CollectionSpec, error) {
	spec, err := bpfobj.LoadConntrace()
	if err != nil {
		return nil, err
	}
	return floor(spec), nil
}
