// SPDX-License-Identifier: GPL-2.0
/*
 * The tracepoint mode's accept: the accept syscalls' exits resolve the
 * returned fd to its socket (the fentry and kprobe modes hook
 * inet_csk_accept instead: hooks.bpf.c). The join itself is accept.bpf.h.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>
#include "accept.bpf.h"
#include "calls.bpf.h"

/* accept's fd -> struct socket -> struct sock. */
static __always_inline int on_accept_exit(struct syscall_exit_args *ctx)
{
	struct socket *sock;

	if (ctx->ret < 0)
		return 0;
	sock = socket_from_fd(ctx->ret);
	if (sock)
		on_accepted(BPF_CORE_READ(sock, sk), false);
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
