//go:build ignore

// SPDX-License-Identifier: GPL-2.0-only
/*
 * Open watching: an open the kernel refused with EACCES or EPERM (Landlock's
 * read/write rights; also plain file permissions, which the kernel reports
 * the same way) becomes an open_event with the path as passed, its directory
 * fd and the flags. Successful opens produce nothing.
 *
 * Only sys_exit is watched: the return value says whether there is an event,
 * and the arguments are still in the thread's saved registers (syscall_args
 * in watch.h). A successful open, in a jail or not, costs one comparison;
 * no map is written.
 *
 * Paths are not matched here: relative paths, "..", symlinks and the
 * caller's cwd make a kernel-side match against filesystem.deny unreliable.
 * User space decides (DeniedByProfile) and kills for on_violation.file.
 *
 * TOCTOU: the path is read from user memory at sys_exit (as before, when
 * sys_enter saved only the pointer). Another thread of the caller can
 * rewrite the buffer after the kernel copied it (getname, right after entry)
 * and before this read: the event holds what the buffer holds at exit, not
 * necessarily what the kernel resolved. For enforcement that changes
 * nothing: Landlock refused on the kernel's copy, and the program reports on
 * the return value. The file: kill in user space matches this reported path,
 * so a caller that wins the race dodges the kill of a refused open under
 * filesystem.deny; it still got EACCES and nothing of the file, and one that
 * loses is killed. A read at sys_enter races the other way (rewrite after
 * our read, before getname) in a shorter window; a read at exit gives the
 * whole lookup as window. Neither is exact: only the kernel's own copy
 * (BPF-LSM, where it loads) is.
 *
 * open(2) and creat(2) exist on x86_64 but not on arm64; the loader skips
 * their tracepoints where the kernel has none.
 */
#include "watch.h"

char LICENSE[] SEC("license") = "GPL";

/* ret is read from the context once by each caller: the verifier refuses a
 * context pointer the compiler kept with an offset added. */
static __always_inline int open_exit(long ret, __u32 syscall)
{
	__u64 cgroup_id, args[6], path, flags = 0;
	struct open_event *e;
	__s32 dfd = AT_FDCWD;
	long n;

	if (!refused(ret))
		return 0;
	if (!current_jail(&cgroup_id))
		return 0;
	e = bpf_ringbuf_reserve(&mcpjail_events, sizeof(*e), 0);
	if (!e) {
		count_lost();
		return 0;
	}
	fill_header(&e->hdr, cgroup_id, EVENT_OPEN, VERDICT_DENY, REASON_NONE);
	e->hdr.layer = LAYER_LANDLOCK;
	e->ret = ret;
	e->syscall = syscall;
	e->_pad = 0;
	e->path_len = 0;
	e->path[0] = 0;
	if (!syscall_args(args)) {
		/* Unknown register layout: the refusal is reported without its path. */
		e->dfd = AT_FDCWD;
		e->flags = 0;
		bpf_ringbuf_submit(e, 0);
		return 0;
	}
	switch (syscall) {
	case SC_OPENAT: /* openat(dfd, filename, flags, mode) */
		dfd = (__s32)args[0];
		path = args[1];
		flags = args[2];
		break;
	case SC_OPENAT2: /* openat2(dfd, filename, how, size): flags is how's first field */
		dfd = (__s32)args[0];
		path = args[1];
		bpf_probe_read_user(&flags, sizeof(flags), (const void *)args[2]);
		break;
	case SC_OPEN: /* open(filename, flags, mode) */
		path = args[0];
		flags = args[1];
		break;
	default: /* creat(filename, mode) */
		path = args[0];
		flags = CREAT_FLAGS;
		break;
	}
	e->dfd = dfd;
	e->flags = flags;
	n = bpf_probe_read_user_str(e->path, sizeof(e->path), (const void *)path);
	if (n > 0)
		e->path_len = n - 1;
	bpf_ringbuf_submit(e, 0);
	return 0;
}

SEC("tracepoint/syscalls/sys_exit_openat")
int mcpjail_opn_out(struct trace_event_raw_sys_exit *ctx)
{
	return open_exit(ctx->ret, SC_OPENAT);
}

SEC("tracepoint/syscalls/sys_exit_openat2")
int mcpjail_op2_out(struct trace_event_raw_sys_exit *ctx)
{
	return open_exit(ctx->ret, SC_OPENAT2);
}

SEC("tracepoint/syscalls/sys_exit_open")
int mcpjail_old_out(struct trace_event_raw_sys_exit *ctx)
{
	return open_exit(ctx->ret, SC_OPEN);
}

SEC("tracepoint/syscalls/sys_exit_creat")
int mcpjail_crt_out(struct trace_event_raw_sys_exit *ctx)
{
	return open_exit(ctx->ret, SC_CREAT);
}
