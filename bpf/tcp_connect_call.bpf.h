/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Failures that connect() itself returns: no free local port or a source
 * address not on the host (EADDRNOTAVAIL), no route (ENETUNREACH), policy
 * (EACCES, EPERM), and the handshake failures a blocking connect() waits
 * for (ECONNREFUSED, ETIMEDOUT). From the return of a TCP connect()
 * (connect.bpf.c).
 *
 * A handshake that fails while connect() runs is seen twice: by the state
 * machine (SYN_SENT -> CLOSE) and by the syscall's return. tcp_state.bpf.c
 * leaves those to us, so each failure is reported once, with the errno the
 * application got. Some failures (EADDRNOTAVAIL) even pass SYN_SENT -> CLOSE
 * with no socket error at all.
 */
#ifndef CONNTRACE_TCP_CONNECT_CALL_BPF_H
#define CONNTRACE_TCP_CONNECT_CALL_BPF_H

#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>
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

/* The return of a TCP connect(): p is its call in connect_calls, ret
 * what it returned. */
static __always_inline void tcp_connect_return(struct pending_call *p, __u64 tid, long ret)
{
	struct pending_call call = *p;
	struct connect_failure *f;
	struct sock_info fresh = {};
	struct tuple t = {};
	int err;

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
			return;
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
		return;
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
}

#endif /* CONNTRACE_TCP_CONNECT_CALL_BPF_H */
