#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
#
# Build the benchmark and run it: 4 KiB pages on loopback, sdrsa against a raw
# TCP baseline, memcached and Redis, all in one run (see docs/PERFORMANCE.md).
#
#   scripts/bench.sh                  full run, pinned and unpinned placements
#   scripts/bench.sh --quick          short smoke run
#   scripts/bench.sh --placement all  also client and server on different CPUs
#   scripts/bench.sh --bench curve    performance against local memory, drawn:
#                                     docs/curve.csv and docs/curve.png (with
#                                     --quick: next to the report instead)
#
# Arguments are passed to pagebench (pagebench --help lists them). Installs
# what is missing through scripts/deps.sh (root needed the first time), builds
# a release build in $BUILDDIR (build-bench), and writes the report and a CSV
# to $RESULTS_DIR (build-bench/results) as pagebench-DATE.txt and .csv.
# Exit status is pagebench's: 0 measured, 1 something failed, 2 usage.
set -eu
cd "$(dirname "$0")/.."

# --bench NAME picks another program of bench/ (scripts/bench-engine.sh uses
# it for enginebench); the rest of the arguments go to that program.
bench=pagebench
if [ "${1:-}" = --bench ]; then
	bench=${2:?--bench needs a name, e.g. enginebench}
	shift 2
fi
# "curve" is curvebench and its picture (bench/curve.gp, gnuplot).
[ "$bench" = curve ] && bench=curvebench

scripts/deps.sh

builddir=${BUILDDIR:-build-bench}
if [ -f "$builddir/build.ninja" ]; then
	meson configure "$builddir" -Dbench=true -Dbuildtype=release >/dev/null
else
	meson setup "$builddir" -Dbench=true -Dbuildtype=release >/dev/null
fi
targets=("bench/$bench" src/bin/memory-server)
[ "$bench" = curvebench ] &&
	targets+=(bench/curveload src/bin/rsa-app src/engine/libsdrsa-preload.so)
ninja -C "$builddir" "${targets[@]}" >/dev/null

# The figures mean something only on an otherwise idle machine.
load=$(cut -d' ' -f1 /proc/loadavg)
if awk -v l="$load" 'BEGIN { exit !(l > 0.5) }'; then
	echo "$bench: warning: load average is $load; other work will skew the figures" >&2
fi

results=${RESULTS_DIR:-$builddir/results}
mkdir -p "$results"
out="$results/$bench-$(date -u +%Y%m%d-%H%M%S)"
"$builddir/bench/$bench" --server-bin "$builddir/src/bin/memory-server" \
	--csv "$out.csv" "$@" 2>&1 | tee "$out.txt"
status=${PIPESTATUS[0]}
echo "$bench: results in $out.txt and $out.csv" >&2
if [ "$bench" = curvebench ] && [ -s "$out.csv" ]; then
	gnuplot -c bench/curve.gp "$out.csv" "$out.png" \
		"$(head -n 1 "$out.txt"); at the end $(cut -d' ' -f1-3 /proc/loadavg)"
	echo "$bench: picture in $out.png" >&2
	# Only a complete, verified full run replaces the figures of docs/.
	case " $* " in *" --quick "*) ;; *)
		if [ "$status" -eq 0 ]; then
			cp "$out.csv" docs/curve.csv
			cp "$out.png" docs/curve.png
			echo "$bench: docs/curve.csv and docs/curve.png updated" >&2
		fi
	esac
fi
exit "$status"
