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
	__uint(max_entries, 4);
	__type(key, __u32);
	__type(value, __u64);
} lost_events SEC(".maps");

/* Source of conn_id, for every protocol; 0 is never handed out. */
__u64 next_conn_id = 0;

/* Adds delta (count_in: one) to entry key of a per-CPU array of
 * counters. Atomic even though per-CPU: a program in softirq (the state
 * tracepoint) can interrupt one in process context (the syscall
 * tracepoints) on the same CPU, and a plain increment would then lose
 * counts. */
static __always_inline void count_many(void *counters, __u32 key, __u64 delta)
{
	__u64 *n = bpf_map_lookup_elem(counters, &key);

	if (n && delta)
		__sync_fetch_and_add(n, delta);
}

static __always_inline void count_in(void *counters, __u32 key)
{
	count_many(counters, key, 1);
}

/* Fills head h of a record of size bytes: the kind, size, protocol,
 * time, the tuple and who made it. Its connection's fields (conn_id,
 * netns, direction, flags) are zero. */
static __always_inline void fill_head(struct record_head *h, __u8 kind, __u16 size, __u8 proto,
				      const struct tuple *t, const struct task_info *task)
{
	h->ts_ns = bpf_ktime_get_ns();
	h->conn_id = 0;
	h->cgroup = task->cgroup;
	h->pid = task->pid;
	h->uid = task->uid;
	h->netns = 0;
	h->size = size;
	h->kind = kind;
	h->family = t->family;
	if (t->family == AF_INET) {
		__builtin_memset(h->saddr, 0, sizeof(h->saddr));
		__builtin_memset(h->daddr, 0, sizeof(h->daddr));
		__builtin_memcpy(h->saddr, &t->s4, 4);
		__builtin_memcpy(h->daddr, &t->d4, 4);
	} else {
		__builtin_memcpy(h->saddr, t->s6, 16);
		__builtin_memcpy(h->daddr, t->d6, 16);
	}
	h->sport = t->sport;
	h->dport = t->dport;
	h->direction = DIR_NONE;
	h->proto = proto;
	h->flags = 0;
	__builtin_memcpy(h->comm, task->comm, sizeof(h->comm));
	__builtin_memcpy(h->thread, task->thread, sizeof(h->thread));
}

/* Reserves a record of size bytes (a constant) and fills its head
 * (fill_head). The caller sets the connection's fields it has, then every
 * field of its kind's body (ring memory is not cleared between records),
 * and calls submit(). NULL, counted as lost, when the ring is full. */
static __always_inline void *new_record(__u8 kind, __u16 size, __u8 proto, const struct tuple *t,
					const struct task_info *task)
{
	struct record_head *h = bpf_ringbuf_reserve(&events, size, 0);

	if (!h) {
		count_in(&lost_events, LOST_RING_FULL);
		return NULL;
	}
	fill_head(h, kind, size, proto, t, task);
	return h;
}

/* The reader is woken only when the ring fills up. */
static __always_inline __u64 wakeup_flag(void)
{
	if (bpf_ringbuf_query(&events, BPF_RB_AVAIL_DATA) >= wakeup_bytes)
		return BPF_RB_FORCE_WAKEUP;
	return BPF_RB_NO_WAKEUP;
}

/* Copies a record of variable size, made elsewhere (a per-CPU buffer),
 * into the ring: it takes only what it uses there, where a reserved one
 * takes the most it could. Counted as lost when the ring is full. */
static __always_inline void output_record(void *r, __u64 size)
{
	if (bpf_ringbuf_output(&events, r, size, wakeup_flag()))
		count_in(&lost_events, LOST_RING_FULL);
}

/* Hands a record to the reader, waking it only when the ring fills up. */
static __always_inline void submit(void *r)
{
	bpf_ringbuf_submit(r, wakeup_flag());
}

#endif /* CONNTRACE_EVENTS_BPF_H */
