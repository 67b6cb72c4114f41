//go:build ignore

// SPDX-License-Identifier: GPL-2.0-only
/*
 * Network enforcement: cgroup socket-address and socket-creation hooks.
 * A program returns 1 to allow and 0 to deny; the kernel turns a deny into
 * EPERM for the caller. Every deny emits a net_event.
 *
 * Loopback has no free pass: 127.0.0.0/8 and ::1 follow the rules.
 *
 * Kernel object names are at most 15 characters; every program and map is
 * named mcpjail_* so that bpftool shows whose they are.
 */
/*
 * UAPI headers, not vmlinux.h: the context structs (bpf_sock_addr, bpf_sock)
 * are UAPI and the verifier rewrites their loads, so the inet and socket
 * programs need no CO-RE relocation. Only the UNIX programs reach a kernel
 * type (below), and that is declared here with just the fields they read.
 */
#include <linux/bpf.h>
#include <linux/in.h>
#include <linux/un.h>
#include "egress_match.h"

/* Socket types are libc's (<sys/socket.h>), and enums in vmlinux.h; their
 * values are ABI. AF_* come from common.h. */
#define SOCK_STREAM 1
#define SOCK_DGRAM 2

char LICENSE[] SEC("license") = "GPL";

/*
 * The kernel context behind struct bpf_sock_addr (include/linux/filter.h).
 * It is not UAPI: preserve_access_index makes the two field offsets CO-RE
 * relocations, resolved against the running kernel's BTF at load time.
 */
struct bpf_sock_addr_kern {
	void *uaddr; /* struct sockaddr * in the kernel */
	__u32 uaddrlen;
} __attribute__((preserve_access_index));

extern void *bpf_cast_to_kern_ctx(void *obj) __ksym;

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, MAX_UNIX_PATHS);
	__type(key, struct unix_key);
	__type(value, __u8);
} mcpjail_unix SEC(".maps");

/* The transport of a sock_addr context, as a port_range.protocols bit. */
static __always_inline __u8 protocol_bit(struct bpf_sock_addr *ctx)
{
	switch (ctx->protocol) {
	case IPPROTO_TCP:
		return PROTO_TCP_BIT;
	case IPPROTO_UDP:
		return PROTO_UDP_BIT;
	}
	return 0;
}

static __always_inline void emit_inet(struct bpf_sock_addr *ctx, __u64 cgroup_id, __u16 kind,
				      __u8 reason, __u16 port, const __u32 *addr, int words)
{
	struct net_event *e = bpf_ringbuf_reserve(&mcpjail_events, sizeof(*e), 0);

	if (!e) {
		count_lost();
		return;
	}
	__builtin_memset(e, 0, sizeof(*e));
	fill_header(&e->hdr, cgroup_id, kind, VERDICT_DENY, reason);
	e->family = words == 1 ? AF_INET : AF_INET6;
	e->port = port;
	e->sock_type = ctx->type;
	e->protocol = ctx->protocol;
	__builtin_memcpy(e->addr, addr, 4);
	if (words == 4)
		__builtin_memcpy(e->addr, addr, 16);
	bpf_ringbuf_submit(e, 0);
}

static __always_inline int inet4(struct bpf_sock_addr *ctx, __u16 kind)
{
	__u64 cgroup_id;
	const struct jail *j = current_jail(&cgroup_id);
	__u32 addr = ctx->user_ip4;
	__u16 port = bpf_ntohs((__u16)ctx->user_port);
	__u8 reason;

	reason = j ? check_ip4(j->policy, addr, port, protocol_bit(ctx)) : REASON_NO_JAIL;
	if (reason == REASON_NONE)
		return 1;
	emit_inet(ctx, cgroup_id, kind, reason, port, &addr, 1);
	return 0;
}

static __always_inline int inet6(struct bpf_sock_addr *ctx, __u16 kind)
{
	__u64 cgroup_id;
	const struct jail *j = current_jail(&cgroup_id);
	__u32 addr[4];
	__u16 port = bpf_ntohs((__u16)ctx->user_port);
	__u8 bit = protocol_bit(ctx);
	__u8 reason;

	/* The context allows only 4-byte loads of user_ip6. */
	addr[0] = ctx->user_ip6[0];
	addr[1] = ctx->user_ip6[1];
	addr[2] = ctx->user_ip6[2];
	addr[3] = ctx->user_ip6[3];
	reason = j ? check_ip6(j->policy, addr, port, bit) : REASON_NO_JAIL;
	if (reason == REASON_NONE)
		return 1;
	emit_inet(ctx, cgroup_id, kind, reason, port, addr, 4);
	return 0;
}

SEC("cgroup/connect4")
int mcpjail_conn4(struct bpf_sock_addr *ctx)
{
	return inet4(ctx, EVENT_CONNECT);
}

SEC("cgroup/connect6")
int mcpjail_conn6(struct bpf_sock_addr *ctx)
{
	return inet6(ctx, EVENT_CONNECT);
}

SEC("cgroup/sendmsg4")
int mcpjail_send4(struct bpf_sock_addr *ctx)
{
	return inet4(ctx, EVENT_SENDMSG);
}

SEC("cgroup/sendmsg6")
int mcpjail_send6(struct bpf_sock_addr *ctx)
{
	return inet6(ctx, EVENT_SENDMSG);
}

