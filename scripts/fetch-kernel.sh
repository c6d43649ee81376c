#!/usr/bin/env bash
# Fetch a Debian test kernel (image, headers, kbuild) from the Debian
# archive this machine's apt already uses, unpack it, and make a kernel
# build dir that out-of-tree modules build against.
#
#   scripts/fetch-kernel.sh      prints KVER=, KDIR=, VMLINUZ=, MODDIR= lines
#
# $TEST_KERNEL picks the kernel: 5.10 (the default), Debian bullseye's,
# or 6.12, Debian bookworm-backports'.  Nothing is installed on the
# system and apt's own configuration and state are untouched: a private
# sources list and state dir under the cache are used.  Cache:
# $SCOUTFS_NOTIFY_CACHE, default /var/cache/scoutfs-notify (build/cache
# when that isn't writable), one directory per kernel ABI.  The kernel
# is the one the suite's linux-image-amd64 depends on (fetched by its
# ABI: the suite only has headers for its newest), resolved once and
# then reused from the cache, or $SCOUTFS_NOTIFY_KVER (e.g.
# 5.10.0-32-amd64, 6.12.95+deb12-amd64).  6.12's modules are .ko.xz and
# its out-of-tree builds need pahole (dwarves: scripts/deps.sh vm), or
# the .ko is deleted at the BTF step.
set -euo pipefail

top=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

# shellcheck source=scripts/lib.sh
. "$top/scripts/lib.sh"

test_kernel
kernel_cache
kernel_apt

# where the resolved version is remembered: kver (5.10's, as always), kver-6.12
kfile=$cache/kver
[ "$kseries" = 5.10 ] || kfile+=-$kseries
kver=${SCOUTFS_NOTIFY_KVER:-}
if [ -z "$kver" ]; then
	# reuse what was fetched before, so that runs don't depend on the archive
	kver=$(cat "$kfile" 2>/dev/null || true)
fi
case "$kver" in
'' | "$kseries".*) ;;
*) die "kernel $kver is not of the $kseries series (TEST_KERNEL=$kseries)" ;;
esac
if [ -z "$kver" ] || [ ! -f "$cache/$kver/ok" ]; then
	if [ -z "$kver" ] || ! kernel_apt_lists; then
		kernel_apt_update
	fi
	if [ -z "$kver" ]; then
		kver=$(apt-cache "${apt_opts[@]}" depends linux-image-amd64 2>/dev/null |
			sed -n "s/.*Depends: linux-image-\(${kseries//./\\.}\.[0-9a-z.+~-]*-amd64\)$/\1/p" | head -n 1)
		[ -n "$kver" ] || die "cannot find $ksuite's linux-image-amd64 kernel version"
	fi
	abi=${kver%-amd64}
	# bullseye's kbuild is per series, bookworm-backports' per ABI
	kbuild=linux-kbuild-$kseries
	[ "$kseries" = 5.10 ] || kbuild=linux-kbuild-$abi
	dl=$cache/$kver/deb
	rm -rf "${cache:?}/$kver"
	mkdir -p "$dl"
	echo "fetch-kernel.sh: downloading linux $kver from $apt_uri $ksuite" >&2
	(cd "$dl" && apt-get "${apt_opts[@]}" download -q "linux-image-$kver" \
		"linux-headers-$kver" "linux-headers-$abi-common" "$kbuild" \
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
		cp -a "$root/usr/lib/$kbuild/$l" "$kdir/$l"
	done
	[ -f "$root/boot/vmlinuz-$kver" ] || die "no vmlinuz in linux-image-$kver"
	rm -rf "$dl"
	touch "$cache/$kver/ok"
	echo "$kver" >"$kfile"
fi

echo "KVER=$kver"
echo "KDIR=$cache/$kver/kdir"
echo "VMLINUZ=$cache/$kver/root/boot/vmlinuz-$kver"
echo "MODDIR=$cache/$kver/root/lib/modules/$kver"
