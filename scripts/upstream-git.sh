#!/usr/bin/env bash
# Print a git dir that git accepts for an upstream scoutfs tree.
#
#   scripts/upstream-git.sh DIR
#
# DIR is what SCOUTFS_SRC (or --src) names: a clone, a bare repository,
# or a read-only copy of one.  When git takes DIR as it is, DIR is
# printed.  Two kinds of copies git refuses: a bare copy whose empty
# refs/ directory was lost on the way (only packed-refs is left), and a
# copy owned by another user ("detected dubious ownership").  For those
# a small bare repository of our own is made under
# build/upstream-git/ that borrows DIR's objects (objects/info/
# alternates) and copies its refs, so DIR itself is only ever read.
# Exits 1 with a message when DIR is not a scoutfs git dir at all.
set -euo pipefail

top=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

# shellcheck source=scripts/lib.sh
. "$top/scripts/lib.sh"

[ $# -eq 1 ] || die "usage: $me DIR"
[ -d "$1" ] || die "'$1' is not a directory (SCOUTFS_SRC or --src must name an upstream scoutfs git dir)"
dir=$(cd "$1" && pwd)

if git -C "$dir" rev-parse --git-dir >/dev/null 2>&1; then
	echo "$dir"
	exit 0
fi

# the git dir inside: DIR itself (bare) or DIR/.git
gd=$dir
[ -d "$gd/objects" ] || gd=$dir/.git
if [ ! -d "$gd/objects" ] || [ ! -f "$gd/HEAD" ]; then
	die "'$dir' is not a git dir (no objects/ and HEAD)"
fi
if [ ! -f "$gd/packed-refs" ] && [ ! -d "$gd/refs" ]; then
	die "'$dir' has no refs (neither packed-refs nor refs/)"
fi

shim=$top/build/upstream-git/$(printf '%s' "$gd" | sha1sum | cut -c1-12).git
if [ ! -f "$shim/HEAD" ]; then
	rm -rf "$shim"
	git init -q --bare "$shim"
fi
echo "$gd/objects" >"$shim/objects/info/alternates"
# refs: refreshed on every call, so a copy that moved on is seen
rm -rf "$shim/refs" "$shim/packed-refs"
mkdir -p "$shim/refs/heads" "$shim/refs/tags"
[ ! -f "$gd/packed-refs" ] || cp "$gd/packed-refs" "$shim/packed-refs"
[ ! -d "$gd/refs" ] || cp -R "$gd/refs/." "$shim/refs/"
cp "$gd/HEAD" "$shim/HEAD"
git -C "$shim" rev-parse -q --verify 'HEAD^{commit}' >/dev/null 2>&1 ||
	git -C "$shim" rev-parse -q --verify 'refs/tags/v1.30^{commit}' >/dev/null 2>&1 ||
	die "'$dir': its objects and refs don't make a readable repository"
echo "$shim"
