// SPDX-License-Identifier: GPL-2.0
/*
 * The hook-cost floor, for `make bench` only (built into conntrace with
 * -tags floor): every program of conntrace.bpf.c, with the same name on the
 * same hook, returning at once; the same maps and settings, so the loader
 * is unchanged. What a storm loses with this attached is the price of the
 * hooks themselves, which no program can go below.
 */
#include "common.bpf.h"

#define FLOOR(sec, name)                    \
	SEC(sec) int name(void *ctx)        \
	{                                   \
		return 0;                   \
	}

FLOOR("tp_btf/inet_sock_set_state", handle_set_state_btf)
FLOOR("tp_btf/inet_sock_set_state", handle_set_state_btf_rescue)
FLOOR("tracepoint/sock/inet_sock_set_state", handle_set_state)
FLOOR("tp_btf/tcp_receive_reset", handle_receive_reset_btf)
FLOOR("tp_btf/tcp_send_reset", handle_send_reset_btf)
FLOOR("tracepoint/tcp/tcp_receive_reset", handle_receive_reset)
FLOOR("tracepoint/tcp/tcp_send_reset", handle_send_reset)
FLOOR("tracepoint/syscalls/sys_exit_accept4", handle_accept4_exit)
FLOOR("tracepoint/syscalls/sys_exit_accept", handle_accept_exit)
FLOOR("tracepoint/syscalls/sys_enter_connect", handle_connect_enter)
FLOOR("tracepoint/syscalls/sys_exit_connect", handle_connect_exit)
FLOOR("tracepoint/syscalls/sys_enter_bind", handle_bind_enter)
FLOOR("tracepoint/syscalls/sys_exit_bind", handle_bind_exit)
FLOOR("fentry/tcp_connect", handle_connect_fentry)
FLOOR("fexit/inet_csk_accept", handle_accept_fexit)
FLOOR("kprobe/tcp_connect", handle_connect_kprobe)
FLOOR("kretprobe/inet_csk_accept", handle_accept_kretprobe)

char LICENSE[] SEC("license") = "GPL";
