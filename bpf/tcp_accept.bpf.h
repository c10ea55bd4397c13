/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Inbound attribution: the accepting process. The child socket's
 * SYN_RECV/ESTABLISHED transitions run in softirq, in whatever task happens
 * to be on the CPU. accept() hands the connection over in the accepting
 * task, so we take the pid there and join it to what the state machine
 * remembered. Called with the socket accept() returned (tcp_accept.bpf.c).
 */
#ifndef CONNTRACE_TCP_ACCEPT_BPF_H
#define CONNTRACE_TCP_ACCEPT_BPF_H

#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include "conntrace.h"
#include "events.bpf.h"
#include "filters.bpf.h"
#include "task.bpf.h"
#include "tcp_close.bpf.h"
#include "tcp_track.bpf.h"
#include "tcp_types.bpf.h"
#include "tuple.bpf.h"

/* sk was accepted after it closed in the queue (tcp_state.bpf.c): its accept
 * and its close, both attributed to the accepting task. */
static __always_inline void on_accepted_closed(struct sock *sk)
{
	__u64 key = (__u64)sk;
	struct queued_close *q = bpf_map_lookup_elem(&closed_in_queue, &key);
	struct record_head *e;

	if (!q)
		return;
	count_queued(-1); /* counted as queued until now (tcp_state.bpf.c) */
	fill_task(&q->info.task);
	if (proc_match(q->info.task.pid, q->info.task.comm) && family_match(q->tr.t.family)) {
		if (want_event(EVENT_ACCEPT)) {
			e = new_conn_record(EVENT_ACCEPT, sizeof(*e), &q->tr.t, &q->info);
			if (e)
				submit(e);
		}
		if (want_event(EVENT_CLOSE))
			emit_close(&q->tr, &q->info, q->close_ns);
	}
	bpf_map_delete_elem(&closed_in_queue, &key);
}

/* sk was just accepted by the current task. typed: sk is a BTF pointer
 * (fexit), not just an address (kretprobe, the accept syscalls). */
static __always_inline void on_accepted(struct sock *sk, bool typed)
{
	struct sock_info *info;
	struct tuple t = {};
	struct record_head *e;

	if (!sk)
		return;
	info = conn_of(sk, typed);
	if (!info) {
		on_accepted_closed(sk);
		return;
	}
	if (info->direction != DIR_IN || info->matched)
		return;
	count_queued(-1);

	fill_task(&info->task);
	tuple_from_sk(&t, sk);
	if (!proc_match(info->task.pid, info->task.comm) || !family_match(t.family)) {
		untrack(sk, info);
		return;
	}
	info->matched = 1;
	if (!want_event(EVENT_ACCEPT))
		return;
	e = new_conn_record(EVENT_ACCEPT, sizeof(*e), &t, info);
	if (e)
		submit(e);
}

#endif /* CONNTRACE_TCP_ACCEPT_BPF_H */
