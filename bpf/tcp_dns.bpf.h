/* SPDX-License-Identifier: GPL-2.0 */
/*
 * DNS over TCP (RFC 7766): the segments of this host's TCP connections to
 * port 53, copied from the cgroup skb programs (udp_flows.bpf.c) as dns
 * records of protocol TCP, with the owner the connection's connect()
 * gave it (cgroup/connect4 and 6: an skb program may not ask who the
 * current task is on every kernel, and in softirq it is nobody's). A
 * segment holds messages each after its 2-byte length, or the rest of
 * one begun in an earlier segment: Go splits the stream (tracer/dns),
 * with the segment's full length and whether bytes before it went
 * unseen. Only new bytes in order are copied: a retransmission is
 * skipped, and the next segment then says the gap.
 */
#ifndef CONNTRACE_TCP_DNS_BPF_H
#define CONNTRACE_TCP_DNS_BPF_H

#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>
#include "conntrace.h"
#include "defs.bpf.h"
#include "filters.bpf.h"
#include "task.bpf.h"
#include "tcp_track.bpf.h"
#include "udp_dns.bpf.h"

/* A client's connection to port 53: its owner, taken in its connect(),
 * and the next sequence number expected each way. */
struct dns_conn {
	struct task_info task;
	__u32 netns;
	__u32 next[2]; /* [0] out, [1] in */
	__u8 synced[2];
	__u8 wanted; /* its process passes the process filters */
	__u8 _pad;
};

struct {
	__uint(type, BPF_MAP_TYPE_SK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, int);
	__type(value, struct dns_conn);
} dns_conns SEC(".maps");

/* The conn_id of sk's connection, when the TCP programs follow it (it
 * passed the filters): in socket storage, or in the table by the
 * socket's address, which the skb program has as a tcp_sock's. */
static __always_inline __u64 dns_conn_id(struct bpf_sock *sk)
{
	struct sock_info *info = NULL;
	struct tcp_sock *tp;
	__u64 key;

	if (sk_storage)
		info = bpf_sk_storage_get(&sk_state, sk, 0, 0);
	if (!info || !info->conn_id) {
		tp = bpf_skc_to_tcp_sock(sk);
		if (!tp)
			return 0;
		key = (__u64)tp;
		info = bpf_map_lookup_elem(&socks, &key);
	}
	return info ? info->conn_id : 0;
}

/* A segment of sk, a TCP socket whose peer's port is 53, going out or
 * coming in: its payload copied into a dns record, when it has one. */
static __always_inline void tap_dns_segment(struct __sk_buff *skb, struct bpf_sock *sk, bool out)
{
	__u32 th[4]; /* the TCP header to its data offset, as loaded */
	struct dns_conn *c;
	struct dns_record *r;
	struct tuple t = {};
	__u32 l3, off, len, seq, i;
	__s32 ahead;
	__u64 last;
	bool gap = false;

	/* None: a connection made before the run started, or a server's
	 * own from its port 53. */
	c = bpf_sk_storage_get(&dns_conns, sk, 0, 0);
	if (!c)
		return;
	if (skb->protocol == bpf_htons(ETH_P_IP)) {
		struct iphdr ip;

		if (bpf_skb_load_bytes(skb, 0, &ip, sizeof(ip)))
			return;
		l3 = ip.ihl * 4;
		t.family = AF_INET;
		t.s4 = out ? ip.saddr : ip.daddr;
		t.d4 = out ? ip.daddr : ip.saddr;
	} else if (skb->protocol == bpf_htons(ETH_P_IPV6)) {
		struct ipv6hdr ip6;

		/* Extension headers are not followed: no IPv6 stack puts
		 * one before TCP's on its own connection. */
		if (bpf_skb_load_bytes(skb, 0, &ip6, sizeof(ip6)) || ip6.nexthdr != IPPROTO_TCP)
			return;
		l3 = sizeof(ip6);
		t.family = AF_INET6;
		__builtin_memcpy(t.s6, out ? &ip6.saddr : &ip6.daddr, 16);
		__builtin_memcpy(t.d6, out ? &ip6.daddr : &ip6.saddr, 16);
	} else {
		return;
	}
	if (bpf_skb_load_bytes(skb, l3, th, sizeof(th)))
		return;
	off = l3 + (((__u8 *)th)[12] >> 4) * 4;
	if (skb->len <= off)
		return; /* no payload: SYN, ACK, FIN */
	len = skb->len - off;
	seq = bpf_ntohl(th[1]);
	i = out ? 0 : 1;
	if (c->synced[i]) {
		ahead = (__s32)(seq - c->next[i]);
		if (ahead < 0)
			return; /* sent again: seen */
		gap = ahead > 0;
	}
	c->next[i] = seq + len;
	c->synced[i] = 1;
	t.sport = bpf_ntohs(((__u16 *)th)[out ? 0 : 1]);
	t.dport = DNS_PORT;
	r = dns_record(out ? DNS_SLOT_EGRESS : DNS_SLOT_INGRESS, IPPROTO_TCP, len, &t, &c->task, c->netns,
		       dns_conn_id(sk), bpf_get_socket_cookie(skb), out,
		       c->wanted && want_event(EVENT_DNS) && family_match(t.family) &&
			       port_match(t.sport, DNS_PORT));
	if (!r)
		return;
	r->gap = gap;
	last = dns_last(len);
	if (last < DNS_PAYLOAD_MAX && bpf_skb_load_bytes(skb, off, r->payload, last + 1) == 0) {
		dns_send(r, last + 1);
		return;
	}
	dns_send(r, 0);
}

/* A TCP connect() to port 53 (any other returns at once): its owner. */
static __always_inline int dns_connect(struct bpf_sock_addr *ctx)
{
	struct dns_conn *c;

	if (!dns_tap || ctx->user_port != bpf_htons(DNS_PORT) || ctx->type != SOCK_STREAM || stopping)
		return 1;
	c = bpf_sk_storage_get(&dns_conns, ctx->sk, 0, BPF_SK_STORAGE_GET_F_CREATE);
	if (c) {
		fill_task(&c->task);
		c->netns = current_netns();
		c->wanted = proc_match(c->task.pid, c->task.comm);
		c->synced[0] = c->synced[1] = 0;
	}
	return 1;
}

#endif /* CONNTRACE_TCP_DNS_BPF_H */
