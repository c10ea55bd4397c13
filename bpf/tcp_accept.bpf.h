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
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_endian.h>
#include "conntrace.h"
#include "events.bpf.h"
#include "filters.bpf.h"
#include "task.bpf.h"
#include "tcp_close.bpf.h"
#include "tcp_track.bpf.h"
#include "tcp_types.bpf.h"
#include "tuple.bpf.h"

/* sk, accepted by the current task (info->task), had closed in the queue
 * (tcp_state.bpf.c): its accept and its close, both the accepting
 * task's, the close with the state it closed from and when. */
static __always_inline void on_accepted_closed(struct sock *sk, struct sock_info *info, const struct tuple *t)
{
	struct transition tr = {
		.sk = (__u64)sk, .oldstate = info->closed_from, .newstate = TCP_CLOSE, .t = *t};
	struct record_head *e;

	if (want_event(EVENT_ACCEPT)) {
		e = new_conn_record(EVENT_ACCEPT, sizeof(*e), t, info);
		if (e)
			submit(e);
	}
	if (want_event(EVENT_CLOSE))
		emit_close(&tr, info, info->closed_ns);
	untrack(sk, info);
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
	/* An inbound connection is followed only if the port filter wanted
	 * it (on_syn_recv): the ports first, then the table. */
	if (filter_ports && !port_match(local_port(sk), remote_port(sk)))
		return;
	info = conn_of(sk, typed);
	if (!info || info->direction != DIR_IN || info->matched)
		return;
	count_queued(-1);

	fill_task(&info->task);
	tuple_from_sk(&t, sk);
	if (!proc_match(info->task.pid, info->task.comm) || !family_match(t.family)) {
		untrack(sk, info);
		return;
	}
	if (!info->closed_ns) {
		info->matched = 1;
		/* The peer's reset may be closing it on another CPU: the
		 * state program marks it closed only while it is not matched.
		 * Looked at again, which narrows the window without shutting
		 * it (no compare-and-swap before Linux 5.12): a close lost
		 * there leaves the entry, matched, to be counted as skipped
		 * when its memory is reused. */
		if (!info->closed_ns) {
			if (want_event(EVENT_ACCEPT)) {
				e = new_conn_record(EVENT_ACCEPT, sizeof(*e), &t, info);
				if (e)
					submit(e);
			}
			return;
		}
	}
	on_accepted_closed(sk, info, &t);
}

#endif /* CONNTRACE_TCP_ACCEPT_BPF_H */
