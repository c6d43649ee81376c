#!/bin/sh
# The in-VM half of `make bench` (guest.sh's bench suite), run once per
# clock: scripts/bench.sh boots the VM twice, with the guest's clock
# following the host's (notify.clock=wall, the method of the first
# benchmarks) and following the instructions executed (QEMU -icount,
# notify.clock=icountN; docs/benchmarks.md says what that does and does
# not capture).  Prints `bench:` lines that tests/bench/report.py turns
# into the table.
#
# 1. Hook cost of 4 KiB preads from page cache and of open+close on one
#    scoutfs file, for the unpatched module of the same release
#    (/modules/scoutfs-base.ko) and the patched one with no reader,
#    with scoutfs-notifyd and a client attached, and with no reader but
#    fanotify watching instead; rounds alternate the four so drift hits
#    all alike.  Under icount the rounds are more and shorter.
# 2. Ring drain: one process reading as fast as it can and a CPU hog
#    competing with it (and with the daemon and its client) for the
#    vCPUs, in rounds alternating the daemon of the series and, when
#    the VM has it, the old daemon (/usr/sbin/scoutfs-notifyd-old: no
#    batched reads, a 1 ms coalescing sleep): records dropped and the
#    daemon's CPU time (/proc/PID/schedstat) per record.
# 3. Emit-to-client latency with records trickling (paced reads), for
#    the same daemons.
# A step that fails prints `bench: FAILED <section> ...: why` (section
# hook, drain or latency, with its round and daemon) and is counted in
# the closing `bench: N passed, N failed`; what was asked (rounds, reads,
# latency samples) is in the first line, what was lost in each line
# (ring-full drops and the client's losses): tests/bench/report.py gives
# a verdict only to figures whose rounds are all there and whole.
set -u

MNT=$1
CLOCK=$(sed -n 's/.*notify\.clock=\([^ ]*\).*/\1/p' /proc/cmdline)
case "$CLOCK" in
icount*)
	ROUNDS=15 PREADS=20000 OPENS=2000 DRAIN_ROUNDS=3 DRAIN_SECS=2 ;;
*)
	CLOCK=wall ROUNDS=7 PREADS=50000 OPENS=5000 DRAIN_ROUNDS=3 DRAIN_SECS=2 ;;
esac
LAT_N=2000
# shellcheck source=tests/vm/lib.sh
. /t/lib.sh

# the series' daemon, then each variant the VM has: scoutfs-notifyd-NAME
# (old: patch 3 as of 8c5a7f2; others: builds to compare in one run)
DAEMONS=new
for b in /usr/sbin/scoutfs-notifyd-*; do
	[ -x "$b" ] && DAEMONS="$DAEMONS ${b#/usr/sbin/scoutfs-notifyd-}"
done
echo "bench: clock $CLOCK cpus $(grep -c ^processor /proc/cpuinfo) rounds $ROUNDS preads $PREADS opens $OPENS daemons $DAEMONS drain_rounds $DRAIN_ROUNDS lat_n $LAT_N"

# failed SECTION WHY: a step that failed, counted
failed() {
	echo "bench: FAILED $1: $2"
	fail=$((fail + 1))
}

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

# measure ROUND MODE: elapsed ns/op and the benchmark's own CPU ns/op;
# what was lost meanwhile too (ring-full drops, and with the daemon
# attached the client's losses)
measure() {
	d0=$(counter notify_dropped_ring_full)
	read -r p_ns p_cpu <<EOF
$(hookbench pread "$MNT/f" "$PREADS")
EOF
	read -r o_ns o_cpu <<EOF
$(hookbench open "$MNT/f" "$OPENS")
EOF
	if ! numbers "$p_ns" "$p_cpu" "$o_ns" "$o_cpu"; then
		failed "hook round $1 mode $2" "hookbench gave no figures ('$p_ns $p_cpu' '$o_ns $o_cpu')"
		return
	fi
	loss="dropped $(($(counter notify_dropped_ring_full) - d0))"
	[ "$2" != notifyd ] || loss="$loss client_lost $(client_lost)"
	echo "bench: round $1 mode $2 pread_ns $p_ns open_ns $o_ns pread_cpu_ns $p_cpu open_cpu_ns $o_cpu $loss"
}

# numbers X...: each is a number (hookbench prints figures like 12.5)
numbers() {
	for x in "$@"; do
		case "$x" in '' | *[!0-9.]*) return 1 ;; esac
	done
}

client_connected() {
	[ "$(sock_clients "$SOCK")" -ge 1 ]
}

