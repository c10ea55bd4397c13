/* SPDX-License-Identifier: GPL-2.0 */
/*
 * DNS over UDP: the messages of this host's sockets to and from port 53,
 * copied from the cgroup skb programs (udp_flows.bpf.c), which run in
 * every hook mode. Go parses them beside the reader (tracer/dns): every
 * lookup and its answer, and the names behind peers' addresses.
 */
#ifndef CONNTRACE_UDP_DNS_BPF_H
#define CONNTRACE_UDP_DNS_BPF_H

#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include "conntrace.h"
#include "events.bpf.h"
#include "filters.bpf.h"
#include "types.bpf.h"

#define DNS_PORT 53

/* Set by the loader: DNS messages are copied, for dns events or for the
 * names of other events' peers. */
const volatile __u8 dns_tap = 0;

/* A client's message: a query it sends to port 53, or an answer it gets
 * from there. A server's own (to or from its port 53) are the clients'. */
static __always_inline bool dns_client_message(__u16 sport, __u16 dport, bool out)
{
	return dns_tap && (out ? dport == DNS_PORT : sport == DNS_PORT);
}

/* Where a dns record is made, per CPU: the ring gets only the bytes it
 * uses (a message is a few dozen bytes, the record up to 1,360). One for
 * each direction: the ingress program, in a softirq, can interrupt the
 * egress program on its CPU. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 2);
	__type(key, __u32);
	__type(value, struct dns_record);
} dns_scratch SEC(".maps");

/* Copies the message at offset off of skb (len bytes, the UDP payload)
 * into a dns record of the socket: t is its end and the server's, task
 * its owner. */
static __always_inline void tap_dns(struct __sk_buff *skb, __u32 off, __u32 len, const struct tuple *t,
				    const struct task_info *task, __u32 netns, __u64 conn_id, __u64 cookie,
				    bool out, bool shown)
{
	__u64 last = len - 1; /* the last byte copied, counted from 0 */
	__u64 size = offsetof(struct dns_record, payload);
	__u32 slot = out ? 0 : 1;
	struct dns_record *r;

	r = bpf_map_lookup_elem(&dns_scratch, &slot);
	if (!r)
		return;
	fill_head(&r->head, EVENT_DNS, 0, IPPROTO_UDP, t, task);
	r->head.conn_id = conn_id;
	r->head.netns = netns;
	r->head.direction = out ? DIR_OUT : DIR_IN;
	r->sock = cookie;
	r->len = len;
	r->shown = shown;
	__builtin_memset(r->_pad, 0, sizeof(r->_pad));
	if (last >= DNS_PAYLOAD_MAX)
		last = DNS_PAYLOAD_MAX - 1;
	/* The helper takes 1 to DNS_PAYLOAD_MAX bytes: bounded as the
	 * verifier of every kernel sees it (older ones lose a "> 0" the
	 * compiler merged into another test), and not merged with it. */
	barrier_var(last);
	if (len > 0 && last < DNS_PAYLOAD_MAX && bpf_skb_load_bytes(skb, off, r->payload, last + 1) == 0)
		size += last + 1;
	r->head.size = size;
	/* Bounded for the verifier too: the record, not past its buffer. */
	barrier_var(size);
	if (size <= sizeof(*r))
		output_record(r, size);
}

#endif /* CONNTRACE_UDP_DNS_BPF_H */
