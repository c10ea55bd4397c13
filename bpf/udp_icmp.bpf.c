// SPDX-License-Identifier: GPL-2.0
/*
 * ICMP errors about UDP datagrams (icmp.bpf.h), where the kernel has the
 * error handlers hooked: fentry or kprobe. IPv4: UDP's own,
 * __udp4_lib_err(skb, info, ...), as tcp_v4_err (a global symbol UDP-Lite
 * calls too). IPv6: icmpv6_notify(skb, type, code, info), which hands an
 * error to the protocol it quotes, the quoted IPv6 header at the skb's data
 * (UDP's own handlers cannot be hooked everywhere: udpv6_err, static, is
 * not found in Debian's kernels, and __udp6_lib_err's 7 arguments are more
 * than Linux 6.1's fentry takes). A UDP header after IPv6 extension
 * headers is not found. A connected socket's error report (udp_errors.bpf.c) then
 * says who sent it; an unconnected socket is told of none, and no flow
 * picks the note up (its socket is not at hand here): it ages out.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_tracing.h>
#include "arch.bpf.h"
#include "icmp.bpf.h"

SEC("fentry/__udp4_lib_err")
int BPF_PROG(udp_icmp4_fentry, struct sk_buff *skb)
{
	note_icmp4(skb, IPPROTO_UDP);
	return 0;
}

SEC("kprobe/__udp4_lib_err")
int BPF_KPROBE(udp_icmp4_kprobe, struct sk_buff *skb)
{
	note_icmp4(skb, IPPROTO_UDP);
	return 0;
}

/* The quoted IPv6 header with no extension header: UDP's at 40. */
#define IPV6_HDR_LEN 40

SEC("fentry/icmpv6_notify")
int BPF_PROG(udp_icmp6_fentry, struct sk_buff *skb, u8 type, u8 code)
{
	note_icmp(skb, IPPROTO_UDP, true, type, code, IPV6_HDR_LEN);
	return 0;
}

SEC("kprobe/icmpv6_notify")
int BPF_KPROBE(udp_icmp6_kprobe, struct sk_buff *skb, u8 type, u8 code)
{
	note_icmp(skb, IPPROTO_UDP, true, type, code, IPV6_HDR_LEN);
	return 0;
}
