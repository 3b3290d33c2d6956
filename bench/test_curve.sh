#!/bin/sh
# SPDX-License-Identifier: MIT
# The curve pipeline end to end, small: curvebench runs the zipf and the
# redis-zipf workload at 50 % and 100 % local (all-local, sdrsa with the
# engine's default policy and with fifo, Linux swap when root can make a
# cgroup v1 and a swap file), writes its CSV, and bench/curve.gp draws it.
# Checks: every point ran and verified its data (a swap run may be killed
# by the OOM killer), the sdrsa points at 50 % fetched pages remotely and
# are slower than all-local on the synthetic workload, the swap points are
# there when they can be, and the PNG is a PNG of the expected width.
# Usage: test_curve.sh CURVEBENCH CURVE_GP. Exit 0 pass, 1 fail, 77 skip
# (gnuplot or redis-server missing; with CI=true that is a failure).
set -u
BENCH=$1
GP=$2
skip() {
	if [ "${CI:-}" = true ]; then echo "FAIL (CI): $*" >&2; exit 1; fi
	echo "skip: $*"; exit 77
}
command -v gnuplot >/dev/null || skip "gnuplot not installed (scripts/deps.sh)"
command -v redis-server >/dev/null || skip "redis-server not installed (scripts/deps.sh)"
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
fail() { echo "FAIL: $*" >&2; [ -f "$T/out" ] && tail -n 20 "$T/out" >&2; exit 1; }

systems=local,sdrsa
swap=0
if [ "$(id -u)" = 0 ] && [ -w /sys/fs/cgroup/memory/memory.limit_in_bytes ]; then
	systems=local,sdrsa,swap
	swap=1
fi
"$BENCH" --workloads zipf,redis-zipf --systems "$systems" --policies default,fifo \
	--local-pcts 50,100 --size 32M --ops 20000 --redis-keys 1024 --redis-ops 4000 \
	--min-seconds 0.2 \
	--csv "$T/curve.csv" >"$T/out" 2>&1 || fail "curvebench exited $?"

python3 - "$T/curve.csv" "$swap" <<'PY' || fail "CSV: $(cat "$T/curve.csv")"
import csv, math, sys
rows = list(csv.DictReader(open(sys.argv[1])))
swap = sys.argv[2] == "1"
def row(w, s, pct):
    m = [r for r in rows if r["workload"] == w and r["system"] == s and float(r["local_pct"]) == pct]
    assert len(m) == 1, (w, s, pct, m)
    return m[0]
for r in rows:
    # The memory cgroup's OOM killer may end a swap run: a result, not an error.
    if r["system"] == "linux-swap" and r["status"] == "killed":
        continue
    assert r["status"] == "ok", r
    assert float(r["ops_per_s"]) > 0, r
for w in ("zipf", "redis-zipf"):
    local = row(w, "all-local", 100)
    assert float(local["ratio_to_local"]) == 1.0, local
    for s in ["sdrsa-default", "sdrsa-fifo"] + (["linux-swap"] if swap else []):
        for pct in (50, 100):
            r = row(w, s, pct)
            assert int(r["local_bytes"]) <= int(r["working_set_bytes"]) * pct / 100 + 4096, r
            if s.startswith("sdrsa") and pct == 50:
                assert int(r["remote_faults"]) > 0, r
            if not s.startswith("sdrsa"):
                assert math.isnan(float(r["remote_faults"])), r
        # Half the working set remote: far below local memory's speed.
        if w == "zipf" and s.startswith("sdrsa"):
            assert float(row(w, s, 50)["ratio_to_local"]) < 0.5, row(w, s, 50)
PY

gnuplot -c "$GP" "$T/curve.csv" "$T/curve.png" "test_curve" >"$T/gp.out" 2>&1 ||
	fail "gnuplot: $(cat "$T/gp.out")"
python3 - "$T/curve.png" <<'PY' || fail "not the expected PNG"
import struct, sys
b = open(sys.argv[1], "rb").read()
assert b[:8] == b"\x89PNG\r\n\x1a\n" and b[12:16] == b"IHDR", b[:16]
width, height = struct.unpack(">II", b[16:24])
assert width == 1400 and height > 300, (width, height)
assert len(b) > 20000, len(b)  # lines and labels, not an empty frame
PY
echo "ok curve: $(grep -c . "$T/curve.csv") CSV lines, swap $swap, $(stat -c %s "$T/curve.png") bytes of PNG"
exit 0
