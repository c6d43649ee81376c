#!/usr/bin/env bash
# `make vm-test`: the series on a real kernel.  Applies the series to a
# fresh tree of BASE, builds the kmod (-Werror, sparse) against Debian
# bullseye's 5.10 kernel and upstream's utils, boots it in QEMU and
# runs the guest suites (tests/vm/guest.sh) on a real scoutfs mount.
#
#   scripts/vm-test.sh [--src DIR] [--base TAG] [--suite "kernel daemon"]
#                      [--debug-kernel] [--kernel 5.10|6.12] [--tree REF]
#                      [--shim DIFF] [--expect-define KC_X]
#
# --src defaults to $SCOUTFS_SRC, --base to base.txt, --suite to every
# suite the series supports (daemon needs the series' patch 3; faults
# and detectors too on the debug kernel).  Work
# files go to build/vm/TAG/.  --debug-kernel (or DEBUG_KERNEL=1) builds
# and boots the debug kernel (lockdep, KASAN, kmemleak, UBSAN:
# docs/debug-kernel.md) instead of Debian's; its work files go to
# build/vm/TAG-debug/, and any report of those detectors fails the run.
# --kernel 6.12 (or TEST_KERNEL=6.12) builds against and boots Debian
# bookworm-backports' 6.12 instead of bullseye's 5.10 (work files in
# build/vm/TAG-6.12/).  --tree, --shim and --expect-define go to
# scripts/build-scoutfs.sh: the TAG series on another upstream REF
# (work files in build/vm/TAG-REF...), with a test-kernel shim, and
# the compat define that the run needs.
# Ends with `vm: N passed, N failed`: the build steps count as tests;
# a build that exits non-zero or leaves no scoutfs.ko, a guest that
# doesn't finish (no closing line after this run's nonce, see
# scripts/vm-run.sh) and a non-zero exit of vm-run.sh are failures.
set -euo pipefail

top=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

# shellcheck source=scripts/lib.sh
. "$top/scripts/lib.sh"

# a setup error is a failed run: it says so in the closing line too
fail_run() {
	echo "vm-test.sh: $*" >&2
	echo "vm: 0 passed, 1 failed"
	exit 1
}

src=${SCOUTFS_SRC:-}
base=""
suite=""
build_args=()
tree_ref=""
while [ $# -gt 0 ]; do
	case "$1" in
	--src) src=${2:?}; shift 2 ;;
	--base) base=${2:?}; shift 2 ;;
	--suite) suite=${2:?}; shift 2 ;;
	--debug-kernel) DEBUG_KERNEL=1; shift ;;
	--kernel) TEST_KERNEL=${2:?}; shift 2 ;;
	--tree) tree_ref=${2:?}; build_args+=(--tree "$2"); shift 2 ;;
	--shim | --expect-define) build_args+=("$1" "${2:?}"); shift 2 ;;
	-h | --help) usage; exit 0 ;;
	*) fail_run "unknown argument '$1' (see --help)" ;;
	esac
done
[ -n "$src" ] || fail_run "set SCOUTFS_SRC (or --src) to an upstream scoutfs git dir with release tags"
[ -n "$base" ] || base=$(cat "$top/base.txt")
"$top/apply.sh" --list | grep -x "$base" >/dev/null ||
	fail_run "no series for '$base' (supported: $("$top/apply.sh" --list | tr '\n' ' '))"

case "${TEST_KERNEL:-5.10}" in
5.10 | 6.12) export TEST_KERNEL=${TEST_KERNEL:-5.10} ;;
*) fail_run "the test kernel must be 5.10 or 6.12, not '$TEST_KERNEL'" ;;
esac
name=$base
[ -z "$tree_ref" ] || name+=-${tree_ref//\//-}
[ "$TEST_KERNEL" = 5.10 ] || name+=-$TEST_KERNEL
case "${DEBUG_KERNEL:-0}" in
0 | '') DEBUG_KERNEL=0; out=$top/build/vm/$name ;;
1) out=$top/build/vm/$name-debug ;;
*) fail_run "DEBUG_KERNEL must be 0 or 1, not '$DEBUG_KERNEL'" ;;
esac
export DEBUG_KERNEL
pass=0
fail=0
build_counted "$out" --src "$src" --base "$base" ${build_args[@]+"${build_args[@]}"}
pass=$((pass + build_pass))
if [ "$build_fail" -ne 0 ]; then
	echo "vm: $pass passed, $build_fail failed"
	exit 1
fi

if [ -z "$suite" ]; then
	suite=kernel
	if [ -d "$out/src/utils/notifyd" ]; then
		suite="kernel daemon"
	else
		echo "vm-test.sh: SKIPPED: daemon suite: the $base series has no utils/notifyd (patch 3)"
	fi
	# the fault and load suite is what the detectors are for; then
	# the detectors' planted bugs, to show each would be caught
	[ "$DEBUG_KERNEL" = 0 ] || suite+=" faults detectors"
fi

# the closing line of this run's guest only (its nonce before it), and
# vm-run.sh's exit status too (QEMU's, or timeout's when it killed it)
nonce=$(run_nonce)
rc=0
"$top/scripts/vm-run.sh" --out "$out" --suite "$suite" --nonce "$nonce" || rc=$?
read -r gp gf <<<"$(guest_closing "$out/console.log" "$nonce" guest)" || true
if [ -z "${gp:-}" ]; then
	echo "FAIL: the guest of this run (guest: run $nonce) did not finish (exit $rc); console in $out/console.log"
	fail=$((fail + 1))
else
	echo "vm-test.sh: the guest of this run: $gp passed, $gf failed"
	pass=$((pass + gp))
	fail=$((fail + gf))
	if [ "$rc" -ne 0 ]; then
		echo "FAIL: scripts/vm-run.sh exited $rc"
		fail=$((fail + 1))
	elif [ "$gp" -eq 0 ] && [ "$gf" -eq 0 ]; then
		echo "FAIL: the guest ran nothing"
		fail=$((fail + 1))
	fi
fi
echo "vm: $base: $pass passed, $fail failed"
echo "vm: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
