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
# 4. Where the cost per record goes (the stages): the same busy reader
#    alone, with a reader of its own that only drains (hookbench drain),
#    and with the daemon and a client printing text without paths, with
#    paths, or JSON; and the daemon with --no-merge and a client taking
#    one record per message (the records and protocol before merging and
#    batches): each process's CPU time per record and per call.
# 5. A 1 GiB file read sequentially with 4 KiB read(2)s while the daemon,
#    a client and (where the VM has NATS) the forwarder into a local
#    JetStream are attached: records against calls, and bytes, in the
#    ring, at the client and in the stream.
# The daemons: "new" is the series' (merging, a client asking for
# batches), "nomerge" the same with --no-merge (every call a record, as
# auditors run it), "old" patch 3 as of 8c5a7f2 (its client one record
# per message), and any scoutfs-notifyd-NAME the VM has.
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
DAEMONS="new nomerge"
for b in /usr/sbin/scoutfs-notifyd-*; do
	[ -x "$b" ] && DAEMONS="$DAEMONS ${b#/usr/sbin/scoutfs-notifyd-}"
done
echo "bench: clock $CLOCK cpus $(grep -c ^processor /proc/cpuinfo) rounds $ROUNDS preads $PREADS opens $OPENS daemons $DAEMONS"

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

# elapsed ns/op and the benchmark's own CPU ns/op
measure() {
	read -r p_ns p_cpu <<EOF
$(hookbench pread "$MNT/f" "$PREADS")
EOF
	read -r o_ns o_cpu <<EOF
$(hookbench open "$MNT/f" "$OPENS")
EOF
	echo "bench: round $1 mode $2 pread_ns $p_ns open_ns $o_ns pread_cpu_ns $p_cpu open_cpu_ns $o_cpu"
}

client_connected() {
	[ "$(sock_clients "$SOCK")" -ge 1 ]
}

clients_ge() {
	[ "$(sock_clients "$SOCK")" -ge "$1" ]
}

# start_daemon [new|nomerge|NAME [CLIENT_OPTS]]: the daemon (with
# --no-merge, or scoutfs-notifyd-NAME) and a scoutfs-notify-watch client
# (--no-paths, asking for batches with the series' daemon, merging or
# not; one record per message with the others; or CLIENT_OPTS) writing
# to CLIENT_OUT
start_daemon() {
	bin=scoutfs-notifyd
	dopt=""
	copt="--no-paths --one-per-message"
	case "${1:-new}" in
	new) copt="--no-paths" ;;
	nomerge) dopt=--no-merge copt="--no-paths" ;;
	*) bin=scoutfs-notifyd-$1 ;;
	esac
	[ -z "${2:-}" ] || copt=$2
	rm -f /tmp/notifyd.log
	# shellcheck disable=SC2086 # the options are words
	"$bin" $dopt "$MNT" 2>/tmp/notifyd.log &
	DPID=$!
	WPID=""
	wait_for 30 grep -q serving /tmp/notifyd.log || return 1
	# shellcheck disable=SC2086
	scoutfs-notify-watch $copt "$MNT" >"${CLIENT_OUT:-/dev/null}" &
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
		if start_daemon new; then
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

# ring drain: a busy reader and a CPU hog, the daemons alternating
mount_with /modules/scoutfs.ko
r=1
while [ $r -le "$DRAIN_ROUNDS" ]; do
	for d in $DAEMONS; do
		if ! start_daemon "$d"; then
			echo "bench: FAILED to start the $d daemon"
			fail=$((fail + 1))
			stop_daemon
			continue
		fi
		rm -f /tmp/hog.ready
		hookbench hog /tmp/hog.ready $((DRAIN_SECS + 60)) &
		HPID=$!
		wait_for 30 test -e /tmp/hog.ready || fail=$((fail + 1))
		s0=$(stats_lines)
		e0=$(counter notify_emitted)
		m0=$(counter notify_merged)
		d0=$(counter notify_dropped_ring_full)
		t0=$(cpu_ns "$DPID")
		w0=$(cpu_ns "$WPID")
		read -r reads _ <<EOF
