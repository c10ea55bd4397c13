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

/* sk was accepted after it closed in the queue (state.bpf.c): its accept
 * and its close, both attributed to the accepting task. */
static __always_inline void on_accepted_closed(struct sock *sk)
{
	__u64 key = (__u64)sk;
	struct queued_close *q = bpf_map_lookup_elem(&closed_in_queue, &key);
	struct event *e;

	if (!q)
		return;
	fill_task(&q->info);
	if (proc_match(q->info.pid, q->info.comm) && family_match(q->tr.t.family)) {
		if (want_event(EVENT_ACCEPT)) {
			e = new_event(EVENT_ACCEPT, &q->tr.t, &q->info);
			if (e)
				bpf_ringbuf_submit(e, 0);
		}
		if (want_event(EVENT_CLOSE))
			emit_close(&q->tr, &q->info, q->close_ns);
	}
	bpf_map_delete_elem(&closed_in_queue, &key);
}

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
	if (!info) {
		on_accepted_closed(sk);
		return;
	}
	if (info->direction != DIR_IN || info->matched)
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
