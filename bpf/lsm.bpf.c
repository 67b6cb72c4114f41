//go:build ignore

// SPDX-License-Identifier: GPL-2.0-only
/*
 * The BPF-LSM deny layer: exec, open and connect refused in the kernel's LSM
 * hooks with -EPERM, for tasks of registered jails only, with an event that
 * carries the resolved path (bpf_d_path) or the address. Loaded where the
 * kernel runs BPF LSM programs (lsm=...,bpf); elsewhere the loader goes on
 * without it (Loader.LSM says why).
 *
 * Who is checked: a task whose cgroup is a registered jail AND that has
 * no_new_privs. Inside a jail, no_new_privs is set by mcpjail's init step
 * just before Landlock and the exec of the server, and inherited by every
 * descendant, which cannot clear it; before that the task is mcpjail's own
 * init (re-executing itself, mounting /proc), which the profile does not
 * describe.
 *
 * Path matching: on the kernel's objects, not on strings. The Go side
 * (lsm_rules.go) keys each profile path by (policy, s_dev, inode number);
 * a hook walks from the file's dentry up d_parent to its filesystem's root,
 * then on from the mount point of its mount in the parent mount, OR-ing the
 * rights of every ancestor that has a rule. A deny rule ends the walk.
 *
 * Why not bpf_d_path plus prefix matching: d_path names the path the file was
 * reached by, so a bind mount of a denied file or directory elsewhere gives a
 * name outside the deny prefix; d_parent does not move with mounts, so the
 * walk finds the denied directory whatever the path (symlink, "..",
 * /proc/self/root, a bind). Measured, not argued: lsmcompare.bpf.c is the
 * string design at its fastest (bpf_d_path, then one LPM-trie lookup of the
 * name, whatever the number of rules), and bpf/lsm_compare_test.go runs both
 * in Debian's 6.1 (`make bench-vm`). The string design lets the open through
 * the bind (TestLSMPathMatchingChoice). Per open, under QEMU TCG, 16
 * directories in the profile: this walk 2.6 us at 6 path components and
 * 4.0 us at 16, the string design 2.8 and 3.8 us (with probe reads for every
 * field, before the direct loads below, the walk cost 4.6 and 8.6 us). The
 * walk costs the verifier ~57,000 processed instructions (its bounded
 * loops), the string design 75: a one-time cost at load. bpf_d_path is used
 * only for the event. Limits: a path deeper than MAX_WALK components is
 * refused (fail closed); a hard link of a denied file made outside the
 * denied directory is not under it (the same for Landlock); a rule path that
 * does not exist at registration has no inode and so no rule.
 *
 * Hook order: the BPF LSM runs after the LSMs listed before it in lsm= (on
 * Debian: landlock first, bpf last). A refusal by Landlock (EACCES) ends the
 * hook chain, so this layer reports what Landlock let through: a bind mount of
 * a denied path, an exec from an internal mount (memfd), a connect on a kernel
 * without Landlock network rules. security_socket_connect runs before the
 * cgroup connect hooks, so this layer refuses a connect first when present.
 */
#include "egress_match.h"
#include <bpf/bpf_tracing.h>

char LICENSE[] SEC("license") = "GPL";

#define EPERM 1
#define SIGKILL 9
#define LSM_PATH_MAX 4096  /* bpf/limits.go: PathMax */
#define MAX_FS_RULES 16384 /* bpf/limits.go: MaxFSRules */
#define MAX_WALK 256       /* path components walked before failing closed */

/* fs rule bits (bpf/lsm_rules.go) */
#define FS_READ (1U << 0)
#define FS_WRITE (1U << 1)
#define FS_EXEC (1U << 2)
#define FS_DENY (1U << 3)

/* Kernel constants that are macros, so not in vmlinux.h. */
#define FMODE_WRITE 0x2
#define __FMODE_EXEC 0x20 /* open flag of execve's opens */
#define PFA_NO_NEW_PRIVS 0 /* bit of task_struct.atomic_flags */

