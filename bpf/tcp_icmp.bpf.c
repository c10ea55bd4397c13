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

SEC("fentry/tcp_v4_err")
int BPF_PROG(handle_icmp4_fentry, struct sk_buff *skb)
{
	note_icmp4(skb, IPPROTO_TCP);
	return 0;
}

SEC("kprobe/tcp_v4_err")
int BPF_KPROBE(handle_icmp4_kprobe, struct sk_buff *skb)
{
	note_icmp4(skb, IPPROTO_TCP);
	return 0;
}

SEC("fentry/tcp_v6_err")
int BPF_PROG(handle_icmp6_fentry, struct sk_buff *skb, void *opt, u8 type, u8 code, int offset)
{
	note_icmp(skb, IPPROTO_TCP, true, type, code, offset);
	return 0;
}

SEC("kprobe/tcp_v6_err")
int BPF_KPROBE(handle_icmp6_kprobe, struct sk_buff *skb, void *opt, u8 type, u8 code, int offset)
{
	note_icmp(skb, IPPROTO_TCP, true, type, code, offset);
	return 0;
}
