#!/bin/sh
# Installs the pinned reference MCP servers (package-lock.json) into
# tests/servers/node_modules for the end-to-end tests and benchmarks.
# Idempotent: does nothing when the installed tree matches the lock file.
# Lifecycle scripts are never run (--ignore-scripts): the tests execute these
# packages' dist/ files with node directly.
set -eu

cd "$(dirname "$0")"

stamp=node_modules/.mcpjail-installed
lock_sum=$(sha256sum package-lock.json | cut -d' ' -f1)

if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$lock_sum" ]; then
	exit 0
fi

if ! command -v npm >/dev/null 2>&1; then
	echo "install.sh: npm not found (apt-get install nodejs npm)" >&2
	exit 1
fi

npm ci --ignore-scripts --no-audit --no-fund --loglevel=error
for s in filesystem memory everything; do
	f=node_modules/@modelcontextprotocol/server-$s/dist/index.js
	if [ ! -f "$f" ]; then
		echo "install.sh: $f missing after npm ci" >&2
		exit 1
	fi
done
echo "$lock_sum" >"$stamp"