/* Key of mcpjail_fsrules: dev is the kernel's dev_t (major << 20 | minor). */
struct fs_key {
	__u32 policy;
	__u32 dev;
	__u64 ino;
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, MAX_FS_RULES);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct fs_key);
	__type(value, __u8);
} mcpjail_fsrules SEC(".maps");

/* EVENT_LSM_EXEC and EVENT_LSM_OPEN. */
struct lsm_file_event {
	struct event_header hdr;
	__s32 ret;       /* -EPERM */
	__u32 f_mode;    /* the file's FMODE_* bits */
	__u32 f_flags;   /* the file's open flags */
	__u16 path_len;  /* bytes of path without the NUL; 0: d_path failed */
	__u8 rights;     /* FS_* bits the walk collected */
	__u8 _pad;
	char path[LSM_PATH_MAX]; /* the resolved path (bpf_d_path) */
};

_Static_assert(sizeof(struct lsm_file_event) == 48 + 16 + LSM_PATH_MAX, "lsm_file_event layout");

const struct lsm_file_event *unused_lsm_file_event __attribute__((unused));
const struct fs_key *unused_fs_key __attribute__((unused));

/* The jail of the current task when the LSM layer applies to it (see top). */
static __always_inline const struct jail *confined_jail(__u64 *cgroup_id)
{
	const struct jail *j = current_jail(cgroup_id);
	struct task_struct *task;

	if (!j)
		return NULL;
	task = (struct task_struct *)bpf_get_current_task();
	if (!(BPF_CORE_READ(task, atomic_flags) & (1UL << PFA_NO_NEW_PRIVS)))
		return NULL;
	return j;
}

struct walk_result {
	__u8 rights;
	__u8 internal; /* the walk ended at an internal mount (pipe, memfd, nsfs) */
	__u8 too_deep;
};

static __always_inline struct mount *real_mount(struct vfsmount *m)
{
	return (struct mount *)((void *)m - bpf_core_field_offset(struct mount, mnt));
}

/* ORs the rule of (k->dev, ino) into w; nonzero when a deny ends the walk. */
static __always_inline int collect(struct fs_key *k, __u64 ino, struct walk_result *w)
{
	__u8 *v;

	k->ino = ino;
	v = bpf_map_lookup_elem(&mcpjail_fsrules, k);
	if (v)
		w->rights |= *v;
	return w->rights & FS_DENY;
}

/*
 * Collects the rights of every ancestor of path (see top). The file's own
 * filesystem, where most of a path lies, is walked with direct loads of the
 * hook's BTF pointers (one memory load each, where a bpf_probe_read_kernel
 * is a helper call); its device is read once. Above its root the walk goes
 * on through the mounts with probe reads: container_of from a vfsmount to
 * its mount is a negative offset the 6.1 verifier refuses on a BTF pointer.
 */
static __always_inline void walk(__u32 policy, const struct path *path, struct walk_result *w)
{
	struct dentry *d = path->dentry;
	struct fs_key k = { .policy = policy, .dev = d->d_sb->s_dev };
	struct mount *m, *up;
	struct dentry *parent;
	int i;

	w->rights = 0;
	w->internal = 0;
	w->too_deep = 0;
	for (i = 0; i < MAX_WALK; i++) {
		if (collect(&k, d->d_inode->i_ino, w))
			return;
		parent = d->d_parent;
		if (parent == d)
			break;
		d = parent;
	}
	if (i == MAX_WALK) {
		w->too_deep = 1;
		return;
	}
	m = real_mount(BPF_CORE_READ(path, mnt));
	for (i = 0; i < MAX_WALK; i++) {
		up = BPF_CORE_READ(m, mnt_parent);
		if (up == m) {
			w->internal = (BPF_CORE_READ(m, mnt.mnt_flags) & MNT_INTERNAL) != 0;
			return;
		}
		/* Into the parent mount, at the mount point (another filesystem,
		 * or the same one elsewhere for a bind). */
		d = BPF_CORE_READ(m, mnt_mountpoint);
		m = up;
		k.dev = BPF_CORE_READ(d, d_sb, s_dev);
		for (; i < MAX_WALK; i++) {
			if (collect(&k, BPF_CORE_READ(d, d_inode, i_ino), w))
				return;
			parent = BPF_CORE_READ(d, d_parent);
			if (parent == d)
				break;
			d = parent;
		}
	}
	w->too_deep = 1;
}

