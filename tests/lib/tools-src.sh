#!/usr/bin/env bash
# Sourced by tests/daemon-tier.sh and scripts/bench.sh:
#   tools_src DIR
# makes DIR a tree holding what the series ships for the daemon and its
# client: utils/notifyd/ and kmod/src/ioctl.h.
#
# With SCOUTFS_SRC the series is applied to a fresh clone of its base.
# Without it, utils/notifyd/ is this repository's, and ioctl.h is made
# of tests/lib/ioctl-prelude.h and kmod/src/notify-abi.h, the notify
# block that commit 1 inserts into upstream's, so the tools are still
# what ships.

tools_src() {
	local dir=$1 top base
	top=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
	base=$(cat "$top/base.txt")
	if [ -n "${SCOUTFS_SRC:-}" ]; then
		git clone -q --shared --no-checkout "$("$top/scripts/upstream-git.sh" "$SCOUTFS_SRC")" "$dir" || return 1
		git -C "$dir" -c advice.detachedHead=false checkout -q "$base" || return 1
		git -C "$dir" config user.name "scoutfs-notify tests"
		git -C "$dir" config user.email "tests@localhost"
		"$top/apply.sh" "$dir" >/dev/null || return 1
		echo "tools from the series applied to scoutfs $base"
		return 0
	fi
	# the tools' own files, and an ioctl.h of the definitions they use
	mkdir -p "$dir/kmod/src" "$dir/utils"
	cp -R "$top/utils/notifyd" "$dir/utils/"
	cat "$top/tests/lib/ioctl-prelude.h" "$top/kmod/src/notify-abi.h" >"$dir/kmod/src/ioctl.h"
	echo "#endif" >>"$dir/kmod/src/ioctl.h"
	echo "tools from utils/notifyd/, notify ABI from kmod/src/notify-abi.h"
}
