/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Kernel-side state: what the programs remember between hooks. Go never
 * reads these (conntrace.h holds what it does).
 */
#ifndef CONNTRACE_TYPES_BPF_H
#define CONNTRACE_TYPES_BPF_H

#include "vmlinux.h"
#include "conntrace.h"

/* What we remember about a connection between its events. */
struct sock_info {
	__u64 conn_id;
	__u64 start_ns;
	__u32 pid;
	__u32 uid;
	char comm[COMM_LEN];
	char thread[COMM_LEN];
	__s32 error;   /* SYN_SENT -> CLOSE inside connect(): sk_err, for sys_exit_connect */
	__u32 fail_s4; /* ... and the local end then: connect() clears it before it returns */
	__u32 fail_s6[4];
	__u16 fail_sport;
	__u8 direction;
	__u8 matched;    /* passed the filters: its close is reported too */
	__u8 in_connect; /* a connect() syscall on this socket has not returned yet */
	__u8 failed;     /* the handshake failed while in_connect */
	__u8 reset_in;   /* tcp_receive_reset */
	__u8 reset_out;  /* tcp_send_reset */
	__u32 netns;     /* network namespace inode */
	__u8 flags;      /* enum event_flags */
	__u8 restarting; /* a signal interrupted connect(): the kernel will likely restart it */
	__u8 _pad2[6];
};

/* A bind() or connect() in flight, per thread, from sys_enter to sys_exit. */
struct pending_call {
	__u64 ts_ns;
	__u64 sk;      /* the socket (connect: to find its sock_info) */
	__u32 addr[4]; /* bind: requested address; connect: destination */
	__u16 port;    /* host byte order */
	__u16 family;
	__u8 proto;
	__u8 _pad[7];
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
