#!/usr/bin/env bash
# The maintainer's round trip (`make series-edit`, `make series-export`,
# scripts/rebase-series.sh --edit/--export) on a copy of this
# repository: the series becomes commits on the base release, edits to
# them (an amended kernel hook, an amended notify.c, an appended commit)
# come back as patches/ and reach every series/*/ in that release's own
# form, every series then applies to its release, a second export
# changes nothing, and what export can't carry stops without writing
# series/.  Needs SCOUTFS_SRC.
set -euo pipefail

top=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# shellcheck source=tests/lib/counts.sh
. "$top/tests/lib/counts.sh"
finish() {
	echo "series-edit: $pass passed, $fail failed"
	exit $((fail > 0))
}
if [ -z "${SCOUTFS_SRC:-}" ]; then
	echo "SKIPPED: the series round trip: SCOUTFS_SRC is not set"
	finish
fi
src=$("$top/scripts/upstream-git.sh" "$SCOUTFS_SRC")
export GIT_AUTHOR_NAME=t GIT_AUTHOR_EMAIL=t@t GIT_COMMITTER_NAME=t GIT_COMMITTER_EMAIL=t@t

# a copy of the repository as it is now (tracked and new files), as git
repo=$work/repo
mkdir "$repo"
(cd "$top" && git ls-files -co --exclude-standard -z | xargs -0 tar -cf - 2>/dev/null) | tar -xf - -C "$repo"
git -C "$repo" init -q
git -C "$repo" add -A
git -C "$repo" commit -qm copy
# shellcheck disable=SC2317 # called below, after finish() returns
rs() {
	"$repo/scripts/rebase-series.sh" --src "$src" "$@"
}
ed=$repo/build/edit
base=$(cat "$repo/base.txt")
nr=$(find "$repo/patches" -name '*.patch' | wc -l)
# snapshot [DIR...]: checksums of every file under DIRs (patches series)
snapshot() {
	local dirs=("$@")
	[ $# -gt 0 ] || dirs=(patches series)
	(cd "$repo" && find "${dirs[@]}" -type f -print0 | sort -z | xargs -0 sha1sum)
}

# expect NAME STATUS PATTERN -- CMD...
expect() {
	local name=$1 want=$2 pat=$3 rc=0 out
	shift 4
	out=$("$@" 2>&1) || rc=$?
	if [ "$rc" -ne "$want" ]; then
		bad "$name" "exit $rc, wanted $want: $(tail -n 5 <<<"$out")"
	elif ! grep -qE -- "$pat" <<<"$out"; then
		bad "$name" "output lacks /$pat/: $(tail -n 5 <<<"$out")"
	else
		ok "$name"
	fi
}

expect "--edit makes the series commits" 0 "$nr commits on branch notify" -- rs --edit
got=$(git -C "$ed" rev-list --count "$base..HEAD" 2>/dev/null || echo none)
if [ "$got" = "$nr" ] && [ "$(git -C "$ed" symbolic-ref --short HEAD)" = notify ]; then
	ok "build/edit: $nr commits on $base, branch notify"
else
	bad "build/edit: $nr commits on $base, branch notify" "$got commits"
fi
expect "--edit again: nothing to do" 0 "nothing to do" -- rs --edit
before=$(snapshot)
expect "--export without an edit" 0 "patches/: unchanged" -- rs --export
if [ "$(snapshot)" = "$before" ]; then
	ok "export without an edit changes no file"
else
	bad "export without an edit changes no file" "$(cd "$repo" && git status --short | head)"
fi

# The edit: a marker in the READ hook of read_iter (patch 2, whose
# v1.33 form differs), one in notify.c (patch 1), and a new commit.
g() {
	git -C "$ed" "$@"
}
hook=$(grep -n 'scoutfs_notify_watched(sb) && ret > 0' "$ed/kmod/src/file.c" | tail -n 1 | cut -d: -f1)
sed -i "${hook}s/ret > 0)/ret > 0 \/* edit-marker-2 *\/)/" "$ed/kmod/src/file.c"
g commit -qa --fixup "HEAD~$((nr - 2))"
sed -i '1s|^|/* edit-marker-1 */\n|' "$ed/kmod/src/notify.c"
g commit -qa --fixup "HEAD~$nr"
GIT_SEQUENCE_EDITOR=true g rebase -q -i --autosquash "$base"
printf 'added\n' >"$ed/utils/notifyd/edit-marker-3"
g add utils/notifyd/edit-marker-3
g commit -qm "scoutfs: add an edit marker" -m "Because the round trip test says so."
expect "--edit refuses to drop unexported work" 1 "not in patches/" -- rs --edit

expect "--export writes the edit back" 0 "wrote series/" -- rs --export
for d in "$repo/patches" "$repo"/series/v*; do
	name=${d#"$repo"/}
	p1=$(find "$d" -name '0001-*.patch')
	p2=$(find "$d" -name '0002-*.patch')
	if grep -q '^+/\* edit-marker-1 \*/' "$p1" && grep -q 'edit-marker-2' "$p2" &&
		[ -f "$(find "$d" -name "$(printf '%04d' $((nr + 1)))-scoutfs-add-an-edit-marker.patch")" ]; then
		ok "$name: amended commits and the new one"
	else
		bad "$name: amended commits and the new one" "$(ls "$d")"
	fi
done
# v1.33's patch 2 has its own form (no el7 aio_read hook): it stays so
if [ -d "$repo/series/v1.33" ]; then
	want=$(grep -c '^+.*scoutfs_notify_emit' "$top/series/v1.33/"0002-*.patch)
	got=$(grep -c '^+.*scoutfs_notify_emit' "$repo/series/v1.33/"0002-*.patch)
	if [ "$got" = "$want" ]; then
		ok "series/v1.33 keeps its own patch 2 ($got emits)"
	else
		bad "series/v1.33 keeps its own patch 2" "$got emits, was $want"
	fi
fi
for d in "$repo/patches" "$repo"/series/v*; do
	[ -f "$d/base.txt" ] && t=$(cat "$d/base.txt") || t=$base
	tree=$work/apply-$t
	git clone -q --shared --no-checkout "$src" "$tree"
	git -C "$tree" -c advice.detachedHead=false checkout -q "$t"
	expect "the edited $t series applies to $t" 0 "applied $((nr + 1)) patches" -- "$repo/apply.sh" "$tree"
done
before=$(snapshot)
expect "--export again" 0 "patches/: unchanged" -- rs --export
if [ "$(snapshot)" = "$before" ]; then
	ok "a second export changes no file"
else
	bad "a second export changes no file" "$(cd "$repo" && git status --short | head)"
fi

# reordering commits can't be carried to the other releases
GIT_SEQUENCE_EDITOR="sed -i '1{h;d};2G'" g rebase -q -i "$base" 2>/dev/null ||
	GIT_SEQUENCE_EDITOR=true g rebase --abort
before=$(snapshot series)
expect "--export refuses reordered commits" 1 "reordered, inserted, removed" -- rs --export
if [ "$(snapshot series)" = "$before" ]; then
	ok "a refused export leaves series/ alone"
else
	bad "a refused export leaves series/ alone" "series/ changed"
fi
finish
