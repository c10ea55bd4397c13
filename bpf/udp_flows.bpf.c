// SPDX-License-Identifier: GPL-2.0
/*
 * UDP flows: one local socket and one peer, from the first datagram
 * either way to the socket's close or an idle time. Every hook here is a
 * cgroup program, attached at the root of the cgroup v2 hierarchy, so it
 * sees every socket of every container and needs neither kprobes nor
 * fentry:
 *  - cgroup/sock_create, in the creating process: the socket's owner and
 *    whether it passes the process filters, in socket storage;
 *  - (a socket made before conntrace started gets its owner from the
 *    iterators of udp_owners.bpf.c, before these programs attach;)
 *  - cgroup/sendmsg4/6 and recvmsg4/6, in the process that sends to or
 *    receives from an address it names (an unconnected socket): the owner
 *    of a socket the iterators left without one. A flow of such a socket
 *    starts unreported (pending) until its process receives a datagram of
 *    it; one never attributed is reported at its end, with no process;
 *  - cgroup_skb egress and ingress: each datagram, counted on its flow
 *    (the first one starts the flow: connect if this end sent it, accept
 *    if the peer did). Egress sees a datagram before IP fragments it;
 *    ingress after reassembly, once the socket is found, before the
 *    receive buffer takes it. A GSO batch (UDP_SEGMENT, a GRO socket's
 *    receive) is one skb: it counts gso_segs datagrams;
 *  - cgroup/sock_release: a socket closed ends its flows: its only one at
 *    once, several at the next sweep;
 *  - the sweep (a syscall program Go runs every second): the flows of
 *    closed sockets, and idle ones; and the drops of no socket not told
 *    yet (udp_port_drops.bpf.h).
 * Datagrams dropped on their way in are in udp_drops.bpf.c.
 * A TCP packet leaves the skb programs after four loads and a helper,
 * but a segment of a connection to port 53: DNS over TCP (tcp_dns.bpf.h,
 * with cgroup/connect4 and 6, which return at once for any other port).
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_endian.h>
#include "conntrace.h"
#include "defs.bpf.h"
#include "events.bpf.h"
#include "filters.bpf.h"
#include "task.bpf.h"
#include "tcp_dns.bpf.h"
#include "udp_dns.bpf.h"
#include "udp_flows.bpf.h"
#include "udp_port_drops.bpf.h"

#define SK_PASS 1

/* Flows the full table turned away, so that each one's events are
 * counted lost once (LOST_FLOWS_FULL), not at each of its datagrams. One
 * forgotten here is counted again: never fewer than were lost. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 4096);
	__type(key, struct udp_flow_key);
	__type(value, __u8);
} udp_turned_away SEC(".maps");

/* Sockets closed with several flows, by cookie: when. The sweep ends
 * their flows as closed at that time. Full, their flows end as idle. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 16384);
	__type(key, __u64);
	__type(value, __u64);
} udp_released SEC(".maps");

/* One datagram, or a GSO batch of them, as the IP and UDP headers say. */
struct datagram {
	__u32 saddr[4], daddr[4];
	__u16 sport, dport; /* host byte order */
	__u16 family;
	__u32 payload; /* bytes, every datagram of the batch */
	__u32 count;   /* datagrams */
	__u32 off;     /* the payload's offset in the skb */
};

/* The current process owns the socket of us. */
static __always_inline void own(struct udp_sock_info *us)
{
	fill_task(&us->task);
	us->netns = current_netns();
	us->wanted = proc_match(us->task.pid, us->task.comm);
	us->known = 1;
}

SEC("cgroup/sock_create")
int udp_sock_create(struct bpf_sock *ctx)
{
	struct udp_sock_info *us;

	/* A raw socket of protocol IPPROTO_UDP is none of UDP's. */
	if (ctx->protocol != IPPROTO_UDP || ctx->type != SOCK_DGRAM || stopping)
		return SK_PASS;
	us = bpf_sk_storage_get(&udp_socks, ctx, 0, BPF_SK_STORAGE_GET_F_CREATE);
	if (us)
		own(us);
	/* Its cookie, now: what identifies it where it cannot be asked for
	 * (udp_errors.bpf.c). */
	bpf_get_socket_cookie(ctx);
	return SK_PASS;
}

