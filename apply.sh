#!/usr/bin/env bash
# Apply the scoutfs-notify series that matches a scoutfs source tree.
#
#   ./apply.sh /path/to/scoutfs              git checkout: release found from its tags
#   ./apply.sh --base v1.30 /path/to/scoutfs tree without git (tarball): patch -p1
#   ./apply.sh --list                        releases with a series
#
# It changes nothing unless it can apply the whole series: it refuses an
# unsupported release, a dirty tree, a tree that already has the series,
# and a path that is not a scoutfs tree; a conflict aborts `git am` and
# leaves the tree as it was.  `next` is upstream main (the commit in
# series/next/upstream.txt), ahead of the last release: a git checkout
# that contains that commit, past its last release tag, gets it, and
# --base next on a git checkout without that commit is refused.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

die() {
	echo "apply.sh: $*" >&2
	exit 1
}

usage() {
	sed -n '2,15s/^# \{0,1\}//p' "${BASH_SOURCE[0]}"
}

# The series for release $1: patches/ for the current base, series/<tag>/
# for the others.
series_dir() {
	local tag=$1
	if [ "$tag" = "$(cat "$here/base.txt")" ]; then
		echo "$here/patches"
	elif [ -d "$here/series/$tag" ]; then
		echo "$here/series/$tag"
	else
		return 1
	fi
}

# the releases, oldest first: the tags, then next; one write, so that a
# reader that stops at its match (grep -q) can't make this fail
list_releases() {
	local l
	l=$({
		cat "$here/base.txt"
		if [ -d "$here/series" ]; then
			find "$here/series" -mindepth 1 -maxdepth 1 -type d -name 'v[0-9]*' -printf '%f\n'
		fi
	} | sort -V)
	[ ! -f "$here/series/next/upstream.txt" ] || l+=$'\nnext'
	cat <<<"$l"
}

# the upstream commit the next series is for
next_commit() {
	cat "$here/series/next/upstream.txt"
}

# in_head COMMIT: the git tree's HEAD contains COMMIT
in_head() {
	git -C "$tree" merge-base --is-ancestor "$1" HEAD 2>/dev/null
}

base=""
tree=""
while [ $# -gt 0 ]; do
	case "$1" in
	-h | --help)
		usage
		exit 0
		;;
	--list)
		list_releases
		exit 0
		;;
	--base)
		[ $# -ge 2 ] || die "--base needs a release tag, e.g. --base v1.30"
		base=$2
		shift 2
		;;
	--base=*)
		base=${1#--base=}
		shift
		;;
	-*)
		die "unknown option '$1' (see --help)"
		;;
	*)
		[ -z "$tree" ] || die "only one scoutfs tree may be given"
		tree=$1
		shift
		;;
	esac
done

[ -n "$tree" ] || {
	usage >&2
	exit 2
}
[ -d "$tree" ] || die "'$tree' is not a directory"
tree=$(cd "$tree" && pwd)

if [ ! -f "$tree/kmod/src/super.c" ] || [ ! -f "$tree/kmod/src/ioctl.h" ] ||
	[ ! -d "$tree/utils/src" ]; then
	die "'$tree' is not a scoutfs source tree (no kmod/src/super.c, kmod/src/ioctl.h, utils/src)"
fi

# The series adds kmod/src/notify.c; a tree that has it has the series.
if [ -e "$tree/kmod/src/notify.c" ] || grep -q SCOUTFS_IOC_READ_NOTIFY "$tree/kmod/src/ioctl.h"; then
	die "'$tree' already has the notify series applied (kmod/src/notify.c or SCOUTFS_IOC_READ_NOTIFY present)"
fi

is_git=false
if git -C "$tree" rev-parse --show-toplevel >/dev/null 2>&1 &&
	[ "$(git -C "$tree" rev-parse --show-toplevel)" = "$tree" ]; then
	is_git=true
fi

if [ -z "$base" ]; then
	$is_git || die "'$tree' is not a git checkout: name its release with --base vX.Y"
	base=$(git -C "$tree" describe --tags --abbrev=0 --match 'v[0-9]*' HEAD 2>/dev/null) ||
		die "cannot find a release tag below HEAD in '$tree' (fetch the tags, or use --base vX.Y)"
	# past its last tag and on upstream main's commit of the next series
	if [ -f "$here/series/next/upstream.txt" ] && in_head "$(next_commit)" &&
		git -C "$tree" merge-base --is-ancestor "$base" "$(next_commit)" 2>/dev/null &&
		[ "$(git -C "$tree" rev-parse "$base^{commit}")" != "$(next_commit)" ]; then
		base=next
	fi
fi
if [ "$base" = next ] && $is_git && [ -f "$here/series/next/upstream.txt" ] &&
	! in_head "$(next_commit)"; then
	die "the next series is for upstream main at $(next_commit), which HEAD of '$tree' does not contain (fetch main, or name the release of the tree with --base vX.Y)"
fi

dir=$(series_dir "$base") ||
	die "scoutfs $base is not supported; series exist for: $(list_releases | tr '\n' ' ')"
mapfile -t patches < <(find "$dir" -maxdepth 1 -name '*.patch' | sort)
[ "${#patches[@]}" -gt 0 ] || die "no patches in $dir"

if $is_git; then
	[ -z "$(git -C "$tree" status --porcelain --untracked-files=no)" ] ||
		die "'$tree' has uncommitted changes; commit or stash them first"
	[ ! -d "$(git -C "$tree" rev-parse --git-path rebase-apply)" ] ||
		die "'$tree' has a git am or rebase in progress; finish or abort it first"

	# git am records a committer; let it work for users without an identity
	if [ -z "$(git -C "$tree" config user.email || true)" ]; then
		export GIT_COMMITTER_NAME="${GIT_COMMITTER_NAME:-scoutfs-notify apply.sh}"
		export GIT_COMMITTER_EMAIL="${GIT_COMMITTER_EMAIL:-apply.sh@localhost}"
	fi

	head=$(git -C "$tree" rev-parse HEAD)
	orig_head=$(git -C "$tree" rev-parse --quiet --verify ORIG_HEAD || true)
	if ! out=$(git -C "$tree" am --3way --quiet "${patches[@]}" 2>&1); then
		git -C "$tree" am --abort >/dev/null 2>&1 || true
		git -C "$tree" reset --quiet --hard "$head"
		# am and reset leave ORIG_HEAD behind: put back what was there
		if [ -n "$orig_head" ]; then
			git -C "$tree" update-ref ORIG_HEAD "$orig_head"
		else
			git -C "$tree" update-ref -d ORIG_HEAD
		fi
		grep -vE '^(hint:|When you have|If you prefer|To restore)' <<<"$out" >&2 || true
		die "the $base series does not apply to '$tree'; the tree is back at $head, unchanged"
	fi
else
	# apply to a copy first so that a failing hunk changes nothing
	tmp=$(mktemp -d)
	trap 'rm -rf "$tmp"' EXIT
	cp -a "$tree/." "$tmp/"
	for p in "${patches[@]}"; do
		patch -d "$tmp" -p1 --quiet --no-backup-if-mismatch <"$p" >/dev/null ||
			die "$(basename "$p") does not apply to '$tree' as scoutfs $base; nothing was changed"
	done
	for p in "${patches[@]}"; do
		patch -d "$tree" -p1 --quiet --no-backup-if-mismatch <"$p"
	done
fi

[ "$base" != next ] || echo "apply.sh: next is upstream main at $(next_commit) (series/next/)"
echo "applied ${#patches[@]} patches for scoutfs $base to $tree"
