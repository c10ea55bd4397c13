// SPDX-License-Identifier: GPL-2.0
/*
 * A UDP flow's failures, each a connect_fail record of the flow (of the
 * socket and the peer, when no datagram got far enough to start one),
 * once per flow and errno: an application that keeps sending gets the
 * same error each time.
 *  - ICMP errors for a connected socket: port unreachable from a peer
 *    where nothing is bound (ECONNREFUSED), host or network unreachable
 *    from a router, fragmentation needed (EMSGSIZE). The kernel keeps the
 *    error for the socket's next send or recv, and reports it
 *    (sock:inet_sk_error_report, Linux 5.15+); who sent it, where UDP's
 *    error handlers are hooked (udp_icmp.bpf.c). An unconnected socket is
 *    told only with IP_RECVERR, and then has no peer here: not reported.
 *  - A send that failed, with the errno the application got
 *    (sock:sock_send_length, Linux 6.3+): EPERM (a firewall rule or a
 *    cgroup program here), ENETUNREACH (no route), EMSGSIZE, EAGAIN (the
 *    send buffer is full)...
 *  - A datagram a firewall rule on this host dropped on its way out
 *    (skb:kfree_skb, NETFILTER_DROP, Linux 5.17+), which send() returns as
 *    EPERM: where sock_send_length is missing, the only sign of it, and
 *    elsewhere the reason for its EPERM.
 * The same kfree_skb program tells the datagrams dropped before a socket
 * had them (udp_port_drops.bpf.h), and a DNS client's messages dropped
 * here (any reason: a query's on its way out, an answer's on its way in,
 * found for the socket by early demux) as drop records of its flow, for
 * the lookups they leave unanswered (udp_dns.bpf.h).
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_tracing.h>
#include "conntrace.h"
#include "events.bpf.h"
#include "filters.bpf.h"
#include "icmp.bpf.h"
#include "task.bpf.h"
#include "tuple.bpf.h"
#include "udp_dns.bpf.h"
#include "udp_flows.bpf.h"
#include "udp_port_drops.bpf.h"

#define EPERM 1

/* The last errno reported for a flow without an entry (its socket's
 * cookie, or its address when it has none yet, and the peer): an LRU,
 * since a socket's close does not clear it. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 4096);
	__type(key, struct udp_flow_key);
	__type(value, __s32);
} udp_failed SEC(".maps");

/* A socket's key part: its cookie, which every socket made since
 * conntrace started has (udp_sock_create), and every flow's; else its
 * address (a socket made before, which never sent a datagram). Read, not
 * asked for: a program that reached the socket through an skb cannot
 * have the kernel make one. */
static __always_inline __u64 sock_id(struct sock *sk)
{
	__u64 cookie = BPF_CORE_READ(sk, __sk_common.skc_cookie.counter);

	return cookie ? cookie : (__u64)sk;
}

/* The connect_fail of the flow of key (its entry f, or none) at the
 * socket sk's local end. task: the flow's owner when f is NULL. icmp: an
 * ICMP error came; note, when known, who sent it (fentry, kprobe). */
