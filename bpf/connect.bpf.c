// SPDX-License-Identifier: GPL-2.0
/*
 * The connect() syscall, for every protocol traced: one program on its
 * entry and one on its exit, since every connect() on the host runs
 * them. The entry reads what the call asked for and finds its socket
 * (the walk from the fd, the costliest part) once, and drops what no
 * protocol wants before any map is touched; the exit hands the call to
 * its protocol: TCP reports the failures connect() returns
 * (tcp_connect_call.bpf.h), UDP starts the flow (udp_connect.bpf.h).
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>
#include "calls.bpf.h"
#include "defs.bpf.h"
#include "filters.bpf.h"
#include "tcp_connect.bpf.h"
#include "tcp_connect_call.bpf.h"
#include "tuple.bpf.h"
#include "udp_connect.bpf.h"

/* Set by the loader: the protocols whose connect() calls are followed. */
const volatile __u8 connect_tcp = 0; /* TCP is traced */
const volatile __u8 connect_udp = 0; /* UDP's flows are */

SEC("tracepoint/syscalls/sys_enter_connect")
int handle_connect_enter(struct syscall_enter_args *ctx)
{
	/* TCP's calls matter for their failures only (a connection that
	 * starts is the state machine's); UDP's start flows. */
	bool tcp = connect_tcp && want_event(EVENT_CONNECT_FAIL);
	bool udp = connect_udp && !stopping;
	struct pending_call call = {};
	struct socket *sock;
	struct sock *sk;
	__u64 tid;
	__u16 type;
	__u8 proto;

	if (!tcp && !udp)
		return 0;
	sock = begin_call(ctx, &call);
	if (!sock)
		return 0;
	type = BPF_CORE_READ(sock, type);
	sk = BPF_CORE_READ(sock, sk);
	if (!sk)
		return 0;
	proto = BPF_CORE_READ(sk, sk_protocol);
	if (!(tcp && type == SOCK_STREAM && proto == IPPROTO_TCP) &&
	    !(udp && type == SOCK_DGRAM && proto == IPPROTO_UDP))
		return 0;
	/* A call the port filter cannot want: neither the port asked for
	 * nor the local one (bound, or to be picked) is in it. */
	if (filter_ports) {
		__u16 sport = local_port(sk);

		if (!port_match(sport, call.port) && (sport || !ephemeral_may_match(sk)))
			return 0;
	}
	call.sk = (__u64)sk;
	call.proto = proto;
	/* While a TCP call is in flight, a handshake failure is its to
	 * report (tcp_state.bpf.c): also when it is a call a signal
	 * interrupted, restarted by the kernel, or the application's own
	 * retry. */
	tid = bpf_get_current_pid_tgid();
	bpf_map_update_elem(&connect_calls, &tid, &call, BPF_ANY);
	return 0;
}

SEC("tracepoint/syscalls/sys_exit_connect")
int handle_connect_exit(struct syscall_exit_args *ctx)
{
	__u64 tid = bpf_get_current_pid_tgid();
	struct pending_call *p = bpf_map_lookup_elem(&connect_calls, &tid);
	struct sock *sk;

	if (!p)
		return 0;
	if (p->proto == IPPROTO_TCP) {
		tcp_connect_return(p, tid, ctx->ret);
		return 0;
	}
	sk = (struct sock *)p->sk;
	bpf_map_delete_elem(&connect_calls, &tid);
	udp_connect_return(sk, ctx->ret);
	return 0;
}
