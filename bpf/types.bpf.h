/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Kernel-side state of any protocol: what the programs remember between
 * hooks. Go never reads these (conntrace.h holds what it does); TCP's are
 * in tcp_types.bpf.h.
 */
#ifndef CONNTRACE_TYPES_BPF_H
#define CONNTRACE_TYPES_BPF_H

#include "vmlinux.h"
#include "conntrace.h"

/* Who made an event: the process, in its own context (task.bpf.h). */
struct task_info {
	__u64 cgroup; /* the process's cgroup v2 id */
	__u32 pid;    /* tgid */
	__u32 uid;
	char comm[COMM_LEN];   /* the thread-group leader's name */
	char thread[COMM_LEN]; /* the thread's own name */
};

/* A bind() or connect() in flight, per thread, from sys_enter to sys_exit. */
struct pending_call {
	__u64 ts_ns;
	__u64 sk;      /* the socket (connect: whose handshake may fail meanwhile) */
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

/* A process name, NUL-padded to COMM_LEN: the comm filter's key. */
struct comm_key {
	char name[COMM_LEN];
};

#endif /* CONNTRACE_TYPES_BPF_H */