static __always_inline void emit_failure(struct sock *sk, const struct udp_flow_key *key, struct udp_flow *f,
					 const struct task_info *task, __u32 netns, int err,
					 __u32 drop_reason, bool icmp, const struct icmp_note *note)
{
	struct connect_fail_record *e;
	struct tuple t = {};

	if (f) {
		flow_tuple(&t, key, f);
		task = &f->task;
	} else {
		tuple_from_sk(&t, sk);
		t.family = key->family;
		t.dport = key->peer_port;
		t.d4 = key->peer[0];
		__builtin_memcpy(t.d6, key->peer, sizeof(t.d6));
		if (!family_match(t.family) || !port_match(t.sport, t.dport))
			return;
	}
	e = new_record(EVENT_CONNECT_FAIL, sizeof(*e), IPPROTO_UDP, &t, task);
	if (!e)
		return;
	e->head.netns = netns;
	e->head.direction = DIR_OUT;
	e->latency_ns = 0;
	if (f) {
		e->head.conn_id = f->conn_id;
		e->head.direction = f->direction;
		e->latency_ns = e->head.ts_ns - f->start_ns;
	}
	e->error = err;
	e->retransmits = 0;
	e->drop_reason = drop_reason;
	e->drop_ifindex = 0;
	e->drops = drop_reason ? 1 : 0;
	/* An ICMP error came, from note's sender or an unknown one; else a
	 * send failed. */
	e->icmp_watched = icmp;
	__builtin_memset(e->_pad, 0, sizeof(e->_pad));
	if (note) {
		e->icmp_family = note->family;
		e->icmp_type = note->type;
		e->icmp_code = note->code;
		__builtin_memcpy(e->icmp_from, note->from, sizeof(e->icmp_from));
	} else {
		e->icmp_family = 0;
		e->icmp_type = 0;
		e->icmp_code = 0;
		__builtin_memset(e->icmp_from, 0, sizeof(e->icmp_from));
	}
	submit(e);
}

/* Whether err is new for the flow of key (entry f, or none): noted. */
static __always_inline bool first_error(const struct udp_flow_key *key, struct udp_flow *f, int err)
{
	__s32 *last;

	if (f) {
		if (f->error == err)
			return false;
		f->error = err;
		return true;
	}
	last = bpf_map_lookup_elem(&udp_failed, key);
	if (last && *last == err)
		return false;
	bpf_map_update_elem(&udp_failed, key, &err, BPF_ANY);
	return true;
}

static __always_inline void set_peer(struct udp_flow_key *key, const struct tuple *t)
{
	key->family = t->family;
	key->peer_port = t->dport;
	if (t->family == AF_INET)
		key->peer[0] = t->d4;
	else
		__builtin_memcpy(key->peer, t->d6, sizeof(key->peer));
}

SEC("tp_btf/inet_sk_error_report")
int BPF_PROG(udp_error_report, struct sock *sk)
{
	struct udp_flow_key key = {};
	struct udp_sock_info *us;
	struct icmp_note note;
	struct udp_flow *f;
	struct tuple t = {};
	int err;

	if (BPF_CORE_READ(sk, sk_protocol) != IPPROTO_UDP)
		return 0;
	us = bpf_sk_storage_get(&udp_socks, sk, 0, 0);
	if (!us || !us->known || !us->wanted)
		return 0;
	tuple_from_sk(&t, sk);
	/* A DNS server's refusal ends the socket's lookups (Go drops the
	 * event itself when it was not asked for). */
	if (!t.dport || !(want_event(EVENT_CONNECT_FAIL) || (dns_tap && t.dport == DNS_PORT && !stopping)))
		return 0;
	key.sock = sock_id(sk);
	set_peer(&key, &t);
	f = bpf_map_lookup_elem(&udp_flows, &key);
	err = BPF_CORE_READ(sk, sk_err);
	if (!f || f->pending || !err || !first_error(&key, f, err))
		return 0;
	/* Who sent it, where udp_icmp.bpf.c noted it just before. */
	emit_failure(sk, &key, f, &us->task, us->netns, err, 0, true,
		     take_icmp(&t, IPPROTO_UDP, f->start_ns, &note) ? &note : NULL);
	return 0;
}

SEC("tp_btf/sock_send_length")
int BPF_PROG(udp_send_error, struct sock *sk, int ret)
{
	struct udp_flow_key key = {};
	struct udp_sock_info *us;
	struct udp_flow *f;
	struct tuple t = {};

	if (ret >= 0 || BPF_CORE_READ(sk, sk_protocol) != IPPROTO_UDP || !want_event(EVENT_CONNECT_FAIL))
		return 0;
	us = bpf_sk_storage_get(&udp_socks, sk, 0, 0);
	if (!us || !us->known || !us->wanted)
		return 0;
	tuple_from_sk(&t, sk);
	key.sock = sock_id(sk);
	if (t.dport) {
		set_peer(&key, &t);
	} else {
		/* Unconnected: where its sendto() went. */
		key.family = us->to_family;
		key.peer_port = us->to_port;
		__builtin_memcpy(key.peer, us->to, sizeof(key.peer));
	}
	f = bpf_map_lookup_elem(&udp_flows, &key);
	if ((f && f->pending) || !first_error(&key, f, -ret))
		return 0;
	emit_failure(sk, &key, f, &us->task, us->netns, -ret, 0, false, NULL);
	return 0;
}

