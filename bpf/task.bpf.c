//go:build ignore

// SPDX-License-Identifier: GPL-2.0-only
/*
 * Process lifecycle of jailed tasks: fork and exit events.
 *
 * sched_process_fork runs in the parent. A new thread is not reported: Go
 * and Node start threads all the time, and a thread is no new process. The
 * child is born in the parent's cgroup (clone3 and its CLONE_INTO_CGROUP
 * are refused in the jail), so the parent's jail is the child's.
 *
 * sched_process_exit reports a process once, when its last thread exits,
 * with the kernel's exit code (set just before the tracepoint). A fork bomb
 * makes one record per process; user space folds identical ones, and what
 * the ring buffer cannot hold is counted as lost.
 */
#include "watch.h"

char LICENSE[] SEC("license") = "GPL";

/* sched_process_exit as kernels from 6.16 declare it, with group_dead. */
typedef void (*btf_trace_sched_process_exit___group_dead)(void *, struct task_struct *, bool);

SEC("tp_btf/sched_process_fork")
int BPF_PROG(mcpjail_fork, struct task_struct *parent, struct task_struct *child)
{
	__u64 cgroup_id;
	struct task_event *e;
	__u32 pid;

	if (!current_jail(&cgroup_id))
		return 0;
	pid = BPF_CORE_READ(child, pid);
	if (pid != (__u32)BPF_CORE_READ(child, tgid))
		return 0;
	e = bpf_ringbuf_reserve(&mcpjail_events, sizeof(*e), 0);
	if (!e) {
		count_lost();
		return 0;
	}
	fill_header(&e->hdr, cgroup_id, EVENT_FORK, VERDICT_ALLOW, REASON_NONE);
	e->child = pid;
	e->exit_code = 0;
	bpf_ringbuf_submit(e, 0);
	return 0;
}

/*
 * Also removes the exiting thread's saved syscall arguments: a thread
 * killed inside a syscall never reaches its sys_exit. That part is keyed on
 * the saved entry, not on the jail: a jail closed between a thread's
 * sys_enter and Jail.Close's purge could otherwise leave the entry behind.
 * The cost for a task outside any jail is two lookups per thread exit.
 */
SEC("tp_btf/sched_process_exit")
int mcpjail_exit(unsigned long long *ctx)
{
	struct task_struct *task = (struct task_struct *)ctx[0];
	__u32 tid = BPF_CORE_READ(task, pid);
	struct task_event *e;
	__u64 cgroup_id;
	int group_dead;

	if (bpf_map_lookup_elem(&mcpjail_pending, &tid))
		bpf_map_delete_elem(&mcpjail_pending, &tid);
	if (!current_jail(&cgroup_id))
		return 0;
	/* Older kernels pass the task only; signal->live was decremented just
	 * before, so 0 means this was the last thread (two threads exiting at
	 * the same moment may then both see 0: a duplicate, never a miss). The
	 * argument is read only where the kernel has it: the verifier never
	 * visits the other branch. */
	if (bpf_core_type_matches(btf_trace_sched_process_exit___group_dead))
		group_dead = ctx[1] != 0;
	else
		group_dead = BPF_CORE_READ(task, signal, live.counter) == 0;
	if (!group_dead)
		return 0;
	e = bpf_ringbuf_reserve(&mcpjail_events, sizeof(*e), 0);
	if (!e) {
		count_lost();
		return 0;
	}
	fill_header(&e->hdr, cgroup_id, EVENT_TASK_EXIT, VERDICT_ALLOW, REASON_NONE);
	/* The last thread need not be the leader: name the process by it. */
	BPF_CORE_READ_STR_INTO(&e->hdr.comm, task, group_leader, comm);
	e->child = 0;
	e->exit_code = BPF_CORE_READ(task, exit_code);
	bpf_ringbuf_submit(e, 0);
	return 0;
}
