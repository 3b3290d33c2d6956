#!/bin/sh
# SPDX-License-Identifier: MIT
# rsa-app end to end: bad options, unreachable server, real programs (sort,
# python3) with a budget well below their working set and output compared
# with a run without the engine, --stats-json content, fork (the child reads
# its parent's remote pages), the server's quota reached while evicting, the
# preload library without rsa-app freeing its pages at exit, and the
# failures: the engine's thread dying, pages failing their checksum, the
# server stalling (SIGSTOP) and dying mid-run (the program must stop loudly, never go on with wrong
# memory).
# Usage: test_rsa_app.sh RSA_APP MEMORY_SERVER T_NSPAGES PRELOAD T_WORKLOAD.
# Exit 0 pass, 1 fail, 77 skip.
set -u
APP=$1
SRV=$2
NSPAGES=$3
PRELOAD=$4
WORK=$5
T=$(mktemp -d)
SPID=
QPID=
HPID=
cleanup() {
	for p in $SPID $QPID; do kill -CONT "$p" 2>/dev/null; kill "$p" 2>/dev/null; done
	[ -n "$HPID" ] && kill "$HPID" 2>/dev/null
	wait 2>/dev/null
	rm -rf "$T"
}
trap cleanup EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }
ok() { echo "ok $*" >&2; }

start_server() {
	"$SRV" 256M --listen 127.0.0.1:0 --quiet >"$T/srv.out" 2>"$T/srv.err" &
	SPID=$!
	i=0
	while ! grep -q '^ready' "$T/srv.out" 2>/dev/null; do
		i=$((i + 1)); [ $i -gt 100 ] && fail "server did not start"
		sleep 0.05
	done
	ADDR=$(sed -n 's/^listening on //p' "$T/srv.out" | head -n 1)
}

[ -r /proc/sys/vm/unprivileged_userfaultfd ] || { echo "skip: no userfaultfd"; exit 77; }
[ "${SDRSA_TEST_SANITIZED:-0}" = 1 ] &&
	{ echo "skip: sanitizer build (the preload cannot go into uninstrumented programs)"; exit 77; }
start_server

# --- bad options: exit 2, one line
for args in "--local 0" "--local 100T" "--local 12Q" "--local 150%"; do
	# shellcheck disable=SC2086
	"$APP" run --server "$ADDR" $args -- true 2>"$T/err"; rc=$?
	[ $rc -eq 2 ] || fail "rsa-app $args: exit $rc, want 2"
	[ "$(wc -l <"$T/err")" -eq 1 ] || fail "rsa-app $args: not one line: $(cat "$T/err")"
done
"$APP" run --server "$ADDR" --local 16M 2>"$T/err"; rc=$?
[ $rc -eq 2 ] || fail "no command: exit $rc"
grep -q "no program" "$T/err" || fail "no command: $(cat "$T/err")"
"$APP" 2>/dev/null; [ $? -eq 2 ] || fail "no subcommand"
ok "bad options"

# --- unreachable server: one line before the program runs
"$APP" run --server 127.0.0.1:1 --local 16M -- sh -c "touch $T/ran" 2>"$T/err"; rc=$?
[ $rc -eq 1 ] || fail "unreachable: exit $rc"
[ ! -e "$T/ran" ] || fail "unreachable: the program ran"
grep -q "cannot reach memory server" "$T/err" || fail "unreachable: $(cat "$T/err")"
ok "unreachable server"

# --- sort: a buffer well above the budget
python3 -c "
import random
r = random.Random(7)
with open('$T/in.txt', 'w') as f:
    for i in range(100000):
        f.write('%016x %d\n' % (r.getrandbits(64), i))
"
sort -S 16M "$T/in.txt" >"$T/sort.ref"
"$APP" run --server "$ADDR" --local 1M --stats --stats-json "$T/sort.json" -- \
	sort -S 16M "$T/in.txt" >"$T/sort.out" 2>"$T/sort.err" || fail "sort under rsa-app: $(cat "$T/sort.err")"
cmp -s "$T/sort.ref" "$T/sort.out" || fail "sort output differs"
grep -q "^sdrsa: faults" "$T/sort.err" || fail "no --stats summary"
python3 -c "
import json, sys
s = json.load(open('$T/sort.json'))
assert s['faults']['remote'] > 0, s
assert s['pages_out'] > 0, s
assert s['budget_pages'] == 256, s
" || fail "stats json"
ok "sort ($(sed -n 's/^sdrsa: //p' "$T/sort.err"))"

