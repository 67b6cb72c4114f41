//go:build ignore

// SPDX-License-Identifier: GPL-2.0-only
/*
 * network.egress_budget: a cgroup_skb/egress program counts the bytes a jail
 * sends and drops what goes over the budget within a window.
 *
 * What is counted: skb->len at the cgroup egress hook (ip_finish_output and
 * ip6_finish_output), which is the IP packet as the stack hands it down: IP
 * header, transport header and payload. A GSO packet is counted once, before
 * segmentation, so per-segment headers added later are not counted; the
 * payload that leaves is therefore always below the counted bytes. Loopback
 * traffic counts like any other. UNIX sockets never reach the hook.
 *
 * Whose packets: the kernel runs the program for packets of sockets whose
 * cgroup (fixed when the socket is created, inherited by accepted sockets)
 * is the jail's. That includes what the kernel sends on the socket's behalf
 * later and from any context: TCP retransmits, ACKs of received data,
 * SYN-ACKs of a listener. It excludes sockets created outside the jail and
 * passed in, and the kernel's own control sockets (RSTs for closed ports,
 * TIME-WAIT ACKs).
 *
 * Window: fixed, not sliding. The first starts at Register; once one has
 * ended, the next starts with the next packet. A fixed window needs one
 * counter instead of a history of packets, and it is never more permissive
 * than its definition: at most `budget` bytes pass in any one window. The
 * price is one window of slack: a burst straddling a boundary can send up
 * to twice the budget within one window length.
 *
 * Over the budget: the packet that would go over, and every later one of the
 * window, is dropped (the sender sees EPERM on UDP; TCP stalls and
 * retransmits, which are dropped too). One event is emitted per latch. With
 * on_violation.network kill the latch never resets: user space kills the
 * whole cgroup, and until it has, nothing more leaves. With deny the latch
 * resets with the window, making the budget a hard rate cap.
 *
 * mcpjail_accept, attached to every jail, closes a gap in Landlock's bind
 * rules: listen(2) on an unbound TCP socket makes the kernel pick a port
 * without any bind(2), so no bind rule is checked, and whoever connects can
 * be sent data. A listener answers a connection with a SYN-ACK from its
 * port; the program drops every SYN-ACK of a jail's socket whose source
 * port is not in network.bind, so no handshake completes on such a port.
 * (Server-side TCP Fast Open could pass data before the handshake; Linux
 * only does that where net.ipv4.tcp_fastopen enables the server side, off
 * by default.) An IPv6 packet whose extension headers hide the transport
 * header beyond a few hops is dropped too: it could be one. (Without
 * CAP_NET_RAW a jailed socket cannot add extension headers at all.)
 */
#include "ports.h"

char LICENSE[] SEC("license") = "GPL";

/* Whether cgroup_skb programs may call the current-task helpers (pid_tgid,
 * comm, current cgroup id): Linux 6.1 refuses them for this program type.
 * The loader (egress.go) clears it where they are missing; in .rodata it is
 * a constant to the verifier, which then never walks the dead calls. */
const volatile __u8 task_helpers = 1;

/* budget_state.flags */
#define BUDGET_KILL (1U << 0) /* on_violation.network is kill: the latch never resets */

/* Value of `mcpjail_budget`, keyed by the jail's cgroup id. Register writes
 * budget, window_ns, flags and window_start; the program updates the rest. */
struct budget_state {
	__u64 budget;         /* bytes allowed per window (> 0) */
	__u64 window_ns;      /* window length (>= 1ms) */
	__u32 flags;          /* BUDGET_* */
	__u32 exceeded;       /* latch: 1 once over budget; reset with the window unless BUDGET_KILL */
	__u64 window_start;   /* bpf_ktime_get_ns (CLOCK_MONOTONIC) when the window began */
	__u64 bytes;          /* counted in the window, dropped packets included
			       * (not those dropped once a kill latch is set) */
	__u64 dropped_packets;/* since Register */
	__u64 dropped_bytes;
};

