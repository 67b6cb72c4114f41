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
 * refused a port the cgroup hook allowed. The address, saved at sys_enter,
 * goes into a net_event with layer Landlock; it is a network violation too,
 * so network kill applies. (EACCES from a UNIX connect is a file permission
 * on the socket, not a jail decision: no event.)
 *
 * As in exec.bpf.c, the kill decides on the kernel's return value, never on
 * user memory, so a racing thread cannot change whether we kill.
 */
#include "watch.h"

char LICENSE[] SEC("license") = "GPL";

/* sizeof(struct sockaddr_in6): the longest inet address connect accepts. */
#define SOCKADDR_IN6_LEN 28

SEC("tracepoint/syscalls/sys_enter_connect")
int mcpjail_con_in(struct trace_event_raw_sys_enter *ctx)
{
	__u64 cgroup_id;

	if (!current_jail(&cgroup_id))
		return 0;
	/* connect(fd, uservaddr, addrlen) */
	remember(cgroup_id, SC_CONNECT, ctx->args[1], 0, 0, (__u32)ctx->args[2]);
	return 0;
}

/* Reports a Landlock-refused connect; returns 1 when it was one. */
static __always_inline int landlock_connect(const struct pending *p, __u64 cgroup_id, long ret,
					    int kill)
{
	struct sockaddr_in6 sa = {};
	struct net_event *e;
	__u32 len = p->len;

	if (len > SOCKADDR_IN6_LEN)
		len = SOCKADDR_IN6_LEN;
	if (len < sizeof(struct sockaddr_in) || bpf_probe_read_user(&sa, len, (const void *)p->ptr))
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

SEC("tracepoint/syscalls/sys_exit_connect")
int mcpjail_con_out(struct trace_event_raw_sys_exit *ctx)
{
	__u64 cgroup_id;
	const struct jail *j = current_jail(&cgroup_id);
	struct pending p;
	int have, kill;

	if (!j)
		return 0;
	have = take(&p, SC_CONNECT);
	kill = (j->flags & JAIL_KILL_ON_NETWORK) != 0;
	if (ctx->ret == -EPERM) {
		if (kill)
			kill_for_network(cgroup_id, ctx->ret, SC_CONNECT);
		return 0;
	}
	if (ctx->ret == -EACCES && have) {
		if (kill)
			bpf_send_signal(SIGKILL);
		landlock_connect(&p, cgroup_id, ctx->ret, kill);
	}
	return 0;
}

static __always_inline int network_exit(struct trace_event_raw_sys_exit *ctx, __u16 syscall)
{
	__u64 cgroup_id;
	const struct jail *j = current_jail(&cgroup_id);

	if (j && ctx->ret == -EPERM && (j->flags & JAIL_KILL_ON_NETWORK))
		kill_for_network(cgroup_id, ctx->ret, syscall);
	return 0;
}

SEC("tracepoint/syscalls/sys_exit_sendto")
int mcpjail_sto_out(struct trace_event_raw_sys_exit *ctx)
{
	return network_exit(ctx, SC_SENDTO);
}

SEC("tracepoint/syscalls/sys_exit_sendmsg")
int mcpjail_smg_out(struct trace_event_raw_sys_exit *ctx)
{
	return network_exit(ctx, SC_SENDMSG);
}

SEC("tracepoint/syscalls/sys_exit_sendmmsg")
int mcpjail_smm_out(struct trace_event_raw_sys_exit *ctx)
{
	return network_exit(ctx, SC_SENDMMSG);
}