# --- python3 building a large dict (malloc'd tables, obmalloc arenas, mremap)
cat >"$T/dict.py" <<'PY'
import hashlib
d = {}
for i in range(200000):
    d["key-%d" % i] = ("value-%d" % (i * 7)) * 3
h = hashlib.sha256()
for k in sorted(d):
    h.update(k.encode()); h.update(d[k].encode())
big = bytearray(24 << 20)          # one 24 MiB block
for i in range(0, len(big), 4096):
    big[i] = i // 4096 % 251
h.update(bytes(big[::4096]))
print(len(d), h.hexdigest())
PY
python3 "$T/dict.py" >"$T/dict.ref"
"$APP" run --server "$ADDR" --local 8M --stats -- python3 "$T/dict.py" >"$T/dict.out" 2>"$T/dict.err" ||
	fail "python3 under rsa-app: $(cat "$T/dict.err")"
cmp -s "$T/dict.ref" "$T/dict.out" || fail "python3 output differs: $(cat "$T/dict.out")"
ok "python3 dict ($(sed -n 's/^sdrsa: //p' "$T/dict.err"))"

# --- fork: subprocesses (vfork/posix_spawn) work; a fork() child reads the
# pages its parent holds remotely, right, and the parent's data stays right
cat >"$T/fork.py" <<'PY'
import os, subprocess, sys
big = bytearray(16 << 20)
for i in range(0, len(big), 4096):
    big[i] = (i // 4096) % 251
assert subprocess.run(["true"]).returncode == 0
pid = os.fork()
if pid == 0:
    for i in range(0, len(big), 4096):
        if big[i] != (i // 4096) % 251:
            os._exit(3)   # wrong data: must never happen
    for i in range(0, len(big), 4096):
        big[i] = 7        # the child's own copy
    os._exit(0)
for i in range(0, len(big), 4096):
    big[i] = (big[i] + 1) % 256   # the parent moves on while the child reads
_, st = os.waitpid(pid, 0)
assert os.WIFEXITED(st) and os.WEXITSTATUS(st) == 0, st
for i in range(0, len(big), 4096):
    assert big[i] == ((i // 4096) % 251 + 1) % 256
print("fork ok")
PY
"$APP" run --server "$ADDR" --local 4M -- python3 "$T/fork.py" >"$T/fork.out" 2>"$T/fork.err" ||
	fail "fork: $(cat "$T/fork.err")"
grep -q "fork ok" "$T/fork.out" || fail "fork: $(cat "$T/fork.out")"
"$APP" run --server "$ADDR" --local 4M -- "$WORK" fork 8192 >"$T/fork2.out" 2>"$T/fork2.err" ||
	fail "fork (C): $(cat "$T/fork2.out" "$T/fork2.err")"
ok "fork (python3 and C: the child read every remote page right)"

# --- --stats-json: fields present, counts consistent with a known workload
# (8192 pages written once then read once, budget 1024 pages, no prefetch)
"$APP" run --server "$ADDR" --local 4M --prefetch off --stats-json "$T/w.json" -- \
	"$WORK" once 8192 >"$T/w.out" 2>"$T/w.err" || fail "stats workload: $(cat "$T/w.err")"
python3 - "$T/w.json" <<'PY' || fail "stats json: $(cat "$T/w.json")"
import json, sys
s = json.load(open(sys.argv[1]))
n, b = 8192, 1024
for k in ["budget_pages", "managed_bytes", "faults", "pages_in", "pages_prefetched", "pages_out",
          "pages_dropped", "pages_staged", "pages_freed", "bytes_sent", "bytes_recv", "resident",
          "staged", "remote", "dirty", "events", "retries", "writes_predicted",
          "store_refusals", "fault_latency_ns", "remote_fault_latency_ns"]:
    assert k in s, k
f = s["faults"]
assert s["budget_pages"] == b and s["managed_bytes"] >= n * 4096, s
assert f["zero"] == n, f                       # every page's first touch, a write
assert f["wp"] == 0, f                         # first touches were writes: no WP fault
assert n - b <= f["remote"] <= n, f            # the read pass fetched what was out
assert s["pages_in"] == f["remote"] and s["pages_prefetched"] == 0, s
assert s["bytes_recv"] == 4096 * s["pages_in"], s
assert s["pages_out"] >= n - b and s["bytes_sent"] == 4096 * s["pages_out"], s
assert s["resident"] + s["staged"] <= b, s
assert s["resident"] + s["staged"] + s["remote"] == n, s
assert s["retries"] == 0 and s["store_refusals"] == 0, s
l, r = s["fault_latency_ns"], s["remote_fault_latency_ns"]
assert 0 < l["p50"] <= l["p90"] <= l["p99"] <= l["max"], l
assert 0 < r["p50"] <= r["p99"], r
PY
ok "stats json ($(cat "$T/w.json" | cut -c1-120)...)"

# --- --trace: one record per fault the engine saw; rsa-app sim replays it
# through every policy, the same way each time; bad traces are one clear line
"$APP" run --server "$ADDR" --local 4M --trace "$T/w.trace" --stats-json "$T/t.json" -- \
	"$WORK" once 8192 >"$T/t.out" 2>"$T/t.err" || fail "traced workload: $(cat "$T/t.err")"
python3 - "$T/w.trace" "$T/t.json" <<'PY' || fail "trace: $(head -c 64 "$T/w.trace" | od -c | head -3)"
import json, struct, sys
b = open(sys.argv[1], "rb").read()
s = json.load(open(sys.argv[2]))
magic, ver, flags, count, psize, _ = struct.unpack("<8sIIQII", b[:32])
assert magic == b"SDRSATR1" and ver == 1 and flags == 0 and psize == 4096, (magic, ver, flags)
f = s["faults"]
faults = f["zero"] + f["remote"] + f["refill"] + f["wp"] + f["dup"]
# and the pages fetched ahead that the stream was seen to use
assert faults <= count <= faults + s["pages_prefetched"], (count, f, s["pages_prefetched"])
assert count >= 2 * 8192 - 1024, count
# the read pass is one sequential stream: prefetched, and seen used
assert s["pages_prefetched"] >= 8192 - 1024 - 200, s
assert s["prefetch_unused"] * 10 <= s["pages_prefetched"], s
PY
"$APP" sim "$T/w.trace" --local 4M --policy all --prefetch all >"$T/sim1.out" 2>"$T/sim.err" ||
	fail "sim: $(cat "$T/sim.err")"
"$APP" sim "$T/w.trace" --local 4M --policy all --prefetch all >"$T/sim2.out" || fail "sim again"
cmp -s "$T/sim1.out" "$T/sim2.out" || fail "sim is not reproducible"
[ "$(grep -c -E '^(fifo|clock|2q) ' "$T/sim1.out")" -eq 9 ] || fail "sim table: $(cat "$T/sim1.out")"
awk '$1 == "fifo" && $2 == "off" { exit !($3 >= 8192 - 1024 && $3 <= 8192) }' "$T/sim1.out" ||
	fail "sim fifo without prefetch: $(cat "$T/sim1.out")"
"$APP" sim "$T/w.json" >/dev/null 2>"$T/err"; rc=$?
[ $rc -eq 1 ] && grep -q "not an sdrsa trace" "$T/err" || fail "sim on a non-trace: $rc $(cat "$T/err")"
head -c 40 "$T/w.trace" >"$T/cut.trace"
"$APP" sim "$T/cut.trace" >/dev/null 2>"$T/err"; rc=$?
[ $rc -eq 1 ] && grep -q "truncated" "$T/err" || fail "sim on a cut trace: $rc $(cat "$T/err")"
"$APP" sim "$T/w.trace" --policy lru >/dev/null 2>"$T/err"; rc=$?
[ $rc -eq 2 ] && [ "$(wc -l <"$T/err")" -eq 1 ] || fail "sim --policy lru: $rc $(cat "$T/err")"
# --from counts one phase (from halfway through the read pass: fewer faults
# than the whole trace); a record past the end or not a number: one clear
# line. --bounds needs a trace of every access: a recorded one says so.
"$APP" sim "$T/w.trace" --local 4M --policy fifo --prefetch off --from 12288 >"$T/sim3.out" \
	2>"$T/err" || fail "sim --from: $(cat "$T/err")"
all=$(awk '$1 == "fifo" && $2 == "off" { print $3 }' "$T/sim1.out")
part=$(awk '$1 == "fifo" && $2 == "off" { print $3 }' "$T/sim3.out")
grep -q "^counted from record 12288 on" "$T/sim3.out" && [ -n "$part" ] && [ "$part" -lt "$all" ] ||
	fail "sim --from 12288: $part of $all: $(cat "$T/sim3.out")"
"$APP" sim "$T/w.trace" --from 999999999 >/dev/null 2>"$T/err"; rc=$?
[ $rc -eq 1 ] && grep -q "the trace has" "$T/err" || fail "sim --from past the end: $rc $(cat "$T/err")"
"$APP" sim "$T/w.trace" --from x >/dev/null 2>"$T/err"; rc=$?
[ $rc -eq 2 ] && [ "$(wc -l <"$T/err")" -eq 1 ] || fail "sim --from x: $rc $(cat "$T/err")"
"$APP" sim "$T/w.trace" --local 4M --bounds >"$T/sim4.out" 2>"$T/err" || fail "sim --bounds: $(cat "$T/err")"
grep -q "no lru\*/opt\*" "$T/sim4.out" && ! grep -q "^opt\*" "$T/sim4.out" ||
	fail "sim --bounds on a recorded trace: $(cat "$T/sim4.out")"
"$APP" run --server "$ADDR" --local 4M --policy lru -- true 2>"$T/err"; rc=$?
[ $rc -eq 2 ] || fail "run --policy lru: exit $rc"
ok "trace and sim ($(grep '^2q  *stride' "$T/sim1.out" | tr -s ' '))"

# --- the server's quota is reached while evicting: the pages stay local
# over the budget with a warning, nothing is lost
"$SRV" 64M --listen 127.0.0.1:0 --quiet --max-client-pages 2048 >"$T/q.out" 2>"$T/q.err" &
QPID=$!
i=0
while ! grep -q '^ready' "$T/q.out" 2>/dev/null; do
	i=$((i + 1)); [ $i -gt 100 ] && fail "quota server did not start"
	sleep 0.05
done
QADDR=$(sed -n 's/^listening on //p' "$T/q.out" | head -n 1)
"$APP" run --server "$QADDR" --local 4M --stats -- "$WORK" once 8192 >"$T/quota.out" 2>"$T/quota.err" ||
	fail "quota: $(cat "$T/quota.err")"
grep -q "ok 8192 pages" "$T/quota.out" || fail "quota: $(cat "$T/quota.out")"
grep -q "refused pages (quota of this client reached)" "$T/quota.err" ||
	fail "quota: no warning: $(cat "$T/quota.err")"
kill "$QPID"; wait "$QPID" 2>/dev/null; QPID=
ok "quota reached while evicting ($(grep refused "$T/quota.err" | head -n 1))"

# --- the preload library without rsa-app frees its pages at exit
mkfifo "$T/hold.in"
LD_PRELOAD=$PRELOAD SDRSA_SERVER=$ADDR SDRSA_NAME=noapp-$$ SDRSA_LOCAL=4194304 \
	"$WORK" hold 8192 <"$T/hold.in" >"$T/hold.out" 2>"$T/hold.err" &
HPID=$!
exec 9>"$T/hold.in"
i=0
while ! grep -q filled "$T/hold.out" 2>/dev/null; do
	i=$((i + 1)); [ $i -gt 200 ] && fail "hold did not start: $(cat "$T/hold.err")"
	sleep 0.05
done
held=$("$NSPAGES" "$ADDR" "noapp-$$") || fail "t_nspages"
[ "$held" -gt 4096 ] || fail "no pages on the server while running: $held"
echo go >&9
exec 9>&-
wait "$HPID" || fail "hold: $(cat "$T/hold.err")"
HPID=
left=$("$NSPAGES" "$ADDR" "noapp-$$") || fail "t_nspages"
[ "$left" -eq 0 ] || fail "$left pages left on the server after exit without rsa-app"
ok "preload without rsa-app: $held pages on the server while running, 0 after exit"

# --- the engine's own thread dies: the program is stopped, never continues
SDRSA_TEST_FAULT=exit@300 "$APP" run --server "$ADDR" --local 4M -- "$WORK" once 8192 \
	>/dev/null 2>"$T/hx.err"; rc=$?
[ $rc -eq 135 ] || fail "handler exit: exit $rc, want 135: $(cat "$T/hx.err")"
grep -q "paging engine's thread stopped unexpectedly" "$T/hx.err" || fail "handler exit: $(cat "$T/hx.err")"
SDRSA_TEST_FAULT=crash@300 "$APP" run --server "$ADDR" --local 4M -- "$WORK" once 8192 \
	>/dev/null 2>"$T/hc.err"; rc=$?
[ $rc -eq 139 ] || fail "handler crash: exit $rc, want 139: $(cat "$T/hc.err")"
ok "engine thread dies (exit: SIGBUS and a message; crash: the process dies)"

# --- a page held as resident vanishes from the mapping: stop, never zeros
SDRSA_TEST_FAULT=lose@300 "$APP" run --server "$ADDR" --local 4M -- "$WORK" once 8192 \
	>/dev/null 2>"$T/hl.err"; rc=$?
[ $rc -eq 135 ] || fail "lost page: exit $rc, want 135: $(cat "$T/hl.err")"
grep -q "held as resident, is missing from the mapping" "$T/hl.err" ||
	fail "lost page: $(cat "$T/hl.err")"
ok "a resident page missing from the mapping stops the program (SIGBUS and a message)"

# --- a page fails its checksum: fetched again; always: stop, never bad data
SDRSA_TEST_FAULT=badsum@100 "$APP" run --server "$ADDR" --local 4M --stats-json "$T/bs.json" -- \
	"$WORK" once 8192 >"$T/bs.out" 2>"$T/bs.err" || fail "checksum retry: $(cat "$T/bs.err")"
grep -q '"retries":[1-9]' "$T/bs.json" || fail "checksum retry not counted: $(cat "$T/bs.json")"
SDRSA_TEST_FAULT=badsum-always@100 "$APP" run --server "$ADDR" --local 4M -- "$WORK" once 8192 \
	>/dev/null 2>"$T/bs2.err"; rc=$?
[ $rc -eq 135 ] || fail "checksum always bad: exit $rc, want 135: $(cat "$T/bs2.err")"
grep -q "^sdrsa: cannot fetch page .*Bad message" "$T/bs2.err" || fail "checksum: $(cat "$T/bs2.err")"
ok "checksum failure: refetched once; failing every time stops the program"

# --- the server stalls (SIGSTOP): bounded retry, then SIGBUS and a message
"$APP" run --server "$ADDR" --local 4M --retry 1s --timeout 500ms -- "$WORK" loop 8192 \
	>"$T/stall.out" 2>"$T/stall.err" &
APID=$!
i=0
while ! grep -q filled "$T/stall.out" 2>/dev/null; do
	i=$((i + 1)); [ $i -gt 200 ] && fail "stall: did not start"
	sleep 0.05
done
sleep 0.3
kill -STOP "$SPID"
t0=$(date +%s)
wait "$APID"; rc=$?
t1=$(date +%s)
kill -CONT "$SPID"
[ $rc -eq 135 ] || fail "server stalled: exit $rc, want 135 (SIGBUS): $(cat "$T/stall.err")"
grep -q "^sdrsa: cannot" "$T/stall.err" || fail "server stalled: no message: $(cat "$T/stall.err")"
[ $((t1 - t0)) -le 8 ] || fail "server stalled: stopped only after $((t1 - t0)) s"
ok "server stalls mid-run: stopped after $((t1 - t0)) s ($(grep '^sdrsa' "$T/stall.err" | head -n 1))"

# --- the server dies mid-run: SIGBUS and a clear message, within the bound
"$APP" run --server "$ADDR" --local 4M --retry 1s -- "$WORK" loop 8192 >"$T/dies.out" 2>"$T/dies.err" &
APID=$!
i=0
while ! grep -q filled "$T/dies.out" 2>/dev/null; do
	i=$((i + 1)); [ $i -gt 200 ] && fail "dies: did not start"
	sleep 0.05
done
sleep 0.3
kill -9 "$SPID"; wait "$SPID" 2>/dev/null; SPID=
wait "$APID"; rc=$?
[ $rc -eq 135 ] || fail "server died: exit $rc, want 135 (SIGBUS): $(cat "$T/dies.err")"
grep -q "^sdrsa: cannot" "$T/dies.err" || fail "server died: no message: $(cat "$T/dies.err")"
ok "server dies mid-run ($(grep '^sdrsa' "$T/dies.err" | head -n 1))"
exit 0
