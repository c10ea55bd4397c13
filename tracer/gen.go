package tracer

// The BPF objects are compiled by bpf2go from ../bpf and committed, so that
// `go build` needs no clang. `make generate` reruns this line;
// TestGeneratedUpToDate proves the committed output matches the sources.
//
//go:generate go tool bpf2go -target amd64 -type event -type event_type -type direction -type close_reason -type event_flags -type sock_info conntrace ../bpf/conntrace.bpf.c -- -I../bpf -I.. -O2 -g -Wall -Werror
