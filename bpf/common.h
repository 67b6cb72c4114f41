/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * Maps, records and helpers shared by every mcpjail eBPF program.
 *
 * Identity: a jailed task is found by its cgroup v2 id (what
 * bpf_get_current_cgroup_id returns) in the `jails` hash map, which gives the
 * jail's policy id. Rule maps are keyed by that policy id, so one set of maps
 * serves every jail, and a later daemon can pin them once.
 *
 * Events: every record starts with struct event_header; `kind` says which
 * body follows. Phase 1 has only the network body; exec/file records of later
 * phases add their own bodies without changing the header. A record the ring
 * buffer has no room for is counted in `lost`, never dropped silently.
 */
#ifndef MCPJAIL_COMMON_H
#define MCPJAIL_COMMON_H

/*
 * Kernel types: vmlinux.h by default (tracepoint programs read kernel
 * structs with CO-RE). A source that includes the UAPI <linux/bpf.h> first
 * gets only UAPI types, and so no CO-RE relocation against the context
 * structs (which the verifier rewrites itself): net.bpf.c does that so its
 * inet programs load without the kernel's BTF. The two headers cannot be
 * mixed in one source. This file needs only what both provide.
 */
#ifndef __LINUX_BPF_H__
#include "vmlinux.h"
#endif
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_core_read.h>

/* Limits shared with the Go side (bpf/limits.go must agree). */
#define MAX_JAILS 1024
#define MAX_PORT_RANGES 16
#define MAX_EGRESS_PREFIXES 16384
#define MAX_UNIX_PATHS 4096
#define UNIX_PATH_MAX 108
#define RINGBUF_BYTES (256 * 1024)

/* Address families and netlink protocols are macros in libc's and the UAPI
 * netlink headers, so vmlinux.h lacks them (SOCK_* and IPPROTO_* are enums
 * there; net.bpf.c gets IPPROTO_* from <linux/in.h>). */
#define AF_UNIX 1
#define AF_INET 2
#define AF_INET6 10
#define AF_NETLINK 16
#define NETLINK_ROUTE 0

/* jail.flags: what the kernel side does beyond denying (later phases). */
#define JAIL_KILL_ON_NETWORK (1U << 0)
#define JAIL_KILL_ON_EXEC (1U << 1)
/* Recorded for completeness: whether a refused open is under filesystem.deny
 * is decided in user space (paths), which then kills; see DeniedByProfile. */
#define JAIL_KILL_ON_FILE (1U << 2)

/* port_range.protocols bits. */
#define PROTO_TCP_BIT (1U << 0)
#define PROTO_UDP_BIT (1U << 1)

/* event_header.kind */
enum event_kind {
	EVENT_CONNECT = 1,
	EVENT_SENDMSG = 2,
	EVENT_UNIX_CONNECT = 3,
	EVENT_UNIX_SENDMSG = 4,
	EVENT_SOCKET = 5,
	EVENT_EXEC = 6,          /* exec.bpf.c: struct exec_event (watch.h) */
	EVENT_OPEN = 7,          /* file.bpf.c: struct open_event (watch.h) */
	EVENT_KILL = 8,          /* netwatch.bpf.c: struct kill_event (watch.h) */
	EVENT_EGRESS_BUDGET = 9, /* egress.bpf.c: struct budget_event */
	EVENT_SECCOMP = 10,      /* sockwatch.bpf.c: struct seccomp_event (watch.h) */
	EVENT_FORK = 11,         /* task.bpf.c: struct task_event (watch.h) */
	EVENT_TASK_EXIT = 12,    /* task.bpf.c: struct task_event (watch.h) */
	EVENT_LSM_EXEC = 13,     /* lsm.bpf.c: struct lsm_file_event */
	EVENT_LSM_OPEN = 14,     /* lsm.bpf.c: struct lsm_file_event */
	EVENT_ACCEPT = 15,       /* egress.bpf.c: struct net_event, the listener's address */
};

/* event_header.verdict */
enum event_verdict {
	VERDICT_ALLOW = 1,
	VERDICT_DENY = 2,
};

/* event_header.action: what followed. */
enum event_action {
	ACTION_NONE = 0,
	ACTION_KILL = 1, /* bpf_send_signal(SIGKILL) to the calling process */
};

/* event_header.layer: which mechanism refused. A tracepoint that observes a
 * refusal Landlock made reports LAYER_LANDLOCK. */
enum event_layer {
	LAYER_BPF = 0,
	LAYER_LANDLOCK = 1,
	LAYER_SECCOMP = 2, /* mcpjail's seccomp deny-list refused the syscall */
	LAYER_BPF_LSM = 3, /* an lsm/ program (lsm.bpf.c) refused in the LSM hook */
};

