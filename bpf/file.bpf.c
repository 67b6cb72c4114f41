//go:build ignore

// SPDX-License-Identifier: GPL-2.0-only
/*
 * Open watching: an open the kernel refused with EACCES or EPERM (Landlock's
 * read/write rights; also plain file permissions, which the kernel reports
 * the same way) becomes an open_event with the path as passed, its directory
 * fd and the flags. Successful opens produce nothing.
 *
 * Paths are not matched here: relative paths, "..", symlinks and the
 * caller's cwd make a kernel-side match against filesystem.deny unreliable.
 * User space decides (DeniedByProfile) and kills for on_violation.file.
 *
 * open(2) and creat(2) exist on x86_64 but not on arm64; the loader skips
 * their tracepoints where the kernel has none.
 */
#include "watch.h"

char LICENSE[] SEC("license") = "GPL";

static __always_inline int open_enter(__u32 syscall, __s32 dfd, __u64 path, __u64 flags)
{
	__u64 cgroup_id;

	if (!current_jail(&cgroup_id))
		return 0;
	remember(cgroup_id, syscall, path, flags, dfd, 0);
	return 0;
}

static __always_inline int open_exit(struct trace_event_raw_sys_exit *ctx, __u32 syscall)
{
	__u64 cgroup_id;
	struct pending p;
	struct open_event *e;
	long n;

	if (!current_jail(&cgroup_id))
		return 0;
	if (!take(&p, syscall) || !refused(ctx->ret))
		return 0;
	e = bpf_ringbuf_reserve(&mcpjail_events, sizeof(*e), 0);
	if (!e) {
		count_lost();
		return 0;
	}
	fill_header(&e->hdr, cgroup_id, EVENT_OPEN, VERDICT_DENY, REASON_NONE);
	e->hdr.layer = LAYER_LANDLOCK;
	e->ret = ctx->ret;
	e->dfd = p.dfd;
	e->flags = p.flags;
	e->syscall = syscall;
	e->_pad = 0;
	e->path_len = 0;
	e->path[0] = 0;
	n = bpf_probe_read_user_str(e->path, sizeof(e->path), (const void *)p.ptr);
	if (n > 0)
		e->path_len = n - 1;
	bpf_ringbuf_submit(e, 0);
	return 0;
}

SEC("tracepoint/syscalls/sys_enter_openat")
int mcpjail_opn_in(struct trace_event_raw_sys_enter *ctx)
{
	/* openat(dfd, filename, flags, mode) */
	return open_enter(SC_OPENAT, (__s32)ctx->args[0], ctx->args[1], ctx->args[2]);
}

SEC("tracepoint/syscalls/sys_exit_openat")
int mcpjail_opn_out(struct trace_event_raw_sys_exit *ctx)
{
	return open_exit(ctx, SC_OPENAT);
}

SEC("tracepoint/syscalls/sys_enter_openat2")
int mcpjail_op2_in(struct trace_event_raw_sys_enter *ctx)
{
	__u64 cgroup_id, flags = 0;

	if (!current_jail(&cgroup_id))
		return 0;
	/* openat2(dfd, filename, how, size): flags is how's first field. An
	 * unreadable how fails the syscall with EFAULT, which is no event. */
	bpf_probe_read_user(&flags, sizeof(flags), (const void *)ctx->args[2]);
	remember(cgroup_id, SC_OPENAT2, ctx->args[1], flags, (__s32)ctx->args[0], 0);
	return 0;
}

SEC("tracepoint/syscalls/sys_exit_openat2")
int mcpjail_op2_out(struct trace_event_raw_sys_exit *ctx)
{
	return open_exit(ctx, SC_OPENAT2);
}

SEC("tracepoint/syscalls/sys_enter_open")
int mcpjail_old_in(struct trace_event_raw_sys_enter *ctx)
{
	/* open(filename, flags, mode) */
	return open_enter(SC_OPEN, AT_FDCWD, ctx->args[0], ctx->args[1]);
}

SEC("tracepoint/syscalls/sys_exit_open")
int mcpjail_old_out(struct trace_event_raw_sys_exit *ctx)
{
	return open_exit(ctx, SC_OPEN);
}

SEC("tracepoint/syscalls/sys_enter_creat")
int mcpjail_crt_in(struct trace_event_raw_sys_enter *ctx)
{
	return open_enter(SC_CREAT, AT_FDCWD, ctx->args[0], CREAT_FLAGS);
}

SEC("tracepoint/syscalls/sys_exit_creat")
int mcpjail_crt_out(struct trace_event_raw_sys_exit *ctx)
{
	return open_exit(ctx, SC_CREAT);
}
