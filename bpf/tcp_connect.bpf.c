// SPDX-License-Identifier: GPL-2.0
/*
 * Failures that connect() itself returns: no free local port or a source
 * address not on the host (EADDRNOTAVAIL), no route (ENETUNREACH), policy
 * (EACCES, EPERM), and the handshake failures a blocking connect() waits
 * for (ECONNREFUSED, ETIMEDOUT).
 *
 * A handshake that fails while connect() runs is seen twice: by the state
 * machine (SYN_SENT -> CLOSE) and by the syscall's return. tcp_state.bpf.c
 * leaves those to us, so each failure is reported once, with the errno the
 * application got. Some failures (EADDRNOTAVAIL) even pass SYN_SENT -> CLOSE
 * with no socket error at all.
 *
 * A non-blocking connect() returns at once; the application learns how it
 * went from getsockopt(SO_ERROR). An ICMP error that comes while connect()
 * still holds the socket (a REJECT on the path answers that fast) is a
 * soft error: the socket stays in SYN_SENT and only SO_ERROR returns it,
 * then the application closes the socket, with no error left on it. So
 * the errno SO_ERROR hands out for a socket in SYN_SENT is noted here, for
 * the state machine's failure (tcp_state.bpf.c).
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

SEC("tracepoint/syscalls/sys_enter_connect")
int handle_connect_enter(struct syscall_enter_args *ctx)
{
	struct pending_call call = {};
	__u64 tid = bpf_get_current_pid_tgid();
	struct socket *sock;
	struct sock *sk;

	if (!want_event(EVENT_CONNECT_FAIL))
		return 0;
	sock = begin_call(ctx, &call);
	if (!sock || BPF_CORE_READ(sock, type) != SOCK_STREAM)
		return 0;
	sk = BPF_CORE_READ(sock, sk);
	if (!sk || BPF_CORE_READ(sk, sk_protocol) != IPPROTO_TCP)
		return 0;
	/* A connection the port filter cannot want: neither the port asked
	 * for nor the local one (bound, or to be picked) is in it. */
	if (filter_ports) {
		__u16 sport = local_port(sk);

		if (!port_match(sport, call.port) && (sport || !ephemeral_may_match(sk)))
			return 0;
	}
	call.sk = (__u64)sk;
	call.proto = IPPROTO_TCP;
	/* While this is in flight, a handshake failure is this call's to
	 * report (tcp_state.bpf.c): also when it is a call a signal interrupted,
	 * restarted by the kernel, or the application's own retry. */
	bpf_map_update_elem(&connect_calls, &tid, &call, BPF_ANY);
	return 0;
}

/*
 * A signal that interrupts a blocking connect() (Go's scheduler sends
 * SIGURG all the time) ends the call with ERESTARTSYS, which the
 * application never sees: the kernel restarts the call (a new sys_enter),
 * or the application gets EINTR, and the handshake goes on.
 */
static __always_inline bool connect_restarts(long ret)
{
	return ret == -ERESTARTSYS || ret == -ERESTARTNOINTR || ret == -ERESTARTNOHAND ||
	       ret == -ERESTART_RESTARTBLOCK;
}

/* Returns that do not mean the connection failed. */
static __always_inline bool connect_pending(long ret)
{
	return ret == 0 || ret == -EINPROGRESS || ret == -EALREADY || ret == -EISCONN || ret == -EINTR ||
	       connect_restarts(ret);
}

SEC("tracepoint/syscalls/sys_exit_connect")
int handle_connect_exit(struct syscall_exit_args *ctx)
{
	__u64 tid = bpf_get_current_pid_tgid();
	struct pending_call *p = bpf_map_lookup_elem(&connect_calls, &tid);
	struct connect_failure *f;
	struct sock_info fresh = {};
	struct pending_call call;
	struct tuple t = {};
	long ret = ctx->ret;
	int err;

	if (!p)
		return 0;
	call = *p;
	/*
	 * The handshake may fail at any moment here (a SYN timer's softirq):
	 * the state machine stores the failure for this call while the call
	 * is in connect_calls, or, once it is not, reports it itself, as
	 * the failure of a call a signal interrupted if it is one (until the
	 * restarted call, the application may never call again). Hence this
	 * order: restarting_calls first, then the call leaves, then its
	 * failure is looked up (one of an earlier call of this thread whose
	 * exit never ran is not this one's).
	 */
	if (connect_restarts(ret))
		bpf_map_update_elem(&restarting_calls, &tid, &call.sk, BPF_ANY);
	bpf_map_delete_elem(&connect_calls, &tid);
	f = bpf_map_lookup_elem(&connect_failures, &tid);
	if (f && f->sk != call.sk) {
		bpf_map_delete_elem(&connect_failures, &tid);
		/* Looked up again, not set to NULL: the verifier then
		 * follows f as the map's value or NULL. */
		f = bpf_map_lookup_elem(&connect_failures, &tid);
	}
	if (f && connect_restarts(ret))
		bpf_map_delete_elem(&restarting_calls, &tid);
	if (connect_pending(ret)) {
		/* The state machine saw a failure the return value hides. */
		if (!f)
			return 0;
		err = f->error;
	} else {
		err = -ret;
	}

	/* The destination as requested: a failed connect resets the socket's,
	 * and its local end, which the state machine kept for us. */
	if (f) {
		t.s4 = f->s4;
		__builtin_memcpy(t.s6, f->s6, sizeof(t.s6));
		t.sport = f->sport;
	} else {
		tuple_from_sk(&t, (struct sock *)call.sk);
	}
	t.family = call.family;
	t.dport = call.port;
	t.d4 = call.addr[0];
	__builtin_memcpy(t.d6, call.addr, sizeof(t.d6));
	normalize(&t);

	/* This failure was reported between a signal and the restarted call
	 * that returns it now. (The result as an int: before Linux 6.4 the
	 * upper half of r0 is undefined after a map delete.) */
	if (!f && (int)bpf_map_delete_elem(&restart_reported, &call.sk) == 0)
		return 0;
	if (port_match(t.sport, t.dport) && family_match(t.family)) {
		if (!f) {
			/* Failed before SYN_SENT (no route, policy): nothing
			 * was tracked yet. */
			fill_task(&fresh.task);
			fresh.conn_id = __sync_fetch_and_add(&next_conn_id, 1) + 1;
			fresh.start_ns = call.ts_ns;
			fresh.direction = DIR_OUT;
			fresh.netns = netns_of((struct sock *)call.sk);
			emit_connect_fail(&fresh, &t, err);
		} else {
			emit_connect_fail(&f->info, &t, err);
		}
		/* A signal came with the failure: the restarted call returns
		 * it again. */
		if (connect_restarts(ret))
			mark_restart_reported(call.sk);
	}
	if (f)
		bpf_map_delete_elem(&connect_failures, &tid);
	return 0;
}

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
