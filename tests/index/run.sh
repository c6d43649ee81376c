#!/usr/bin/env bash
# The index tier (tests/index-tier.sh runs it): build scoutfs-notify-heat,
# scoutfs-notifyd and scoutfs-notify-forward from SRC_DIR (utils/notifyd/
# and kmod/src/ioctl.h from the series) under ASan and UBSan, with
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

san=("-fsanitize=address,undefined" -fno-omit-frame-pointer -fno-sanitize-recover=undefined -g -O1)
make -s -C "$src/utils/notifyd" clean
make -s -C "$src/utils/notifyd" NOTIFY_NATS=1 NOTIFY_HEAT=1 EXTRA_CFLAGS="${san[*]}" \
	scoutfs-notifyd scoutfs-notify-watch scoutfs-notify-forward scoutfs-notify-heat ||
	fail_setup "cannot build the tools"
for b in scoutfs-notifyd scoutfs-notify-watch scoutfs-notify-forward scoutfs-notify-heat; do
	cp "$src/utils/notifyd/$b" "$out/"
done
read -ra natsflags <<<"$(pkg-config --cflags --libs libnats)"
gcc -std=c11 -Wall -Wextra -Werror "${san[@]}" -o "$out/tnats" "$here/../nats/tnats.c" \
	"${natsflags[@]}" || fail_setup "cannot build tnats"
gcc -std=c11 -Wall -Wextra -Werror -O1 -g -fPIC -shared -I"$src/kmod/src" \
	-o "$out/fake-scoutfs.so" "$here/../daemon/fake-scoutfs.c" -ldl ||
	fail_setup "cannot build the ioctl stand-in"
gcc -std=c11 -Wall -Wextra -Werror -O1 -g -fPIC -shared -o "$out/walkill.so" "$here/walkill.c" -ldl ||
	fail_setup "cannot build walkill.c"

# what each binary itself links (NEEDED), sanitizer runtimes aside:
# the index its libraries, the core tools libc alone
needed() {
	readelf -d "$1" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p' | grep -vE '^(libasan|libubsan)\.' | sort | tr '\n' ' '
}
have=$(needed "$out/scoutfs-notify-heat")
[[ $have =~ ^libc\.so\.6\ libm\.so\.6\ libnats\.so\.[0-9.]+\ libpq\.so\.5\ libsqlite3\.so\.0\ $ ]] ||
	fail_setup "scoutfs-notify-heat must link libc, libm, libnats, libpq and libsqlite3 only, links: $have"
for b in scoutfs-notifyd scoutfs-notify-watch; do
	[ "$(needed "$out/$b")" = "libc.so.6 " ] ||
		fail_setup "$b must link libc only, links: $(needed "$out/$b")"
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
[[ $(needed "$lite/scoutfs-notify-heat") =~ ^libc\.so\.6\ libm\.so\.6\ libsqlite3\.so\.0\ $ ]] ||
	fail_setup "with SQLite alone scoutfs-notify-heat links: $(needed "$lite/scoutfs-notify-heat")"
echo "index tier: with SQLite alone it builds and links libc, libm and libsqlite3 only"

leaks=1
cat >"$out/leak.c" <<'C'
#include <stdlib.h>
int main(void) { return malloc(1) == NULL; }
C
gcc "${san[@]}" -o "$out/leak" "$out/leak.c"
if ! ASAN_OPTIONS=detect_leaks=1 "$out/leak" 2>/dev/null; then
	echo "index tier: LeakSanitizer does not work here, running without leak checks"
	leaks=0
fi

export BIN_DIR=$out
export FAKE_SO=$out/fake-scoutfs.so
export WALKILL_SO=$out/walkill.so
export ASAN_LIB
ASAN_LIB=$(gcc -print-file-name=libasan.so)
export ASAN_OPTIONS="detect_leaks=$leaks:abort_on_error=0:exitcode=99"
export UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1:exitcode=98"
unshare -m --propagation private python3 "$here/index_test.py" "$out/work"
