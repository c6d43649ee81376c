#!/usr/bin/env bash
# `make bench`: the benchmarks (figures, never pass/fail tests).
#   1. relay throughput, natively: scoutfs-notifyd against the bare
#      sendmmsg loop for 1, 4 and 16 clients (tests/bench/relay.sh)
#   2. forwarder throughput, natively: scoutfs-notifyd and
#      scoutfs-notify-forward into a JetStream stream at 1 and 3
#      replicas (one nats-server, a three-server loopback cluster)
#      against a bare libnats publish loop, and emit-to-consumer latency
#      (tests/bench/nats-bench.py; SKIPPED without libnats/nats-server)
#   3. with SCOUTFS_SRC, in one VM boot: hook cost of pread and
#      open+close for the unpatched module, the patched one with no
#      reader, with the daemon, and with fanotify instead; ring drain
#      under a busy reader; emit-to-client latency (tests/vm/bench.sh)
# The table goes to stdout and build/bench.md (tests/bench/report.py).
#
#   scripts/bench.sh [--src DIR] [--base TAG]
set -euo pipefail

top=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=tests/lib/tools-src.sh
. "$top/tests/lib/tools-src.sh"

# shellcheck source=scripts/lib.sh
. "$top/scripts/lib.sh"

src_base_args "$@"
: "${base:?}"
[ "$(id -u)" -eq 0 ] || die "needs root (tmpfs mounts in a private mount namespace, QEMU)"
mkdir -p "$top/build"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

echo "bench.sh: relay throughput (native)"
SCOUTFS_SRC="" tools_src "$work/src" >/dev/null || die "cannot get the daemon's sources"
mkdir -p "$work/bin"
gcc -std=c11 -Wall -Wextra -Werror -O2 -I"$work/src/kmod/src" \
	-o "$work/bin/scoutfs-notifyd" "$work/src/utils/notifyd/scoutfs-notifyd.c"
gcc -std=c11 -Wall -Wextra -Werror -O2 -fPIC -shared -I"$work/src/kmod/src" \
	-o "$work/bin/fake-scoutfs.so" "$top/tests/daemon/fake-scoutfs.c" -ldl
gcc -std=c11 -Wall -Wextra -Werror -O2 -o "$work/bin/relay-bench" "$top/tests/bench/relay-bench.c"
unshare -m --propagation private "$top/tests/bench/relay.sh" "$work/bin" | tee "$top/build/bench-relay.log"

natsmd=$top/build/bench-nats.md
rm -f "$natsmd"
if pkg-config --exists libnats 2>/dev/null && command -v nats-server >/dev/null &&
	[ -f "$work/src/utils/notifyd/scoutfs-notify-forward.c" ]; then
	echo "bench.sh: forwarder throughput and latency (native, NATS JetStream)"
	make -s -C "$work/src/utils/notifyd" NOTIFY_NATS=1 scoutfs-notify-forward scoutfs-notify-watch-nats
	cp "$work/src/utils/notifyd/scoutfs-notify-forward" "$work/src/utils/notifyd/scoutfs-notify-watch-nats" "$work/bin/"
	read -ra natsflags <<<"$(pkg-config --cflags --libs libnats)"
	gcc -std=c11 -Wall -Wextra -Werror -O2 -o "$work/bin/tnats" "$top/tests/nats/tnats.c" "${natsflags[@]}"
	unshare -m --propagation private python3 "$top/tests/bench/nats-bench.py" "$work/bin" | tee "$natsmd"
else
	echo "bench.sh: SKIPPED: the NATS benchmark: libnats-dev, nats-server or patch 4 missing"
fi

vmlog=()
if [ -n "$src" ]; then
	echo "bench.sh: hook cost, ring drain and latency (VM, scoutfs $base)"
	"$top/scripts/build-scoutfs.sh" --src "$src" --base "$base" --out "$top/build/vm/$base"
	"$top/scripts/build-scoutfs.sh" --src "$src" --base "$base" --no-series \
		--out "$top/build/vm/$base-unpatched"
	"$top/scripts/vm-run.sh" --out "$top/build/vm/$base" --suite bench --timeout 1800 \
		--base-ko "$top/build/vm/$base-unpatched/scoutfs.ko" | grep -E '^(bench|FAIL)' || true
	vmlog=("$top/build/vm/$base/console.log")
else
	echo "bench.sh: SKIPPED: the VM benchmarks (hook cost, ring drain, latency): SCOUTFS_SRC is not set"
fi

{
	echo "Made by \`make bench\` on $(date -u +%Y-%m-%d) ($(nproc) CPUs; the VM runs under TCG emulation, so compare ratios, not absolute times)."
	echo
	python3 "$top/tests/bench/report.py" "$top/build/bench-relay.log" "${vmlog[@]}"
	if [ -f "$natsmd" ]; then
		echo
		cat "$natsmd"
	fi
} >"$top/build/bench.md"
cat "$top/build/bench.md"
