#!/bin/sh
# Rebuilds the committed eBPF objects and their Go bindings (net_bpfel.go/.o)
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
exec go run github.com/cilium/ebpf/cmd/bpf2go \
	-cc clang-19 -strip llvm-strip-19 \
	-cflags "-O2 -g -Wall -Werror" \
	-target bpfel -go-package bpf \
	-type jail -type port_set -type port_range -type egress4_key -type egress6_key \
	-type unix_key -type event_header -type net_event \
	net net.bpf.c
