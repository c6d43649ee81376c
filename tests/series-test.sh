#!/usr/bin/env bash
# The series is generated from the source (scripts/series.sh): check
# that what is committed is what the source says, and that the tools
# that make it work.
#
# Without an upstream tree (always):
#   - every product file (kmod/, utils/) belongs to exactly one commit of
#     commits/ (its files list, or a "+@insert PATH" of its edits)
#   - in every committed series, each patch is its commit: the files it
#     adds are the source files byte for byte, its edits to other files
#     are the commit's edits.diff for that release (line numbers and
#     blob ids aside), its message, author and date are the commit's
#   - the same checks fail on a copy with a hand-edited .patch, with a
#     source change that was not regenerated, and with a stray file
# With SCOUTFS_SRC (an upstream git dir with release tags), on a copy of
# this repository:
#   - make series-check: a fresh generation equals every committed file,
#     and it fails, naming the file, for the same two mutations
#   - the maintainer's round trip: make series-edit, amended commits and
#     a new one, make series-export writes them back into the source and
#     commits/, every series applies to its release, a second export
#     changes nothing
#   - a release whose hunks conflict: scripts/series.sh add stops on the
#     conflict, and resolve writes the variant that generates the
#     committed series again
set -euo pipefail

top=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
[ -z "${SERIES_TEST_KEEP:-}" ] || trap 'echo "kept $work"' EXIT

# shellcheck source=tests/lib/counts.sh
. "$top/tests/lib/counts.sh"
finish() {
	echo "series: $pass passed, $fail failed"
	exit $((fail > 0))
}
export GIT_AUTHOR_NAME=t GIT_AUTHOR_EMAIL=t@t GIT_COMMITTER_NAME=t GIT_COMMITTER_EMAIL=t@t

# copy NAME: a copy of the repository as it is now (tracked and new
# files) at $work/NAME, as a git repository with one commit
copy() {
	local r=$work/$1
	mkdir -p "$r"
	(cd "$top" && git ls-files -co --exclude-standard -z | xargs -0 tar -cf - 2>/dev/null) | tar -xf - -C "$r"
	git -C "$r" init -q
	git -C "$r" add -A
	git -C "$r" commit -qm copy
	echo "$r"
}

# The commit dirs of repo $1, in order.
commit_dirs() {
	find "$1/commits" -mindepth 1 -maxdepth 1 -type d -name '[0-9][0-9][0-9][0-9]-*' | sort
}

# variant REPO CDIR FILE RELEASE: as scripts/series.sh picks it
variant() {
	local r=$1 d=$2 f=$3 rel=$4 v best=""
	for v in $(find "$d" -mindepth 1 -maxdepth 1 -type d -printf '%f\n' | sed 's/^next$/v999999 next/;t;s/.*/& &/' | sort -V | cut -d' ' -f2); do
		local k=$v
		[ "$v" = next ] && k=v999999
		local rk=$rel
		[ "$rel" = next ] && rk=v999999
		[ -e "$d/$v/$f" ] || continue
		[ "$(printf '%s\n%s\n' "$k" "$rk" | sort -V | head -n 1)" = "$k" ] && best=$d/$v/$f
	done
	[ -n "$best" ] || best=$d/$f
	[ -e "$best" ] && echo "$best"
	return 0
}

# owners REPO: "path commit" for every file a commit adds or inserts
owners() {
	local r=$1 d
	while read -r d; do
		[ ! -f "$d/files" ] || sed -e 's/#.*//' -e '/^[[:space:]]*$/d' -e "s|\$| ${d##*/}|" "$d/files"
		find "$d" -name edits.diff -exec sed -n "s|^+@insert \(.*\)|\1 ${d##*/}|p" {} + | sort -u
	done < <(commit_dirs "$r")
}

