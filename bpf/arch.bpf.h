// SPDX-License-Identifier: GPL-2.0
/*
 * What differs between the architectures the objects are built for (bpf2go
 * -target amd64,arm64 defines __TARGET_ARCH_x86 or __TARGET_ARCH_arm64).
 * Everything the programs read from the kernel goes through CO-RE, so one
 * vmlinux.h (x86's) serves both; only a kprobe's context is not a kernel
 * structure that CO-RE relocates but the architecture's register file,
 * which bpf_tracing.h's PT_REGS_* macros read.
 */
#ifndef CONNTRACE_ARCH_BPF_H
#define CONNTRACE_ARCH_BPF_H

#if defined(__TARGET_ARCH_arm64)
/* arm64's kprobe context (uapi asm/ptrace.h: a fixed layout, so no
 * preserve_access_index). x86's vmlinux.h does not have it. */
struct user_pt_regs {
	__u64 regs[31];
	__u64 sp;
	__u64 pc;
	__u64 pstate;
};
#elif !defined(__TARGET_ARCH_x86)
#error "conntrace's BPF objects are built for x86 (amd64) and arm64"
#endif

#endif
