// SPDX-License-Identifier: GPL-2.0
/*
 * UDP datagrams this host dropped on their way into a socket: its receive
 * buffer was full (SOCKET_RCVBUFF, netstat's "receive buffer errors": a
 * process that does not read fast enough), or UDP's memory limit was
 * reached (PROTO_MEM). The tracepoint udp:udp_fail_queue_rcv_skb fires
 * for each, with the socket; it has the datagram from Linux 6.10 only, and
 * fires for IPv6 sockets from 6.10 only. The ingress program counted the
 * datagram on its flow just before, on the same CPU (udp_last_in): the
 * drop is taken off the flow's received counts and put on its drops.
 *
 * A socket's first drop is told at once (a drop record), later ones at
 * most once a second, with how many there were since, and the rest when
 * it closes (udp_sock_release); each flow's close counts its own.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_tracing.h>
#include "conntrace.h"
#include "events.bpf.h"
#include "filters.bpf.h"
#include "tuple.bpf.h"
#include "udp_flows.bpf.h"

#define ENOMEM 12
#define DROP_TELL_EVERY_NS 1000000000ULL

/* The flow of the datagram the socket (cookie) dropped, if the ingress
 * program counted it: its counts corrected, and *count the datagrams
 * dropped (a GRO batch is one skb). */
static __always_inline struct udp_flow *drop_on_flow(__u64 cookie, __u32 reason, struct udp_flow_key *key,
						     __u32 *count)
{
	struct udp_last_in *last;
	struct udp_flow *f;
	__u32 zero = 0;

	*count = 1;
	last = bpf_map_lookup_elem(&udp_last_in, &zero);
	if (!last || last->key.sock != cookie)
		return NULL;
	*key = last->key;
	last->key.sock = 0;
	f = bpf_map_lookup_elem(&udp_flows, key);
	if (!f)
		return NULL;
	*count = last->count;
	/* Adds, not subs: the compiler's BPF v1 has no atomic sub. */
	__sync_fetch_and_add(&f->rx_packets, -(__u64)last->count);
	__sync_fetch_and_add(&f->rx_bytes, -(__u64)last->payload);
	__sync_fetch_and_add(&f->drops, last->count);
	f->drop_reason = reason;
	return f;
}

/* The drop record: of flow f, or, for a datagram not counted on one, of
 * the socket's own addresses, if they pass the filters. */
static __always_inline void tell_drop(struct sock *sk, struct udp_sock_info *us,
				      const struct udp_flow_key *key, const struct udp_flow *f, __u32 drops,
				      __u32 reason)
{
	struct drop_record *e;
	struct tuple t = {};

	if (f) {
		flow_tuple(&t, key, f);
	} else {
		tuple_from_sk(&t, sk);
		if (!family_match(t.family) || !port_match(t.sport, t.dport))
			return;
	}
	e = new_record(EVENT_DROP, sizeof(*e), IPPROTO_UDP, &t, &us->task);
	if (!e)
		return;
	e->head.netns = us->netns;
	if (f) {
		e->head.conn_id = f->conn_id;
		e->head.direction = f->direction;
	}
	e->drops = drops;
	e->reason = reason;
	e->rcvbuf = BPF_CORE_READ(sk, sk_rcvbuf);
	e->queued = BPF_CORE_READ(sk, sk_backlog.rmem_alloc.counter);
	submit(e);
}

SEC("tp_btf/udp_fail_queue_rcv_skb")
int BPF_PROG(udp_queue_fail, int rc, struct sock *sk)
{
	struct udp_flow_key key = {};
	struct udp_sock_info *us;
	struct udp_flow *f;
	__u32 reason, count, n;
	__u64 now;

	us = bpf_sk_storage_get(&udp_socks, sk, 0, 0);
	/* A socket of no process we follow, or one made before conntrace
	 * started that has not been used since: no owner to tell. */
	if (!us || !us->known || !us->wanted)
		return 0;
	reason = rc == -ENOMEM ? bpf_core_enum_value(enum skb_drop_reason, SKB_DROP_REASON_SOCKET_RCVBUFF)
			       : bpf_core_enum_value(enum skb_drop_reason, SKB_DROP_REASON_PROTO_MEM);
	f = drop_on_flow(bpf_get_socket_cookie(sk), reason, &key, &count);
	if (!want_event(EVENT_DROP) || (f && f->pending))
		return 0;
	us->drop_reason = reason;
	us->rcvbuf = BPF_CORE_READ(sk, sk_rcvbuf);
	if (!us->drops_untold)
		tuple_from_sk(&us->untold, sk);
	__sync_fetch_and_add(&us->drops_untold, count);
	now = bpf_ktime_get_ns();
	if (us->told_ns && now - us->told_ns < DROP_TELL_EVERY_NS)
		return 0;
	us->told_ns = now;
	/* Another CPU's drop between the read and the add is told next
	 * time. */
	n = us->drops_untold;
	__sync_fetch_and_add(&us->drops_untold, -n);
	tell_drop(sk, us, &key, f, n, reason);
	return 0;
}
