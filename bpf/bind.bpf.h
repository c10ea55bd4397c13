/* SPDX-License-Identifier: GPL-2.0 */
/* What bind() leaves for later hooks (bind.bpf.c). */
#ifndef CONNTRACE_BIND_BPF_H
#define CONNTRACE_BIND_BPF_H

#include "vmlinux.h"
#include <bpf/bpf_helpers.h>

/* TCP sockets bound to port 0 (a port reserved) and not yet connected, by
 * socket address: bind() marks them, the connection says so
 * (tcp_connect.bpf.h). LRU: most are closed without connecting, unseen. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 16384);
	__type(key, __u64);
	__type(value, __u8);
} bound_port0 SEC(".maps");

#endif /* CONNTRACE_BIND_BPF_H */
