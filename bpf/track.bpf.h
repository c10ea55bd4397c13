/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The socket table: every connection we follow, from the moment it starts
 * (connect() or a SYN received) to its close, keyed by socket address.
 */
#ifndef CONNTRACE_TRACK_BPF_H
#define CONNTRACE_TRACK_BPF_H

#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include "conntrace.h"
#include "calls.bpf.h"
#include "defs.bpf.h"
#include "events.bpf.h"
#include "filters.bpf.h"
#include "tuple.bpf.h"
#include "types.bpf.h"

/* Source of conn_id; 0 is never handed out. */
__u64 next_conn_id = 0;

/*
 * Live connections by socket address. A plain hash, not an LRU: an LRU
 * evicts without telling, and the evicted connection's close would vanish
 * uncounted. Here a connection that finds the table full is not tracked,
 * and counted (LOST_TABLE_FULL) where that happens. An entry whose close we
 * missed (counted as skipped) is replaced when its socket's memory starts
 * a new connection (track()) or a listener (state.bpf.c).
 */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 65536); /* resized by the loader */
	__type(key, __u64);
	__type(value, struct sock_info);
} socks SEC(".maps");

/*
 * Inbound connections that closed while they waited in the accept queue:
 * the peer reset them (it gave up waiting, or its kernel ran out of orphan
 * sockets). accept() still hands them over; then their accept and their
 * close are both reported (accept.bpf.h). Kept out of socks, which holds
 * live connections. LRU: one never accepted (its listener closed) ages out.
 */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 4096);
	__type(key, __u64);
	__type(value, struct queued_close);
} closed_in_queue SEC(".maps");

/* Sockets whose handshake failure the state machine reported while a
 * signal had interrupted their connect(): the restarted call returns the
 * same failure, which must not be reported again (connect.bpf.c). Rare,
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

/* Stops remembering a connection. */
static __always_inline void untrack(__u64 sk)
{
	bpf_map_delete_elem(&socks, &sk);
}

/*
 * Starts remembering a connection under a fresh conn_id. An entry already
 * there for this socket address is a connection whose end we never saw
 * (a state change the kernel skipped, or a hook that was detached): the
 * socket was freed and its memory reused. If that connection was
 * reported, count its close as lost here.
 */
static __always_inline void track(__u64 sk, struct sock_info *info, __u8 dir)
{
	struct sock_info *old = bpf_map_lookup_elem(&socks, &sk);
	/* An int, not a long: before Linux 6.4 the upper half of r0 is
	 * undefined after a map update (the map's own int-returning function
	 * is called directly). */
	int err;

	info->conn_id = __sync_fetch_and_add(&next_conn_id, 1) + 1;
	info->start_ns = bpf_ktime_get_ns();
	info->direction = dir;
	info->netns = netns_of((struct sock *)sk);
	if (old) {
		if (old->matched)
			count_in(&lost_events, LOST_UNSEEN);
		bpf_map_update_elem(&socks, &sk, info, BPF_ANY);
		return;
	}
	/* No room (E2BIG): this connection goes untraced, counted here, once.
	 * Any other failure (EBUSY: the bucket is locked by the program this
	 * one interrupted on this CPU) costs it too, like a skipped hook run. */
	err = bpf_map_update_elem(&socks, &sk, info, BPF_NOEXIST);
	if (err == -E2BIG)
		count_in(&lost_events, LOST_TABLE_FULL);
	else if (err)
		count_in(&lost_events, LOST_UNSEEN);
}

/* connect(): remember who connects. Called in the connecting task, from the
 * CLOSE -> SYN_SENT transition (state.bpf.c) or from tcp_connect()
 * (hooks.bpf.c). The local port may not be chosen yet (inet_hash_connect
 * runs after the transition), so the port filter waits for ESTABLISHED or
 * the failure. */
static __always_inline void on_syn_sent(__u64 sk)
{
	struct sock_info info = {};
	__u64 tid = bpf_get_current_pid_tgid();
	struct pending_call *call;

	fill_task(&info);
	if (!proc_match(info.pid, info.comm))
		return;
	if (bpf_map_lookup_elem(&bound_port0, &sk)) {
		info.flags |= FLAG_BOUND_PORT0;
		bpf_map_delete_elem(&bound_port0, &sk);
	}
	call = bpf_map_lookup_elem(&connect_calls, &tid);
	info.in_connect = call && call->sk == sk;
	track(sk, &info, DIR_OUT);
}

#endif /* CONNTRACE_TRACK_BPF_H */
