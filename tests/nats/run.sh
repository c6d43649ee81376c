#!/usr/bin/env bash
# The nats tier (tests/nats-tier.sh runs it): build scoutfs-notifyd,
# scoutfs-notify-forward and scoutfs-notify-watch-nats from SRC_DIR
# (utils/notifyd/ and kmod/src/ioctl.h from the series) under ASan and
# UBSan, with tests/nats/tnats.c (the tests' own libnats client) and
# the ioctl stand-in tests/daemon/fake-scoutfs.c, and run
# tests/nats/nats_test.py in a private mount namespace.  Each test
# starts its own nats-server processes (JetStream, loopback ports, a
# temporary store) and stops them.
#
#   tests/nats/run.sh SRC_DIR
#
# Ends with `nats: N passed, N failed`.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
src=${1:?usage: tests/nats/run.sh SRC_DIR}
src=$(cd "$src" && pwd)

fail_setup() {
	echo "nats tier: $*"
	echo "nats: 0 passed, 1 failed"
	exit 1
}

command -v python3 >/dev/null || fail_setup "python3 is needed to drive the tests"
command -v nats-server >/dev/null || fail_setup "nats-server is not installed"
[ "$(id -u)" -eq 0 ] || fail_setup "needs root (tmpfs mounts in a private mount namespace)"

out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT

# shellcheck source=tests/lib/sanitize.sh
. "$here/../lib/sanitize.sh"
san_pick "$out" || fail_setup "$SAN_NOTE"
echo "nats tier: $SAN_NOTE"
san=("${SAN_FLAGS[@]}")
make -s -C "$src/utils/notifyd" clean
make -s -C "$src/utils/notifyd" NOTIFY_NATS=1 CC="$SAN_CC" EXTRA_CFLAGS="${san[*]}" \
	scoutfs-notifyd scoutfs-notify-watch scoutfs-notify-forward scoutfs-notify-watch-nats ||
	fail_setup "cannot build the tools"
for b in scoutfs-notifyd scoutfs-notify-watch scoutfs-notify-forward scoutfs-notify-watch-nats; do
	cp "$src/utils/notifyd/$b" "$out/"
done
read -ra natsflags <<<"$(pkg-config --cflags --libs libnats)"
"$SAN_CC" -std=c11 -Wall -Wextra -Werror "${san[@]}" -o "$out/tnats" "$here/tnats.c" \
	"${natsflags[@]}" || fail_setup "cannot build tnats"
gcc -std=c11 -Wall -Wextra -Werror -O1 -g -fPIC -shared -I"$src/kmod/src" \
	-o "$out/fake-scoutfs.so" "$here/../daemon/fake-scoutfs.c" -ldl ||
	fail_setup "cannot build the ioctl stand-in"

# what each binary itself links (NEEDED), sanitizer runtimes aside: the
# NATS tools libc and libnats only, the core tools libc only
for b in scoutfs-notify-forward scoutfs-notify-watch-nats; do
	[[ $(san_needed "$out/$b") =~ ^libc\.so\.6\ libnats\.so\.[0-9.]+\ $ ]] ||
		fail_setup "$b must link libc and libnats only, links: $(san_needed "$out/$b")"
done
for b in scoutfs-notifyd scoutfs-notify-watch; do
	[ "$(san_needed "$out/$b")" = "libc.so.6 " ] ||
		fail_setup "$b must link libc only, links: $(san_needed "$out/$b")"
done
echo "nats tier: scoutfs-notify-forward and scoutfs-notify-watch-nats link libc and libnats only; scoutfs-notifyd and scoutfs-notify-watch libc only"

# The official Node.js NATS client for t_node_client: npm's nats@2.
# When it can't be had, the test prints SKIPPED with the reason.
node_nats() {
	if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nodejs npm >"$out/npm.log" 2>&1 ||
			return 1
	fi
	timeout 300 npm install --prefix "$out/node" --no-audit --no-fund --no-save nats@2 \
		>"$out/npm.log" 2>&1 && [ -f "$out/node/node_modules/nats/package.json" ]
}
if node_nats; then
	export NODE_NATS=$out/node/node_modules
	echo "nats tier: Node.js $(node --version), npm nats $(sed -n 's/^ *"version": "\(.*\)",$/\1/p' \
		"$NODE_NATS/nats/package.json" | head -n 1)"
else
	export NODE_NATS_SKIP
	NODE_NATS_SKIP="npm cannot install nats@2 ($(grep -m 1 -E '^npm (ERR!|error)' "$out/npm.log" 2>/dev/null ||
		tail -n 1 "$out/npm.log" 2>/dev/null))"
fi

export BIN_DIR=$out
export FAKE_SO=$out/fake-scoutfs.so
export FORWARD_UNIT=$src/utils/notifyd/scoutfs-notify-forward@.service
export DAEMON_UNIT=$src/utils/notifyd/scoutfs-notifyd@.service
san_options "$out/sanitizer"
unshare -m --propagation private python3 "$here/nats_test.py" "$out/work"
