#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
#
# guest/build.sh: build everything the QEMU guest needs, from Debian packages:
#
#   OUT/vmlinuz                the Debian 12 kernel (linux-image-<abi>-amd64,
#                              the one linux-image-amd64 depends on)
#   OUT/initramfs.cpio.gz      busybox-static, /init, chr_dev_udev.ko,
#                              test_chrdev, sdrsa-fill, sdrsa-memloop
#   OUT/guest.env              KERNEL=, INITRD=, KABI=, KVER= for run-guest.sh
#   OUT/bin/                   the static guest programs (they also run on the host)
#   OUT/module/chr_dev_udev.ko the module, built against the unpacked headers
#
# The kernel and its headers are fetched with `apt-get download` and unpacked
# with dpkg-deb into OUT/kernel/<abi>/; nothing is installed into the host's
# kernel or boot configuration. Host packages it needs (see PACKAGES) are
# installed with apt-get when missing and we are root.
#
# Idempotent and cached: debs are kept in OUT/debs, the unpacked kernel in
# OUT/kernel/<abi>, and every later step reruns only when its inputs are newer
# than its output, so a warm run takes well under a second. Concurrent runs
# serialise on OUT/.lock.
#
# usage: guest/build.sh [--out DIR] [--kabi 6.1.0-NN] [--clean] [--quiet]
#   OUT defaults to $SDRSA_GUEST_DIR, else <repo>/build/guest.
# Exit status: 0 built, 1 a step failed (the message says which and why).
set -euo pipefail

# Host packages: qemu-system-x86 runs the guest; busybox-static is the guest's
# userland; cpio and gzip pack the initramfs; gcc (gcc-12, the compiler the
# Debian 6.1 kernel was built with), make and libc6-dev build the module and
# the static programs; apt (apt-get download) and dpkg (dpkg-deb) fetch and
# unpack the kernel; util-linux gives flock; coreutils gives md5sum.
PACKAGES=(qemu-system-x86 busybox-static cpio gzip gcc make libc6-dev apt dpkg util-linux
	coreutils)

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/.." && pwd)
out=${SDRSA_GUEST_DIR:-$repo/build/guest}
kabi=${SDRSA_GUEST_KABI:-}
clean=0
quiet=0

die() { echo "guest/build.sh: $*" >&2; exit 1; }
log() { [ "$quiet" = 1 ] || echo "guest/build.sh: $*" >&2; }

while [ $# -gt 0 ]; do
	case "$1" in
	--out) out=$2; shift 2 ;;
	--kabi) kabi=$2; shift 2 ;;
	--clean) clean=1; shift ;;
	--quiet|-q) quiet=1; shift ;;
	-h|--help) sed -n '3,26p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
	*) die "unknown option '$1' (try --help)" ;;
	esac
done

mkdir -p "$out"
out=$(cd "$out" && pwd)
if [ "$clean" = 1 ]; then
	rm -rf "${out:?}"/{debs,kernel,module,bin,initramfs,initramfs.cpio.gz,vmlinuz,guest.env}
	log "cleaned $out"
	exit 0
fi

exec 9>"$out/.lock"
flock 9

# 1. Host packages.
missing=()
for p in "${PACKAGES[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' ||
		missing+=("$p")
