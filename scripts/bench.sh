#!/usr/bin/env bash
# `make bench`: the benchmarks (figures, never pass/fail tests).
#   1. relay throughput, natively: scoutfs-notifyd against the bare
#      sendmmsg loop for 1, 4 and 16 clients, one record per message
#      and 256 (tests/bench/relay.sh)
#   2. where the user-space instructions per record go, natively: the
#      daemon, the client and the forwarder under valgrind's callgrind,
#      the series before merged records and batches (commit c465d13)
#      against now (tests/bench/stages.py)
#   3. forwarder throughput, natively: scoutfs-notifyd and
#      scoutfs-notify-forward into a JetStream stream at 1 and 3
#      replicas (one nats-server, a three-server loopback cluster)
#      against a bare libnats publish loop, and emit-to-consumer latency
#      (tests/bench/nats-bench.py; SKIPPED without libnats/nats-server)
#   4. with SCOUTFS_SRC, in two VM boots, one with the guest's clock
#      following the host's (wall) and one following the instructions
#      executed (QEMU -icount, one vCPU; docs/benchmarks.md): hook cost
#      of pread and open+close for the unpatched module, the patched one
#      with no reader, with the daemon, and with fanotify instead; ring
#      drain under a busy reader and a CPU hog, the daemon against the
#      old one (patch 3 as of commit 8c5a7f2, built from this
#      repository's history: no batched reads, 1 ms coalescing sleep);
#      emit-to-client latency; the stages on a real kernel (each
#      process's CPU per record and per call); a 1 GiB file read 4 KiB
#      at a time, records against calls in the ring, at the client and
#      in the stream (tests/vm/bench.sh)
#   5. the access index, natively (tests/bench/index-bench.py): ingest
#      against a bare loop of the same upserts and a bare consumer of
#      the same stream, bytes per file, cold queries over 1M and 10M
#      synthetic files, SQLite and PostgreSQL (what it needs installed by
#      scripts/deps.sh index; SKIPPED when that cannot be done)
# The table goes to stdout and build/bench.md (tests/bench/report.py).
# BENCH_CLOCKS="icount" (or "wall") boots only that one.
# BENCH_DAEMONS="NAME=FILE.c ..." also builds each FILE.c (a variant of
# utils/notifyd/scoutfs-notifyd.c) as scoutfs-notifyd-NAME and measures
# it beside the others in the drain and latency rounds (NAME: letters,
# digits, _), so that a daemon change is compared in one run.
#
# --only relay|stages|nats|vm|index runs that part alone.
#
#   scripts/bench.sh [--src DIR] [--base TAG] [--only PART]
set -euo pipefail

top=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=tests/lib/tools-src.sh
. "$top/tests/lib/tools-src.sh"

# shellcheck source=scripts/lib.sh
. "$top/scripts/lib.sh"

# the daemon before batched reads, for the ring drain comparison
old_rev=8c5a7f2
# the tools before merged records and batched relay, for the stages
before_rev=c465d13
old_patch=patches/0003-scoutfs-add-scoutfs-notifyd-relay-daemon-and-notify-.patch
icount_shift=0
clocks=${BENCH_CLOCKS:-wall icount}

only=""
args=()
while [ $# -gt 0 ]; do
	case "$1" in
	--only) only=${2:?--only needs relay, stages, nats, vm or index}; shift 2 ;;
	*) args+=("$1"); shift ;;
	esac
done
case "$only" in '' | relay | stages | nats | vm | index) ;; *) die "--only takes relay, stages, nats, vm or index" ;; esac
# part NAME: run part NAME (all of them without --only)
part() {
	[ -z "$only" ] || [ "$only" = "$1" ]
}
src_base_args "${args[@]}"
: "${base:?}"
[ "$(id -u)" -eq 0 ] || die "needs root (tmpfs mounts in a private mount namespace, QEMU)"
mkdir -p "$top/build"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

SCOUTFS_SRC="" tools_src "$work/src" >/dev/null || die "cannot get the daemon's sources"
mkdir -p "$work/bin"
gcc -std=c11 -Wall -Wextra -Werror -O2 -I"$work/src/kmod/src" \
	-o "$work/bin/scoutfs-notifyd" "$work/src/utils/notifyd/scoutfs-notifyd.c" \
	"$work/src/utils/notifyd/notify-sock.c"
gcc -std=c11 -Wall -Wextra -Werror -O2 -fPIC -shared -I"$work/src/kmod/src" \
	-o "$work/bin/fake-scoutfs.so" "$top/tests/daemon/fake-scoutfs.c" -ldl
rm -f "$top/build/bench-relay.log"
if part relay; then
	echo "bench.sh: relay throughput (native)"
	gcc -std=c11 -Wall -Wextra -Werror -O2 -o "$work/bin/relay-bench" "$top/tests/bench/relay-bench.c"
	unshare -m --propagation private "$top/tests/bench/relay.sh" "$work/bin" | tee "$top/build/bench-relay.log"
