#!/bin/sh
# SPDX-License-Identifier: MIT
# redis-server under rsa-app with a local budget well below its working set:
# known values written through a pipeline, redis-benchmark on top (SET and
# GET of 4 KiB values over its own keyspace), then every known value read
# back and compared. Skips (77) when redis-server or redis-benchmark is not
# installed.
# Usage: test_redis.sh RSA_APP MEMORY_SERVER. Exit 0 pass, 1 fail, 77 skip.
set -u
APP=$1
SRV=$2
command -v redis-server >/dev/null && command -v redis-benchmark >/dev/null ||
	{ echo "skip: redis-server or redis-benchmark not installed"; exit 77; }
[ -r /proc/sys/vm/unprivileged_userfaultfd ] || { echo "skip: no userfaultfd"; exit 77; }
[ "${SDRSA_TEST_SANITIZED:-0}" = 1 ] &&
	{ echo "skip: sanitizer build (the preload cannot go into uninstrumented programs)"; exit 77; }
T=$(mktemp -d)
SPID=
RPID=
cleanup() {
	[ -n "$RPID" ] && kill "$RPID" 2>/dev/null
	[ -n "$SPID" ] && kill "$SPID" 2>/dev/null
	wait 2>/dev/null
	rm -rf "$T"
}
trap cleanup EXIT
fail() { echo "FAIL: $*" >&2; [ -f "$T/redis.err" ] && tail -n 5 "$T/redis.err" >&2; exit 1; }
ok() { echo "ok $*" >&2; }

NKEYS=${REDIS_TEST_KEYS:-12000}  # 12000 x 4 KiB = 47 MiB of values
LOCAL=${REDIS_TEST_LOCAL:-12M}

"$SRV" 512M --listen 127.0.0.1:0 --quiet >"$T/srv.out" 2>"$T/srv.err" &
SPID=$!
i=0
while ! grep -q '^ready' "$T/srv.out" 2>/dev/null; do
	i=$((i + 1)); [ $i -gt 100 ] && fail "memory server did not start"
	sleep 0.05
done
ADDR=$(sed -n 's/^listening on //p' "$T/srv.out" | head -n 1)
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')

# jemalloc maps its extents in pieces smaller than the default threshold.
"$APP" run --server "$ADDR" --local "$LOCAL" --threshold 64K --stats --stats-json "$T/redis.json" -- \
	redis-server --port "$PORT" --bind 127.0.0.1 --save '' --appendonly no \
	--protected-mode no --daemonize no --dir "$T" >"$T/redis.out" 2>"$T/redis.err" &
RPID=$!
i=0
while ! redis-cli -p "$PORT" ping >/dev/null 2>&1; do
	i=$((i + 1)); [ $i -gt 200 ] && fail "redis-server did not start"
	kill -0 "$RPID" 2>/dev/null || fail "redis-server exited"
	sleep 0.05
done

cat >"$T/kv.py" <<'PY'
# Write or check NKEYS known values (4 KiB each, from sha256 of the key)
# over one pipelined connection speaking RESP.
import hashlib, socket, sys
port, n, mode = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
def value(i):
    seed = hashlib.sha256(b"k%d" % i).digest()
    return (seed * 128)[:4096]
s = socket.create_connection(("127.0.0.1", port))
f = s.makefile("rb")
def cmd(*a):
    out = b"*%d\r\n" % len(a)
    for x in a:
        out += b"$%d\r\n%s\r\n" % (len(x), x)
    return out
def reply():
    line = f.readline()
    if line[:1] == b"$":
        ln = int(line[1:])
        if ln < 0:
            return None
        data = f.read(ln + 2)[:-2]
        return data
    return line.strip()
bad = 0
B = 200
for base in range(0, n, B):
    idx = range(base, min(n, base + B))
    if mode == "write":
        s.sendall(b"".join(cmd(b"SET", b"known:%d" % i, value(i)) for i in idx))
        for i in idx:
            if reply() != b"+OK":
                bad += 1
    else:
        s.sendall(b"".join(cmd(b"GET", b"known:%d" % i) for i in idx))
        for i in idx:
            if reply() != value(i):
                bad += 1
print("%s %d keys, %d bad" % (mode, n, bad))
sys.exit(1 if bad else 0)
PY
python3 "$T/kv.py" "$PORT" "$NKEYS" write >"$T/w.out" || fail "writing known values: $(cat "$T/w.out")"
redis-benchmark -p "$PORT" -n 20000 -d 4096 -r 20000 -t set,get -q >"$T/bench.out" 2>&1 ||
	fail "redis-benchmark: $(cat "$T/bench.out")"
python3 "$T/kv.py" "$PORT" "$NKEYS" check >"$T/c.out" || fail "known values: $(cat "$T/c.out")"
redis-cli -p "$PORT" shutdown nosave >/dev/null 2>&1
wait "$RPID"; rc=$?
RPID=
[ $rc -eq 0 ] || fail "redis-server under rsa-app exited with $rc"
python3 - "$T/redis.json" <<'PY' || fail "stats: $(cat "$T/redis.json")"
import json, sys
s = json.load(open(sys.argv[1]))
# The values went through the server: much more than the budget was sent.
assert s["pages_out"] > 2 * s["budget_pages"], s
assert s["faults"]["remote"] > 0, s
PY
ok "redis ($(tr '\r' '\n' <"$T/bench.out" | grep 'requests per second' | tr '\n' ' ')$(cat "$T/c.out"); $(sed -n 's/^sdrsa: //p' "$T/redis.err" | tail -n 1 | cut -c1-150))"
exit 0
