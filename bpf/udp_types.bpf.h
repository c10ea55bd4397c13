/* SPDX-License-Identifier: GPL-2.0 */
/*
 * UDP's kernel-side state: a socket's owner, and its flows (one local
 * socket and one peer). Go reads none of it directly but the sweep's
 * arguments (udp_flows.bpf.c).
 */
#ifndef CONNTRACE_UDP_TYPES_BPF_H
#define CONNTRACE_UDP_TYPES_BPF_H

#include "vmlinux.h"
#include "types.bpf.h"

/* A flow: a local socket and a peer. */
struct udp_flow_key {
	__u64 sock;      /* the socket's cookie (bpf_get_socket_cookie) */
	__u32 peer[4];   /* network byte order; IPv4 in peer[0] */
	__u16 peer_port; /* host byte order */
	__u16 family;    /* of the datagrams: a dual-stack socket's IPv4 peer is AF_INET */
	__u32 _pad;
};

struct udp_flow {
	struct task_info task; /* the socket's owner */
	__u64 conn_id;
	__u64 start_ns;
	__u64 last_ns; /* the last datagram, either way */
	__u64 tx_bytes, rx_bytes;
	__u64 tx_packets, rx_packets;
	__u32 local[4]; /* as the flow's first datagram had it */
	__u32 netns;
	__u16 local_port;
	__u8 direction; /* DIR_OUT: this end sent first; DIR_IN: the peer did */
	/* Its start is not reported yet: the socket's owner is not known
	 * (made before conntrace started) until its process receives the
	 * flow's datagram (recvmsg hook). */
	__u8 pending;
	/* Started by connect() (udp_connect.bpf.c), where the socket's
	 * storage is out of reach: its first datagram enters it there
	 * (udp_sock_info.flows, first). */
	__u8 unlinked;
	__u8 _pad;
	__s32 error;       /* the last ICMP error reported for it (udp_errors.bpf.c) */
	__u32 drops;       /* its datagrams dropped on their way in (udp_drops.bpf.c) */
	__u32 drop_reason; /* the last one's enum skb_drop_reason */
};

/* The last datagram the ingress program counted, per CPU: the kernel
 * queues it (or drops it) on the same CPU right after. */
struct udp_last_in {
	struct udp_flow_key key; /* key.sock 0: none, or one not counted */
	__u32 count;             /* datagrams (a GRO batch has several) */
	__u32 payload;           /* bytes */
};

/* A UDP socket's state, in socket storage: it lives and dies with the
 * socket. */
struct udp_sock_info {
	struct task_info task; /* who made it (cgroup/sock_create), or first used it (sendmsg, recvmsg) */
	__u32 netns;
	__u8 known;  /* task is set */
	__u8 wanted; /* its process passes the process filters */
	__u8 flows;  /* flows it started, up to 2: with 1, first is its only one */
	__u8 held;   /* it started a flow before it had its owner (pending) */
	/* Its close began (cgroup/sock_release, which runs before UDP
	 * unhashes it): a datagram that still reaches it starts no flow,
	 * which would never end. */
	__u8 released;
	__u32 drops_untold; /* dropped since its last drop record */
	__u64 told_ns;      /* its last drop record */
	__u32 drop_reason;  /* the last drop's */
	__u32 rcvbuf;       /* its receive buffer at the last drop */
	/* Its addresses, read by the drop that left drops_untold nonzero:
	 * for the record that tells them at its close, where they cannot
	 * be read. */
	struct tuple untold;
	/* The address its process last sent to (sendto, sendmsg): the
	 * peer of an unconnected socket's failed send. */
	__u32 to[4];
	__u16 to_port;
	__u16 to_family;
	struct udp_flow_key first;
};

#endif /* CONNTRACE_UDP_TYPES_BPF_H */
