/* SPDX-License-Identifier: GPL-2.0 */
/*
 * What Go reads: the ring-buffer records, their enums, the lost-event
 * causes. bpf2go -type turns each into a Go type, so this file is the
 * single definition of the records' layout: change it here and run
 * `make generate`.
 * Kernel-only state is in types.bpf.h.
 */
#ifndef CONNTRACE_H
#define CONNTRACE_H

#define COMM_LEN 16

enum event_type {
	EVENT_LISTEN = 1,
	EVENT_CONNECT = 2,
	EVENT_ACCEPT = 3,
	EVENT_CLOSE = 4,
	EVENT_CONNECT_FAIL = 5,
	EVENT_BIND_FAIL = 6,
	EVENT_DROP = 7,
	EVENT_DNS = 8,
};

enum direction {
	DIR_NONE = 0,
	DIR_OUT = 1, /* this host opened it: connect() */
	DIR_IN = 2,  /* a peer opened it: accept() */
};

/* Why an established connection ended. */
enum close_reason {
	REASON_NONE = 0,
	REASON_FIN = 1,       /* orderly shutdown */
	REASON_RESET_IN = 2,  /* the peer sent RST */
	REASON_RESET_OUT = 3, /* we sent RST (abortive close, SO_LINGER 0, unread data) */
	REASON_TIMEOUT = 4,   /* retransmissions or keepalives gave up */
	REASON_CLOSED = 5,    /* UDP: the socket was closed */
	REASON_IDLE = 6,      /* UDP: no datagram either way for the idle time */
};

enum event_flags {
	/* connect, close, connect_fail: the socket was bound to port 0 before
	 * connect(), which reserved a local port for it alone (the kernel
	 * cannot share it between destinations; IP_BIND_ADDRESS_NO_PORT
	 * avoids that). */
	FLAG_BOUND_PORT0 = 1,
	/* connect_fail: this host's drops of the connection's packets were
	 * watched (skb:kfree_skb; drops, drop_reason): none counted means
	 * none happened, not that nobody looked. */
	FLAG_DROPS_WATCHED = 2,
	/* connect_fail: the last drop counted was of a packet coming in (the
	 * peer's answer), not of one of our SYNs. drop of a DNS client's
	 * message: an answer coming in, not the query going out. */
	FLAG_DROP_INBOUND = 4,
	/* close, not orderly: idle_ns holds the time since the peer's last
	 * packet (the kernel's tick is known: tracer's jiffy_ns). */
	FLAG_IDLE_KNOWN = 8,
	/* close: SO_LINGER was on with a zero timeout (close() resets). */
	FLAG_LINGER0 = 16,
	/* bind_fail: the failing socket's options, which decide what it may
	 * share a port with: SO_REUSEADDR, SO_REUSEPORT, IPV6_V6ONLY. */
	FLAG_REUSEADDR = 32,
	FLAG_REUSEPORT = 64,
	FLAG_V6ONLY = 128,
};

/* Keys of the lost_events counters. */
enum lost_cause {
	LOST_RING_FULL = 0,  /* a ring-buffer reservation failed */
	LOST_UNSEEN = 1,     /* a reported connection ended without a state change we saw */
	LOST_TABLE_FULL = 2, /* a new connection found no room in the socket table */
	LOST_FLOWS_FULL = 3, /* a new UDP flow found no room in the flow table */
};

/*
 * The ring-buffer records. Each begins with struct record_head, which
 * says its kind and size; a kind with fields of its own follows it with
 * them (struct <kind>_record), and a record is only as large as its
 * kind. A kind may end in a payload of variable length: the head's size
 * then says how much of the reserved record is used.
 *
 * Addresses are in network byte order, ports in host byte order. An
 * IPv4-mapped IPv6 connection is already reported as AF_INET with the
 * IPv4 address in the first 4 bytes.
 */
struct record_head {
	__u64 ts_ns;   /* bpf_ktime_get_ns() (CLOCK_MONOTONIC) */
	__u64 conn_id; /* ties the records of one connection together (0: none) */
	__u64 cgroup;  /* cgroup v2 id of the process (its container); 0: unknown */
	__u32 pid;     /* tgid of the process that opened or accepted it */
	__u32 uid;
	__u32 netns;    /* network namespace inode of the socket */
	__u16 size;     /* bytes of the record used, this head included */
	__u8 kind;      /* enum event_type */
	__u8 family;    /* AF_INET or AF_INET6 */
	__u8 saddr[16]; /* local end, as seen by that process (bind_fail: as requested) */
	__u8 daddr[16]; /* peer (none: listen, bind_fail) */
	__u16 sport;
	__u16 dport;
	__u8 direction; /* enum direction */
	__u8 proto;     /* IPPROTO_TCP or IPPROTO_UDP */
	__u8 flags;     /* enum event_flags */
	__u8 _pad[1];
	char comm[COMM_LEN];   /* the process: its thread-group leader's name */
	char thread[COMM_LEN]; /* the thread's own name (prctl PR_SET_NAME) */
};

/* listen, accept: the head alone. */

struct connect_record {
	struct record_head head;
	__u64 latency_ns; /* SYN_SENT -> ESTABLISHED */
};

