#!/usr/bin/env bash
# Installs the Debian packages a suite needs, only when missing, so a warm
# machine pays nothing. Needs root (CI runs as root).
#   deps.sh            what `make test` needs
#   deps.sh bench      plus bubblewrap, the benchmark's point of comparison
#   deps.sh bpf        the eBPF toolchain for `make generate`
#   deps.sh vm         plus QEMU, busybox-static and shellcheck for `make test-vm`
set -euo pipefail
need=()
command -v setpriv >/dev/null || need+=(util-linux)
command -v node >/dev/null || need+=(nodejs)
command -v npm >/dev/null || need+=(npm)
# check-unit runs systemd-analyze verify; the host need not boot systemd.
command -v systemd-analyze >/dev/null || need+=(systemd)
case "${1:-}" in
bench) command -v bwrap >/dev/null || need+=(bubblewrap) ;;
vm)
  command -v qemu-system-x86_64 >/dev/null || need+=(qemu-system-x86)
  # The guest's busybox must be static; the dynamic `busybox` package
  # provides the same path.
  dpkg-query -W -f='${Status}' busybox-static 2>/dev/null | grep -q 'ok installed' || need+=(busybox-static)
  command -v shellcheck >/dev/null || need+=(shellcheck)
  ;;
bpf)
  command -v clang-19 >/dev/null || need+=(clang-19)
  command -v llvm-strip-19 >/dev/null || need+=(llvm-19)
  [[ -e /usr/include/bpf/bpf_helpers.h ]] || need+=(libbpf-dev)
  command -v bpftool >/dev/null || need+=(bpftool)
  ;;
esac
if ((${#need[@]})); then
  echo "deps: installing ${need[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq "${need[@]}" >/dev/null
fi