/* Reads the headers; the skb begins at the IP header in both directions.
 * IPv6 extension headers before UDP's are not followed: such a datagram
 * is not counted. */
static __always_inline bool parse(struct __sk_buff *skb, struct datagram *d)
{
	struct udphdr uh;
	__u32 l3;

	if (skb->protocol == bpf_htons(ETH_P_IP)) {
		struct iphdr ip;

		if (bpf_skb_load_bytes(skb, 0, &ip, sizeof(ip)) || ip.protocol != IPPROTO_UDP)
			return false;
		l3 = ip.ihl * 4;
		d->family = AF_INET;
		d->saddr[0] = ip.saddr;
		d->daddr[0] = ip.daddr;
	} else if (skb->protocol == bpf_htons(ETH_P_IPV6)) {
		struct ipv6hdr ip6;

		if (bpf_skb_load_bytes(skb, 0, &ip6, sizeof(ip6)) || ip6.nexthdr != IPPROTO_UDP)
			return false;
		l3 = sizeof(ip6);
		d->family = AF_INET6;
		__builtin_memcpy(d->saddr, &ip6.saddr, 16);
		__builtin_memcpy(d->daddr, &ip6.daddr, 16);
	} else {
		return false;
	}
	if (bpf_skb_load_bytes(skb, l3, &uh, sizeof(uh)) || skb->len < l3 + sizeof(uh))
		return false;
	d->sport = bpf_ntohs(uh.source);
	d->dport = bpf_ntohs(uh.dest);
	/* A batch has one UDP header until it is split: the rest is payload. */
	d->payload = skb->len - l3 - sizeof(uh);
	d->off = l3 + sizeof(uh);
	d->count = skb->gso_segs > 1 ? skb->gso_segs : 1;
	return true;
}

static __always_inline bool proc_filtered(void)
{
	return filter_pids || filter_comms || filter_cgroups;
}

/* Ends a flow at ts: its close record, then its entry. One whose owner
 * never became known is reported now, start and end, with no process,
 * unless a process filter is on. */
static __always_inline void end_flow(const struct udp_flow_key *key, struct udp_flow *f, __u8 reason,
				     __u64 ts)
{
	struct close_record *e;
	struct tuple t;

	if (f->pending) {
		if (proc_filtered()) {
			bpf_map_delete_elem(&udp_flows, key);
			return;
		}
		emit_start(key, f);
	}
	if (want_event(EVENT_CLOSE)) {
		flow_tuple(&t, key, f);
		e = new_record(EVENT_CLOSE, sizeof(*e), IPPROTO_UDP, &t, &f->task);
		if (e) {
			e->head.ts_ns = ts;
			e->head.conn_id = f->conn_id;
			e->head.netns = f->netns;
			e->head.direction = f->direction;
			/* An idle flow lasted until its last datagram. */
			e->duration_ns = (reason == REASON_IDLE ? f->last_ns : ts) - f->start_ns;
			e->tx_bytes = f->tx_bytes;
			e->rx_bytes = f->rx_bytes;
			e->tx_packets = f->tx_packets;
			e->rx_packets = f->rx_packets;
			e->idle_ns = 0;
			e->retransmits = 0;
			e->srtt_us = 0;
			e->unread = 0;
			e->drops = f->drops;
			e->drop_reason = f->drop_reason;
			e->reason = reason;
			e->peer_unaccepted = 0;
			__builtin_memset(e->_pad, 0, sizeof(e->_pad));
			submit(e);
		}
	}
	bpf_map_delete_elem(&udp_flows, key);
}

/* Socket us has the flow of key: its first is ended at its close. */
static __always_inline void link_flow(struct udp_sock_info *us, const struct udp_flow_key *key)
{
	if (us->flows == 0)
		us->first = *key;
	if (us->flows < 2)
		us->flows++;
}

