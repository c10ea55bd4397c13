//go:build floor

package tracer

import "github.com/cilium/ebpf"

// loadSpec returns the hook-cost floor: every hook attached, every program
// returning at once. For `make bench` only.
func loadSpec() (*ebpf.CollectionSpec, error) { return loadConntracefloor() }
