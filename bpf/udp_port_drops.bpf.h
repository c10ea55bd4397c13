/* SPDX-License-Identifier: GPL-2.0 */
/*
 * UDP datagrams this host dropped before any socket had them, so of no
 * flow and no process: sent to a port nothing here is bound to
 * (NO_SOCKET: the sender gets ICMP port unreachable, `Udp NoPorts`), or
 * with a wrong UDP checksum (UDP_CSUM, `Udp InCsumErrors`: damaged on the
 * way). skb:kfree_skb tells both (udp_errors.bpf.c runs it); a small
 * datagram's checksum is checked on arrival, a larger one's when it is
 * read (Linux 6.15+ say UDP_CSUM there; the flow has counted it).
 *
 * Told by port, as drop records: a port's first drop at once, later ones
 * by the sweep (udp_flows.bpf.c) at most once a second, with how many
 * there were since and the latest datagram's addresses, and the rest at
 * the run's end. A port scan is one record per port. When the table is
 * full, every drop of a port not in it is told on its own.
 */
#ifndef CONNTRACE_UDP_PORT_DROPS_BPF_H
#define CONNTRACE_UDP_PORT_DROPS_BPF_H

#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_endian.h>
#include "conntrace.h"
#include "events.bpf.h"
#include "filters.bpf.h"
#include "types.bpf.h"

#define PORT_DROP_TELL_EVERY_NS 1000000000ULL
/* A port with nothing untold for this long leaves the table. */
#define PORT_DROP_FORGET_NS 10000000000ULL

struct port_drop_key {
	__u32 netns;
	__u32 reason;
	__u16 port; /* the datagrams' destination, host byte order */
	__u16 family;
};

struct port_drop {
	__u64 told_ns;
	__u32 untold;
	__u32 _pad;
	struct tuple last; /* the latest datagram's, local end first */
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1024);
	__type(key, struct port_drop_key);
	__type(value, struct port_drop);
} udp_port_drops SEC(".maps");

static __always_inline void tell_port_drop(const struct port_drop_key *key, const struct tuple *t,
					   __u32 drops)
{
	struct task_info none = {};
	struct drop_record *e;

	e = new_record(EVENT_DROP, sizeof(*e), IPPROTO_UDP, t, &none);
	if (!e)
		return;
	e->head.netns = key->netns;
	e->head.direction = DIR_IN;
	e->drops = drops;
	e->reason = key->reason;
	e->rcvbuf = 0;
	e->queued = 0;
	submit(e);
}

/* The addresses of a datagram coming in, local end first: from its IP
 * and UDP headers (network and transport header set). False for one not
 * UDP's (IPv6 extension headers are not followed). */
static __always_inline bool incoming_tuple(struct sk_buff *skb, struct tuple *t)
{
	unsigned char *head = BPF_CORE_READ(skb, head);
	__u16 nh = BPF_CORE_READ(skb, network_header);
	__u16 th = BPF_CORE_READ(skb, transport_header);
	__u16 ports[2];
	__u8 ip[10];

	if (bpf_probe_read_kernel(ip, sizeof(ip), head + nh) ||
	    bpf_probe_read_kernel(ports, sizeof(ports), head + th))
		return false;
	t->sport = bpf_ntohs(ports[1]);
	t->dport = bpf_ntohs(ports[0]);
	if (ip[0] >> 4 == 4) {
		if (ip[9] != IPPROTO_UDP)
			return false;
		t->family = AF_INET;
		bpf_probe_read_kernel(&t->d4, 4, head + nh + 12);
		bpf_probe_read_kernel(&t->s4, 4, head + nh + 16);
		return true;
	}
	if (ip[0] >> 4 != 6 || ip[6] != IPPROTO_UDP)
		return false;
	t->family = AF_INET6;
	bpf_probe_read_kernel(t->d6, 16, head + nh + 8);
	bpf_probe_read_kernel(t->s6, 16, head + nh + 24);
	return true;
}

/* A datagram dropped for reason before a socket had it. Told at once
 * when its port has nothing untold and was last told a second ago or
 * more (each such drop is told by the CPU that saw it); otherwise left
 * to the sweep, the one to tell untold drops, so that none is told
 * twice. */
static __always_inline void port_drop(struct sk_buff *skb, __u32 reason)
{
	struct port_drop_key key = {};
	struct port_drop *d, fresh = {};
	struct tuple t = {};
	__u64 now;

	/* No process to match a process filter with. */
	if (!want_event(EVENT_DROP) || filter_pids || filter_comms || filter_cgroups ||
	    !incoming_tuple(skb, &t) || !family_match(t.family) || !port_match(t.sport, t.dport))
		return;
	key.netns = BPF_CORE_READ(skb, dev, nd_net.net, ns.inum);
	key.reason = reason;
	key.port = t.sport;
	key.family = t.family;
	now = bpf_ktime_get_ns();
	d = bpf_map_lookup_elem(&udp_port_drops, &key);
	if (!d) {
		fresh.told_ns = now;
		fresh.last = t;
		/* Made here, another CPU's drop made it meanwhile, or the
		 * table is full: told now. */
		bpf_map_update_elem(&udp_port_drops, &key, &fresh, BPF_NOEXIST);
		tell_port_drop(&key, &t, 1);
		return;
	}
	if (!d->untold && now - d->told_ns >= PORT_DROP_TELL_EVERY_NS) {
		d->told_ns = now;
		tell_port_drop(&key, &t, 1);
		return;
	}
	d->last = t;
	__sync_fetch_and_add(&d->untold, 1);
}

#endif /* CONNTRACE_UDP_PORT_DROPS_BPF_H */