/* Records a refused exec or open; kill says SIGKILL was sent. */
static __always_inline void emit_file(__u64 cgroup_id, __u16 kind, __u8 reason, struct file *file,
				      const struct walk_result *w, int kill)
{
	struct lsm_file_event *e = bpf_ringbuf_reserve(&mcpjail_events, sizeof(*e), 0);
	long n;

	if (!e) {
		count_lost();
		return;
	}
	fill_header(&e->hdr, cgroup_id, kind, VERDICT_DENY, reason);
	e->hdr.layer = LAYER_BPF_LSM;
	if (kill)
		e->hdr.action = ACTION_KILL;
	e->ret = -EPERM;
	e->f_mode = file->f_mode;
	e->f_flags = file->f_flags;
	e->rights = w->rights;
	e->_pad = 0;
	e->path_len = 0;
	n = bpf_d_path((struct path *)&file->f_path, e->path, sizeof(e->path));
	if (n > 0)
		e->path_len = n - 1;
	else
		e->path[0] = 0;
	bpf_ringbuf_submit(e, 0);
}

/* The verdict on executing file: allowed under filesystem.exec, never under
 * filesystem.deny, never from an internal mount (a memfd is in no list). */
static __always_inline int exec_verdict(const struct jail *j, __u64 cgroup_id, struct file *file,
					const struct walk_result *w)
{
	__u8 reason;
	int kill;

	if (w->too_deep)
		reason = REASON_FS_DEPTH;
	else if (w->rights & FS_DENY)
		reason = REASON_FS_DENY;
	else if (!(w->rights & FS_EXEC))
		reason = REASON_FS_EXEC;
	else
		return 0;
	kill = (j->flags & JAIL_KILL_ON_EXEC) != 0;
	if (kill)
		bpf_send_signal(SIGKILL);
	emit_file(cgroup_id, EVENT_LSM_EXEC, reason, file, w, kill);
	return -EPERM;
}

/*
 * execve opens the program (and an ELF interpreter, a script's interpreter)
 * with FMODE_EXEC: file_open judges those opens as execs, as Landlock does,
 * and is the first hook to see them. bprm_check_security judges the program
 * again once the kernel has it, whatever opened it.
 */
SEC("lsm/bprm_check_security")
int BPF_PROG(mcpjail_lsm_exec, struct linux_binprm *bprm, int ret)
{
	__u64 cgroup_id;
	const struct jail *j;
	struct file *file;
	struct walk_result w;

	if (ret)
		return ret; /* an earlier BPF program refused */
	j = confined_jail(&cgroup_id);
	if (!j)
		return 0;
	file = bprm->file;
	walk(j->policy, &file->f_path, &w);
	return exec_verdict(j, cgroup_id, file, &w);
}

