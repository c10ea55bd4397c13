/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Socket calls in flight (bind(), connect()): the syscall tracepoints'
 * records, what a call asked for (read at sys_enter, the only place the
 * sockaddr is), and the socket behind an fd.
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

/* connect() calls in flight, by thread (pid_tgid), of every protocol
 * (connect.bpf.c). Entries live for one syscall: sys_exit always removes
 * them. bind()'s are bind.bpf.c's. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 16384);
	__type(key, __u64);
	__type(value, struct pending_call);
} connect_calls SEC(".maps");

/* Set by the loader where the kernel has its own BTF (not with --btf
 * alone): the current task is then a BTF pointer, read by direct loads
 * (a few nanoseconds each) where a helper call costs about ten. */
const volatile __u8 kernel_btf = 0;

/* fd -> struct socket in the current task: task -> files -> fdtable ->
 * file -> private_data. Callers know the fd names a socket (accept's
 * result) or check the socket's type. */
static __always_inline struct socket *socket_from_fd(long fd)
{
	struct file **fds, *file = NULL;
	struct fdtable *fdt;
	unsigned int max;

	if (kernel_btf) {
		fdt = bpf_get_current_task_btf()->files->fdt;
		if (!fdt)
			return NULL;
		max = fdt->max_fds;
		fds = fdt->fd;
	} else {
		struct task_struct *task = (struct task_struct *)bpf_get_current_task();

		fdt = BPF_CORE_READ(task, files, fdt);
		if (!fdt)
			return NULL;
		max = BPF_CORE_READ(fdt, max_fds);
		fds = BPF_CORE_READ(fdt, fd);
	}
	if (fd < 0 || fd >= max)
		return NULL;
	if (bpf_core_read(&file, sizeof(file), &fds[fd]) || !file)
		return NULL;
	return BPF_CORE_READ(file, private_data);
}

/* Reads an AF_INET or AF_INET6 sockaddr from user memory, in one read of
 * as much of the 24 bytes an IPv6 one needs (an RFC 2133 sockaddr_in6 may
 * be that short) as the caller gave; other families (AF_UNIX, AF_UNSPEC)
 * return -1. */
static __always_inline int read_sockaddr(struct pending_call *c, const void *uaddr, __u64 len)
{
	union {
		struct sockaddr_in sin;
		struct sockaddr_in6 sin6;
	} sa = {};

	if (!uaddr)
		return -1;
	if (len >= 24) {
		if (bpf_probe_read_user(&sa, 24, uaddr))
			return -1;
	} else if (len < sizeof(sa.sin) || bpf_probe_read_user(&sa, sizeof(sa.sin), uaddr)) {
		return -1;
	}
	if (sa.sin.sin_family == AF_INET) {
		c->addr[0] = sa.sin.sin_addr.s_addr;
		c->port = bpf_ntohs(sa.sin.sin_port);
	} else if (sa.sin.sin_family == AF_INET6 && len >= 24) {
		__builtin_memcpy(c->addr, &sa.sin6.sin6_addr, 16);
		c->port = bpf_ntohs(sa.sin6.sin6_port);
	} else {
		return -1;
	}
	c->family = sa.sin.sin_family;
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
