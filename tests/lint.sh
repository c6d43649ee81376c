#!/usr/bin/env bash
# Static checks that need no scoutfs tree: every shell script is clean
# under shellcheck, every patch of every series has the form upstream
# expects (subject `scoutfs: ...`, a body that says why, no whitespace
# damage, kernel indentation with tabs), and every relative link in the
# markdown pages (README.md, docs/, any other *.md outside patches/ and
# series/) leads to a file and, with `#anchor`, to a heading there.
set -euo pipefail

top=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$top"

# shellcheck source=tests/lib/counts.sh
. "$top/tests/lib/counts.sh"

if ! command -v shellcheck >/dev/null; then
	echo "installing shellcheck"
	if ! apt-get install -y -qq shellcheck >/dev/null 2>&1; then
		apt-get update -qq >/dev/null && apt-get install -y -qq shellcheck >/dev/null
	fi
fi

mapfile -t scripts < <(
	{
		git ls-files --cached --others --exclude-standard -- '*.sh' .ci/run
	} | sort -u | while read -r f; do [ -f "$f" ] && echo "$f"; done
)
for s in "${scripts[@]}"; do
	if out=$(shellcheck -x "$s" 2>&1); then
		ok "shellcheck $s"
	else
		bad "shellcheck $s" "$(echo "$out" | head -n 20)"
	fi
done

if [[ $(cat base.txt) =~ ^v[0-9]+\.[0-9]+$ ]]; then
	ok "base.txt names a release"
else
	bad "base.txt names a release" "'$(cat base.txt)'"
fi

# One check per patch: the mail form of a single logical commit.
check_patch() {
	local p=$1 subj body_lines problems=""

	subj=$(sed -n 's/^Subject: \[PATCH[^]]*\] //p' "$p" | head -n 1)
	[[ $subj == scoutfs:\ * ]] || problems+=" subject '$subj' lacks 'scoutfs: ';"
	[ "${#subj}" -le 75 ] || problems+=" subject longer than 75;"
	# body: lines between the header's blank line and the '---' separator
	body_lines=$(awk 'hdr && /^---$/ {exit} hdr && NF {n++} /^$/ && !hdr {hdr=1} END {print n+0}' "$p")
	[ "$body_lines" -ge 3 ] || problems+=" body has $body_lines lines, wants an explanation;"
	grep -qE '^\+.*[[:space:]]$' "$p" && problems+=" trailing whitespace on added lines;"
	if grep -qE '^\+\+\+ b/kmod/' "$p" &&
		awk '/^\+\+\+ b\// {k = ($2 ~ /^b\/kmod\/.*\.[ch]$/)} k && /^\+ {8}/ {f=1} END {exit !f}' "$p"; then
		problems+=" kmod lines indented with spaces;"
	fi
	git apply --stat "$p" >/dev/null 2>&1 || problems+=" not a valid patch;"
	if [ -z "$problems" ]; then
		ok "patch form $p"
	else
		bad "patch form $p" "$problems"
	fi
}

mapfile -t series < <(find patches series -name '*.patch' 2>/dev/null | sort)
if [ "${#series[@]}" -gt 0 ]; then
	ok "series present (${#series[@]} patches)"
else
	bad "series present" "no patches found"
fi
for p in "${series[@]}"; do
	check_patch "$p"
done

# The anchors GitHub gives the headings of markdown file $1, one a line:
# the heading's text lowercased, punctuation other than '-' and '_'
# dropped, spaces turned to '-', "-1", "-2"... on repeats.  Fenced code
# blocks are skipped (a shell comment or #define there is no heading).
# Only ASCII letters are kept: use ASCII in headings that are linked to.
md_anchors() {
	awk '
		/^[ \t]*(```|~~~)/ { fence = !fence; next }
		fence || !/^#+[ \t]/ { next }
		{
			h = $0
			sub(/^#+[ \t]+/, "", h)
			sub(/[ \t]+#+[ \t]*$/, "", h)
			sub(/[ \t]+$/, "", h)
			h = tolower(h)
			gsub(/[^a-z0-9 _-]/, "", h)
			gsub(/ /, "-", h)
			n = seen[h]++
			print (n ? h "-" n : h)
		}' "$1"
}

# The links of markdown file $1 as "LINE<tab>TARGET", outside fenced code
# blocks and inline code spans.
md_links() {
	awk '
		/^[ \t]*(```|~~~)/ { fence = !fence; next }
		fence { next }
		{
			line = $0
			gsub(/`[^`]*`/, "", line)
			while (match(line, /\]\([^)[:space:]]+\)/)) {
				print FNR "\t" substr(line, RSTART + 2, RLENGTH - 3)
				line = substr(line, RSTART + RLENGTH)
			}
		}' "$1"
}

# One check per page: every relative link leads somewhere.  A broken
# link is one failure naming the page, its line and the link.
check_links() {
	local md=$1 line link path anchor target anchors broken=0 n=0
	while IFS=$'\t' read -r line link; do
		# URLs (http:, https:, mailto:, ...) are not checked
		[[ $link =~ ^[A-Za-z][A-Za-z0-9+.-]*: ]] && continue
		n=$((n + 1))
		path=${link%%#*}
		anchor=
		[[ $link == *'#'* ]] && anchor=${link#*#}
		if [ -z "$path" ]; then
			target=$md
		elif [[ $md == */* ]]; then
			target=${md%/*}/$path
		else
			target=$path
		fi
		if [ ! -e "$target" ]; then
			bad "link $md:$line ($link)" "$target does not exist"
			broken=$((broken + 1))
		elif [ -n "$anchor" ] && [[ $target != *.md ]]; then
			bad "link $md:$line ($link)" "#$anchor on a file that is not markdown"
			broken=$((broken + 1))
		elif [ -n "$anchor" ]; then
			anchors=$(md_anchors "$target")
			if ! grep -qxF -- "$anchor" <<<"$anchors"; then
				bad "link $md:$line ($link)" "no heading in $target has the anchor #$anchor"
				broken=$((broken + 1))
			fi
		fi
	done < <(md_links "$md")
	[ "$broken" -eq 0 ] && ok "links in $md ($n relative)"
	return 0
}

mapfile -t pages < <(
	{
		echo README.md
		git ls-files --cached --others --exclude-standard -- 'docs/*.md' '*.md'
	} | grep -vE '^(patches|series|build)/' | sort -u | while read -r f; do [ -f "$f" ] && echo "$f"; done
)
for md in "${pages[@]}"; do
	check_links "$md"
done

echo "lint: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
