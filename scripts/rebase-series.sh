#!/usr/bin/env bash
# Rebase the scoutfs-notify series onto an upstream scoutfs release.
#
#   scripts/rebase-series.sh [--src DIR] [--from DIR] [--current] [--force] TAG
#   scripts/rebase-series.sh --finish [--force] TAG
#   scripts/rebase-series.sh [--src DIR] --all
#   scripts/rebase-series.sh [--src DIR] [--from DIR] --dry-run REF
#   scripts/rebase-series.sh [--src DIR] --edit [--force]     (make series-edit)
#   scripts/rebase-series.sh [--src DIR] --export             (make series-export)
#
# Editing the series (never edit a .patch by hand): --edit makes
# build/edit, a clone of upstream at base.txt's release with patches/
# applied as commits on branch `notify`.  Change them there as commits
# (git commit --amend, --fixup, git rebase -i TAG, new commits on top);
# --export then writes patches/ from those commits and regenerates every
# series/*/ from it, as --all does.  --edit refuses to replace a
# build/edit whose commits are not in patches/ yet, unless --force.
#
# TAG is an upstream release tag, e.g. v1.34.  The series is applied with
# `git am --3way` to a fresh clone of the upstream git dir, checked out at
# TAG, under build/rebase/TAG.  On success series/TAG/ gets the
# `git format-patch` output and a base.txt naming TAG.
#
# Options:
#   --src DIR     upstream scoutfs git dir with release tags (default: $SCOUTFS_SRC)
#   --from DIR    series to apply (a directory of *.patch); default: the newest
#                 series of patches/ and series/*/ whose release is not newer
#                 than TAG (TAG's own series excepted), or the oldest series
#                 for a release older than all of them
#   --current     make TAG the current base: write patches/ and base.txt instead
#                 of series/TAG/; the old base's series moves to series/OLD/ so
#                 that it stays supported, and series/TAG/ is removed
#   --force       overwrite a series that exists and differs (only the
#                 `From <sha>` lines don't count as a difference)
#   --finish TAG  after a conflict: once `git am --continue` has gone through in
#                 build/rebase/TAG, write the series (and remember the resolution)
#   --all         regenerate every series/*/ from patches/ (the source of truth),
#                 e.g. after a kernel fix in patches/; writes nothing unless
#                 every release applies, and overwrites what changed
#   --dry-run     apply to REF (any tag, branch or commit) and write nothing
#   --edit        build/edit: the base release with patches/ as commits
#   --export      patches/ from build/edit's commits, then every series/ (--all)
#   --rr-cache D  conflict resolutions to reuse (default: build/rr-cache, or
#                 $SCOUTFS_NOTIFY_RR_CACHE; kept out of git because rerere
#                 stores whole upstream files)
#   -h, --help    this text
#
# Conflicts: git rerere is on in the work clone, with its cache copied from
# and back to build/rr-cache/, so a conflict resolved once (e.g. v1.33's
# file.c, which lost the el7 aio_read path) resolves itself the next time;
# the script then continues `git am` by itself.  A new conflict stops with
# the work dir and the next steps: fix the files, `git add` them, `git am
# --continue` there, then `scripts/rebase-series.sh --finish TAG`.  To
# reword a commit for that release, `git commit --amend` (or `git rebase -i
# TAG`) in the work dir before --finish.
#
# Release notes in commit bodies: a body paragraph that starts with a release
# tag ("v1.33 has no el7 aio_read path ...") is specific to the series it is
# in.  When a series is regenerated (--all, --force, --finish) such
# paragraphs of the series being replaced are kept, so they survive a
# regeneration from patches/.
#
# Commits are rewritten with the author as committer and the author date as
# commit date, so the same patches on the same release give byte-identical
# files.
set -euo pipefail

top=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
me=scripts/rebase-series.sh

die() {
	echo "rebase-series.sh: $*" >&2
	exit 1
}

note() {
	echo "rebase-series.sh: $*"
}

usage() {
	sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//p}' "${BASH_SOURCE[0]}"
}

# ver_le A B: release A is not newer than release B
ver_le() {
	[ "$(printf '%s\n%s\n' "$1" "$2" | sort -V | head -n 1)" = "$1" ]
}

