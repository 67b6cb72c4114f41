#!/usr/bin/env bash
# check-unit: `make install` into a temporary root, then `systemd-analyze
# verify` on the unit it wrote, and a second install that must keep an
# edited config. Runs offline on a host that does not boot systemd.
#
# verify refuses a unit whose ExecStart= binary is missing, and its --root=
# resolves every path inside the root (/bin/sh, /bin/kill, sysinit.target),
# so it cannot check a unit staged in a DESTDIR as is. Instead the staged
# unit is copied with BINDIR pointing into the temporary root, where the
# just-installed binary is: the checked text is otherwise what was installed.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v systemd-analyze >/dev/null; then
	echo "check-unit: systemd-analyze not found; make deps installs Debian's systemd package" >&2
	exit 1
fi

root=$(mktemp -d)
trap 'rm -rf "$root"' EXIT
bindir=/usr/local/bin
unitdir=/lib/systemd/system
make --no-print-directory -s install DESTDIR="$root" PREFIX=/usr/local UNITDIR="$unitdir" >/dev/null

for f in "$bindir/mcpjail" "$bindir/mcpjail-init" "$bindir/mcpjail-daemon" "$unitdir/mcpjail.service" /etc/mcpjail/mcpjail.yaml \
	/etc/mcpjail/profiles/README /etc/mcpjail/profiles/example-memory.yaml \
	/etc/mcpjail/servers.d/example.yaml.disabled; do
	[[ -f "$root$f" ]] || { echo "check-unit: make install did not write $f" >&2; exit 1; }
done

mkdir "$root/verify"
sed "s|$bindir/mcpjail|$root$bindir/mcpjail|g" "$root$unitdir/mcpjail.service" >"$root/verify/mcpjail.service"
# verify exits 0 on warnings such as an unknown key or an unparsable value,
# so any line about this unit fails the check. Lines about other units
# (the host's own) are shown but do not count.
out=$(systemd-analyze verify --man=no --generators=no --recursive-errors=no \
	"$root/verify/mcpjail.service" 2>&1) || { echo "$out" >&2; echo "check-unit: systemd-analyze verify failed" >&2; exit 1; }
if grep -q 'mcpjail\.service' <<<"$out"; then
	echo "$out" >&2
	echo "check-unit: systemd-analyze verify reported problems with mcpjail.service" >&2
	exit 1
fi
[[ -z "$out" ]] || echo "$out"

# A second install keeps the operator's config.
echo "# edited by the operator" >>"$root/etc/mcpjail/mcpjail.yaml"
make --no-print-directory -s install DESTDIR="$root" PREFIX=/usr/local UNITDIR="$unitdir" >/dev/null
if ! grep -q '^# edited by the operator$' "$root/etc/mcpjail/mcpjail.yaml"; then
	echo "check-unit: make install overwrote an existing /etc/mcpjail/mcpjail.yaml" >&2
	exit 1
fi
echo "check-unit: mcpjail.service verified; make install keeps an existing config"
