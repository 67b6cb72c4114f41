/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * Shared by the watching programs (exec.bpf.c, file.bpf.c, netwatch.bpf.c,
 * sockwatch.bpf.c, task.bpf.c): syscall tracepoint contexts, the syscall's
 * arguments read back at sys_exit, the per-thread marker map of
 * sockwatch.bpf.c, and the watch records.
 *
 * Tracepoints are global. Watching is done at sys_exit alone wherever the
 * return value says whether there is anything to report: a program first
 * compares the return value, and only a refusal costs the jails lookup and
 * the read of the arguments (syscall_args). The rest of the host, and a
 * jail's successful calls, pay one comparison. No sys_enter program saves
 * anything for a call that succeeds.
 *
 * Records are reserved at their full size in the ring buffer and filled in
 * place. A per-CPU scratch buffer would allow shorter records, but syscall
 * tracepoints are faultable (preemptible) on current kernels: two tasks on
 * one CPU could interleave and mix their paths.
 */
#ifndef MCPJAIL_WATCH_H
#define MCPJAIL_WATCH_H

#include "common.h"
#include <bpf/bpf_tracing.h>

/* Limits shared with the Go side (bpf/limits.go must agree). */
#define PATH_MAX 4096     /* a longer path fails with ENAMETOOLONG: never truncated */
#define ARGS_MAX 2048     /* bytes of the new image's argument area in an exec event */
#define MAX_PENDING 16384 /* threads of all jails inside socket/socketpair at once */

#define EPERM 1
#define EACCES 13
#define SIGKILL 9
#define AT_FDCWD -100

/* The open flags creat(2) implies: O_CREAT|O_WRONLY|O_TRUNC. */
#define CREAT_FLAGS (00000100 | 00000001 | 00001000)

/* Which syscall a marker or a record is about. */
enum watch_syscall {
	SC_EXECVE = 1,
	SC_EXECVEAT = 2,
	SC_OPENAT = 3,
	SC_OPENAT2 = 4,
	SC_OPEN = 5,
	SC_CREAT = 6,
	SC_CONNECT = 7,
	SC_SENDTO = 8,
	SC_SENDMSG = 9,
	SC_SENDMMSG = 10,
	SC_SOCKET = 11,
	SC_SOCKETPAIR = 12,
};

/* sockwatch.bpf.c's marker that a thread's socket/socketpair got past
 * seccomp, keyed by thread id. cgroup_id lets Jail.Close remove the markers
 * of threads that never reach sys_exit while their jail is registered. */
struct pending {
	__u64 cgroup_id;
	__u32 syscall; /* enum watch_syscall */
	__u32 _pad;
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, MAX_PENDING);
	__type(key, __u32);
	__type(value, struct pending);
} mcpjail_pending SEC(".maps");

/* EVENT_EXEC: an exec that happened (verdict allow, from
 * sched_process_exec, with the new image's arguments) or that the kernel
 * refused (verdict deny, from sys_exit_execve*, without arguments). */
struct exec_event {
	struct event_header hdr;
	__s32 ret;          /* 0, or the -errno of the refused exec */
	__u32 argc;         /* arguments of the new image, all of them */
	__u16 path_len;     /* bytes of path, without the NUL */
	__u16 args_len;     /* bytes of args */
	__u8 args_truncated;/* the argument area was longer than ARGS_MAX */
	__u8 syscall;       /* enum watch_syscall; 0 for sched_process_exec */
	__u8 _pad[2];
	char path[PATH_MAX];
	char args[ARGS_MAX]; /* NUL-separated, as on the new stack */
};

/* EVENT_OPEN: an open the kernel refused with EACCES or EPERM. */
struct open_event {
	struct event_header hdr;
	__s32 ret;      /* -errno */
	__s32 dfd;      /* AT_FDCWD or the directory fd of a relative path */
	__u64 flags;    /* open flags */
	__u16 path_len; /* bytes of path, without the NUL */
	__u16 syscall;  /* enum watch_syscall */
	__u32 _pad;
	char path[PATH_MAX]; /* as the caller passed it */
};

/* EVENT_KILL: the calling process was sent SIGKILL because a network
 * syscall failed with EPERM (a cgroup hook, or seccomp, refused it) and the
 * jail's on_violation.network is kill. The refusal's own event, with the
 * address, comes from the hook that refused. */
struct kill_event {
	struct event_header hdr;
	__s32 ret;
	__u16 syscall; /* enum watch_syscall */
	__u16 _pad;
};

/* EVENT_SECCOMP: a syscall that mcpjail's seccomp deny-list refused. The
 * call never ran; its arguments are the user registers seccomp decided on. */
struct seccomp_event {
	struct event_header hdr;
	__s32 ret;        /* -errno, what seccomp returned */
	__u16 syscall;    /* enum watch_syscall */
	__u8 have_args;   /* 0: no register layout known for this architecture */
	__u8 _pad;
	__u64 args[6];
};

/* EVENT_FORK (the header is the parent's) and EVENT_TASK_EXIT (the header
 * is the exiting process's). */
struct task_event {
	struct event_header hdr;
	__u32 child;     /* EVENT_FORK: the new process's pid */
	__s32 exit_code; /* EVENT_TASK_EXIT: task->exit_code, status << 8 | signal */
};

