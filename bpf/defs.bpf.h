/* SPDX-License-Identifier: GPL-2.0 */
/* The uapi constants the programs use, which vmlinux.h (types only) lacks. */
#ifndef CONNTRACE_DEFS_BPF_H
#define CONNTRACE_DEFS_BPF_H

#define AF_INET 2
#define AF_INET6 10
#define IPPROTO_TCP 6
#define IPPROTO_UDP 17
#define ETH_P_IP 0x0800
#define ETH_P_IPV6 0x86DD
#define SOCK_STREAM 1
#define SOCK_DGRAM 2
#define SOL_SOCKET 1
#define SO_ERROR 4

#define EPERM 1
#define EINTR 4
#define E2BIG 7
#define EAGAIN 11
#define EACCES 13
#define EEXIST 17
#define EPIPE 32
#define EADDRINUSE 98
#define EADDRNOTAVAIL 99
#define ECONNRESET 104
#define EISCONN 106
#define ECONNREFUSED 111
#define EALREADY 114
#define EINPROGRESS 115
/* The kernel's own, never seen by the application: a signal interrupted
 * the call and it is restarted (or the application gets EINTR). */
#define ERESTARTSYS 512
#define ERESTARTNOINTR 513
#define ERESTARTNOHAND 514
#define ERESTART_RESTARTBLOCK 516

#endif /* CONNTRACE_DEFS_BPF_H */
