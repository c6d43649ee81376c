#!/usr/bin/env bash
# Make (once per machine) the Debian root that upstream scoutfs's own
# tests/run-tests.sh runs in inside the VM, and print where it is:
#
#   scripts/upstream-root.sh        prints ROOT_CPIO=<path>
#
# The root is Debian bookworm (the host's release, so binaries built
# here run there) made by debootstrap from the mirror apt already uses,
# with the commands upstream's tests and harness call (bash, util-linux,
# dmsetup, xfs_io, attr/acl tools, perl, ...; nfs-kernel-server, which
# brings nfs-common and rpcbind, for basic-nfs's exportfs, mount.nfs,
# rpc.nfsd, rpc.mountd and rpc.statd).  It is packed as an
# uncompressed cpio archive that scripts/upstream-suite.sh boots as the
# initramfs, with the scoutfs trees appended as a second archive.  It
# is cached under /var/cache/scoutfs-notify (SCOUTFS_NOTIFY_CACHE), keyed
# by the package list, so later runs don't need the archive.  Needs root.
set -euo pipefail

top=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

# shellcheck source=scripts/lib.sh
. "$top/scripts/lib.sh"

case "${1:-}" in
'') ;;
-h | --help) usage; exit 0 ;;
*) die "unknown argument '$1' (see --help)" ;;
esac

# What upstream's harness (run-tests.sh, funcs/*.sh) and the tests of the
# release's sequence run, plus make (run-tests.sh runs make in
# each prebuilt tree) and the libraries the scoutfs utils link.  Every
# command the tests of v1.28..v1.33 name in t_require_commands is here,
# built with the trees (createmany, handle_cat, scoutfs, ...), or in
# the guest's compat dir (systemctl, tests/upstream/guest.sh).
pkgs=(bash coreutils util-linux mount dmsetup kmod iproute2 procps psmisc
	xfsprogs attr acl e2fsprogs bsdextrautils bc perl gawk sed grep
	diffutils findutils uuid-runtime sudo strace make passwd inotify-tools
	nfs-kernel-server
	libuuid1 libblkid1 libssl3)
suite=bookworm

cache=${SCOUTFS_NOTIFY_CACHE:-/var/cache/scoutfs-notify}
if ! mkdir -p "$cache" 2>/dev/null || [ ! -w "$cache" ]; then
	cache=$top/build/cache
	mkdir -p "$cache"
fi
key=$(echo "$suite ${pkgs[*]}" | sha256sum | cut -c1-12)
dir=$cache/upstream-root-$suite-$key
if [ -f "$dir/ok" ]; then
	echo "ROOT_CPIO=$dir/root.cpio"
	exit 0
fi

[ "$(id -u)" -eq 0 ] || die "building the Debian root needs root (debootstrap)"
if ! command -v debootstrap >/dev/null; then
	DEBIAN_FRONTEND=noninteractive apt-get install -y -q debootstrap >"$cache/debootstrap-apt.log" 2>&1 ||
		die "cannot install debootstrap, see $cache/debootstrap-apt.log"
fi
uri=$(debian_mirror) || die "no Debian mirror found in /etc/apt sources"

rm -rf "$dir"
mkdir -p "$dir"
root=$dir/root
echo "upstream-root.sh: debootstrap $suite from $uri into $root (once per machine)" >&2
include=$(
	IFS=,
	echo "${pkgs[*]}"
)
if ! debootstrap --variant=minbase --include="$include" "$suite" "$root" "$uri" \
	>"$dir/debootstrap.log" 2>&1; then
	tail -n 20 "$dir/debootstrap.log" >&2
	die "debootstrap failed, see $dir/debootstrap.log"
fi

# Nothing in the VM reads docs, locales or apt's caches.
rm -rf "$root"/usr/share/{doc,man,info,locale} "$root"/var/cache/apt/* \
	"$root"/var/lib/apt/lists/*
# No devices but devtmpfs's; an initramfs root runs /init.
rm -rf "${root:?}"/dev/*
(cd "$root" && find . | cpio -o -H newc --quiet) >"$dir/root.cpio.tmp"
mv "$dir/root.cpio.tmp" "$dir/root.cpio"
rm -rf "$root"
touch "$dir/ok"
echo "upstream-root.sh: $(du -h "$dir/root.cpio" | cut -f1) root in $dir/root.cpio" >&2
echo "ROOT_CPIO=$dir/root.cpio"
