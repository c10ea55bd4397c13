/* SPDX-License-Identifier: GPL-2.0 */
/* Maps, filters and helpers shared by all hook groups. */
#ifndef CONNTRACE_COMMON_BPF_H
#define CONNTRACE_COMMON_BPF_H

#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_endian.h>
#include "conntrace.h"

#define AF_INET 2
#define AF_INET6 10
#define IPPROTO_TCP 6
#define IPPROTO_UDP 17
#define SOCK_STREAM 1
#define SOCK_DGRAM 2

#define EPERM 1
#define EINTR 4
#define E2BIG 7
#define EAGAIN 11
#define EACCES 13
#define EPIPE 32
#define EADDRINUSE 98
#define EADDRNOTAVAIL 99
#define ECONNRESET 104
#define EISCONN 106
#define ECONNREFUSED 111
#define EALREADY 114
#define EINPROGRESS 115
/* The kernel's own, never seen by the application: a signal interrupted
 * the call and it is restarted (or the application gets EINTR). */
#define ERESTARTSYS 512
#define ERESTARTNOINTR 513
#define ERESTARTNOHAND 514
#define ERESTART_RESTARTBLOCK 516

/* Filters, set by the loader before the programs are verified, so a
 * disabled filter costs nothing: the verifier prunes the dead branch. */
const volatile __u8 filter_ports = 0;  /* port_filter holds the ports */
const volatile __u8 filter_pids = 0;   /* pid_filter holds the pids */
const volatile __u8 filter_family = 0; /* 0: any, AF_INET or AF_INET6 */
const volatile __u8 filter_comms = 0; /* comm_filter holds the names */
const volatile __u32 event_mask = 0xffffffff; /* bit (1 << enum event_type) */

/* Set by the loader in the fentry and kprobe modes, where a hook on
 * tcp_connect() takes over attributing outbound connections from the
 * CLOSE -> SYN_SENT transition (hooks.bpf.c). */
const volatile __u8 tcp_connect_hooked = 0;

/* Source of conn_id; 0 is never handed out. */
__u64 next_conn_id = 0;

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 1 << 22); /* resized by the loader */
} events SEC(".maps");

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

/* What was lost, per CPU, by enum lost_cause: never lose silently. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 3);
	__type(key, __u32);
	__type(value, __u64);
} lost_events SEC(".maps");

/* Per CPU: the main state program is running (set) and the state changes
 * its rescue program handled while it was interrupted (see state.bpf.c). */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} state_busy SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} state_rescued SEC(".maps");

/*
 * Live connections by socket address. A plain hash, not an LRU: an LRU
 * evicts without telling, and the evicted connection's close would vanish
 * uncounted. Here a connection that finds the table full is not tracked,
 * and counted (LOST_TABLE_FULL) where that happens. An entry whose close we
 * missed (counted as skipped) is replaced when its socket's memory starts
 * a new connection (track() in state.bpf.c).
 */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 65536); /* resized by the loader */
	__type(key, __u64);
	__type(value, struct sock_info);
} socks SEC(".maps");

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

/* bind() and connect() calls in flight, by thread (pid_tgid). Entries live
 * for one syscall: sys_exit always removes them. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 16384);
	__type(key, __u64);
	__type(value, struct pending_call);
} bind_calls SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 16384);
	__type(key, __u64);
	__type(value, struct pending_call);
} connect_calls SEC(".maps");

/* TCP sockets bound to port 0 (a port reserved) and not yet connected, by
 * socket address. LRU: most are closed without connecting, unseen. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 16384);
	__type(key, __u64);
	__type(value, __u8);
} bound_port0 SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1024);
	__type(key, __u16);
	__type(value, __u8);
} port_filter SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1024);
	__type(key, __u32);
	__type(value, __u8);
} pid_filter SEC(".maps");

/* Process names, NUL-padded to COMM_LEN. */
struct comm_key {
	char name[COMM_LEN];
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 64);
	__type(key, struct comm_key);
	__type(value, __u8);
} comm_filter SEC(".maps");

static __always_inline bool want_event(enum event_type t)
{
	return event_mask & (1u << t);
}

static __always_inline bool port_match(__u16 sport, __u16 dport)
{
	if (!filter_ports)
		return true;
	return bpf_map_lookup_elem(&port_filter, &sport) ||
	       bpf_map_lookup_elem(&port_filter, &dport);
}

static __always_inline bool family_match(__u16 family)
{
	return !filter_family || filter_family == family;
}

