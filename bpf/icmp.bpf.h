/* SPDX-License-Identifier: GPL-2.0 */
/*
 * ICMP errors, from the protocols' error handlers (which get the ICMP
 * packet; no tracepoint does), so only where fentry or kprobes can hook
 * them: which error came, and from whom (a router's host or network
 * unreachable, a peer's or a firewall's port unreachable, "administratively
 * prohibited"). An error is noted by the packet it quotes (the protocol,
 * the peer's address, both ports), and the failure it causes picks it up
 * (tcp_icmp.bpf.h, udp_errors.bpf.c).
 */
#ifndef CONNTRACE_ICMP_BPF_H
#define CONNTRACE_ICMP_BPF_H

#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_endian.h>
#include "defs.bpf.h"
#include "types.bpf.h"

struct icmp_key {
	__u32 daddr[4]; /* the peer; IPv4 in daddr[0] */
	__u16 dport;    /* host byte order */
	__u16 sport;
	__u8 proto; /* IPPROTO_TCP, IPPROTO_UDP */
	__u8 _pad[3];
};

struct icmp_note {
	__u64 ts_ns;
	__u32 from[4]; /* the ICMP packet's source; IPv4 in from[0] */
	__u8 family;
	__u8 type;
	__u8 code;
	__u8 _pad[5];
};

/* LRU: an error whose connection never fails (a soft error, then an
 * answer) or no flow picks up ages out. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 1024);
	__type(key, struct icmp_key);
	__type(value, struct icmp_note);
} icmp_errors SEC(".maps");

/* Notes an ICMP error from skb: the error handler's packet, whose data
 * is the quoted IP header (at offset in it, protocol proto's header) and
 * whose network header is the ICMP packet's own. */
static __always_inline void note_icmp(struct sk_buff *skb, __u8 want, bool v6, __u8 type, __u8 code,
				      int offset)
{
	unsigned char *head = BPF_CORE_READ(skb, head);
	unsigned char *data = BPF_CORE_READ(skb, data);
	__u16 nh = BPF_CORE_READ(skb, network_header);
	struct icmp_note note = {.ts_ns = bpf_ktime_get_ns(), .type = type, .code = code};
	struct icmp_key key = {.proto = want};
	__u8 proto = 0;
	__u16 ports[2];

	if (v6) {
		/* The quoted IPv6 header: next header at 6, destination at 24;
		 * the sender's source address at 8. */
		bpf_probe_read_kernel(&proto, 1, data + 6);
		bpf_probe_read_kernel(key.daddr, 16, data + 24);
		bpf_probe_read_kernel(note.from, 16, head + nh + 8);
		note.family = AF_INET6;
	} else {
		__u8 ihl = 0;

		/* IPv4: header length in the low nibble of byte 0, protocol at
		 * 9, destination at 16; the sender's source address at 12. */
		bpf_probe_read_kernel(&ihl, 1, data);
		bpf_probe_read_kernel(&proto, 1, data + 9);
		bpf_probe_read_kernel(key.daddr, 4, data + 16);
		bpf_probe_read_kernel(note.from, 4, head + nh + 12);
		note.family = AF_INET;
		offset = (ihl & 0xf) * 4;
	}
	if (proto != want || bpf_probe_read_kernel(ports, sizeof(ports), data + offset))
		return;
	key.sport = bpf_ntohs(ports[0]);
	key.dport = bpf_ntohs(ports[1]);
	bpf_map_update_elem(&icmp_errors, &key, &note, BPF_ANY);
}

/* The ICMP error noted for connection (or flow) t of protocol proto
 * since start_ns, taken out of the map into out; false for none. */
static __always_inline bool take_icmp(const struct tuple *t, __u8 proto, __u64 start_ns,
				      struct icmp_note *out)
{
	struct icmp_key key = {.dport = t->dport, .sport = t->sport, .proto = proto};
	struct icmp_note *note;

	if (t->family == AF_INET)
		key.daddr[0] = t->d4;
	else
		__builtin_memcpy(key.daddr, t->d6, sizeof(key.daddr));
	note = bpf_map_lookup_elem(&icmp_errors, &key);
	if (!note)
		return false;
	*out = *note;
	bpf_map_delete_elem(&icmp_errors, &key);
	return out->ts_ns >= start_ns;
}

/* An IPv4 error handler's (tcp_v4_err, __udp4_lib_err: skb, info): type and
 * code are in the ICMP header, the packet's transport header. */
static __always_inline void note_icmp4(struct sk_buff *skb, __u8 proto)
{
	unsigned char *head = BPF_CORE_READ(skb, head);
	__u16 th = BPF_CORE_READ(skb, transport_header);
	__u8 tc[2] = {};

	bpf_probe_read_kernel(tc, sizeof(tc), head + th);
	note_icmp(skb, proto, false, tc[0], tc[1], 0);
}

#endif /* CONNTRACE_ICMP_BPF_H */
