//go:build !cgo

package main

// builtWithCgo: this binary cannot drop capabilities (tracer.ErrCapabilitiesCgo).
const builtWithCgo = false