/* Body of EVENT_EGRESS_BUDGET records. */
struct budget_event {
	struct event_header hdr;
	__u64 budget;
	__u64 window_ns;
	__u64 bytes;      /* counted in the window, with the packet that went over */
	__u32 packet_len; /* that packet's length */
	__u32 flags;      /* budget_state.flags: BUDGET_KILL says the server is to be killed */
	__u16 family;     /* of the packet; 0 if not IP */
	__u16 port;       /* destination (TCP, UDP), host byte order; else 0 */
	__u16 protocol;   /* IPPROTO_* (IPv6: the first next header) */
	__u16 _pad;
	__u8 addr[16];    /* destination; IPv4 in the first 4 bytes */
};

_Static_assert(sizeof(struct budget_event) == 48 + 32 + 8 + 16, "budget_event layout");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, MAX_JAILS);
	__type(key, __u64);
	__type(value, struct budget_state);
} mcpjail_budget SEC(".maps");

const struct budget_event *unused_budget_event __attribute__((unused));

#define READ_ONCE_U64(x) (*(volatile __u64 *)&(x))
#define READ_ONCE_U32(x) (*(volatile __u32 *)&(x))

/* Not in vmlinux.h (UAPI macros). */
#define ETH_P_IP 0x0800
#define ETH_P_IPV6 0x86DD
#define IP_OFFSET_MASK 0x1fff

/* fill_header for a deny without the task (tgid, tid and comm stay 0, as
 * the caller zeroed them): for packets sent from softirq or timer context,
 * and where cgroup_skb programs lack the task helpers. */
static __always_inline void fill_header_taskless(struct event_header *h, __u64 cgroup_id, __u16 kind,
						 __u8 reason)
{
	h->cgroup_id = cgroup_id;
	h->boot_ns = bpf_ktime_get_boot_ns();
	h->kind = kind;
	h->verdict = VERDICT_DENY;
	h->reason = reason;
	h->action = ACTION_NONE;
	h->layer = LAYER_BPF;
}

/* The packet's destination, from its headers (data starts at the IP header
 * in this hook); the socket would not know it for unconnected UDP. */
static __always_inline void fill_destination(struct budget_event *e, struct __sk_buff *skb)
{
	__u16 ports[2];
	__u32 l4 = 0;
	__u8 proto;

	if (skb->protocol == bpf_htons(ETH_P_IP)) {
		struct iphdr ip;

		if (bpf_skb_load_bytes(skb, 0, &ip, sizeof(ip)))
			return;
		e->family = AF_INET;
		__builtin_memcpy(e->addr, &ip.daddr, 4);
		proto = ip.protocol;
		/* Fragments after the first carry no transport header. */
		if (!(ip.frag_off & bpf_htons(IP_OFFSET_MASK)))
			l4 = ip.ihl * 4;
	} else if (skb->protocol == bpf_htons(ETH_P_IPV6)) {
		struct ipv6hdr ip6;

		if (bpf_skb_load_bytes(skb, 0, &ip6, sizeof(ip6)))
			return;
		e->family = AF_INET6;
		__builtin_memcpy(e->addr, &ip6.daddr, 16);
		proto = ip6.nexthdr; /* extension headers: the port stays 0 */
		l4 = sizeof(ip6);
	} else {
		return;
	}
	e->protocol = proto;
	if (l4 && (proto == IPPROTO_TCP || proto == IPPROTO_UDP) &&
	    !bpf_skb_load_bytes(skb, l4, ports, sizeof(ports)))
		e->port = bpf_ntohs(ports[1]);
}

static __always_inline void emit_budget(struct __sk_buff *skb, __u64 cgroup_id, __u8 reason,
					const struct budget_state *b, __u64 bytes, __u32 len)
{
	struct budget_event *e = bpf_ringbuf_reserve(&mcpjail_events, sizeof(*e), 0);

	if (!e) {
		count_lost();
		return;
	}
	__builtin_memset(e, 0, sizeof(*e));
	if (task_helpers) {
		fill_header(&e->hdr, cgroup_id, EVENT_EGRESS_BUDGET, VERDICT_DENY, reason);
		/* Retransmits and ACKs go out from timers and softirqs, under whatever
		 * task happens to run: name the task only when it is in the jail. */
		if (bpf_get_current_cgroup_id() != cgroup_id) {
			e->hdr.tgid = 0;
			e->hdr.tid = 0;
			__builtin_memset(e->hdr.comm, 0, sizeof(e->hdr.comm));
		}
	} else {
		fill_header_taskless(&e->hdr, cgroup_id, EVENT_EGRESS_BUDGET, reason);
	}
	if (b) {
		e->budget = b->budget;
		e->window_ns = b->window_ns;
		e->flags = b->flags;
	}
	e->bytes = bytes;
	e->packet_len = len;
	fill_destination(e, skb);
	bpf_ringbuf_submit(e, 0);
}