# owner_problems REPO: what breaks "every product file belongs to
# exactly one commit", a line each
owner_problems() {
	local r=$1
	owners "$r" | awk '{ n[$1]++; c[$1] = c[$1] " " $2 } END { for (f in n) if (n[f] > 1) print f " belongs to" c[f] }'
	owners "$r" | while read -r f c; do [ -f "$r/$f" ] || echo "$c names $f, which is not a file"; done
	comm -23 <(git -C "$r" ls-files -co --exclude-standard -- kmod utils | sort) \
		<(owners "$r" | cut -d' ' -f1 | sort -u) | sed 's/$/ belongs to no commit/'
}

check_owners() {
	local problems
	problems=$(owner_problems "$1")
	if [ -z "$problems" ]; then
		ok "every product file belongs to exactly one commit ($(owners "$1" | wc -l) files)"
	else
		bad "every product file belongs to exactly one commit" "$(head -n 10 <<<"$problems")"
	fi
}

# sections FILE: a diff's sections, one file each, sorted, with index
# lines dropped and hunk headers reduced to "@@"
sections() {
	awk '/^diff --git / { if (s != "") print s; s = "" }
		/^index / { next }
		/^@@ / { s = s "@@\\n"; next }
		{ s = s $0 "\\n" }
		END { if (s != "") print s }' "$1" | sort
}

# expand REPO EDITS: EDITS with its inserts expanded
expand() {
	local r=$1 line
	while IFS= read -r line || [ -n "$line" ]; do
		if [[ $line == "+@insert "* ]]; then
			sed 's/^/+/' "$r/${line#+@insert }"
		else
			printf '%s\n' "$line"
		fi
	done <"$2"
}

# message REPO CDIR RELEASE: the commit's header and message as a patch has them
message() {
	local r=$1 d=$2 rel=$3 c n
	c=$(variant "$r" "$d" commit "$rel")
	n=$(variant "$r" "$d" note "$rel")
	sed -n '1,2p' "$c"
	{
		tail -n +4 "$c"
		if [ -n "$n" ]; then echo; cat "$n"; fi
	} | git stripspace
}

# patch_message PATCH: the same from a patch
patch_message() {
	local t
	t=$(mktemp -d "$work/mi.XXXXXX")
	git mailinfo "$t/msg" "$t/patch" <"$1" >"$t/info"
	echo "Author: $(sed -n 's/^Author: //p' "$t/info") <$(sed -n 's/^Email: //p' "$t/info")>"
	echo "Date: $(date -u -d "$(sed -n 's/^Date: //p' "$t/info")" '+%Y-%m-%d %H:%M:%S +0000')"
	{
		sed -n 's/^Subject: //p' "$t/info"
		echo
		cat "$t/msg"
	} | git stripspace
}

# check_patch REPO SERIESDIR RELEASE PATCH CDIR: prints what differs
check_patch() {
	local r=$1 rel=$3 p=$4 d=$5 t f e news=()
	t=$(mktemp -d "$work/p.XXXXXX")
	mapfile -t news < <(awk '/^diff --git / { f = substr($3, 3) } /^new file mode / { print f }' "$p")
	if [ "$(printf '%s\n' "${news[@]}" | sed '/^$/d' | sort)" != "$(sed -e 's/#.*//' -e '/^[[:space:]]*$/d' "$d/files" 2>/dev/null | sort)" ]; then
		echo "${p##*/} adds other files than commits/${d##*/}/files lists"
	fi
	if [ "${#news[@]}" -gt 0 ]; then
		(cd "$t" && git apply "${news[@]/#/--include=}" "$p") || echo "${p##*/}: its new files do not extract"
		for f in "${news[@]}"; do
			cmp -s "$t/$f" "$r/$f" || echo "${p##*/}: $f is not the source file"
		done
	fi
	# the edits: every section of the patch that does not add a file
	awk '/^diff --git / { f = substr($3, 3); keep = 1 } /^new file mode / { keep = 0; drop[f] = 1 }
		/^diff --git / || keep { buf[f] = buf[f] $0 "\n" } END { for (f in buf) if (!drop[f]) printf "%s", buf[f] }' \
		<(sed -n '/^diff --git /,$p' "$p" | sed '/^-- $/,$d') >"$t/edits.patch"
	e=$(variant "$r" "$d" edits.diff "$rel")
	if [ -n "$e" ]; then expand "$r" "$e" >"$t/edits.src"; else : >"$t/edits.src"; fi
	[ "$(sections "$t/edits.patch")" = "$(sections "$t/edits.src")" ] ||
		echo "${p##*/}: its edits are not ${e#"$r"/}"
	[ "$(patch_message "$p")" = "$(message "$r" "$d" "$rel")" ] ||
		echo "${p##*/}: its message, author or date is not commits/${d##*/}'s"
}