_Static_assert(sizeof(struct seccomp_event) == 48 + 8 + 6 * 8, "seccomp_event layout");
_Static_assert(sizeof(struct task_event) == 48 + 8, "task_event layout");

/* Anchors for bpf2go's -type (see common.h). */
const struct exec_event *unused_exec_event __attribute__((unused));
const struct open_event *unused_open_event __attribute__((unused));
const struct kill_event *unused_kill_event __attribute__((unused));
const struct seccomp_event *unused_seccomp_event __attribute__((unused));
const struct task_event *unused_task_event __attribute__((unused));
const struct pending *unused_pending __attribute__((unused));

static __always_inline __u32 current_tid(void)
{
	return (__u32)bpf_get_current_pid_tgid();
}

/* Leaves the calling thread's marker. When the map is full it is missing
 * at sys_exit (see sockwatch.bpf.c for what that changes). */
static __always_inline void remember(__u64 cgroup_id, __u32 syscall)
{
	__u32 tid = current_tid();
	struct pending p = { .cgroup_id = cgroup_id, .syscall = syscall };

	bpf_map_update_elem(&mcpjail_pending, &tid, &p, BPF_ANY);
}

/* Moves the thread's marker to *p; 0 when there was none (or it was for
 * another syscall: a thread is in one syscall at a time, so a stale entry
 * only exists if a sys_exit was missed). */
static __always_inline int take(struct pending *p, __u32 syscall)
{
	__u32 tid = current_tid();
	struct pending *v = bpf_map_lookup_elem(&mcpjail_pending, &tid);
	int ok = 0;

	if (v) {
		*p = *v;
		ok = p->syscall == syscall;
		bpf_map_delete_elem(&mcpjail_pending, &tid);
	}
	return ok;
}

static __always_inline int refused(long ret)
{
	return ret == -EACCES || ret == -EPERM;
}

/* Syscall argument registers, per architecture; CO-RE keeps the layout the
 * running kernel has. On arm64 x0 holds the return value at sys_exit and
 * orig_x0 the first argument. (Only x86_64 is tested here.) */
struct pt_regs___x86 {
	unsigned long di, si, dx, r10, r8, r9;
} __attribute__((preserve_access_index));

struct pt_regs___arm64 {
	__u64 regs[31];
	__u64 orig_x0;
} __attribute__((preserve_access_index));

/*
 * Fills args with the current syscall's arguments from the calling thread's
 * user registers, which the kernel saved at syscall entry (helpers
 * bpf_get_current_task_btf, Linux 5.11, and bpf_task_pt_regs, 5.15). Until
 * sys_exit the kernel writes only the return-value register there (a
 * successful execve replaces them all, but sched_process_exec reports that
 * one), and no other thread can write them: at sys_exit they are exactly
 * the arguments the call ran with, so nothing needs saving at sys_enter.
 * What they point to in user memory is another matter (see file.bpf.c).
 * Compat (32-bit) syscalls, with another register layout, never reach a
 * syscall tracepoint on x86_64. Returns 0 when the kernel's pt_regs matches
 * neither layout.
 */
static __always_inline int syscall_args(__u64 args[6])
{
	void *regs = (void *)bpf_task_pt_regs(bpf_get_current_task_btf());

	if (bpf_core_field_exists(struct pt_regs___x86, di)) {
		struct pt_regs___x86 *r = regs;

		args[0] = BPF_CORE_READ(r, di);
		args[1] = BPF_CORE_READ(r, si);
		args[2] = BPF_CORE_READ(r, dx);
		args[3] = BPF_CORE_READ(r, r10);
		args[4] = BPF_CORE_READ(r, r8);
		args[5] = BPF_CORE_READ(r, r9);
		return 1;
	}
	if (bpf_core_field_exists(struct pt_regs___arm64, orig_x0)) {
		struct pt_regs___arm64 *r = regs;

		args[0] = BPF_CORE_READ(r, orig_x0);
		args[1] = BPF_CORE_READ(r, regs[1]);
		args[2] = BPF_CORE_READ(r, regs[2]);
		args[3] = BPF_CORE_READ(r, regs[3]);
		args[4] = BPF_CORE_READ(r, regs[4]);
		args[5] = BPF_CORE_READ(r, regs[5]);
		return 1;
	}
	return 0;
}

/* Writes the kill_event of a network kill whose signal was sent. */
static __always_inline void report_kill(__u64 cgroup_id, long ret, __u16 syscall)
{
	struct kill_event *e = bpf_ringbuf_reserve(&mcpjail_events, sizeof(*e), 0);

	if (!e) {
		count_lost();
		return;
	}
	fill_header(&e->hdr, cgroup_id, EVENT_KILL, VERDICT_DENY, REASON_NONE);
	e->hdr.action = ACTION_KILL;
	e->ret = ret;
	e->syscall = syscall;
	e->_pad = 0;
	bpf_ringbuf_submit(e, 0);
}

/* SIGKILLs the calling process after a refused network syscall (jail flag
 * JAIL_KILL_ON_NETWORK) and says so in a kill_event; the refusal's own
 * event comes from whoever refused. */
static __always_inline void kill_for_network(__u64 cgroup_id, long ret, __u16 syscall)
{
	bpf_send_signal(SIGKILL);
	report_kill(cgroup_id, ret, syscall);
}

#endif /* MCPJAIL_WATCH_H */
