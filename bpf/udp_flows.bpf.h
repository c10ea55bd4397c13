/* SPDX-License-Identifier: GPL-2.0 */
/*
 * UDP's maps, shared by the flows (udp_flows.bpf.c), their drops
 * (udp_drops.bpf.c) and errors (udp_errors.bpf.c).
 */
#ifndef CONNTRACE_UDP_FLOWS_BPF_H
#define CONNTRACE_UDP_FLOWS_BPF_H

#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include "types.bpf.h"
#include "udp_types.bpf.h"

struct {
	__uint(type, BPF_MAP_TYPE_SK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, int);
	__type(value, struct udp_sock_info);
} udp_socks SEC(".maps");

/* The flows; max_entries is set by the loader (Config.UDPFlows). */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 65536);
	__type(key, struct udp_flow_key);
	__type(value, struct udp_flow);
} udp_flows SEC(".maps");

/* The last datagram the ingress program counted, per CPU. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct udp_last_in);
} udp_last_in SEC(".maps");

/* The tuple of a flow as records have it: local end first. */
static __always_inline void flow_tuple(struct tuple *t, const struct udp_flow_key *key,
				       const struct udp_flow *f)
{
	t->family = key->family;
	t->sport = f->local_port;
	t->dport = key->peer_port;
	t->s4 = f->local[0];
	t->d4 = key->peer[0];
	__builtin_memcpy(t->s6, f->local, sizeof(t->s6));
	__builtin_memcpy(t->d6, key->peer, sizeof(t->d6));
}

#endif /* CONNTRACE_UDP_FLOWS_BPF_H */
