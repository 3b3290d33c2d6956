#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
#
# The README's main job, in one command on a fresh Debian 12 machine (as root):
# install what is missing, build into build/, start a memory server on
# 127.0.0.1 (ephemeral port), then run a memory-bound program (sdrsa-workload,
# which knows nothing about sdrsa) whose memory is four times its local
# budget: once all-local, once under `rsa-app run --local BUDGET` with a live
# progress line every second; then a summary: time of each phase and the
# ratio, faults, pages and bytes moved, and whether the data came back right
# (each run checks every word; both must end with the same checksum). The
# server is stopped on exit and on Ctrl-C. Exit 0 only if the data verified.
#
#   scripts/demo.sh                    the engine demo, embedded defaults
#   scripts/demo.sh --library [ARGS]   the client library demo instead:
#                                      sdrsa-demo stores a working set larger
#                                      than one client's quota through several
#                                      namespaces and reads it back (ARGS go
#                                      to sdrsa-demo, see its --help)
#
# Defaults, overridable from the environment:
#   SDRSA_DEMO_LOCAL  local budget of the engine demo      (64M)
#   SDRSA_DEMO_SIZE   the workload's memory                (4 x SDRSA_DEMO_LOCAL)
#   SDRSA_DEMO_OPS    random updates, and hot-set updates  (200000)
#   SDRSA_DEMO_POOL   server pool (library demo: 256M; engine demo: 2 x size)
#   SDRSA_DEMO_QUOTA  per-client quota in 4 KiB pages, library demo (16384)
#   SDRSA_BUILD_DIR   meson build directory                (build)
set -euo pipefail

cd "$(dirname "$0")/.."
build=${SDRSA_BUILD_DIR:-build}
mode=engine
case "${1:-}" in
-h | --help)
	sed -n '3,27p' "$0" | sed 's/^# \{0,1\}//'
	exit 0
	;;
--library)
	mode=library
	shift
	;;
esac

tmp=$(mktemp -d /tmp/sdrsa-demo.XXXXXX)
server_pid=
app_pid=
cleanup() {
	if [ -n "$app_pid" ] && kill -0 "$app_pid" 2>/dev/null; then
		kill -TERM "$app_pid" 2>/dev/null || true # rsa-app passes it on
		wait "$app_pid" 2>/dev/null || true
	fi
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
# rsa-app and the workload get the terminal's SIGINT too (rsa-app passes it
# on to the program); the trap on EXIT stops the server.
trap 'echo; echo "sdrsa demo: interrupted" >&2; exit 130' INT
trap 'exit 143' TERM

scripts/deps.sh

if [ "$mode" = library ]; then
	targets=(memory-server sdrsa-demo)
else
	targets=(memory-server rsa-app sdrsa-preload sdrsa-workload)
fi
echo "sdrsa demo: building into $build/ (log: $build/demo-build.log)"
mkdir -p "$build"
if ! {
	if [ ! -f "$build/build.ninja" ]; then
		meson setup --wipe "$build" || meson setup "$build"
	fi
	meson compile -C "$build" "${targets[@]}"
} >"$tmp/build.log" 2>&1; then
	cp "$tmp/build.log" "$build/demo-build.log" 2>/dev/null || true
	tail -n 40 "$tmp/build.log" >&2
	echo "sdrsa demo: the build failed; full log in $build/demo-build.log" >&2
	exit 1
fi
cp "$tmp/build.log" "$build/demo-build.log"

# start_server POOL [OPTIONS...]: sets server_pid and addr.
start_server() {
	"$build/src/bin/memory-server" "$@" --listen 127.0.0.1:0 \
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
}

if [ "$mode" = library ]; then
	start_server "${SDRSA_DEMO_POOL:-256M}" --max-client-pages "${SDRSA_DEMO_QUOTA:-16384}"
	rc=0
	"$build/src/bin/sdrsa-demo" --server "$addr" --size "${SDRSA_DEMO_SIZE:-160M}" "$@" || rc=$?
	if [ "$rc" -ne 0 ] && [ -s "$tmp/server.err" ]; then
		echo "sdrsa demo: last lines of the server's log:" >&2
		tail -n 20 "$tmp/server.err" >&2
	fi
	exit "$rc"
fi

# ---- the engine demo ----
if [ $# -gt 0 ]; then
	echo "sdrsa demo: unknown argument '$1' (see --help)" >&2
	exit 2
fi
to_mib() { # SIZE with K/M/G suffix -> MiB
	local v=${1%[KkMmGg]} u=${1: -1}
	case "$u" in
	K | k) echo $((v / 1024)) ;;
	M | m) echo "$v" ;;
	G | g) echo $((v * 1024)) ;;
	*) echo $((v / 1048576)) ;;
	esac
}
local_mib=$(to_mib "${SDRSA_DEMO_LOCAL:-64M}")
size_mib=$(to_mib "${SDRSA_DEMO_SIZE:-$((4 * local_mib))M}")
ops=${SDRSA_DEMO_OPS:-200000}
pool_mib=$(to_mib "${SDRSA_DEMO_POOL:-$((2 * size_mib))M}")
if [ "$local_mib" -lt 1 ] || [ "$size_mib" -le "$local_mib" ]; then
	echo "sdrsa demo: the workload ($size_mib MiB) must be larger than the budget ($local_mib MiB)" >&2
	exit 2
