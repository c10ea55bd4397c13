/* SPDX-License-Identifier: GPL-2.0 */
/*
 * ICMP errors about a connection in its handshake (icmp.bpf.h). TCP's
 * error handlers (tcp_v4_err, tcp_v6_err) are hooked in the fentry and
 * kprobe modes (tcp_icmp.bpf.c); elsewhere the failure says nothing was
 * watched. The connection's failure picks the error up: at once when it
 * ends the handshake, or later when it came while connect() held the
 * socket (a soft error, which only SO_ERROR returns) and the handshake
 * then times out or the application gives up.
 */
#ifndef CONNTRACE_TCP_ICMP_BPF_H
#define CONNTRACE_TCP_ICMP_BPF_H

#include "icmp.bpf.h"

/* Set by the loader where the error handlers are hooked. */
const volatile __u8 icmp_hooked = 0;

#endif /* CONNTRACE_TCP_ICMP_BPF_H */
