#!/usr/bin/env bash
# The notify ABI must be identical on every release we ship a series
# for.  For every series (patches/ and series/*/) this applies it with
# `git am` to a fresh clone of the release its base.txt names, and checks:
#
#   - base.txt: series/X/base.txt says X, the tag exists upstream (for
#     next, the commit series/next/upstream.txt names), and every patch
#     was made on that release (each `index` pre-image blob is the file
#     the patch finds there), so the series applies without a 3-way
#     fallback
#   - the patched kmod/src/ioctl.h compiles in userspace (C11, -Wall
#     -Wextra -Werror, with ASan, UBSan and LeakSanitizer,
#     tests/lib/sanitize.sh) and tests/abi/abi-dump.c prints the ABI: the
#     SCOUTFS_IOC_READ_NOTIFY value (dir, type, nr, size), sizeof and
#     every field's offset and size of struct scoutfs_ioctl_notify_record
#     and struct scoutfs_ioctl_read_notify, and the SCOUTFS_NOTIFY_* and
#     SCOUTFS_IOC_RN_* values; the contract: 64-byte records, nr 25
#   - READ_NOTIFY's command value differs from every other SCOUTFS_IOC_*
#     command of that release's ioctl.h (all of them, found with
#     `gcc -dM -E` and evaluated in a generated program)
#   - tests/lib/ioctl-prelude.h, if present, matches the real header in
#     every struct and command it defines
#
# and across series, against patches/: the ABI output and the lines the
# series adds to ioctl.h are identical.  (That every series adds the
# same product files, byte for byte the source, is tests/series-test.sh's.)
#
# Needs SCOUTFS_SRC, an upstream scoutfs git dir with release tags.
set -euo pipefail

top=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$top"

# shellcheck source=tests/lib/counts.sh
. "$top/tests/lib/counts.sh"
# shellcheck source=tests/lib/sanitize.sh
. "$top/tests/lib/sanitize.sh"
finish() {
	# what the sanitized ABI dumps reported, if they ran
	if [ -n "${SAN_REPORT_DIR:-}" ]; then
		if [ -z "$(ls -A "$SAN_REPORT_DIR")" ]; then
			ok "no ABI dump wrote an ASan, LSan or UBSan report"
		else
			bad "no ABI dump wrote an ASan, LSan or UBSan report" "$(head -n 30 "$SAN_REPORT_DIR"/*)"
		fi
	fi
	echo "$pass passed, $fail failed"
	exit $((fail > 0))
}

if [ -z "${SCOUTFS_SRC:-}" ]; then
	echo "SKIPPED: SCOUTFS_SRC is not set (point it at an upstream scoutfs git dir with release tags)"
	finish
fi
if ! SCOUTFS_SRC=$("$top/scripts/upstream-git.sh" "$SCOUTFS_SRC" 2>&1) ||
	! git -C "$SCOUTFS_SRC" rev-parse --git-dir >/dev/null 2>&1; then
	bad "SCOUTFS_SRC" "'$SCOUTFS_SRC' is not a git dir"
	finish
fi
command -v gcc >/dev/null || {
	bad "gcc" "gcc is needed to compile the ABI dump"
	finish
}

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
if ! san_pick "$work"; then
	bad "sanitizers" "$SAN_NOTE"
	finish
fi
san_options "$work/sanitizer"
export GIT_AUTHOR_NAME=abi-test GIT_AUTHOR_EMAIL=abi-test@localhost
export GIT_COMMITTER_NAME=abi-test GIT_COMMITTER_EMAIL=abi-test@localhost
cflags=(-std=c11 -Wall -Wextra -Werror "${SAN_FLAGS[@]}")

# --- the series: "label dir tag" lines, patches/ first