# start_daemon [new|NAME]: the daemon (or scoutfs-notifyd-NAME) and a
# scoutfs-notify-watch client
start_daemon() {
	bin=scoutfs-notifyd
	[ "${1:-new}" = new ] || bin=scoutfs-notifyd-$1
	rm -f /tmp/notifyd.log
	"$bin" "$MNT" 2>/tmp/notifyd.log &
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

counter() {
	cat /sys/fs/scoutfs/*/counters/"$1"
}

# the CPU time a task has run, in ns (the first field of schedstat)
cpu_ns() {
	read -r ns _ </proc/"$1"/schedstat
	echo "$ns"
}

stats_lines() {
	grep -c 'stats: drained' /tmp/notifyd.log
}

lines_gt() {
	[ "$(stats_lines)" -gt "$1" ]
}

# client_lost: what the daemon dropped for its client so far (SIGUSR1
# makes it log its stats once it has drained what it found); "?" when it
# did not say
client_lost() {
	s0=$(stats_lines)
	kill -USR1 "$DPID"
	if wait_for 30 lines_gt "$s0"; then
		grep 'stats: drained' /tmp/notifyd.log | tail -n 1 | sed -n 's/.*client_lost \([0-9]*\).*/\1/p'
	else
		echo "?"
	fi
}

# hook_round ROUND: the four configurations, one after the other
hook_round() {
	if mount_with /modules/scoutfs-base.ko; then
		measure "$1" unpatched
		unmount || failed "hook round $1" "unmount of the unpatched module"
	else
		failed "hook round $1" "mount with the unpatched module"
	fi
	if ! mount_with /modules/scoutfs.ko; then
		failed "hook round $1" "mount with the patched module"
		return
	fi
	measure "$1" no_reader
	if start_daemon new; then
		measure "$1" notifyd
	else
		failed "hook round $1 mode notifyd" "scoutfs-notifyd and a client did not start"
		cat /tmp/notifyd.log
	fi
	stop_daemon
	rm -f /tmp/fan.ready
	hookbench fanotify "$MNT" /tmp/fan.ready >/tmp/fan.out &
	FPID=$!
	if wait_for 30 test -e /tmp/fan.ready; then
		measure "$1" fanotify
	else
		failed "hook round $1 mode fanotify" "the fanotify reader did not mark the filesystem"
	fi
	kill -TERM $FPID
	wait $FPID
	unmount || failed "hook round $1" "unmount of the patched module"
}

# drain_round ROUND DAEMON: a busy reader and a CPU hog for DRAIN_SECS
drain_round() {
	what="drain round $1 daemon $2"
	if ! start_daemon "$2"; then
		failed "$what" "the daemon and a client did not start"
		stop_daemon
		return
	fi
	rm -f /tmp/hog.ready
	hookbench hog /tmp/hog.ready $((DRAIN_SECS + 60)) &
	HPID=$!
	wait_for 30 test -e /tmp/hog.ready || failed "$what" "the CPU hog did not start"
	e0=$(counter notify_emitted)
	d0=$(counter notify_dropped_ring_full)
	t0=$(cpu_ns "$DPID")
	reads=$(hookbench busyread "$MNT/f" "$DRAIN_SECS")
	kill -TERM $HPID
	wait $HPID
	lost=$(client_lost)
	t1=$(cpu_ns "$DPID")
	e1=$(counter notify_emitted)
	d1=$(counter notify_dropped_ring_full)
	numbers "$reads" || failed "$what" "the busy reader gave no count ('$reads')"
	[ "$lost" != "?" ] || failed "$what" "the daemon did not log its stats"
	[ $((e1 - e0)) -gt 0 ] || failed "$what" "no record emitted"
	echo "bench: drain round $1 daemon $2 reads ${reads:-?} emitted $((e1 - e0)) dropped $((d1 - d0)) client_lost $lost daemon_ns $((t1 - t0))"
	stop_daemon
}

# latency_run DAEMON: paced reads, a client timing each READ's arrival
latency_run() {
	if ! start_daemon "$1"; then
		failed "latency daemon $1" "the daemon and a client did not start"
		stop_daemon
		return
	fi
	rm -f /tmp/lat.out
	hookbench latency "$SOCK" $LAT_N >/tmp/lat.out &
	LPID=$!
	wait_for 30 grep -q connected /tmp/lat.out ||
		failed "latency daemon $1" "the timing client did not connect"
	hookbench paced "$MNT/f" $LAT_N 500
	# a lost record never comes: the client then stops with what it has
	wait_for 30 gone "$LPID" || kill -TERM "$LPID"
	wait "$LPID" || failed "latency daemon $1" "the timing client exited $?"
	echo "bench: latency daemon $1 asked $LAT_N $(grep latency_us /tmp/lat.out)"
	stop_daemon
}

r=1
while [ $r -le "$ROUNDS" ]; do
	hook_round $r
	r=$((r + 1))
done

# ring drain and latency: the daemons alternating on one mount
if mount_with /modules/scoutfs.ko; then
	r=1
	while [ $r -le "$DRAIN_ROUNDS" ]; do
		for d in $DAEMONS; do
			drain_round $r "$d"
		done
		r=$((r + 1))
	done
	for d in $DAEMONS; do
		latency_run "$d"
	done
	unmount || failed "latency" "unmount"
else
	failed "drain" "mount with the patched module"
	failed "latency" "mount with the patched module"
fi

[ "$fail" -ne 0 ] || pass=1
echo "bench: $pass passed, $fail failed"
