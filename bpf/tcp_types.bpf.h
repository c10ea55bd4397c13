/* SPDX-License-Identifier: GPL-2.0 */
/*
 * TCP's kernel-side state: a connection between its events, a failed
 * handshake on its way to connect()'s return, a state change.
 */
#ifndef CONNTRACE_TCP_TYPES_BPF_H
#define CONNTRACE_TCP_TYPES_BPF_H

#include "vmlinux.h"
#include "conntrace.h"
#include "types.bpf.h"

/* Where a connection is kept (tcp_track.bpf.h). */
enum conn_place {
	IN_STORAGE = 0, /* the socket's own storage */
	IN_TABLE = 1,   /* the socks table */
	OVERFLOW = 2,   /* neither had room: followed only to count its events lost */
};

/* sock_info.closed_ns of an inbound connection accept() took. */
#define ACCEPTED_NS (~0ULL)

/* What we remember about a connection between its events: in the
 * socket's own storage, or in the socks table (tcp_track.bpf.h). */
struct sock_info {
	__u64 conn_id; /* 0: no connection (a storage entry whose connection ended) */
	__u64 start_ns;
	__u64 call_key;        /* the connecting thread (pid_tgid): its connect() in flight */
	struct task_info task; /* who opened or accepted it, taken in its own context */
	__u32 netns;           /* network namespace inode */
	__u8 direction;
	__u8 matched;   /* outbound: passed the filters, its close is reported too */
	__u8 reset_in;  /* tcp_receive_reset */
	__u8 reset_out; /* tcp_send_reset */
	__u8 flags;     /* enum event_flags */
	__u8 where;     /* enum conn_place */
	/* Its packets this host dropped while it was in SYN_SENT (tcp_drops.bpf.c),
	 * the last one's reason and device, and the SYNs sent again until
	 * the handshake failed. */
	__u16 drops;
	__u32 drop_reason;
	__u32 drop_ifindex;
	__u32 retransmits;
	__u8 drop_inbound;
	/* An inbound connection: 0 while it waits in the accept queue;
	 * ACCEPTED_NS once accept() took it (then it is reported, as
	 * matched says of an outbound one); or when its peer reset it
	 * there, closed_from the state it closed from: it stays where it
	 * is until accept() takes it. Set by compare-and-swap only, where
	 * accept() and the close race (tcp_accept.bpf.h). */
	__u8 closed_from;
	__u8 _pad[6];
	__u64 closed_ns;
};

/* A handshake that failed while connect() ran: sys_exit_connect reports
 * it with the errno the application gets (tcp_connect.bpf.c). The connection
 * as it was, and its local end, which connect() clears before it returns. */
struct connect_failure {
	struct sock_info info;
	__u64 sk;    /* its socket */
	__s32 error; /* sk_err */
	__u32 s4;
	__u32 s6[4];
	__u16 sport;
	__u8 _pad[2];
};

/* One state change, from either flavour of the tracepoint. */
struct transition {
	__u64 sk;
	int oldstate;
	int newstate;
	struct tuple t;
};

#endif /* CONNTRACE_TCP_TYPES_BPF_H */