/* A new flow of socket us, unless a filter or the full table says no:
 * its entry, and its start record. */
static __always_inline struct udp_flow *start_flow(struct udp_sock_info *us, const struct udp_flow_key *key,
						   const struct datagram *d, bool out, __u64 now)
{
	struct udp_flow f = {};
	long err;

	f.local_port = out ? d->sport : d->dport;
	if (stopping || us->released || !family_match(key->family) ||
	    !port_match(f.local_port, key->peer_port))
		return NULL;
	f.task = us->task;
	f.pending = !us->known;
	f.conn_id = __sync_fetch_and_add(&next_conn_id, 1) + 1;
	f.start_ns = now;
	f.last_ns = now;
	__builtin_memcpy(f.local, out ? d->saddr : d->daddr, sizeof(f.local));
	f.netns = us->netns;
	f.direction = out ? DIR_OUT : DIR_IN;
	err = bpf_map_update_elem(&udp_flows, key, &f, BPF_NOEXIST);
	if (err == -EEXIST) /* another CPU's datagram started it */
		return bpf_map_lookup_elem(&udp_flows, key);
	if (err) {
		__u8 one = 1;

		/* Lost: its start and its end (a flow open at the run's end
		 * would not have reported one). */
		if (bpf_map_update_elem(&udp_turned_away, key, &one, BPF_NOEXIST) == 0)
			count_many(&lost_events, LOST_FLOWS_FULL,
				   want_event(out ? EVENT_CONNECT : EVENT_ACCEPT) + want_event(EVENT_CLOSE));
		return NULL;
	}
	link_flow(us, key);
	if (f.pending)
		us->held = 1;
	else
		emit_start(key, &f);
	return bpf_map_lookup_elem(&udp_flows, key);
}

/* A DNS message of the socket (udp_dns.bpf.h), with the flow it is of
 * (NULL: one not reported) and whether its process passes the filters. */
static __always_inline void dns_message(struct __sk_buff *skb, const struct datagram *d,
					const struct udp_flow_key *key, const struct udp_sock_info *us,
					const struct udp_flow *f, bool out, bool wanted)
{
	__u16 local_port = out ? d->sport : d->dport;
	struct tuple t = {};

	t.family = d->family;
	t.sport = local_port;
	t.dport = key->peer_port;
	t.s4 = out ? d->saddr[0] : d->daddr[0];
	t.d4 = key->peer[0];
	__builtin_memcpy(t.s6, out ? d->saddr : d->daddr, sizeof(t.s6));
	__builtin_memcpy(t.d6, key->peer, sizeof(t.d6));
	wanted = wanted && want_event(EVENT_DNS) && family_match(d->family) &&
		 port_match(local_port, key->peer_port);
	tap_dns(skb, d->off, d->payload, &t, &us->task, us->netns, f ? f->conn_id : 0, key->sock, out,
		wanted);
}