/* The peer of a datagram of socket sk: the IP and UDP headers (the
 * network header set, the transport header too), and whether it was
 * one (its ports, this way or the other, are the socket's); out: it was
 * on its way out (else in, found for the socket by early demux). */
static __always_inline bool datagram_peer(struct sk_buff *skb, struct sock *sk, struct udp_flow_key *key,
					  bool *out)
{
	/* Direct loads: both are the tracepoint's own (BTF) pointers. */
	unsigned char *head = skb->head;
	__u16 nh = skb->network_header;
	__u16 th = skb->transport_header;
	__u16 local = sk->__sk_common.skc_num;
	__u16 ports[2] = {};
	__u8 v = 0;

	bpf_probe_read_kernel(&v, 1, head + nh);
	if (bpf_probe_read_kernel(ports, sizeof(ports), head + th))
		return false;
	/* The peer's address: the destination going out, the source coming
	 * in (IPv4's at 16 and 12, IPv6's at 24 and 8). */
	if (bpf_ntohs(ports[0]) == local) {
		*out = true;
		key->peer_port = bpf_ntohs(ports[1]);
		nh += v >> 4 == 4 ? 16 : 24;
	} else if (bpf_ntohs(ports[1]) == local) {
		*out = false;
		key->peer_port = bpf_ntohs(ports[0]);
		nh += v >> 4 == 4 ? 12 : 8;
	} else {
		return false;
	}
	if (v >> 4 == 4) {
		key->family = AF_INET;
		bpf_probe_read_kernel(key->peer, 4, head + nh);
	} else {
		key->family = AF_INET6;
		bpf_probe_read_kernel(key->peer, 16, head + nh);
	}
	return true;
}

/* A DNS message of a client socket this host dropped (a query on its way
 * out, an answer on its way in): a drop record of its flow, one per
 * message, for the lookups it leaves without an answer (Go drops the
 * event when drop events were not asked for). */
static __always_inline void dns_dropped(struct sock *sk, const struct udp_flow_key *key, __u32 reason,
					bool out)
{
	struct udp_flow *f = bpf_map_lookup_elem(&udp_flows, key);
	struct drop_record *e;
	struct tuple t = {};

	if (!f || f->pending)
		return;
	flow_tuple(&t, key, f);
	e = new_record(EVENT_DROP, sizeof(*e), IPPROTO_UDP, &t, &f->task);
	if (!e)
		return;
	e->head.conn_id = f->conn_id;
	e->head.netns = f->netns;
	e->head.direction = f->direction;
	if (!out)
		e->head.flags = FLAG_DROP_INBOUND;
	e->drops = 1;
	e->reason = reason;
	e->rcvbuf = 0;
	e->queued = 0;
	submit(e);
}

/* A DNS query a firewall rule here dropped on its way out (its
 * application gets EPERM), copied from the skb into a dns record marked
 * dropped: the lookup it was, which the egress program, after netfilter,
 * never sees. task: the sender. */
