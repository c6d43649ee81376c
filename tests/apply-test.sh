#!/usr/bin/env bash
# apply.sh must refuse bad input with a clear message and change
# nothing.  Synthetic trees cover the refusals without upstream; with
# SCOUTFS_SRC set the real series is applied to a fresh clone of the
# base release, both as a git tree and as a tarball tree, and the
# patched tree's RPMs are built and their packaging checked
# (tests/lib/rpm-check.sh).
set -euo pipefail

top=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
apply=$top/apply.sh
base=$(cat "$top/base.txt")
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

export GIT_AUTHOR_NAME=t GIT_AUTHOR_EMAIL=t@t GIT_COMMITTER_NAME=t GIT_COMMITTER_EMAIL=t@t

# shellcheck source=tests/lib/counts.sh
. "$top/tests/lib/counts.sh"
# shellcheck source=tests/lib/rpm-check.sh
. "$top/tests/lib/rpm-check.sh"

# expect NAME STATUS PATTERN -- CMD...: CMD exits STATUS and its stderr
# or stdout matches PATTERN.
expect() {
	local name=$1 want=$2 pat=$3 rc=0 out
	shift 4
	out=$("$@" 2>&1) || rc=$?
	if [ "$rc" -ne "$want" ]; then
		bad "$name" "exit $rc, wanted $want: $out"
	elif ! grep -qE -- "$pat" <<<"$out"; then
		bad "$name" "output lacks /$pat/: $out"
	else
		ok "$name"
	fi
}

# A tree that looks like scoutfs but whose files match no patch context.
fake_tree() {
	local d=$1
	mkdir -p "$d/kmod/src" "$d/utils/src"
	echo "/* not scoutfs */" >"$d/kmod/src/super.c"
	echo "/* no ioctls */" >"$d/kmod/src/ioctl.h"
	echo "int main(void) { return 0; }" >"$d/utils/src/main.c"
}

fake_git_tree() {
	local d=$1 tag=$2
	fake_tree "$d"
	git -C "$d" init -q
	git -C "$d" add -A
	git -C "$d" commit -qm "$tag Release"
	git -C "$d" tag "$tag"
}

# fingerprint of a tree's files, and for a git tree its HEAD, refs and status
state() {
	(
		cd "$1"
		find . -path ./.git -prune -o -type f -print0 | sort -z | xargs -0 sha1sum
		if [ -d .git ]; then
			git rev-parse HEAD
			git for-each-ref
			git status --porcelain
			ls .git
		fi
	) | sha1sum
}

# same_state DIR FINGERPRINT NAME
same_state() {
	if [ "$(state "$1")" = "$2" ]; then
		ok "$3"
	else
		bad "$3" "the tree changed"
	fi
}

expect "help" 0 "Apply the scoutfs-notify series" -- "$apply" --help
expect "no arguments" 2 "usage|apply.sh" -- "$apply"
expect "unknown option" 1 "unknown option '--frob'" -- "$apply" --frob "$work"
expect "missing directory" 1 "is not a directory" -- "$apply" "$work/nope"
mkdir "$work/empty"
expect "not a scoutfs tree" 1 "not a scoutfs source tree" -- "$apply" "$work/empty"
expect "list names the base" 0 "^$base\$" -- "$apply" --list

fake_git_tree "$work/v999" v9.99
s=$(state "$work/v999")
expect "unsupported release" 1 "v9.99 is not supported" -- "$apply" "$work/v999"
same_state "$work/v999" "$s" "unsupported release: tree unchanged"

fake_git_tree "$work/dirty" "$base"
echo "local change" >>"$work/dirty/kmod/src/super.c"
s=$(state "$work/dirty")
expect "dirty tree" 1 "uncommitted changes" -- "$apply" "$work/dirty"
same_state "$work/dirty" "$s" "dirty tree: tree unchanged"