static __always_inline int on_datagram(struct __sk_buff *skb, bool out)
{
	struct udp_flow_key key = {};
	struct bpf_sock *sk = skb->sk;
	struct udp_last_in *last = NULL;
	struct datagram d = {};
	struct udp_sock_info *us;
	struct udp_flow *f;
	__u32 zero = 0;
	bool dns;
	__u64 now;

	if (!sk)
		return SK_PASS;
	sk = bpf_sk_fullsock(sk);
	if (!sk)
		return SK_PASS;
	/* DNS over TCP: a connection to port 53 (the peer's port, in the
	 * socket: no header read for any other TCP segment). */
	if (sk->protocol == IPPROTO_TCP) {
		if (dns_tap && sk->dst_port == bpf_htons(DNS_PORT) && !stopping)
			tap_dns_segment(skb, sk, out);
		return SK_PASS;
	}
	if (sk->protocol != IPPROTO_UDP || sk->type != SOCK_DGRAM)
		return SK_PASS;
	if (!out) {
		/* A drop of this datagram is not put on the flow of the one
		 * before, unless this one is counted too. */
		last = bpf_map_lookup_elem(&udp_last_in, &zero);
		if (last)
			last->key.sock = 0;
	}
	/* A socket made before conntrace started has storage from here on,
	 * with no owner yet. */
	us = bpf_sk_storage_get(&udp_socks, sk, 0, BPF_SK_STORAGE_GET_F_CREATE);
	if (!us || !parse(skb, &d))
		return SK_PASS;
	key.sock = bpf_get_socket_cookie(skb);
	key.family = d.family;
	key.peer_port = out ? d.dport : d.sport;
	__builtin_memcpy(key.peer, out ? d.daddr : d.saddr, sizeof(key.peer));
	/* A DNS message of a process the filters leave out still names the
	 * addresses others connect to. */
	dns = dns_client_message(d.sport, d.dport, out) && !stopping;
	if (us->known && !us->wanted) {
		if (dns)
			dns_message(skb, &d, &key, us, NULL, out, false);
		return SK_PASS;
	}
	now = bpf_ktime_get_ns();
	f = bpf_map_lookup_elem(&udp_flows, &key);
	if (!f) {
		f = start_flow(us, &key, &d, out, now);
		if (!f) {
			if (dns)
				dns_message(skb, &d, &key, us, NULL, out, true);
			return SK_PASS;
		}
	}
	if (f->unlinked) {
		link_flow(us, &key);
		f->unlinked = 0;
	}
	if (out) {
		__sync_fetch_and_add(&f->tx_packets, d.count);
		__sync_fetch_and_add(&f->tx_bytes, d.payload);
	} else {
		__sync_fetch_and_add(&f->rx_packets, d.count);
		__sync_fetch_and_add(&f->rx_bytes, d.payload);
		if (last) {
			last->key = key;
			last->count = d.count;
			last->payload = d.payload;
		}
	}
	f->last_ns = now;
	if (dns)
		dns_message(skb, &d, &key, us, f->pending ? NULL : f, out, true);
	return SK_PASS;
}

SEC("cgroup_skb/egress")
int udp_egress(struct __sk_buff *skb)
{
	return on_datagram(skb, true);
}

SEC("cgroup_skb/ingress")
int udp_ingress(struct __sk_buff *skb)
{
	return on_datagram(skb, false);
}

/* A socket's own process names an address to send to or receive from:
 * the socket has its owner from now on, if it had none. The datagram
 * received is of the flow with that peer: a flow of the socket before it
 * had its owner is reported from here (or dropped, if the owner does not
 * pass the filters). */
static __always_inline void on_addr_call(struct bpf_sock_addr *ctx, __u16 family, const __u32 *peer,
					 bool recv)
{
	struct udp_flow_key key = {};
	struct udp_sock_info *us;
	struct bpf_sock *sk = ctx->sk;
	struct udp_flow *f;

	if (!sk || sk->protocol != IPPROTO_UDP)
		return;
	us = bpf_sk_storage_get(&udp_socks, sk, 0, BPF_SK_STORAGE_GET_F_CREATE);
	if (!us)
		return;
	if (!us->known)
		own(us);
	if (!recv) {
		/* Where this send goes, should it fail (udp_errors.bpf.c). */
		__builtin_memcpy(us->to, peer, sizeof(us->to));
		us->to_port = bpf_ntohs((__u16)ctx->user_port);
		us->to_family = family;
	}
	/* Only a socket made before conntrace has flows to report here. */
	if (!recv || !us->held)
		return;
	key.sock = bpf_get_socket_cookie(ctx);
	key.family = family;
	key.peer_port = bpf_ntohs((__u16)ctx->user_port);
	__builtin_memcpy(key.peer, peer, sizeof(key.peer));
	f = bpf_map_lookup_elem(&udp_flows, &key);
	if (!f || !f->pending)
		return;
	if (!us->wanted) {
		bpf_map_delete_elem(&udp_flows, &key);
		return;
	}
	f->task = us->task;
	f->netns = us->netns;
	f->pending = 0;
	emit_start(&key, f);
}

