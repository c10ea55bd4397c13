// SPDX-License-Identifier: GPL-2.0
/*
 * Function hooks on tcp_connect() and inet_csk_accept(), where the kernel
 * has them: fentry/fexit (a BPF trampoline, the cheapest per call) or
 * kprobe/kretprobe. They attribute connections at the call that makes them,
 * in the task that makes them; the tracepoint mode gets the same from the
 * CLOSE -> SYN_SENT transition and the accept syscalls' exits. The loader
 * loads one pair, or neither.
 *
 * Only what is stable across kernels is used: tcp_connect's first argument,
 * and inet_csk_accept's return value. Its arguments changed in Linux 6.10
 * (struct proto_accept_arg *), which moves the return value in an fexit
 * program's context: there is a program for each signature.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include "arch.bpf.h"
#include "accept.bpf.h"
#include "icmp.bpf.h"
#include "track.bpf.h"

SEC("fentry/tcp_connect")
int BPF_PROG(handle_connect_fentry, struct sock *sk)
{
	on_syn_sent(sk, true);
	return 0;
}

/* inet_csk_accept(sk, arg) since Linux 6.10: the return value is the
 * third slot. Typed (BTF), so that it can reach the socket's storage. */
SEC("fexit/inet_csk_accept")
int BPF_PROG(handle_accept_fexit, struct sock *sk, void *arg, struct sock *ret)
{
	on_accepted(ret, true);
	return 0;
}

/* inet_csk_accept(sk, flags, err, kern) before Linux 6.10: the fifth. The
 * loader picks the variant by the kernel's BTF of the function. */
SEC("fexit/inet_csk_accept")
int BPF_PROG(handle_accept_fexit4, struct sock *sk, int flags, int *err, bool kern, struct sock *ret)
{
	on_accepted(ret, true);
	return 0;
}

SEC("kprobe/tcp_connect")
int BPF_KPROBE(handle_connect_kprobe, struct sock *sk)
{
	on_syn_sent(sk, false);
	return 0;
}

SEC("kretprobe/inet_csk_accept")
int BPF_KRETPROBE(handle_accept_kretprobe, struct sock *sk)
{
	on_accepted(sk, false);
	return 0;
}

/* ICMP errors (icmp.bpf.h). tcp_v4_err(skb, info): type and code are in
 * the ICMP header; tcp_v6_err(skb, opt, type, code, offset, info) is
 * given them, and where the quoted TCP header starts. */
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