static __always_inline int drop(struct budget_state *b, __u32 len)
{
	__sync_fetch_and_add(&b->dropped_packets, 1);
	__sync_fetch_and_add(&b->dropped_bytes, len);
	return 0;
}

SEC("cgroup_skb/egress")
int mcpjail_egress(struct __sk_buff *skb)
{
	/* The socket's cgroup, not the current task's: see the top comment. */
	__u64 cgroup_id = bpf_skb_cgroup_id(skb);
	struct budget_state *b = bpf_map_lookup_elem(&mcpjail_budget, &cgroup_id);
	__u32 len = skb->len;
	__u64 now, start, total;

	if (!b) {
		/* Attached to a jail with a budget, run for a socket of a cgroup
		 * below it (phase 1 refuses such sockets at socket()): fail closed. */
		emit_budget(skb, cgroup_id, REASON_NO_JAIL, 0, 0, len);
		return 0;
	}
	if ((b->flags & BUDGET_KILL) && READ_ONCE_U32(b->exceeded))
		return drop(b, len);

	/*
	 * Start a new window when the current one has ended. The CAS elects one
	 * CPU to reset; a packet counted on another CPU between that CAS and the
	 * reset of `bytes` is forgotten. The error is bounded: at most one packet
	 * (<= 64 KiB with GSO) per program run in progress at that instant, once
	 * per window, and it can only let the new window start slightly
	 * under-counted, never let an earlier window exceed its budget. With
	 * deny, a CPU that latched the new window before the reset of
	 * `exceeded` costs one extra event, nothing more.
	 */
	now = bpf_ktime_get_ns();
	start = READ_ONCE_U64(b->window_start);
	if (now - start >= b->window_ns &&
	    __sync_val_compare_and_swap(&b->window_start, start, now) == start) {
		__sync_lock_test_and_set(&b->bytes, 0);
		if (!(b->flags & BUDGET_KILL))
			__sync_lock_test_and_set(&b->exceeded, 0);
	}

	/* Add first, then compare: the sum seen by each packet includes every
	 * packet counted before it on any CPU, so the packets that pass within
	 * a window never total more than the budget. */
	total = __sync_fetch_and_add(&b->bytes, len) + len;
	if (total <= b->budget)
		return 1;
	if (__sync_val_compare_and_swap(&b->exceeded, 0, 1) == 0)
		emit_budget(skb, cgroup_id, REASON_EGRESS_BUDGET, b, total, len);
	return drop(b, len);
}

/* Value of `mcpjail_bind`, keyed by policy id: network.bind's TCP ports. A
 * policy with no bind rule has no entry, and every SYN-ACK is dropped. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, MAX_JAILS);
	__type(key, __u32);
	__type(value, struct port_set);
} mcpjail_bind SEC(".maps");

/* UAPI macros (<linux/in6.h>), so not in vmlinux.h. */
#define IPPROTO_HOPOPTS 0
#define IPPROTO_ROUTING 43
#define IPPROTO_FRAGMENT 44
#define IPPROTO_DSTOPTS 60

#define TCP_FLAG_SYN 0x02
#define TCP_FLAG_ACK 0x10
#define IPV6_EXT_MAX 4 /* extension headers walked before giving up */

/* The TCP header's offset in an IPv4 packet, or 0 when it has none. */
static __always_inline __u32 tcp_offset4(struct __sk_buff *skb, struct iphdr *ip)
{
	if (bpf_skb_load_bytes(skb, 0, ip, sizeof(*ip)) || ip->protocol != IPPROTO_TCP ||
	    (ip->frag_off & bpf_htons(IP_OFFSET_MASK)))
		return 0;
	return ip->ihl * 4;
}

