// SPDX-License-Identifier: GPL-2.0
/*
 * Inbound attribution: the accepting process.
 *
 * The child socket's SYN_RECV/ESTABLISHED transitions run in softirq, in
 * whatever task happens to be on the CPU. accept() hands the connection over
 * in the accepting task, so we take the pid there and join it to what
 * state.bpf.c remembered. Where the kernel allows, fexit or kretprobe on
 * inet_csk_accept gives us the sock directly (hooks.bpf.c); otherwise the
 * accept syscalls' exit tracepoints resolve the returned fd to it.
 */
#include "common.bpf.h"

/* sk was just accepted by the current task. */
static __always_inline void on_accepted(struct sock *sk)
{
	struct sock_info *info;
	struct tuple t = {};
	struct event *e;
	__u64 key = (__u64)sk;

	if (!sk)
		return;
	info = bpf_map_lookup_elem(&socks, &key);
	if (!info || info->direction != DIR_IN || info->matched)
		return;

	fill_task(info);
	tuple_from_sk(&t, sk);
	if (!proc_match(info->pid, info->comm) || !family_match(t.family)) {
		untrack(key);
		return;
	}
	info->matched = 1;
	if (!want_event(EVENT_ACCEPT))
		return;
	e = new_event(EVENT_ACCEPT, &t, info);
	if (e)
		bpf_ringbuf_submit(e, 0);
}

/* The tracepoint mode: accept's fd -> struct socket -> struct sock. */
static __always_inline int on_accept_exit(struct syscall_exit_args *ctx)
{
	struct socket *sock;

	if (ctx->ret < 0)
		return 0;
	sock = socket_from_fd(ctx->ret);
	if (sock)
		on_accepted(BPF_CORE_READ(sock, sk));
	return 0;
}

SEC("tracepoint/syscalls/sys_exit_accept4")
int handle_accept4_exit(struct syscall_exit_args *ctx)
{
	return on_accept_exit(ctx);
}

SEC("tracepoint/syscalls/sys_exit_accept")
int handle_accept_exit(struct syscall_exit_args *ctx)
{
	return on_accept_exit(ctx);
}
