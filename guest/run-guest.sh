#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
#
# guest/run-guest.sh: boot the sdrsa guest (guest/build.sh) under QEMU TCG with
# its RAM in a shared file, the serial console on stdio. This is the one place
# that spells the QEMU command line; tests/vm/vm_harness.c runs this script
# with --exec, and so will the agent's tests (with --prefix or --ram-file none).
#
# usage: guest/run-guest.sh [options] [-- EXTRA-QEMU-ARGS...]
#   --run CMD          run CMD in the guest after the module is loaded
#   --after MODE       poweroff (default with --run), hold, or shell (default without)
#   --mem SIZE         guest RAM, default 256M; keep it below 3.5G so that a guest
#                      physical address is the same offset in the RAM file
#   --ram-file PATH    the RAM file (default /dev/shm/sdrsa-guest-PID); "none" gives
#                      QEMU ordinary anonymous RAM (an agent that adds its own
#                      memory-backend-file wants that)
#   --keep-ram         leave the RAM file behind at exit
#   --timeout SEC      stop QEMU after SEC seconds (default: no limit)
#   --append ARGS      more kernel command line
#   --qmp PATH         a QMP socket at PATH (server, no wait)
#   --prefix WORDS     words to put before qemu-system-x86_64 (a wrapper such as
#                      "rsa-app vm NAME --"); split on spaces
#   --dir DIR          the guest build (default $SDRSA_GUEST_DIR or <repo>/build/guest)
#   --print            print the command line and exit
#   --exec             exec the command: no timeout, no clean-up of the RAM file
#                      (the caller does both)
# Ctrl-A x quits QEMU by hand (-nographic puts the monitor on Ctrl-A c).
# Exit status: QEMU's (124 on --timeout), 2 on bad options, 1 when the guest
# is not built.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
dir=${SDRSA_GUEST_DIR:-$here/../build/guest}
run=
after=
mem=256M
ram=/dev/shm/sdrsa-guest-$$
keep=0
timeout=0
append=
qmp=
prefix=
mode="run"

usage() { sed -n '9,29p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; }
die() { echo "run-guest.sh: $1" >&2; exit "${2:-1}"; }

while [ $# -gt 0 ]; do
	case "$1" in
	--run) run=$2; shift 2 ;;
	--after) after=$2; shift 2 ;;
	--mem) mem=$2; shift 2 ;;
	--ram-file) ram=$2; shift 2 ;;
	--keep-ram) keep=1; shift ;;
	--timeout) timeout=$2; shift 2 ;;
	--append) append=$2; shift 2 ;;
	--qmp) qmp=$2; shift 2 ;;
	--prefix) prefix=$2; shift 2 ;;
	--dir) dir=$2; shift 2 ;;
	--print) mode="print"; shift ;;
	--exec) mode="exec"; shift ;;
	--) shift; break ;;
	-h|--help) usage; exit 0 ;;
	*) usage >&2; die "unknown option '$1'" 2 ;;
	esac
done
case "$after" in ''|poweroff|hold|shell) ;; *) die "--after must be poweroff, hold or shell" 2 ;; esac
[[ "$mem" =~ ^[0-9]+[MG]$ ]] || die "--mem takes a size like 256M or 1G" 2
[[ "$timeout" =~ ^[0-9]+$ ]] || die "--timeout takes whole seconds" 2

[ -r "$dir/guest.env" ] || die "no guest in $dir: run guest/build.sh first"
# shellcheck source=/dev/null
. "$dir/guest.env"
[ -r "$KERNEL" ] && [ -r "$INITRD" ] || die "$dir/guest.env names missing files: rerun guest/build.sh"

# The kernel command line. quiet keeps the console to the SDRSA-GUEST lines and
# errors; panic=-1 with -no-reboot makes a guest panic end QEMU at once.
cmdline="console=ttyS0 quiet panic=-1"
if [ -n "$run" ]; then
	if [[ "$run" =~ ^[A-Za-z0-9\ _./:=,+%@-]*$ ]]; then
		cmdline+=" sdrsa.run=\"$run\""
	else
		cmdline+=" sdrsa.run64=$(printf '%s' "$run" | base64 -w 0)"
	fi
fi
[ -n "$after" ] && cmdline+=" sdrsa.after=$after"
[ -n "$append" ] && cmdline+=" $append"

machine=pc,accel=tcg
memargs=()
if [ "$ram" != none ]; then
	machine+=,memory-backend=ram0
	memargs=(-object "memory-backend-file,id=ram0,size=$mem,mem-path=$ram,share=on")
fi
# shellcheck disable=SC2206 # --prefix is split on spaces on purpose
cmd=(${prefix} qemu-system-x86_64 -machine "$machine" -smp 1 -m "$mem"
	"${memargs[@]}" -nographic -no-reboot -nic none
	-kernel "$KERNEL" -initrd "$INITRD" -append "$cmdline")
[ -n "$qmp" ] && cmd+=(-qmp "unix:$qmp,server=on,wait=off")
cmd+=("$@")

case "$mode" in
print)
	printf '%q ' "${cmd[@]}"
	echo
	exit 0
	;;
exec)
	exec "${cmd[@]}"
	;;
esac

# shellcheck disable=SC2317 # called by the EXIT trap
cleanup() {
	[ -n "${qpid:-}" ] && kill "$qpid" 2>/dev/null && wait "$qpid" 2>/dev/null
	[ "$keep" = 1 ] || [ "$ram" = none ] || rm -f "$ram"
}
trap cleanup EXIT
trap 'exit 130' INT TERM HUP
if [ "$timeout" -gt 0 ]; then
	timeout --foreground -k 5 "$timeout" "${cmd[@]}" <&0 &
else
	"${cmd[@]}" <&0 &
fi
qpid=$!
rc=0
wait "$qpid" || rc=$?
qpid=
[ "$rc" = 124 ] && echo "run-guest.sh: QEMU stopped after the ${timeout}s timeout" >&2
exit "$rc"
