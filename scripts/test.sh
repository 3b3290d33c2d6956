#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
#
# The project's test command (see README): run it as root on a fresh Debian 12
# machine and it installs what is missing (scripts/deps.sh), then builds and
# tests the project four ways:
#
#   build/       gcc, warnings as errors, benchmarks built too (-Dbench=true,
#                so they cannot rot): every meson test (unit, integration,
#                fuzz-replay, engine, vm, and the benchmarks' small pipeline
#                check, suite bench); the benchmarks themselves are not run
#   build-asan/  gcc with AddressSanitizer + UndefinedBehaviorSanitizer: every
#                meson test again, servers included
#   build-fuzz/  clang with libFuzzer: each fuzz target runs for a bounded time
#                (tests/fuzz/meson.build: 20 s) on a copy of its seed corpus
#   build-xen/   the VM agent's Xen backend, compiled with warnings as errors
#                and counted as one test (Xen cannot run here: docs/VM.md)
#
# Failing tests have their logs printed. The last line is the summary
# "N passed, N failed", counting meson tests over all four builds (a build
# that fails to configure or compile counts as one failure); the exit status
# is non-zero when anything failed. Skipped tests are reported on the line
# before; with CI set in the environment the integration tests turn a
# missing feature into a failure rather than a skip.
#
# Build directories can be moved with BUILD_DIR, ASAN_DIR and FUZZ_DIR (e.g.
# to test without touching a developer's build/). Takes a few minutes on two
# cores.
set -uo pipefail

cd "$(dirname "$0")/.." || exit 1

BUILD_DIR=${BUILD_DIR:-build}
ASAN_DIR=${ASAN_DIR:-build-asan}
FUZZ_DIR=${FUZZ_DIR:-build-fuzz}

passed=0
failed=0
skipped=0
failures=()
t_start=$(date +%s)

say() {
	printf '\n=== %s\n' "$*"
}

# Configure DIR with the given options, reconfiguring an existing build
# directory in place (wiping it when it was set up with another compiler).
configure() {
	local dir=$1 want_cc=$2
	shift 2
	if [ -f "$dir/build.ninja" ]; then
		if [ "$want_cc" = clang ] &&
			! grep -q '"id": "clang"' "$dir/meson-info/intro-compilers.json" 2>/dev/null; then
			CC=clang meson setup --wipe "$dir" "$@"
		else
			CC=$want_cc meson setup --reconfigure "$dir" "$@"
		fi
	else
		CC=$want_cc meson setup "$dir" "$@"
	fi
}

# Add the outcome of the last `meson test` in DIR to the totals.
count_results() {
	local dir=$1 label=$2 counts
	counts=$(python3 - "$dir/meson-logs/testlog.json" <<'EOF'
import json, sys
ok = fail = skip = 0
bad = []
try:
    with open(sys.argv[1]) as f:
        for line in f:
            line = line.strip()
            if not line:
                continue
            t = json.loads(line)
            r = t.get("result", "")
            if r in ("OK", "EXPECTEDFAIL"):
                ok += 1
            elif r == "SKIP":
                skip += 1
            else:
                fail += 1
                bad.append(t.get("name", "?"))
except OSError:
    pass
print(ok, fail, skip)
for name in bad:
    print(name)
EOF
)
	local lines ok fail skip
	mapfile -t lines <<<"$counts"
	read -r ok fail skip <<<"${lines[0]}"
	passed=$((passed + ok))
	failed=$((failed + fail))
	skipped=$((skipped + skip))
	for n in "${lines[@]:1}"; do
		failures+=("$label: $n")
	done
}

# One build: configure, compile, run the hook named HOOK (or "none"), run
# meson test (extra args passed on).
run_build() {
	local label=$1 dir=$2 cc=$3 opts=$4 hook=$5
	shift 5
	say "$label: configure $dir ($cc $opts)"
	# shellcheck disable=SC2086
	if ! configure "$dir" "$cc" $opts; then
		failed=$((failed + 1))
		failures+=("$label: meson setup failed")
		return
	fi
	say "$label: build"
	if ! ninja -C "$dir"; then
		failed=$((failed + 1))
		failures+=("$label: build failed")
		return
	fi
	[ "$hook" = none ] || "$hook" "$dir"
	say "$label: test"
	rm -f "$dir/meson-logs/testlog.json"
	meson test -C "$dir" --no-rebuild --print-errorlogs "$@"
	count_results "$dir" "$label"
}

say "dependencies"
if ! scripts/deps.sh; then
	echo "sdrsa: cannot install the build dependencies (see above)" >&2
	echo "0 passed, 1 failed"
	exit 1
fi

# (a) the normal build, warnings are errors
run_build "gcc" "$BUILD_DIR" gcc "-Dwerror=true -Dtests=enabled -Dbench=true" none

# (b) sanitizers: any report aborts the process, so the test fails
export ASAN_OPTIONS=${ASAN_OPTIONS:-abort_on_error=1:halt_on_error=1:detect_leaks=1:strict_string_checks=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-halt_on_error=1:abort_on_error=1:print_stacktrace=1}
run_build "asan" "$ASAN_DIR" gcc \
	"-Dtests=enabled -Db_sanitize=address,undefined -Db_lundef=false" none \
	--timeout-multiplier 3

# (c) libFuzzer: the fuzz targets only, each on a fresh copy of its corpus
# (new inputs go to the copy; the committed corpus is only read)
fresh_corpus() {
	rm -rf "$1/tests/fuzz/corpus-work"
	cp -r tests/fuzz/corpus "$1/tests/fuzz/corpus-work"
}
run_build "fuzz" "$FUZZ_DIR" clang "-Dfuzz=true -Dtests=enabled" fresh_corpus --suite fuzz

# (d) the Xen backend of the VM agent: compiled with warnings as errors, not
# run (Xen cannot run on these machines; see docs/VM.md)
say "xen: configure and build build-xen (compile only)"
if CC=gcc meson setup --reconfigure build-xen -Dxen=true -Dwerror=true -Dtests=disabled \
	>/dev/null 2>&1 || CC=gcc meson setup build-xen -Dxen=true -Dwerror=true -Dtests=disabled; then
	if ninja -C build-xen; then
		passed=$((passed + 1))
	else
		failed=$((failed + 1))
		failures+=("xen: build failed")
	fi
else
	failed=$((failed + 1))
	failures+=("xen: meson setup failed")
fi

t_end=$(date +%s)
say "summary ($((t_end - t_start)) s)"
for f in "${failures[@]+"${failures[@]}"}"; do
	echo "FAILED $f"
done
[ "$skipped" -gt 0 ] && echo "$skipped skipped"
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
