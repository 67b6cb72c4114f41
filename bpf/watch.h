/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * Shared by the watching programs (exec.bpf.c, file.bpf.c, netwatch.bpf.c,
 * sockwatch.bpf.c, task.bpf.c): syscall tracepoint contexts, the per-thread
 * map of syscall arguments saved at sys_enter for sys_exit, and the watch
 * records.
 *
 * Tracepoints are global: every program first looks the caller's cgroup up
 * in `jails` and returns when it is absent, so the cost for the rest of the
 * host is that one lookup.
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
#define MAX_PENDING 16384 /* threads of all jails inside a watched syscall at once */

#define EPERM 1
#define EACCES 13
#define SIGKILL 9
#define AT_FDCWD -100

/* The open flags creat(2) implies: O_CREAT|O_WRONLY|O_TRUNC. */
#define CREAT_FLAGS (00000100 | 00000001 | 00001000)

/* Which syscall a pending entry or a record is about. */
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

/* Arguments saved at sys_enter, keyed by thread id. cgroup_id lets
 * Jail.Close remove the entries of threads that never reach sys_exit while
 * their jail is registered. */
struct pending {
	__u64 cgroup_id;
	__u64 ptr;   /* user pointer: path or sockaddr */
	__u64 flags; /* open flags, execveat flags */
	__s32 dfd;   /* directory fd a relative path is resolved against */
	__u32 len;   /* sockaddr length */
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

/* Saves a jailed thread's syscall arguments for its sys_exit. When the map
 * is full the entry is missing at sys_exit: the event then lacks the path or
 * address, the kill still happens. */
static __always_inline void remember(__u64 cgroup_id, __u32 syscall, __u64 ptr, __u64 flags,
				     __s32 dfd, __u32 len)
{
	__u32 tid = current_tid();
	struct pending p = {
		.cgroup_id = cgroup_id, .ptr = ptr, .flags = flags, .dfd = dfd, .len = len,
		.syscall = syscall,
	};

	bpf_map_update_elem(&mcpjail_pending, &tid, &p, BPF_ANY);
}

/* Moves the thread's saved arguments to *p; 0 when there were none (or they
 * were for another syscall: a thread is in one syscall at a time, so a stale
 * entry only exists if a sys_exit was missed). */
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

/* SIGKILLs the calling process after a refused network syscall (jail flag
 * JAIL_KILL_ON_NETWORK) and says so in a kill_event; the refusal's own
 * event comes from whoever refused. */
static __always_inline void kill_for_network(__u64 cgroup_id, long ret, __u16 syscall)
{
	struct kill_event *e;

	bpf_send_signal(SIGKILL);
	e = bpf_ringbuf_reserve(&mcpjail_events, sizeof(*e), 0);
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

#endif /* MCPJAIL_WATCH_H */
