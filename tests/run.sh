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
#           real nats-server processes and the official Node.js client
#           (tests/nats-tier.sh); SKIPPED when libnats-dev or nats-server
#           can't be installed
#   index   commit 5's scoutfs-notify-heat (the access index) under
#           ASan/UBSan with real nats-server, SQLite and PostgreSQL, over
#           the real daemon and forwarder and the stand-in
#           (tests/index-tier.sh); required under CI
#   fuzz    libFuzzer on every parser and encoder of untrusted bytes in
#           utils/notifyd/, FUZZ_SECS (30) seconds a target (tests/fuzz/run.sh;
#           `make fuzz` runs longer)
#   upstream-report  the verdict logic of `make upstream-suite` on
#           made-up guest logs (tests/upstream/report_test.py)
#   bench-report  the verdicts of `make bench` on made-up logs
#           (tests/bench/report_test.py)
#   harness the VM and systemd harnesses and this script on stubs: stale
#           logs, dropped exit statuses, skips (tests/harness-test.sh)
#   matrix  needs SCOUTFS_SRC: for every release (or $RELEASES) apply,
#           build with -Werror and sparse, VM suites (scripts/vm-test.sh),
#           and one ABI across every series (tests/abi-test.sh); with
#           DEBUG_KERNEL=1 (`make test DEBUG_KERNEL=1`) on the debug
#           kernel, faults suite included (docs/debug-kernel.md)
#   systemd needs SCOUTFS_SRC: the base release's scoutfs-notifyd@.service
#           under a real systemd (PID 1 of a Debian bookworm VM) with a
#           scoutfs mount unit (scripts/systemd-test.sh)
#
# Every SKIPPED line a tier prints (a whole tier, or a part of one) is
# listed in the summary.  A tier fails when it ends without its own
# closing line (`TIER: N passed, N failed`), exits non-zero, or ran
# nothing (0 passed, 0 failed) without saying SKIPPED.  TIERS="a b" runs
# only those tiers; REQUIRED_TIERS="a b" (.ci/run names every tier)
# makes each a tier that must run whole: a SKIPPED line in it, or the
# tier skipped, is a failure.
set -euo pipefail

top=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$top"
logdir=${TEST_LOG_DIR:-$top/build/test-logs}
mkdir -p "$logdir"
ALL_TIERS="lint apply series daemon nats index fuzz upstream-report bench-report harness matrix systemd"

# known NAMES...: each is a tier
known() {
	local t
	for t in "$@"; do
		[[ " $ALL_TIERS " == *" $t "* ]] || {
			echo "run.sh: unknown tier '$t' (tiers: $ALL_TIERS)" >&2
			exit 2
		}
	done
}
# shellcheck disable=SC2086 # lists of words
known ${TIERS:-} ${REQUIRED_TIERS:-}

if [ -n "${SCOUTFS_SRC:-}" ]; then
	# a read-only or partial copy of upstream becomes a git dir git takes
	SCOUTFS_SRC=$(scripts/upstream-git.sh "$SCOUTFS_SRC")
	export SCOUTFS_SRC
fi

total_pass=0
total_fail=0
summary=()
skipped=()

selected() {
	[ -z "${TIERS:-}" ] || [[ " $TIERS " == *" $1 "* ]]
}

required() {
	[[ " ${REQUIRED_TIERS:-} " == *" $1 "* ]]
}

# closing NAME LOG: "P F" of the tier's own closing line (`NAME: P
# passed, F failed`, the last), nothing if there is none
closing() {
	local last
	last=$(grep -E "^$1: [0-9]+ passed, [0-9]+ failed\$" "$2" | tail -n 1 || true)
	[[ $last =~ ([0-9]+)\ passed,\ ([0-9]+)\ failed ]] && echo "${BASH_REMATCH[1]} ${BASH_REMATCH[2]}"
	return 0
}

# Run one tier, show its output, and add its closing line to the totals.
tier() {
	local name=$1
	shift
	selected "$name" || return 0
	local log=$logdir/$name.log rc=0 p f start=$SECONDS skips
	echo "=== tier $name: $*"
	rm -f "$log"
	"$@" 2>&1 | tee "$log" || rc=$?
	local took=$((SECONDS - start))
	read -r p f <<<"$(closing "$name" "$log")" || true
	if [ -z "${p:-}" ]; then
		p=0
		f=1
		echo "FAIL: tier $name: no closing line '$name: N passed, N failed' (exit $rc)"
	elif [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then
		echo "FAIL: tier $name: exit $rc with 0 failed"
		f=1
	fi
	skips=$(grep -E '(^|: )SKIPPED: ' "$log" || true)
	if [ -n "$skips" ]; then
		while IFS= read -r l; do
			skipped+=("$(printf '%-15s %s' "$name" "$l")")
		done <<<"$skips"
		if required "$name"; then
			echo "FAIL: tier $name is required to run whole, and it skipped"
			f=$((f + 1))
		fi
	elif [ "$p" -eq 0 ] && [ "$f" -eq 0 ]; then
		echo "FAIL: tier $name ran nothing (0 passed, 0 failed) and did not say SKIPPED"
		f=1
	fi
	total_pass=$((total_pass + p))
	total_fail=$((total_fail + f))
	if [ "$p" -eq 0 ] && [ "$f" -eq 0 ]; then
		summary+=("$(printf '%-15s SKIPPED (below)  %s' "$name" "$(walltime "$took")")")
	else
		summary+=("$(printf '%-15s %4d passed, %d failed  %s' "$name" "$p" "$f" "$(walltime "$took")")")
	fi
}

# walltime SECS: "1 min 05 s"
walltime() {
	if [ "$1" -ge 60 ]; then
		printf '%d min %02d s' $(($1 / 60)) $(($1 % 60))
	else
		printf '%d s' "$1"
	fi
}

# skip TIER WHY: a tier that cannot run here; a failure when required
skip() {
	selected "$1" || return 0
	echo "=== tier $1: SKIPPED: $2"
	skipped+=("$(printf '%-15s SKIPPED: %s' "$1" "$2")")
	if required "$1"; then
		echo "FAIL: tier $1 is required to run, and it skipped"
		summary+=("$(printf '%-15s %4d passed, %d failed' "$1" 0 1)")
		total_fail=$((total_fail + 1))
	else
		summary+=("$(printf '%-15s SKIPPED (below)' "$1")")
	fi
}

tier lint tests/lint.sh
tier apply tests/apply-test.sh
tier series tests/series-test.sh

tier daemon tests/daemon-tier.sh
tier nats tests/nats-tier.sh
tier index tests/index-tier.sh
tier fuzz tests/fuzz/run.sh
tier upstream-report python3 tests/upstream/report_test.py
tier bench-report python3 tests/bench/report_test.py
tier harness tests/harness-test.sh

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
if [ ${#skipped[@]} -gt 0 ]; then
	echo "skipped (${#skipped[@]}):"
	printf '  %s\n' "${skipped[@]}"
fi
echo "wall time: $(walltime "$SECONDS")"
echo "$total_pass passed, $total_fail failed"
[ "$total_fail" -eq 0 ]
