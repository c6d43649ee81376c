#!/usr/bin/env bash
# The index tier (tests/index-tier.sh runs it): build scoutfs-notify-heat,
# scoutfs-notifyd and scoutfs-notify-forward from SRC_DIR (utils/notifyd/
# and kmod/src/ioctl.h from the series) under ASan, UBSan and
# LeakSanitizer (tests/lib/sanitize.sh: every report fails the tier), with
# tests/nats/tnats.c and the ioctl stand-in tests/daemon/fake-scoutfs.c,
# check what each links, and run tests/index/index_test.py in a private
# mount namespace: real nats-server, SQLite and PostgreSQL.
#
#   tests/index/run.sh SRC_DIR
#
# Ends with `index: N passed, N failed`.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
src=${1:?usage: tests/index/run.sh SRC_DIR}
src=$(cd "$src" && pwd)

fail_setup() {
	echo "index tier: $*"
	echo "index: 0 passed, 1 failed"
	exit 1
}

command -v python3 >/dev/null || fail_setup "python3 is needed to drive the tests"
[ "$(id -u)" -eq 0 ] || fail_setup "needs root (tmpfs mounts in a private mount namespace, PostgreSQL as postgres)"

out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT

# shellcheck source=tests/lib/sanitize.sh
. "$here/../lib/sanitize.sh"
san_pick "$out" || fail_setup "$SAN_NOTE"
echo "index tier: $SAN_NOTE"
san=("${SAN_FLAGS[@]}")
make -s -C "$src/utils/notifyd" clean
make -s -C "$src/utils/notifyd" NOTIFY_NATS=1 NOTIFY_HEAT=1 CC="$SAN_CC" EXTRA_CFLAGS="${san[*]}" \
	scoutfs-notifyd scoutfs-notify-watch scoutfs-notify-forward scoutfs-notify-heat ||
	fail_setup "cannot build the tools"
for b in scoutfs-notifyd scoutfs-notify-watch scoutfs-notify-forward scoutfs-notify-heat; do
	cp "$src/utils/notifyd/$b" "$out/"
done
read -ra natsflags <<<"$(pkg-config --cflags --libs libnats)"
"$SAN_CC" -std=c11 -Wall -Wextra -Werror "${san[@]}" -o "$out/tnats" "$here/../nats/tnats.c" \
	"${natsflags[@]}" || fail_setup "cannot build tnats"
gcc -std=c11 -Wall -Wextra -Werror -O1 -g -fPIC -shared -I"$src/kmod/src" \
	-o "$out/fake-scoutfs.so" "$here/../daemon/fake-scoutfs.c" -ldl ||
	fail_setup "cannot build the ioctl stand-in"
gcc -std=c11 -Wall -Wextra -Werror -O1 -g -fPIC -shared -o "$out/walkill.so" "$here/walkill.c" -ldl ||
	fail_setup "cannot build walkill.c"

# what each binary itself links (NEEDED), sanitizer runtimes aside:
# the index its libraries, the core tools libc alone
have=$(san_needed "$out/scoutfs-notify-heat")
[[ $have =~ ^libc\.so\.6\ libm\.so\.6\ libnats\.so\.[0-9.]+\ libpq\.so\.5\ libsqlite3\.so\.0\ $ ]] ||
	fail_setup "scoutfs-notify-heat must link libc, libm, libnats, libpq and libsqlite3 only, links: $have"
for b in scoutfs-notifyd scoutfs-notify-watch; do
	[ "$(san_needed "$out/$b")" = "libc.so.6 " ] ||
		fail_setup "$b must link libc only, links: $(san_needed "$out/$b")"
done
echo "index tier: scoutfs-notify-heat links $have; scoutfs-notifyd and scoutfs-notify-watch libc only"

# the index without PostgreSQL and NATS: what a site with SQLite alone builds
lite=$out/lite/utils/notifyd
mkdir -p "$out/lite/utils" "$out/lite/kmod"
cp -R "$src/utils/notifyd" "$out/lite/utils/"
cp -R "$src/kmod/src" "$out/lite/kmod/"
make -s -C "$lite" clean
make -s -C "$lite" HAVE_PQ= HAVE_NATS_HEAT= NOTIFY_NATS=0 scoutfs-notify-heat >/dev/null ||
	fail_setup "scoutfs-notify-heat does not build with SQLite alone"
[[ $(san_needed "$lite/scoutfs-notify-heat") =~ ^libc\.so\.6\ libm\.so\.6\ libsqlite3\.so\.0\ $ ]] ||
	fail_setup "with SQLite alone scoutfs-notify-heat links: $(san_needed "$lite/scoutfs-notify-heat")"
echo "index tier: with SQLite alone it builds and links libc, libm and libsqlite3 only"

export BIN_DIR=$out
export FAKE_SO=$out/fake-scoutfs.so
export WALKILL_SO=$out/walkill.so
san_options "$out/sanitizer"
unshare -m --propagation private python3 "$here/index_test.py" "$out/work"