/* The TCP header's offset in an IPv6 packet, 0 when it has none, or -1 when
 * the extension headers go on for longer than the walk. */
static __always_inline long tcp_offset6(struct __sk_buff *skb, struct ipv6hdr *ip6)
{
	__u32 off = sizeof(*ip6);
	__u8 next, ext[2];

	if (bpf_skb_load_bytes(skb, 0, ip6, sizeof(*ip6)))
		return 0;
	next = ip6->nexthdr;
	for (int i = 0; i < IPV6_EXT_MAX; i++) {
		switch (next) {
		case IPPROTO_TCP:
			return off;
		case IPPROTO_HOPOPTS:
		case IPPROTO_ROUTING:
		case IPPROTO_DSTOPTS:
			if (bpf_skb_load_bytes(skb, off, ext, sizeof(ext)))
				return -1;
			next = ext[0];
			off += (ext[1] + 1) * 8;
			break;
		case IPPROTO_FRAGMENT:
			/* 8 bytes; a later fragment carries no TCP header. */
			if (bpf_skb_load_bytes(skb, off, ext, sizeof(ext)))
				return -1;
			next = ext[0];
			off += 8;
			break;
		default:
			return 0;
		}
	}
	return next == IPPROTO_TCP ? off : -1;
}

/* SYN-ACKs leave from softirq context, under whatever task runs: the event
 * names no task. */
static __always_inline void emit_accept(__u64 cgroup_id, __u8 reason, __u16 family, __u16 port,
					__u16 protocol, const void *addr)
{
	struct net_event *e = bpf_ringbuf_reserve(&mcpjail_events, sizeof(*e), 0);

	if (!e) {
		count_lost();
		return;
	}
	__builtin_memset(e, 0, sizeof(*e));
	fill_header_taskless(&e->hdr, cgroup_id, EVENT_ACCEPT, reason);
	e->family = family;
	e->port = port;
	e->sock_type = 1; /* SOCK_STREAM */
	e->protocol = protocol;
	if (family == AF_INET)
		__builtin_memcpy(e->addr, addr, 4);
	else
		__builtin_memcpy(e->addr, addr, 16);
	bpf_ringbuf_submit(e, 0);
}

SEC("cgroup_skb/egress")
int mcpjail_accept(struct __sk_buff *skb)
{
	struct iphdr ip;
	struct ipv6hdr ip6;
	__u8 tcp[14]; /* ports, sequence and ack numbers, offset, flags */
	__u16 family, port;
	const void *addr;
	long off;

	if (skb->protocol == bpf_htons(ETH_P_IP)) {
		off = tcp_offset4(skb, &ip);
		family = AF_INET;
		addr = &ip.saddr;
	} else if (skb->protocol == bpf_htons(ETH_P_IPV6)) {
		off = tcp_offset6(skb, &ip6);
		family = AF_INET6;
		addr = &ip6.saddr;
	} else {
		return 1;
	}
	port = 0;
	if (off > 0) {
		if (bpf_skb_load_bytes(skb, off, tcp, sizeof(tcp)))
			return 1; /* a truncated header: the stack sends no such SYN-ACK */
		if ((tcp[13] & (TCP_FLAG_SYN | TCP_FLAG_ACK)) != (TCP_FLAG_SYN | TCP_FLAG_ACK))
			return 1;
		port = ((__u16)tcp[0] << 8) | tcp[1];
	} else if (off == 0) {
		return 1;
	}

	/* The socket's cgroup: see the top comment. */
	__u64 cgroup_id = bpf_skb_cgroup_id(skb);
	const struct jail *j = bpf_map_lookup_elem(&mcpjail_jails, &cgroup_id);
	__u8 reason = REASON_NO_JAIL;

	if (j) {
		if (off > 0) {
			__u32 policy = j->policy;

			if (port_allowed(bpf_map_lookup_elem(&mcpjail_bind, &policy), port, PROTO_TCP_BIT))
				return 1;
		}
		reason = off > 0 ? REASON_BIND_PORT : REASON_IPV6_HEADERS;
	}
	emit_accept(cgroup_id, reason, family, port, off > 0 ? IPPROTO_TCP : 0, addr);
	return 0;
}
