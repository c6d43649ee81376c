#!/usr/bin/env bash
# Make a fresh tree of upstream scoutfs at a release, apply the series
# with apply.sh, and build the kmod (with -Werror and sparse, as
# upstream's kmod make runs it) against Debian's 5.10 kernel (6.12 with
# TEST_KERNEL=6.12; with DEBUG_KERNEL=1 the debug kernel of
# scripts/build-debug-kernel.sh) and upstream's utils (with the daemon
# when the series carries it).
#
#   scripts/build-scoutfs.sh --src DIR --base TAG --out DIR [--no-series]
#                            [--tree REF] [--shim DIFF] [--expect-define KC_X]
#
# --out DIR gets src/ (the tree) and build logs; with --no-series the
# release is built unpatched (for comparisons).  The tree is the
# release (for `next`, the upstream commit series/next/upstream.txt
# names), or with --tree the upstream REF (e.g. auke/rhel10), to which
# apply.sh must then apply the TAG series by itself.  --shim applies a
# test-kernel shim (git apply; scripts/kernel/shim-*.diff) after the
# series: not the product, a compat fix of upstream's that the test
# kernel needs.  --expect-define fails the build unless upstream's
# compat layer defined KC_X for file.c (e.g. KC_USE_IOMAP_FOR_IO).
# Prints one `build: <step> ok|FAILED` line per step and exits non-zero
# on failure; what an earlier build in DIR made (scoutfs.ko, src/, the
# logs) is deleted before anything is built.
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
ref=""
shim=""
defines=()
while [ $# -gt 0 ]; do
	case "$1" in
	--src) src=${2:?}; shift 2 ;;
	--base) base=${2:?}; shift 2 ;;
	--out) out=${2:?}; shift 2 ;;
	--no-series) series=false; shift ;;
	--tree) ref=${2:?}; shift 2 ;;
	--shim) shim=$(cd "$(dirname "${2:?}")" && pwd)/$(basename "$2"); shift 2 ;;
	--expect-define) defines+=("${2:?}"); shift 2 ;;
	-h | --help) usage; exit 0 ;;
	*) die "unknown argument '$1'" ;;
	esac
done
[ -n "$src" ] || die "--src (or SCOUTFS_SRC) must name an upstream scoutfs git dir"
[ -n "$base" ] || die "--base TAG is required"
[ -n "$out" ] || die "--out DIR is required"
[ -z "$shim" ] || [ -f "$shim" ] || die "--shim $shim is not a file"
src=$("$top/scripts/upstream-git.sh" "$src")
# what to check out: --tree, else the release (next: its pinned commit)
if [ -z "$ref" ]; then
	ref=$base
	[ ! -f "$top/series/$base/upstream.txt" ] || ref=$(cat "$top/series/$base/upstream.txt")
fi

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
sha=$(git -C "$src" rev-parse -q --verify "$ref^{commit}") || die "no '$ref' in '$src'"
git -C "$tree" -c advice.detachedHead=false checkout -q --detach "$sha" ||
	die "cannot check out $ref ($sha)"
git -C "$tree" config user.name "scoutfs-notify build"
git -C "$tree" config user.email "build@localhost"

if $series; then
	# apply.sh finds the release by itself: it must be the one asked for
	if "$top/apply.sh" "$tree" >"$out/apply.log" 2>&1 &&
		grep -q "^applied .* for scoutfs $base to " "$out/apply.log"; then
		echo "build: apply ok ($(git -C "$tree" rev-list --count "$sha..HEAD") commits)"
	else
		cat "$out/apply.log"
		echo "build: apply FAILED"
		exit 1
	fi
fi

if [ -n "$shim" ]; then
	if git -C "$tree" apply "$shim" >"$out/shim.log" 2>&1; then
		echo "build: shim ok (${shim##*/}, a test-kernel fix, not the series)"
	else
		cat "$out/shim.log"
		echo "build: shim FAILED"
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
# the compat layer's choices that the run depends on
for d in "${defines[@]}"; do
	if grep -q -- "-D$d\b" "$tree/kmod/src/.file.o.cmd"; then
		echo "build: $d ok (defined for file.c)"
	else
		echo "build: $d FAILED (not defined for file.c on $KVER)"
		exit 1
	fi
done
cp "$tree/kmod/src/scoutfs.ko" "$out/scoutfs.ko"
strip --strip-debug "$out/scoutfs.ko"

if make -C "$tree/utils" SCOUTFS_FORMAT_HASH=0 -j"$(nproc)" >"$out/utils.log" 2>&1; then
	echo "build: utils ok"
else
	tail -n 30 "$out/utils.log"
	echo "build: utils FAILED (see $out/utils.log)"
	exit 1
fi