struct close_record {
	struct record_head head;
	__u64 duration_ns; /* first seen -> CLOSE (UDP idle: -> the last datagram) */
	__u64 tx_bytes;    /* tcp_sock.bytes_acked; UDP: payload sent */
	__u64 rx_bytes;    /* tcp_sock.bytes_received; UDP: payload received */
	__u64 tx_packets;  /* UDP: datagrams sent */
	__u64 rx_packets;  /* UDP: datagrams received */
	__u64 idle_ns;     /* FLAG_IDLE_KNOWN: since the peer's last packet */
	__u32 retransmits; /* segments sent again (total_retrans) */
	__u32 srtt_us;     /* smoothed round-trip time */
	__u32 unread;      /* not orderly: bytes received that the application never read */
	__u32 drops;       /* UDP: datagrams of the flow this host dropped on their way in */
	__u32 drop_reason; /* UDP: the kernel's enum skb_drop_reason of the last one */
	__u8 reason;       /* enum close_reason */
	/* reset_in: the peer was a socket on this host that closed in its
	 * listener's accept queue, never accepted. */
	__u8 peer_unaccepted;
	__u8 _pad[2];
};

struct connect_fail_record {
	struct record_head head;
	__u64 latency_ns;   /* SYN_SENT -> the failure */
	__s32 error;        /* errno (0: aborted by the application) */
	__u32 retransmits;  /* SYNs sent again */
	__u32 drop_reason;  /* the kernel's enum skb_drop_reason of the last drop */
	__u32 drop_ifindex; /* the device of that drop (0: none yet) */
	__u16 drops;        /* the connection's packets this host dropped */
	/* An ICMP error about the handshake (tcp_icmp.bpf.h), when icmp_watched:
	 * its sender (IPv4 in the first 4 bytes), family (0: none came),
	 * type and code. */
	__u8 icmp_family;
	__u8 icmp_type;
	__u8 icmp_code;
	__u8 icmp_watched;
	__u8 _pad[2];
	__u8 icmp_from[16];
};

struct bind_fail_record {
	struct record_head head;
	__s32 error; /* errno */
	/* EACCES: the network namespace's net.ipv4.ip_unprivileged_port_start,
	 * below which a port needs CAP_NET_BIND_SERVICE. */
	__u16 port_start;
	__u8 _pad[2];
};

/*
 * drop: a UDP socket's datagrams that this host dropped before they
 * reached its receive buffer, told when they start and then at most once
 * a second per socket (each flow's close counts its own exactly). The
 * head is the flow of the datagram dropped last.
 */
struct drop_record {
	struct record_head head;
	__u32 drops;  /* the socket's (or the port's), since its previous drop record */
	__u32 reason; /* the kernel's enum skb_drop_reason: SOCKET_RCVBUFF, PROTO_MEM, NO_SOCKET, UDP_CSUM */
	__u32 rcvbuf; /* the receive buffer's size (sk_rcvbuf: twice SO_RCVBUF) */
	__u32 queued; /* bytes it held at the drop */
};

/*
 * dns: a DNS message over UDP, as this host's socket sent it (a query to
 * port 53) or received it (an answer from port 53), copied whole up to
 * DNS_PAYLOAD_MAX bytes. Go pairs queries with their answers and parses
 * them (tracer/dns). The head is the socket's end and the server's; its
 * conn_id the UDP flow's, when the flow is reported; direction DIR_OUT
 * for a message sent, DIR_IN for one received.
 */
#define DNS_PAYLOAD_MAX 1232 /* EDNS's common UDP size: most answers fit */

struct dns_record {
	struct record_head head;
	__u64 sock; /* the socket's cookie */
	/* The message's bytes (over TCP: the segment's, messages each after
	 * their 2-byte length); the payload holds up to DNS_PAYLOAD_MAX. */
	__u32 len;
	/* The message passes the filters (events, ports, processes): an
	 * event. Otherwise Go keeps only the names it answers with. */
	__u8 shown;
	/* A firewall rule here dropped this query on its way out: the
	 * application got EPERM (skb:kfree_skb, NETFILTER_DROP). */
	__u8 dropped;
	/* Over TCP: bytes of the stream before this segment's were not seen
	 * (a segment out of order, a retransmission's new bytes): where a
	 * message begins is not known. */
	__u8 gap;
	__u8 _pad;
	__u8 payload[DNS_PAYLOAD_MAX]; /* the head's size says how much is used */
};

/*
 * The UDP flow sweep's arguments and results (udp_flows.bpf.c): Go runs
 * the sweep program every second with the idle times, and reads back
 * how many flows it ended.
 */
struct udp_sweep {
	__u64 now;          /* set by the sweep: when it ran (bpf_ktime_get_ns) */
	__u64 idle_one_way; /* ns without a datagram that end a flow only one side sent on */
	__u64 idle_both;    /* ns that end one both sides sent on */
	__u32 closed;       /* flows of closed sockets ended */
	__u32 idle;         /* idle flows ended */
	__u32 last;         /* set by Go: the run's last sweep, which tells every drop untold */
	__u32 _pad;
};

#endif /* CONNTRACE_H */
