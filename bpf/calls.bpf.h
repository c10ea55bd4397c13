/* SPDX-License-Identifier: GPL-2.0 */
/*
 * bind() and connect() in flight: their tracepoints' records, what a call
 * asked for (read at sys_enter, the only place the sockaddr is), and the
 * socket behind an fd.
 */
#ifndef CONNTRACE_CALLS_BPF_H
#define CONNTRACE_CALLS_BPF_H

#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_endian.h>
#include "defs.bpf.h"
#include "filters.bpf.h"
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

/* Calls in flight, by thread (pid_tgid). Entries live for one syscall:
 * sys_exit always removes them. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 16384);
	__type(key, __u64);
	__type(value, struct pending_call);
} bind_calls SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 16384);
	__type(key, __u64);
	__type(value, struct pending_call);
} connect_calls SEC(".maps");

/*
 * Connects whose handshake failed while connect() was still running, by
 * the connecting thread: sys_exit_connect reports them, with the errno
 * the application gets. Entries live from the failure to that return
 * (microseconds); one that finds the map full is reported here instead.
 */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 4096);
	__type(key, __u64);
	__type(value, struct connect_failure);
} connect_failures SEC(".maps");

/* The errno getsockopt(SO_ERROR) handed the application for a socket still
 * in SYN_SENT, by socket: a soft error (connect.bpf.c), which the socket
 * itself no longer holds when the application closes it (state.bpf.c
 * takes it then). LRU: rare, and a socket may go unclosed for long. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 4096);
	__type(key, __u64);
	__type(value, __s32);
} so_errors SEC(".maps");

/* Threads whose connect() a signal interrupted (ERESTARTSYS), by thread:
 * the kernel will likely restart the call (connect.bpf.c). LRU: a call
 * that is not restarted leaves its entry. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 1024);
	__type(key, __u64);
	__type(value, __u64);
} restarting_calls SEC(".maps");

/* TCP sockets bound to port 0 (a port reserved) and not yet connected, by
 * socket address: bind.bpf.c marks them, the connection says so
 * (track.bpf.h). LRU: most are closed without connecting, unseen. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 16384);
	__type(key, __u64);
	__type(value, __u8);
} bound_port0 SEC(".maps");

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
	process_name(comm);
	if (!proc_match(bpf_get_current_pid_tgid() >> 32, comm))
		return NULL;
	call->ts_ns = bpf_ktime_get_ns();
	return socket_from_fd(ctx->args[0]);
}

#endif /* CONNTRACE_CALLS_BPF_H */