base=$(cat base.txt)
series=("patches/ patches $base refs/tags/$base")
for d in series/*/; do
	d=${d%/}
	compgen -G "$d/*.patch" >/dev/null || continue
	name=${d#series/}
	if [ ! -f "$d/base.txt" ]; then
		bad "$d/ base.txt" "missing"
		continue
	fi
	tag=$(cat "$d/base.txt")
	if [ "$tag" = "$name" ]; then
		ok "$d/ base.txt names $name"
	else
		bad "$d/ base.txt names $name" "it says '$tag'"
	fi
	if [ "$tag" = "$base" ]; then
		bad "$d/" "base.txt already maps $base to patches/, apply.sh never uses $d/"
	fi
	ref=refs/tags/$tag
	[ ! -f "$d/upstream.txt" ] || ref=$(cat "$d/upstream.txt")
	series+=("$d/ $d $tag $ref")
done

# Check that the pre-images of patch $2 are the files it finds in tree
# $1 (release $3).  Prints the mismatches.
preimage_mismatch() {
	local tree=$1 p=$2 tag=$3 path pre have
	awk '/^diff --git / {path = substr($3, 3)} /^index [0-9a-f]+\.\.[0-9a-f]+/ {split($2, v, /\.\./); print path, v[1]}' "$p" |
		while read -r path pre; do
			[[ $pre =~ ^0+$ ]] && continue
			have=$(git -C "$tree" rev-parse -q --verify "HEAD:$path" || echo missing)
			[[ $have == "$pre"* ]] ||
				echo " $(basename "$p"): $path was ${pre} when the patch was made, $tag (+ the patches before) has ${have:0:${#pre}};"
		done
}

# The members of struct $2 in the preprocessed header $1, one
# "FIELD name" line each ("FLEX name" for a flexible array member).
struct_fields() {
	awk -v s="$2" '
		!f && $0 ~ "^[ \t]*struct[ \t]+" s "[ \t]*\\{" { f = 1; next }
		f && /^[ \t]*\}/ { exit }
		f && match($0, /[A-Za-z_][A-Za-z0-9_]*[ \t]*(\[[^]]*\])?[ \t]*;/) {
			m = substr($0, RSTART, RLENGTH); flex = (m ~ /\[[ \t]*\]/)
			sub(/[ \t]*(\[.*)?;$/, "", m); print (flex ? "FLEX" : "FIELD"), m
		}' "$1"
}

# Write abi-list.inc in dir $1 for header dir $2: sections "abi" (the
# notify ABI) and "cmd" (every SCOUTFS_IOC_* command), or with $3 =
# prelude, the structs and commands that file $3 defines.
gen_list() {
	local out=$1 hdir=$2 prelude=${3:-} pp=$1/pp.h macros=$1/macros s
	local is_cmd='s/^#define[ \t]+(SCOUTFS_IOC_[A-Z0-9_]+)[ \t].*\b_IO(R|W|WR)?[ \t]*\(.*/CMD(\1)/p'
	local is_const='s/^#define[ \t]+(SCOUTFS_NOTIFY_[A-Z0-9_]+|SCOUTFS_IOC_RN_[A-Z0-9_]+)([ \t].*)?$/CONST(\1)/p'
	printf '#include "abi-prelude.h"\n#include "ioctl.h"\n' >"$out/wrap.c"
	gcc -E -P -I "$top/tests/abi" -I "$hdir" "$out/wrap.c" >"$pp" || return 1
	gcc -E -dM -I "$top/tests/abi" -I "$hdir" "$out/wrap.c" >"$macros" || return 1
	{
		if [ -n "$prelude" ]; then
			echo '#define ABI_TAG "prelude"'
			gcc -E -P -I "$top/tests/abi" -include abi-prelude.h "$prelude" |
				sed -nE 's/^[ \t]*struct[ \t]+([A-Za-z_0-9]+)[ \t]*\{.*/\1/p' |
				while read -r s; do
					echo "STRUCT($s)"
					struct_fields "$pp" "$s" | sed -E "s/^([A-Z]+) (.*)/\1($s, \2)/"
				done
			gcc -E -dM -I "$top/tests/abi" -include abi-prelude.h "$prelude" | sed -nE "$is_cmd" | sort
			return 0
		fi
		echo '#define ABI_TAG "abi"'
		for s in scoutfs_ioctl_notify_record scoutfs_ioctl_read_notify; do
			echo "STRUCT($s)"
			struct_fields "$pp" "$s" | sed -E "s/^([A-Z]+) (.*)/\1($s, \2)/"
		done
		echo "CMD(SCOUTFS_IOC_READ_NOTIFY)"
		echo "CONST(SCOUTFS_IOCTL_MAGIC)"
		sed -nE "$is_const" "$macros" | sort
		echo '#undef ABI_TAG'
		echo '#define ABI_TAG "cmd"'
		sed -nE "$is_cmd" "$macros" | sort
	} >"$out/abi-list.inc"
}

# Compile and run abi-dump.c in dir $1 against the ioctl.h in dir $2.
run_dump() {
	"$SAN_CC" "${cflags[@]}" -I "$1" -I "$top/tests/abi" -I "$2" -o "$1/abi-dump" "$top/tests/abi/abi-dump.c" &&
		"$1/abi-dump"
}

# --- each series on its own