static __always_inline void dns_blocked(struct sk_buff *skb, struct sock *sk, const struct udp_flow_key *key,
					const struct task_info *task, bool shown)
{
	unsigned char *head = BPF_CORE_READ(skb, head);
	__u16 th = BPF_CORE_READ(skb, transport_header);
	struct udp_flow *f = bpf_map_lookup_elem(&udp_flows, key);
	struct dns_record *r;
	struct tuple t = {};
	__u16 ulen = 0;
	__u32 len;
	__u64 last;

	if (bpf_probe_read_kernel(&ulen, sizeof(ulen), head + th + 4) || bpf_ntohs(ulen) < 8)
		return;
	len = bpf_ntohs(ulen) - 8;
	tuple_from_sk(&t, sk);
	t.family = key->family;
	t.dport = key->peer_port;
	t.d4 = key->peer[0];
	__builtin_memcpy(t.d6, key->peer, sizeof(t.d6));
	r = dns_record(DNS_SLOT_DROP, IPPROTO_UDP, len, &t, task, netns_of(sk),
		       f && !f->pending ? f->conn_id : 0, key->sock, true, shown);
	if (!r)
		return;
	r->dropped = 1;
	last = dns_last(len);
	if (len > 0 && last < DNS_PAYLOAD_MAX &&
	    bpf_probe_read_kernel(r->payload, last + 1, head + th + 8) == 0) {
		dns_send(r, last + 1);
		return;
	}
	dns_send(r, 0);
}

SEC("tp_btf/kfree_skb")
int BPF_PROG(udp_kfree_skb, struct sk_buff *skb, void *location, enum skb_drop_reason reason)
{
	struct udp_flow_key key = {};
	struct task_info task = {};
	bool netfilter, out;
	struct udp_flow *f;
	struct sock *sk;
	__u8 state;

	if (reason == bpf_core_enum_value(enum skb_drop_reason, SKB_DROP_REASON_NO_SOCKET) ||
	    reason == bpf_core_enum_value(enum skb_drop_reason, SKB_DROP_REASON_UDP_CSUM)) {
		port_drop(skb, reason);
		return 0;
	}
	netfilter = reason == bpf_core_enum_value(enum skb_drop_reason, SKB_DROP_REASON_NETFILTER_DROP);
	/* A full receive buffer's drop, or UDP's memory's, is
	 * udp_drops.bpf.c's to tell, a DNS flow's too. */
	if (!netfilter &&
	    (!dns_tap ||
	     reason == bpf_core_enum_value(enum skb_drop_reason, SKB_DROP_REASON_SOCKET_RCVBUFF) ||
	     reason == bpf_core_enum_value(enum skb_drop_reason, SKB_DROP_REASON_PROTO_MEM)))
		return 0;
	/* Every drop of every protocol comes here: what rules most of them
	 * out comes first, read with direct loads (BTF pointers), where a
	 * helper call would cost each. A full socket (not a TCP mini
	 * socket, whose state tells), then UDP's. */
	sk = skb->sk;
	if (!sk)
		return 0;
	state = sk->__sk_common.skc_state;
	if ((state != TCP_CLOSE && state != TCP_ESTABLISHED) || sk->sk_protocol != IPPROTO_UDP ||
	    sk->sk_type != SOCK_DGRAM || !datagram_peer(skb, sk, &key, &out))
		return 0;
	key.sock = sock_id(sk);
	/* A query's or an answer's drop, but a firewall's of a query (the
	 * application gets EPERM: below). */
	if (dns_tap && key.peer_port == DNS_PORT && !stopping && !(netfilter && out)) {
		dns_dropped(sk, &key, reason, out);
		return 0;
	}
	if (!netfilter || !out)
		return 0;
	/* The socket's storage is out of reach here (skb->sk is no trusted
	 * pointer); the sender is: netfilter's output hooks run in its
	 * send(). */
	fill_task(&task);
	if (dns_tap && key.peer_port == DNS_PORT && !stopping)
		dns_blocked(skb, sk, &key, &task,
			    proc_match(task.pid, task.comm) && want_event(EVENT_DNS) &&
				    family_match(key.family) &&
				    port_match(BPF_CORE_READ(sk, __sk_common.skc_num), key.peer_port));
	if (!want_event(EVENT_CONNECT_FAIL) || !proc_match(task.pid, task.comm))
		return 0;
	f = bpf_map_lookup_elem(&udp_flows, &key);
	if ((f && f->pending) || !first_error(&key, f, EPERM))
		return 0;
	emit_failure(sk, &key, f, &task, netns_of(sk), EPERM, reason, false, NULL);
	return 0;
}
