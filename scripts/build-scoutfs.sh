#!/usr/bin/env bash
# Make a fresh tree of upstream scoutfs at a release, apply the series
# with apply.sh, and build the kmod (with -Werror and sparse, as
# upstream's kmod make runs it) against Debian's 5.10 kernel (with
# DEBUG_KERNEL=1 the debug kernel of scripts/build-debug-kernel.sh) and
# upstream's utils (with the daemon when the series carries it).
#
#   scripts/build-scoutfs.sh --src DIR --base TAG --out DIR [--no-series]
#
# --out DIR gets src/ (the tree) and build logs; with --no-series the
# release is built unpatched (for comparisons).  Prints one
# `build: <step> ok|FAILED` line per step and exits non-zero on failure;
# what an earlier build in DIR made (scoutfs.ko, src/, the logs) is
# deleted before anything is built.
# sparse is clean when the patched build prints no more sparse
# warnings than the same release unpatched (upstream's own count,
# usually 0, is printed).
set -euo pipefail

top=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

# shellcheck source=scripts/lib.sh
. "$top/scripts/lib.sh"

src=${SCOUTFS_SRC:-}
base=""
out=""
series=true
while [ $# -gt 0 ]; do
	case "$1" in
	--src) src=${2:?}; shift 2 ;;
	--base) base=${2:?}; shift 2 ;;
	--out) out=${2:?}; shift 2 ;;
	--no-series) series=false; shift ;;
	-h | --help) usage; exit 0 ;;
	*) die "unknown argument '$1'" ;;
	esac
done
[ -n "$src" ] || die "--src (or SCOUTFS_SRC) must name an upstream scoutfs git dir"
[ -n "$base" ] || die "--base TAG is required"
[ -n "$out" ] || die "--out DIR is required"
src=$("$top/scripts/upstream-git.sh" "$src")

"$top/scripts/deps.sh" vm
kl=$(kernel_lines)
eval "$kl"

mkdir -p "$out"
out=$(cd "$out" && pwd)
tree=$out/src
# what an earlier build left is never taken for this one's
rm -rf "$tree"
rm -f "$out/scoutfs.ko" "$out/apply.log" "$out/kmod.log" "$out/sparse.txt" "$out/utils.log"
git clone -q --shared --no-checkout "$src" "$tree" || die "cannot clone '$src'"
git -C "$tree" -c advice.detachedHead=false checkout -q --detach "$base" ||
	die "no release '$base' in '$src'"
git -C "$tree" config user.name "scoutfs-notify build"
git -C "$tree" config user.email "build@localhost"

if $series; then
	if "$top/apply.sh" "$tree" >"$out/apply.log" 2>&1; then
		echo "build: apply ok ($(git -C "$tree" rev-list --count "$base..HEAD") commits)"
	else
		cat "$out/apply.log"
		echo "build: apply FAILED"
		exit 1
	fi
fi

# kmod: -Werror, and sparse the way upstream's kmod Makefile runs it
kmake() {
	make -C "$KDIR" M="$tree/kmod/src" CC=gcc CONFIG_SCOUTFS_FS=m \
		EXTRA_CFLAGS=-Werror C=1 CHECK="$tree/kmod/src/sparse-filtered.sh" \
		CF=-D__CHECK_ENDIAN__ SCOUTFS_GIT_DESCRIBE="$base-notify" \
		-j"$(nproc)" "$@"
}
if kmake modules >"$out/kmod.log" 2>&1; then
	echo "build: kmod ok (-Werror)"
else
	grep -E 'error|warning' "$out/kmod.log" | head -n 30
	echo "build: kmod FAILED (see $out/kmod.log)"
	exit 1
fi
sparse_count() {
	grep -cE '^[^ ]+:[0-9]+:[0-9]+: (warning|error):' "$1" || true
}
nsp=$(sparse_count "$out/kmod.log")
echo "sparse: $nsp warnings" >"$out/sparse.txt"
if [ "$nsp" -eq 0 ]; then
	echo "build: sparse ok (0 warnings)"
else
	grep -E '^[^ ]+:[0-9]+:[0-9]+: (warning|error):' "$out/kmod.log" | head -n 20
	echo "build: sparse FAILED ($nsp warnings)"
	exit 1
fi
cp "$tree/kmod/src/scoutfs.ko" "$out/scoutfs.ko"
strip --strip-debug "$out/scoutfs.ko"

if make -C "$tree/utils" SCOUTFS_FORMAT_HASH=0 -j"$(nproc)" >"$out/utils.log" 2>&1; then
	echo "build: utils ok"
else
	tail -n 30 "$out/utils.log"
	echo "build: utils FAILED (see $out/utils.log)"
	exit 1
fi
