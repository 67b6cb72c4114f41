#!/usr/bin/env bash
# make test-vm: runs the end-to-end suite inside Debian's 6.1 cloud kernel
# under QEMU's TCG (a pure cgroup v2 hierarchy, Landlock ABI 2, the BPF LSM on)
# and passes or fails with the suite's result.
#
# The kernel comes from Debian's archive (apt-get download of the package that
# linux-image-cloud-amd64 depends on, unpacked with dpkg-deb, never
# installed) and is cached in tests/vm/cache. The guest has no disk and no
# network: an initramfs of busybox-static, setpriv and static Go binaries
# (mcpjail, the hostile fixture, `go test -c` of ./tests) whose /init
# (init.sh) runs the tests; the host reads the serial console.
#
# Environment: CI (passed to the guest: under CI=true a missing prerequisite
# fails), MCPJAIL_VM_CACHE (cache directory), MCPJAIL_VM_TIMEOUT (seconds
# before the VM is stopped, a bound against a hung guest), MCPJAIL_VM_LOG
# (where the console log is kept; default: a temporary file, removed),
# MCPJAIL_VM_RUN (a -test.run pattern, to run a few tests while working on
# them), MCPJAIL_VM_PRINTK (the guest's console log level during the tests;
# default 1: emergencies only, so kernel lines do not cut into test output),
# MCPJAIL_VM_MODE (test, the default; or bench: `make bench-vm`, which runs
# the BPF-LSM path-matching benchmark instead and prints its results).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)
cache=${MCPJAIL_VM_CACHE:-$here/cache}
vm_timeout=${MCPJAIL_VM_TIMEOUT:-1200}
test_timeout=15m
mode=${MCPJAIL_VM_MODE:-test}
case $mode in
test | bench) ;;
*) echo "test-vm: MCPJAIL_VM_MODE must be test or bench, not $mode" >&2; exit 2 ;;
esac

# Tests that start the Node-based reference MCP servers: there is no node in
# the guest, so they run on the host only (make test-e2e). Excluded by name
# with -test.skip, never skipped at run time.
node_tests='^Test(Filesystem|Memory|Everything)ServerSameResultsJailed$'

say() { echo "test-vm: $*"; }
die() { echo "test-vm: $*" >&2; exit 1; }

for tool in qemu-system-x86_64 dpkg-deb apt-get go; do
  command -v "$tool" >/dev/null || die "$tool not found (run tests/deps.sh vm)"
done
busybox=/bin/busybox
if [[ ! -x $busybox ]] || ldd "$busybox" >/dev/null 2>&1; then
  die "$busybox is not a static busybox (apt-get install busybox-static)"
fi
setpriv=/usr/bin/setpriv
[[ -x $setpriv ]] || die "$setpriv not found (apt-get install util-linux)"

# kernel_package prints the name of Debian's 6.1 cloud kernel image package.
kernel_package() {
  local pkg
  pkg=$(apt-cache depends linux-image-cloud-amd64 2>/dev/null | awk '$1 == "Depends:" && $2 ~ /^linux-image-6\.1\..*-cloud-amd64$/ { print $2; exit }')
  if [[ -z $pkg ]]; then
    apt-get update -qq >/dev/null
    pkg=$(apt-cache depends linux-image-cloud-amd64 | awk '$1 == "Depends:" && $2 ~ /^linux-image-6\.1\..*-cloud-amd64$/ { print $2; exit }')
  fi
  [[ -n $pkg ]] || die "linux-image-cloud-amd64 does not depend on a 6.1 kernel here (a Debian 12 bookworm apt source is needed)"
  echo "$pkg"
}

# fetch_kernel unpacks the package into the cache once and prints the
# directory holding boot/vmlinuz-*.
fetch_kernel() {
  local pkg=$1 dir=$cache/$1
  if [[ ! -e $dir/.complete ]]; then
    rm -rf "$dir" "$cache/download"
    mkdir -p "$cache/download"
    say "downloading $pkg from the Debian archive" >&2
    # _apt cannot write into a root-owned cache: download as root.
    (cd "$cache/download" && apt-get download -qq -o APT::Sandbox::User=root "$pkg")
    dpkg-deb -x "$cache"/download/"$pkg"_*.deb "$dir"
    rm -rf "$cache/download"
    touch "$dir/.complete"
  fi
  echo "$dir"
}

