// SPDX-License-Identifier: GPL-2.0
/*
 * The socket accept() returns, joined to its connection (tcp_accept.bpf.h),
 * by one of three hooks the loader picks: fexit on inet_csk_accept (a BPF
 * trampoline, the cheapest per call), kretprobe on it, or the accept
 * syscalls' exits, which resolve the returned fd to its socket.
 *
 * Only inet_csk_accept's return value is used, stable across kernels. Its
 * arguments changed in Linux 6.10 (struct proto_accept_arg *), which moves
 * the return value in an fexit program's context: there is a program for
 * each signature.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_tracing.h>
#include "arch.bpf.h"
#include "calls.bpf.h"
#include "tcp_accept.bpf.h"

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

SEC("kretprobe/inet_csk_accept")
int BPF_KRETPROBE(handle_accept_kretprobe, struct sock *sk)
{
	on_accepted(sk, false);
	return 0;
}

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
