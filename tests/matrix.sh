#!/usr/bin/env bash
# The release matrix (the "matrix" tier of `make test` with SCOUTFS_SRC):
# for every release with a series (or those in $RELEASES), apply it to a
# fresh tree, build with -Werror and sparse, boot it and run the VM
# suites (scripts/vm-test.sh), and check ABI identity across all series
# (tests/abi-test.sh).  The base release's boot also runs the faults
# suite, the demo's guest side and the nats suite (MATRIX_BASE_SUITES,
# default "kernel daemon faults demo nats"), so CI covers them on one
# release (its boot bounded by MATRIX_BASE_TIMEOUT, default 1800 s, as
# it runs every suite); the others run vm-test's default suites.  With
# DEBUG_KERNEL=1 (`make test DEBUG_KERNEL=1`) every release runs on the
# debug kernel
# with vm-test's debug suites, the faults suite included
# (scripts/vm-test.sh --debug-kernel, docs/debug-kernel.md).  Prints the
# table docs/releases.md shows, writes it to build/matrix.md
# (matrix-debug.md), and ends with `matrix: N passed, N failed` (the sum
# of every test counted by the runs).
#
# Every release runs on Debian's 5.10 (next, upstream main, included).
# $MATRIX_EXTRA adds rows RELEASE@TREE@KERNEL: the RELEASE series on
# upstream's TREE, booted on KERNEL, with that kernel's test-kernel shim
# (scripts/kernel/shim-debian-KERNEL.diff, not part of the series) and
# upstream's iomap read path required (KC_USE_IOMAP_FOR_IO defined, or
# the row fails).  The default row is next@auke/rhel10@6.12: auke/rhel10
# is upstream main plus its RHEL 10 / 6.12 compat, the upstream work
# that builds on Debian's 6.12.  A row runs when its RELEASE does.
set -euo pipefail

top=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$top"
[ -n "${SCOUTFS_SRC:-}" ] || {
	echo "matrix: SKIPPED: SCOUTFS_SRC is not set"
	exit 0
}
releases=${RELEASES:-$(./apply.sh --list | tr '\n' ' ')}
base=$(cat base.txt)
logs=$top/build/matrix
table=matrix.md
if [ "${DEBUG_KERNEL:-0}" = 1 ]; then
	logs=$top/build/matrix-debug
	table=matrix-debug.md
fi
mkdir -p "$logs"

pass=0
fail=0
# add_counts LOG PATTERN RC: the counts of the closing line PATTERN
# (e.g. "vm: ") in LOG, a script's own, never one of the lines of the
# programs it ran; a missing line, a non-zero exit RC with no failure
# counted, or a run of nothing is a failure
add_counts() {
	local line p f
	line=$(grep -E "^$2[0-9]+ passed, [0-9]+ failed\$" "$1" | tail -n 1 || true)
	if [[ $line =~ ([0-9]+)\ passed,\ ([0-9]+)\ failed ]]; then
		p=${BASH_REMATCH[1]}
		f=${BASH_REMATCH[2]}
	else
		echo "FAIL: $1: no closing line '$2N passed, N failed' (exit $3)"
		p=0
		f=1
	fi
	if [ "$f" -eq 0 ] && [ "$3" -ne 0 ]; then
		echo "FAIL: $1: exit $3 with no failure counted"
		f=1
	elif [ "$p" -eq 0 ] && [ "$f" -eq 0 ]; then
		echo "FAIL: $1: ran nothing"
		f=1
	fi
	pass=$((pass + p))
	fail=$((fail + f))
}

echo "matrix: ABI identity (tests/abi-test.sh)"
rc=0
tests/abi-test.sh >"$logs/abi.log" 2>&1 || rc=$?
grep -E '^(FAIL|SKIPPED)' "$logs/abi.log" || true
add_counts "$logs/abi.log" "" "$rc"

# step LOG STEP: how a build step of scripts/vm-test.sh went
step() {
	if grep -q "^build: $2 ok" "$1"; then
		echo ok
	elif grep -q "^build: $2 FAILED" "$1"; then
		echo FAILED
	else
		echo "-"
	fi
}

# upstream_hang RELEASE LOG: the boot of a release before v1.33 met
# upstream's hang of a mount (cebe4654, fixed in v1.33: a mount whose
# server never answers can't return, the srch compaction worker stuck
# in its request), which no test of ours causes or can get past in
# that boot: tests/vm/guest.sh says so and skips the rest.  Such a
# boot is run once more, its log kept beside, and the second counts.
upstream_hang() {
	[[ $1 == v* ]] && [ "$(printf '%s\nv1.33\n' "$1" | sort -V | head -n 1)" != v1.33 ] &&
		grep -q 'mount did not return within' "$2" &&
		grep -q 'scoutfs_client_srch_get_compact' "$2"
}

