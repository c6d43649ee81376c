#!/usr/bin/env bash
# Build a debug kernel from Debian's own kernel source, the source of the
# test kernel scripts/fetch-kernel.sh downloads ($TEST_KERNEL: 5.10,
# the default, bullseye's, or 6.12, bookworm-backports'), with lockdep,
# KASAN, kmemleak, UBSAN, list debugging and the hung-task detector, for
# `make vm-test DEBUG_KERNEL=1` (docs/debug-kernel.md).
#
#   scripts/build-debug-kernel.sh   prints KVER=, KDIR=, VMLINUZ=, MODDIR=
#                                   lines, as scripts/fetch-kernel.sh does
#
# linux-source-<series> is downloaded from the Debian archive this
# machine's apt uses, through the private apt configuration of
# scripts/fetch-kernel.sh (nothing is installed, apt's own state is
# untouched).  Its version is that of the test kernel's image package
# (5.10.223-1 for 5.10.0-32-amd64, 6.12.95-1~bpo12+1 for
# 6.12.95+deb12-amd64), or $SCOUTFS_NOTIFY_SRCVER.  The kernel is `make
# defconfig`, `make kvm_guest.config`, then scripts/kernel/debug.config
# and the series' own scripts/kernel/debug-<series>.config (the options
# that differ between 5.10 and 6.12) merged over it; every line of those
# fragments is checked to hold in the final .config.  Everything the
# guests need (brd, crc32c, libcrc32c, device-mapper with dm-delay) is
# built in, so the guest loads no module but scoutfs.ko, and brd's sizes
# go on the command line.
#
# The build (about 15 minutes for 5.10 on 2 cores) is cached under the
# kernel cache ($SCOUTFS_NOTIFY_CACHE, default /var/cache/scoutfs-notify)
# in debug-<version>-<hash of the fragments>/, so a later run prints the
# same lines at once.  KDIR is the built source tree: out-of-tree
# modules build against it with M=.  The build log is build.log there.
set -euo pipefail

top=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

# shellcheck source=scripts/lib.sh
. "$top/scripts/lib.sh"

case "${1:-}" in
'') ;;
-h | --help) usage; exit 0 ;;
*) die "unknown argument '$1' (see --help)" ;;
esac

test_kernel
frags=("$top/scripts/kernel/debug.config" "$top/scripts/kernel/debug-$kseries.config")
for f in "${frags[@]}"; do
	[ -f "$f" ] || die "no config fragment $f"
done
kernel_cache
kernel_apt
hash=$(cat "${frags[@]}" | sha256sum | cut -c1-12)

# one build of a series at a time; a second caller waits and then finds
# it cached
exec 9>"$cache/debug-kernel$ktag.lock"
flock 9

# the source version: what we resolved before (so that a cached build
# doesn't need the archive), else the test kernel image's version
vfile=$cache/debug-srcver$ktag
srcver=${SCOUTFS_NOTIFY_SRCVER:-$(cat "$vfile" 2>/dev/null || true)}
if [ -z "$srcver" ]; then
	eval "$("$top/scripts/fetch-kernel.sh" | grep '^KVER=')"
	kernel_apt_lists || kernel_apt_update
	srcver=$(apt-cache "${apt_opts[@]}" show "linux-image-${KVER:?}" 2>/dev/null |
		sed -n 's/^Version: //p' | head -n 1)
	[ -n "$srcver" ] || die "cannot find the version of linux-image-$KVER"
fi
series=${srcver%.*}
d=$cache/debug-$srcver-$hash
ksrc=$d/linux-source-$series

print_lines() {
	local kver
	kver=$(cat "$d/kver")
	echo "KVER=$kver"
	echo "KDIR=$ksrc"
	echo "VMLINUZ=$ksrc/arch/x86/boot/bzImage"
	echo "MODDIR=$d/mod/lib/modules/$kver"
}

if [ -f "$d/ok" ]; then
	print_lines
	exit 0
fi

"$top/scripts/deps.sh" kernel >&2
rm -rf "$d"
mkdir -p "$d/deb"
echo "$me: downloading linux-source-$series $srcver from $apt_uri $ksuite" >&2
kernel_apt_lists || kernel_apt_update
(cd "$d/deb" && apt-get "${apt_opts[@]}" download -q "linux-source-$series=$srcver" \
	>"$d/apt-download.log" 2>&1) ||
	die "download failed, see $d/apt-download.log"
dpkg-deb --fsys-tarfile "$d"/deb/linux-source-*.deb |
	tar -xOf - "./usr/src/linux-source-$series.tar.xz" | tar -xJf - -C "$d"
[ -f "$ksrc/Makefile" ] || die "linux-source-$series.tar.xz has no linux-source-$series/Makefile"
rm -rf "$d/deb"

log=$d/build.log
kmake() {
	make -C "$ksrc" -j"$(nproc)" "$@" >>"$log" 2>&1 ||
		die "make $* failed, see $log"
}
start=$(date +%s)
echo "$me: building $srcver with ${frags[*]##*/} ($hash) in $d, log in $log" >&2
kmake defconfig
kmake kvm_guest.config
(cd "$ksrc" && scripts/kconfig/merge_config.sh -m .config "${frags[@]}") >>"$log" 2>&1 ||
	die "merging ${frags[*]} failed, see $log"
kmake olddefconfig
# every line of the fragment must have held
missing=0
while IFS= read -r l; do
	case "$l" in
	CONFIG_*=*) grep -qxF "$l" "$ksrc/.config" ;;
	"# CONFIG_"*" is not set")
		s=${l#\# }
		s=${s%% *}
		! grep -q "^$s=" "$ksrc/.config" ;;
	*) continue ;;
	esac || {
		echo "$me: not in the final .config: $l" >&2
		missing=$((missing + 1))
	}
done < <(cat "${frags[@]}")
[ "$missing" -eq 0 ] || die "$missing lines of ${frags[*]##*/} did not hold (see above; log in $log)"
kmake
kmake modules_install INSTALL_MOD_PATH="$d/mod"
make -s -C "$ksrc" kernelrelease >"$d/kver"
echo "$me: built $(cat "$d/kver") in $(($(date +%s) - start)) s" | tee -a "$log" >&2
touch "$d/ok"
echo "$srcver" >"$vfile"
print_lines
