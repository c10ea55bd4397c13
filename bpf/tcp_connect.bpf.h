/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Outbound TCP connections: who connects (on_syn_sent), the connect()
 * calls in flight and the failures on their way to them, and the
 * connect_fail record: how long the handshake took to fail, the SYNs sent
 * again, what this host dropped of it (tcp_drops.bpf.c) and the ICMP error
 * that answered it (tcp_icmp.bpf.h). From the state machine
 * (tcp_state.bpf.c), or from the connect() syscall (tcp_connect.bpf.c).
 */
#ifndef CONNTRACE_TCP_CONNECT_BPF_H
#define CONNTRACE_TCP_CONNECT_BPF_H

#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_endian.h>
#include "conntrace.h"
#include "bind.bpf.h"
#include "calls.bpf.h"
#include "events.bpf.h"
#include "filters.bpf.h"
#include "task.bpf.h"
#include "tcp_icmp.bpf.h"
#include "tcp_track.bpf.h"
#include "tcp_types.bpf.h"
#include "tuple.bpf.h"
#include "types.bpf.h"

/*
 * Connects whose handshake failed while connect() was still running, by
 * the connecting thread: sys_exit_connect reports them, with the errno
 * the application gets. Entries live from the failure to that return
 * (microseconds); one that finds the map full is reported here instead.
 */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 4096);
	__type(key, __u64);
	__type(value, struct connect_failure);
} connect_failures SEC(".maps");

/* The errno getsockopt(SO_ERROR) handed the application for a socket still
 * in SYN_SENT, by socket: a soft error (tcp_connect.bpf.c), which the socket
 * itself no longer holds when the application closes it (tcp_state.bpf.c
 * takes it then). LRU: rare, and a socket may go unclosed for long. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 4096);
	__type(key, __u64);
	__type(value, __s32);
} so_errors SEC(".maps");

/* Threads whose connect() a signal interrupted (ERESTARTSYS), by thread:
 * the kernel will likely restart the call (tcp_connect.bpf.c). LRU: a call
 * that is not restarted leaves its entry. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 1024);
	__type(key, __u64);
	__type(value, __u64);
} restarting_calls SEC(".maps");

/* Sockets whose handshake failure the state machine reported while a
 * signal had interrupted their connect(): the restarted call returns the
 * same failure, which must not be reported again (tcp_connect.bpf.c). Rare,
 * hence small; LRU, as a call that is not restarted leaves its entry. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 1024);
	__type(key, __u64);
	__type(value, __u8);
} restart_reported SEC(".maps");

static __always_inline void mark_restart_reported(__u64 sk)
{
	__u8 one = 1;

	bpf_map_update_elem(&restart_reported, &sk, &one, BPF_ANY);
}

/* Set by the loader when skb:kfree_skb is hooked (tcp_drops.bpf.c). */
const volatile __u8 drops_hooked = 0;

/* connect_fail, from the state machine or from the connect() syscall. */
static __always_inline void emit_connect_fail(const struct sock_info *info, const struct tuple *t, int err)
{
	struct connect_fail_record *e;

	if (!want_event(EVENT_CONNECT_FAIL))
		return;
	e = NEW_CONN_RECORD(connect_fail, EVENT_CONNECT_FAIL, t, info);
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
	if (drops_hooked && info->where == IN_TABLE)
		e->head.flags |= FLAG_DROPS_WATCHED;
	if (info->drop_inbound)
		e->head.flags |= FLAG_DROP_INBOUND;
	/* A connection that got as far as its SYN (a record made for one of
	 * connect()'s own failures has no call in flight). */
	e->icmp_watched = icmp_hooked && info->call_key;
	e->icmp_family = e->icmp_type = e->icmp_code = 0;
	if (e->icmp_watched) {
		struct icmp_note note;

		if (take_icmp(t, IPPROTO_TCP, info->start_ns, &note)) {
			__builtin_memcpy(e->icmp_from, note.from, sizeof(e->icmp_from));
			e->icmp_family = note.family;
			e->icmp_type = note.type;
			e->icmp_code = note.code;
		}
	}
	submit(e);
}

/*
 * connect(): remember who connects. Called in the connecting task, from
 * tcp_connect() (tcp_connect.bpf.c: port_picked) or from the CLOSE ->
 * SYN_SENT transition (tcp_state.bpf.c), where the local port is not
 * picked yet unless the socket was bound (inet_hash_connect runs after
 * the transition): then a connection the port filter may still want by
 * that port is followed, and on_established or the failure decide.
 */
static __always_inline void on_syn_sent(struct sock *sk, bool typed, bool port_picked)
{
	struct sock_info info = {};
	__u64 key = (__u64)sk;
	__u16 sport;

	if (stopping)
		return;
	if (filter_ports) {
		sport = local_port(sk);
		if (!port_match(sport, remote_port(sk)) &&
		    (port_picked || sport || !ephemeral_may_match(sk))) {
			/* Not followed. A bind to port 0 is forgotten, or
			 * the socket's memory, reused, would inherit it. */
			if (sport)
				bpf_map_delete_elem(&bound_port0, &key);
			return;
		}
	}
	fill_task(&info.task);
	if (!proc_match(info.task.pid, info.task.comm))
		return;
	if (bpf_map_lookup_elem(&bound_port0, &key)) {
		info.flags |= FLAG_BOUND_PORT0;
		bpf_map_delete_elem(&bound_port0, &key);
	}
	/* Whether its connect() is still running, when the handshake fails,
	 * is that thread's call in flight (tcp_connect.bpf.c). */
	info.call_key = bpf_get_current_pid_tgid();
	track(sk, &info, DIR_OUT, typed);
}

#endif /* CONNTRACE_TCP_CONNECT_BPF_H */
