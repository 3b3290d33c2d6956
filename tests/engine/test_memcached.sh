#!/bin/sh
# SPDX-License-Identifier: MIT
# The memcached backend against real memcached daemons started here (three,
# on 127.0.0.1, free ports): the integrity torture over the fleet (and no
# item of ours left afterwards), programs under `rsa-app run --backend
# memcached` with their data checked by content (sort, a C workload, fork),
# the pages spread over every server, --stats-json showing pages in and out,
# bad options, an unreachable server, and the failures: a memcached too
# small (it evicts: the program stops loudly, never reads wrong data), a
# memcached that refuses items (-M: pages kept local, nothing lost), a
# memcached killed or stalled mid-run (stopped loudly, naming the server).
# Usage: test_memcached.sh RSA_APP TEST_TORTURE T_WORKLOAD PRELOAD TEST_STORE_MEMCACHED.
# Exit 0 pass, 1 fail, 77 skip (no memcached outside CI; in CI a failure).
set -u
APP=$1
TORTURE=$2
WORK=$3
PRELOAD=$4
STORETEST=$5
T=$(mktemp -d)
PIDS=
cleanup() {
	for p in $PIDS; do kill -CONT "$p" 2>/dev/null; kill "$p" 2>/dev/null; done
	wait 2>/dev/null
	rm -rf "$T"
}
trap cleanup EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }
ok() { echo "ok $*" >&2; }

if ! command -v memcached >/dev/null 2>&1; then
	[ "${CI:-}" = true ] && fail "memcached is not installed (scripts/deps.sh installs it)"
	echo "skip: memcached is not installed"; exit 77
fi
[ -r /proc/sys/vm/unprivileged_userfaultfd ] || { echo "skip: no userfaultfd"; exit 77; }

# memcached STAT value of one server: mc_stat PORT NAME
mc_stat() {
	python3 - "$1" "$2" <<'PY'
import socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=3)
s.sendall(b"stats\r\n")
buf = b""
while not buf.endswith(b"END\r\n"):
    d = s.recv(65536)
    if not d:
        break
    buf += d
for line in buf.decode().splitlines():
    p = line.split()
    if len(p) == 3 and p[1] == sys.argv[2]:
        print(p[2])
PY
}

# Start a memcached on a free port with extra options; sets MPID and MPORT.
start_mc() {
	tries=0
	while :; do
		tries=$((tries + 1)); [ $tries -gt 20 ] && fail "memcached did not start: $(cat "$T/mc.err")"
		MPORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
		# memcached refuses to run as root without -u
		if [ "$(id -u)" -eq 0 ]; then
			memcached -l 127.0.0.1 -p "$MPORT" -U 0 -t 1 -u root "$@" 2>"$T/mc.err" &
		else
			memcached -l 127.0.0.1 -p "$MPORT" -U 0 -t 1 "$@" 2>"$T/mc.err" &
		fi
		MPID=$!
		i=0
		while [ $i -lt 40 ] && kill -0 "$MPID" 2>/dev/null; do
			mc_stat "$MPORT" pid >/dev/null 2>&1 && { PIDS="$PIDS $MPID"; return 0; }
			i=$((i + 1)); sleep 0.05
		done
		kill "$MPID" 2>/dev/null; wait "$MPID" 2>/dev/null
	done
}

start_mc -m 256; P1=$MPORT
start_mc -m 256; P2=$MPORT; M2PID=$MPID
start_mc -m 256; P3=$MPORT
FLEET=127.0.0.1:$P1,127.0.0.1:$P2,127.0.0.1:$P3
SRV="--server 127.0.0.1:$P1 --server 127.0.0.1:$P2 --server 127.0.0.1:$P3"
items() { echo $(($(mc_stat "$P1" curr_items) + $(mc_stat "$P2" curr_items) + $(mc_stat "$P3" curr_items))); }

# --- the store alone: misses, damaged items, freeing evicted keys, fork
"$STORETEST" "$FLEET" 2>"$T/store.err" || fail "store: $(cat "$T/store.err")"
ok "store ($(cat "$T/store.err"))"

# --- the integrity torture over the fleet; nothing of ours left afterwards
"$TORTURE" --store memcached "$FLEET" --prefetch on 2>"$T/tort.err" ||
	fail "torture on memcached: $(cat "$T/tort.err")"
for p in $P1 $P2 $P3; do
	[ "$(mc_stat "$p" total_items)" -gt 0 ] || fail "torture: memcached :$p got no item"
