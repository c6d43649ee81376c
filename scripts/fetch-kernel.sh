#!/usr/bin/env bash
# Fetch Debian bullseye's 5.10 kernel (image, headers, kbuild) from the
# Debian archive this machine's apt already uses, unpack it, and make a
# kernel build dir that out-of-tree modules build against.
#
#   scripts/fetch-kernel.sh      prints KVER=, KDIR=, VMLINUZ=, MODDIR= lines
#
# Nothing is installed on the system and apt's own configuration and
# state are untouched: a private sources list and state dir under the
# cache are used.  Cache: $SCOUTFS_NOTIFY_CACHE, default
# /var/cache/scoutfs-notify (build/cache when that isn't writable).
# The kernel is the one bullseye's linux-image-amd64 depends on, or
# $SCOUTFS_NOTIFY_KVER (e.g. 5.10.0-32-amd64).
set -euo pipefail

top=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

# shellcheck source=scripts/lib.sh
. "$top/scripts/lib.sh"

kernel_cache
bullseye_apt

kver=${SCOUTFS_NOTIFY_KVER:-}
if [ -z "$kver" ]; then
	# reuse what was fetched before, so that runs don't depend on the archive
	kver=$(cat "$cache/kver" 2>/dev/null || true)
fi
if [ -z "$kver" ] || [ ! -f "$cache/$kver/ok" ]; then
	if [ -z "$kver" ] || ! bullseye_lists; then
		bullseye_update
	fi
	if [ -z "$kver" ]; then
		kver=$(apt-cache "${apt_opts[@]}" depends linux-image-amd64 2>/dev/null |
			sed -n 's/.*Depends: linux-image-\(5\.10\.[0-9.-]*-amd64\)$/\1/p' | head -n 1)
		[ -n "$kver" ] || die "cannot find bullseye's linux-image-amd64 kernel version"
	fi
	abi=${kver%-amd64}
	dl=$cache/$kver/deb
	rm -rf "${cache:?}/$kver"
	mkdir -p "$dl"
	echo "fetch-kernel.sh: downloading linux $kver from $apt_uri bullseye" >&2
	(cd "$dl" && apt-get "${apt_opts[@]}" download -q "linux-image-$kver" \
		"linux-headers-$kver" "linux-headers-$abi-common" "linux-kbuild-5.10" \
		>"$cache/apt-download.log" 2>&1) ||
		die "download failed, see $cache/apt-download.log"
	root=$cache/$kver/root
	mkdir -p "$root"
	for d in "$dl"/*.deb; do
		dpkg-deb -x "$d" "$root"
	done
	# One build dir: the -common tree with the arch tree's generated
	# files over it (keeping -common's Makefile), and kbuild's real
	# scripts and tools instead of symlinks into /usr/lib.
	kdir=$cache/$kver/kdir
	cp -a "$root/usr/src/linux-headers-$abi-common" "$kdir"
	(cd "$root/usr/src/linux-headers-$kver" && tar --exclude=./Makefile -cf - .) | (cd "$kdir" && tar -xf -)
	for l in scripts tools; do
		rm -rf "${kdir:?}/$l"
		cp -a "$root/usr/lib/linux-kbuild-5.10/$l" "$kdir/$l"
	done
	[ -f "$root/boot/vmlinuz-$kver" ] || die "no vmlinuz in linux-image-$kver"
	touch "$cache/$kver/ok"
	echo "$kver" >"$cache/kver"
fi

echo "KVER=$kver"
echo "KDIR=$cache/$kver/kdir"
echo "VMLINUZ=$cache/$kver/root/boot/vmlinuz-$kver"
echo "MODDIR=$cache/$kver/root/lib/modules/$kver"
