/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Socket calls in flight (bind(), connect()): the syscall tracepoints'
 * records, what a call asked for (read at sys_enter, the only place the
 * sockaddr is), and the socket behind an fd. Each call's maps are its
 * own (bind.bpf.c, tcp_connect.bpf.h).
 */
#ifndef CONNTRACE_CALLS_BPF_H
#define CONNTRACE_CALLS_BPF_H

#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_endian.h>
#include "defs.bpf.h"
#include "filters.bpf.h"
#include "task.bpf.h"
#include "types.bpf.h"

/* syscalls:sys_enter_* / sys_exit_* records: a stable ABI (see the
 * tracepoints' format files). */
struct syscall_enter_args {
	__u64 common;
	__s32 nr;
	__u32 _pad;
	__u64 args[6];
};

struct syscall_exit_args {
	__u64 common;
	__s32 nr;
	__u32 _pad;
	long ret;
};

/* fd -> struct socket in the current task: task -> files -> fdtable ->
 * file -> private_data. Callers know the fd names a socket (accept's
 * result) or check the socket's type. */
static __always_inline struct socket *socket_from_fd(long fd)
{
	struct task_struct *task = (struct task_struct *)bpf_get_current_task();
	struct fdtable *fdt = BPF_CORE_READ(task, files, fdt);
	struct file **fds, *file = NULL;

	if (!fdt || fd < 0 || fd >= BPF_CORE_READ(fdt, max_fds))
		return NULL;
	fds = BPF_CORE_READ(fdt, fd);
	if (bpf_core_read(&file, sizeof(file), &fds[fd]) || !file)
		return NULL;
	return BPF_CORE_READ(file, private_data);
}

/* Reads an AF_INET or AF_INET6 sockaddr from user memory; other families
 * (AF_UNIX, AF_UNSPEC) return -1. */
static __always_inline int read_sockaddr(struct pending_call *c, const void *uaddr, __u64 len)
{
	struct sockaddr_in6 sin6; /* 24 bytes read: an RFC 2133 sockaddr_in6 may be that short */
	struct sockaddr_in sin;
	__u16 family;

	if (!uaddr || bpf_probe_read_user(&family, sizeof(family), uaddr))
		return -1;
	if (family == AF_INET && len >= sizeof(sin)) {
		if (bpf_probe_read_user(&sin, sizeof(sin), uaddr))
			return -1;
		c->addr[0] = sin.sin_addr.s_addr;
		c->port = bpf_ntohs(sin.sin_port);
	} else if (family == AF_INET6 && len >= 24) {
		if (bpf_probe_read_user(&sin6, 24, uaddr))
			return -1;
		__builtin_memcpy(c->addr, &sin6.sin6_addr, 16);
		c->port = bpf_ntohs(sin6.sin6_port);
	} else {
		return -1;
	}
	c->family = family;
	return 0;
}

/* sys_enter of bind() and connect(): the sockaddr, if AF_INET/AF_INET6, and
 * the socket, if the current process passes the pid/comm filters. */
static __always_inline struct socket *begin_call(struct syscall_enter_args *ctx, struct pending_call *call)
{
	char comm[COMM_LEN];

	if (read_sockaddr(call, (const void *)ctx->args[1], ctx->args[2]))
		return NULL;
	if (filter_comms)
		process_name(comm);
	if (!proc_match(bpf_get_current_pid_tgid() >> 32, comm))
		return NULL;
	call->ts_ns = bpf_ktime_get_ns();
	return socket_from_fd(ctx->args[0]);
}

#endif /* CONNTRACE_CALLS_BPF_H */