labels=()
for entry in "${series[@]}"; do
	read -r label dir tag ref <<<"$entry"
	id=${dir//\//_}
	tree=$work/$id
	git clone -q --shared --no-checkout "$SCOUTFS_SRC" "$tree"
	if ! git -C "$tree" rev-parse -q --verify "$ref^{commit}" >/dev/null; then
		bad "$label applies to $tag" "no $ref in $SCOUTFS_SRC"
		continue
	fi
	git -C "$tree" -c advice.detachedHead=false checkout -q --detach "$ref^{commit}"
	mapfile -t patches < <(find "$dir" -maxdepth 1 -name '*.patch' | sort)
	problems=""
	for p in "${patches[@]}"; do
		problems+=$(preimage_mismatch "$tree" "$p" "$tag")
		if ! out=$(git -C "$tree" am -q "$top/$p" 2>&1); then
			problems+=" $(basename "$p") does not apply: $(grep -m1 -E 'error|failed' <<<"$out")"
			git -C "$tree" am --abort >/dev/null 2>&1 || true
			break
		fi
	done
	if [ -n "$problems" ]; then
		bad "$label applies to $tag (made on it)" "$problems"
		continue
	fi
	ok "$label applies to $tag (made on it: every pre-image matches, no 3-way)"

	# the ABI dump
	if ! gen_list "$tree" "$tree/kmod/src" 2>"$tree/dump.err" ||
		! run_dump "$tree" "$tree/kmod/src" >"$tree/dump" 2>>"$tree/dump.err"; then
		bad "$label ABI dump builds" "$(head -n 20 "$tree/dump.err")"
		continue
	fi
	ok "$label ABI dump builds against its ioctl.h (C11, -Wall -Wextra -Werror)"
	grep '^abi ' "$tree/dump" >"$work/abi.$id" || true
	labels+=("$label $id $tag")

	# the contract
	rec=$(sed -n 's/^abi struct scoutfs_ioctl_notify_record size \([0-9]*\) .*/\1/p' "$tree/dump")
	cmd=$(grep '^abi SCOUTFS_IOC_READ_NOTIFY ' "$tree/dump" || true)
	if [ "$rec" = 64 ] && [[ $cmd == *" type 0xe8 nr 25 "* ]]; then
		ok "$label records are 64 bytes, READ_NOTIFY is nr 25 on 0xE8"
	else
		bad "$label contract" "record size '$rec', command '$cmd'"
	fi

	# READ_NOTIFY against every other command
	val=$(awk '$1 == "abi" && $2 == "SCOUTFS_IOC_READ_NOTIFY" {print $3}' "$tree/dump")
	ncmd=$(grep -c '^cmd ' "$tree/dump" || true)
	clash=$(awk -v v="$val" '$1 == "cmd" && $2 != "SCOUTFS_IOC_READ_NOTIFY" && $3 == v {print $2}' "$tree/dump")
	same_nr=$(awk '$1 == "cmd" && $2 != "SCOUTFS_IOC_READ_NOTIFY" && $9 == 25 {printf " %s=%s", $2, $3}' "$tree/dump")
	if ! grep -q '^cmd SCOUTFS_IOC_READ_NOTIFY ' "$tree/dump"; then
		bad "$label READ_NOTIFY is unique" "the command enumeration did not find SCOUTFS_IOC_READ_NOTIFY"
	elif [ "$ncmd" -lt 10 ]; then
		bad "$label READ_NOTIFY is unique" "only $ncmd commands found in ioctl.h"
	elif [ -n "$clash" ]; then
		bad "$label READ_NOTIFY is unique" "$val is also $(tr '\n' ' ' <<<"$clash")"
	else
		ok "$label READ_NOTIFY $val differs from the other $((ncmd - 1)) SCOUTFS_IOC_* commands${same_nr:+ (nr 25 also:$same_nr)}"
	fi

	# the daemon tier's stand-in for upstream's header
	if [ -f tests/lib/ioctl-prelude.h ]; then
		mkdir -p "$tree/prelude/hdr"
		cp tests/lib/ioctl-prelude.h "$tree/prelude/hdr/ioctl.h"
		echo "#endif" >>"$tree/prelude/hdr/ioctl.h"
		if ! gen_list "$tree/prelude" "$tree/kmod/src" "$tree/prelude/hdr/ioctl.h" 2>"$tree/prelude.err" ||
			! run_dump "$tree/prelude" "$tree/prelude/hdr" >"$tree/prelude.fake" 2>>"$tree/prelude.err" ||
			! run_dump "$tree/prelude" "$tree/kmod/src" >"$tree/prelude.real" 2>>"$tree/prelude.err"; then
			bad "$label tests/lib/ioctl-prelude.h" "$(head -n 20 "$tree/prelude.err")"
		elif d=$(diff "$tree/prelude.real" "$tree/prelude.fake"); then
			ok "$label tests/lib/ioctl-prelude.h matches ioctl.h ($(wc -l <"$tree/prelude.real") lines)"
		else
			bad "$label tests/lib/ioctl-prelude.h matches ioctl.h" "$d"
		fi
	fi

	# what the series adds, for the comparison below
	git -C "$tree" diff -U0 "$ref" HEAD -- kmod/src/ioctl.h |
		grep -E '^[-+]' | grep -vE '^(\+\+\+|---) ' >"$work/ioctl.$id" || true
done

# --- across series, against the first (patches/ when it applied)

if [ "${#labels[@]}" -lt 2 ]; then
	bad "ABI identical across series" "fewer than two series could be checked"
	finish
fi
read -r rlabel rid rtag <<<"${labels[0]}"
echo "reference: $rlabel ($rtag)"
sed 's/^abi /  /' "$work/abi.$rid"
for entry in "${labels[@]:1}"; do
	read -r label id tag <<<"$entry"
	if d=$(diff "$work/abi.$rid" "$work/abi.$id"); then
		ok "$label ($tag) ABI identical to $rlabel"
	else
		bad "$label ($tag) ABI identical to $rlabel" "$d"
	fi
	if d=$(diff "$work/ioctl.$rid" "$work/ioctl.$id"); then
		ok "$label ($tag) adds the same lines to ioctl.h as $rlabel"
	else
		bad "$label ($tag) adds the same lines to ioctl.h as $rlabel" "$(head -n 30 <<<"$d")"
	fi
done

finish