$(hookbench busyread "$MNT/f" "$DRAIN_SECS")
EOF
		kill -TERM $HPID
		wait $HPID
		# the daemon logs its counts once it has drained what it found
		kill -USR1 "$DPID"
		wait_for 30 lines_gt "$s0" || fail=$((fail + 1))
		t1=$(cpu_ns "$DPID")
		w1=$(cpu_ns "$WPID")
		e1=$(counter notify_emitted)
		m1=$(counter notify_merged)
		d1=$(counter notify_dropped_ring_full)
		lost=$(grep 'stats: drained' /tmp/notifyd.log | tail -n 1 | sed -n 's/.*client_lost \([0-9]*\).*/\1/p')
		echo "bench: drain round $r daemon $d reads $reads emitted $((e1 - e0)) dropped $((d1 - d0)) client_lost ${lost:-?} daemon_ns $((t1 - t0)) merged $((m1 - m0)) client_ns $((w1 - w0))"
		stop_daemon
	done
	r=$((r + 1))
done

# the stages: the busy reader, no hog, DRAIN_SECS a configuration;
# the CPU of the reader itself, the daemon (or a reader that only
# drains) and the client
stage() {
	name=$1
	e0=$(counter notify_emitted)
	m0=$(counter notify_merged)
	d0=$(counter notify_dropped_ring_full)
	t0=0 w0=0
	[ -z "$DPID" ] || t0=$(cpu_ns "$DPID")
	[ -z "$WPID" ] || w0=$(cpu_ns "$WPID")
	read -r reads rns <<EOF
$(hookbench busyread "$MNT/f" "$DRAIN_SECS")
EOF
	t1=0 w1=0
	if [ -n "$DPID" ]; then
		s0=$(stats_lines)
		kill -USR1 "$DPID"
		wait_for 30 lines_gt "$s0" || fail=$((fail + 1))
		t1=$(cpu_ns "$DPID")
	fi
	[ -z "$WPID" ] || w1=$(cpu_ns "$WPID")
	# the daemon's drains and messages (it was started for this stage)
	dm=$(grep 'stats: drained' /tmp/notifyd.log 2>/dev/null | tail -n 1 | sed -n 's/.* drains \([0-9]*\) messages \([0-9]*\).*/drains \1 messages \2/p')
	echo "bench: stage $name reads $reads records $(($(counter notify_emitted) - e0)) merged $(($(counter notify_merged) - m0)) dropped $(($(counter notify_dropped_ring_full) - d0)) reader_ns $rns daemon_ns $((t1 - t0)) client_ns $((w1 - w0)) $dm"
}
DPID="" WPID=""
stage none
rm -f /tmp/drain.ready
hookbench drain "$MNT" /tmp/drain.ready >/tmp/drain.out &
RPID=$!
if wait_for 30 test -e /tmp/drain.ready; then
	read -r reads rns <<EOF
$(hookbench busyread "$MNT/f" "$DRAIN_SECS")
EOF
	kill -TERM $RPID
	wait $RPID
	echo "bench: stage drainonly reads $reads reader_ns $rns $(cat /tmp/drain.out)"
else
	fail=$((fail + 1))
fi
for cfg in "new text --no-paths" "new paths --json" "new json --no-paths --json" \
	"nomerge text --no-paths --one-per-message"; do
	# shellcheck disable=SC2086 # the words of cfg
	set -- $cfg
	d=$1 what=$2
	shift 2
	if start_daemon "$d" "$*"; then
		stage "$d-$what"
	else
		fail=$((fail + 1))
	fi
	stop_daemon
done