# Each series/X/ must hold a base.txt that names X.
check_series_dirs() {
	local d
	[ -f "$top/base.txt" ] || die "no base.txt in $top"
	for d in "$top"/series/v*/; do
		[ -d "$d" ] || continue
		d=${d%/}
		[ -f "$d/base.txt" ] || die "$d has no base.txt"
		[ "$(cat "$d/base.txt")" = "${d##*/}" ] ||
			die "$d/base.txt says '$(cat "$d/base.txt")', not '${d##*/}'"
	done
}

# Every series we have, as "tag dir" lines, oldest first.
list_series() {
	local d lines=()
	lines+=("$(cat "$top/base.txt") $top/patches")
	for d in "$top"/series/v*/; do
		[ -d "$d" ] || continue
		d=${d%/}
		lines+=("${d##*/} $d")
	done
	printf '%s\n' "${lines[@]}" | sort -V -k1,1
}

# The newest series not newer than $1, other than $1's own; for a release
# older than every series, the oldest series.
pick_source() {
	local want=$1 tag dir best="" oldest=""
	while read -r tag dir; do
		[ "$tag" != "$want" ] || continue
		[ -n "$oldest" ] || oldest=$dir
		if ver_le "$tag" "$want"; then
			best=$dir
		fi
	done < <(list_series)
	best=${best:-$oldest}
	[ -n "$best" ] || return 1
	echo "$best"
}

# The release of series dir $1, "?" when it doesn't say.
series_tag() {
	if [ -f "$1/base.txt" ]; then
		cat "$1/base.txt"
	elif [ "$1" = "$top/patches" ]; then
		cat "$top/base.txt"
	else
		echo "?"
	fi
}

# The patch files of series dir $1, in order.
series_patches() {
	find "$1" -maxdepth 1 -name '*.patch' | sort
}

git_w() {
	git -C "$work" "$@"
}

am_in_progress() {
	[ -d "$work/.git/rebase-apply" ]
}

# The destination directory of a mode ("series", "current" or "dry-run").
dest_of() {
	case "$1" in
	series) echo "$top/series/$2" ;;
	current) echo "$top/patches" ;;
	*) echo "" ;;
	esac
}

save_state() {
	printf 'mode=%s\nref=%s\nsource=%s\n' "$1" "$2" "$3" >"$work/.git/rebase-series.state"
}

state_get() {
	sed -n "s/^$1=//p" "$work/.git/rebase-series.state"
}

# Copy the kept resolutions into the work clone's rr-cache.
rr_load() {
	local rr
	rr=$work/.git/rr-cache
	mkdir -p "$rr"
	if [ -d "$rr_cache" ]; then
		cp -R "$rr_cache/." "$rr/"
	fi
}

# Copy the work clone's recorded resolutions (those with a postimage) back.
rr_save() {
	local rr d id f n=0
	rr=$work/.git/rr-cache
	[ -d "$rr" ] || return 0
	for d in "$rr"/*/; do
		[ -d "$d" ] || continue
		d=${d%/}
		id=${d##*/}
		compgen -G "$d/postimage*" >/dev/null || continue
		mkdir -p "$rr_cache/$id"
		for f in "$d"/preimage* "$d"/postimage*; do
			[ -f "$f" ] || continue
			if ! cmp -s "$f" "$rr_cache/$id/${f##*/}"; then
				cp "$f" "$rr_cache/$id/"
				n=$((n + 1))
			fi
		done
	done
	[ "$n" -eq 0 ] || note "kept $n new conflict resolution file(s) in ${rr_cache#"$top"/}/"
}

