// SPDX-License-Identifier: GPL-2.0
/*
 * The TCP state machine: sock:inet_sock_set_state, and the resets that
 * explain how connections end (tcp:tcp_receive_reset, tcp:tcp_send_reset).
 *
 * Which task runs a transition decides what we may attribute there:
 *   CLOSE -> SYN_SENT        connect(), in the connecting task: take pid/comm
 *                            (unless tcp_connect() is hooked: tcp_connect.bpf.c).
 *   LISTEN -> SYN_RECV       the new child socket, in softirq: no pid here;
 *                            the accepting process is joined in tcp_accept.bpf.h.
 *   SYN_SENT -> ESTABLISHED  softirq (the SYN-ACK): emit connect + latency.
 *   SYN_SENT -> CLOSE        the handshake failed: connect_fail (tcp_connect.bpf.c
 *                            reports it instead while connect() is running).
 *   * -> LISTEN              listen(), in process context.
 *   * -> CLOSE               any context: emit close from what we remembered
 *                            (tcp_close.bpf.h); a child not yet accepted is
 *                            parked for accept() (tcp_accept.bpf.h).
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_tracing.h>
#include "conntrace.h"
#include "defs.bpf.h"
#include "events.bpf.h"
#include "filters.bpf.h"
#include "task.bpf.h"
#include "tcp_close.bpf.h"
#include "tcp_connect.bpf.h"
#include "tcp_track.bpf.h"
#include "tcp_types.bpf.h"
#include "tuple.bpf.h"
#include "types.bpf.h"

/* Set at the first child socket whose peer's port was not set yet at
 * LISTEN -> SYN_RECV (on_syn_recv): the kernel's order, the same for all. */
__u8 peer_port_late = 0;

/* Set by the loader in the fentry and kprobe modes, where a hook on
 * tcp_connect() takes over attributing outbound connections from the
 * CLOSE -> SYN_SENT transition (tcp_connect.bpf.c). */
const volatile __u8 tcp_connect_hooked = 0;

/* Per CPU: the state change the main state program is handling, or
 * handled last (see below). */
struct handled_change {
	__u64 sk;
	__s32 oldstate;
	__s32 newstate;
	__u64 rescue_runs; /* the rescue's runs here when noted (see below) */
	__u64 runs;        /* the rescue's runs here */
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct handled_change);
} state_handled SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} state_rescued SEC(".maps");

/*
 * The tracepoint's record, as in
 * /sys/kernel/tracing/events/sock/inet_sock_set_state/format (unchanged
 * since Linux 4.16). Declared here rather than taken from vmlinux.h: the
 * CO-RE relocations that vmlinux.h types carry turn field reads into
 * pointer arithmetic on the context, which the verifier rejects.
 */
struct set_state_args {
	__u64 common;
	const void *skaddr;
	int oldstate;
	int newstate;
	__u16 sport;
	__u16 dport;
	__u16 family;
	__u16 protocol;
	__u8 saddr[4];
	__u8 daddr[4];
	__u8 saddr_v6[16];
	__u8 daddr_v6[16];
};

/* Copies to the stack: the verifier forbids pointers into the context. */
static __always_inline void tuple_from_tp(struct tuple *t, const struct set_state_args *ctx)
{
	__builtin_memcpy(&t->s4, ctx->saddr, sizeof(t->s4));
	__builtin_memcpy(&t->d4, ctx->daddr, sizeof(t->d4));
	__builtin_memcpy(t->s6, ctx->saddr_v6, sizeof(t->s6));
	__builtin_memcpy(t->d6, ctx->daddr_v6, sizeof(t->d6));
	t->sport = ctx->sport;
	t->dport = ctx->dport;
	t->family = ctx->family;
	normalize(t);
}

/* tr's addresses, read from its socket where first needed (the tp_btf
 * flavour: a change of a connection nobody follows, most of them under a
 * filter, never reads them); the classic tracepoint's come filled. A
 * socket's family is never 0: 0 is "not read yet". */
static __always_inline const struct tuple *tuple_of(struct transition *tr)
{
	if (!tr->t.family)
		tuple_from_sk(&tr->t, (struct sock *)tr->sk);
	return &tr->t;
}

/* In the functions below, typed says tr->sk is a BTF pointer (the tp_btf
 * flavour): a constant, so that each flavour's program holds only the
 * helpers its type may call (tcp_track.bpf.h). */

/* A port of a network namespace (listened_at's key). */
struct listen_key {
	__u32 netns;
	__u16 port;
	__u16 _pad;
};