static __always_inline void on_addr_call4(struct bpf_sock_addr *ctx, bool recv)
{
	__u32 peer[4] = {ctx->user_ip4};

	on_addr_call(ctx, AF_INET, peer, recv);
}

/* A dual-stack socket's IPv4 peer is v4-mapped here, and AF_INET in the
 * datagrams. */
static __always_inline void on_addr_call6(struct bpf_sock_addr *ctx, bool recv)
{
	__u32 peer[4] = {ctx->user_ip6[0], ctx->user_ip6[1], ctx->user_ip6[2], ctx->user_ip6[3]};

	if (peer[0] == 0 && peer[1] == 0 && peer[2] == bpf_htonl(0x0000ffff)) {
		__u32 v4[4] = {peer[3]};

		on_addr_call(ctx, AF_INET, v4, recv);
		return;
	}
	on_addr_call(ctx, AF_INET6, peer, recv);
}

SEC("cgroup/connect4")
int dns_connect4(struct bpf_sock_addr *ctx)
{
	return dns_connect(ctx);
}

SEC("cgroup/connect6")
int dns_connect6(struct bpf_sock_addr *ctx)
{
	return dns_connect(ctx);
}

SEC("cgroup/sendmsg4")
int udp_sendmsg4(struct bpf_sock_addr *ctx)
{
	on_addr_call4(ctx, false);
	return SK_PASS;
}

SEC("cgroup/sendmsg6")
int udp_sendmsg6(struct bpf_sock_addr *ctx)
{
	on_addr_call6(ctx, false);
	return SK_PASS;
}

SEC("cgroup/recvmsg4")
int udp_recvmsg4(struct bpf_sock_addr *ctx)
{
	on_addr_call4(ctx, true);
	return SK_PASS;
}

SEC("cgroup/recvmsg6")
int udp_recvmsg6(struct bpf_sock_addr *ctx)
{
	on_addr_call6(ctx, true);
	return SK_PASS;
}

/* Drops told at most once a second (udp_drops.bpf.c) leave some untold
 * when the socket closes: told now, with the socket's own addresses, so
 * that drop records count every drop. */
static __always_inline void tell_untold(struct udp_sock_info *us)
{
	struct drop_record *e;

	if (!want_event(EVENT_DROP) || !family_match(us->untold.family) ||
	    !port_match(us->untold.sport, us->untold.dport))
		return;
	e = new_record(EVENT_DROP, sizeof(*e), IPPROTO_UDP, &us->untold, &us->task);
	if (!e)
		return;
	e->head.netns = us->netns;
	e->drops = us->drops_untold;
	e->reason = us->drop_reason;
	e->rcvbuf = us->rcvbuf;
	e->queued = 0;
	submit(e);
}

/* The flow key of a connected socket's peer; false for a family not
 * IPv4's or IPv6's. */
static __always_inline bool connected_key(struct udp_flow_key *key, struct bpf_sock *sk)
{
	__builtin_memset(key, 0, sizeof(*key));
	key->sock = bpf_get_socket_cookie(sk);
	key->peer_port = bpf_ntohs(sk->dst_port);
	if (sk->family == AF_INET) {
		key->family = AF_INET;
		key->peer[0] = sk->dst_ip4;
		return true;
	}
	if (sk->family != AF_INET6)
		return false;
	key->family = AF_INET6;
	key->peer[0] = sk->dst_ip6[0];
	key->peer[1] = sk->dst_ip6[1];
	key->peer[2] = sk->dst_ip6[2];
	key->peer[3] = sk->dst_ip6[3];
	/* A dual-stack socket's IPv4 peer, as its datagrams have it. */
	if (key->peer[0] == 0 && key->peer[1] == 0 && key->peer[2] == bpf_htonl(0x0000ffff)) {
		key->family = AF_INET;
		key->peer[0] = key->peer[3];
		key->peer[2] = 0;
		key->peer[3] = 0;
	}
	return true;
}