# Fresh clone of $src in $work at $ref, rerere on, kept resolutions loaded.
make_work() {
	local ref=$1
	if [ -d "$work" ]; then
		if [ -d "$work/.git/rebase-apply" ]; then
			die "$work has a git am in progress: finish it (git am --continue, then $me --finish $ref) or remove $work to start over"
		fi
		rm -rf "$work"
	fi
	mkdir -p "$(dirname "$work")"
	git clone -q --shared --no-checkout "$src" "$work" ||
		die "cannot clone '$src' (--src or SCOUTFS_SRC must be a scoutfs git dir)"
	git_w rev-parse -q --verify "$ref^{commit}" >/dev/null ||
		die "'$ref' is not a tag or commit in '$src'"
	git_w -c advice.detachedHead=false checkout -q --detach "$ref"
	git_w config rerere.enabled true
	git_w config rerere.autoupdate true
	git_w config gc.auto 0
	# git am --continue wants an identity; the commits are rewritten later
	git_w config user.name "scoutfs-notify rebase-series.sh"
	git_w config user.email "rebase-series@localhost"
	rr_load
}

# Run or continue `git am`; continue by itself while rerere resolved every
# conflict.  Returns 1 when a person is needed.
drive_am() {
	local out rc next last=""
	out=$(git_w am --3way "$@" 2>&1) && return 0
	while am_in_progress; do
		next=$(cat "$work/.git/rebase-apply/next")
		if [ -n "$(git_w ls-files -u)" ] || [ "$next" = "$last" ]; then
			grep -vE '^(hint:|When you have|If you prefer|To restore)' <<<"$out" >&2 || true
			return 1
		fi
		if grep -q 'using previous resolution' <<<"$out"; then
			note "$(basename "$work"): patch $next: conflict resolved from ${rr_cache#"$top"/}/ (a replayed resolution: build the result)"
		fi
		last=$next
		rc=0
		out=$(git_w am --continue 2>&1) || rc=$?
		[ "$rc" -ne 0 ] || return 0
	done
	return 0
}

