/* SPDX-License-Identifier: GPL-2.0 */
/*
 * TCP's socket table: every connection we follow, from the moment it
 * starts (connect() or a SYN received) to its close, keyed by socket
 * address; and the records of a connection.
 */
#ifndef CONNTRACE_TCP_TRACK_BPF_H
#define CONNTRACE_TCP_TRACK_BPF_H

#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include "conntrace.h"
#include "defs.bpf.h"
#include "events.bpf.h"
#include "tcp_types.bpf.h"
#include "tuple.bpf.h"

/*
 * Where a connection's state lives. Socket-local storage where the
 * programs get the socket as a typed (BTF) pointer (tp_btf, fentry/fexit,
 * Linux 5.11+): it lives and dies with the socket, so it needs no size,
 * cannot be full, and cannot outlive its socket. The socks table
 * otherwise: kprobes and classic tracepoints only have the socket's
 * address. Set by the loader.
 */
const volatile __u8 sk_storage = 0;

/*
 * In the tracepoint mode, accept() is seen by a classic tracepoint, which
 * cannot reach socket storage: there inbound connections live in the socks
 * table (the loader makes it grow as needed, up to a large cap), outbound
 * ones in storage. (No way was found to move an accepted connection to its
 * storage: a bpf_iter over TCP sockets sees only the tracer's network
 * namespace, and socket storage iterators are refused on some kernels.)
 * Set by the loader.
 */
const volatile __u8 inbound_in_table = 0;

struct {
	__uint(type, BPF_MAP_TYPE_SK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, int);
	__type(value, struct sock_info);
} sk_state SEC(".maps");

/*
 * Live connections by socket address, where socket storage cannot hold
 * them. A plain hash, not an LRU: an LRU evicts without telling, and the
 * evicted connection's close would vanish uncounted. Here a connection
 * that finds the table full goes to overflow (below), where its events
 * are counted as they are lost. An entry whose close we missed (counted
 * as skipped) is replaced when its socket's memory starts a new
 * connection (track()) or a listener (tcp_state.bpf.c). An inbound
 * connection its peer reset in the accept queue stays, marked closed,
 * until accept() takes it (sock_info.closed_ns); if its listener closes
 * first, until its memory is reused.
 */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 65536); /* resized by the loader (1 when unused) */
	__type(key, __u64);
	__type(value, struct sock_info);
} socks SEC(".maps");

/*
 * Connections the socket table (or the socket's storage) had no room for,
 * by socket address: followed as any other, through the same filters, but
 * each record they would make is counted lost (LOST_TABLE_FULL) instead,
 * so that what is lost is counted in events, exactly. Not preallocated;
 * looked in only once one has been put here (overflowed). A connection
 * this too has no room for is counted as the two events it would most
 * likely have made (its start and its close).
 */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(max_entries, 65536);
	__type(key, __u64);
	__type(value, struct sock_info);
} overflow SEC(".maps");

/* Set at the first connection put in overflow (.bss: written while the
 * programs run). */
__u8 overflowed = 0;

/*
 * Inbound connections followed and not yet accepted: those in an accept
 * queue, and those closed there by their peer, which accept() still hands
 * over. Per CPU, each CPU's share possibly negative: the count is their
 * sum. As the run stops, Go gives them a moment to be accepted and counts
 * those left (tracer.stop). It also counts, for good, a connection its
 * peer reset in the queue of a listener that then closed.
 */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __s64);
} queued SEC(".maps");

/* Adds delta to queued (atomic: see count_in). */
static __always_inline void count_queued(__s64 delta)
{
	__u32 zero = 0;
	__s64 *n = bpf_map_lookup_elem(&queued, &zero);

	if (n)
		__sync_fetch_and_add(n, delta);
}

/* Whether info's connection is reported: an outbound one once it passed
 * the filters (matched), an inbound one once accept() took it. */
static __always_inline bool reported(const struct sock_info *info)
{
	if (info->direction == DIR_IN)
		return info->closed_ns == ACCEPTED_NS;
	return info->matched;
}

/* info, a connection being forgotten or replaced, leaves queued if it
 * was there. */
static __always_inline void unqueue(const struct sock_info *info)
{
	if (info->direction == DIR_IN && !reported(info))
		count_queued(-1);
}

/*
 * The connection sk carries, or NULL. typed: sk is a BTF pointer (a
 * constant at every call site, so that programs with a bare address never
 * contain the storage helper, which their type may not call).
 */
static __always_inline struct sock_info *conn_of(struct sock *sk, bool typed)
{
	__u64 key = (__u64)sk;
	struct sock_info *info;

	if (typed && sk_storage) {
		info = bpf_sk_storage_get(&sk_state, sk, 0, 0);
		if (info && info->conn_id)
			return info;
		if (!inbound_in_table)
			goto overflow;
	}
	info = bpf_map_lookup_elem(&socks, &key);
	if (info)
		return info;
overflow:
	if (!overflowed)
		return NULL;
	return bpf_map_lookup_elem(&overflow, &key);
}