SEC("cgroup/sock_release")
int udp_sock_release(struct bpf_sock *ctx)
{
	struct udp_flow_key key;
	struct udp_sock_info *us;
	struct udp_flow *f;
	__u64 cookie, now;

	if (ctx->protocol != IPPROTO_UDP || ctx->type != SOCK_DGRAM)
		return SK_PASS;
	us = bpf_sk_storage_get(&udp_socks, ctx, 0, 0);
	if (us && us->drops_untold)
		tell_untold(us);
	if (!us)
		return SK_PASS;
	us->released = 1;
	now = bpf_ktime_get_ns();
	/* Connected, with no datagram either way: the flow connect()
	 * started, if any. */
	if (!us->flows) {
		if (ctx->dst_port && connected_key(&key, ctx)) {
			f = bpf_map_lookup_elem(&udp_flows, &key);
			if (f)
				end_flow(&key, f, REASON_CLOSED, now);
		}
		return SK_PASS;
	}
	if (us->flows == 1) {
		key = us->first;
		f = bpf_map_lookup_elem(&udp_flows, &key);
		if (f)
			end_flow(&key, f, REASON_CLOSED, now);
		return SK_PASS;
	}
	cookie = bpf_get_socket_cookie(ctx);
	bpf_map_update_elem(&udp_released, &cookie, &now, BPF_ANY);
	return SK_PASS;
}

static long sweep_flow(struct bpf_map *map, struct udp_flow_key *key, struct udp_flow *f, struct udp_sweep *s)
{
	__u64 *released = bpf_map_lookup_elem(&udp_released, &key->sock);
	__u64 idle = f->tx_packets && f->rx_packets ? s->idle_both : s->idle_one_way;

	if (released) {
		end_flow(key, f, REASON_CLOSED, *released);
		s->closed++;
	} else if (s->now > f->last_ns + idle) {
		end_flow(key, f, REASON_IDLE, f->last_ns + idle);
		s->idle++;
	}
	return 0;
}

/* A release older than the sweep had its flows ended by it. The margin
 * covers a release that took its time before the sweep began but wrote
 * it after the sweep passed its flows: they go in the next sweep. */
#define RELEASE_MARGIN_NS 10000000

static long forget_released(struct bpf_map *map, __u64 *cookie, __u64 *ts, struct udp_sweep *s)
{
	if (*ts + RELEASE_MARGIN_NS < s->now)
		bpf_map_delete_elem(map, cookie);
	return 0;
}

/* The drops of no socket (udp_port_drops.bpf.h), by one thread at a time:
 * the drops untold for a second (every one, at the run's end) are told; a
 * port quiet for 10 s is forgotten (a drop racing its removal is lost:
 * nanoseconds, once in 10 s at most). */
static long sweep_port_drop(struct bpf_map *map, struct port_drop_key *key, struct port_drop *d,
			    struct udp_sweep *s)
{
	__u32 n = d->untold;

	if (!n) {
		if (s->now - d->told_ns > PORT_DROP_FORGET_NS)
			bpf_map_delete_elem(map, key);
		return 0;
	}
	if (!s->last && s->now - d->told_ns < PORT_DROP_TELL_EVERY_NS)
		return 0;
	d->told_ns = s->now;
	/* A drop between the read and the add is told next time. */
	__sync_fetch_and_add(&d->untold, -n);
	tell_port_drop(key, &d->last, n);
	return 0;
}

SEC("syscall")
int udp_sweep_flows(struct udp_sweep *args)
{
	struct udp_sweep s = *args; /* the callbacks take a pointer to the stack */

	s.now = bpf_ktime_get_ns();
	s.closed = 0;
	s.idle = 0;
	bpf_for_each_map_elem(&udp_flows, sweep_flow, &s, 0);
	bpf_for_each_map_elem(&udp_released, forget_released, &s, 0);
	bpf_for_each_map_elem(&udp_port_drops, sweep_port_drop, &s, 0);
	*args = s;
	return 0;
}
