/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Kernel-side state: what the programs remember between hooks. Go never
 * reads these (conntrace.h holds what it does).
 */
#ifndef CONNTRACE_TYPES_BPF_H
#define CONNTRACE_TYPES_BPF_H

#include "vmlinux.h"
#include "conntrace.h"

/* What we remember about a connection between its events: in the
 * socket's own storage, or in the socks table (track.bpf.h). */
struct sock_info {
	__u64 conn_id; /* 0: no connection (a storage entry whose connection ended) */
	__u64 start_ns;
	__u64 call_key; /* the connecting thread (pid_tgid): its connect() in flight */
	__u64 cgroup;   /* the process's cgroup v2 id, taken in its own context */
	__u32 pid;
	__u32 uid;
	char comm[COMM_LEN];
	char thread[COMM_LEN];
	__u32 netns; /* network namespace inode */
	__u8 direction;
	__u8 matched;   /* passed the filters: its close is reported too */
	__u8 reset_in;  /* tcp_receive_reset */
	__u8 reset_out; /* tcp_send_reset */
	__u8 flags;     /* enum event_flags */
	__u8 in_table;  /* kept in the socks table, not in socket storage */
	/* Its packets this host dropped while it was in SYN_SENT (drops.bpf.c),
	 * the last one's reason and device, and the SYNs sent again until
	 * the handshake failed. */
	__u16 drops;
	__u32 drop_reason;
	__u32 drop_ifindex;
	__u32 retransmits;
	__u8 drop_inbound;
	__u8 _pad[7];
};

/* A bind() or connect() in flight, per thread, from sys_enter to sys_exit. */
struct pending_call {
	__u64 ts_ns;
	__u64 sk;      /* the socket (connect: whose handshake may fail meanwhile) */
	__u32 addr[4]; /* bind: requested address; connect: destination */
	__u16 port;    /* host byte order */
	__u16 family;
	__u8 proto;
	__u8 failed; /* connect: the handshake failed meanwhile (connect_failures) */
	__u8 _pad[6];
};

/* A handshake that failed while connect() ran: sys_exit_connect reports
 * it with the errno the application gets (connect.bpf.c). The connection
 * as it was, and its local end, which connect() clears before it returns. */
struct connect_failure {
	struct sock_info info;
	__s32 error; /* sk_err */
	__u32 s4;
	__u32 s6[4];
	__u16 sport;
	__u8 _pad[2];
};

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

/* An inbound connection that closed while it waited in the accept queue
 * (accept.bpf.h). */
struct queued_close {
	struct sock_info info;
	struct transition tr;
	__u64 close_ns;
};

/* A process name, NUL-padded to COMM_LEN: the comm filter's key. */
struct comm_key {
	char name[COMM_LEN];
};

#endif /* CONNTRACE_TYPES_BPF_H */
