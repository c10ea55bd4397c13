/* SPDX-License-Identifier: GPL-2.0 */
/* Addresses and ports: read from a socket, and as users know them. */
#ifndef CONNTRACE_TUPLE_BPF_H
#define CONNTRACE_TUPLE_BPF_H

#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_endian.h>
#include "defs.bpf.h"
#include "types.bpf.h"

static __always_inline bool is_v4_mapped(const __u32 *a)
{
	return a[0] == 0 && a[1] == 0 && a[2] == bpf_htonl(0x0000ffff);
}

static __always_inline bool is_unspecified(const __u32 *a)
{
	return (a[0] | a[1] | a[2] | a[3]) == 0;
}

/* A dual-stack socket talking IPv4 carries v4-mapped addresses; users know
 * that connection as IPv4, so report it as one. A listener on :: stays v6. */
static __always_inline void normalize(struct tuple *t)
{
	if (t->family == AF_INET6 && is_v4_mapped(t->d6) && (is_v4_mapped(t->s6) || is_unspecified(t->s6))) {
		t->family = AF_INET;
		t->s4 = t->s6[3];
		t->d4 = t->d6[3];
	}
}

/* A socket's local port (0 until one is bound or picked), from
 * inet_sport: skc_num is already zero when the CLOSE transition is traced
 * (inet_put_port ran). */
static __always_inline __u16 local_port(struct sock *sk)
{
	return bpf_ntohs(BPF_CORE_READ((struct inet_sock *)sk, inet_sport));
}

/* The remote port. */
static __always_inline __u16 remote_port(struct sock *sk)
{
	return bpf_ntohs(BPF_CORE_READ(sk, __sk_common.skc_dport));
}

/* Reads the 4-tuple straight from a struct sock (CO-RE). The local port
 * from inet_sport, as sock:inet_sock_set_state does: skc_num is already
 * zero when the CLOSE transition is traced (inet_put_port ran). */
static __always_inline void tuple_from_sk(struct tuple *t, struct sock *sk)
{
	struct inet_sock *inet = (struct inet_sock *)sk;

	t->family = BPF_CORE_READ(sk, __sk_common.skc_family);
	t->sport = bpf_ntohs(BPF_CORE_READ(inet, inet_sport));
	t->dport = bpf_ntohs(BPF_CORE_READ(sk, __sk_common.skc_dport));
	if (t->family == AF_INET6) {
		BPF_CORE_READ_INTO(&t->s6, sk, __sk_common.skc_v6_rcv_saddr.in6_u.u6_addr32);
		BPF_CORE_READ_INTO(&t->d6, sk, __sk_common.skc_v6_daddr.in6_u.u6_addr32);
	} else {
		t->s4 = BPF_CORE_READ(sk, __sk_common.skc_rcv_saddr);
		t->d4 = BPF_CORE_READ(sk, __sk_common.skc_daddr);
	}
	normalize(t);
}

/* The network namespace a socket lives in, by inode. */
static __always_inline __u32 netns_of(struct sock *sk)
{
	return BPF_CORE_READ(sk, __sk_common.skc_net.net, ns.inum);
}

#endif /* CONNTRACE_TUPLE_BPF_H */
