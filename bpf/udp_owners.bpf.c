// SPDX-License-Identifier: GPL-2.0
/*
 * The owners of the UDP sockets open when conntrace starts, given before
 * the datagram programs attach (and after cgroup/sock_create is, which
 * owns every newer one), so that a flow of such a socket has its process
 * from its first datagram, even a connected socket's that never names an
 * address. Two iterators, run by Go:
 *  - udp_owner_files (iter/task_file), once: every process's open UDP
 *    sockets, by inode, with the first process found holding each;
 *  - udp_owner_socks (iter/udp), once in each network namespace (the
 *    iterator walks its opener's): each socket found gets its owner in
 *    its storage, as sock_create gives a new one.
 * The socket pointer task_file reaches is one the verifier does not let
 * socket storage take; iter/udp's is. A socket no process holds (a
 * kernel tunnel's) stays without an owner, as does every one when a
 * cgroup filter is on (--container, --cgroup: it is the current task's,
 * which here is conntrace): they get theirs when their process names an
 * address (sendmsg, recvmsg).
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>
#include "defs.bpf.h"
#include "filters.bpf.h"
#include "udp_flows.bpf.h"

#define S_IFMT 00170000
#define S_IFSOCK 0140000
#define SOCK_DGRAM 2

/* The owners udp_owner_files found, by socket inode; udp_owner_socks
 * takes each. Full, the rest go without. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 65536);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, __u64);
	__type(value, struct task_info);
} udp_owner_by_inode SEC(".maps");

/* Sockets given an owner, for Go to report. */
__u32 udp_owned = 0;

SEC("iter/task_file")
int udp_owner_files(struct bpf_iter__task_file *ctx)
{
	struct task_struct *task = ctx->task;
	struct file *file = ctx->file;
	struct task_info owner = {};
	struct socket *sock;
	struct inode *inode;
	__u16 family;
	__u64 ino;

	if (!task || !file || filter_cgroups)
		return 0;
	inode = file->f_inode;
	if (!inode || (inode->i_mode & S_IFMT) != S_IFSOCK)
		return 0;
	sock = (struct socket *)BPF_CORE_READ(file, private_data);
	family = BPF_CORE_READ(sock, sk, __sk_common.skc_family);
	if (BPF_CORE_READ(sock, type) != SOCK_DGRAM || (family != AF_INET && family != AF_INET6))
		return 0;
	ino = inode->i_ino;
	owner.cgroup = BPF_CORE_READ(task, cgroups, dfl_cgrp, kn, id);
	owner.pid = task->tgid;
	owner.uid = BPF_CORE_READ(task, cred, uid.val);
	BPF_CORE_READ_STR_INTO(&owner.comm, task, group_leader, comm);
	BPF_CORE_READ_STR_INTO(&owner.thread, task, comm);
	bpf_map_update_elem(&udp_owner_by_inode, &ino, &owner, BPF_NOEXIST);
	return 0;
}

SEC("iter/udp")
int udp_owner_socks(struct bpf_iter__udp *ctx)
{
	struct udp_sock *udp = ctx->udp_sk;
	struct task_info *owner;
	struct udp_sock_info *us;
	struct sock *sk;
	__u64 ino;

	if (!udp)
		return 0;
	sk = &udp->inet.sk;
	ino = BPF_CORE_READ(sk, sk_socket, file, f_inode, i_ino);
	owner = ino ? bpf_map_lookup_elem(&udp_owner_by_inode, &ino) : NULL;
	if (!owner)
		return 0;
	us = bpf_sk_storage_get(&udp_socks, sk, 0, BPF_SK_STORAGE_GET_F_CREATE);
	if (us && !us->known) {
		us->task = *owner;
		us->netns = BPF_CORE_READ(sk, __sk_common.skc_net.net, ns.inum);
		us->wanted = proc_match(owner->pid, owner->comm);
		us->known = 1;
		udp_owned++;
	}
	bpf_map_delete_elem(&udp_owner_by_inode, &ino);
	return 0;
}
