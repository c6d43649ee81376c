#!/usr/bin/env bash
# The README's test command (`make test`, tiers in docs/testing.md):
# runs every tier that can run here, prints SKIPPED with the reason for
# each that can't, and closes with the summed `N passed, N failed` line.
#
# Tiers:
#   lint    shell scripts (shellcheck) and the series' form (tests/lint.sh)
#   apply   apply.sh's refusals on synthetic trees (tests/apply-test.sh)
#   series  the committed series are what the source generates: every
#           product file in one commit, every patch its commit; with
#           SCOUTFS_SRC also make series-check (a fresh generation, byte
#           for byte), the series-edit / series-export round trip and a
#           conflict resolved as a variant (tests/series-test.sh)
#   daemon  scoutfs-notifyd and its client, built from patch 3, under
#           ASan/UBSan against an ioctl stand-in (tests/daemon/run.sh)
#   nats    patch 4's scoutfs-notify-forward and scoutfs-notify-watch-nats
#           under ASan/UBSan, over the real daemon and the stand-in, with
#           real nats-server processes (tests/nats-tier.sh); SKIPPED when
#           libnats-dev or nats-server can't be installed
#   index   commit 5's scoutfs-notify-heat (the access index) under
#           ASan/UBSan with real nats-server, SQLite and PostgreSQL, over
#           the real daemon and forwarder and the stand-in
#           (tests/index-tier.sh); required under CI
#   upstream-report  the verdict logic of `make upstream-suite` on
#           made-up guest logs (tests/upstream/report_test.py)
#   matrix  needs SCOUTFS_SRC: for every release (or $RELEASES) apply,
#           build with -Werror and sparse, VM suites (scripts/vm-test.sh),
#           and one ABI across every series (tests/abi-test.sh); with
#           DEBUG_KERNEL=1 (`make test DEBUG_KERNEL=1`) on the debug
#           kernel, faults suite included (docs/debug-kernel.md)
#   systemd needs SCOUTFS_SRC: the base release's scoutfs-notifyd@.service
#           under a real systemd (PID 1 of a Debian bookworm VM) with a
#           scoutfs mount unit (scripts/systemd-test.sh)
set -euo pipefail

top=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$top"
logdir=${TEST_LOG_DIR:-$top/build/test-logs}
mkdir -p "$logdir"

if [ -n "${SCOUTFS_SRC:-}" ]; then
	# a read-only or partial copy of upstream becomes a git dir git takes
	SCOUTFS_SRC=$(scripts/upstream-git.sh "$SCOUTFS_SRC")
	export SCOUTFS_SRC
fi

total_pass=0
total_fail=0
summary=()

# Run one tier, show its output, and add its closing line to the totals.
# A tier that ends without a closing line counts as one failure.
tier() {
	local name=$1
	shift
	local log=$logdir/$name.log rc=0 last p f start=$SECONDS
	echo "=== tier $name: $*"
	"$@" 2>&1 | tee "$log" || rc=$?
	local took=$((SECONDS - start))
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
	# a tier that could not run says so with its reason
	if [ "$p" -eq 0 ] && [ "$f" -eq 0 ] && grep -q '^SKIPPED: ' "$log"; then
		summary+=("$(printf '%-15s %s' "$name" "$(grep -m 1 '^SKIPPED: ' "$log")")")
		return
	fi
	summary+=("$(printf '%-15s %4d passed, %d failed  %s' "$name" "$p" "$f" "$(walltime "$took")")")
}

# walltime SECS: "1 min 05 s"
walltime() {
	if [ "$1" -ge 60 ]; then
		printf '%d min %02d s' $(($1 / 60)) $(($1 % 60))
	else
		printf '%d s' "$1"
	fi
}

skip() {
	echo "=== tier $1: SKIPPED: $2"
	summary+=("$(printf '%-15s SKIPPED: %s' "$1" "$2")")
}

tier lint tests/lint.sh
tier apply tests/apply-test.sh
tier series tests/series-test.sh

tier daemon tests/daemon-tier.sh
tier nats tests/nats-tier.sh
tier index tests/index-tier.sh
tier upstream-report python3 tests/upstream/report_test.py

if [ -z "${SCOUTFS_SRC:-}" ]; then
	skip matrix "SCOUTFS_SRC is not set (point it at a scoutfs git dir with tags to apply, build, boot and ABI-check every series)"
else
	tier matrix tests/matrix.sh
fi

if [ -z "${SCOUTFS_SRC:-}" ]; then
	skip systemd "SCOUTFS_SRC is not set (point it at a scoutfs git dir with tags to boot the base release's unit under systemd)"
else
	tier systemd scripts/systemd-test.sh --base "$(cat base.txt)"
fi

echo "=== summary"
printf '%s\n' "${summary[@]}"
echo "wall time: $(walltime "$SECONDS")"
echo "$total_pass passed, $total_fail failed"
[ "$total_fail" -eq 0 ]
