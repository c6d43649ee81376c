#!/usr/bin/env bash
# The README's test command (`make test`): runs every tier that can run
# here, prints SKIPPED with the reason for each that can't, and closes
# with the summed `N passed, N failed` line.
#
# Tiers:
#   lint    shell scripts (shellcheck) and the series' form (tests/lint.sh)
#   apply   apply.sh's refusals on synthetic trees (tests/apply-test.sh)
#   daemon  scoutfs-notifyd and its client, built from patch 3, under
#           ASan/UBSan against an ioctl stand-in (tests/daemon/run.sh)
#   upstream-report  the verdict logic of `make upstream-suite` on
#           made-up guest logs (tests/upstream/report_test.py)
#   matrix  needs SCOUTFS_SRC: for every release (or $RELEASES) apply,
#           build with -Werror and sparse, VM suites (scripts/vm-test.sh),
#           and one ABI across every series (tests/abi-test.sh); with
#           DEBUG_KERNEL=1 (`make test DEBUG_KERNEL=1`) on the debug
#           kernel, faults suite included (docs/debug-kernel.md)
set -euo pipefail

top=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$top"
logdir=${TEST_LOG_DIR:-$top/build/test-logs}
mkdir -p "$logdir"

total_pass=0
total_fail=0
summary=()

# Run one tier, show its output, and add its closing line to the totals.
# A tier that ends without a closing line counts as one failure.
tier() {
	local name=$1
	shift
	local log=$logdir/$name.log rc=0 last p f
	echo "=== tier $name: $*"
	"$@" 2>&1 | tee "$log" || rc=$?
	last=$(grep -E '^([A-Za-z-]+: )?[0-9]+ passed, [0-9]+ failed' "$log" | tail -n 1 || true)
	if [[ $last =~ ([0-9]+)\ passed,\ ([0-9]+)\ failed ]]; then
		p=${BASH_REMATCH[1]}
		f=${BASH_REMATCH[2]}
		if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then
			f=1
		fi
	else
		p=0
		f=1
		echo "tier $name: no closing line (exit $rc)"
	fi
	total_pass=$((total_pass + p))
	total_fail=$((total_fail + f))
	summary+=("$(printf '%-15s %3d passed, %d failed' "$name" "$p" "$f")")
}

skip() {
	echo "=== tier $1: SKIPPED: $2"
	summary+=("$(printf '%-15s SKIPPED: %s' "$1" "$2")")
}

tier lint tests/lint.sh
tier apply tests/apply-test.sh

tier daemon tests/daemon-tier.sh
tier upstream-report python3 tests/upstream/report_test.py

if [ -z "${SCOUTFS_SRC:-}" ]; then
	skip matrix "SCOUTFS_SRC is not set (point it at a scoutfs git dir with tags to apply, build, boot and ABI-check every series)"
else
	tier matrix tests/matrix.sh
fi

echo "=== summary"
printf '%s\n' "${summary[@]}"
echo "$total_pass passed, $total_fail failed"
[ "$total_fail" -eq 0 ]
