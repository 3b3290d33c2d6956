#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
#
# Build the paging engine's benchmark and run it (see docs/PERFORMANCE.md,
# "Paging engine"): remote fault latency and sequential scan against raw TCP
# on loopback, and a 512 MiB memory-bound workload with 256 MiB and 128 MiB
# local against all-local, a swap file and zram at the same budget, all in
# one run.
#
#   scripts/bench-engine.sh                 full run (several minutes; root for
#                                           the swap references)
#   scripts/bench-engine.sh --quick         short smoke run (64 MiB workload)
#   scripts/bench-engine.sh --only lat,scan latency and scan only
#
# Arguments are passed to enginebench (enginebench --help lists them).
# Installs what is missing through scripts/deps.sh, builds a release build in
# $BUILDDIR (build-bench), and writes the report and a CSV to $RESULTS_DIR
# (build-bench/results) as enginebench-DATE.txt and .csv. The bench creates
# and removes its memory cgroup, swap file and zram device itself (also on
# Ctrl-C). Exit status is enginebench's: 0 measured, 1 something failed, 2
# usage.
set -eu
cd "$(dirname "$0")/.."

scripts/deps.sh

builddir=${BUILDDIR:-build-bench}
if [ -f "$builddir/build.ninja" ]; then
	meson configure "$builddir" -Dbench=true -Dbuildtype=release >/dev/null
else
	meson setup "$builddir" -Dbench=true -Dbuildtype=release >/dev/null
fi
ninja -C "$builddir" bench/enginebench src/bin/memory-server >/dev/null

load=$(cut -d' ' -f1 /proc/loadavg)
if awk -v l="$load" 'BEGIN { exit !(l > 0.5) }'; then
	echo "bench-engine.sh: warning: load average is $load; other work will skew the figures" >&2
fi

results=${RESULTS_DIR:-$builddir/results}
mkdir -p "$results"
out="$results/enginebench-$(date -u +%Y%m%d-%H%M%S)"
"$builddir/bench/enginebench" --server-bin "$builddir/src/bin/memory-server" \
	--csv "$out.csv" "$@" 2>&1 | tee "$out.txt"
status=${PIPESTATUS[0]}
echo "bench-engine.sh: results in $out.txt and $out.csv" >&2
exit "$status"
