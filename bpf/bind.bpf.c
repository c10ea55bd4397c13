// SPDX-License-Identifier: GPL-2.0
/*
 * Failed bind(): EADDRINUSE, EACCES (a port below
 * ip_unprivileged_port_start without CAP_NET_BIND_SERVICE), EADDRNOTAVAIL
 * (an address not on this host), EINVAL. The address and port come from
 * the caller's sockaddr at sys_enter, which is the only place they exist:
 * a failed bind leaves the socket unbound. User space then looks up who
 * holds the port, in the namespace we report.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>
#include "conntrace.h"
#include "bind.bpf.h"
#include "calls.bpf.h"
#include "defs.bpf.h"
#include "events.bpf.h"
#include "filters.bpf.h"
#include "task.bpf.h"
#include "tuple.bpf.h"
#include "types.bpf.h"

/* bind() calls in flight, by thread (pid_tgid). Entries live for one
 * syscall: sys_exit always removes them. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 16384);
	__type(key, __u64);
	__type(value, struct pending_call);
} bind_calls SEC(".maps");

/* The socket options a bind is judged by (inet_csk_bind_conflict): set
 * before bind(), kept as bitfields in sock_common. */
static __always_inline __u8 bind_options(struct sock *sk)
{
	struct sock_common *skc = &sk->__sk_common;
	__u8 flags = 0;

	if (BPF_CORE_READ_BITFIELD_PROBED(skc, skc_reuse))
		flags |= FLAG_REUSEADDR;
	if (BPF_CORE_READ_BITFIELD_PROBED(skc, skc_reuseport))
		flags |= FLAG_REUSEPORT;
	if (BPF_CORE_READ_BITFIELD_PROBED(skc, skc_ipv6only))
		flags |= FLAG_V6ONLY;
	return flags;
}

SEC("tracepoint/syscalls/sys_enter_bind")
int handle_bind_enter(struct syscall_enter_args *ctx)
{
	struct pending_call call = {};
	__u64 tid = bpf_get_current_pid_tgid();
	struct socket *sock;
	struct sock *sk;
	short type;

	/* bind_fail, and bind(port 0) before connect() for the connections. */
	if (!want_event(EVENT_BIND_FAIL) && !want_event(EVENT_CONNECT))
		return 0;
	sock = begin_call(ctx, &call);
	if (!sock || (call.port && !port_match(call.port, 0)))
		return 0;
	type = BPF_CORE_READ(sock, type);
	sk = BPF_CORE_READ(sock, sk);
	if (!sk)
		return 0;
	call.proto = BPF_CORE_READ(sk, sk_protocol);
	if (!(type == SOCK_STREAM && call.proto == IPPROTO_TCP) &&
	    !(type == SOCK_DGRAM && call.proto == IPPROTO_UDP))
		return 0;
	if (!proto_match(call.proto))
		return 0;
	call.sk = (__u64)sk;
	bpf_map_update_elem(&bind_calls, &tid, &call, BPF_ANY);
	return 0;
}

SEC("tracepoint/syscalls/sys_exit_bind")
int handle_bind_exit(struct syscall_exit_args *ctx)
{
	__u64 tid = bpf_get_current_pid_tgid();
	struct pending_call *p = bpf_map_lookup_elem(&bind_calls, &tid);
	struct pending_call call;
	struct task_info task;
	struct tuple t = {};
	struct bind_fail_record *e;

	if (!p)
		return 0;
	call = *p;
	bpf_map_delete_elem(&bind_calls, &tid);
	if (ctx->ret >= 0) {
		/* A TCP port-0 bind that took a port (no IP_BIND_ADDRESS_NO_PORT). */
		struct sock *sk = (struct sock *)call.sk; /* a local: CO-RE must not see call */

		if (ctx->ret == 0 && call.port == 0 && call.proto == IPPROTO_TCP &&
		    BPF_CORE_READ(sk, __sk_common.skc_num)) {
			__u8 one = 1;
			bpf_map_update_elem(&bound_port0, &call.sk, &one, BPF_ANY);
		}
		return 0;
	}
	if (!want_event(EVENT_BIND_FAIL) || !port_match(call.port, 0))
		return 0;

	t.family = call.family;
	t.sport = call.port;
	t.s4 = call.addr[0];
	__builtin_memcpy(t.s6, call.addr, sizeof(t.s6));
	/* A v4-mapped bind on an IPv6 socket is an IPv4 bind. */
	if (t.family == AF_INET6 && is_v4_mapped(t.s6)) {
		t.family = AF_INET;
		t.s4 = t.s6[3];
	}
	if (!family_match(t.family))
		return 0;

	fill_task(&task);
	e = new_record(EVENT_BIND_FAIL, sizeof(*e), call.proto, &t, &task);
	if (!e)
		return 0;
	e->head.netns = netns_of((struct sock *)call.sk);
	e->head.flags = bind_options((struct sock *)call.sk);
	e->error = -ctx->ret;
	e->port_start = 0;
	if (e->error == EACCES) {
		struct sock *sk = (struct sock *)call.sk; /* a local: CO-RE must not see call */

		e->port_start = BPF_CORE_READ(sk, __sk_common.skc_net.net, ipv4.sysctl_ip_prot_sock);
	}
	submit(e);
	return 0;
}
