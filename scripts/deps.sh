#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
#
# Install every Debian package the project needs to build, test and benchmark.
# Idempotent: packages already present are not touched, so a warm machine pays
# nothing. Why each package is here:
#   meson, ninja-build, pkg-config   build system
#   gcc, clang, libclang-rt-14-dev    compilers; clang brings libFuzzer and sanitizers
#   libsodium-dev    challenge-response auth (HMAC-SHA256, constant-time compare, CSPRNG)
#   libxxhash-dev    end-to-end page checksum (XXH3-64: ~30 GB/s, far below wire cost)
#   libcmocka-dev    unit tests
#   memcached, redis-server, libmemcached-dev, libhiredis-dev   peers compared in bench/;
#                    libmemcached-dev also builds the engine's memcached backend, and the
#                    memcached daemon is what tests/engine/test_memcached.sh runs it on
#   iproute2, procps                  tests make network namespaces, inspect processes
#   qemu-system-x86, busybox-static, cpio   the guest of tests/vm (guest/build.sh)
#   libxen-dev       the Xen backend of the VM agent, compiled (not run: no Xen here)
#   gnuplot-nox      draws bench/curve.gp's picture of curvebench's CSV (docs/curve.png)
set -eu

pkgs=(meson ninja-build pkg-config gcc clang libclang-rt-14-dev
      libsodium-dev libxxhash-dev libcmocka-dev
      memcached redis-server libmemcached-dev libhiredis-dev
      iproute2 procps
      qemu-system-x86 busybox-static cpio libxen-dev
      gnuplot-nox)

missing=()
for p in "${pkgs[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' ||
		missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

if [ "$(id -u)" -ne 0 ]; then
	echo "sdrsa: missing packages: ${missing[*]}; run as root or install them" >&2
	exit 1
fi
echo "sdrsa: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
# Debian starts these services on install; the bench starts its own instances.
for svc in memcached redis-server; do
	systemctl stop "$svc" 2>/dev/null || service "$svc" stop 2>/dev/null || true
done
