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
	if (!info || info->direction != DIR_IN || info->closed_ns == ACCEPTED_NS)
		return;
	count_queued(-1);

	fill_task(&info->task);
	tuple_from_sk(&t, sk);
	if (!proc_match(info->task.pid, info->task.comm) || !family_match(t.family)) {
		untrack(sk, info);
		return;
	}
	/*
	 * The peer's reset may be closing it on another CPU: whichever of
	 * the two sets closed_ns first decides (compare-and-swap), this
	 * accept (ACCEPTED_NS: the state program then reports the close) or
	 * the close (its time: reported here, with the accept). Once taken,
	 * the entry may be deleted and its memory reused at once: the
	 * accept's record is made from a copy taken before.
	 */
	if (!info->closed_ns) {
		struct sock_info mine = *info;

		if (__sync_val_compare_and_swap(&info->closed_ns, 0, ACCEPTED_NS) == 0) {
			if (want_event(EVENT_ACCEPT)) {
				e = new_conn_record(EVENT_ACCEPT, sizeof(*e), &t, &mine);
				if (e)
					submit(e);
			}
			return;
		}
	}
	on_accepted_closed(sk, info, &t);
}

#endif /* CONNTRACE_TCP_ACCEPT_BPF_H */
