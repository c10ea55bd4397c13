/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Inbound attribution: the accepting process. The child socket's
 * SYN_RECV/ESTABLISHED transitions run in softirq, in whatever task happens
 * to be on the CPU. accept() hands the connection over in the accepting
 * task, so we take the pid there and join it to what the state machine
 * remembered. Called with the socket accept() returned: from the accept
 * syscalls' exits (accept.bpf.c) or from inet_csk_accept (hooks.bpf.c).
 */
#ifndef CONNTRACE_ACCEPT_BPF_H
#define CONNTRACE_ACCEPT_BPF_H

#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include "conntrace.h"
#include "close.bpf.h"
#include "events.bpf.h"
#include "filters.bpf.h"
#include "track.bpf.h"
#include "tuple.bpf.h"
#include "types.bpf.h"

/* sk was accepted after it closed in the queue (state.bpf.c): its accept
 * and its close, both attributed to the accepting task. */
static __always_inline void on_accepted_closed(struct sock *sk)
{
	__u64 key = (__u64)sk;
	struct queued_close *q = bpf_map_lookup_elem(&closed_in_queue, &key);
	struct record_head *e;

	if (!q)
		return;
	count_queued(-1); /* counted as queued until now (state.bpf.c) */
	fill_task(&q->info);
	if (proc_match(q->info.pid, q->info.comm) && family_match(q->tr.t.family)) {
		if (want_event(EVENT_ACCEPT)) {
			e = new_record(EVENT_ACCEPT, sizeof(*e), IPPROTO_TCP, &q->tr.t, &q->info);
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

	fill_task(info);
	tuple_from_sk(&t, sk);
	if (!proc_match(info->pid, info->comm) || !family_match(t.family)) {
		untrack(sk, info);
		return;
	}
	info->matched = 1;
	if (!want_event(EVENT_ACCEPT))
		return;
	e = new_record(EVENT_ACCEPT, sizeof(*e), IPPROTO_TCP, &t, info);
	if (e)
		submit(e);
}

#endif /* CONNTRACE_ACCEPT_BPF_H */