SEC("lsm/file_open")
int BPF_PROG(mcpjail_lsm_open, struct file *file, int ret)
{
	__u64 cgroup_id;
	const struct jail *j;
	struct walk_result w;
	__u8 reason;
	int kill;

	if (ret)
		return ret;
	j = confined_jail(&cgroup_id);
	if (!j)
		return 0;
	walk(j->policy, &file->f_path, &w);
	if (file->f_flags & __FMODE_EXEC) /* as Landlock: f_mode has no FMODE_EXEC on 6.1 */
		return exec_verdict(j, cgroup_id, file, &w);
	if (w.too_deep)
		reason = REASON_FS_DEPTH;
	else if (w.rights & FS_DENY)
		reason = REASON_FS_DENY;
	else if ((file->f_mode & FMODE_WRITE) && !(w.rights & FS_WRITE) && !w.internal)
		reason = REASON_FS_WRITE; /* internal mounts: /proc/self/fd of a pipe, as Landlock */
	else
		return 0;
	/* on_violation.file kill is for filesystem.deny (as DeniedByProfile). */
	kill = reason == REASON_FS_DENY && (j->flags & JAIL_KILL_ON_FILE);
	if (kill)
		bpf_send_signal(SIGKILL);
	emit_file(cgroup_id, EVENT_LSM_OPEN, reason, file, &w, kill);
	return -EPERM;
}

/* The transport of a socket, as a port_range.protocols bit. */
static __always_inline __u8 sock_protocol_bit(__u16 protocol)
{
	switch (protocol) {
	case IPPROTO_TCP:
		return PROTO_TCP_BIT;
	case IPPROTO_UDP:
		return PROTO_UDP_BIT;
	}
	return 0;
}

SEC("lsm/socket_connect")
int BPF_PROG(mcpjail_lsm_conn, struct socket *sock, struct sockaddr *address, int addrlen, int ret)
{
	__u64 cgroup_id;
	const struct jail *j;
	struct net_event *e;
	__u32 addr[4] = {};
	__u16 family, port, protocol;
	__u8 reason, bit;

	if (ret)
		return ret;
	j = confined_jail(&cgroup_id);
	if (!j)
		return 0;
	/* address is the kernel's copy of the caller's sockaddr (move_addr_to_kernel). */
	family = BPF_CORE_READ(address, sa_family);
	protocol = BPF_CORE_READ(sock, sk, sk_protocol);
	bit = sock_protocol_bit(protocol);
	if (family == AF_INET) {
		struct sockaddr_in sin = {};

		if (addrlen < (int)sizeof(sin))
			return 0; /* the kernel refuses it with EINVAL */
		bpf_probe_read_kernel(&sin, sizeof(sin), address);
		port = bpf_ntohs(sin.sin_port);
		addr[0] = sin.sin_addr.s_addr;
		reason = check_ip4(j->policy, addr[0], port, bit);
	} else if (family == AF_INET6) {
		struct sockaddr_in6 sin6 = {};

		if (addrlen < 24) /* SIN6_LEN_RFC2133: without sin6_scope_id */
			return 0;
		bpf_probe_read_kernel(&sin6, 24, address);
		port = bpf_ntohs(sin6.sin6_port);
		__builtin_memcpy(addr, &sin6.sin6_addr, 16);
		reason = check_ip6(j->policy, addr, port, bit);
	} else {
		/* AF_UNSPEC (dissolve an association), AF_UNIX (the cgroup hooks
		 * and Landlock), others (refused at socket creation). */
		return 0;
	}
	if (reason == REASON_NONE)
		return 0;

	/* No kill here: as after a cgroup hook's refusal, the sys_exit_connect
	 * tracepoint (netwatch.bpf.c) kills for on_violation.network, and
	 * mcpjail kills the jail from this event. */
	e = bpf_ringbuf_reserve(&mcpjail_events, sizeof(*e), 0);
	if (!e) {
		count_lost();
		return -EPERM;
	}
	__builtin_memset(e, 0, sizeof(*e));
	fill_header(&e->hdr, cgroup_id, EVENT_CONNECT, VERDICT_DENY, reason);
	e->hdr.layer = LAYER_BPF_LSM;
	e->family = family;
	e->port = port;
	e->sock_type = BPF_CORE_READ(sock, type);
	e->protocol = protocol;
	__builtin_memcpy(e->addr, addr, 16);
	bpf_ringbuf_submit(e, 0);
	return -EPERM;
}
