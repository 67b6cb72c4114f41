/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * The egress rule maps and their matching, shared by the cgroup hooks
 * (net.bpf.c) and the BPF-LSM socket_connect hook (lsm.bpf.c): one set of
 * rules, one reading of them. Works with either the UAPI headers or
 * vmlinux.h (see common.h).
 */
#ifndef MCPJAIL_EGRESS_MATCH_H
#define MCPJAIL_EGRESS_MATCH_H

#include "ports.h"

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, MAX_EGRESS_PREFIXES);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct egress4_key);
	__type(value, struct port_set);
} mcpjail_egress4 SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, MAX_EGRESS_PREFIXES);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct egress6_key);
	__type(value, struct port_set);
} mcpjail_egress6 SEC(".maps");

static __always_inline __u8 check_ports(const struct port_set *ps, __u16 port, __u8 bit)
{
	if (!ps)
		return REASON_NO_PREFIX;
	if (!bit)
		return REASON_PROTOCOL;
	return port_allowed(ps, port, bit) ? REASON_NONE : REASON_PORT;
}

/* addr_be is the IPv4 address in network byte order. */
static __always_inline __u8 check_ip4(__u32 policy, __u32 addr_be, __u16 port, __u8 bit)
{
	struct egress4_key key = { .prefixlen = 32 + 32, .policy = policy };

	__builtin_memcpy(key.addr, &addr_be, 4);
	return check_ports(bpf_map_lookup_elem(&mcpjail_egress4, &key), port, bit);
}

/* addr is the IPv6 address in network byte order. ::ffff:a.b.c.d reaches an
 * IPv4 peer: the IPv4 rules decide. */
static __always_inline __u8 check_ip6(__u32 policy, const __u32 *addr, __u16 port, __u8 bit)
{
	struct egress6_key key = { .prefixlen = 32 + 128, .policy = policy };

	if (addr[0] == 0 && addr[1] == 0 && addr[2] == bpf_htonl(0xffff))
		return check_ip4(policy, addr[3], port, bit);
	__builtin_memcpy(key.addr, addr, 16);
	return check_ports(bpf_map_lookup_elem(&mcpjail_egress6, &key), port, bit);
}

#endif /* MCPJAIL_EGRESS_MATCH_H */