/*
 * When each port was last listened on, per network namespace: a refused
 * connect is explained by who listens on the port after it (Go looks
 * them up), and one that started listening after the refusal is not its
 * cause (tracer.listenAfter). listen() is rare: one update each. LRU:
 * an entry evicted only makes a listener look older than it is.
 */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 4096);
	__type(key, struct listen_key);
	__type(value, __u64);
} listened_at SEC(".maps");

static __always_inline void on_listen(struct transition *tr, bool typed)
{
	struct sock *sk = (struct sock *)tr->sk;
	struct sock_info *stale = conn_of(sk, typed);
	struct sock_info info = {};
	struct listen_key k = {};
	__u64 now = bpf_ktime_get_ns();
	struct tuple t = *tuple_of(tr);
	struct record_head *e;

	/* A connection whose end we missed, on a socket (or memory) now a
	 * listener's: it would otherwise stay until the listener closes, and
	 * then report a close that is not its own. */
	if (stale) {
		forget_stale(stale);
		untrack(sk, stale);
	}
	/* Whatever the filters: the refused connect may match by its own
	 * port only. */
	info.netns = netns_of(sk);
	k.netns = info.netns;
	k.port = t.sport;
	bpf_map_update_elem(&listened_at, &k, &now, BPF_ANY);
	if (!want_event(EVENT_LISTEN) || !port_match(t.sport, 0))
		return;
	fill_task(&info.task);
	if (!proc_match(info.task.pid, info.task.comm))
		return;
	if (!family_match(t.family))
		return;
	/* A listener has no peer. */
	t.d4 = 0;
	__builtin_memset(t.d6, 0, sizeof(t.d6));
	t.dport = 0;
	e = new_conn_record(EVENT_LISTEN, sizeof(*e), &t, &info);
	if (e)
		submit(e);
}

/* A child socket of a listener was created for an incoming SYN. */
static __always_inline void on_syn_recv(struct transition *tr, bool typed)
{
	struct sock_info info = {};
	const struct tuple *t;

	if (stopping)
		return;
	t = tuple_of(tr);
	if (!port_match(t->sport, t->dport)) {
		/* Older kernels (Debian's 6.1 and 6.12) give a child socket
		 * its peer's port only after this change: followed until
		 * ESTABLISHED (or its close) knows it. */
		if (t->dport)
			return;
		peer_port_late = 1;
	}
	/* pid/comm/uid and the process filters come with accept(). (A
	 * socket whose memory was a child that closed in the queue and was
	 * never accepted leaves the queued count in track().) */
	if (track((struct sock *)tr->sk, &info, DIR_IN, typed))
		count_queued(1);
}

/* An inbound connection followed from SYN_RECV before its peer's port
 * was known (on_syn_recv), forgotten once the port filter can say no. */
static __always_inline bool forget_unwanted_child(struct transition *tr, struct sock_info *info)
{
	const struct tuple *t;

	if (!filter_ports || !peer_port_late)
		return false;
	t = tuple_of(tr);
	if (port_match(t->sport, t->dport))
		return false;
	unqueue(info);
	untrack((struct sock *)tr->sk, info);
	return true;
}

/* SYN_SENT -> SYN_RECV: a simultaneous open, its local port picked by
 * now: forgotten if the port filter does not want it (change_matters). */
static __always_inline void on_simultaneous_open(struct transition *tr, bool typed)
{
	struct sock *sk = (struct sock *)tr->sk;
	struct sock_info *info = conn_of(sk, typed);
	const struct tuple *t;

	if (!info || info->direction != DIR_OUT || info->matched)
		return;
	t = tuple_of(tr);
	if (!port_match(t->sport, t->dport))
		untrack(sk, info);
}

static __always_inline void on_established(struct transition *tr, bool typed)
{
	struct sock *sk = (struct sock *)tr->sk;
	struct sock_info *info = conn_of(sk, typed);
	struct connect_record *e;
	const struct tuple *t;

	if (!info || reported(info))
		return;
	if (info->direction == DIR_IN) {
		forget_unwanted_child(tr, info);
		return;
	}
	t = tuple_of(tr);
	/* Established after the run began to stop: neither it nor its close
	 * is reported. */
	if (stopping || !port_match(t->sport, t->dport) || !family_match(t->family)) {
		untrack(sk, info);
		return;
	}
	info->matched = 1;
	if (!want_event(EVENT_CONNECT))
		return;
	e = NEW_CONN_RECORD(connect, EVENT_CONNECT, t, info);
	if (!e)
		return;
	e->latency_ns = e->head.ts_ns - info->start_ns;
	submit(e);
}

