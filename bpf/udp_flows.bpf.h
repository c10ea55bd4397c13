/* SPDX-License-Identifier: GPL-2.0 */
/*
 * UDP's maps, shared by the flows (udp_flows.bpf.c), their drops
 * (udp_drops.bpf.c) and errors (udp_errors.bpf.c).
 */
#ifndef CONNTRACE_UDP_FLOWS_BPF_H
#define CONNTRACE_UDP_FLOWS_BPF_H

#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include "conntrace.h"
#include "defs.bpf.h"
#include "events.bpf.h"
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

/* A flow's start record: connect if this end sent first (or connected),
 * accept if the peer did. */
static __always_inline void emit_start(const struct udp_flow_key *key, const struct udp_flow *f)
{
	struct connect_record *e;
	struct tuple t;

	flow_tuple(&t, key, f);
	if (f->direction == DIR_IN) {
		struct record_head *h;

		if (!want_event(EVENT_ACCEPT))
			return;
		h = new_record(EVENT_ACCEPT, sizeof(*h), IPPROTO_UDP, &t, &f->task);
		if (!h)
			return;
		h->ts_ns = f->start_ns;
		h->conn_id = f->conn_id;
		h->netns = f->netns;
		h->direction = DIR_IN;
		submit(h);
		return;
	}
	if (!want_event(EVENT_CONNECT))
		return;
	e = new_record(EVENT_CONNECT, sizeof(*e), IPPROTO_UDP, &t, &f->task);
	if (!e)
		return;
	e->head.ts_ns = f->start_ns;
	e->head.conn_id = f->conn_id;
	e->head.netns = f->netns;
	e->head.direction = DIR_OUT;
	e->latency_ns = 0; /* no handshake */
	submit(e);
}

#endif /* CONNTRACE_UDP_FLOWS_BPF_H */
