// SPDX-License-Identifier: Apache-2.0

// Package bpfobj holds conntrace's BPF objects (amd64 and arm64: the
// kprobes read each architecture's registers), compiled by bpf2go from
// bpf/ and committed, so that `go build` needs no clang: Conntrace, the
// tracer's hooks, and Owners, the socket owners iterator. `make generate`
// reruns the lines below; TestGeneratedUpToDate proves the committed
// output matches the sources.
package bpfobj

//go:generate go tool bpf2go -target amd64,arm64 -type record_head -type connect_record -type close_record -type connect_fail_record -type bind_fail_record -type drop_record -type dns_record -type event_type -type direction -type close_reason -type event_flags -type lost_cause -type listen_key -type udp_sweep Conntrace ../../../bpf/conntrace.bpf.c -- -I../../../bpf -I../../.. -O2 -g -Wall -Werror
//go:generate go tool bpf2go -target amd64,arm64 -type owner Owners ../../../bpf/owners.bpf.c -- -I../../../bpf -I../../.. -O2 -g -Wall -Werror
