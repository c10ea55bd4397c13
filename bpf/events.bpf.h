/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The ring buffer and what could not go into it: every record Go reads is
 * made here, and every one that is lost is counted here.
 */
#ifndef CONNTRACE_EVENTS_BPF_H
#define CONNTRACE_EVENTS_BPF_H

#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include "conntrace.h"
#include "defs.bpf.h"
#include "filters.bpf.h"
#include "types.bpf.h"

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 1 << 22); /* resized by the loader */
} events SEC(".maps");

/* Wake the reader when the ring holds this many bytes (set by the loader
 * to a share of its size); below it the reader is not woken, and polls
 * every few milliseconds instead (tracer.pollEvery). A wake-up per event
 * would cost the reader a context switch per event. */
const volatile __u64 wakeup_bytes = 1 << 18;

/* What was lost, per CPU, by enum lost_cause: never lose silently. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 3);
	__type(key, __u32);
	__type(value, __u64);
} lost_events SEC(".maps");

/* Adds one to entry key of a per-CPU array of counters. Atomic even though
 * per-CPU: a program in softirq (the state tracepoint) can interrupt one in
 * process context (the syscall tracepoints) on the same CPU, and a plain
 * increment would then lose counts. */
static __always_inline void count_in(void *counters, __u32 key)
{
	__u64 *n = bpf_map_lookup_elem(counters, &key);

	if (n)
		__sync_fetch_and_add(n, 1);
}

static __always_inline struct event *reserve_event(void)
{
	struct event *e = bpf_ringbuf_reserve(&events, sizeof(*e), 0);

	if (!e)
		count_in(&lost_events, LOST_RING_FULL);
	return e;
}

/* Sets every numeric field of a reserved record to zero: ring memory is
 * not cleared between records. */
static __always_inline void clear_event(struct event *e)
{
	e->conn_id = e->latency_ns = e->duration_ns = e->tx_bytes = e->rx_bytes = 0;
	e->netns = 0;
	e->retransmits = e->srtt_us = e->drop_reason = e->drop_ifindex = 0;
	e->drops = 0;
	e->unread = 0;
	e->icmp_family = e->icmp_watched = 0;
	e->error = 0;
	e->direction = DIR_NONE;
	e->reason = REASON_NONE;
	e->flags = 0;
	e->proto = IPPROTO_TCP;
}

/* Copies what the event reports about the process and connection. */
static __always_inline void fill_from_info(struct event *e, const struct sock_info *info)
{
	e->conn_id = info->conn_id;
	e->netns = info->netns;
	e->flags = info->flags;
	e->pid = info->pid;
	e->uid = info->uid;
	e->cgroup = info->cgroup;
	e->direction = info->direction;
	__builtin_memcpy(e->comm, info->comm, sizeof(e->comm));
	__builtin_memcpy(e->thread, info->thread, sizeof(e->thread));
}

static __always_inline void put_tuple(struct event *e, const struct tuple *t)
{
	e->family = t->family;
	e->sport = t->sport;
	e->dport = t->dport;
	if (t->family == AF_INET) {
		__builtin_memset(e->saddr, 0, sizeof(e->saddr));
		__builtin_memset(e->daddr, 0, sizeof(e->daddr));
		__builtin_memcpy(e->saddr, &t->s4, 4);
		__builtin_memcpy(e->daddr, &t->d4, 4);
	} else {
		__builtin_memcpy(e->saddr, t->s6, 16);
		__builtin_memcpy(e->daddr, t->d6, 16);
	}
}

/* Reserves a record and fills what every event carries: the tuple, the
 * process and connection from info, the type and the time. NULL (counted as
 * lost) when the ring is full; otherwise the caller adds its fields and
 * calls submit(). */
static __always_inline struct event *new_event(__u8 type, const struct tuple *t, const struct sock_info *info)
{
	struct event *e = reserve_event();

	if (!e)
		return NULL;
	clear_event(e);
	put_tuple(e, t);
	fill_from_info(e, info);
	e->type = type;
	e->ts_ns = bpf_ktime_get_ns();
	return e;
}

/* Hands a record to the reader, waking it only when the ring fills up. */
static __always_inline void submit(struct event *e)
{
	__u64 flags = BPF_RB_NO_WAKEUP;

	if (bpf_ringbuf_query(&events, BPF_RB_AVAIL_DATA) >= wakeup_bytes)
		flags = BPF_RB_FORCE_WAKEUP;
	bpf_ringbuf_submit(e, flags);
}

#endif /* CONNTRACE_EVENTS_BPF_H */
