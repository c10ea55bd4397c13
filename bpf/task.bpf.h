/* SPDX-License-Identifier: GPL-2.0 */
/* Who the current task is: its process, user, names and cgroup. */
#ifndef CONNTRACE_TASK_BPF_H
#define CONNTRACE_TASK_BPF_H

#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>
#include "conntrace.h"
#include "types.bpf.h"

/* The current process's name: its thread-group leader's comm, which is
 * what ps, ss -p and /proc/PID/comm show (a thread may rename itself with
 * prctl(PR_SET_NAME); bpf_get_current_comm() is the thread's). NUL-padded,
 * as the comm filter's keys are. Only in process context: in softirq the
 * current task is unrelated. */
static __always_inline void process_name(char comm[COMM_LEN])
{
	struct task_struct *task = (struct task_struct *)bpf_get_current_task();

	__builtin_memset(comm, 0, COMM_LEN);
	BPF_CORE_READ_STR_INTO((char(*)[COMM_LEN])comm, task, group_leader, comm);
}

/* Who the current task is, for the connection it makes or takes, or the
 * call that failed. Its cgroup (v2: what container it runs in) is taken
 * here, in its own context, and remembered with a connection for the
 * events that happen in softirq. */
static __always_inline void fill_task(struct task_info *task)
{
	task->cgroup = bpf_get_current_cgroup_id();
	task->pid = bpf_get_current_pid_tgid() >> 32;
	task->uid = (__u32)bpf_get_current_uid_gid();
	process_name(task->comm);
	bpf_get_current_comm(&task->thread, sizeof(task->thread));
}

/* The network namespace of the current task, which a socket() is made
 * in. */
static __always_inline __u32 current_netns(void)
{
	struct task_struct *task = (struct task_struct *)bpf_get_current_task();

	return BPF_CORE_READ(task, nsproxy, net_ns, ns.inum);
}

#endif /* CONNTRACE_TASK_BPF_H */
