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
# A step that fails prints `bench: FAILED <section> ...: why` (section
# hook, drain, latency, stage or big, with its round, daemon or stage)
# and is counted in the closing `bench: N passed, N failed`; what was
# asked (rounds, reads, latency samples, the stages, the big file's
# bytes) is in the first line, what was lost in each line (ring-full
# drops and the clients' losses): tests/bench/report.py gives a verdict
# only to figures whose rounds are all there and whole.
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
STAGES="none drainonly new-text new-paths new-json nomerge-text"
BIG=$((1024 * 1024 * 1024))
# shellcheck source=tests/vm/lib.sh
. /t/lib.sh

# the series' daemon, then each variant the VM has: scoutfs-notifyd-NAME
# (old: patch 3 as of 8c5a7f2; others: builds to compare in one run)
DAEMONS="new nomerge"
for b in /usr/sbin/scoutfs-notifyd-*; do
	[ -x "$b" ] && DAEMONS="$DAEMONS ${b#/usr/sbin/scoutfs-notifyd-}"
done
echo "bench: clock $CLOCK cpus $(grep -c ^processor /proc/cpuinfo) rounds $ROUNDS preads $PREADS opens $OPENS daemons $DAEMONS drain_rounds $DRAIN_ROUNDS lat_n $LAT_N stage_secs $DRAIN_SECS big_bytes $BIG stages $STAGES"

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

# daemon_stats: the daemon's stats line once it has drained what it
# found (SIGUSR1 makes it log them); nothing when it did not say
daemon_stats() {
	s0=$(stats_lines)
	kill -USR1 "$DPID"
	if wait_for 30 lines_gt "$s0"; then
		grep 'stats: drained' /tmp/notifyd.log | tail -n 1
	fi
}

# stat_of NAME LINE: the figure after NAME in a stats LINE, "?" when the
# line has none
stat_of() {
	v=$(echo "$2" | sed -n "s/.* $1 \([0-9]*\).*/\1/p")
	echo "${v:-?}"
}

# client_lost: what the daemon dropped for its clients so far; "?" when
# it did not say
client_lost() {
	stat_of client_lost "$(daemon_stats)"
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
	m0=$(counter notify_merged)
	d0=$(counter notify_dropped_ring_full)
	t0=$(cpu_ns "$DPID")
	w0=$(cpu_ns "$WPID")
	read -r reads _ <<EOF
$(hookbench busyread "$MNT/f" "$DRAIN_SECS")
EOF
	kill -TERM $HPID
	wait $HPID
	lost=$(client_lost)
	t1=$(cpu_ns "$DPID")
	w1=$(cpu_ns "$WPID")
	e1=$(counter notify_emitted)
	m1=$(counter notify_merged)
	d1=$(counter notify_dropped_ring_full)
	numbers "$reads" || failed "$what" "the busy reader gave no count ('$reads')"
	[ "$lost" != "?" ] || failed "$what" "the daemon did not log its stats"
	[ $((e1 - e0)) -gt 0 ] || failed "$what" "no record emitted"
	echo "bench: drain round $1 daemon $2 reads ${reads:-?} emitted $((e1 - e0)) dropped $((d1 - d0)) client_lost $lost daemon_ns $((t1 - t0)) merged $((m1 - m0)) client_ns $((w1 - w0))"
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

# stage NAME: the busy reader for DRAIN_SECS, no hog, with what is
# attached (the daemon DPID and its client WPID, when set): the CPU of
# the reader, the daemon and the client; the ring's records, merged
# calls and drops; the daemon's drains, messages and its client's losses
stage() {
	what="stage $1"
	e0=$(counter notify_emitted)
	m0=$(counter notify_merged)
	d0=$(counter notify_dropped_ring_full)
	t0=0 w0=0 t1=0 w1=0 more=""
	[ -z "$DPID" ] || t0=$(cpu_ns "$DPID")
	[ -z "$WPID" ] || w0=$(cpu_ns "$WPID")
	read -r reads rns <<EOF
$(hookbench busyread "$MNT/f" "$DRAIN_SECS")
EOF
	if [ -n "$DPID" ]; then
		st=$(daemon_stats)
		[ -n "$st" ] || failed "$what" "the daemon did not log its stats"
		t1=$(cpu_ns "$DPID")
		more=" client_lost $(stat_of client_lost "$st") drains $(stat_of drains "$st") messages $(stat_of messages "$st")"
	fi
	[ -z "$WPID" ] || w1=$(cpu_ns "$WPID")
	numbers "$reads" "$rns" || failed "$what" "the busy reader gave no figures ('$reads $rns')"
	echo "bench: stage $1 reads ${reads:-?} records $(($(counter notify_emitted) - e0)) merged $(($(counter notify_merged) - m0)) dropped $(($(counter notify_dropped_ring_full) - d0)) reader_ns ${rns:-?} daemon_ns $((t1 - t0)) client_ns $((w1 - w0))$more"
}

# stage_drainonly: the busy reader with a reader of its own that only
# drains (hookbench drain: merged records, a busy daemon's batched waits)
stage_drainonly() {
	what="stage drainonly"
	rm -f /tmp/drain.ready /tmp/drain.out
	hookbench drain "$MNT" /tmp/drain.ready >/tmp/drain.out &
	RPID=$!
	if ! wait_for 30 test -e /tmp/drain.ready; then
		failed "$what" "the drain-only reader did not attach"
		kill -TERM $RPID
		wait $RPID
		return
	fi
	d0=$(counter notify_dropped_ring_full)
	read -r reads rns <<EOF
$(hookbench busyread "$MNT/f" "$DRAIN_SECS")
EOF
	kill -TERM $RPID
	wait $RPID || failed "$what" "the drain-only reader exited $?"
	out=$(cat /tmp/drain.out)
	case "$out" in
	"records "*) ;;
	*) failed "$what" "the drain-only reader printed no counts ('$out')" ;;
	esac
	numbers "$reads" "$rns" || failed "$what" "the busy reader gave no figures ('$reads $rns')"
	echo "bench: stage drainonly reads ${reads:-?} reader_ns ${rns:-?} dropped $(($(counter notify_dropped_ring_full) - d0)) $out"
}

