//go:build ignore

// SPDX-License-Identifier: GPL-2.0-only
/*
 * Exec watching and exec kill.
 *
 * An exec that happens is reported from tp_btf/sched_process_exec, with the
 * file name and the new image's arguments, both from the kernel's copies
 * (bprm, the new stack): the old image's memory is gone by then. An exec
 * the kernel refused (Landlock's execute right: EACCES) is reported from
 * sys_exit_execve*; with on_violation.exec kill the caller gets SIGKILL
 * there, before it returns to user space.
 *
 * No sys_enter program: a refused exec returns into the image that called
 * it, with its memory and registers as they were, so the path is read at
 * sys_exit through the pointer in the saved registers (syscall_args in
 * watch.h), which is what sys_enter used to save. A refusal after the point
 * of no return (the old memory already replaced) ends the process with
 * SIGSEGV; its event may then lack the path, as before.
 *
 * Why deciding at sys_exit on the return value has no TOCTOU race: Landlock
 * made the decision inside execve on the file it actually opened, after
 * resolving the path itself. We never look at the path to decide; a racing
 * thread that swaps the path string or a symlink changes only what the event
 * says (the path as passed), not whether the exec was refused or whether we
 * kill. A check at sys_enter on the path would be the racy one.
 *
 * An exec of a file on an internal mount (a memfd, written by the server and
 * run through /proc/self/fd or execveat's AT_EMPTY_PATH) is outside every
 * filesystem.exec path, yet Landlock lets it through: it checks only files
 * of the visible hierarchy. sched_process_exec sees it after the point of no
 * return, where it can no longer be refused, so the task gets SIGKILL there,
 * before the new image's first instruction, whatever on_violation.exec says
 * (with kill, mcpjail also ends the jail). Where the BPF LSM is active it
 * refuses such an exec earlier, with EPERM (lsm.bpf.c).
 *
 * Fork and exit (sched_process_fork/exit) are task.bpf.c's.
 */
#include "watch.h"

char LICENSE[] SEC("license") = "GPL";

/* ret is read from the context once by each caller: the verifier refuses a
 * context pointer the compiler kept with an offset added. */
static __always_inline int exec_exit(long ret, __u32 syscall)
{
	__u64 cgroup_id, args[6];
	const struct jail *j;
	struct exec_event *e;
	long n;

	if (!refused(ret))
		return 0;
	j = current_jail(&cgroup_id);
	if (!j)
		return 0;
	/* Signal first: the event is for the record, the kill is the point. */
	if (j->flags & JAIL_KILL_ON_EXEC)
		bpf_send_signal(SIGKILL);

	e = bpf_ringbuf_reserve(&mcpjail_events, sizeof(*e), 0);
	if (!e) {
		count_lost();
		return 0;
	}
	fill_header(&e->hdr, cgroup_id, EVENT_EXEC, VERDICT_DENY, REASON_NONE);
	e->hdr.layer = LAYER_LANDLOCK;
	if (j->flags & JAIL_KILL_ON_EXEC)
		e->hdr.action = ACTION_KILL;
	e->ret = ret;
	e->argc = 0;
	e->args_len = 0;
	e->args_truncated = 0;
	e->syscall = syscall;
	e->_pad[0] = 0;
	e->_pad[1] = 0;
	e->path_len = 0;
	e->path[0] = 0;
	if (syscall_args(args)) {
		/* execve(filename, argv, envp); execveat(dfd, filename, argv, envp, flags) */
		n = bpf_probe_read_user_str(e->path, sizeof(e->path),
					    (const void *)(syscall == SC_EXECVE ? args[0] : args[1]));
		if (n > 0)
			e->path_len = n - 1;
	}
	bpf_ringbuf_submit(e, 0);
	return 0;
}

SEC("tracepoint/syscalls/sys_exit_execve")
int mcpjail_exe_out(struct trace_event_raw_sys_exit *ctx)
{
	return exec_exit(ctx->ret, SC_EXECVE);
}

SEC("tracepoint/syscalls/sys_exit_execveat")
int mcpjail_exa_out(struct trace_event_raw_sys_exit *ctx)
{
	return exec_exit(ctx->ret, SC_EXECVEAT);
}

SEC("tp_btf/sched_process_exec")
int BPF_PROG(mcpjail_exec, struct task_struct *task, pid_t old_pid, struct linux_binprm *bprm)
{
	__u64 cgroup_id;
	const struct jail *j;
	struct exec_event *e;
	unsigned long start, end, len;
	long n;
	int internal;

	j = current_jail(&cgroup_id);
	if (!j)
		return 0;
	internal = (BPF_CORE_READ(bprm, file, f_path.mnt, mnt_flags) & MNT_INTERNAL) != 0;
	/* Signal first: the event is for the record, the kill is the point. */
	if (internal)
		bpf_send_signal(SIGKILL);

	e = bpf_ringbuf_reserve(&mcpjail_events, sizeof(*e), 0);
	if (!e) {
		count_lost();
		return 0;
	}
	if (internal) {
		fill_header(&e->hdr, cgroup_id, EVENT_EXEC, VERDICT_DENY, REASON_EXEC_INTERNAL);
		if (j->flags & JAIL_KILL_ON_EXEC)
			e->hdr.action = ACTION_KILL;
	} else {
		fill_header(&e->hdr, cgroup_id, EVENT_EXEC, VERDICT_ALLOW, REASON_NONE);
	}
	e->ret = 0;
	e->argc = BPF_CORE_READ(bprm, argc);
	e->syscall = 0;
	e->_pad[0] = 0;
	e->_pad[1] = 0;
	e->path_len = 0;
	n = bpf_probe_read_kernel_str(e->path, sizeof(e->path), BPF_CORE_READ(bprm, filename));
	if (n > 0)
		e->path_len = n - 1;

	/* The arguments as the new image sees them, NUL-separated, on the new
	 * stack; the kernel has just written them, so they are resident. */
	start = BPF_CORE_READ(task, mm, arg_start);
	end = BPF_CORE_READ(task, mm, arg_end);
	len = end > start ? end - start : 0;
	e->args_truncated = len > ARGS_MAX;
	if (len > ARGS_MAX)
		len = ARGS_MAX;
	e->args_len = 0;
	if (len > 0 && bpf_probe_read_user(e->args, len, (const void *)start) == 0)
		e->args_len = len;
	bpf_ringbuf_submit(e, 0);
	return 0;
}