/* Stops remembering sk's connection, info (from conn_of). Storage stays
 * with the socket, marked free: cheaper than deleting it, and the socket
 * is freed soon after its close anyway. */
static __always_inline void untrack(struct sock *sk, struct sock_info *info)
{
	__u64 key = (__u64)sk;

	if (info->where == IN_TABLE)
		bpf_map_delete_elem(&socks, &key);
	else if (info->where == OVERFLOW)
		bpf_map_delete_elem(&overflow, &key);
	else
		info->conn_id = 0;
}

/* A connection with no room where it belongs goes to overflow (true), or,
 * with none there either, is counted lost now as its start and close. */
static __always_inline bool track_overflow(struct sock *sk, struct sock_info *info)
{
	__u64 key = (__u64)sk;

	info->where = OVERFLOW;
	overflowed = 1;
	/* An int: see track(). */
	if ((int)bpf_map_update_elem(&overflow, &key, info, BPF_ANY) == 0)
		return true;
	count_many(&lost_events, LOST_TABLE_FULL, 2);
	return false;
}

/* A connection whose end we missed, found where a new connection or a
 * listener on the same socket (or memory) starts: its close is lost, if
 * it was to be reported. */
static __always_inline void forget_stale(struct sock_info *old)
{
	if (reported(old))
		count_in(&lost_events, LOST_UNSEEN);
	unqueue(old);
}

/*
 * Starts remembering a connection under a fresh conn_id, in overflow if
 * where it belongs has no room; false: not remembered (counted).
 * One already there for this socket is a connection whose end we never saw
 * (a state change the kernel skipped, or a hook that was detached); in the
 * table, also one on a socket since freed whose memory is reused. If that
 * connection was reported, count its close as lost here.
 */
static __always_inline bool track(struct sock *sk, struct sock_info *info, __u8 dir, bool typed)
{
	__u64 key = (__u64)sk;
	struct sock_info *old;
	/* An int, not a long: before Linux 6.4 the upper half of r0 is
	 * undefined after a map update (the map's own int-returning function
	 * is called directly). */
	int err;

	info->conn_id = __sync_fetch_and_add(&next_conn_id, 1) + 1;
	info->start_ns = bpf_ktime_get_ns();
	info->direction = dir;
	info->netns = netns_of(sk);
	/* One in overflow on this memory is stale: whatever happens here
	 * replaces it. */
	if (overflowed) {
		old = bpf_map_lookup_elem(&overflow, &key);
		if (old) {
			forget_stale(old);
			bpf_map_delete_elem(&overflow, &key);
		}
	}
	if (typed && sk_storage && !(dir == DIR_IN && inbound_in_table)) {
		old = bpf_sk_storage_get(&sk_state, sk, 0, 0);
		if (old) {
			if (old->conn_id)
				forget_stale(old);
			*old = *info;
			return true;
		}
		/* No memory for it (the allocation failed, GFP_ATOMIC). */
		if (!bpf_sk_storage_get(&sk_state, sk, info, BPF_SK_STORAGE_GET_F_CREATE))
			return track_overflow(sk, info);
		return true;
	}
	info->where = IN_TABLE;
	/* Inserted first: a stale entry is rare, and one map operation
	 * fewer for every other connection. */
	err = bpf_map_update_elem(&socks, &key, info, BPF_NOEXIST);
	if (err == -EEXIST) {
		old = bpf_map_lookup_elem(&socks, &key);
		if (old) {
			forget_stale(old);
			*old = *info;
			return true;
		}
		err = bpf_map_update_elem(&socks, &key, info, BPF_NOEXIST);
	}
	if (err == -E2BIG)
		return track_overflow(sk, info);
	/* Any other failure (EBUSY: the bucket is locked by the program this
	 * one interrupted on this CPU) costs it, like a skipped hook run. */
	if (err)
		count_in(&lost_events, LOST_UNSEEN);
	return !err;
}

/* Reserves a record of info's connection (new_record) and fills its head,
 * its connection's fields too. */
static __always_inline void *new_conn_record(__u8 kind, __u16 size, const struct tuple *t,
					     const struct sock_info *info)
{
	struct record_head *h;

	if (info->where == OVERFLOW) {
		count_in(&lost_events, LOST_TABLE_FULL);
		return NULL;
	}
	h = new_record(kind, size, IPPROTO_TCP, t, &info->task);
	if (!h)
		return NULL;
	h->conn_id = info->conn_id;
	h->netns = info->netns;
	h->direction = info->direction;
	h->flags = info->flags;
	return h;
}

/* NEW_CONN_RECORD(close, EVENT_CLOSE, t, info) is a struct close_record *. */
#define NEW_CONN_RECORD(name, kind, t, info)                                                                 \
	((struct name##_record *)new_conn_record(kind, sizeof(struct name##_record), t, info))

#endif /* CONNTRACE_TCP_TRACK_BPF_H */