fi

# build_tools SRC OUT: the daemon, the client and (with libnats) the
# forwarder of tree SRC (utils/notifyd/, kmod/src/notify-abi.h,
# tests/lib/ioctl-prelude.h) into OUT, -O2 -g, with only small functions
# inlined, so that callgrind gives each stage's function its own cost
build_tools() {
	local src=$1 out=$2 n=$1/utils/notifyd f sock=() nf
	mkdir -p "$out/inc"
	{ cat "$src/tests/lib/ioctl-prelude.h" "$src/kmod/src/notify-abi.h"; echo "#endif"; } >"$out/inc/ioctl.h"
	f=(-std=c11 -Wall -Wextra -Werror -O2 -g -fno-inline-functions -fno-inline-functions-called-once -I"$out/inc")
	[ ! -f "$n/notify-sock.c" ] || sock=("$n/notify-sock.c")
	gcc "${f[@]}" -o "$out/scoutfs-notifyd" "$n/scoutfs-notifyd.c" "${sock[@]}" &&
		gcc "${f[@]}" -o "$out/scoutfs-notify-watch" "$n/scoutfs-notify-watch.c" \
			"$n/notify-format.c" "$n/notify-path.c" "${sock[@]}" || return 1
	pkg-config --exists libnats 2>/dev/null || return 0
	read -ra nf <<<"$(pkg-config --cflags --libs libnats)"
	gcc "${f[@]}" -o "$out/scoutfs-notify-forward" "$n/scoutfs-notify-forward.c" "$n/notify-format.c" \
		"$n/notify-json.c" "$n/notify-nats.c" "$n/notify-path.c" "${sock[@]}" "${nf[@]}" -lpthread
}

stagesmd=$top/build/bench-stages.md
rm -f "$stagesmd"
mkdir -p "$work/before-src"
if ! part stages; then
	:
elif echo "bench.sh: where the instructions per record go (native, callgrind)" &&
	"$top/scripts/deps.sh" bench && git -C "$top" archive "$before_rev" utils/notifyd kmod/src/notify-abi.h \
	tests/lib/ioctl-prelude.h | tar -x -C "$work/before-src" &&
	build_tools "$work/before-src" "$work/stages-before" && build_tools "$top" "$work/stages-after"; then
	cp "$work/bin/fake-scoutfs.so" "$work/stages-after/"
	if pkg-config --exists libnats 2>/dev/null; then
		read -ra natsflags <<<"$(pkg-config --cflags --libs libnats)"
		gcc -std=c11 -Wall -Wextra -Werror -O2 -o "$work/stages-after/tnats" "$top/tests/nats/tnats.c" "${natsflags[@]}"
	fi
	unshare -m --propagation private python3 "$top/tests/bench/stages.py" "$work/stages-after" \
		"$work/stages-before" | tee "$stagesmd"
else
	echo "bench.sh: SKIPPED: the stages: cannot build the tools of $before_rev and now, or no valgrind"
fi

natsmd=$top/build/bench-nats.md
rm -f "$natsmd"
if ! part nats; then
	:
elif pkg-config --exists libnats 2>/dev/null && command -v nats-server >/dev/null &&
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

indexmd=$top/build/bench-index.md
rm -f "$indexmd"
if ! part index; then
	:
elif "$top/scripts/deps.sh" index && pkg-config --exists sqlite3 libpq libnats 2>/dev/null &&
	command -v nats-server >/dev/null && [ -x /usr/lib/postgresql/15/bin/initdb ] &&
	[ -f "$work/src/utils/notifyd/heat.mk" ]; then
	echo "bench.sh: the access index (native, SQLite and PostgreSQL, NATS JetStream)"
	make -s -C "$work/src/utils/notifyd" NOTIFY_HEAT=1 scoutfs-notify-heat
	cp "$work/src/utils/notifyd/scoutfs-notify-heat" "$work/bin/"
	read -ra heatflags <<<"$(pkg-config --cflags --libs sqlite3 libpq libnats)"
	(cd "$work/src/utils/notifyd" && gcc -std=c11 -Wall -Wextra -Werror -O2 -DHEAT_PG -I../../kmod/src \
		-I. -o "$work/bin/heat-upsert" "$top/tests/bench/heat-upsert.c" heat-store.c heat-sqlite.c \
		heat-pg.c heat-apply.c notify-format.c notify-json.c "${heatflags[@]}" -lm)
	read -ra natsflags <<<"$(pkg-config --cflags --libs libnats)"
	gcc -std=c11 -Wall -Wextra -Werror -O2 -o "$work/bin/tnats" "$top/tests/nats/tnats.c" "${natsflags[@]}"
	python3 "$top/tests/bench/index-bench.py" "$work/bin" | tee "$indexmd"
else
	echo "bench.sh: SKIPPED: the access index benchmark: SQLite, libpq, libnats, PostgreSQL or nats-server not installed (scripts/deps.sh index), or commit 5 missing"
