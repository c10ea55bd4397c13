//go:build !floor

package tracer

import "github.com/cilium/ebpf"

// loadSpec returns the embedded BPF object: conntrace's programs, or with
// -tags floor (spec_floor.go) the same hooks doing nothing.
func loadSpec() (*ebpf.CollectionSpec, error) { return loadConntrace() }