/* The handshake of an outbound connection failed: RST (ECONNREFUSED), no
 * answer (ETIMEDOUT), ICMP (EHOSTUNREACH...), or the application gave up
 * (sk_err 0: aborted). */
static __always_inline void on_handshake_failed(struct transition *tr, struct sock_info *info)
{
	struct sock *sk = (struct sock *)tr->sk; /* a local: CO-RE must not see tr */
	int err = BPF_CORE_READ(sk, sk_err);
	const struct tuple *t = tuple_of(tr);
	struct pending_call *call = bpf_map_lookup_elem(&connect_calls, &info->call_key);
	__u64 *restarting;
	__s32 *soft;

	/* No error left on the socket: the one SO_ERROR handed out, if any
	 * (a soft error), else the application gave up (aborted). */
	soft = bpf_map_lookup_elem(&so_errors, &tr->sk);
	if (soft) {
		if (!err)
			err = *soft;
		bpf_map_delete_elem(&so_errors, &tr->sk);
	}

	/* The SYNs sent again before it gave up (still counted: the socket
	 * is purged after this change). */
	info->retransmits = BPF_CORE_READ((struct tcp_sock *)sk, total_retrans);

	if (call && call->sk == tr->sk) {
		/* connect() is still running and will return the error:
		 * sys_exit_connect reports it, once; as a failure of a
		 * connection it does not know of, where neither the table
		 * nor overflow had room for this one. */
		if (info->where == OVERFLOW) {
			untrack(sk, info);
			return;
		}
		struct connect_failure f = {
			.info = *info, .sk = tr->sk, .error = err, .s4 = t->s4, .sport = t->sport};

		__builtin_memcpy(f.s6, t->s6, sizeof(f.s6));
		/* An int: before Linux 6.4 the upper half of r0 is undefined
		 * after a map update (tcp_track.bpf.h). */
		if ((int)bpf_map_update_elem(&connect_failures, &info->call_key, &f, BPF_ANY) == 0) {
			untrack(sk, info);
			return;
		}
	}
	if (port_match(t->sport, t->dport) && family_match(t->family)) {
		emit_connect_fail(info, t, err);
		/* A signal interrupted the call, which the kernel restarts:
		 * the restarted call returns this failure again. */
		restarting = bpf_map_lookup_elem(&restarting_calls, &info->call_key);
		if (restarting && *restarting == tr->sk) {
			mark_restart_reported(tr->sk);
			bpf_map_delete_elem(&restarting_calls, &info->call_key);
		}
	}
	untrack(sk, info);
}

static __always_inline void on_close(struct transition *tr, bool typed)
{
	struct sock *sk = (struct sock *)tr->sk;
	struct sock_info *info = conn_of(sk, typed);

	if (!info)
		return;
	if (tr->oldstate == TCP_SYN_SENT && info->direction == DIR_OUT) {
		on_handshake_failed(tr, info);
		return;
	}
	if (info->direction == DIR_IN && !reported(info)) {
		/* Not accepted yet: it closed in the accept queue. */
		struct conn_key k;
		__u8 one = 1;

		if (forget_unwanted_child(tr, info))
			return;

		if (info->reset_in) {
			/* Reset by the peer: accept() still hands it over, and it
			 * stays counted as queued, and followed where it is, until
			 * then (tcp_accept.bpf.h); unless accept() took it on
			 * another CPU meanwhile: then its close is reported here. */
			info->closed_from = tr->oldstate;
			if (__sync_val_compare_and_swap(&info->closed_ns, 0, bpf_ktime_get_ns()) !=
			    ACCEPTED_NS)
				return;
		} else {
			/* Reset by this side (its listener closed): it will not
			 * be accepted, and a client on this host is reset next;
			 * say by whom. */
			count_queued(-1);
			conn_key_of(&k, tuple_of(tr), true);
			bpf_map_update_elem(&never_accepted, &k, &one, BPF_ANY);
			untrack(sk, info);
			return;
		}
	}
	if (reported(info) && want_event(EVENT_CLOSE)) {
		/* Matched: the family filter passed too, at connect or accept. */
		tuple_of(tr);
		emit_close(tr, info, 0);
	}
	untrack(sk, info);
}

