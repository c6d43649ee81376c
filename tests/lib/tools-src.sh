#!/usr/bin/env bash
# Sourced by tests/daemon-tier.sh and scripts/bench.sh:
#   tools_src DIR
# makes DIR a tree holding what the series ships for the daemon and its
# client: utils/notifyd/ and kmod/src/ioctl.h.
#
# With SCOUTFS_SRC the series is applied to a fresh clone of its base.
# Without it, utils/notifyd/ is taken from the patches in patches/ that
# add and change it (patch 3, and patch 4's optional NATS tools), in
# order, and ioctl.h is made of tests/lib/ioctl-prelude.h and the
# notify block patch 1 adds to it, so the tools are still what ships.

tools_src() {
	local dir=$1 top base p_tools p_abi p
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
	p_tools=$(grep -l '^+++ b/utils/notifyd/' "$top"/patches/*.patch || true)
	p_abi=$(grep -l '^+++ b/kmod/src/ioctl.h' "$top"/patches/*.patch | head -n 1 || true)
	if [ -z "$p_tools" ] || [ -z "$p_abi" ]; then
		echo "no patch in patches/ adds utils/notifyd/ and kmod/src/ioctl.h changes"
		return 1
	fi
	mkdir -p "$dir/kmod/src"
	for p in $p_tools; do
		(cd "$dir" && git apply --include='utils/notifyd/*' "$p") || return 1
	done
	{
		cat "$top/tests/lib/ioctl-prelude.h"
		awk '/^diff --git/ {f = ($3 == "a/kmod/src/ioctl.h")} f && /^\+/ && !/^\+\+\+/ {print substr($0, 2)}' "$p_abi"
		echo "#endif"
	} >"$dir/kmod/src/ioctl.h"
	echo "tools from $(for p in $p_tools; do basename "$p"; done | tr '\n' ' ')notify ABI from $(basename "$p_abi")"
}