/*
 * UNIX addresses: the hook runs before the kernel resolves the path, on the
 * bytes the caller passed. A pathname socket's name ends at the first NUL
 * (as unix_mkname_bsd does), so the key is zero-padded from there. The path
 * is compared as written: a relative path or one through a symlink does not
 * match a listed absolute path and is denied. Abstract sockets (leading NUL)
 * cannot be listed in a profile (Landlock scopes them) and are denied.
 *
 * The bytes are copied with bpf_probe_read_kernel{,_str} (CAP_PERFMON, and
 * not under lockdown=confidentiality) rather than a byte loop over a
 * bpf_rdonly_cast pointer: such a pointer only takes constant offsets, so
 * the verifier walked every length and NUL position of a 108-step loop
 * (about 200,000 instructions, 70-130 ms per program, at every load).
 */
static __always_inline int unix_addr(struct bpf_sock_addr *ctx, __u16 kind)
{
	__u64 cgroup_id;
	const struct jail *j = current_jail(&cgroup_id);
	struct bpf_sock_addr_kern *sa = bpf_cast_to_kern_ctx(ctx);
	const char *uaddr = NULL;
	const char *sun_path;
	/* One spare byte each: raw always ends in a NUL, and name can hold
	 * a 108-byte path plus the NUL that probe_read_kernel_str writes. */
	char raw[UNIX_PATH_MAX + 1] = {};
	char name[UNIX_PATH_MAX + 1] = {};
	struct unix_key key = {};
	struct net_event *e;
	__u32 len = sa->uaddrlen;
	__u8 reason = REASON_NONE;
	int unreadable;

	/* The pointer is read with the helper, not loaded as sa->uaddr: such a
	 * load of a pointer field costs 2-5 ms of verification per program
	 * (the verifier resolves the pointer's BTF type in vmlinux), the
	 * helper well under 0.1 ms. Same CO-RE offset; on a fault uaddr stays
	 * NULL, the path read below fails and the address is denied. */
	bpf_probe_read_kernel(&uaddr, sizeof(uaddr), &sa->uaddr);
	sun_path = uaddr + offsetof(struct sockaddr_un, sun_path);
	len = len > offsetof(struct sockaddr_un, sun_path) ? len - offsetof(struct sockaddr_un, sun_path) : 0;
	if (len > UNIX_PATH_MAX)
		len = UNIX_PATH_MAX;
	/* On a fault the helper zeroes raw; the address is then denied. */
	unreadable = bpf_probe_read_kernel(raw, len, sun_path) < 0;

	if (!j)
		reason = REASON_NO_JAIL;
	else if (len == 0)
		reason = REASON_UNIX_UNNAMED;
	else if (unreadable)
		reason = REASON_UNIX_PATH;
	else if (raw[0] == 0)
		reason = REASON_UNIX_ABSTRACT;
	else {
		/* Exactly the bytes before the first NUL (raw is zero after len);
		 * the rest of name stays zero. */
		bpf_probe_read_kernel_str(name, sizeof(name), raw);
		__builtin_memcpy(key.path, name, UNIX_PATH_MAX);
		key.policy = j->policy;
		if (!bpf_map_lookup_elem(&mcpjail_unix, &key))
			reason = REASON_UNIX_PATH;
	}
	if (reason == REASON_NONE)
		return 1;

	e = bpf_ringbuf_reserve(&mcpjail_events, sizeof(*e), 0);
	if (!e) {
		count_lost();
		return 0;
	}
	__builtin_memset(e, 0, sizeof(*e));
	fill_header(&e->hdr, cgroup_id, kind, VERDICT_DENY, reason);
	e->family = AF_UNIX;
	e->sock_type = ctx->type;
	e->path_len = unreadable ? 0 : len;
	/* The raw bytes (not the key) so that abstract names survive. */
	__builtin_memcpy(e->path, raw, UNIX_PATH_MAX);
	bpf_ringbuf_submit(e, 0);
	return 0;
}

SEC("cgroup/connect_unix")
int mcpjail_connun(struct bpf_sock_addr *ctx)
{
	return unix_addr(ctx, EVENT_UNIX_CONNECT);
}

SEC("cgroup/sendmsg_unix")
int mcpjail_sendun(struct bpf_sock_addr *ctx)
{
	return unix_addr(ctx, EVENT_UNIX_SENDMSG);
}

/*
 * socket(2) of AF_INET/AF_INET6: TCP and UDP only (not raw, not MPTCP, not
 * SCTP, not ICMP). The kernel runs this hook from inet_create/inet6_create
 * only (it is BPF_CGROUP_INET_SOCK_CREATE): AF_PACKET, AF_NETLINK and the
 * other families never reach it, so their refusal belongs to the seccomp
 * layer (sandbox/confine). The other cases stay as defence in depth.
 */
static __always_inline int socket_allowed(const struct bpf_sock *sk)
{
	switch (sk->family) {
	case AF_INET:
	case AF_INET6:
		if (sk->type == SOCK_STREAM)
			return sk->protocol == IPPROTO_TCP;
		if (sk->type == SOCK_DGRAM)
			return sk->protocol == IPPROTO_UDP;
		return 0;
	case AF_UNIX:
		return 1;
	case AF_NETLINK:
		return sk->protocol == NETLINK_ROUTE;
	}
	return 0;
}

SEC("cgroup/sock_create")
int mcpjail_sock(struct bpf_sock *sk)
{
	__u64 cgroup_id;
	const struct jail *j = current_jail(&cgroup_id);
	struct net_event *e;

	if (j && socket_allowed(sk))
		return 1;
	e = bpf_ringbuf_reserve(&mcpjail_events, sizeof(*e), 0);
	if (!e) {
		count_lost();
		return 0;
	}
	__builtin_memset(e, 0, sizeof(*e));
	fill_header(&e->hdr, cgroup_id, EVENT_SOCKET, VERDICT_DENY, j ? REASON_SOCKET : REASON_NO_JAIL);
	e->family = sk->family;
	e->sock_type = sk->type;
	e->protocol = sk->protocol;
	bpf_ringbuf_submit(e, 0);
	return 0;
}