static __always_inline bool has_socket(const struct transition *tr)
{
	struct sock *sk = (struct sock *)tr->sk; /* a local: CO-RE must not see tr */

	return BPF_CORE_READ(sk, sk_socket);
}

static __always_inline void on_transition(struct transition *tr, bool typed)
{
	switch (tr->newstate) {
	case TCP_LISTEN:
		on_listen(tr, typed);
		break;
	case TCP_SYN_SENT:
		if (!tcp_connect_hooked)
			on_syn_sent((struct sock *)tr->sk, typed, false);
		break;
	case TCP_SYN_RECV:
		/* SYN_SENT -> SYN_RECV is a simultaneous open of an outbound
		 * socket we already track. */
		if (tr->oldstate != TCP_SYN_SENT)
			on_syn_recv(tr, typed);
		else if (filter_ports)
			on_simultaneous_open(tr, typed);
		break;
	case TCP_ESTABLISHED:
		/* A child socket (no struct socket until accept()) has
		 * nothing to do here, but one the port filter may not want
		 * (forget_unwanted_child); an outbound one has a socket, a
		 * simultaneous open's SYN_RECV too. */
		if (tr->oldstate == TCP_SYN_RECV && !(filter_ports && peer_port_late) && !has_socket(tr))
			break;
		on_established(tr, typed);
		break;
	case TCP_CLOSE:
		on_close(tr, typed);
		break;
	}
}

/*
 * With a port filter, whether a change of a socket with these ports can
 * matter, decided before any map is touched. A connection followed
 * matched the filter when it started (inbound: on_syn_recv; outbound:
 * on_syn_sent, where its local port was known), or is still in the state
 * it started in before a port was known: an outbound one whose local port
 * was yet to be picked (SYN_SENT), an inbound one whose peer's port was
 * yet to be set (SYN_RECV, older kernels): leaving it, on_established,
 * on_simultaneous_open or the close forget it if the filter does not want
 * it. listen() and on_syn_sent decide on their own.
 */
static __always_inline bool change_matters(struct sock *sk, int oldstate, int newstate, __u16 sport,
					   __u16 dport)
{
	if (!filter_ports || newstate == TCP_LISTEN || newstate == TCP_SYN_SENT || port_match(sport, dport))
		return true;
	/* A child whose peer's port is not set yet (older kernels), and
	 * then its change from SYN_RECV. */
	if ((newstate == TCP_SYN_RECV && !dport) || (oldstate == TCP_SYN_RECV && peer_port_late))
		return true;
	return oldstate == TCP_SYN_SENT && !tcp_connect_hooked && ephemeral_may_match(sk);
}

/*
 * Two flavours of the same tracepoints; the loader attaches one. tp_btf
 * (raw arguments, BTF-typed) where the kernel has its own BTF: its
 * programs guard against recursion each on its own and count what they
 * skip. A classic tracepoint program is skipped whenever any other
 * tracepoint or kprobe program is running on that CPU (e.g. a softirq's
 * state change interrupting a syscall hook), and kernels before 6.7 do not
 * count those skips: events would vanish silently. The classic flavour
 * stays for kernels without BTF (--btf).
 */
static __always_inline void on_set_state_btf(struct sock *sk, int oldstate, int newstate)
{
	struct transition tr = {.sk = (__u64)sk, .oldstate = oldstate, .newstate = newstate};

	/* The states on_transition has nothing to do in (an orderly close's
	 * FIN_WAIT1, FIN_WAIT2, CLOSE_WAIT, LAST_ACK, CLOSING, TIME_WAIT:
	 * half of its changes) leave before the socket is read; a direct
	 * load (sk is the tracepoint's BTF pointer) where a helper call
	 * would cost more. */
	if (newstate != TCP_LISTEN && newstate != TCP_SYN_SENT && newstate != TCP_SYN_RECV &&
	    newstate != TCP_ESTABLISHED && newstate != TCP_CLOSE)
		return;
	if (sk->sk_protocol != IPPROTO_TCP)
		return;
	if (!change_matters(sk, oldstate, newstate, local_port(sk), bpf_ntohs(sk->__sk_common.skc_dport)))
		return;
	on_transition(&tr, true);
}