stuck() {
	local ref=$1 extra=${2:-}
	cat >&2 <<EOF

rebase-series.sh: the series does not apply cleanly to $ref; resolve it by hand:
  cd ${work}
  git status                     # the conflicted files
  # edit them, then: git add <files>
  git am --continue              # repeat until every patch is applied
  # optional: git commit --amend, to add a "$ref ..." paragraph for this release
  $me --finish $ref${extra}
The resolution is kept in ${rr_cache#"$top"/}/ by --finish and reused from then on.
EOF
	exit 1
}

# split_paragraphs FILE: fill the array "paras" with FILE's paragraphs
# (runs of non-empty lines).
split_paragraphs() {
	local line cur=""
	paras=()
	while IFS= read -r line || [ -n "$line" ]; do
		if [ -z "$line" ]; then
			[ -z "$cur" ] || paras+=("$cur")
			cur=""
		elif [ -z "$cur" ]; then
			cur=$line
		else
			cur+=$'\n'$line
		fi
	done <"$1"
	[ -z "$cur" ] || paras+=("$cur")
}

# merge_paragraphs MSG EXTRA: MSG with the paragraphs of EXTRA that it
# lacks added at the end of its body (before a closing trailer block).
merge_paragraphs() {
	local msg=$1 extra=$2 p q have add=() body=() i n trailers=false
	split_paragraphs "$extra"
	for p in "${paras[@]}"; do
		have=false
		split_paragraphs "$msg"
		for q in "${paras[@]}"; do
			[ "$p" != "$q" ] || have=true
		done
		$have || add+=("$p")
	done
	if [ "${#add[@]}" -eq 0 ]; then
		cat "$msg"
		return 0
	fi
	split_paragraphs "$msg"
	body=("${paras[@]}")
	n=${#body[@]}
	if [ "$n" -gt 2 ] && ! grep -qvE '^[A-Za-z0-9-]+: ' <<<"${body[n - 1]}"; then
		trailers=true
	fi
	for i in "${!body[@]}"; do
		if $trailers && [ "$i" -eq $((n - 1)) ]; then
			printf '%s\n\n' "${add[@]}"
			add=()
		fi
		printf '%s\n' "${body[i]}"
		[ "$i" -eq $((n - 1)) ] || echo
	done
	if [ "${#add[@]}" -gt 0 ]; then
		printf '\n%s' "${add[0]}"
		for p in "${add[@]:1}"; do
			printf '\n\n%s' "$p"
		done
		echo
	fi
}

# The release-note paragraphs (starting with a release tag) of the commit
# whose subject is $2 in series dir $1, separated by empty lines.
release_paragraphs() {
	local dir=$1 subj=$2 p tmp got
	[ -d "$dir" ] || return 0
	tmp=$(mktemp -d)
	while read -r p; do
		got=$(git mailinfo "$tmp/msg" "$tmp/patch" <"$p" | sed -n 's/^Subject: //p')
		[ "$got" = "$subj" ] || continue
		awk 'BEGIN { RS = ""; ORS = "\n\n" } /^v[0-9]+\.[0-9]+[ ,.:;)]/ { print }' "$tmp/msg"
		break
	done < <(series_patches "$dir")
	rm -rf "$tmp"
}

# Rewrite $ref..HEAD: same trees, author as committer, release-note
# paragraphs of the old series $2 kept.
rewrite_commits() {
	local ref=$1 old=$2 parent c subj tmp
	tmp=$(mktemp -d)
	parent=$(git_w rev-parse "$ref^{commit}")
	while read -r c; do
		subj=$(git_w log -1 --format=%s "$c")
		git_w log -1 --format=%B "$c" | git stripspace >"$tmp/msg"
		release_paragraphs "$old" "$subj" >"$tmp/extra"
		merge_paragraphs "$tmp/msg" "$tmp/extra" | git stripspace >"$tmp/new"
		parent=$(
			GIT_AUTHOR_NAME=$(git_w log -1 --format=%an "$c") \
				GIT_AUTHOR_EMAIL=$(git_w log -1 --format=%ae "$c") \
				GIT_AUTHOR_DATE=$(git_w log -1 --date=raw --format=%ad "$c") \
				GIT_COMMITTER_NAME=$(git_w log -1 --format=%an "$c") \
				GIT_COMMITTER_EMAIL=$(git_w log -1 --format=%ae "$c") \
				GIT_COMMITTER_DATE=$(git_w log -1 --date=raw --format=%ad "$c") \
				git -C "$work" commit-tree -p "$parent" -F "$tmp/new" "$c^{tree}"
		)
	done < <(git_w rev-list --reverse "$ref..HEAD")
	git_w reset -q --hard "$parent"
	rm -rf "$tmp"
}

# Files that look like build output should never be in a series.
check_artifacts() {
	local ref=$1 bad
	bad=$(git_w diff --name-only --diff-filter=A "$ref" HEAD |
		grep -E '\.(o|ko|mod|mod\.c|cmd|order|symvers|a)$|\.tmp_versions/' || true)
	if [ -n "$bad" ]; then
		echo "rebase-series.sh: WARNING: the series adds build output: $(tr '\n' ' ' <<<"$bad")" >&2
		echo "rebase-series.sh: WARNING: remove it from patches/ (and add it to kmod's .gitignore)" >&2
	fi
}

# Strip what changes without changing the series: the commit ids.
masked() {
	sed -E 's/^From [0-9a-f]{40} Mon Sep 17 00:00:00 2001$/From <commit>/' "$@"
}

# same_series A B: the two series dirs hold the same patches and base.txt
same_series() {
	local a=$1 b=$2 f
	[ -d "$a" ] && [ -d "$b" ] || return 1
	[ "$(cd "$a" && find . -maxdepth 1 -type f -name '*.patch' | sort)" = \
		"$(cd "$b" && find . -maxdepth 1 -type f -name '*.patch' | sort)" ] || return 1
	for f in "$a"/*.patch; do
		[ -f "$f" ] || continue
		cmp -s <(masked "$f") <(masked "$b/${f##*/}") || return 1
	done
	[ ! -f "$a/base.txt" ] || [ ! -f "$b/base.txt" ] || cmp -s "$a/base.txt" "$b/base.txt"
}

# Format $ref..HEAD of the work clone into out_dir=$work/.git/out (patches
# + base.txt).
format_out() {
	local ref=$1 out
	out=$work/.git/out
	out_dir=$out
	rm -rf "$out"
	mkdir -p "$out"
	git -C "$work" -c diff.noprefix=false -c diff.mnemonicPrefix=false -c diff.relative=false \
		-c format.coverLetter=false -c format.signature= -c format.numbered=auto \
		format-patch -q --no-signature -o "$out" "$ref..HEAD" >/dev/null
	echo "$ref" >"$out/base.txt"
}

# Put series $1 (patches + base.txt) in place at $2; base.txt goes to $3.
install_series() {
	local from=$1 to=$2 base_file=$3
	mkdir -p "$to"
	find "$to" -maxdepth 1 -name '*.patch' -delete
	cp "$from"/*.patch "$to/"
	cp "$from/base.txt" "$base_file"
}

# Compare, refuse or write.  $1 tag, $2 mode, $3 out dir, $4 overwrite ok.
deliver() {
	local tag=$1 mode=$2 out=$3 overwrite=$4 dest old cur tmp
	dest=$(dest_of "$mode" "$tag")
	if [ "$mode" = current ]; then
		cur=$(mktemp -d)
		cp "$top"/patches/*.patch "$cur/" 2>/dev/null || true
		cp "$top/base.txt" "$cur/base.txt"
		old=$(cat "$top/base.txt")
		if same_series "$out" "$cur"; then
			note "patches/ for $tag: unchanged"
			rm -rf "$cur"
			return 0
		fi
		if [ "$old" = "$tag" ] && ! $overwrite; then
			rm -rf "$cur"
			die "patches/ differs from the new $tag series (see ${out}); use --force to overwrite"
		fi
		if [ "$old" != "$tag" ]; then
			if [ -d "$top/series/$old" ] && ! same_series "$cur" "$top/series/$old" && ! $overwrite; then
				rm -rf "$cur"
				die "series/$old/ exists and differs from patches/; use --force to replace it with patches/"
			fi
			tmp=$top/series/$old
			mkdir -p "$tmp"
			install_series "$cur" "$tmp" "$tmp/base.txt"
			note "the $old series moved from patches/ to series/$old/"
			if [ -d "$top/series/$tag" ]; then
				rm -rf "${top:?}/series/$tag"
				note "removed series/$tag/: patches/ is the $tag series now"
			fi
		fi
		rm -rf "$cur"
		install_series "$out" "$top/patches" "$top/base.txt"
		note "wrote patches/ and base.txt ($tag)"
		return 0
	fi
	if [ -d "$dest" ] && same_series "$out" "$dest"; then
		if diff -r -x rr-cache "$out" "$dest" >/dev/null; then
			note "series/$tag: unchanged"
		else
			install_series "$out" "$dest" "$dest/base.txt"
			note "series/$tag: unchanged but for the commit ids, which were refreshed"
		fi
		return 0
	fi
	if [ -d "$dest" ] && ! $overwrite; then
		diff -u <(masked "$dest"/*.patch) <(masked "$out"/*.patch) | head -n 40 >&2 || true
		die "series/$tag/ exists and differs (new version in ${out}); use --force to overwrite"
	fi
	install_series "$out" "$dest" "$dest/base.txt"
	note "wrote series/$tag/ ($(find "$dest" -name '*.patch' | wc -l) patches)"
}

# After git am is done in $work: rewrite, format (to $out_dir), check.
finish_work() {
	local ref=$1 mode=$2 old
	am_in_progress && die "git am is still in progress in $work: resolve, git am --continue, then run this again"
	git_w merge-base --is-ancestor "$ref" HEAD || die "HEAD of $work does not descend from $ref"
	[ "$(git_w rev-list --count "$ref..HEAD")" -gt 0 ] || die "no commits on top of $ref in $work"
	[ -z "$(git_w status --porcelain --untracked-files=no)" ] ||
		die "$work has uncommitted changes to tracked files"
	old=$(dest_of "$mode" "$ref")
	rewrite_commits "$ref" "${old:-/nonexistent}"
	check_artifacts "$ref"
	rr_save
	format_out "$ref"
}

# --- arguments

src=${SCOUTFS_SRC:-}
from=""
mode=series
force=false
finish=false
all=false
rr_cache=${SCOUTFS_NOTIFY_RR_CACHE:-$top/build/rr-cache}
edit_dir=$top/build/edit
tag=""
while [ $# -gt 0 ]; do
	case "$1" in
	-h | --help)
		usage
		exit 0
		;;
	--src | --from | --rr-cache)
		[ $# -ge 2 ] || die "$1 needs a directory"
		case "$1" in
		--src) src=$2 ;;
		--from) from=$2 ;;
		--rr-cache) rr_cache=$2 ;;
		esac
		shift 2
		;;
	--src=*) src=${1#--src=}; shift ;;
	--from=*) from=${1#--from=}; shift ;;
	--rr-cache=*) rr_cache=${1#--rr-cache=}; shift ;;
	--current) mode=current; shift ;;
	--dry-run) mode=dry-run; shift ;;
	--force) force=true; shift ;;
	--finish) finish=true; shift ;;
	--all) all=true; shift ;;
	--edit) mode=edit; shift ;;
	--export) mode="export"; shift ;;
	-*) die "unknown option '$1' (see --help)" ;;
	*)
		[ -z "$tag" ] || die "only one release may be given"
		tag=$1
		shift
		;;
	esac
done

rr_cache=$(realpath -m "$rr_cache")
check_series_dirs
if [ -n "$from" ]; then
	[ -d "$from" ] || die "--from '$from' is not a directory"
	from=$(cd "$from" && pwd)
	[ -n "$(series_patches "$from")" ] || die "--from '$from' has no *.patch files"
fi

need_src() {
	[ -n "$src" ] || die "no upstream git dir: pass --src DIR or set SCOUTFS_SRC"
	[ -d "$src" ] || die "--src '$src' is not a directory"
	src=$("$top/scripts/upstream-git.sh" "$src") || exit 1
}

workdir_of() {
	echo "$top/build/rebase/${1//\//_}"
}

# --- --finish TAG

if $finish; then
	$all && die "--finish takes one release, not --all"
	[ -n "$tag" ] || die "--finish needs the release, e.g. --finish v1.33"
	work=$(workdir_of "$tag")
	[ -d "$work/.git" ] || die "no work dir $work: start with $me $tag"
	mode=$(state_get mode)
	[ -n "$mode" ] || die "$work was not made by $me"
	case "$mode" in
	dry-run)
		finish_work "$tag" dry-run
		note "dry run: $tag applies, $(find "$out_dir" -name '*.patch' | wc -l) patches in $out_dir"
		;;
	all)
		# --all regenerates on purpose: it may overwrite
		finish_work "$tag" series
		deliver "$tag" series "$out_dir" true
		;;
	*)
		finish_work "$tag" "$mode"
		deliver "$tag" "$mode" "$out_dir" "$force"
		;;
	esac
	exit 0
fi

# --- --all

# Regenerate every series/*/ from patches/ (the work of --all).
regen_all() {
	local base line t i outs=() tags=() patches all_series
	need_src
	mapfile -t patches < <(series_patches "$top/patches")
	[ "${#patches[@]}" -gt 0 ] || die "no patches in patches/"
	base=$(cat "$top/base.txt")
	mapfile -t all_series < <(list_series)
	for line in "${all_series[@]}"; do
		t=${line%% *}
		[ "$t" != "$base" ] || continue
		work=$(workdir_of "$t")
		make_work "$t"
		save_state all "$t" "$top/patches"
		drive_am "${patches[@]}" || stuck "$t" "   # then run --all (or --export) again"
		finish_work "$t" series
		outs+=("$out_dir")
		tags+=("$t")
		note "$t: applied patches/"
	done
	[ "${#tags[@]}" -gt 0 ] || note "no series/*/ to regenerate"
	for i in "${!tags[@]}"; do
		deliver "${tags[$i]}" series "${outs[$i]}" true
	done
}

if $all; then
	[ -z "$tag" ] || die "--all takes no release"
	[ "$mode" = series ] || die "--all can't be combined with --current or --dry-run"
	[ -z "$from" ] || die "--all always applies patches/"
	regen_all
	exit 0
fi

# --- --edit and --export: the series as commits to edit, and back

# regen_delta: every series/*/ from the edit in build/edit.  Each
# release starts from its own series (which applies to it by
# definition), and gets what the edit changed: for the i-th commit, the
# difference between the i-th commit of the series as --edit made it
# (refs/notify/orig) and as it is now, applied to that release's i-th
# commit (git apply --3way).  So a release whose series differs from
# patches/ (v1.33's patch 2) keeps its own form, and no recorded
# conflict resolution is needed.  Commits appended by the edit are
# cherry-picked; commits dropped from the end are dropped.  An edit
# that reorders, inserts or removes commits in the middle stops with
# what to do instead.
regen_delta() {
	local base line t i n m dir outs=() tags=() all_series old new olds news cs subj
	local ed=$edit_dir
	base=$(cat "$top/base.txt")
	mapfile -t olds < <(git -C "$ed" rev-list --reverse "$base..refs/notify/orig")
	mapfile -t news < <(git -C "$ed" rev-list --reverse "$base..HEAD")
	n=${#olds[@]}
	m=${#news[@]}
	for ((i = 0; i < n && i < m; i++)); do
		[ "$(git -C "$ed" log -1 --format=%s "${olds[i]}")" = "$(git -C "$ed" log -1 --format=%s "${news[i]}")" ] ||
			die "commit $((i + 1)) of build/edit is '$(git -C "$ed" log -1 --format=%s "${news[i]}")', was '$(git -C "$ed" log -1 --format=%s "${olds[i]}")': the edit reordered, inserted, removed or retitled commits in the middle; export can only carry amended and appended commits to the other releases (patches/ is written; regenerate them with $me --all, or one by one with $me --force TAG)"
	done
	mapfile -t all_series < <(list_series)
	for line in "${all_series[@]}"; do
		t=${line%% *}
		dir=${line#* }
		[ "$t" != "$base" ] || continue
		work=$(workdir_of "$t")
		make_work "$t"
		save_state all "$t" "$dir"
		mapfile -t cs < <(series_patches "$dir")
		git_w am --3way "${cs[@]}" >/dev/null 2>&1 ||
			die "series/$t/ does not apply to $t itself"
		[ "$(git_w rev-list --count "$t..HEAD")" -eq "$n" ] ||
			die "series/$t/ has $(git_w rev-list --count "$t..HEAD") commits, patches/ had $n: regenerate it with $me --force $t"
		git_w fetch -q "$ed" "+refs/notify/orig:refs/edit/old" "+HEAD:refs/edit/new"
		mapfile -t cs < <(git_w rev-list --reverse "$t..HEAD")
		git_w checkout -q --detach "$t"
		for ((i = 0; i < m; i++)); do
			new=${news[i]}
			subj=$(git_w log -1 --format=%s "$new")
			if [ "$i" -lt "$n" ]; then
				old=${olds[i]}
				git_w read-tree --reset -u "${cs[i]}"
				if ! git_w diff --quiet "$old" "$new" &&
					! git_w diff --binary "$old" "$new" | git_w apply --index --3way >"$work/.git/delta.log" 2>&1; then
					cat "$work/.git/delta.log" >&2
					die "$t: the edit of '$subj' does not apply to $t's own version of it (in ${work#"$top"/}); make that release's series by hand: $me --force $t, resolve, --finish $t"
				fi
				git_w -c core.hooksPath=/dev/null commit -q --allow-empty --no-verify -C "$new"
			elif ! git_w cherry-pick --allow-empty "$new" >"$work/.git/delta.log" 2>&1; then
				cat "$work/.git/delta.log" >&2
				die "$t: the new commit '$subj' does not apply to $t (in ${work#"$top"/}); resolve it there, git cherry-pick --continue, then $me --finish $t"
			fi
		done
		finish_work "$t" series
		outs+=("$out_dir")
		tags+=("$t")
		note "$t: its series with the edit applied"
	done
	for i in "${!tags[@]}"; do
		deliver "${tags[$i]}" series "${outs[$i]}" true
	done
}


if [ "$mode" = edit ]; then
	[ -z "$tag" ] || die "--edit takes no release: it edits patches/ on base.txt's release"
	[ -z "$from" ] || die "--edit always applies patches/"
	need_src
	base=$(cat "$top/base.txt")
	work=$edit_dir
	if [ -d "$work/.git" ] && ! $force; then
		if [ -f "$work/.git/rebase-series.state" ] && [ "$(state_get mode)" = edit ] &&
			[ "$(state_get ref)" = "$base" ] && ! am_in_progress &&
			[ -z "$(git_w status --porcelain --untracked-files=no)" ]; then
			format_out "$base"
			if same_series "$out_dir" "$top/patches"; then
				note "${work#"$top"/} already holds patches/ as commits on $base: nothing to do"
				exit 0
			fi
		fi
		die "${work#"$top"/} holds work that is not in patches/ (export it with $me --export, or start over with --edit --force)"
	fi
	rm -rf "$work"
	make_work "$base"
	save_state edit "$base" "$top/patches"
	mapfile -t patches < <(series_patches "$top/patches")
	git_w am --3way "${patches[@]}" >/dev/null 2>&1 ||
		die "patches/ does not apply to $base: patches/ and base.txt disagree"
	git_w checkout -q -B notify
	git_w update-ref refs/notify/orig HEAD
	cat <<EOF
rebase-series.sh: ${work#"$top"/} is scoutfs $base with patches/ as $(git_w rev-list --count "$base..HEAD") commits on branch notify:
$(git_w log --format='  %h %s' --reverse "$base..HEAD")
Edit them there as commits (git commit --amend, --fixup, git rebase -i $base,
or new commits on top), then write patches/ and every series/ back with
  make series-export        (scripts/rebase-series.sh --export)
EOF
	exit 0
fi

if [ "$mode" = export ]; then
	[ -z "$tag" ] || die "--export takes no release"
	need_src
	base=$(cat "$top/base.txt")
	work=$edit_dir
	[ -d "$work/.git" ] || die "no ${work#"$top"/}: start with $me --edit (make series-edit)"
	[ "$(state_get mode)" = edit ] || die "${work#"$top"/} was not made by --edit"
	[ "$(state_get ref)" = "$base" ] ||
		die "${work#"$top"/} is on $(state_get ref), but base.txt says $base: start over with --edit --force"
	if [ -d "$work/.git/rebase-merge" ] || [ -d "$work/.git/rebase-apply" ]; then
		die "a git rebase or am is in progress in ${work#"$top"/}: finish it first"
	fi
	finish_work "$base" current
	if same_series "$out_dir" "$top/patches"; then
		note "patches/: unchanged"
	else
		deliver "$base" current "$out_dir" true
	fi
	regen_delta
	git -C "$edit_dir" update-ref refs/notify/orig HEAD
	exit 0
fi

# --- one release

[ -n "$tag" ] || {
	usage >&2
	exit 2
}
need_src
work=$(workdir_of "$tag")
if [ "$mode" != dry-run ]; then
	git -C "$src" rev-parse -q --verify "refs/tags/$tag" >/dev/null ||
		die "'$tag' is not a tag in '$src' (series are made for release tags; --dry-run takes any ref)"
	[[ $tag =~ ^v[0-9]+(\.[0-9]+)+$ ]] || die "'$tag' does not look like a release tag (vX.Y)"
fi
if [ -z "$from" ]; then
	if [[ $tag =~ ^v[0-9]+(\.[0-9]+)+$ ]]; then
		from=$(pick_source "$tag") ||
			die "no series to start from; name one with --from DIR"
	else
		# not a release (e.g. main): the newest series
		from=$(list_series | tail -n 1 | cut -d' ' -f2-)
	fi
fi
mapfile -t patches < <(series_patches "$from")
note "applying ${from#"$top"/}/ ($(series_tag "$from")) to $tag in ${work#"$top"/}"
make_work "$tag"
save_state "$mode" "$tag" "$from"
drive_am "${patches[@]}" || stuck "$tag" "$([ "$mode" = series ] || echo "   # (the $mode mode is remembered)")"
finish_work "$tag" "$mode"
if [ "$mode" = dry-run ]; then
	note "dry run: the series applies to $tag; $(find "$out_dir" -name '*.patch' | wc -l) patches in $out_dir"
	exit 0
fi
deliver "$tag" "$mode" "$out_dir" "$force"
