// SPDX-License-Identifier: GPL-2.0
/*
 * The one compilation unit bpf2go builds: every hook group is a file of its
 * own, included here so that all programs share one set of maps. The loader
 * loads only the programs it attaches.
 */
#include "tcp_state.bpf.c"
#include "tcp_accept.bpf.c"
#include "tcp_connect.bpf.c"
#include "tcp_icmp.bpf.c"
#include "tcp_drops.bpf.c"
#include "bind.bpf.c"
#include "connect.bpf.c"
#include "udp_flows.bpf.c"
#include "udp_drops.bpf.c"
#include "udp_errors.bpf.c"
#include "udp_owners.bpf.c"
#include "udp_icmp.bpf.c"

/* Keep the shared types in BTF so that bpf2go -type can generate them. */
const enum event_type *unused_event_type __attribute__((unused));
const enum direction *unused_direction __attribute__((unused));
const enum close_reason *unused_close_reason __attribute__((unused));
const enum event_flags *unused_event_flags __attribute__((unused));
const enum lost_cause *unused_lost_cause __attribute__((unused));
const struct record_head *unused_record_head __attribute__((unused));
const struct connect_record *unused_connect_record __attribute__((unused));
const struct close_record *unused_close_record __attribute__((unused));
const struct connect_fail_record *unused_connect_fail_record __attribute__((unused));
const struct bind_fail_record *unused_bind_fail_record __attribute__((unused));
const struct drop_record *unused_drop_record __attribute__((unused));
const struct dns_record *unused_dns_record __attribute__((unused));
const struct udp_sweep *unused_udp_sweep __attribute__((unused));

char LICENSE[] SEC("license") = "GPL";
