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
 * (struct proto_accept_arg *), which would move an fexit program's view of
 * the return value; bpf_get_func_ret() reads it wherever it is.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include "accept.bpf.h"
#include "track.bpf.h"

SEC("fentry/tcp_connect")
int BPF_PROG(handle_connect_fentry, struct sock *sk)
{
	on_syn_sent((__u64)sk);
	return 0;
}

SEC("fexit/inet_csk_accept")
int handle_accept_fexit(__u64 *ctx)
{
	__u64 ret = 0;

	bpf_get_func_ret(ctx, &ret);
	on_accepted((struct sock *)ret);
	return 0;
}

SEC("kprobe/tcp_connect")
int BPF_KPROBE(handle_connect_kprobe, struct sock *sk)
{
	on_syn_sent((__u64)sk);
	return 0;
}

SEC("kretprobe/inet_csk_accept")
int BPF_KRETPROBE(handle_accept_kretprobe, struct sock *sk)
{
	on_accepted(sk);
	return 0;
}
