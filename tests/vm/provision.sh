#!/usr/bin/env bash
# Provisioning of the Vagrant box (Vagrantfile at the top of the repository):
# a Debian 12 machine where every layer of mcpjail is present, for a
# developer on macOS or on a kernel that lacks them. Runs as root, in two
# steps with a reboot between them (the Vagrantfile does the reboot):
#
#   provision.sh setup   Debian's 6.12 kernel from bookworm-backports
#                        (Landlock ABI 6, cgroup UNIX socket hooks),
#                        the BPF LSM on the kernel command line, the
#                        eBPF toolchain, Go from go.dev and Node 20
#                        from nodejs.org
#   provision.sh test    checks what the kernel now offers and runs
#                        `make test` in /vagrant
#
# clang-19 and llvm-19 are in bookworm's main archive since Debian 12.10, so
# neither apt.llvm.org nor backports is needed for them. Debian's own nodejs
# is 18; the reference servers want Node 20, hence the nodejs.org tarball
# (checked against the release's SHASUMS256.txt). Go is checked against the
# .sha256 file published next to each go.dev tarball.
set -euo pipefail

GO_VERSION=${GO_VERSION:-1.26.0}
NODE_VERSION=${NODE_VERSION:-20.19.5}
REPO=${REPO:-/vagrant}

say() { echo "provision: $*"; }
die() { echo "provision: $*" >&2; exit 1; }

[[ $(id -u) -eq 0 ]] || die "run as root"
# shellcheck source=/dev/null
. /etc/os-release
[[ ${ID:-} == debian && ${VERSION_ID:-} == 12 ]] || die "made for Debian 12 (bookworm), this is ${PRETTY_NAME:-unknown}"
arch=$(dpkg --print-architecture)
[[ $arch == amd64 ]] || die "made for amd64 (the Go and Node tarballs below), this is $arch"

# fetch URL FILE SHA256: downloads and checks a file, or fails.
fetch() {
  curl -fsSL --retry 3 -o "$2" "$1"
  echo "$3  $2" | sha256sum -c --quiet - || die "checksum mismatch for $1"
}

install_go() {
  if [[ -x /usr/local/go/bin/go ]] && [[ $(/usr/local/go/bin/go env GOVERSION) == "go$GO_VERSION" ]]; then
    return
  fi
  local tgz=go$GO_VERSION.linux-amd64.tar.gz tmp sum
  tmp=$(mktemp -d)
  sum=$(curl -fsSL --retry 3 "https://dl.google.com/go/$tgz.sha256")
  say "installing Go $GO_VERSION"
  fetch "https://dl.google.com/go/$tgz" "$tmp/$tgz" "$sum"
  rm -rf /usr/local/go
  tar -C /usr/local -xzf "$tmp/$tgz"
  rm -rf "$tmp"
  ln -sf /usr/local/go/bin/go /usr/local/go/bin/gofmt /usr/local/bin/
}

install_node() {
  if command -v node >/dev/null && [[ $(node --version) == "v$NODE_VERSION" ]]; then
    return
  fi
  local name=node-v$NODE_VERSION-linux-x64 tmp sum
  tmp=$(mktemp -d)
  curl -fsSL --retry 3 -o "$tmp/SHASUMS256.txt" "https://nodejs.org/dist/v$NODE_VERSION/SHASUMS256.txt"
  sum=$(awk -v f="$name.tar.xz" '$2 == f { print $1 }' "$tmp/SHASUMS256.txt")
  [[ -n $sum ]] || die "no checksum for $name.tar.xz in SHASUMS256.txt"
  say "installing Node $NODE_VERSION"
  fetch "https://nodejs.org/dist/v$NODE_VERSION/$name.tar.xz" "$tmp/$name.tar.xz" "$sum"
  rm -rf /usr/local/lib/nodejs
  mkdir -p /usr/local/lib/nodejs
  tar -C /usr/local/lib/nodejs --strip-components=1 -xJf "$tmp/$name.tar.xz"
  rm -rf "$tmp"
  ln -sf /usr/local/lib/nodejs/bin/node /usr/local/lib/nodejs/bin/npm /usr/local/lib/nodejs/bin/npx /usr/local/bin/
}

# enable_bpf_lsm appends bpf to the kernel's LSM list on the GRUB command
# line when the running kernel does not have it active.
enable_bpf_lsm() {
  local active
  active=$(cat /sys/kernel/security/lsm 2>/dev/null || true)
  if [[ ,$active, == *,bpf,* ]]; then
    say "the BPF LSM is active ($active)"
    return
  fi
  if grep -q '^GRUB_CMDLINE_LINUX=.*lsm=' /etc/default/grub; then
    die "GRUB_CMDLINE_LINUX sets lsm= already, without bpf: add bpf to it by hand"
  fi
  [[ -n $active ]] || active=landlock,lockdown,yama,integrity,apparmor
  say "adding lsm=$active,bpf to GRUB_CMDLINE_LINUX"
  sed -i "s/^GRUB_CMDLINE_LINUX=\"\(.*\)\"/GRUB_CMDLINE_LINUX=\"\1 lsm=$active,bpf\"/" /etc/default/grub
  update-grub
}

setup() {
  export DEBIAN_FRONTEND=noninteractive
  echo 'deb http://deb.debian.org/debian bookworm-backports main' >/etc/apt/sources.list.d/bookworm-backports.list
  apt-get update -qq
  say "installing the packages"
  apt-get install -y -qq ca-certificates curl git make xz-utils util-linux \
    clang-19 llvm-19 libbpf-dev bpftool >/dev/null
  # The test suite and `make test-vm` install the rest on demand (tests/deps.sh).
  apt-get install -y -qq -t bookworm-backports linux-image-amd64 >/dev/null
  install_go
  install_node
  enable_bpf_lsm
  say "setup done; the Vagrantfile reboots the box into the new kernel"
}

run_tests() {
  say "kernel $(uname -r), LSMs $(cat /sys/kernel/security/lsm)"
  [[ ,$(cat /sys/kernel/security/lsm), == *,bpf,* ]] || die "the BPF LSM is not active after the reboot"
  cd "$REPO"
  # This box is not one of the project's own machines, whose kernel facts
  # MCPJAIL_EXPECT_HOST=1 asserts: the suite reads this kernel's instead.
  make test MCPJAIL_EXPECT_HOST=0
}

case "${1:-}" in
setup) setup ;;
test) run_tests ;;
*) die "usage: provision.sh setup|test" ;;
esac
