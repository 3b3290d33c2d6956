#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
#
# The README's main job, in one command on a fresh Debian 12 machine (as root):
# install what is missing, build into build/, start a memory server on
# 127.0.0.1 (ephemeral port) with a pool and a per-client quota, run
# sdrsa-demo against it (a working set bigger than one client's quota, stored
# through several client namespaces, read back and verified byte for byte),
# then stop the server. Exit status: sdrsa-demo's (0 only if every page
# verified).
#
#   scripts/demo.sh                  embedded defaults
#   scripts/demo.sh --size 512M      extra options go to sdrsa-demo (see --help)
#
# Defaults, overridable from the environment:
#   SDRSA_DEMO_POOL   server pool size                 (256M)
#   SDRSA_DEMO_QUOTA  per-client quota in 4 KiB pages   (16384 = 64 MiB)
#   SDRSA_DEMO_SIZE   working set                       (160M: 2.5 quotas)
#   SDRSA_BUILD_DIR   meson build directory             (build)
set -euo pipefail

cd "$(dirname "$0")/.."
pool=${SDRSA_DEMO_POOL:-256M}
quota=${SDRSA_DEMO_QUOTA:-16384}
size=${SDRSA_DEMO_SIZE:-160M}
build=${SDRSA_BUILD_DIR:-build}

case "${1:-}" in
-h | --help)
	sed -n '3,19p' "$0" | sed 's/^# \{0,1\}//'
	exit 0
	;;
esac

tmp=$(mktemp -d /tmp/sdrsa-demo.XXXXXX)
server_pid=
cleanup() {
	if [ -n "$server_pid" ] && kill -0 "$server_pid" 2>/dev/null; then
		kill -TERM "$server_pid" 2>/dev/null || true
		for _ in $(seq 50); do
			kill -0 "$server_pid" 2>/dev/null || break
			sleep 0.1
		done
		kill -KILL "$server_pid" 2>/dev/null || true
		wait "$server_pid" 2>/dev/null || true
	fi
	rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

scripts/deps.sh

echo "sdrsa demo: building into $build/ (log: $build/demo-build.log)"
mkdir -p "$build"
if ! {
	if [ ! -f "$build/build.ninja" ]; then
		meson setup --wipe "$build" || meson setup "$build"
	fi
	meson compile -C "$build" memory-server sdrsa-demo
} >"$tmp/build.log" 2>&1; then
	cp "$tmp/build.log" "$build/demo-build.log" 2>/dev/null || true
	tail -n 40 "$tmp/build.log" >&2
	echo "sdrsa demo: the build failed; full log in $build/demo-build.log" >&2
	exit 1
fi
cp "$tmp/build.log" "$build/demo-build.log"

server="$build/src/bin/memory-server"
demo="$build/src/bin/sdrsa-demo"
"$server" "$pool" --listen 127.0.0.1:0 --max-client-pages "$quota" \
	>"$tmp/server.out" 2>"$tmp/server.err" &
server_pid=$!

# Wait for "ready"; the port is on the "listening on" line.
for _ in $(seq 100); do
	grep -q '^ready' "$tmp/server.out" 2>/dev/null && break
	if ! kill -0 "$server_pid" 2>/dev/null; then
		cat "$tmp/server.out" "$tmp/server.err" >&2
		echo "sdrsa demo: memory-server exited before it was ready (see above)" >&2
		exit 1
	fi
	sleep 0.1
done
if ! grep -q '^ready' "$tmp/server.out"; then
	cat "$tmp/server.out" "$tmp/server.err" >&2
	echo "sdrsa demo: memory-server did not become ready within 10 s" >&2
	exit 1
fi
addr=$(sed -n 's/^listening on \(127\.0\.0\.1:[0-9][0-9]*\).*/\1/p' "$tmp/server.out" | head -n 1)
if [ -z "$addr" ]; then
	cat "$tmp/server.out" >&2
	echo "sdrsa demo: cannot find the server's port in its output" >&2
	exit 1
fi
sed -n '/^ready/q;s/^/server: /p' "$tmp/server.out"

rc=0
"$demo" --server "$addr" --size "$size" "$@" || rc=$?
if [ "$rc" -ne 0 ] && [ -s "$tmp/server.err" ]; then
	echo "sdrsa demo: last lines of the server's log:" >&2
	tail -n 20 "$tmp/server.err" >&2
fi
exit "$rc"
