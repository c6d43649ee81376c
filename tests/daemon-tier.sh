#!/usr/bin/env bash
# Tier "daemon": build scoutfs-notifyd and scoutfs-notify-watch from
# what the series ships (tests/lib/tools-src.sh) and run
# tests/daemon/run.sh on them.
set -euo pipefail

top=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=tests/lib/tools-src.sh
. "$top/tests/lib/tools-src.sh"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

if ! msg=$(tools_src "$work/src" 2>&1); then
	echo "daemon tier: $msg"
	echo "daemon: 0 passed, 1 failed"
	exit 1
fi
echo "daemon tier: $msg"
"$top/tests/daemon/run.sh" "$work/src"
