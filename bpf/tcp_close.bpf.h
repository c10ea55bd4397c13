/* SPDX-License-Identifier: GPL-2.0 */
/* A connection's close event: how long it lived, what it carried, why it
 * ended. From the state machine, or from accept() for one that closed in
 * the accept queue. */
#ifndef CONNTRACE_TCP_CLOSE_BPF_H
#define CONNTRACE_TCP_CLOSE_BPF_H

#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>
#include "conntrace.h"
#include "defs.bpf.h"
#include "tcp_track.bpf.h"
#include "tcp_types.bpf.h"
#include "types.bpf.h"

/*
 * Payload bytes of a closing connection. tcp_sock counts sequence space, in
 * which SYN and FIN take one byte each; users count what they wrote and read.
 *  - bytes_acked includes our SYN when we connected (the SYN-ACK acks it; an
 *    accepted child starts with snd_una past its SYN-ACK), and our FIN once
 *    it was acked: closing from FIN_WAIT2, or from LAST_ACK/CLOSING with
 *    everything acked.
 *  - bytes_received includes the peer's FIN; tcp_fin() marks it SOCK_DONE.
 */
static __always_inline void set_payload_bytes(struct close_record *e, struct sock *sk, int oldstate)
{
	struct tcp_sock *tp = (struct tcp_sock *)sk;
	__u64 acked = BPF_CORE_READ(tp, bytes_acked);
	__u64 rcvd = BPF_CORE_READ(tp, bytes_received);

	if (e->head.direction == DIR_OUT && acked)
		acked--;
	if ((oldstate == TCP_FIN_WAIT2 || oldstate == TCP_LAST_ACK || oldstate == TCP_CLOSING) &&
	    BPF_CORE_READ(tp, snd_una) == BPF_CORE_READ(tp, write_seq) && acked)
		acked--;
	if ((BPF_CORE_READ(sk, __sk_common.skc_flags) & (1UL << SOCK_DONE)) && rcvd)
		rcvd--;
	e->tx_bytes = acked;
	e->rx_bytes = rcvd;
	e->tx_packets = 0; /* UDP's */
	e->rx_packets = 0;
}

/* How the path was: segments sent again, and the smoothed round-trip time
 * (kept in tcp_sock times 8). */
static __always_inline void set_health(struct close_record *e, struct sock *sk)
{
	struct tcp_sock *tp = (struct tcp_sock *)sk;

	e->retransmits = BPF_CORE_READ(tp, total_retrans);
	e->srtt_us = BPF_CORE_READ(tp, srtt_us) >> 3;
}

/* The length of a kernel tick in ns, set by the loader from the kernel's
 * HZ (0: unknown). TCP keeps its receive times in ticks (jiffies). */
const volatile __u64 jiffy_ns = 0;

/*
 * What explains a close that was not orderly. How long the peer had been
 * silent: the classic reset is a load balancer's or NAT's idle timeout,
 * which answers the first packet after a long silence with RST. The last
 * packet from the peer is its last ACK (rcv_tstamp) or data (lrcvtime);
 * the RST itself updates neither. And, for a reset we send, whether
 * SO_LINGER 0 asked for it, and what the application left unread (close()
 * with unread data resets): rcv_nxt counts the peer's FIN, copied_seq what
 * was read.
 */
static __always_inline void set_reset_facts(struct close_record *e, struct sock *sk)
{
	struct inet_connection_sock *icsk = (struct inet_connection_sock *)sk;
	struct tcp_sock *tp = (struct tcp_sock *)sk;
	__u32 last = BPF_CORE_READ(tp, rcv_tstamp);
	__u32 data = BPF_CORE_READ(icsk, icsk_ack.lrcvtime);
	__u64 skflags = BPF_CORE_READ(sk, __sk_common.skc_flags);
	__u32 unread = BPF_CORE_READ(tp, rcv_nxt) - BPF_CORE_READ(tp, copied_seq);

	if ((__s32)(data - last) > 0)
		last = data;
	if (jiffy_ns) {
		e->idle_ns = (__u64)((__u32)bpf_jiffies64() - last) * jiffy_ns;
		e->head.flags |= FLAG_IDLE_KNOWN;
	}
	if ((skflags & (1UL << SOCK_DONE)) && unread)
		unread--;
	e->unread = unread;
	if ((skflags & (1UL << bpf_core_enum_value(enum sock_flags, SOCK_LINGER))) &&
	    !BPF_CORE_READ(sk, sk_lingertime))
		e->head.flags |= FLAG_LINGER0;
}