/* The pid and comm filters, applied to a process: its tgid and its name
 * (NUL-padded, as process_name() leaves it). */
static __always_inline bool proc_match(__u32 pid, const char *comm)
{
	if (filter_pids && !bpf_map_lookup_elem(&pid_filter, &pid))
		return false;
	if (filter_comms && !bpf_map_lookup_elem(&comm_filter, comm))
		return false;
	return true;
}

/* The current process's name: its thread-group leader's comm, which is
 * what ps, ss -p and /proc/PID/comm show (a thread may rename itself with
 * prctl(PR_SET_NAME); bpf_get_current_comm() is the thread's). NUL-padded,
 * as the comm filter's keys are. Only in process context: in softirq the
 * current task is unrelated. */
static __always_inline void process_name(char comm[COMM_LEN])
{
	struct task_struct *task = (struct task_struct *)bpf_get_current_task();

	__builtin_memset(comm, 0, COMM_LEN);
	BPF_CORE_READ_STR_INTO((char(*)[COMM_LEN])comm, task, group_leader, comm);
}

static __always_inline void fill_task(struct sock_info *info)
{
	info->pid = bpf_get_current_pid_tgid() >> 32;
	info->uid = (__u32)bpf_get_current_uid_gid();
	process_name(info->comm);
	bpf_get_current_comm(&info->thread, sizeof(info->thread));
}

static __always_inline struct event *reserve_event(void)
{
	struct event *e = bpf_ringbuf_reserve(&events, sizeof(*e), 0);

	if (!e)
		count_in(&lost_events, LOST_RING_FULL);
	return e;
}

/* syscalls:sys_enter_* / sys_exit_* records: a stable ABI (see the
 * tracepoints' format files). */
struct syscall_enter_args {
	__u64 common;
	__s32 nr;
	__u32 _pad;
	__u64 args[6];
};

struct syscall_exit_args {
	__u64 common;
	__s32 nr;
	__u32 _pad;
	long ret;
};

/* fd -> struct socket in the current task: task -> files -> fdtable ->
 * file -> private_data. Callers know the fd names a socket (accept's
 * result) or check the socket's type. */
static __always_inline struct socket *socket_from_fd(long fd)
{
	struct task_struct *task = (struct task_struct *)bpf_get_current_task();
	struct fdtable *fdt = BPF_CORE_READ(task, files, fdt);
	struct file **fds, *file = NULL;

	if (!fdt || fd < 0 || fd >= BPF_CORE_READ(fdt, max_fds))
		return NULL;
	fds = BPF_CORE_READ(fdt, fd);
	if (bpf_core_read(&file, sizeof(file), &fds[fd]) || !file)
		return NULL;
	return BPF_CORE_READ(file, private_data);
}

static __always_inline __u32 netns_of(struct sock *sk)
{
	return BPF_CORE_READ(sk, __sk_common.skc_net.net, ns.inum);
}

/* Reads an AF_INET or AF_INET6 sockaddr from user memory; other families
 * (AF_UNIX, AF_UNSPEC) return -1. */
static __always_inline int read_sockaddr(struct pending_call *c, const void *uaddr, __u64 len)
{
	struct sockaddr_in6 sin6; /* 24 bytes read: an RFC 2133 sockaddr_in6 may be that short */
	struct sockaddr_in sin;
	__u16 family;

	if (!uaddr || bpf_probe_read_user(&family, sizeof(family), uaddr))
		return -1;
	if (family == AF_INET && len >= sizeof(sin)) {
		if (bpf_probe_read_user(&sin, sizeof(sin), uaddr))
			return -1;
		c->addr[0] = sin.sin_addr.s_addr;
		c->port = bpf_ntohs(sin.sin_port);
	} else if (family == AF_INET6 && len >= 24) {
		if (bpf_probe_read_user(&sin6, 24, uaddr))
			return -1;
		__builtin_memcpy(c->addr, &sin6.sin6_addr, 16);
		c->port = bpf_ntohs(sin6.sin6_port);
	} else {
		return -1;
	}
	c->family = family;
	return 0;
}

/* Sets every numeric field of a reserved record to zero: ring memory is
 * not cleared between records. */
static __always_inline void clear_event(struct event *e)
{
	e->conn_id = e->latency_ns = e->duration_ns = e->tx_bytes = e->rx_bytes = 0;
	e->netns = 0;
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
	e->direction = info->direction;
	__builtin_memcpy(e->comm, info->comm, sizeof(e->comm));
	__builtin_memcpy(e->thread, info->thread, sizeof(e->thread));
}

