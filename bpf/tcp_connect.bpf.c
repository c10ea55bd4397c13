// SPDX-License-Identifier: GPL-2.0
/*
 * Who connects (tcp_connect(), where it can be hooked), and the errno
 * getsockopt(SO_ERROR) hands out.
 *
 * A non-blocking connect() returns at once; the application learns how it
 * went from getsockopt(SO_ERROR). An ICMP error that comes while connect()
 * still holds the socket (a REJECT on the path answers that fast) is a
 * soft error: the socket stays in SYN_SENT and only SO_ERROR returns it,
 * then the application closes the socket, with no error left on it. So
 * the errno SO_ERROR hands out for a socket in SYN_SENT is noted here, for
 * the state machine's failure (tcp_state.bpf.c).
 *
 * The failures connect() itself returns: tcp_connect_call.bpf.h, from the
 * syscall's programs (connect.bpf.c).
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_tracing.h>
#include "conntrace.h"
#include "arch.bpf.h"
#include "calls.bpf.h"
#include "defs.bpf.h"
#include "events.bpf.h"
#include "filters.bpf.h"
#include "task.bpf.h"
#include "tcp_connect.bpf.h"
#include "tcp_track.bpf.h"
#include "tcp_types.bpf.h"
#include "tuple.bpf.h"
#include "types.bpf.h"

/* Who connects, at tcp_connect() in the connecting task, where the kernel
 * has it hooked: fentry (a BPF trampoline, the cheapest per call) or
 * kprobe. Its first argument is stable across kernels. The tracepoint
 * mode takes the same from the CLOSE -> SYN_SENT transition
 * (tcp_state.bpf.c). */
SEC("fentry/tcp_connect")
int BPF_PROG(handle_connect_fentry, struct sock *sk)
{
	on_syn_sent(sk, true, true);
	return 0;
}

SEC("kprobe/tcp_connect")
int BPF_KPROBE(handle_connect_kprobe, struct sock *sk)
{
	on_syn_sent(sk, false, true);
	return 0;
}

/* getsockopt(SOL_SOCKET, SO_ERROR) in flight, by thread. */
struct so_error_call {
	__u64 optval; /* where the errno goes, in user memory */
	__s32 fd;
	__u32 _pad;
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 4096);
	__type(key, __u64);
	__type(value, struct so_error_call);
} so_error_calls SEC(".maps");

SEC("tracepoint/syscalls/sys_enter_getsockopt")
int handle_getsockopt_enter(struct syscall_enter_args *ctx)
{
	struct so_error_call call = {.optval = ctx->args[3], .fd = ctx->args[0]};
	__u64 tid;

	/* Most getsockopt() calls are other options: two compares. */
	if (ctx->args[1] != SOL_SOCKET || ctx->args[2] != SO_ERROR || !want_event(EVENT_CONNECT_FAIL))
		return 0;
	tid = bpf_get_current_pid_tgid();
	bpf_map_update_elem(&so_error_calls, &tid, &call, BPF_ANY);
	return 0;
}

SEC("tracepoint/syscalls/sys_exit_getsockopt")
int handle_getsockopt_exit(struct syscall_exit_args *ctx)
{
	__u64 tid = bpf_get_current_pid_tgid();
	struct so_error_call *p = bpf_map_lookup_elem(&so_error_calls, &tid);
	struct so_error_call call;
	struct socket *sock;
	struct sock *sk;
	__u64 key;
	int err = 0;

	if (!p)
		return 0;
	call = *p;
	bpf_map_delete_elem(&so_error_calls, &tid);
	if (ctx->ret || bpf_probe_read_user(&err, sizeof(err), (const void *)call.optval) || err <= 0)
		return 0;
	sock = socket_from_fd(call.fd);
	if (!sock || BPF_CORE_READ(sock, type) != SOCK_STREAM)
		return 0;
	sk = BPF_CORE_READ(sock, sk);
	if (!sk || BPF_CORE_READ(sk, sk_protocol) != IPPROTO_TCP ||
	    BPF_CORE_READ(sk, __sk_common.skc_state) != TCP_SYN_SENT)
		return 0;
	key = (__u64)sk;
	bpf_map_update_elem(&so_errors, &key, &err, BPF_ANY);
	return 0;
}
