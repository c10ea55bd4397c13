// SPDX-License-Identifier: Apache-2.0

//go:build floor

package tracer

// With -tags floor, conntrace attaches the hook-cost floor (spec.go).
func init() { loadSpec = loadFloor }