/* A connection's addresses and ports, read before an event is reserved so
 * that the family filter can run first. */
struct tuple {
	__u32 s4, d4;       /* AF_INET, network byte order */
	__u32 s6[4], d6[4]; /* AF_INET6 */
	__u16 sport, dport; /* host byte order */
	__u16 family;
};

/* One state change, from either flavour of the tracepoint. */
struct transition {
	__u64 sk;
	int oldstate;
	int newstate;
	struct tuple t;
};

/*
 * An inbound connection that closed while it waited in the accept queue:
 * the peer reset it (it gave up waiting, or its kernel ran out of orphan
 * sockets). accept() still hands it over; then its accept and its close
 * are both reported (accept.bpf.c). Kept out of socks, which holds live
 * connections. LRU: one never accepted (its listener closed) ages out.
 */
struct queued_close {
	struct sock_info info;
	struct transition tr;
	__u64 close_ns;
};

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 4096);
	__type(key, __u64);
	__type(value, struct queued_close);
} closed_in_queue SEC(".maps");

static __always_inline bool is_v4_mapped(const __u32 *a)
{
	return a[0] == 0 && a[1] == 0 && a[2] == bpf_htonl(0x0000ffff);
}

static __always_inline bool is_unspecified(const __u32 *a)
{
	return (a[0] | a[1] | a[2] | a[3]) == 0;
}

/* A dual-stack socket talking IPv4 carries v4-mapped addresses; users know
 * that connection as IPv4, so report it as one. A listener on :: stays v6. */
static __always_inline void normalize(struct tuple *t)
{
	if (t->family == AF_INET6 && is_v4_mapped(t->d6) &&
	    (is_v4_mapped(t->s6) || is_unspecified(t->s6))) {
		t->family = AF_INET;
		t->s4 = t->s6[3];
		t->d4 = t->d6[3];
	}
}

/* Reads the 4-tuple straight from a struct sock (CO-RE). The local port
 * from inet_sport, as sock:inet_sock_set_state does: skc_num is already
 * zero when the CLOSE transition is traced (inet_put_port ran). */
static __always_inline void tuple_from_sk(struct tuple *t, struct sock *sk)
{
	struct inet_sock *inet = (struct inet_sock *)sk;

	t->family = BPF_CORE_READ(sk, __sk_common.skc_family);
	t->sport = bpf_ntohs(BPF_CORE_READ(inet, inet_sport));
	t->dport = bpf_ntohs(BPF_CORE_READ(sk, __sk_common.skc_dport));
	if (t->family == AF_INET6) {
		BPF_CORE_READ_INTO(&t->s6, sk, __sk_common.skc_v6_rcv_saddr.in6_u.u6_addr32);
		BPF_CORE_READ_INTO(&t->d6, sk, __sk_common.skc_v6_daddr.in6_u.u6_addr32);
	} else {
		t->s4 = BPF_CORE_READ(sk, __sk_common.skc_rcv_saddr);
		t->d4 = BPF_CORE_READ(sk, __sk_common.skc_daddr);
	}
	normalize(t);
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
 * submits. */
static __always_inline struct event *new_event(__u8 type, const struct tuple *t,
					       const struct sock_info *info)
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

/* connect_fail, from the state machine or from the connect() syscall. */
static __always_inline void emit_connect_fail(const struct sock_info *info, const struct tuple *t, int err)
{
	struct event *e;

	if (!want_event(EVENT_CONNECT_FAIL))
		return;
	e = new_event(EVENT_CONNECT_FAIL, t, info);
	if (!e)
		return;
	e->latency_ns = e->ts_ns - info->start_ns;
	e->error = err;
	bpf_ringbuf_submit(e, 0);
}

/* sys_enter of bind() and connect(): the sockaddr, if AF_INET/AF_INET6, and
 * the socket, if the current process passes the pid/comm filters. */
static __always_inline struct socket *begin_call(struct syscall_enter_args *ctx, struct pending_call *call)
{
	char comm[COMM_LEN];

	if (read_sockaddr(call, (const void *)ctx->args[1], ctx->args[2]))
		return NULL;
	process_name(comm);
	if (!proc_match(bpf_get_current_pid_tgid() >> 32, comm))
		return NULL;
	call->ts_ns = bpf_ktime_get_ns();
	return socket_from_fd(ctx->args[0]);
}

#endif /* CONNTRACE_COMMON_BPF_H */
