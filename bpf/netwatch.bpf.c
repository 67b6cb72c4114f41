//go:build ignore

// SPDX-License-Identifier: GPL-2.0-only
/*
 * Network watching and network kill, at sys_exit of the network syscalls.
 *
 * EPERM: a cgroup hook of net.bpf.c refused the call and already reported
 * it with the address. (socket and socketpair, which seccomp may refuse
 * too, are watched by sockwatch.bpf.c.) With on_violation.network
 * kill, the caller gets SIGKILL here, before it returns to user space, and a
 * kill_event says so; user space then kills the rest of the jail's cgroup.
 *
 * EACCES from connect on an IPv4/IPv6 socket: Landlock's TCP connect rule
 * refused a port the cgroup hook allowed. The address goes into a net_event
 * with layer Landlock; it is a network violation too, so network kill
 * applies. (EACCES from a UNIX connect is a file permission on the socket,
 * not a jail decision: no event.)
 *
 * Only sys_exit is watched: every program compares the return value first,
 * so a call that succeeds, in a jail or not, costs one comparison. The
 * sockaddr of a Landlock refusal is read at exit through the pointer in the
 * thread's saved registers (syscall_args in watch.h). A racing thread can
 * rewrite it after the kernel copied it (move_addr_to_kernel, at entry), so
 * the event's address is what the buffer holds at exit (see file.bpf.c). As
 * in exec.bpf.c, the kill decides on the kernel's return value, never on
 * user memory, so a racing thread cannot change whether we kill.
 */
#include "watch.h"

char LICENSE[] SEC("license") = "GPL";

/* sizeof(struct sockaddr_in6): the longest inet address connect accepts. */
#define SOCKADDR_IN6_LEN 28

/* Reports a Landlock-refused connect; returns 1 when it was one (an inet
 * address), whether or not the ring buffer had room. */
static __always_inline int landlock_connect(__u64 cgroup_id, long ret, int kill)
{
	struct sockaddr_in6 sa = {};
	struct net_event *e;
	__u64 args[6];
	__u32 len;

	/* connect(fd, uservaddr, addrlen) */
	if (!syscall_args(args))
		return 0;
	len = (__u32)args[2];
	if (len > SOCKADDR_IN6_LEN)
		len = SOCKADDR_IN6_LEN;
	if (len < sizeof(struct sockaddr_in) || bpf_probe_read_user(&sa, len, (const void *)args[1]))
		return 0;
	if (sa.sin6_family != AF_INET && sa.sin6_family != AF_INET6)
		return 0;
	e = bpf_ringbuf_reserve(&mcpjail_events, sizeof(*e), 0);
	if (!e) {
		count_lost();
		return 1;
	}
	__builtin_memset(e, 0, sizeof(*e));
	fill_header(&e->hdr, cgroup_id, EVENT_CONNECT, VERDICT_DENY, REASON_NONE);
	e->hdr.layer = LAYER_LANDLOCK;
	if (kill)
		e->hdr.action = ACTION_KILL;
	e->family = sa.sin6_family;
	e->port = bpf_ntohs(sa.sin6_port);
	e->sock_type = SOCK_STREAM; /* Landlock rules TCP only */
	e->protocol = IPPROTO_TCP;
	if (sa.sin6_family == AF_INET)
		__builtin_memcpy(e->addr, &((struct sockaddr_in *)&sa)->sin_addr, 4);
	else
		__builtin_memcpy(e->addr, &sa.sin6_addr, 16);
	bpf_ringbuf_submit(e, 0);
	return 1;
}

/* ret is read from the context once by each caller: the verifier refuses a
 * context pointer the compiler kept with an offset added. */
static __always_inline int connect_exit(long ret)
{
	__u64 cgroup_id;
	const struct jail *j;
	int kill;

	if (ret != -EPERM && ret != -EACCES)
		return 0;
	j = current_jail(&cgroup_id);
	if (!j)
		return 0;
	kill = (j->flags & JAIL_KILL_ON_NETWORK) != 0;
	if (ret == -EPERM) {
		if (kill)
			kill_for_network(cgroup_id, ret, SC_CONNECT);
		return 0;
	}
	/* EACCES. Signal first: the event is for the record, the kill is the
	 * point, and it must not depend on user memory a racing thread can
	 * unmap or rewrite. An EACCES without an inet address to report (a UNIX
	 * socket's file permission) still kills: a kill_event records it. */
	if (kill)
		bpf_send_signal(SIGKILL);
	if (!landlock_connect(cgroup_id, ret, kill) && kill)
		report_kill(cgroup_id, ret, SC_CONNECT);
	return 0;
}

SEC("tracepoint/syscalls/sys_exit_connect")
int mcpjail_con_out(struct trace_event_raw_sys_exit *ctx)
{
	return connect_exit(ctx->ret);
}

static __always_inline int network_exit(long ret, __u16 syscall)
{
	__u64 cgroup_id;
	const struct jail *j;

	if (ret != -EPERM)
		return 0;
	j = current_jail(&cgroup_id);
	if (j && (j->flags & JAIL_KILL_ON_NETWORK))
		kill_for_network(cgroup_id, ret, syscall);
	return 0;
}

SEC("tracepoint/syscalls/sys_exit_sendto")
int mcpjail_sto_out(struct trace_event_raw_sys_exit *ctx)
{
	return network_exit(ctx->ret, SC_SENDTO);
}

SEC("tracepoint/syscalls/sys_exit_sendmsg")
int mcpjail_smg_out(struct trace_event_raw_sys_exit *ctx)
{
	return network_exit(ctx->ret, SC_SENDMSG);
}

SEC("tracepoint/syscalls/sys_exit_sendmmsg")
int mcpjail_smm_out(struct trace_event_raw_sys_exit *ctx)
{
	return network_exit(ctx->ret, SC_SENDMMSG);
}
