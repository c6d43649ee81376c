#!/usr/bin/env bash
# Tier "index": scoutfs-notify-heat, the access index of commit 5, built
# from what the series ships (tests/lib/tools-src.sh) and tested against
# real engines (SQLite, a PostgreSQL server the tests start themselves)
# and real nats-server processes, over the real daemon and forwarder on
# the ioctl stand-in (tests/index/run.sh).  Installs what it needs
# (scripts/deps.sh index); when that can't be done it prints SKIPPED
# with the reason, except under CI (CI=true), where the tier is required
# and that is a failure.
set -euo pipefail

top=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=tests/lib/tools-src.sh
. "$top/tests/lib/tools-src.sh"

if ! msg=$("$top/scripts/deps.sh" index 2>&1); then
	if [ -n "${CI:-}" ]; then
		echo "index tier: $msg, and CI requires this tier"
		echo "index: 0 passed, 1 failed"
		exit 1
	fi
	echo "SKIPPED: $msg"
	echo "index: 0 passed, 0 failed"
	exit 0
fi
[ -z "$msg" ] || echo "index tier: $msg"

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
if ! msg=$(tools_src "$work/src" 2>&1); then
	echo "index tier: $msg"
	echo "index: 0 passed, 1 failed"
	exit 1
fi
echo "index tier: $msg"
if [ ! -f "$work/src/utils/notifyd/heat.mk" ]; then
	echo "index tier: the series has no scoutfs-notify-heat (commit 5 missing)"
	echo "index: 0 passed, 1 failed"
	exit 1
fi
"$top/tests/index/run.sh" "$work/src"
