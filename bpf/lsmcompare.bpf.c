//go:build ignore

// SPDX-License-Identifier: GPL-2.0-only
/*
 * Test-only: the path-matching design lsm.bpf.c did NOT choose, built so that
 * the choice is measured rather than argued (lsm_compare_test.go; `make
 * bench-vm` prints the numbers). mcpjail never loads it.
 *
 * file_open here names the file with bpf_d_path and matches the name against
 * the profile's paths with one lookup in an LPM trie keyed by the path's
 * bytes: the cheapest string matcher the kernel offers (one lookup whatever
 * the number of rules, where a loop of prefix compares would cost verifier
 * steps per rule and per byte). The jail lookup and the no_new_privs test are
 * the production ones, so the two programs differ only in how they match.
 */
#include "common.h"
#include <bpf/bpf_tracing.h>

char LICENSE[] SEC("license") = "GPL";

#define EPERM 1
#define PFA_NO_NEW_PRIVS 0 /* bit of task_struct.atomic_flags */
#define FS_DENY (1U << 3)  /* as in lsm.bpf.c */
/* An LPM trie key holds at most 256 bytes of data (LPM_DATA_SIZE_MAX). */
#define PREFIX_MAX 248

/* A rule is a directory's path with a trailing '/'; a looked-up name ends
 * with '/' in place of its NUL, so "/a/b/" matches "/a/b" and "/a/b/c", never
 * "/a/bc". */
struct path_prefix {
	__u32 prefixlen; /* in bits */
	char path[PREFIX_MAX];
};

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, 1024);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct path_prefix);
	__type(value, __u8);
} compare_prefixes SEC(".maps");

/* d_path's output buffer, too large for the 512-byte stack. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct path_prefix);
} compare_scratch SEC(".maps");

const struct path_prefix *unused_path_prefix __attribute__((unused));

SEC("lsm/file_open")
int BPF_PROG(mcpjail_compare_dpath_open, struct file *file, int ret)
{
	__u64 cgroup_id;
	struct task_struct *task;
	struct path_prefix *k;
	__u32 zero = 0;
	__u8 *rights;
	long n;

	if (ret)
		return ret;
	if (!current_jail(&cgroup_id))
		return 0;
	task = (struct task_struct *)bpf_get_current_task();
	if (!(BPF_CORE_READ(task, atomic_flags) & (1UL << PFA_NO_NEW_PRIVS)))
		return 0;
	k = bpf_map_lookup_elem(&compare_scratch, &zero);
	if (!k)
		return 0;
	n = bpf_d_path((struct path *)&file->f_path, k->path, sizeof(k->path));
	if (n <= 0 || n > PREFIX_MAX)
		return -EPERM; /* a name longer than a key: fail closed */
	k->path[n - 1] = '/';
	k->prefixlen = n * 8;
	rights = bpf_map_lookup_elem(&compare_prefixes, k);
	if (rights && (*rights & FS_DENY))
		return -EPERM;
	return 0;
}
