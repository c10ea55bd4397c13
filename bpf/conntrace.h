/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Types shared by the BPF programs and Go. bpf2go -type turns each of these
 * into a Go type, so this file is the single definition of the record
 * layout: change it here and run `make generate`.
 */
#ifndef CONNTRACE_H
#define CONNTRACE_H

#define COMM_LEN 16

enum event_type {
	EVENT_LISTEN = 1,
	EVENT_CONNECT = 2,
	EVENT_ACCEPT = 3,
	EVENT_CLOSE = 4,
};

enum direction {
	DIR_NONE = 0,
	DIR_OUT = 1, /* this host opened it: connect() */
	DIR_IN = 2,  /* a peer opened it: accept() */
};

/* One ring-buffer record. Addresses are in network byte order, ports in
 * host byte order. An IPv4-mapped IPv6 connection is already reported as
 * AF_INET with the IPv4 address in the first 4 bytes. */
struct event {
	__u64 ts_ns;       /* bpf_ktime_get_ns() (CLOCK_MONOTONIC) */
	__u64 conn_id;     /* ties the events of one connection together */
	__u64 latency_ns;  /* connect: SYN_SENT -> ESTABLISHED */
	__u64 duration_ns; /* close: first seen -> CLOSE */
	__u64 tx_bytes;    /* close: tcp_sock.bytes_acked */
	__u64 rx_bytes;    /* close: tcp_sock.bytes_received */
	__u32 pid;         /* tgid of the process that opened or accepted it */
	__u32 uid;
	__u8 saddr[16];    /* local end, as seen by that process */
	__u8 daddr[16];    /* peer */
	__u16 sport;
	__u16 dport;
	__u8 type;         /* enum event_type */
	__u8 family;       /* AF_INET or AF_INET6 */
	__u8 direction;    /* enum direction */
	__u8 _pad;
	char comm[COMM_LEN];
};

/* What we remember about a connection between its events. */
struct sock_info {
	__u64 conn_id;
	__u64 start_ns;
	__u32 pid;
	__u32 uid;
	char comm[COMM_LEN];
	__u8 direction;
	__u8 matched; /* passed the filters: its close is reported too */
	__u8 _pad[6];
};

#endif /* CONNTRACE_H */
