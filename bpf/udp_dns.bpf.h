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
 * each program that makes them: the ingress program, in a softirq, can
 * interrupt the egress program or a drop's on its CPU. */
enum dns_slot {
	DNS_SLOT_EGRESS = 0,
	DNS_SLOT_INGRESS = 1,
	DNS_SLOT_DROP = 2,
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 3);
	__type(key, __u32);
	__type(value, struct dns_record);
} dns_scratch SEC(".maps");

/* A dns record in the slot's buffer, its head and fields set, for a
 * message of len bytes: t is the socket's end and the server's, task its
 * owner. The caller copies the message and sends it (dns_send). */
static __always_inline struct dns_record *dns_record(__u32 slot, __u8 proto, __u32 len, const struct tuple *t,
						     const struct task_info *task, __u32 netns, __u64 conn_id,
						     __u64 cookie, bool out, bool shown)
{
	struct dns_record *r = bpf_map_lookup_elem(&dns_scratch, &slot);

	if (!r)
		return NULL;
	fill_head(&r->head, EVENT_DNS, 0, proto, t, task);
	r->head.conn_id = conn_id;
	r->head.netns = netns;
	r->head.direction = out ? DIR_OUT : DIR_IN;
	r->sock = cookie;
	r->len = len;
	r->shown = shown;
	r->dropped = 0;
	r->gap = 0;
	r->_pad = 0;
	return r;
}

/* How many bytes of a message of len to copy, less one: 0 to
 * DNS_PAYLOAD_MAX - 1, bounded as the verifier of every kernel sees it
 * (older ones lose a "> 0" the compiler merges into another test); the
 * caller tests len > 0 and copies last + 1 bytes. */
static __always_inline __u64 dns_last(__u32 len)
{
	__u64 last = len - 1;

	if (last >= DNS_PAYLOAD_MAX)
		last = DNS_PAYLOAD_MAX - 1;
	barrier_var(last);
	return last;
}

/* Puts record r, with copied bytes of its message, in the ring. */
static __always_inline void dns_send(struct dns_record *r, __u64 copied)
{
	__u64 size = offsetof(struct dns_record, payload) + copied;

	r->head.size = size;
	/* Bounded for the verifier too: the record, not past its buffer. */
	barrier_var(size);
	if (size <= sizeof(*r))
		output_record(r, size);
}

/* Copies the message at offset off of skb (len bytes, the UDP payload)
 * into a dns record of the socket (dns_record). */
static __always_inline void tap_dns(struct __sk_buff *skb, __u32 off, __u32 len, const struct tuple *t,
				    const struct task_info *task, __u32 netns, __u64 conn_id, __u64 cookie,
				    bool out, bool shown)
{
	struct dns_record *r = dns_record(out ? DNS_SLOT_EGRESS : DNS_SLOT_INGRESS, IPPROTO_UDP, len, t, task,
					  netns, conn_id, cookie, out, shown);
	__u64 last = dns_last(len);

	if (!r)
		return;
	if (len > 0 && last < DNS_PAYLOAD_MAX && bpf_skb_load_bytes(skb, off, r->payload, last + 1) == 0) {
		dns_send(r, last + 1);
		return;
	}
	dns_send(r, 0);
}

#endif /* CONNTRACE_UDP_DNS_BPF_H */