fi
start_server "${pool_mib}M"
work="$build/src/engine/sdrsa-workload"
app="$build/src/bin/rsa-app"

echo
echo "== 1/2: the workload all-local ($size_mib MiB in this machine's RAM) =="
"$work" --size "${size_mib}M" --ops "$ops" | tee "$tmp/local.out"

echo
echo "== 2/2: the same under the paging engine: $local_mib MiB local, the rest on the server =="
echo "   rsa-app run --server $addr --local ${local_mib}M --stats-interval 1s -- sdrsa-workload ..."
rc=0
"$app" run --server "$addr" --local "${local_mib}M" --stats-interval 1s \
	--stats-json "$tmp/stats.json" -- "$work" --size "${size_mib}M" --ops "$ops" \
	> >(tee "$tmp/engine.out") 2> >(sed -u 's/^sdrsa: /   live: /' >&2) &
app_pid=$!
wait "$app_pid" || rc=$?
app_pid=
sleep 0.2 # let the last lines through

python3 - "$tmp/local.out" "$tmp/engine.out" "$tmp/stats.json" "$local_mib" "$size_mib" "$rc" <<'PY'
import json, sys
local_f, eng_f, stats_f, local_mib, size_mib, rc = sys.argv[1:]
def phases(path):
    out = {}
    for line in open(path):
        w = line.split()
        if len(w) >= 3 and w[2] == "s":
            out[w[0]] = float(w[1])
        elif len(w) == 2 and w[0] == "checksum":
            out["checksum"] = w[1]
        elif w[:1] == ["verified"]:
            out["verified"] = True
    return out
a, b = phases(local_f), phases(eng_f)
try:
    s = json.load(open(stats_f))
except Exception:
    s = None
print()
print("== summary ==")
print("workload: %s MiB; local budget under the engine: %s MiB (a quarter)" % (size_mib, local_mib))
print("%-8s %12s %14s %8s" % ("phase", "all-local", "under engine", "ratio"))
for ph in ["fill", "scan", "random", "hot", "verify", "total"]:
    if ph in a and ph in b:
        r = b[ph] / a[ph] if a[ph] > 0 else float("inf")
        print("%-8s %10.2f s %12.2f s %7.1fx" % (ph, a[ph], b[ph], r))
if s:
    f = s["faults"]
    mib = 1 << 20
    print("faults: %d first-touch (zero page, no traffic), %d remote, %d local refills, "
          "%d first writes" % (f["zero"], f["remote"], f["refill"], f["wp"]))
    print("pages: %d fetched (%d of them prefetched), %d sent, %d dropped clean; "
          "%.0f MiB sent, %.0f MiB received" % (s["pages_in"], s["pages_prefetched"],
          s["pages_out"], s["pages_dropped"], s["bytes_sent"] / mib, s["bytes_recv"] / mib))
    print("fault service time: p50 %.1f us, p99 %.1f us (remote: p50 %.1f us); local pages at "
          "the end: %d of a budget of %d" % (s["fault_latency_ns"]["p50"] / 1e3,
          s["fault_latency_ns"]["p99"] / 1e3, s["remote_fault_latency_ns"]["p50"] / 1e3,
          s["resident"] + s["staged"], s["budget_pages"]))
ok = rc == "0" and a.get("verified") and b.get("verified") and a.get("checksum") == b.get("checksum")
if ok:
    print("data: every word checked in both runs, same checksum %s: verified" % b["checksum"])
else:
    print("data: NOT VERIFIED (all-local %s, engine %s, rsa-app exit %s)" %
          (a.get("checksum"), b.get("checksum"), rc))
sys.exit(0 if ok else 1)
PY
