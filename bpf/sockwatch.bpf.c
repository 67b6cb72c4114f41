//go:build ignore

// SPDX-License-Identifier: GPL-2.0-only
/*
 * Socket creation: refusals by seccomp and by cgroup/sock_create, and
 * network kill, for socket(2) and socketpair(2).
 *
 * mcpjail's seccomp deny-list (sandbox/confine) refuses packet, non-route
 * netlink, raw IP and MPTCP sockets with EPERM before any socket exists, so
 * no cgroup hook sees them. Seccomp also skips the sys_enter tracepoint of
 * the call it refuses (it runs first in the syscall entry work), while
 * sys_exit still fires (TestSeccompSocketEvent checks both on the kernel).
 * So sys_enter leaves a marker for the thread in mcpjail_pending: an EPERM
 * at sys_exit without it is seccomp's refusal, reported here with layer
 * seccomp; with it, the call ran, and EPERM came from cgroup/sock_create
 * (net.bpf.c), which already reported it. Capability checks that would
 * also say EPERM (AF_PACKET without CAP_NET_RAW) thus never pass for seccomp.
 * Limit: with mcpjail_pending full (MAX_PENDING threads inside watched
 * syscalls at once) the marker is missing and a hook's refusal would also be
 * reported as seccomp's; the kill is the same either way.
 *
 * The refused call's arguments come from the task's saved user registers
 * (syscall_args in watch.h), not from memory: seccomp decided on these very
 * registers and the call never ran, so they are exactly what was refused,
 * and no other thread can change them.
 *
 * As everywhere, the kill decides on the kernel's return value.
 */
#include "watch.h"

char LICENSE[] SEC("license") = "GPL";

static __always_inline void report_seccomp(__u64 cgroup_id, long ret, __u16 syscall, int kill)
{
	struct seccomp_event *e = bpf_ringbuf_reserve(&mcpjail_events, sizeof(*e), 0);

	if (!e) {
		count_lost();
		return;
	}
	__builtin_memset(e, 0, sizeof(*e));
	fill_header(&e->hdr, cgroup_id, EVENT_SECCOMP, VERDICT_DENY, REASON_NONE);
	e->hdr.layer = LAYER_SECCOMP;
	if (kill)
		e->hdr.action = ACTION_KILL;
	e->ret = ret;
	e->syscall = syscall;
	e->have_args = syscall_args(e->args);
	bpf_ringbuf_submit(e, 0);
}

static __always_inline int socket_enter(__u32 syscall)
{
	__u64 cgroup_id;

	if (!current_jail(&cgroup_id))
		return 0;
	remember(cgroup_id, syscall); /* the marker: the call ran */
	return 0;
}

/* ret is read from the context once by the caller: the verifier refuses a
 * context pointer the compiler kept with an offset added. */
static __always_inline int socket_exit(long ret, __u16 syscall)
{
	__u64 cgroup_id;
	const struct jail *j = current_jail(&cgroup_id);
	struct pending p;
	int ran, kill;

	if (!j)
		return 0;
	ran = take(&p, syscall);
	if (ret != -EPERM)
		return 0;
	kill = (j->flags & JAIL_KILL_ON_NETWORK) != 0;
	if (ran) {
		if (kill)
			kill_for_network(cgroup_id, ret, syscall);
		return 0;
	}
	/* Signal first: the event is for the record, the kill is the point. */
	if (kill)
		bpf_send_signal(SIGKILL);
	report_seccomp(cgroup_id, ret, syscall, kill);
	return 0;
}

SEC("tracepoint/syscalls/sys_enter_socket")
int mcpjail_sck_in(struct trace_event_raw_sys_enter *ctx)
{
	return socket_enter(SC_SOCKET);
}

SEC("tracepoint/syscalls/sys_exit_socket")
int mcpjail_sck_out(struct trace_event_raw_sys_exit *ctx)
{
	return socket_exit(ctx->ret, SC_SOCKET);
}

SEC("tracepoint/syscalls/sys_enter_socketpair")
int mcpjail_spr_in(struct trace_event_raw_sys_enter *ctx)
{
	return socket_enter(SC_SOCKETPAIR);
}

SEC("tracepoint/syscalls/sys_exit_socketpair")
int mcpjail_spr_out(struct trace_event_raw_sys_exit *ctx)
{
	return socket_exit(ctx->ret, SC_SOCKETPAIR);
}
