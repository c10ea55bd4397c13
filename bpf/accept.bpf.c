// SPDX-License-Identifier: GPL-2.0
/*
 * Inbound attribution: the accepting process.
 *
 * The child socket's SYN_RECV/ESTABLISHED transitions run in softirq, in
 * whatever task happens to be on the CPU. accept() returns the connection in
 * the accepting task, so we resolve the returned fd to its struct sock there
 * and join it to what state.bpf.c remembered.
 */
#include "common.bpf.h"

static __always_inline int on_accept_exit(struct syscall_exit_args *ctx)
{
	struct sock_info *info;
	struct socket *sock;
	struct tuple t = {};
	struct sock *sk;
	struct event *e;
	__u64 key;

	if (ctx->ret < 0)
		return 0;
	sock = socket_from_fd(ctx->ret);
	sk = sock ? BPF_CORE_READ(sock, sk) : NULL;
	if (!sk)
		return 0;
	key = (__u64)sk;
	info = bpf_map_lookup_elem(&socks, &key);
	if (!info || info->direction != DIR_IN || info->matched)
		return 0;

	fill_task(info);
	tuple_from_sk(&t, sk);
	if (!proc_match(info->pid, info->comm) || !family_match(t.family)) {
		bpf_map_delete_elem(&socks, &key);
		return 0;
	}
	info->matched = 1;
	if (!want_event(EVENT_ACCEPT))
		return 0;
	e = new_event(EVENT_ACCEPT, &t, info);
	if (e)
		bpf_ringbuf_submit(e, 0);
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
