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
exec "$(dirname "$0")/bench.sh" --bench enginebench "$@"