fake_git_tree "$work/applied" "$base"
echo "/* notify */" >"$work/applied/kmod/src/notify.c"
git -C "$work/applied" add -A && git -C "$work/applied" commit -qm notify
expect "already applied" 1 "already has the notify series" -- "$apply" "$work/applied"

fake_git_tree "$work/conflict" "$base"
s=$(state "$work/conflict")
expect "conflict aborts" 1 "does not apply.*unchanged" -- "$apply" "$work/conflict"
same_state "$work/conflict" "$s" "conflict: files, HEAD, refs and git state unchanged"

fake_tree "$work/tarball"
expect "tarball without --base" 1 "not a git checkout: name its release with --base" -- "$apply" "$work/tarball"
s=$(state "$work/tarball")
expect "tarball conflict" 1 "does not apply.*nothing was changed" -- "$apply" --base "$base" "$work/tarball"
same_state "$work/tarball" "$s" "tarball conflict: tree unchanged"
expect "tarball unsupported" 1 "v0.1 is not supported" -- "$apply" --base v0.1 "$work/tarball"

if [ -z "${SCOUTFS_SRC:-}" ]; then
	echo "SKIPPED: real series apply: SCOUTFS_SRC is not set"
else
	nr=$(find "$top/patches" -name '*.patch' | wc -l)
	SCOUTFS_SRC=$("$top/scripts/upstream-git.sh" "$SCOUTFS_SRC")
	git clone -q --shared --no-checkout "$SCOUTFS_SRC" "$work/real"
	git -C "$work/real" checkout -q "$base"
	expect "real apply" 0 "applied $nr patches for scoutfs $base" -- "$apply" "$work/real"
	got=$(git -C "$work/real" rev-list --count "$base..HEAD")
	if [ "$got" -eq "$nr" ]; then
		ok "real apply: $nr commits on $base"
	else
		bad "real apply: $nr commits on $base" "$got commits"
	fi
	expect "real apply twice" 1 "already has the notify series" -- "$apply" "$work/real"

	# next: a checkout of upstream main gets it by itself; --base next
	# on a release's checkout is refused and changes nothing
	if [ -f "$top/series/next/upstream.txt" ]; then
		nc=$(cat "$top/series/next/upstream.txt")
		nn=$(find "$top/series/next" -name '*.patch' | wc -l)
		git clone -q --shared --no-checkout "$SCOUTFS_SRC" "$work/main"
		git -C "$work/main" checkout -q --detach "$nc"
		expect "main gets next" 0 "applied $nn patches for scoutfs next" -- "$apply" "$work/main"
		last=$(find "$top/series" -mindepth 1 -maxdepth 1 -name 'v*' -printf '%f\n' | sort -V | tail -n 1)
		git clone -q --shared --no-checkout "$SCOUTFS_SRC" "$work/tag"
		git -C "$work/tag" checkout -q --detach "$last"
		s=$(state "$work/tag")
		expect "--base next on $last refused" 1 "next series is for upstream main at $nc, which HEAD" \
			-- "$apply" --base next "$work/tag"
		same_state "$work/tag" "$s" "--base next on $last: tree unchanged"
		expect "$last checkout gets $last" 0 "applied .* for scoutfs $last to" -- "$apply" "$work/tag"
	else
		echo "SKIPPED: next: no series/next/upstream.txt"
	fi

	mkdir "$work/real-tar"
	git -C "$SCOUTFS_SRC" archive "$base" | tar -x -C "$work/real-tar"
	expect "real tarball apply" 0 "applied $nr patches" -- "$apply" --base "$base" "$work/real-tar"
	if diff -r -x .git "$work/real" "$work/real-tar" >/dev/null; then
		ok "tarball and git apply give the same tree"
	else
		bad "tarball and git apply give the same tree" "$(diff -rq -x .git "$work/real" "$work/real-tar" | head)"
	fi
	# last: make dist writes into the tree
	rpm_checks "$work/real"
fi

echo "apply: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