/*
 * A program that is already running on this CPU is skipped when its hook
 * fires again there: a state change in process context (connect, close)
 * interrupted by a softirq's state change (the peer's packet on loopback).
 * The kernel counts the skip, but the event is gone. So the tracepoint has
 * two programs. The main one notes, per CPU, the change it is handling, at
 * its start and again at its end (a run nested inside it may have noted
 * its own). The rescue one, attached after it, runs for the same change:
 * if the note is not this change, the main program did not run for it
 * (skipped, or interrupted before its first or after its last
 * instruction), and the rescue handles it. The rescue counts what it
 * handles; lost are the main program's skips less the rescues. A change
 * the rescue skips too (both programs interrupted at once) stays counted.
 */
static __always_inline void note_handled(struct handled_change *h, struct sock *sk, int oldstate,
					 int newstate)
{
	h->sk = (__u64)sk;
	h->oldstate = oldstate;
	h->newstate = newstate;
	h->rescue_runs = h->runs;
}

SEC("tp_btf/inet_sock_set_state")
int BPF_PROG(handle_set_state_btf, struct sock *sk, int oldstate, int newstate)
{
	__u32 zero = 0;
	struct handled_change *h = bpf_map_lookup_elem(&state_handled, &zero);

	if (!h)
		return 0;
	note_handled(h, sk, oldstate, newstate);
	on_set_state_btf(sk, oldstate, newstate);
	note_handled(h, sk, oldstate, newstate);
	return 0;
}

SEC("tp_btf/inet_sock_set_state")
int BPF_PROG(handle_set_state_btf_rescue, struct sock *sk, int oldstate, int newstate)
{
	__u32 zero = 0;
	struct handled_change *h = bpf_map_lookup_elem(&state_handled, &zero);
	__u64 *rescued = bpf_map_lookup_elem(&state_rescued, &zero);

	if (!h || !rescued)
		return 0;
	/* Noted since the rescue last ran here: the same invocation. (A note
	 * of the same change from before, of an earlier connection on the
	 * same socket memory, would be older than the last rescue run.) */
	if (h->rescue_runs == h->runs++ && h->sk == (__u64)sk && h->oldstate == oldstate &&
	    h->newstate == newstate)
		return 0;
	__sync_fetch_and_add(rescued, 1);
	on_set_state_btf(sk, oldstate, newstate);
	return 0;
}

SEC("tracepoint/sock/inet_sock_set_state")
int handle_set_state(struct set_state_args *ctx)
{
	struct transition tr = {
		.sk = (__u64)ctx->skaddr,
		.oldstate = ctx->oldstate,
		.newstate = ctx->newstate,
	};

	if (ctx->protocol != IPPROTO_TCP)
		return 0;
	if (!change_matters((struct sock *)ctx->skaddr, ctx->oldstate, ctx->newstate, ctx->sport, ctx->dport))
		return 0;
	tuple_from_tp(&tr.t, ctx);
	on_transition(&tr, false);
	return 0;
}

/* tcp:tcp_receive_reset and tcp:tcp_send_reset records: the socket is the
 * first pointer of the former and the second of the latter, in every kernel
 * since they were added (4.15/4.16). */
struct receive_reset_args {
	__u64 common;
	const void *skaddr;
};

struct send_reset_args {
	__u64 common;
	const void *skbaddr;
	const void *skaddr;
};

static __always_inline void mark_reset(struct sock *sk, bool in, bool typed)
{
	struct sock_info *info;

	if (!sk) /* a reset for a packet that matched no socket */
		return;
	/* Only a connection the port filter wants is reported, whatever
	 * its state: the ports first, then the table. */
	if (filter_ports && !port_match(local_port(sk), remote_port(sk)))
		return;
	info = conn_of(sk, typed);
	if (!info)
		return;
	if (in)
		info->reset_in = 1;
	else
		info->reset_out = 1;
}

SEC("tracepoint/tcp/tcp_receive_reset")
int handle_receive_reset(struct receive_reset_args *ctx)
{
	mark_reset((struct sock *)ctx->skaddr, true, false);
	return 0;
}

SEC("tracepoint/tcp/tcp_send_reset")
int handle_send_reset(struct send_reset_args *ctx)
{
	mark_reset((struct sock *)ctx->skaddr, false, false);
	return 0;
}

/* The socket is the first argument of both, in every kernel (6.10 added a
 * reason after the skb of tcp_send_reset). */
SEC("tp_btf/tcp_receive_reset")
int BPF_PROG(handle_receive_reset_btf, struct sock *sk)
{
	mark_reset(sk, true, true);
	return 0;
}

SEC("tp_btf/tcp_send_reset")
int BPF_PROG(handle_send_reset_btf, struct sock *sk)
{
	mark_reset(sk, false, true);
	return 0;
}
