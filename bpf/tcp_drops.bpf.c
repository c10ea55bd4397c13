// SPDX-License-Identifier: GPL-2.0
/*
 * Packets of a connecting socket that this host dropped, and why
 * (skb:kfree_skb and its drop reason, Linux 5.17+): a firewall rule here
 * (NETFILTER_DROP), no ARP/NDP answer from the next hop (NEIGH_FAILED),
 * a full queue... A connect() that then times out or finds no host says
 * which it was, instead of "host down or packets dropped".
 *
 * The hook fires for every packet the machine drops: a packet of no
 * socket, or of a socket not connecting, is let go at once, before any map
 * is touched; only then is the socket looked up among the connections we
 * follow. Only the socket table is looked in: with socket storage
 * (opt-in) the connect_fail says the drops were not watched.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_tracing.h>
#include "conntrace.h"
#include "tcp_track.bpf.h"
#include "tcp_types.bpf.h"

#define TCPHDR_SYN 0x02
#define TCPHDR_ACK 0x10

/* A drop that says no more than "dropped": kept only when nothing better
 * was seen. (Its value differs between kernels: CO-RE gives this one's.) */
static __always_inline bool unspecific(__u32 reason)
{
	return reason <= bpf_core_enum_value(enum skb_drop_reason, SKB_DROP_REASON_NOT_SPECIFIED);
}

/* A packet leaving a connecting socket is a SYN; anything else of its
 * (the SYN-ACK, a RST, found for the socket by early demux) came in. */
static __always_inline bool inbound(struct sk_buff *skb)
{
	unsigned char *head = BPF_CORE_READ(skb, head);
	__u16 th = BPF_CORE_READ(skb, transport_header);
	__u8 flags = 0;

	bpf_probe_read_kernel(&flags, 1, head + th + 13);
	return (flags & (TCPHDR_SYN | TCPHDR_ACK)) != TCPHDR_SYN;
}

SEC("tp_btf/kfree_skb")
int BPF_PROG(handle_kfree_skb_btf, struct sk_buff *skb, void *location, enum skb_drop_reason reason)
{
	struct sock *sk = BPF_CORE_READ(skb, sk);
	struct sock_info *info;

	if (!sk || BPF_CORE_READ(sk, __sk_common.skc_state) != TCP_SYN_SENT)
		return 0;
	info = conn_of(sk, false);
	if (!info || info->direction != DIR_OUT)
		return 0;
	if (info->drops < 0xffff)
		info->drops++;
	if (info->drop_reason && unspecific(reason))
		return 0;
	info->drop_reason = reason;
	info->drop_ifindex = BPF_CORE_READ(skb, dev, ifindex);
	info->drop_inbound = inbound(skb);
	return 0;
}