# check_series REPO: every committed series is its commits; prints the
# problems
check_series() {
	local r=$1 dir rel i p d
	local dirs=() patches=()
	mapfile -t dirs < <(commit_dirs "$r")
	for dir in "$r/patches" "$r"/series/*; do
		[ -d "$dir" ] || continue
		if [ "$dir" = "$r/patches" ]; then rel=$(cat "$r/base.txt"); else rel=$(cat "$dir/base.txt"); fi
		mapfile -t patches < <(find "$dir" -maxdepth 1 -name '*.patch' | sort)
		if [ "${#patches[@]}" -ne "${#dirs[@]}" ]; then
			echo "${dir#"$r"/}: ${#patches[@]} patches for ${#dirs[@]} commits"
			continue
		fi
		for i in "${!patches[@]}"; do
			check_patch "$r" "$dir" "$rel" "${patches[i]}" "${dirs[i]}" | sed "s|^|${dir#"$r"/}/|"
		done
	done
}

# offline REPO NAME: the checks that need no upstream tree
offline() {
	local out
	check_owners "$1"
	out=$(check_series "$1")
	if [ -z "$out" ]; then
		ok "$2: every committed series is its commits ($(find "$1/patches" "$1/series" -name '*.patch' | wc -l) patches)"
	else
		bad "$2: every committed series is its commits" "$(head -n 10 <<<"$out")"
	fi
}

# expect ok|fails NAME PATTERN -- CMD...: CMD exits 0 (or not), saying PATTERN
expect() {
	local want=$1 name=$2 pat=$3 out rc=0 good
	shift 4
	out=$("$@" 2>&1) || rc=$?
	if [ "$want" = ok ]; then good=$((rc == 0)); else good=$((rc != 0)); fi
	if [ "$good" -eq 1 ] && grep -qE -- "$pat" <<<"$out"; then
		ok "$name"
	else
		bad "$name" "exit $rc, output: $(tail -n 4 <<<"$out")"
	fi
}
expect_ok() { expect ok "$@"; }
expect_fail() { expect fails "$@"; }

offline "$top" "this tree"

# the mutations: a hand edit, a source change left unregenerated, a stray file
hand=$(copy hand)
sed -i '0,/^+#include <string.h>$/s//+#include <string.h> \/* hand edit *\//' "$hand"/series/v1.31/0003-*.patch
# mutated COPY FILE NAME: the mutation of FILE in COPY took
mutated() {
	cmp -s "$top/$2" "$1/$2" && bad "$3: the mutation applies" "$2 is unchanged"
	return 0
}
mutated "$hand" "$(cd "$top" && echo series/v1.31/0003-*.patch)" "a hand edit"
# has_problem NAME PATTERN -- CMD...: CMD prints a line matching PATTERN
has_problem() {
	local name=$1 pat=$2 out
	shift 3
	out=$("$@" 2>&1 || true)
	if grep -qE -- "$pat" <<<"$out"; then
		ok "$name"
	else
		bad "$name" "no line matches /$pat/: $(head -n 4 <<<"$out")"
	fi
}
has_problem "a hand-edited .patch fails the check" "series/v1.31/0003-.*is not the source file" -- check_series "$hand"
unreg=$(copy unreg)
echo "/* changed, not regenerated */" >>"$unreg/utils/notifyd/scoutfs-notifyd.c"
has_problem "a source change without make series fails the check" "scoutfs-notifyd.c is not the source file" -- check_series "$unreg"
sed -i '0,/^+#include "notify.h"/s//+#include "notify.h" \/\* changed \*\//' "$unreg/commits/0002-hooks/edits.diff"
has_problem "an edits.diff change without make series fails the check" "0002-.*its edits are not commits/0002-hooks/edits.diff" -- check_series "$unreg"
stray=$(copy stray)
echo "int stray;" >"$stray/utils/notifyd/stray.c"
git -C "$stray" add utils/notifyd/stray.c
if owner_problems "$stray" | grep -q 'utils/notifyd/stray.c belongs to no commit'; then
	ok "a file of no commit fails the check"
else
	bad "a file of no commit fails the check" "it was not named"
fi

if [ -z "${SCOUTFS_SRC:-}" ]; then
	echo "SKIPPED: regeneration, make series-check and the round trip: SCOUTFS_SRC is not set"
	finish
fi
src=$("$top/scripts/upstream-git.sh" "$SCOUTFS_SRC")
# shellcheck disable=SC2317 # called below, after finish() returns
ss() {
	local r=$1
	shift
	"$r/scripts/series.sh" --src "$src" "$@"
}

expect_ok "make series-check: a fresh generation is every committed file" "is what the source generates" -- ss "$top" generate --check
expect_fail "series-check fails on a hand-edited .patch" "series/v1.31/0003-.*differs from a fresh generation" -- ss "$hand" generate --check
expect_fail "series-check fails on a source change left unregenerated" "patches/0003-.*differs from a fresh generation" -- ss "$unreg" generate --check

# snapshot REPO: checksums of what the round trip may write
snapshot() {
	(cd "$1" && find commits kmod utils patches series -type f -print0 | sort -z | xargs -0 sha1sum)
}

# --- the maintainer's round trip
rt=$(copy rt)
ed=$rt/build/edit
base=$(cat "$rt/base.txt")
nr=$(commit_dirs "$rt" | wc -l)
expect_ok "series-edit makes the series commits" "branch notify" -- ss "$rt" edit
if [ "$(git -C "$ed" rev-list --count "$base..notify")" = "$nr" ] &&
	[ "$(git -C "$ed" symbolic-ref --short HEAD)" = notify ]; then
	ok "build/edit: $nr commits on $base, branch notify"
else
	bad "build/edit: $nr commits on $base, branch notify" "$(git -C "$ed" log --oneline "$base.." | head)"
fi
before=$(snapshot "$rt")
expect_ok "series-export without an edit" "unchanged" -- ss "$rt" export
if [ "$(snapshot "$rt")" = "$before" ]; then
	ok "an export without an edit changes no file"
else
	bad "an export without an edit changes no file" "$(cd "$rt" && git status --short | head)"
fi

# the edit: notify.c (commit 1), the read_iter hook (commit 2, whose
# v1.33 variant is its own), and a new commit
g() {
	git -C "$ed" "$@"
}
sed -i '1s|^|/* edit-marker-1 */\n|' "$ed/kmod/src/notify.c"
g commit -qa --fixup "HEAD~$((nr - 1))"
sed -i 's|^\t/\* once per call, after any data waits: ki_pos has advanced by ret \*/$|& /* edit-marker-2 */|' "$ed/kmod/src/file.c"
g commit -qa --fixup "HEAD~$((nr - 1))"
GIT_SEQUENCE_EDITOR=true g rebase -q -i --autosquash "$base"
printf 'added\n' >"$ed/utils/notifyd/edit-marker-3"
g add utils/notifyd/edit-marker-3
g commit -qm "scoutfs: add an edit marker" -m "Because the round trip test says so."
expect_fail "series-edit refuses to drop unexported work" "not exported" -- ss "$rt" edit

expect_ok "series-export writes the edit back" "wrote series/v1.28" -- ss "$rt" export
if head -n 1 "$rt/kmod/src/notify.c" | grep -q edit-marker-1 &&
	grep -q 'edit-marker-2' "$rt/commits/0002-hooks/edits.diff" &&
	[ "$(cat "$rt"/commits/0005-*/files 2>/dev/null)" = utils/notifyd/edit-marker-3 ] &&
	[ -f "$rt/utils/notifyd/edit-marker-3" ]; then
	ok "the edit is in the source: notify.c, commit 2's edits.diff, a new commits/0005-*"
else
	bad "the edit is in the source" "$(cd "$rt" && git status --short | head)"
fi
for d in "$rt/patches" "$rt"/series/*; do
	name=${d#"$rt"/}
	if grep -q '^+/\* edit-marker-1 \*/' "$d"/0001-*.patch &&
		[ -f "$(find "$d" -name '0005-scoutfs-add-an-edit-marker.patch')" ]; then
		ok "$name: the amended commit 1 and the new commit"
	else
		bad "$name: the amended commit 1 and the new commit" "$(ls "$d")"
	fi
done
if grep -q edit-marker-2 "$rt"/series/v1.32/0002-*.patch && ! grep -q edit-marker-2 "$rt"/series/v1.33/0002-*.patch; then
	ok "commit 2's edit reaches the releases of its default, not v1.33's own variant"
else
	bad "commit 2's edit reaches the releases of its default, not v1.33's own variant" "$(grep -c edit-marker-2 "$rt"/series/*/0002-*.patch)"
fi
for d in "$rt/patches" "$rt"/series/*; do
	if [ "$d" = "$rt/patches" ]; then t=$base; else t=$(cat "$d/base.txt"); fi
	tree=$work/apply-$t
	git clone -q --shared --no-checkout "$src" "$tree"
	git -C "$tree" -c advice.detachedHead=false checkout -q "$(awk -v n="$t" '$1 == n { print (NF > 1 ? $2 : $1) }' "$rt/commits/releases")"
	expect_ok "the edited $t series applies to $t" "applied $((nr + 1)) patches" -- "$rt/apply.sh" "$tree"
done
before=$(snapshot "$rt")
expect_ok "series-export again" "unchanged" -- ss "$rt" export
if [ "$(snapshot "$rt")" = "$before" ]; then
	ok "a second export changes no file"
else
	bad "a second export changes no file" "$(cd "$rt" && git status --short | head)"
fi
offline "$rt" "after the round trip"

# --- a conflict: v1.33 without its variant of commit 2
cf=$(copy cf)
rm "$cf/commits/0002-hooks/v1.33/edits.diff"
expect_fail "add stops on the conflict" "conflicts.*resolve v1.33" -- ss "$cf" add v1.33
w=$cf/build/rebase/v1.33
if [ -f "$w/.git/CHERRY_PICK_HEAD" ] && grep -q '^<<<<<<<' "$w/kmod/src/file.c"; then
	ok "the conflict waits in build/rebase/v1.33 (kmod/src/file.c)"
	# the resolution: v1.33 has no el7 aio_read path, keep its side
	python3 - "$w/kmod/src/file.c" <<-'EOF'
		import re, sys
		s = open(sys.argv[1]).read()
		s = re.sub(r'<<<<<<< [^\n]*\n(.*?)=======\n.*?>>>>>>> [^\n]*\n', lambda m: m.group(1), s, flags=re.S)
		open(sys.argv[1], 'w').write(s)
	EOF
	git -C "$w" add kmod/src/file.c
	GIT_EDITOR=true git -C "$w" cherry-pick --continue >/dev/null
	expect_ok "resolve writes the variant" "wrote commits/0002-hooks/v1.33/edits.diff" -- ss "$cf" resolve v1.33
	if cmp -s "$top/commits/0002-hooks/v1.33/edits.diff" "$cf/commits/0002-hooks/v1.33/edits.diff" &&
		diff -r "$top/series/v1.33" "$cf/series/v1.33" >/dev/null; then
		ok "the resolved variant generates the committed series/v1.33"
	else
		bad "the resolved variant generates the committed series/v1.33" "$(diff -r "$top/series/v1.33" "$cf/series/v1.33" | head)"
	fi
else
	bad "the conflict waits in build/rebase/v1.33" "$(git -C "$w" status --short 2>&1 | head)"
fi
finish