# latency: paced reads, a client timing each READ's arrival
for d in $DAEMONS; do
	if ! start_daemon "$d"; then
		fail=$((fail + 1))
		stop_daemon
		continue
	fi
	hookbench latency "$SOCK" $LAT_N >/tmp/lat.out &
	LPID=$!
	wait_for 30 grep -q connected /tmp/lat.out
	hookbench paced "$MNT/f" $LAT_N 500
	wait $LPID
	echo "bench: latency daemon $d $(grep latency_us /tmp/lat.out)"
	stop_daemon
done
unmount

# a 1 GiB file read 4 KiB at a time: records in the ring, at the client
# and in the stream; "records calls bytes" of the READ lines of inode
# $2 in the JSON lines of file $1
sum_reads() {
	grep '"op": "READ"' "$1" | grep "\"ino\": $2," |
		sed 's/.*"len": \([0-9]*\), "flags": [0-9]*, "calls": \([0-9]*\).*/\1 \2/' |
		awk '{ r++; c += $2; b += $1 } END { printf "%d %d %d\n", r, c, b }'
}
client_has() {
	[ "$(sum_reads /tmp/big.json "$BINO" | cut -d' ' -f3)" = "$BIG" ]
}
stream_has() {
	tnats dump nats://127.0.0.1:4222 BIG 2>/dev/null | tr '\037' '\n' >/tmp/big.stream
	[ "$(sum_reads /tmp/big.stream "$BINO" | cut -d' ' -f3)" = "$BIG" ]
}
BIG=$((1024 * 1024 * 1024))
if mount_with /modules/scoutfs.ko && dd if=/dev/zero of="$MNT/big" bs=1M count=1024 2>/dev/null; then
	BINO=$(stat -c %i "$MNT/big")
	FWPID="" NPID=""
	CLIENT_OUT=/tmp/big.json start_daemon new "--no-paths --json" || fail=$((fail + 1))
	if [ -x /usr/sbin/nats-server ] && [ -x /usr/sbin/scoutfs-notify-forward ] && [ -x /t/bin/tnats ]; then
		nats-server -js -sd /tmp/js -a 127.0.0.1 -p 4222 >/tmp/nats.log 2>&1 &
		NPID=$!
		wait_for 60 tnats ready nats://127.0.0.1:4222 - || fail=$((fail + 1))
		scoutfs-notify-forward --server nats://127.0.0.1:4222 --node big --stream BIG \
			--no-paths --max-bytes 0 "$MNT" 2>/tmp/fwd.log &
		FWPID=$!
		wait_for 60 grep -q forwarding /tmp/fwd.log || fail=$((fail + 1))
		wait_for 30 clients_ge 2 || fail=$((fail + 1))
	fi
	e0=$(counter notify_emitted)
	m0=$(counter notify_merged)
	d0=$(counter notify_dropped_ring_full)
	read -r calls bytes <<EOF
$(hookbench seqread "$MNT/big" 4096)
EOF
	ring="$(($(counter notify_emitted) - e0)) $(($(counter notify_merged) - m0)) $(($(counter notify_dropped_ring_full) - d0))"
	wait_for 60 client_has || fail=$((fail + 1))
	client=$(sum_reads /tmp/big.json "$BINO")
	stream="- - -"
	if [ -n "$FWPID" ]; then
		wait_for 120 stream_has || fail=$((fail + 1))
		stream=$(sum_reads /tmp/big.stream "$BINO")
	fi
	echo "bench: big calls $calls bytes $bytes ring $ring client $client stream $stream"
	[ -z "$FWPID" ] || kill -TERM "$FWPID"
	[ -z "$NPID" ] || kill -TERM "$NPID"
	stop_daemon
	[ -z "$FWPID" ] || wait "$FWPID"
	[ -z "$NPID" ] || wait "$NPID"
	unmount
else
	echo "bench: FAILED to make the 1 GiB file"
	fail=$((fail + 1))
fi

[ "$fail" -ne 0 ] || pass=1
echo "bench: $pass passed, $fail failed"