done
apt_updated=0
if [ ${#missing[@]} -gt 0 ]; then
	[ "$(id -u)" -eq 0 ] ||
		die "missing packages: ${missing[*]}; run as root or install them (scripts/deps.sh)"
	log "installing ${missing[*]}"
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq
	apt_updated=1
	apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# 2. Which kernel: the ABI that linux-image-amd64 depends on, unless given.
debs=$out/debs
mkdir -p "$debs"
resolve_kabi() {
	apt-cache depends linux-image-amd64 2>/dev/null |
		sed -n 's/^ *Depends: linux-image-\([0-9.]*-[0-9]*\)-amd64$/\1/p' | head -n 1
}
if [ -z "$kabi" ]; then
	kabi=$(resolve_kabi)
	if [ -z "$kabi" ] && [ "$apt_updated" = 0 ] && [ "$(id -u)" -eq 0 ]; then
		apt-get update -qq && apt_updated=1
		kabi=$(resolve_kabi)
	fi
	if [ -z "$kabi" ]; then
		# Offline: use the newest kernel already downloaded.
		kabi=$(ls "$debs" 2>/dev/null | sed -n 's/^linux-image-\([0-9.]*-[0-9]*\)-amd64_.*/\1/p' |
			sort -V | tail -n 1)
	fi
	[ -n "$kabi" ] || die "cannot tell which kernel linux-image-amd64 depends on (apt-get update?)"
fi
kver=$kabi-amd64
kseries=${kabi%.*-*}   # 6.1.0-56 -> 6.1
kroot=$out/kernel/$kabi
kdir=$kroot/usr/src/linux-headers-$kver

if [ ! -e "$kroot/.unpacked" ]; then
	pkgs=("linux-image-$kver" "linux-headers-$kver" "linux-headers-$kabi-common"
		"linux-kbuild-$kseries")
	have=1
	for p in "${pkgs[@]}"; do
		ls "$debs/${p}_"*.deb >/dev/null 2>&1 || have=0
	done
	if [ "$have" = 0 ]; then
		# Pin every package to the headers' version so that all four match.
		ver=$(apt-cache policy "linux-headers-$kver" 2>/dev/null |
			sed -n 's/^ *Candidate: //p')
		[ -n "$ver" ] && [ "$ver" != "(none)" ] ||
			die "linux-headers-$kver is not in the apt lists (apt-get update?)"
		log "downloading kernel $kver ($ver) into $debs"
		rm -f "$debs"/*.deb
		(cd "$debs" && apt-get download -q "${pkgs[@]/%/=$ver}" 2>&1 |
			{ grep -v 'Download is performed unsandboxed' >&2 || true; }) ||
			die "apt-get download of ${pkgs[*]} ($ver) failed"
	fi
	log "unpacking kernel $kver into $kroot"
	rm -rf "$kroot"
	mkdir -p "$kroot"
	for p in "${pkgs[@]}"; do
		deb=$(ls "$debs/${p}_"*.deb | sort -V | tail -n 1)
		if [ "$p" = "linux-image-$kver" ]; then
			# Only boot/ (vmlinuz, config, System.map); the 300 MB of
			# modules under lib/ are not needed by the guest.
			dpkg-deb --fsys-tarfile "$deb" | tar -x -C "$kroot" ./boot
		else
			dpkg-deb -x "$deb" "$kroot"
		fi
	done
	# Debian's per-flavour header Makefile includes the common tree by its
	# installed path; point it at the unpacked one. The scripts/ and tools/
	# symlinks are relative and already resolve inside $kroot.
	sed -i "s|^include /usr/src/|include $kroot/usr/src/|" "$kdir/Makefile"
	[ -e "$kroot/boot/vmlinuz-$kver" ] || die "no boot/vmlinuz-$kver in linux-image-$kver"
	touch "$kroot/.unpacked"
fi
ln -sfn "kernel/$kabi/boot/vmlinuz-$kver" "$out/vmlinuz"

# 3. The module, built out of tree in OUT/module against the unpacked headers.
mdir=$out/module
mkdir -p "$mdir"
cp -p -u "$here/module/chr_dev_udev.c" "$here/module/Kbuild" "$here/chr_dev_udev.h" "$mdir/"
if [ ! -e "$mdir/chr_dev_udev.ko" ] || [ "$mdir/chr_dev_udev.c" -nt "$mdir/chr_dev_udev.ko" ] ||
	[ "$mdir/chr_dev_udev.h" -nt "$mdir/chr_dev_udev.ko" ] ||
	[ "$kroot/.unpacked" -nt "$mdir/chr_dev_udev.ko" ]; then
	log "building chr_dev_udev.ko for $kver"
	make -s -C "$kdir" M="$mdir" clean >/dev/null 2>&1 || true
	make -s -C "$kdir" M="$mdir" W=1 modules >&2 ||
		die "building the module against $kdir failed"
	[ -e "$mdir/chr_dev_udev.ko" ] || die "make gave no chr_dev_udev.ko"
fi

# 4. The static user-space programs.
bdir=$out/bin
mkdir -p "$bdir"
cflags=(-static -O2 -g0 -Wall -Wextra -Werror -Wshadow -Wstrict-prototypes
	-Wmissing-prototypes -Wvla -Wformat=2 -std=gnu11 -D_GNU_SOURCE -I"$here")
build_prog() { # NAME SOURCE
	local bin=$bdir/$1 src=$here/$2
	if [ ! -e "$bin" ] || [ "$src" -nt "$bin" ] || [ "$here/pattern.h" -nt "$bin" ] ||
		[ "$here/chr_dev_udev.h" -nt "$bin" ]; then
		log "building $1 (static)"
		gcc "${cflags[@]}" -o "$bin.tmp" "$src" || die "compiling $2 failed"
		mv "$bin.tmp" "$bin"
	fi
}
build_prog test_chrdev test_chrdev.c
build_prog sdrsa-fill sdrsa_fill.c

# 5. The initramfs.
initrd=$out/initramfs.cpio.gz
busybox=$(dpkg -L busybox-static 2>/dev/null | grep '/busybox$' | head -n 1)
[ -n "$busybox" ] && [ -x "$busybox" ] || die "no busybox binary from busybox-static"
inputs=("$here/initramfs/init" "$here/initramfs/sdrsa-memloop" "$bdir/test_chrdev"
	"$bdir/sdrsa-fill" "$mdir/chr_dev_udev.ko" "$busybox" "${BASH_SOURCE[0]}")
stale=0
[ -e "$initrd" ] || stale=1
for f in "${inputs[@]}"; do
	[ "$f" -nt "$initrd" ] && stale=1
done
if [ "$stale" = 1 ]; then
	log "packing $initrd"
	st=$out/initramfs
	rm -rf "$st"
	mkdir -p "$st"/{bin,sbin,usr/bin,usr/sbin,dev,proc,sys,tmp,run,root,etc,lib/modules}
	cp "$busybox" "$st/bin/busybox"
	for a in $("$busybox" --list-full); do
		[ -e "$st/$a" ] || ln -s /bin/busybox "$st/$a"
	done
	install -m 755 "$here/initramfs/init" "$st/init"
	install -m 755 "$here/initramfs/sdrsa-memloop" "$bdir/test_chrdev" "$bdir/sdrsa-fill" "$st/bin/"
	install -m 644 "$mdir/chr_dev_udev.ko" "$st/lib/modules/"
	echo "root:x:0:0:root:/root:/bin/sh" >"$st/etc/passwd"
	echo "root:x:0:" >"$st/etc/group"
	# The kernel opens /dev/console before /init runs; /init copes without it.
	[ "$(id -u)" -eq 0 ] && mknod -m 600 "$st/dev/console" c 5 1
	(cd "$st" && find . -print0 | LC_ALL=C sort -z |
		cpio --null -o -H newc -R 0:0 --quiet) | gzip -n -6 >"$initrd.tmp"
	mv "$initrd.tmp" "$initrd"
fi

# 6. What run-guest.sh and tests/vm read.
cat >"$out/guest.env.tmp" <<EOF
# Written by guest/build.sh; read by guest/run-guest.sh and tests/vm.
KABI=$kabi
KVER=$kver
KERNEL=$out/kernel/$kabi/boot/vmlinuz-$kver
INITRD=$initrd
MODULE=$mdir/chr_dev_udev.ko
BIN=$bdir
EOF
mv "$out/guest.env.tmp" "$out/guest.env"
log "guest ready: kernel $kver, $(du -h "$initrd" | cut -f1) initramfs in $out"
