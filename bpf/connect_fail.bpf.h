/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The connect_fail record: how long the handshake took to fail, the SYNs
 * sent again, what this host dropped of it (drops.bpf.c) and the ICMP
 * error that answered it (icmp.bpf.h). From the state machine, or from
 * the connect() syscall (connect.bpf.c).
 */
#ifndef CONNTRACE_CONNECT_FAIL_BPF_H
#define CONNTRACE_CONNECT_FAIL_BPF_H

#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include "conntrace.h"
#include "events.bpf.h"
#include "filters.bpf.h"
#include "icmp.bpf.h"
#include "types.bpf.h"

/* Set by the loader when skb:kfree_skb is hooked (drops.bpf.c). */
const volatile __u8 drops_hooked = 0;

/* connect_fail, from the state machine or from the connect() syscall. */
static __always_inline void emit_connect_fail(const struct sock_info *info, const struct tuple *t, int err)
{
	struct connect_fail_record *e;

	if (!want_event(EVENT_CONNECT_FAIL))
		return;
	e = NEW_RECORD(connect_fail, EVENT_CONNECT_FAIL, IPPROTO_TCP, t, info);
	if (!e)
		return;
	e->latency_ns = e->head.ts_ns - info->start_ns;
	e->error = err;
	e->retransmits = info->retransmits;
	e->drops = info->drops;
	e->drop_reason = info->drop_reason;
	e->drop_ifindex = info->drop_ifindex;
	/* The drop hook finds connections in the socket table only; one
	 * that never got that far (no route) sent nothing to drop. */
	if (drops_hooked && info->in_table)
		e->head.flags |= FLAG_DROPS_WATCHED;
	if (info->drop_inbound)
		e->head.flags |= FLAG_DROP_INBOUND;
	/* A connection that got as far as its SYN (a record made for one of
	 * connect()'s own failures has no call in flight). */
	e->icmp_watched = icmp_hooked && info->call_key;
	e->icmp_family = e->icmp_type = e->icmp_code = 0;
	if (e->icmp_watched) {
		struct icmp_note note;

		if (take_icmp(t, info->start_ns, &note)) {
			__builtin_memcpy(e->icmp_from, note.from, sizeof(e->icmp_from));
			e->icmp_family = note.family;
			e->icmp_type = note.type;
			e->icmp_code = note.code;
		}
	}
	submit(e);
}

#endif /* CONNTRACE_CONNECT_FAIL_BPF_H */
