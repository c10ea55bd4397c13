/* SPDX-License-Identifier: GPL-2.0 */
/*
 * A connect() on a UDP socket starts its flow at once (connect,
 * direction out), before any datagram, from the syscall's tracepoints
 * (connect.bpf.c, every protocol's), in every hook mode. No hook after a
 * UDP connect has the socket's storage and its local port (cgroup/connect
 * runs before the kernel picks the port; UDP sets its state without a
 * tracepoint), so the call's start keeps the socket by thread and its
 * return, when it returned 0, reads both ends from it (CO-RE). The flow
 * is keyed by the socket's cookie, which cgroup/sock_create had the kernel
 * make: a socket made before conntrace started has none unless someone
 * asked, and its first datagram starts its flow instead. The owner is the
 * process that connected (the process filters ran at the call's start).
 */
#ifndef CONNTRACE_UDP_CONNECT_BPF_H
#define CONNTRACE_UDP_CONNECT_BPF_H

#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>
#include "calls.bpf.h"
#include "defs.bpf.h"
#include "filters.bpf.h"
#include "task.bpf.h"
#include "tuple.bpf.h"
#include "udp_flows.bpf.h"

/* The return of a UDP connect() on socket sk: ret what it returned. */
static __always_inline void udp_connect_return(struct sock *sk, long ret)
{
	struct udp_flow_key key = {};
	struct udp_flow f = {};
	struct tuple t = {};

	if (ret != 0 || stopping)
		return;
	key.sock = BPF_CORE_READ(sk, __sk_common.skc_cookie.counter);
	tuple_from_sk(&t, sk);
	/* No cookie yet; or connected to port 0. */
	if (!key.sock || !t.dport || !family_match(t.family) || !port_match(t.sport, t.dport))
		return;
	fill_task(&f.task);
	key.family = t.family;
	key.peer_port = t.dport;
	if (t.family == AF_INET) {
		key.peer[0] = t.d4;
		f.local[0] = t.s4;
	} else {
		__builtin_memcpy(key.peer, t.d6, sizeof(key.peer));
		__builtin_memcpy(f.local, t.s6, sizeof(f.local));
	}
	f.local_port = t.sport;
	f.conn_id = __sync_fetch_and_add(&next_conn_id, 1) + 1;
	f.start_ns = bpf_ktime_get_ns();
	f.last_ns = f.start_ns;
	f.netns = netns_of(sk);
	f.direction = DIR_OUT;
	f.unlinked = 1;
	/* One that exists (it sent there before it connected) goes on; a
	 * full table's turning away is counted at its first datagram. */
	if (bpf_map_update_elem(&udp_flows, &key, &f, BPF_NOEXIST) == 0)
		emit_start(&key, &f);
}

#endif /* CONNTRACE_UDP_CONNECT_BPF_H */
