/* SPDX-License-Identifier: GPL-2.0 */
/*
 * What the user asked to see, compiled in: settings the loader sets before
 * the programs are verified, so a disabled filter costs nothing (the
 * verifier prunes the dead branch), and the maps that hold the values.
 */
#ifndef CONNTRACE_FILTERS_BPF_H
#define CONNTRACE_FILTERS_BPF_H

#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include "conntrace.h"
#include "types.bpf.h"

const volatile __u8 filter_ports = 0;         /* port_filter holds the ports */
const volatile __u8 filter_pids = 0;          /* pid_filter holds the pids */
const volatile __u8 filter_family = 0;        /* 0: any, AF_INET or AF_INET6 */
const volatile __u8 filter_proto = 0;         /* 0: any, IPPROTO_TCP or IPPROTO_UDP */
const volatile __u8 filter_comms = 0;         /* comm_filter holds the names */
const volatile __u8 filter_cgroups = 0;       /* cgroup_filter holds cgroup ids */
const volatile __u32 event_mask = 0xffffffff; /* bit (1 << enum event_type) */

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1024);
	__type(key, __u16);
	__type(value, __u8);
} port_filter SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1024);
	__type(key, __u32);
	__type(value, __u8);
} pid_filter SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 64);
	__type(key, struct comm_key);
	__type(value, __u8);
} comm_filter SEC(".maps");

/*
 * Cgroup (v2) ids whose processes, and those of every cgroup below them,
 * are wanted: --cgroup, and --container's cgroups, added by user space as
 * the containers' cgroups appear (tracer/cgroupfilter.go).
 */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 4096);
	__type(key, __u64);
	__type(value, __u8);
} cgroup_filter SEC(".maps");

/* Cgroups deeper than this match by their ancestors down to this level. */
#define CGROUP_MAX_DEPTH 16

/*
 * Set by Go as the run stops (tracer.stop): from then on nothing new
 * starts (no connection is followed, no listen or failure reported),
 * while the connections already followed still report their accept and
 * close. Written while the programs run: in .bss, not .rodata.
 */
volatile __u8 stopping = 0;

static __always_inline bool want_event(enum event_type t)
{
	if (stopping && t != EVENT_ACCEPT && t != EVENT_CLOSE)
		return false;
	return event_mask & (1u << t);
}

static __always_inline bool port_match(__u16 sport, __u16 dport)
{
	if (!filter_ports)
		return true;
	return bpf_map_lookup_elem(&port_filter, &sport) || bpf_map_lookup_elem(&port_filter, &dport);
}

static __always_inline bool family_match(__u16 family)
{
	return !filter_family || filter_family == family;
}

/* A protocol's own programs are not loaded when it is filtered out; the
 * programs shared by every protocol (bind()) ask. */
static __always_inline bool proto_match(__u8 proto)
{
	return !filter_proto || filter_proto == proto;
}

/* Whether the current task's cgroup, or one above it, is in
 * cgroup_filter: a container's processes may sit in sub-cgroups of its
 * own (systemd in a container, kubepods' pod and container levels). */
static __always_inline bool cgroup_match(void)
{
	for (int level = 0; level <= CGROUP_MAX_DEPTH; level++) {
		__u64 id = bpf_get_current_ancestor_cgroup_id(level);

		if (!id)
			return false;
		if (bpf_map_lookup_elem(&cgroup_filter, &id))
			return true;
	}
	return false;
}

/* The process filters, applied to the current process: its tgid, its
 * name (NUL-padded, as process_name() leaves it: task.bpf.h), its cgroup.
 * Only in process context. */
static __always_inline bool proc_match(__u32 pid, const char *comm)
{
	if (filter_pids && !bpf_map_lookup_elem(&pid_filter, &pid))
		return false;
	if (filter_comms && !bpf_map_lookup_elem(&comm_filter, comm))
		return false;
	if (filter_cgroups && !cgroup_match())
		return false;
	return true;
}

#endif /* CONNTRACE_FILTERS_BPF_H */