fi
# vm_bench CLOCK VM-RUN-ARGS...: one boot of the bench suite; its console
# to build/bench-CLOCK.log (made fresh), with a `bench.sh:` line that
# tests/bench/report.py reads when the run failed (vm-run.sh's exit
# status, or no closing line after this run's nonce): every verdict of
# that clock is then "not measured"
vm_bench() {
	local clock=$1 log=$top/build/bench-$1.log nonce rc=0 closing
	shift
	nonce=$(run_nonce)
	rm -f "$log"
	"$top/scripts/vm-run.sh" --out "$vm" --suite bench --timeout 3600 --nonce "$nonce" \
		--base-ko "$vm-unpatched/scoutfs.ko" "$@" >"$work/vm-$clock.out" 2>&1 || rc=$?
	grep -E '^(bench|FAIL|vm-run)' "$work/vm-$clock.out" || true
	if [ -f "$vm/console.log" ]; then
		cp "$vm/console.log" "$log"
	else
		tail -n 5 "$work/vm-$clock.out" >"$log"
	fi
	closing=$(guest_closing "$log" "$nonce" guest)
	[ "$rc" -eq 0 ] || echo "bench.sh: FAILED: scripts/vm-run.sh exited $rc" | tee -a "$log"
	[ -n "$closing" ] ||
		echo "bench.sh: FAILED: no closing line of this run's guest (guest: run $nonce)" | tee -a "$log"
}

vmlog=()
if ! part vm; then
	echo "bench.sh: --only $only: not the VM benchmarks"
elif [ -n "$src" ]; then
	echo "bench.sh: hook cost, ring drain, latency, the stages and a 1 GiB read (VM, scoutfs $base)"
	vm=$top/build/vm/$base
	"$top/scripts/build-scoutfs.sh" --src "$src" --base "$base" --out "$vm"
	"$top/scripts/build-scoutfs.sh" --src "$src" --base "$base" --no-series \
		--out "$vm-unpatched"
	daemons=()
	if git -C "$top" show "$old_rev:$old_patch" >"$work/old.patch" 2>/dev/null &&
		mkdir -p "$work/old" &&
		git -C "$work/old" apply --include=utils/notifyd/scoutfs-notifyd.c "$work/old.patch" &&
		gcc -std=c11 -Wall -Wextra -Werror -O2 -g -I"$vm/src/kmod/src" \
			-o "$work/bin/scoutfs-notifyd-old" "$work/old/utils/notifyd/scoutfs-notifyd.c"; then
		echo "bench.sh: old daemon built from $old_rev:$old_patch"
		daemons+=(--bin "$work/bin/scoutfs-notifyd-old")
	else
		echo "bench.sh: SKIPPED: the old daemon (no $old_rev in this repository's history?)"
	fi
	for v in ${BENCH_DAEMONS:-}; do
		name=${v%%=*}
		case "$name" in '' | *[!A-Za-z0-9_]* | "$v") die "BENCH_DAEMONS: '$v' is not NAME=FILE.c" ;; esac
		gcc -std=c11 -Wall -Wextra -Werror -O2 -g -I"$vm/src/kmod/src" -I"$vm/src/utils/notifyd" \
			-o "$work/bin/scoutfs-notifyd-$name" "${v#*=}" "$vm/src/utils/notifyd/notify-sock.c" ||
			die "cannot build '${v#*=}'"
		daemons+=(--bin "$work/bin/scoutfs-notifyd-$name")
	done
	for clock in $clocks; do
		args=()
		case "$clock" in
		wall) ;;
		icount) args=(--icount "$icount_shift") ;;
		*) die "BENCH_CLOCKS: unknown clock '$clock'" ;;
		esac
		vm_bench "$clock" "${daemons[@]}" "${args[@]}"
		vmlog+=(--"$clock" "$top/build/bench-$clock.log")
	done
else
	echo "bench.sh: SKIPPED: the VM benchmarks (hook cost, ring drain, latency, the stages, a 1 GiB read): SCOUTFS_SRC is not set"
fi

{
	echo "Made by \`make bench\` on $(date -u +%Y-%m-%d) ($(nproc) host CPUs; the VM runs under TCG emulation, so compare ratios, not absolute times)."
	echo
	# without the relay part (--only vm) its table says "not measured"
	relaylog=$top/build/bench-relay.log
	[ -f "$relaylog" ] || relaylog=/dev/null
	if [ "$relaylog" != /dev/null ] || [ ${#vmlog[@]} -gt 0 ]; then
		python3 "$top/tests/bench/report.py" "$relaylog" "${vmlog[@]}"
	fi
	for md in "$stagesmd" "$natsmd" "$indexmd"; do
		if [ -f "$md" ]; then
			echo
			cat "$md"
		fi
	done
} >"$top/build/bench.md"
cat "$top/build/bench.md"