work=$(mktemp -d /tmp/mcpjail-vm.XXXXXX)
trap 'rm -rf "$work"' EXIT
root=$work/root

pkg=$(kernel_package)
kdir=$(fetch_kernel "$pkg")
vmlinuz=$(echo "$kdir"/boot/vmlinuz-*)
[[ -f $vmlinuz ]] || die "no vmlinuz in $kdir/boot"

say "building static binaries"
mkdir -p "$root"/vm/bin
(
  cd "$repo"
  export CGO_ENABLED=0
  go build -trimpath -o "$root/vm/bin/mcpjail" ./cmd/mcpjail
  go build -trimpath -o "$root/vm/bin/mcpjail-init" ./cmd/mcpjail-init
  go build -trimpath -o "$root/vm/bin/mcpjail-daemon" ./cmd/mcpjail-daemon
  # mcpjail refuses an init step or daemon that others than its owner could replace.
  chmod 0755 "$root/vm/bin/mcpjail" "$root/vm/bin/mcpjail-init" "$root/vm/bin/mcpjail-daemon"
  go build -trimpath -o "$root/vm/bin/hostile" ./tests/fixtures/hostile
  go test -c -trimpath -o "$root/vm/bin/e2e.test" ./tests
  go test -c -trimpath -o "$root/vm/bin/bpf.test" ./bpf
)

