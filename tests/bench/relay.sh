#!/usr/bin/env bash
# Relay throughput, natively (part of `make bench`; scripts/bench.sh
# runs this in a private mount namespace).  For 1, 4 and 16 clients,
# in alternating rounds: the bare sendmmsg loop (the transport's
# limit) and scoutfs-notifyd fed by tests/daemon/fake-scoutfs.c as
# fast as it drains, with clients that take one record per message
# (socat's protocol) and clients that ask for 256 (our tools'), the
# bare loop sending messages of the same size.  Prints `relay:` lines
# for tests/bench/report.py: what was asked, each round's figures, and
# `relay: FAILED ...` for a round that failed (report.py then gives no
# verdict for its clients).
#
#   tests/bench/relay.sh BINDIR     (relay-bench, scoutfs-notifyd, fake-scoutfs.so)
set -euo pipefail

bin=${1:?usage: tests/bench/relay.sh BINDIR}
rounds=${BENCH_RELAY_ROUNDS:-5}
records=${BENCH_RELAY_RECORDS:-200000}
work=$(mktemp -d)
mnt=$work/mnt
mkdir -p "$mnt"
mount -t tmpfs fake "$mnt"
trap 'umount -l "$mnt" 2>/dev/null; rm -rf "$work"' EXIT
fsid=5ca1ab1e0123abcd
sock=$work/run/$fsid/notify.sock

# what was asked, for tests/bench/report.py
echo "relay: rounds $rounds records $records"
for per in 1 256; do
	for n in 1 4 16; do
		for r in $(seq "$rounds"); do
			if out=$("$bin/relay-bench" bare "$n" "$records" "$per"); then
				echo "relay: round $r $out"
			else
				echo "relay: FAILED round $r clients $n per $per: the bare loop exited $?"
			fi
			rm -f "$work/notifyd.log"
			LD_PRELOAD=$bin/fake-scoutfs.so FAKE_SCOUTFS_MNT=$mnt FAKE_SCOUTFS_FSID=$fsid \
				FAKE_SCOUTFS_CTL=$work/ctl "$bin/scoutfs-notifyd" --run-dir "$work/run" "$mnt" \
				2>"$work/notifyd.log" &
			pid=$!
			for _ in $(seq 600); do
				grep -q serving "$work/notifyd.log" 2>/dev/null && break
				sleep 0.05
			done
			if ! grep -q serving "$work/notifyd.log"; then
				echo "relay: FAILED round $r clients $n per $per: scoutfs-notifyd did not start: $(tail -n 2 "$work/notifyd.log")"
			elif out=$("$bin/relay-bench" daemon "$n" "$records" "$sock" "$work/ctl" 2 "$per"); then
				echo "relay: round $r $out"
			else
				echo "relay: FAILED round $r clients $n per $per: relay-bench exited $?"
			fi
			kill -TERM "$pid"
			rc=0
			wait "$pid" || rc=$?
			[ "$rc" -eq 0 ] || echo "relay: FAILED round $r clients $n per $per: scoutfs-notifyd exited $rc on SIGTERM"
		done
	done
done
