#!/usr/bin/env bash
# Tier 1 of the daemon tests (tests/daemon-tier.sh runs it): build
# scoutfs-notifyd and scoutfs-notify-watch from SRC_DIR (a tree with
# utils/notifyd/ and kmod/src/ioctl.h, made from what the series ships)
# under ASan and UBSan, and run tests/daemon/daemon_test.py against
# tests/daemon/fake-scoutfs.c, an LD_PRELOAD stand-in for the notify
# ioctl on a tmpfs made to look like a scoutfs mount.  Its clients are
# Python threads, tests/daemon/tclient.c (also sanitized) and the real
# scoutfs-notify-watch.  Runs in a
# private mount namespace (unshare -m) so the tmpfs mounts can't leak.
#
#   tests/daemon/run.sh SRC_DIR
#
# Ends with `daemon: N passed, N failed`.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
src=${1:?usage: tests/daemon/run.sh SRC_DIR}
src=$(cd "$src" && pwd)

fail_setup() {
	echo "daemon tier: $*"
	echo "daemon: 0 passed, 1 failed"
	exit 1
}

command -v python3 >/dev/null || fail_setup "python3 is needed to drive the tests"
[ "$(id -u)" -eq 0 ] || fail_setup "needs root (tmpfs mounts in a private mount namespace)"

out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT

# shellcheck source=tests/lib/sanitize.sh
. "$here/../lib/sanitize.sh"
san_pick "$out" || fail_setup "$SAN_NOTE"
echo "daemon tier: $SAN_NOTE"
san=("${SAN_FLAGS[@]}")
# the same flags as utils/notifyd/Makefile, plus the sanitizers
make -s -C "$src/utils/notifyd" clean
make -s -C "$src/utils/notifyd" CC="$SAN_CC" EXTRA_CFLAGS="${san[*]}" scoutfs-notifyd scoutfs-notify-watch ||
	fail_setup "cannot build the daemon and its client"
cp "$src/utils/notifyd/scoutfs-notifyd" "$src/utils/notifyd/scoutfs-notify-watch" "$out/"
"$SAN_CC" -std=c11 -Wall -Wextra -Werror "${san[@]}" -o "$out/tclient" "$here/tclient.c" ||
	fail_setup "cannot build the test client"
gcc -std=c11 -Wall -Wextra -Werror -O1 -g -fPIC -shared -I"$src/kmod/src" \
	-o "$out/fake-scoutfs.so" "$here/fake-scoutfs.c" -ldl ||
	fail_setup "cannot build the ioctl stand-in"

export NOTIFYD_BIN=$out/scoutfs-notifyd
export WATCH_BIN=$out/scoutfs-notify-watch
export TCLIENT_BIN=$out/tclient
export FAKE_SO=$out/fake-scoutfs.so
export UNIT_FILE=$src/utils/notifyd/scoutfs-notifyd@.service
san_options "$out/sanitizer"
unshare -m --propagation private python3 "$here/daemon_test.py" "$out/work"