/* A connection as its client sees it (the server's tuple reversed), for
 * never_accepted: no padding, so that the key is its fields. */
struct conn_key {
	__u32 saddr[4];
	__u32 daddr[4];
	__u16 sport;
	__u16 dport;
	__u32 family;
};

/*
 * Connections whose server side on this host closed without ever being
 * accepted (its listener closed, or reset it), by the client's view of
 * the tuple: the RST that closes the client's side then comes from a
 * peer that never accepted it, not from an idle timeout (tcp_close.bpf.h).
 * LRU: a client elsewhere never asks.
 */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 4096);
	__type(key, struct conn_key);
	__type(value, __u8);
} never_accepted SEC(".maps");

/* The key of t's connection; reversed: as the other end sees it. */
static __always_inline void conn_key_of(struct conn_key *k, const struct tuple *t, bool reversed)
{
	__builtin_memset(k, 0, sizeof(*k));
	k->family = t->family;
	if (t->family == AF_INET) {
		k->saddr[0] = reversed ? t->d4 : t->s4;
		k->daddr[0] = reversed ? t->s4 : t->d4;
	} else {
		__builtin_memcpy(k->saddr, reversed ? t->d6 : t->s6, sizeof(k->saddr));
		__builtin_memcpy(k->daddr, reversed ? t->s6 : t->d6, sizeof(k->daddr));
	}
	k->sport = reversed ? t->dport : t->sport;
	k->dport = reversed ? t->sport : t->dport;
}

/*
 * Why an established connection closed. The RST we send on an abortive
 * close (SO_LINGER 0, unread data, shutdown by the application while data
 * flows) goes out *after* the state changes to CLOSE, so tcp_send_reset
 * comes too late; an orderly close never jumps to CLOSE from these states,
 * so the jump itself says it.
 */
static __always_inline __u8 close_reason(const struct sock_info *info, int sk_err, int oldstate)
{
	if (info->reset_in)
		return REASON_RESET_IN;
	/* tcp_write_err: ETIMEDOUT, or the last ICMP error (EHOSTUNREACH...). */
	if (sk_err && sk_err != ECONNRESET && sk_err != EPIPE)
		return REASON_TIMEOUT;
	if (info->reset_out)
		return REASON_RESET_OUT;
	switch (oldstate) {
	case TCP_ESTABLISHED:
	case TCP_CLOSE_WAIT:
	case TCP_FIN_WAIT1:
	case TCP_SYN_RECV:
		return REASON_RESET_OUT;
	}
	return REASON_FIN;
}

/* The close of tr's connection, which ended at end_ns (0: now). */
static __always_inline void emit_close(const struct transition *tr, struct sock_info *info, __u64 end_ns)
{
	struct sock *sk = (struct sock *)tr->sk;
	struct close_record *e;

	e = NEW_CONN_RECORD(close, EVENT_CLOSE, &tr->t, info);
	if (!e)
		return;
	e->duration_ns = (end_ns ? end_ns : e->head.ts_ns) - info->start_ns;
	e->reason = close_reason(info, BPF_CORE_READ(sk, sk_err), tr->oldstate);
	set_payload_bytes(e, sk, tr->oldstate);
	set_health(e, sk);
	e->idle_ns = 0;
	e->unread = 0;
	e->drops = 0;
	e->drop_reason = 0;
	e->peer_unaccepted = 0;
	if (e->reason != REASON_FIN)
		set_reset_facts(e, sk);
	/* Only a client's side can have been refused by a listener here
	 * (a storm's server sides, reset by their clients, skip the map). */
	if (e->reason == REASON_RESET_IN && info->direction == DIR_OUT) {
		struct conn_key k;

		conn_key_of(&k, &tr->t, false);
		if ((int)bpf_map_delete_elem(&never_accepted, &k) == 0)
			e->peer_unaccepted = 1;
	}
	submit(e);
}

#endif /* CONNTRACE_TCP_CLOSE_BPF_H */
