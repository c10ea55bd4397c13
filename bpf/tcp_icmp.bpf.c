// SPDX-License-Identifier: GPL-2.0
/*
 * ICMP errors about a handshake (tcp_icmp.bpf.h), from TCP's error
 * handlers, where the kernel has them hooked: fentry (a BPF trampoline,
 * the cheapest per call) or kprobe. tcp_v4_err(skb, info): type and code
 * are in the ICMP header; tcp_v6_err(skb, opt, type, code, offset, info) is
 * given them, and where the quoted TCP header starts.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_tracing.h>
#include "arch.bpf.h"
#include "tcp_icmp.bpf.h"

static __always_inline void icmp4(struct sk_buff *skb)
{
	unsigned char *head = BPF_CORE_READ(skb, head);
	__u16 th = BPF_CORE_READ(skb, transport_header);
	__u8 tc[2] = {};

	bpf_probe_read_kernel(tc, sizeof(tc), head + th);
	note_icmp(skb, false, tc[0], tc[1], 0);
}

SEC("fentry/tcp_v4_err")
int BPF_PROG(handle_icmp4_fentry, struct sk_buff *skb)
{
	icmp4(skb);
	return 0;
}

SEC("kprobe/tcp_v4_err")
int BPF_KPROBE(handle_icmp4_kprobe, struct sk_buff *skb)
{
	icmp4(skb);
	return 0;
}

SEC("fentry/tcp_v6_err")
int BPF_PROG(handle_icmp6_fentry, struct sk_buff *skb, void *opt, u8 type, u8 code, int offset)
{
	note_icmp(skb, true, type, code, offset);
	return 0;
}

SEC("kprobe/tcp_v6_err")
int BPF_KPROBE(handle_icmp6_kprobe, struct sk_buff *skb, void *opt, u8 type, u8 code, int offset)
{
	note_icmp(skb, true, type, code, offset);
	return 0;
}
