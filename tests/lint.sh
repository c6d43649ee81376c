#!/usr/bin/env bash
# Static checks that need no scoutfs tree: every shell script is clean
# under shellcheck, and every patch of every series has the form upstream
# expects (subject `scoutfs: ...`, a body that says why, no whitespace
# damage, kernel indentation with tabs).
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

echo "lint: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