# stages: each of STAGES, one after the other
stages() {
	DPID="" WPID=""
	stage none
	stage_drainonly
	for cfg in "new text --no-paths" "new paths --json" "new json --no-paths --json" \
		"nomerge text --no-paths --one-per-message"; do
		# shellcheck disable=SC2086 # the words of cfg
		set -- $cfg
		name=$1-$2
		d=$1
		shift 2
		if start_daemon "$d" "$*"; then
			stage "$name"
		else
			failed "stage $name" "the daemon and a client did not start"
		fi
		stop_daemon
	done
}

# sum_reads FILE INO: "records calls bytes" of the READ lines of inode
# INO in the JSON lines of FILE
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

# big_forwarder: a local JetStream and the forwarder into it, attached
# as the daemon's second client (FWPID and NPID; unset without NATS)
big_forwarder() {
	FWPID="" NPID=""
	[ -x /usr/sbin/nats-server ] && [ -x /usr/sbin/scoutfs-notify-forward ] && [ -x /t/bin/tnats ] ||
		return 0
	nats-server -js -sd /tmp/js -a 127.0.0.1 -p 4222 >/tmp/nats.log 2>&1 &
	NPID=$!
	wait_for 60 tnats ready nats://127.0.0.1:4222 - || failed big "nats-server did not start"
	scoutfs-notify-forward --server nats://127.0.0.1:4222 --node big --stream BIG \
		--no-paths --max-bytes 0 "$MNT" 2>/tmp/fwd.log &
	FWPID=$!
	wait_for 60 grep -q forwarding /tmp/fwd.log || failed big "the forwarder did not start"
	wait_for 30 clients_ge 2 || failed big "the forwarder did not connect"
}

# big_read: a BIG file read 4 KiB at a time with the daemon, a JSON
# client and the forwarder attached: "ring" is the records emitted, the
# calls merged into them and the ring-full drops; "client" and
# "stream" the records, calls and bytes of the file's READs there;
# client_lost what the daemon dropped for its clients
big_read() {
	if ! dd if=/dev/zero of="$MNT/big" bs=1M count=$((BIG / 1048576)) 2>/dev/null; then
		failed big "cannot make the 1 GiB file"
		return
	fi
	BINO=$(stat -c %i "$MNT/big")
	CLIENT_OUT=/tmp/big.json start_daemon new "--no-paths --json" ||
		failed big "the daemon and a JSON client did not start"
	big_forwarder
	e0=$(counter notify_emitted)
	m0=$(counter notify_merged)
	d0=$(counter notify_dropped_ring_full)
	read -r calls bytes <<EOF
$(hookbench seqread "$MNT/big" 4096)
EOF
	ring="$(($(counter notify_emitted) - e0)) $(($(counter notify_merged) - m0)) $(($(counter notify_dropped_ring_full) - d0))"
	numbers "$calls" "$bytes" || failed big "the reader gave no figures ('$calls $bytes')"
	wait_for 60 client_has || failed big "the client's READs of the file do not add up to its bytes"
	client=$(sum_reads /tmp/big.json "$BINO")
	stream="- - -"
	if [ -n "$FWPID" ]; then
		wait_for 120 stream_has || failed big "the stream's READs of the file do not add up to its bytes"
		stream=$(sum_reads /tmp/big.stream "$BINO")
	fi
	echo "bench: big calls ${calls:-?} bytes ${bytes:-?} ring $ring client $client stream $stream client_lost $(client_lost)"
	[ -z "$FWPID" ] || kill -TERM "$FWPID"
	[ -z "$NPID" ] || kill -TERM "$NPID"
	stop_daemon
	[ -z "$FWPID" ] || wait "$FWPID"
	[ -z "$NPID" ] || wait "$NPID"
}

r=1
while [ $r -le "$ROUNDS" ]; do
	hook_round $r
	r=$((r + 1))
done

# ring drain, the stages and latency: the daemons alternating on one mount
if mount_with /modules/scoutfs.ko; then
	r=1
	while [ $r -le "$DRAIN_ROUNDS" ]; do
		for d in $DAEMONS; do
			drain_round $r "$d"
		done
		r=$((r + 1))
	done
	stages
	for d in $DAEMONS; do
		latency_run "$d"
	done
	unmount || failed "latency" "unmount"
else
	failed "drain" "mount with the patched module"
	failed "stage" "mount with the patched module"
	failed "latency" "mount with the patched module"
fi

# the 1 GiB read: a mount of its own
if mount_with /modules/scoutfs.ko; then
	big_read
	unmount || failed big "unmount"
else
	failed big "mount with the patched module"
fi

[ "$fail" -ne 0 ] || pass=1
echo "bench: $pass passed, $fail failed"
