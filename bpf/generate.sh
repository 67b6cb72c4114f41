#!/bin/sh
# Rebuilds the committed eBPF objects and their Go bindings (*_bpfel.go/.o)
# with Debian's clang-19 (apt-get install -y clang-19 llvm-19 libbpf-dev bpftool).
# `make generate` runs `go generate ./...`, which runs this. The output is
# deterministic: DWARF is stripped and no path or time is embedded.
#
# vmlinux.h is committed and NOT regenerated here (it describes the kernel the
# CO-RE relocations are written against, not the build machine). Refresh it
# deliberately with:
#   bpftool btf dump file /sys/kernel/btf/vmlinux format c > bpf/vmlinux.h
set -eu
cd "$(dirname "$0")"
# net.bpf.c includes the UAPI <linux/bpf.h> (linux-libc-dev), not vmlinux.h
# (see common.h). Its <asm/types.h> is in Debian's multiarch directory, which
# clang's BPF target does not search; it only defines the __u* types, the
# same on every Linux architecture.
multiarch=$(dpkg-architecture -qDEB_HOST_MULTIARCH)
go run github.com/cilium/ebpf/cmd/bpf2go \
	-cc clang-19 -strip llvm-strip-19 \
	-cflags "-O2 -g -Wall -Werror -I/usr/include/$multiarch" \
	-target bpfel -go-package bpf \
	-type jail -type port_set -type port_range -type egress4_key -type egress6_key \
	-type unix_key -type event_header -type net_event \
	net net.bpf.c

# egress.bpf.c needs atomics that return a value (fetch-add, cmpxchg, xchg):
# BPF ISA v3, which clang-19 does not default to.
go run github.com/cilium/ebpf/cmd/bpf2go \
	-cc clang-19 -strip llvm-strip-19 \
	-cflags "-O2 -g -Wall -Werror -mcpu=v3" \
	-target bpfel -go-package bpf \
	-type budget_state -type budget_event \
	egress egress.bpf.c

# Watching and kill (tracepoints): one object per hook family. They declare
# the maps of common.h and watch.h; the loader shares one instance of each.
# The watch record types are generated once, from exec.
watch() {
	go run github.com/cilium/ebpf/cmd/bpf2go \
		-cc clang-19 -strip llvm-strip-19 \
		-cflags "-O2 -g -Wall -Werror" \
		-target bpfel -go-package bpf \
		"$@"
}
watch -type pending -type exec_event -type open_event -type kill_event \
	-type seccomp_event -type task_event exec exec.bpf.c
watch file file.bpf.c
watch netwatch netwatch.bpf.c
watch sockwatch sockwatch.bpf.c
watch task task.bpf.c

# The BPF-LSM deny layer: loaded where the kernel runs lsm/ programs.
go run github.com/cilium/ebpf/cmd/bpf2go \
	-cc clang-19 -strip llvm-strip-19 \
	-cflags "-O2 -g -Wall -Werror" \
	-target bpfel -go-package bpf \
	-type fs_key -type lsm_file_event \
	lsm lsm.bpf.c

# Test-only: the path matching lsm.bpf.c did not choose (bpf_d_path and an
# LPM trie of path strings), measured against it by lsm_compare_test.go.
# The _test suffix keeps it out of the mcpjail binary.
go run github.com/cilium/ebpf/cmd/bpf2go \
	-cc clang-19 -strip llvm-strip-19 \
	-cflags "-O2 -g -Wall -Werror" \
	-target bpfel -go-package bpf -output-suffix _test -type path_prefix \
	lsmcompare lsmcompare.bpf.c
