#!/bin/sh
# PID 1 of the test VM (tests/vm/run.sh puts it at /init of the initramfs).
# It mounts what a systemd host has (a pure cgroup v2 hierarchy with the
# memory, pids and cpu controllers enabled for children, bpffs, tracefs,
# securityfs, devpts, a tmpfs /tmp), runs the test binaries listed in /vm/tests, prints
# one result marker line per binary and one for the run, and powers off.
export PATH=/usr/bin:/usr/sbin HOME=/root LANG=C.UTF-8
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
# Pseudo-terminals (the terminal test opens one), as on any host.
mkdir -p /dev/pts
mount -t devpts -o ptmxmode=0666 devpts /dev/pts
[ -e /dev/ptmx ] || ln -s pts/ptmx /dev/ptmx
mount -t tmpfs -o mode=1777 tmpfs /tmp
mount -t cgroup2 -o nsdelegate cgroup2 /sys/fs/cgroup
mount -t bpf -o mode=0700 bpffs /sys/fs/bpf
mount -t tracefs tracefs /sys/kernel/tracing
mount -t securityfs securityfs /sys/kernel/security
ip link set lo up
for m in inet_diag tcp_diag udp_diag raw_diag unix_diag; do
  insmod /vm/modules/$m.ko || echo "mcpjail-vm: cannot load $m"
done
# shellcheck source=/dev/null # written by run.sh into the initramfs
. /vm/env

say() { echo "mcpjail-vm: $*"; }
# Kernel messages (an OOM kill reported by a test, for one) would cut into
# the test output that the host parses: by default only emergencies reach
# the console (run.sh: MCPJAIL_VM_PRINTK).
echo "$MCPJAIL_VM_PRINTK" >/proc/sys/kernel/printk
if ! echo "+memory +pids +cpu" >/sys/fs/cgroup/cgroup.subtree_control; then
  say "cannot enable the memory, pids and cpu controllers"
fi
say "kernel $(uname -r), cgroup.subtree_control: $(cat /sys/fs/cgroup/cgroup.subtree_control)"
say "lsm: $(cat /sys/kernel/security/lsm)"
say "doctor:"
/vm/bin/mcpjail doctor | sed 's/^/  /'

status=0
cd /tmp || exit 1
set -f # the test flags hold patterns, not globs
while read -r name args; do
  [ -n "$name" ] || continue
  say "BEGIN $name"
  # shellcheck disable=SC2086 # args holds several test flags, split on purpose
  /vm/bin/"$name" -test.v="$MCPJAIL_VM_VERBOSE" -test.count=1 -test.timeout="$MCPJAIL_VM_TEST_TIMEOUT" $args
  rc=$?
  say "END $name exit=$rc"
  [ "$rc" -eq 0 ] || status=1
done </vm/tests
say "RESULT exit=$status"
sync
poweroff -f