done
[ "$(items)" -eq 0 ] || fail "torture: $(items) items left on the fleet after the engine was freed"
ok "torture on 3 memcached ($(cat "$T/tort.err"))"
if [ "${SDRSA_TEST_SANITIZED:-0}" = 1 ]; then
	echo "sanitizer build: the rsa-app cases are left out (the preload cannot go into" \
		"uninstrumented programs)"
	exit 0
fi

# --- bad options: one line, exit 2
"$APP" run --backend redis --server "127.0.0.1:$P1" --local 16M -- true 2>"$T/err"; rc=$?
[ $rc -eq 2 ] && grep -q "use sdrsa or memcached" "$T/err" || fail "--backend redis: $rc $(cat "$T/err")"
"$APP" run --backend memcached --server "127.0.0.1:$P1" --server "127.0.0.1:$P2" --replicas 2 \
	--local 16M -- true 2>"$T/err"; rc=$?
[ $rc -eq 2 ] && grep -q "are for memory servers" "$T/err" ||
	fail "--replicas with memcached: $rc $(cat "$T/err")"
"$APP" run --server 127.0.0.1:99999 --backend memcached --local 16M -- true 2>"$T/err"; rc=$?
[ $rc -eq 2 ] && grep -q "a memcached is HOST:PORT" "$T/err" || fail "bad port: $rc $(cat "$T/err")"
"$APP" run --server "127.0.0.1:$P1" --backend memcached --name "a b" --local 16M -- true \
	2>"$T/err"; rc=$?
[ $rc -eq 2 ] && grep -q "no spaces" "$T/err" || fail "--name with a space: $rc $(cat "$T/err")"
echo "x" >"$T/keys"
"$APP" run --backend memcached --server "127.0.0.1:$P1" --key-file "$T/keys" --local 16M -- true \
	2>"$T/err"; rc=$?
[ $rc -eq 2 ] && [ "$(wc -l <"$T/err")" -eq 1 ] || fail "--key-file with memcached: $rc $(cat "$T/err")"
ok "bad options"

# --- an unreachable server of the fleet: one line, the program never runs
"$APP" run --backend memcached --server "127.0.0.1:$P1" --server 127.0.0.1:1 --local 16M -- \
	sh -c "touch $T/ran" 2>"$T/err"; rc=$?
[ $rc -eq 1 ] || fail "unreachable: exit $rc"
[ ! -e "$T/ran" ] || fail "unreachable: the program ran"
grep -q "cannot reach memcached: memcached 127.0.0.1:1" "$T/err" || fail "unreachable: $(cat "$T/err")"
ok "unreachable server ($(cat "$T/err"))"

# --- a known workload: pages by content, stats, spread, freed at exit
before1=$(mc_stat "$P1" total_items); before2=$(mc_stat "$P2" total_items)
before3=$(mc_stat "$P3" total_items)
# shellcheck disable=SC2086
"$APP" run --backend memcached $SRV --local 4M --prefetch off --stats --stats-json "$T/w.json" -- \
	"$WORK" once 8192 >"$T/w.out" 2>"$T/w.err" || fail "workload: $(cat "$T/w.err")"
