package tracer

// The BPF objects are compiled by bpf2go from ../bpf and committed, so that
// `go build` needs no clang. `make generate` reruns these lines;
// TestGeneratedUpToDate proves the committed output matches the sources.
// The second object is the hook-cost floor for `make bench` (-tags floor).
//
//go:generate go tool bpf2go -target amd64 -type event -type event_type -type direction -type close_reason -type event_flags -type lost_cause conntrace ../bpf/conntrace.bpf.c -- -I../bpf -I.. -O2 -g -Wall -Werror
//go:generate go tool bpf2go -target amd64 -tags floor conntracefloor ../bpf/floor.bpf.c -- -I../bpf -I.. -O2 -g -Wall -Werror