say "assembling the initramfs"
# Debian's merged /usr: /bin, /sbin, /lib and /lib64 point into /usr.
mkdir -p "$root"/{usr/bin,usr/sbin,usr/lib,usr/lib64,etc,root,proc,sys,dev,tmp,run}
for d in bin sbin lib lib64; do ln -s usr/$d "$root/$d"; done
# setpriv (the fail-closed tests start mcpjail as uid 65534 with it) and the
# shared libraries it loads; copied before the busybox applets, one of which
# has the same name.
cp "$setpriv" "$root/usr/bin/setpriv"
ldd "$setpriv" | awk '$1 ~ /^\// { print $1 } $3 ~ /^\// { print $3 }' | while read -r lib; do
  dest=$root/usr${lib#/usr}
  mkdir -p "$(dirname "$dest")"
  cp -L "$lib" "$dest"
done
cp "$busybox" "$root/usr/bin/busybox"
# One symlink per applet, bin/x and sbin/x landing in usr/. Relative
# targets: an absolute one would point at the host's files while this tree
# is being built.
"$busybox" --list-full | while read -r applet; do
  rel=${applet#usr/}
  dest=$root/usr/$rel
  case $rel in
  bin/*) target=busybox ;;
  *) target=../bin/busybox ;;
  esac
  [[ -e $dest || -L $dest ]] || ln -s "$target" "$dest"
done
# The socket-diagnostics modules, which a Debian host loads on demand when
# mcpjail destroys a killed jail's sockets (init.sh loads them in order).
kver=$(basename "$vmlinuz" | sed 's/^vmlinuz-//')
mkdir -p "$root/vm/modules"
for m in net/ipv4/inet_diag net/ipv4/tcp_diag net/ipv4/udp_diag net/ipv4/raw_diag net/unix/unix_diag; do
  cp "$kdir/lib/modules/$kver/kernel/$m.ko" "$root/vm/modules/"
done
printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n' >"$root/etc/passwd"
printf 'root:x:0:\nnogroup:x:65534:\n' >"$root/etc/group"
# Tests read /etc/shadow to see the jail refuse a secret that exists.
printf 'root:*:19000:0:99999:7:::\nnobody:*:19000:0:99999:7:::\n' >"$root/etc/shadow"
chmod 0640 "$root/etc/shadow"
chmod 0700 "$root/root"
cp "$here/init.sh" "$root/init"
chmod 0755 "$root/init" "$root"/vm/bin/*
{
  echo "export MCPJAIL_BIN=/vm/bin/mcpjail MCPJAIL_HOSTILE=/vm/bin/hostile"
  echo "export MCPJAIL_VM_TEST_TIMEOUT=$test_timeout MCPJAIL_VM_PRINTK=${MCPJAIL_VM_PRINTK:-1}"
  # Benchmarks print their table as is; tests go through test2json (summary).
  if [[ $mode == bench ]]; then echo "export MCPJAIL_VM_VERBOSE=false"; else echo "export MCPJAIL_VM_VERBOSE=test2json"; fi
  [[ ${CI:-} != true ]] || echo "export CI=true"
} >"$root/vm/env"
run_flag=
[[ -z ${MCPJAIL_VM_RUN:-} ]] || run_flag=" -test.run=$MCPJAIL_VM_RUN"
if [[ $mode == bench ]]; then
  # A fixed count per run (no ramp-up: each run starts a jailed child).
  echo "bpf.test -test.run=^\$ -test.bench=^BenchmarkLSMFileOpen\$ -test.benchtime=20000x -test.count=3" >"$root/vm/tests"
else
  # The end-to-end suite, and the eBPF package's tests of the BPF-LSM layer,
  # which need a kernel that runs its programs (left out when MCPJAIL_VM_RUN
  # picks end-to-end tests).
  echo "e2e.test -test.skip=$node_tests$run_flag" >"$root/vm/tests"
  [[ -n ${MCPJAIL_VM_RUN:-} ]] || echo "bpf.test -test.run=^TestLSM" >>"$root/vm/tests"
fi
(cd "$root" && find . -mindepth 1 | "$busybox" cpio -o -H newc 2>/dev/null) >"$work/initramfs.cpio"

log=${MCPJAIL_VM_LOG:-$work/console.log}
say "booting $(basename "$vmlinuz") under QEMU TCG (2 vCPUs, 2 GiB)"
start=$SECONDS
# -accel tcg: this machine's /dev/kvm cannot run a stock kernel.
# thread=single: with one host thread per vCPU (MTTCG), some runs left both
# vCPUs spinning for minutes ("soft lockup", RIP on a jmp in
# syscall_trace_enter, while tracepoints were being attached). Our reading:
# the guest kernel patches that jump-label site as tracepoints come and go,
# and cross-vCPU code modification is where MTTCG is weakest; one thread
# running both vCPUs in turn has not shown it. The console
# is the guest's only output; \r is dropped so that the lines parse.
# No softlockup_panic: under TCG a guest vCPU starved by a busy host trips
# the soft-lockup detector without being stuck (the run then completes, the
# warning and its stack stay in the console log); a real hang is ended by
# the test timeout or the VM timeout.
set +e
timeout -k 10 "$vm_timeout" qemu-system-x86_64 -accel tcg,thread=single -cpu max -smp 2 -m 2048 \
  -nographic -no-reboot -nic none \
  -kernel "$vmlinuz" -initrd "$work/initramfs.cpio" \
  -append "console=ttyS0 panic=-1 loglevel=3 systemd.unified_cgroup_hierarchy=1 cgroup_no_v1=all" \
  </dev/null 2>&1 | sed -u 's/\r//g' | tee "$log"
qemu_status=${PIPESTATUS[0]}
set -e
elapsed=$((SECONDS - start))

say "the VM ran for ${elapsed}s"
if [[ $mode == bench ]]; then
  # The benchmark's own lines, between the guest's markers.
  sed -n '/^mcpjail-vm: BEGIN bpf.test/,/^mcpjail-vm: END bpf.test/p' "$log" | grep -E '^(goos|goarch|pkg|cpu|Benchmark|PASS|FAIL|ok)' || true
  grep -q '^mcpjail-vm: RESULT exit=0' "$log" || die "the benchmark failed in the guest (its output is above)"
  ((qemu_status == 0)) || die "qemu exited with status $qemu_status"
  exit 0
fi
summary_status=0
(cd "$repo" && go run ./tests/vm/summary -kernel "$kver" \
  -excluded "$node_tests" <"$log") || summary_status=$?
if ((qemu_status != 0)); then
  die "qemu exited with status $qemu_status (124: stopped after ${vm_timeout}s)"
fi
exit "$summary_status"
