// SPDX-License-Identifier: GPL-2.0
/*
 * A connect() on a UDP socket starts its flow at once (connect,
 * direction out), before any datagram: the syscall's tracepoints, as
 * TCP's connect failures use them, in every hook mode. No hook after a
 * UDP connect has the socket's storage and its local port (cgroup/connect
 * runs before the kernel picks the port; UDP sets its state without a
 * tracepoint), so sys_enter_connect keeps the socket by thread and
 * sys_exit_connect, when the call returned 0, reads both ends from it
 * (CO-RE). The flow is keyed by the socket's cookie, which
 * cgroup/sock_create had the kernel make: a socket made before conntrace
 * started has none unless someone asked, and its first datagram starts
 * its flow instead. The owner is the process that connected.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>
#include "calls.bpf.h"
#include "defs.bpf.h"
#include "filters.bpf.h"
#include "task.bpf.h"
#include "tuple.bpf.h"
#include "udp_flows.bpf.h"

#define SOCK_DGRAM 2

/* UDP connect() calls in flight: the socket, by thread. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 4096);
	__type(key, __u64);
	__type(value, __u64);
} udp_connect_calls SEC(".maps");

SEC("tracepoint/syscalls/sys_enter_connect")
int udp_connect_enter(struct syscall_enter_args *ctx)
{
	__u64 tid = bpf_get_current_pid_tgid();
	struct socket *sock;
	struct sock *sk;

	if (stopping)
		return 0;
	sock = socket_from_fd(ctx->args[0]);
	if (!sock || BPF_CORE_READ(sock, type) != SOCK_DGRAM)
		return 0;
	sk = BPF_CORE_READ(sock, sk);
	if (!sk || BPF_CORE_READ(sk, sk_protocol) != IPPROTO_UDP)
		return 0;
	bpf_map_update_elem(&udp_connect_calls, &tid, &sk, BPF_ANY);
	return 0;
}

SEC("tracepoint/syscalls/sys_exit_connect")
int udp_connect_exit(struct syscall_exit_args *ctx)
{
	__u64 tid = bpf_get_current_pid_tgid();
	__u64 *call = bpf_map_lookup_elem(&udp_connect_calls, &tid);
	struct udp_flow_key key = {};
	struct udp_flow f = {};
	struct tuple t = {};
	struct sock *sk;

	if (!call)
		return 0;
	sk = (struct sock *)*call;
	bpf_map_delete_elem(&udp_connect_calls, &tid);
	if (ctx->ret != 0)
		return 0;
	key.sock = BPF_CORE_READ(sk, __sk_common.skc_cookie.counter);
	tuple_from_sk(&t, sk);
	/* No cookie yet; or AF_UNSPEC: it disconnected. */
	if (!key.sock || !t.dport || !family_match(t.family) || !port_match(t.sport, t.dport))
		return 0;
	fill_task(&f.task);
	if (!proc_match(f.task.pid, f.task.comm))
		return 0;
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
	return 0;
}
