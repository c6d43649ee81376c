#!/usr/bin/env bash
# Tier "daemon": build scoutfs-notifyd and scoutfs-notify-watch from
# what the series ships and run tests/daemon/run.sh on them.
#
# With SCOUTFS_SRC the series is applied to a fresh clone of its base
# and the tools are built in that tree.  Without it the tools' files are
# taken from the patch that adds utils/notifyd/, and kmod/src/ioctl.h is
# made of tests/lib/ioctl-prelude.h and the notify block that patch 1
# adds to it, so the tests still test what ships.
set -euo pipefail

top=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
base=$(cat "$top/base.txt")
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

if [ -n "${SCOUTFS_SRC:-}" ]; then
	git clone -q --shared --no-checkout "$SCOUTFS_SRC" "$work/src"
	git -C "$work/src" checkout -q "$base"
	"$top/apply.sh" "$work/src" >/dev/null
	echo "daemon tier: tools from the series applied to scoutfs $base"
else
	p_tools=$(grep -l '^+++ b/utils/notifyd/' "$top"/patches/*.patch | head -n 1 || true)
	p_abi=$(grep -l '^+++ b/kmod/src/ioctl.h' "$top"/patches/*.patch | head -n 1 || true)
	if [ -z "$p_tools" ] || [ -z "$p_abi" ]; then
		echo "no patch in patches/ adds utils/notifyd/ and kmod/src/ioctl.h changes"
		echo "daemon: 0 passed, 1 failed"
		exit 1
	fi
	mkdir -p "$work/src/kmod/src"
	(cd "$work/src" && git apply --include='utils/notifyd/*' "$p_tools")
	{
		cat "$top/tests/lib/ioctl-prelude.h"
		awk '/^diff --git/ {f = ($3 == "a/kmod/src/ioctl.h")} f && /^\+/ && !/^\+\+\+/ {print substr($0, 2)}' "$p_abi"
		echo "#endif"
	} >"$work/src/kmod/src/ioctl.h"
	echo "daemon tier: tools from $(basename "$p_tools"), notify ABI from $(basename "$p_abi")"
fi

exec "$top/tests/daemon/run.sh" "$work/src"