grep -q "ok 8192 pages" "$T/w.out" || fail "workload: $(cat "$T/w.out")"
grep -q "^sdrsa: faults" "$T/w.err" || fail "workload: no --stats line: $(cat "$T/w.err")"
python3 - "$T/w.json" <<'PY' || fail "workload stats json: $(cat "$T/w.json")"
import json, sys
s = json.load(open(sys.argv[1]))
n, b = 8192, 1024
f = s["faults"]
assert s["budget_pages"] == b and f["zero"] == n, s
assert n - b <= f["remote"] <= n and s["pages_in"] == f["remote"], s
assert s["bytes_recv"] == 4096 * s["pages_in"], s
assert s["pages_out"] >= n - b and s["bytes_sent"] == 4096 * s["pages_out"], s
assert s["resident"] + s["staged"] <= b, s
assert s["store_refusals"] == 0, s
PY
for p in "$P1:$before1" "$P2:$before2" "$P3:$before3"; do
	[ "$(mc_stat "${p%%:*}" total_items)" -gt $((${p#*:} + 500)) ] ||
		fail "workload: memcached :${p%%:*} got few items (no spreading)"
done
[ "$(items)" -eq 0 ] || fail "workload: $(items) items left after the program exited"
ok "workload on the fleet ($(sed -n 's/^sdrsa: //p' "$T/w.err" | cut -c1-100)...), spread, freed at exit"

# --- the program crashes (SIGKILL): rsa-app still frees its pages, through
# the key ranges its engine recorded on the fleet
# shellcheck disable=SC2086
"$APP" run --backend memcached $SRV --local 4M -- "$WORK" loop 8192 >"$T/crash.out" 2>"$T/crash.err" &
APID=$!
i=0
while ! grep -q filled "$T/crash.out" 2>/dev/null; do
	i=$((i + 1)); [ $i -gt 200 ] && fail "crash: did not start: $(cat "$T/crash.err")"
	sleep 0.05
done
held=$(items)
[ "$held" -gt 4096 ] || fail "crash: only $held items on the fleet while running"
WPID=$(pgrep -P "$APID")
[ -n "$WPID" ] || fail "crash: no program under rsa-app"
kill -9 "$WPID"
wait "$APID"; rc=$?
[ $rc -eq 137 ] || fail "crash: rsa-app exit $rc, want 137"
[ "$(items)" -eq 0 ] || fail "crash: $(items) items left after rsa-app freed the namespace"
ok "program killed: rsa-app freed its $held items"

# --- the preload without rsa-app frees its own pages at exit, leaves no record
LD_PRELOAD=$PRELOAD SDRSA_BACKEND=memcached SDRSA_SERVER=$FLEET SDRSA_NAME=noapp-$$ \
	SDRSA_LOCAL=4194304 "$WORK" once 8192 >"$T/noapp.out" 2>"$T/noapp.err" ||
	fail "preload without rsa-app: $(cat "$T/noapp.err")"
grep -q "ok 8192 pages" "$T/noapp.out" || fail "preload without rsa-app: $(cat "$T/noapp.out")"
[ "$(items)" -eq 0 ] || fail "preload without rsa-app: $(items) items left after exit"
ok "preload without rsa-app: no item left after exit"

# --- a real program: sort, output compared with a run without the engine
python3 -c "
import random
r = random.Random(7)
with open('$T/in.txt', 'w') as f:
    for i in range(100000):
        f.write('%016x %d\n' % (r.getrandbits(64), i))
"
sort -S 16M "$T/in.txt" >"$T/sort.ref"
# shellcheck disable=SC2086
"$APP" run --backend memcached $SRV --local 1M --stats -- sort -S 16M "$T/in.txt" \
	>"$T/sort.out" 2>"$T/sort.err" || fail "sort: $(cat "$T/sort.err")"
cmp -s "$T/sort.ref" "$T/sort.out" || fail "sort output differs"
ok "sort ($(sed -n 's/^sdrsa: //p' "$T/sort.err" | cut -c1-100)...)"

# --- fork: the child reads its parent's pages from memcached on its own
# connection, both check every page
# shellcheck disable=SC2086
"$APP" run --backend memcached $SRV --local 4M -- "$WORK" fork 8192 >"$T/fork.out" 2>"$T/fork.err" ||
	fail "fork: $(cat "$T/fork.out" "$T/fork.err")"
ok "fork (the child read every remote page right)"

# --- memcached refuses items (-M: no eviction, out of memory): the pages
# stay local over the budget with a warning, nothing is lost
start_mc -m 8 -M; MP=$MPORT
"$APP" run --backend memcached --server "127.0.0.1:$MP" --local 4M --stats-json "$T/full.json" -- \
	"$WORK" once 8192 >"$T/full.out" 2>"$T/full.err" || fail "-M: $(cat "$T/full.err")"
grep -q "ok 8192 pages" "$T/full.out" || fail "-M: $(cat "$T/full.out")"
grep -q "refused pages (pool full)" "$T/full.err" || fail "-M: no warning: $(cat "$T/full.err")"
grep -q '"store_refusals":[1-9]' "$T/full.json" || fail "-M: no refusals counted: $(cat "$T/full.json")"
ok "memcached out of memory: pages kept local ($(grep refused "$T/full.err" | head -n 1))"

# --- a memcached whose item size limit is below a page (-I 2k): one line
# before the program runs, from rsa-app and from the engine itself
start_mc -m 64 -I 2k -o slab_chunk_max=1024; IP=$MPORT
"$APP" run --backend memcached --server "127.0.0.1:$P1" --server "127.0.0.1:$IP" --local 4M -- \
	sh -c "touch $T/ran" 2>"$T/big.err"; rc=$?
[ $rc -eq 1 ] || fail "-I 2k: exit $rc: $(cat "$T/big.err")"
[ ! -e "$T/ran" ] || fail "-I 2k: the program ran"
grep -q "cannot use memcached: memcached 127.0.0.1:$IP refuses items of 4120 bytes" "$T/big.err" ||
	fail "-I 2k: $(cat "$T/big.err")"
LD_PRELOAD=$PRELOAD SDRSA_BACKEND=memcached SDRSA_SERVER=127.0.0.1:$IP SDRSA_LOCAL=4194304 \
	"$WORK" once 16 >"$T/big2.out" 2>"$T/big2.err"; rc=$?
[ $rc -eq 1 ] && [ ! -s "$T/big2.out" ] || fail "-I 2k, engine start: exit $rc: $(cat "$T/big2.err")"
ok "item size limit below a page: refused at start ($(cat "$T/big.err"))"

# --- the preload without rsa-app, memcached not there: the engine refuses
# to start, one line, before the program runs
LD_PRELOAD=$PRELOAD SDRSA_BACKEND=memcached SDRSA_SERVER=127.0.0.1:1 SDRSA_LOCAL=4194304 \
	"$WORK" once 16 >"$T/nostart.out" 2>"$T/nostart.err"; rc=$?
[ $rc -eq 1 ] || fail "engine start without memcached: exit $rc: $(cat "$T/nostart.err")"
grep -q "cannot start the paging engine (server 127.0.0.1:1): Connection refused" "$T/nostart.err" ||
	fail "engine start without memcached: $(cat "$T/nostart.err")"
[ ! -s "$T/nostart.out" ] || fail "engine start without memcached: the program ran"
ok "engine start without memcached: refused"

# --- memcached too small: it evicts our pages; the program stops loudly at
# the first missing one (exit 135, SIGBUS), never reads wrong data (3)
start_mc -m 8; SP=$MPORT
"$APP" run --backend memcached --server "127.0.0.1:$SP" --local 4M -- "$WORK" once 8192 \
	>"$T/small.out" 2>"$T/small.err"; rc=$?
[ $rc -eq 135 ] || fail "evicting memcached: exit $rc, want 135: $(cat "$T/small.out" "$T/small.err")"
grep -q "^sdrsa: cannot fetch page .* is missing on memcached 127.0.0.1:$SP: evicted" "$T/small.err" ||
	fail "evicting memcached: $(cat "$T/small.err")"
[ "$(mc_stat "$SP" evictions)" -gt 0 ] || fail "evicting memcached: no eviction happened"
ok "memcached evicts: stopped loudly ($(grep '^sdrsa' "$T/small.err" | head -n 1 | cut -c1-150)...)"

# --- a memcached of the fleet stalls (SIGSTOP) mid-run: bounded, then loud
# shellcheck disable=SC2086
"$APP" run --backend memcached $SRV --local 4M --retry 1s --timeout 500ms -- "$WORK" loop 8192 \
	>"$T/stall.out" 2>"$T/stall.err" &
APID=$!
i=0
while ! grep -q filled "$T/stall.out" 2>/dev/null; do
	i=$((i + 1)); [ $i -gt 200 ] && fail "stall: did not start: $(cat "$T/stall.err")"
	sleep 0.05
done
sleep 0.3
kill -STOP "$M2PID"
t0=$(date +%s)
wait "$APID"; rc=$?
t1=$(date +%s)
kill -CONT "$M2PID"
[ $rc -eq 135 ] || fail "memcached stalled: exit $rc, want 135: $(cat "$T/stall.err")"
grep -q "^sdrsa: cannot .*127.0.0.1:$P2.* does not answer" "$T/stall.err" ||
	fail "memcached stalled: $(cat "$T/stall.err")"
# the bound: --timeout and --retry in the engine, then rsa-app's 1 s check
# before it frees the namespace; slack for a loaded machine
[ $((t1 - t0)) -le 10 ] || fail "memcached stalled: stopped only after $((t1 - t0)) s"
ok "memcached stalls mid-run: stopped after $((t1 - t0)) s"

# --- a memcached of the fleet is killed mid-run: loud, naming it
# shellcheck disable=SC2086
"$APP" run --backend memcached $SRV --local 4M --retry 1s --timeout 500ms -- "$WORK" loop 8192 \
	>"$T/dies.out" 2>"$T/dies.err" &
APID=$!
i=0
while ! grep -q filled "$T/dies.out" 2>/dev/null; do
	i=$((i + 1)); [ $i -gt 200 ] && fail "dies: did not start: $(cat "$T/dies.err")"
	sleep 0.05
done
sleep 0.3
kill -9 "$M2PID"; wait "$M2PID" 2>/dev/null
wait "$APID"; rc=$?
[ $rc -eq 135 ] || fail "memcached killed: exit $rc, want 135: $(cat "$T/dies.err")"
grep -q "^sdrsa: cannot .*127.0.0.1:$P2.* does not answer" "$T/dies.err" ||
	fail "memcached killed: $(cat "$T/dies.err")"
ok "memcached killed mid-run ($(grep '^sdrsa' "$T/dies.err" | head -n 1 | cut -c1-150)...)"
exit 0
