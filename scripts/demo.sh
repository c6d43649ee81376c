#!/usr/bin/env bash
# `make demo`: the end-to-end job for a newcomer.  Applies the series to
# a fresh tree of BASE, builds it, boots it in QEMU, starts
# scoutfs-notifyd on a fresh scoutfs mount with scoutfs-notify-watch
# connected, does some file activity, and prints the decoded records
# (tests/vm/demo.sh is what runs in the VM); exits non-zero unless this
# run's guest (its nonce) went to the end with every check passed.
#
#   scripts/demo.sh [--src DIR] [--base TAG]
set -euo pipefail

top=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

# shellcheck source=scripts/lib.sh
. "$top/scripts/lib.sh"

src_base_args "$@"
: "${base:?}"
[ -n "$src" ] || die "set SCOUTFS_SRC (or --src) to an upstream scoutfs git dir with release tags"

out=$top/build/vm/$base
"$top/scripts/build-scoutfs.sh" --src "$src" --base "$base" --out "$out"
[ -d "$out/src/utils/notifyd" ] || die "the $base series has no scoutfs-notifyd"
nonce=$(run_nonce)
"$top/scripts/vm-run.sh" --out "$out" --suite demo --timeout 600 --nonce "$nonce" |
	sed -n '/vm: guest up/,/vm: guest done/p'
# this run's guest, to the end, and every check of the demo passed
read -r gp gf <<<"$(guest_closing "$out/console.log" "$nonce" guest)" || true
if ! grep -q '^demo: what scoutfs-notify-watch printed' "$out/console.log" || [ -z "${gp:-}" ] ||
	[ "$gf" -ne 0 ]; then
	die "the demo did not run to the end, or a check of it failed (guest: ${gp:-?} passed, ${gf:-?} failed); console in $out/console.log"
fi
