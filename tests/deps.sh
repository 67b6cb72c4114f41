#!/bin/sh
# Installs the Debian packages mcpjail's tests and benchmark need, only when
# something is missing: node and npm (reference MCP servers), bubblewrap (the
# startup benchmark's baseline) and util-linux's setpriv (the fail-closed
# tests run mcpjail as uid 65534).
set -eu

missing=""
command -v node >/dev/null 2>&1 || missing="$missing nodejs"
command -v npm >/dev/null 2>&1 || missing="$missing npm"
[ -x /usr/bin/bwrap ] || missing="$missing bubblewrap"
[ -x /usr/bin/setpriv ] || missing="$missing util-linux"

[ -z "$missing" ] && exit 0

if [ "$(id -u)" != 0 ]; then
	echo "deps.sh: missing packages:$missing (run as root, or install them)" >&2
	exit 1
fi
echo "deps.sh: installing$missing" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
# shellcheck disable=SC2086 # word splitting of the package list is intended
apt-get install -y -qq --no-install-recommends $missing