/* event_header.reason: why a verdict was reached. */
enum event_reason {
	REASON_NONE = 0,
	REASON_NO_JAIL = 1,      /* a program ran for a cgroup with no jail entry */
	REASON_NO_PREFIX = 2,    /* no egress rule covers the address */
	REASON_PORT = 3,         /* a rule covers the address, not this port/protocol */
	REASON_PROTOCOL = 4,     /* neither TCP nor UDP */
	REASON_UNIX_PATH = 5,    /* UNIX socket path not in network.unix */
	REASON_UNIX_ABSTRACT = 6,/* abstract UNIX socket */
	REASON_UNIX_UNNAMED = 7, /* UNIX address without a path */
	REASON_SOCKET = 8,       /* socket family/type/protocol not allowed */
	REASON_EGRESS_BUDGET = 9,/* more bytes sent in a window than network.egress_budget */
	REASON_FS_DENY = 10,     /* the file lies under filesystem.deny */
	REASON_FS_WRITE = 11,    /* opened for writing outside filesystem.write */
	REASON_FS_EXEC = 12,     /* executed outside filesystem.exec */
	REASON_FS_DEPTH = 13,    /* deeper than the LSM's bounded walk (fail closed) */
	REASON_EXEC_INTERNAL = 14, /* executed a file of an internal mount (a memfd): in no filesystem.exec */
	REASON_BIND_PORT = 15,   /* a TCP handshake answered from a port not in network.bind */
	REASON_IPV6_HEADERS = 16,/* IPv6 extension headers hide the transport header (fail closed) */
};

/* Value of `jails`. */
struct jail {
	__u32 policy;
	__u32 flags;
};

struct port_range {
	__u16 lo;
	__u16 hi;
	__u8 protocols; /* PROTO_*_BIT */
	__u8 _pad[3];
};

/* Value of the egress tries: the union of the port ranges of every rule
 * whose prefix contains the key's prefix (the Go side computes it), so the
 * longest match alone decides. */
struct port_set {
	__u32 count;
	struct port_range ranges[MAX_PORT_RANGES];
};

/* LPM keys: prefixlen counts the 32 policy bits plus the address bits. */
struct egress4_key {
	__u32 prefixlen;
	__u32 policy;
	__u8 addr[4];
};

struct egress6_key {
	__u32 prefixlen;
	__u32 policy;
	__u8 addr[16];
};

/* Key of `unix_paths`: a pathname socket's path, zero-padded. */
struct unix_key {
	__u32 policy;
	char path[UNIX_PATH_MAX];
};

struct event_header {
	__u64 cgroup_id; /* the jail's cgroup id */
	__u64 boot_ns;   /* bpf_ktime_get_boot_ns */
	__u32 tgid;
	__u32 tid;
	char comm[16];
	__u16 kind;     /* enum event_kind */
	__u8 verdict;   /* enum event_verdict */
	__u8 reason;    /* enum event_reason */
	__u8 action;    /* enum event_action; fill_header sets ACTION_NONE */
	__u8 layer;     /* enum event_layer; fill_header sets LAYER_BPF */
	__u16 _pad;
};

/* Body of connect, sendmsg, unix_* and socket records. */
struct net_event {
	struct event_header hdr;
	__u16 family;
	__u16 port;      /* host byte order */
	__u16 sock_type;
	__u16 protocol;
	__u8 addr[16];   /* IPv4 in the first 4 bytes */
	__u16 path_len;  /* bytes of sun_path the caller passed (<= 108) */
	char path[UNIX_PATH_MAX]; /* sun_path as passed, complete */
	__u8 _pad[2];
};

_Static_assert(sizeof(struct event_header) == 48, "event_header layout");
_Static_assert(sizeof(struct net_event) == 48 + 8 + 16 + 2 + 108 + 2, "net_event layout");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, MAX_JAILS);
	__type(key, __u64);
	__type(value, struct jail);
} mcpjail_jails SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, RINGBUF_BYTES);
} mcpjail_events SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} mcpjail_lost SEC(".maps");

/* An unused global keeps the record types in BTF for bpf2go's -type; the
 * loader never asks for it, so its .bss map is never created. */
const struct net_event *unused_net_event __attribute__((unused));

/* The jail of the current task, or NULL. Programs are attached per jail
 * (see Register in bpf/jail.go), so a NULL here means the task sits in a cgroup below
 * its jail or the entry is gone: the callers fail closed. */
static __always_inline const struct jail *current_jail(__u64 *cgroup_id)
{
	*cgroup_id = bpf_get_current_cgroup_id();
	return bpf_map_lookup_elem(&mcpjail_jails, cgroup_id);
}

static __always_inline void count_lost(void)
{
	__u32 zero = 0;
	__u64 *n = bpf_map_lookup_elem(&mcpjail_lost, &zero);

	/* Atomic although per-CPU: a preemptible kernel may run this program
	 * for two tasks interleaved on one CPU. */
	if (n)
		__sync_fetch_and_add(n, 1);
}

static __always_inline void fill_header(struct event_header *h, __u64 cgroup_id,
					__u16 kind, __u8 verdict, __u8 reason)
{
	__u64 pid_tgid = bpf_get_current_pid_tgid();

	h->cgroup_id = cgroup_id;
	h->boot_ns = bpf_ktime_get_boot_ns();
	h->tgid = pid_tgid >> 32;
	h->tid = (__u32)pid_tgid;
	bpf_get_current_comm(h->comm, sizeof(h->comm));
	h->kind = kind;
	h->verdict = verdict;
	h->reason = reason;
	h->action = ACTION_NONE;
	h->layer = LAYER_BPF;
	h->_pad = 0;
}

#endif /* MCPJAIL_COMMON_H */
