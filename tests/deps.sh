#!/usr/bin/env bash
# Installs the Debian packages a suite needs, only when missing, so a warm
# machine pays nothing. Needs root (CI runs as root).
#   deps.sh            what `make test` needs
#   deps.sh bench      plus bubblewrap, the benchmark's point of comparison
set -euo pipefail
need=()
command -v setpriv >/dev/null || need+=(util-linux)
command -v node >/dev/null || need+=(nodejs)
command -v npm >/dev/null || need+=(npm)
if [[ "${1:-}" == bench ]]; then
  command -v bwrap >/dev/null || need+=(bubblewrap)
fi
if ((${#need[@]})); then
  echo "deps: installing ${need[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq "${need[@]}" >/dev/null
fi