base_suites=${MATRIX_BASE_SUITES:-kernel daemon faults demo nats}
extra=""
for x in ${MATRIX_EXTRA-next@auke/rhel10@6.12}; do
	[[ " $releases " != *" ${x%%@*} "* ]] || extra+=" $x"
done
rows=()
for row in $releases $extra; do
	r=${row%%@*}
	args=(--src "$SCOUTFS_SRC" --base "$r")
	label=$r
	if [[ $row == *@*@* ]]; then
		t=${row#*@}
		k=${t#*@}
		t=${t%@*}
		args+=(--tree "$t" --kernel "$k" --shim "scripts/kernel/shim-debian-$k.diff"
			--expect-define KC_USE_IOMAP_FOR_IO)
		label="$r on $t"
	fi
	if [ "$row" = "$base" ] && [ "${DEBUG_KERNEL:-0}" != 1 ]; then
		args+=(--suite "$base_suites")
	fi
	echo "matrix: $label (scripts/vm-test.sh ${args[*]:2})"
	start=$SECONDS
	r=${row//[@\/]/-}
	rc=0
	# the base release's one boot runs every suite: a bound of its own
	vmt=${VM_TIMEOUT:-}
	[ "$row" != "$base" ] || vmt=${MATRIX_BASE_TIMEOUT:-1800}
	VM_TIMEOUT=$vmt scripts/vm-test.sh "${args[@]}" >"$logs/$r.log" 2>&1 || rc=$?
	if [ "$rc" -ne 0 ] && upstream_hang "${row%%@*}" "$logs/$r.log"; then
		mv "$logs/$r.log" "$logs/$r.hung.log"
		echo "matrix: $label: upstream's mount hang before v1.33 (cebe4654) on this boot ($logs/$r.hung.log): booting it once more"
		rc=0
		VM_TIMEOUT=$vmt scripts/vm-test.sh "${args[@]}" >"$logs/$r.log" 2>&1 || rc=$?
	fi
	took=$((SECONDS - start))
	echo "matrix: $r took $took s"
	grep -E '^(FAIL|build:|vm: [0-9])|SKIPPED: ' "$logs/$r.log" || true
	add_counts "$logs/$r.log" "vm: " "$rc"
	vm=$(sed -n 's/^vm-test.sh: the guest of this run: \([0-9]*\) passed, \([0-9]*\) failed$/\1 passed, \2 failed/p' "$logs/$r.log")
	[ -n "$vm" ] || vm="did not run"
	if [ "${row%%@*}" = "$base" ]; then
		prefix="patches/ "
	else
		prefix="series/${row%%@*}/ "
	fi
	ap=$(grep -c "^PASS $prefix" "$logs/abi.log" || true)
	af=$(grep -c "^FAIL $prefix" "$logs/abi.log" || true)
	if grep -q '^SKIPPED' "$logs/abi.log"; then
		abi=SKIPPED
	elif [ "$af" -eq 0 ] && [ "$ap" -gt 0 ]; then
		abi="ok ($ap checks)"
	else
		abi="FAILED ($af of $((ap + af)))"
	fi
	l=$logs/$r.log
	suites=$(sed -n 's/^vm-run.sh: booting .*(suites: \([^;]*\);.*/\1/p' "$l" | tail -n 1)
	kv=$(sed -n 's/^vm-run.sh: booting \([^ ]*\) .*/\1/p' "$l" | tail -n 1)
	rows+=("| $label | ${kv:--} | $(step "$l" apply) | $(step "$l" kmod) | $(step "$l" sparse) | $(step "$l" utils) | $vm (${suites:-none}) | $abi | $took s |")
done

{
	echo "| release | kernel | apply | kmod -Werror | sparse | utils + daemon | VM tests (suites) | ABI identity | time |"
	echo "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"
	printf '%s\n' "${rows[@]}"
	echo
	echo "Made by \`make test SCOUTFS_SRC=...$([ "${DEBUG_KERNEL:-0}" != 1 ] || echo " DEBUG_KERNEL=1")\` (tests/matrix.sh) on $(date -u +%Y-%m-%d)."
} >"$logs/$table"
cp "$logs/$table" "$top/build/$table"
cat "$logs/$table"
echo "matrix: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
