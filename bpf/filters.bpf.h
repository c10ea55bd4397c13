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
#include <bpf/bpf_core_read.h>
#include "conntrace.h"
#include "types.bpf.h"

const volatile __u8 filter_ports = 0;         /* port_filter holds the ports */
const volatile __u16 filter_port_min = 0;     /* port_filter's smallest port */
const volatile __u16 filter_port_max = 0;     /* and its largest */
const volatile __u8 filter_pids = 0;          /* pid_filter holds the pids */
const volatile __u8 filter_family = 0;        /* 0: any, AF_INET or AF_INET6 */
const volatile __u8 filter_proto = 0;         /* 0: any, IPPROTO_TCP or IPPROTO_UDP */
const volatile __u8 filter_comms = 0;         /* comm_filter holds the names */
const volatile __u8 filter_cgroups = 0;       /* cgroup_filter holds cgroup ids */
const volatile __u32 event_mask = 0xffffffff; /* bit (1 << enum event_type) */

/* 1 at each port asked for. An array: the verifier inlines its lookup,
 * a load, where a hash's is a call. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 65536);
	__type(key, __u32);
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

static __always_inline bool port_wanted(__u32 port)
{
	__u8 *v = bpf_map_lookup_elem(&port_filter, &port);

	return v && *v;
}

static __always_inline bool port_match(__u16 sport, __u16 dport)
{
	if (!filter_ports)
		return true;
	return port_wanted(sport) || port_wanted(dport);
}

/* struct local_ports of older kernels (Debian's 6.1): an int for each end,
 * where newer ones hold both in a u32, the first in its low 16 bits.
 * CO-RE finds the one the kernel has. */
struct local_ports___pair {
	int range[2];
} __attribute__((preserve_access_index));

struct netns_ipv4___pair {
	struct local_ports___pair ip_local_ports;
} __attribute__((preserve_access_index));

struct net___pair {
	struct netns_ipv4___pair ipv4;
} __attribute__((preserve_access_index));

/*
 * Whether the local port the kernel picks for sk's connect() may be one
 * the port filter asks for: ports are picked from the socket's network
 * namespace's ip_local_port_range (a socket's IP_LOCAL_PORT_RANGE only
 * narrows it). False lets the programs that see an outbound connection
 * before its local port is picked forget it at once, where every port
 * asked for is outside that range (--port 443 and the default range,
 * 32768-60999).
 */
static __always_inline bool ephemeral_may_match(struct sock *sk)
{
	struct net *net;
	__u32 lo, hi, r;

	if (!filter_ports)
		return true;
	net = BPF_CORE_READ(sk, __sk_common.skc_net.net);
	if (!net)
		return true;
	/* The layout the kernel lacks has its reads replaced by an invalid
	 * instruction, which must stay in the branch the verifier never
	 * takes: barrier_var keeps the compiler from moving a read's address
	 * arithmetic above the test. */
	if (bpf_core_field_exists(net->ipv4.ip_local_ports.range)) {
		barrier_var(net);
		r = BPF_CORE_READ(net, ipv4.ip_local_ports.range);
		lo = r & 0xffff;
		hi = r >> 16;
	} else {
		struct net___pair *old = (void *)net;

		barrier_var(old);
		lo = BPF_CORE_READ(old, ipv4.ip_local_ports.range[0]);
		hi = BPF_CORE_READ(old, ipv4.ip_local_ports.range[1]);
	}
	return filter_port_max >= lo && filter_port_min <= hi;
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
