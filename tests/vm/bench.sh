#!/bin/sh
# The in-VM half of `make bench` (guest.sh's bench suite): hook cost of
# 4 KiB preads from page cache and of open+close on one scoutfs file,
# for the unpatched module of the same release (/modules/scoutfs-base.ko)
# and the patched one with no reader, with scoutfs-notifyd and a client
# attached, and with no reader but fanotify watching instead; rounds
# alternate the four so drift hits all alike.  Then ring drain under a
# busy reader and emit-to-client latency.  Prints `bench:` lines that
# scripts/bench.sh turns into the table.
set -u

MNT=$1
ROUNDS=${BENCH_ROUNDS:-7}
PREADS=${BENCH_PREADS:-50000}
OPENS=${BENCH_OPENS:-5000}
# shellcheck source=tests/vm/lib.sh
. /t/lib.sh

mount_with() {
	insmod "$1" || return 1
	scoutfs mkfs -A -f -Q 0,127.0.0.1,53000 /dev/ram0 /dev/ram1 >/dev/null 2>&1 || return 1
	mount -t scoutfs -o metadev_path=/dev/ram0,quorum_slot_nr=0 /dev/ram1 "$MNT" || return 1
	dd if=/dev/urandom of="$MNT/f" bs=64k count=1 2>/dev/null
	FSID=$(stat -f -c %i "$MNT")
	SOCK=/run/scoutfs/$FSID/notify.sock
}

unmount() {
	umount "$MNT" && rmmod scoutfs
}

measure() {
	echo "bench: round $1 mode $2 pread_ns $(hookbench pread "$MNT/f" "$PREADS") open_ns $(hookbench open "$MNT/f" "$OPENS")"
}

client_connected() {
	[ "$(sock_clients "$SOCK")" -ge 1 ]
}

start_daemon() {
	rm -f /tmp/notifyd.log
	scoutfs-notifyd "$MNT" 2>/tmp/notifyd.log &
	DPID=$!
	WPID=""
	wait_for 30 grep -q serving /tmp/notifyd.log || return 1
	scoutfs-notify-watch --no-paths "$MNT" >/dev/null &
	WPID=$!
	wait_for 30 client_connected
}

stop_daemon() {
	[ -z "$WPID" ] || kill "$WPID" 2>/dev/null
	kill -TERM "$DPID"
	wait "$DPID" 2>/dev/null
	[ -z "$WPID" ] || wait "$WPID" 2>/dev/null
}

r=1
while [ $r -le "$ROUNDS" ]; do
	if mount_with /modules/scoutfs-base.ko; then
		measure $r unpatched
		unmount
	else
		echo "bench: FAILED to mount the unpatched module"
		fail=$((fail + 1))
	fi
	if mount_with /modules/scoutfs.ko; then
		measure $r no_reader
		if start_daemon; then
			measure $r notifyd
		else
			echo "bench: FAILED to start scoutfs-notifyd and a client"
			cat /tmp/notifyd.log
			fail=$((fail + 1))
		fi
		stop_daemon
		rm -f /tmp/fan.ready
		hookbench fanotify "$MNT" /tmp/fan.ready >/tmp/fan.out &
		FPID=$!
		if wait_for 30 test -e /tmp/fan.ready; then
			measure $r fanotify
		else
			fail=$((fail + 1))
		fi
		kill -TERM $FPID
		wait $FPID
		unmount
	fi
	r=$((r + 1))
done

# ring drain: one process reading as fast as it can, the daemon and a
# client attached
mount_with /modules/scoutfs.ko
start_daemon || fail=$((fail + 1))
e0=$(cat /sys/fs/scoutfs/*/counters/notify_emitted)
d0=$(cat /sys/fs/scoutfs/*/counters/notify_dropped_ring_full)
t0=$(awk '{print $14 + $15}' /proc/$DPID/stat)
reads=$(hookbench busyread "$MNT/f" 5)
kill -USR1 $DPID
wait_for 10 grep -q 'stats: drained' /tmp/notifyd.log
t1=$(awk '{print $14 + $15}' /proc/$DPID/stat)
e1=$(cat /sys/fs/scoutfs/*/counters/notify_emitted)
d1=$(cat /sys/fs/scoutfs/*/counters/notify_dropped_ring_full)
echo "bench: drain reads $reads emitted $((e1 - e0)) dropped $((d1 - d0)) daemon_ticks $((t1 - t0)) hz 100"

# latency: paced reads, a client timing each READ's arrival
hookbench latency "$SOCK" 2000 >/tmp/lat.out &
LPID=$!
wait_for 30 grep -q connected /tmp/lat.out
hookbench paced "$MNT/f" 2000 500
wait $LPID
echo "bench: $(grep latency_us /tmp/lat.out)"
stop_daemon
unmount

[ "$fail" -ne 0 ] || pass=1
echo "bench: $pass passed, $fail failed"
