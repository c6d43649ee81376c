#!/bin/sh
# The nats suite, in the VM (`make vm-test SUITE=nats`): one scoutfs
# filesystem mounted three times (three quorum members, each mount on
# its own device-mapper devices, as upstream's run-tests.sh does) stands
# for three nodes; each mount has its own scoutfs-notifyd (--run-dir)
# and scoutfs-notify-forward (node0..node2); a three-server NATS cluster
# on the guest's loopback holds the stream with three replicas.  File
# activity on every mount, a ring overflow on one (its daemon stopped),
# one NATS server SIGKILLed while records flow, and a durable consumer
# stopped and started twice.  Checks: the stream holds every record of
# every mount once and each mount's seqs in order, its gaps equal the
# kernel's notify_dropped_ring_full (the ATTACH record each forwarder's
# connection starts with is a record, seq 1), and the consumer's three
# runs print every message
# once, in order.  Run by guest.sh with the module loaded and the ram
# disks there; ends with `nats-test: N passed, N failed`.
set -u

# shellcheck source=tests/vm/lib.sh
. /t/lib.sh
check() {
	name=$1
	shift
	if "$@"; then ok "$name"; else bad "$name"; fi
}

URLS=nats://127.0.0.1:4222,nats://127.0.0.1:4223,nats://127.0.0.1:4224
URL0=nats://127.0.0.1:4222
STREAM=SCOUTFS_NOTIFY
NR=3

for b in nats-server scoutfs-notify-forward scoutfs-notify-watch-nats tnats dmsetup; do
	if ! command -v $b >/dev/null; then
		bad "$b is not in this build (patch 4, libnats-dev, nats-server, dmsetup on the host)"
		echo "nats-test: $pass passed, $fail failed"
		exit 1
	fi
done

# wait_secs SECS CMD...: run CMD every half second until it succeeds, for
# at most SECS of wall time (wait_for counts 50 ms steps, which commands
# that take long themselves under emulation stretch far beyond SECS)
# A subshell: its deadline is its own, so that a CMD that waits itself
# (drained waits for the forwarder's counts) can't move the outer one;
# with a shared variable the outer wait never ran out.
wait_secs() (
	end=$(($(date +%s) + $1))
	shift
	while ! "$@" 2>/dev/null; do
		[ "$(date +%s)" -lt "$end" ] || return 1
		usleep 500000
	done
	return 0
)
lines_ge() {
	[ -f "$1" ] && [ "$(grep -c "$2" "$1")" -ge "$3" ]
}
count_ge() {
	[ -f "$1" ] && [ "$(wc -l <"$1")" -ge "$2" ]
}
gone() {
	! kill -0 "$1" 2>/dev/null
}
all_mounted() {
	[ "$(grep -c ' /mnt/n[0-9] scoutfs ' /proc/mounts)" -eq $NR ]
}
nats_ready() {
	tnats ready "$1" - >/dev/null 2>&1
}
# mount_sysfs MNT: the /sys/fs/scoutfs/ directory of the mount at MNT
# (its data device's maj:min, as /proc/self/mountinfo has it); nothing
# when there is none
mount_sysfs() {
	mm=$(awk -v m="$1" '$5 == m { print $3 }' /proc/self/mountinfo)
	[ -n "$mm" ] || return 0
	for fs in /sys/fs/scoutfs/*; do
		[ "$(cat "$fs/data_device_maj_min" 2>/dev/null)" = "$mm" ] && echo "$fs" && return 0
	done
}
# mount_counter MNT NAME: that mount's counter NAME; nothing when unread
mount_counter() {
	d=$(mount_sysfs "$1")
	[ -n "$d" ] && cat "$d/counters/$2" 2>/dev/null
}
# grew A B: both are numbers, B above A
grew() {
	is_num "$1" "$2" && [ "$2" -gt "$1" ]
}
# is_num X...: every X is a number (an unparsed one is no 0)
is_num() {
	for x in "$@"; do
		case "$x" in '' | *[!0-9]*) return 1 ;; esac
	done
}

# ---- a fence agent, as upstream's run-tests.sh runs scoutfs-fenced with
# fenced-local-force-unmount.sh: a server that lost a mount (a quorum
# heartbeat missed under emulation, say) fences it before it carries
# on, and without an agent it gives up and its mount's unmount waits
# for a server forever.  Fencing here: force-unmount the local mount of
# that rid, if still there, and say it is fenced.
fence_agent() {
	while :; do
		for fence in /sys/fs/scoutfs/*/fence/*; do
			[ -d "$fence" ] || continue
			[ "$(cat "$fence/fenced" 2>/dev/null)" = 1 ] && continue
			[ "$(cat "$fence/error" 2>/dev/null)" = 1 ] && continue
			rid=$(cat "$fence/rid" 2>/dev/null)
			echo "nats-test: fence agent: fencing rid $rid ($(cat "$fence/reason" 2>/dev/null))"
			for fs in /sys/fs/scoutfs/*; do
				[ "$(cat "$fs/rid" 2>/dev/null)" = "$rid" ] || continue
				mm=$(cat "$fs/data_device_maj_min" 2>/dev/null)
				mnt=$(awk -v mm="$mm" '$3 == mm {
					for (i = 7; i < NF; i++) if ($i == "-") break
					if ($(i + 1) == "scoutfs") print $5 }' /proc/self/mountinfo)
				[ -n "$mnt" ] && umount -f "$mnt"
			done
			echo 1 >"$fence/fenced"
		done
		usleep 500000
	done
}
fence_agent &
FENCER=$!
# the guest's timeout (SIGTERM): stop what the suite started, so that no
# server, daemon or forwarder keeps the guest's output pipe open and the
# guest can still report (a timed-out suite hung it until the VM's own
# timeout)
# shellcheck disable=SC2046 # a list of pids
trap 'echo "nats-test: terminated, stopping what it started"; kill $(jobs -p) 2>/dev/null; exit 143' TERM

# ---- one filesystem, three mounts
if ! scoutfs mkfs -A -f -Q 0,127.0.0.1,53000 -Q 1,127.0.0.1,53001 -Q 2,127.0.0.1,53002 \
	/dev/ram0 /dev/ram1 >/tmp/mkfs.log 2>&1; then
	cat /tmp/mkfs.log
	bad "mkfs with 3 quorum slots"
fi
insmod /modules/dm-mod.ko 2>/dev/null
msz=$(blockdev --getsz /dev/ram0)
dsz=$(blockdev --getsz /dev/ram1)
i=0
while [ $i -lt $NR ]; do
	# no udev in the guest: dmsetup makes the /dev/mapper nodes itself
	dmsetup create --noudevsync nm$i --table "0 $msz linear /dev/ram0 0"
	dmsetup create --noudevsync nd$i --table "0 $dsz linear /dev/ram1 0"
	dmsetup mknodes nm$i
	dmsetup mknodes nd$i
	mkdir -p /mnt/n$i
	# concurrently: the quorum needs a majority up to elect a leader
	timeout 180 mount -t scoutfs -o metadev_path=/dev/mapper/nm$i,quorum_slot_nr=$i \
		/dev/mapper/nd$i /mnt/n$i &
	i=$((i + 1))
done
check "three mounts of one filesystem" wait_for 200 all_mounted
FSID=$(stat -f -c %i /mnt/n0)
check "one fsid ($FSID)" test "$(stat -f -c %i /mnt/n1)" = "$FSID" -a "$(stat -f -c %i /mnt/n2)" = "$FSID"

# ---- a three-server NATS cluster on loopback
i=1
while [ $i -le 3 ]; do
	mkdir -p /tmp/nats$i
	cat >/tmp/nats$i.conf <<EOF
server_name: ns$i
listen: "127.0.0.1:$((4221 + i))"
jetstream { store_dir: "/tmp/nats$i" }
cluster {
  name: scoutfs
  listen: "127.0.0.1:$((6221 + i))"
  routes: ["nats-route://127.0.0.1:6222", "nats-route://127.0.0.1:6223", "nats-route://127.0.0.1:6224"]
}
EOF
	nats-server -c /tmp/nats$i.conf >/tmp/nats$i.log 2>&1 &
	eval "NATS$i=\$!"
	i=$((i + 1))
done
check "the NATS cluster answers JetStream requests" wait_for 180 nats_ready $URL0

# ---- a daemon and a forwarder per mount; the first creates the stream (R3)
fwd_up_or_gone() {    # fwd_up_or_gone N PID
	lines_ge "/tmp/f$1.log" forwarding "$2" || gone "$3"
}
start_forwarder() {
	# a cluster still settling can refuse the stream for a moment (exit
	# 1); --max-bytes: JetStream reserves it on each server, and the
	# guest's /tmp (a tmpfs of half its memory) can't hold the default 10G
	tries=0
	while [ $tries -lt 5 ]; do
		n0=$(grep -c forwarding "/tmp/f$1.log" 2>/dev/null)
		scoutfs-notify-forward --server $URLS --node "node$1" --replicas 3 --max-bytes 512M \
			--run-dir "/run/n$1" "/mnt/n$1" 2>>"/tmp/f$1.log" &
		pid=$!
		eval "FWD$1=\$pid"
		wait_for 120 fwd_up_or_gone "$1" $((n0 + 1)) "$pid"
		if ! gone "$pid" && lines_ge "/tmp/f$1.log" forwarding $((n0 + 1)); then
			return 0
		fi
		kill "$pid" 2>/dev/null
		wait "$pid"
		echo "nats-test: forwarder $1 did not start (try $tries, exit $?):"
		tail -n 5 "/tmp/f$1.log"
		tries=$((tries + 1))
	done
	return 1
}
i=0
while [ $i -lt $NR ]; do
	scoutfs-notifyd --run-dir /run/n$i /mnt/n$i 2>/tmp/d$i.log &
	eval "DMN$i=\$!"
	check "daemon $i serves" wait_for 30 lines_ge /tmp/d$i.log serving 1
	check "forwarder $i forwards" start_forwarder $i
	i=$((i + 1))
done
check "the stream has 3 replicas" sh -c "tnats info $URL0 $STREAM | grep -q 'replicas=3'"

# a durable consumer, run 1 of 3 (--reorder-wait: under emulation a
# failover takes far longer than the default 10 s to heal)
scoutfs-notify-watch-nats --server $URLS --durable vm --reorder-wait 60s --all --json >/tmp/c1.out 2>/tmp/c1.err &
C1=$!

# ---- activity on every mount: opens and reads
dd if=/dev/zero of=/tmp/big bs=64k count=16 2>/dev/null
i=0
while [ $i -lt $NR ]; do
	cp /tmp/big /mnt/n$i/big
	k=0
	while [ $k -lt 20 ]; do
		echo "node $i file $k" >/mnt/n$i/f$k
		cat /mnt/n$i/f$k >/dev/null
		k=$((k + 1))
	done
	dd if=/mnt/n$i/big of=/dev/null bs=4k 2>/dev/null
	i=$((i + 1))
done
check "the consumer prints records" wait_for 120 count_ge /tmp/c1.out 100
kill -TERM $C1
check "consumer run 1 stops on SIGTERM" wait_for 30 gone $C1

# ---- the ring overflows on mount 1: its daemon stopped, 3000 reads
r0=$(mount_counter /mnt/n1 notify_dropped_ring_full)
kill -STOP "$DMN1"
hookbench backread /mnt/n1/big 3000
kill -CONT "$DMN1"
r1=$(mount_counter /mnt/n1 notify_dropped_ring_full)
check "mount 1 dropped records: its notify_dropped_ring_full ${r0:-?} -> ${r1:-?}" grew "$r0" "$r1"

# consumer run 2, while records flow and a NATS server is killed
scoutfs-notify-watch-nats --server $URLS --durable vm --reorder-wait 60s --json >/tmp/c2.out 2>/tmp/c2.err &
C2=$!
stream_msgs() {
	tnats info $URL0 $STREAM | sed -n 's/^msgs=\([0-9]*\) .*/\1/p'
}
flowing() {    # flowing N: the stream holds more than N messages
	[ "$(stream_msgs)" -gt "$1" ]
}
m0=$(stream_msgs)
readers=""
i=0
while [ $i -lt $NR ]; do
	# backwards: each read its own record, none merged into the one before
	hookbench backread /mnt/n$i/big 2000 &
	readers="$readers $!"
	i=$((i + 1))
done
# the kill lands while the readers' records are being stored
check "records flow into the stream" wait_secs 60 flowing $((m0 + 200))
kill -KILL "$NATS2"
wait "$NATS2"
rc=$?
check "NATS server ns2 SIGKILLed while records flow (exit $rc)" test "$rc" -eq 137
for p in $readers; do
	wait "$p"
done

# ---- every forwarder has everything acknowledged
fwd_count() {    # fwd_count N FIELD: from the last SIGUSR1 counts of forwarder N
	grep 'counts:' /tmp/f"$1".log | tail -n 1 | sed -n "s/.*[:,] $2 \([0-9]*\).*/\1/p"
}
fresh_counts() {    # fresh_counts N: SIGUSR1, and wait for the counts it logs
	n0=$(grep -c 'counts:' /tmp/f"$1".log)
	eval "kill -USR1 \$FWD$1"
	wait_secs 30 lines_ge /tmp/f"$1".log 'counts:' $((n0 + 1))
}
drained() {    # drained N [MIN]: nothing buffered, more than MIN (0) received
	fresh_counts "$1" && [ "$(fwd_count "$1" buffered)" = 0 ] &&
		[ "$(fwd_count "$1" received)" -gt "${2:-0}" ]
}
i=0
while [ $i -lt $NR ]; do
	if ! wait_secs 180 drained $i; then
		bad "forwarder $i: everything acknowledged by the stream"
		tail -n 12 /tmp/f$i.log
	else
		ok "forwarder $i: everything acknowledged by the stream"
	fi
	i=$((i + 1))
done
# run 2 catches up with the stream (so it holds nothing back for its
# order when it stops), then stops; a little more activity for run 3
caught_up() {
	[ "$(cat /tmp/c1.out /tmp/c2.out | wc -l)" -ge "$(tnats info $URL0 $STREAM | sed -n 's/^msgs=\([0-9]*\) .*/\1/p')" ]
}
check "consumer run 2 prints everything stored so far" wait_secs 180 caught_up
kill -TERM $C2
check "consumer run 2 stops on SIGTERM" wait_for 30 gone $C2
i=0
while [ $i -lt $NR ]; do
	# its OPEN and READ: received past what it had (fresh counts each time)
	fresh_counts $i
	eval "RCV$i=\$(fwd_count $i received)"
	cat /mnt/n$i/f1 >/dev/null
	i=$((i + 1))
done
i=0
while [ $i -lt $NR ]; do
	check "forwarder $i: the last records acknowledged too" wait_secs 120 drained $i \
		$(($(eval echo "\$RCV$i") + 1))
	i=$((i + 1))
done
msgs=$(tnats info $URL0 $STREAM | sed -n 's/^msgs=\([0-9]*\) .*/\1/p')
tnats dump $URL0 $STREAM >/tmp/dump.txt 2>/tmp/dump.err
N=$(wc -l </tmp/dump.txt)
check "the stream can be read after losing a server ($N of ${msgs:-?} messages)" test "$N" -gt 0 -a "$N" = "${msgs:-x}"
stored=0
i=0
while [ $i -lt $NR ]; do
	stored=$((stored + $(fwd_count $i stored) + $(fwd_count $i "gap messages")))
	i=$((i + 1))
done
check "nothing stored twice: the forwarders' acknowledged messages ($stored) are the stream's ($N)" \
	test "$stored" -eq "$N"
check "every Nats-Msg-Id once" test "$(awk '{print $3}' /tmp/dump.txt | sort | uniq -d | wc -l)" -eq 0

# ---- the durable consumer: run 3 takes the rest; the three print the stream
got=$(cat /tmp/c1.out /tmp/c2.out | wc -l)
rc=0
: >/tmp/c3.out
if [ $((N - got)) -gt 0 ]; then
	timeout 300 scoutfs-notify-watch-nats --server $URLS --durable vm --reorder-wait 60s --json --count $((N - got)) \
		>/tmp/c3.out 2>/tmp/c3.err
	rc=$?
fi
check "consumer run 3 prints the remaining $((N - got)) (exit $rc)" test "$rc" -eq 0
cut -d' ' -f4- /tmp/dump.txt | sort >/tmp/payloads.txt
cat /tmp/c1.out /tmp/c2.out /tmp/c3.out >/tmp/consumed.txt
sort /tmp/consumed.txt >/tmp/consumed.sorted
if cmp -s /tmp/payloads.txt /tmp/consumed.sorted; then
	ok "three runs of one durable consumer: every message once ($(wc -l </tmp/consumed.txt) of $N)"
else
	bad "three runs of one durable consumer: every message once ($(wc -l </tmp/consumed.txt) of $N)"
	diff /tmp/payloads.txt /tmp/consumed.sorted | head -n 6 | cut -c1-200
fi
# what the consumer said of messages JetStream delivered again
grep -h "delivered again\|may not have reached\|may be printed again" /tmp/c1.err /tmp/c2.err /tmp/c3.err |
	sed 's/^/nats-test: consumer: /'
sed 's/.*"node": "\([^"]*\)".*/\1/' /tmp/dump.txt | sort | uniq -c >/tmp/pernode.txt
echo "nats-test: messages per node: $(tr -s ' \n' ' ' </tmp/pernode.txt)"
check "one consumer saw all three nodes" test "$(grep -c '"node": "node0"' /tmp/consumed.txt)" -gt 0 -a \
	"$(grep -c '"node": "node1"' /tmp/consumed.txt)" -gt 0 -a "$(grep -c '"node": "node2"' /tmp/consumed.txt)" -gt 0


# gaps_exact LOST RING DAEMON: the gaps equal the two counts, each read
gaps_exact() {
	is_num "$1" "$2" "$3" && [ "$1" -eq $(($2 + $3)) ]
}

# per node, in what the consumer printed: records in seq order, every
# seq a record or in a gap, the first the daemon's ATTACH (seq 1: the
# first message of the forwarder's connection), and the gaps = the
# ring's drops + what the daemon dropped for the forwarder.  (The
# stream itself may hold a window of a
# node's records after later ones: a NATS server failing while they
# were in flight moved the stream's leader; the consumer puts them
# back in order.)
i=0
while [ $i -lt $NR ]; do
	awk -v node="node$i" '
	function num(k,   m) { if (match($0, "\"" k "\": [0-9]+")) { m = substr($0, RSTART, RLENGTH); sub(/.*: /, "", m); return m + 0 } return -1 }
	index($0, "\"node\": \"" node "\"") {
		if (index($0, "\"op\": \"GAP\"")) {
			a = num("after_seq"); s = num("seq")
			if (a != last || num("lost") != s - a - 1) bad++
			lost += num("lost"); last = s - 1; gaps++
		} else {
			s = num("seq")
			if (s != last + 1) bad++
			if (recs == 0 && (s != 1 || !index($0, "\"op\": \"ATTACH\""))) bad++
			last = s; recs++
		}
	}
	END { printf "%d %d %d %d %d\n", recs, gaps, lost, last, bad }' /tmp/consumed.txt >/tmp/node$i.txt
	read -r recs gaps lost last nbad </tmp/node$i.txt
	ring=$(mount_counter /mnt/n$i notify_dropped_ring_full)
	n0=$(grep -c 'stats: client' /tmp/d$i.log)
	kill -USR1 "$(eval echo \$DMN$i)"
	wait_secs 30 lines_ge /tmp/d$i.log 'stats: client' $((n0 + 1))
	dlost=$(grep 'stats: client' /tmp/d$i.log | tail -n 1 | sed -n 's/.* lost \([0-9]*\)$/\1/p')
	echo "nats-test: node$i: $recs records, $gaps gaps losing $lost, last seq $last; ring_full $ring, daemon lost ${dlost:-?}"
	check "node$i: the ATTACH (seq 1) first, every seq once and in order, each gap exact" \
		test "$nbad" -eq 0 -a "$recs" -gt 0
	check "node$i: gaps ($lost) = ring drops (${ring:-?}) + daemon drops (${dlost:-?})" \
		gaps_exact "$lost" "$ring" "$dlost"
	i=$((i + 1))
done

# ---- the access index (commit 5): one index of all three nodes' reads,
# from the stream, whose cold and hot answers match what was done here
if command -v scoutfs-notify-heat >/dev/null; then
	# an index of its own: the demo suite, earlier in the same boot, made
	# /tmp/heat.db of its own mount
	rm -f /tmp/nats-heat.db /tmp/nats-heat.db-wal /tmp/nats-heat.db-shm
	HEAT="scoutfs-notify-heat --db /tmp/nats-heat.db"
	echo "nobody reads this" >/mnt/n0/cold-file
	$HEAT ingest --server $URLS --durable heat --path-map /mnt/n1=/mnt/n0 \
		--path-map /mnt/n2=/mnt/n0 --flush-interval 200ms 2>/tmp/heat.log &
	HP=$!
	last=$(tnats info $URL0 $STREAM | sed -n 's/.* last=\([0-9]*\) .*/\1/p')
	heat_at_end() {
		$HEAT dump 2>/dev/null | grep -q "^meta \"stream_seq\" \"$last\"\$"
	}
	check "index: ingest applies the whole stream (to message $last)" wait_secs 300 heat_at_end
	kill -TERM "$HP"
	wait "$HP"
	check "index: ingest stops on SIGTERM" test "$?" -eq 0
	tail -n 2 /tmp/heat.log | sed 's/^/nats-test: /'
	$HEAT scan /mnt/n0 | sed 's/^/nats-test: /'
	# each file's read calls: the calls of the READ records of its inode
	# in the stream, all nodes (a merged record's "calls", else 1)
	reads_in_stream() {
		awk -v ino="\"ino\": $1," 'index($0, "\"op\": \"READ\"") && index($0, ino) {
			n = 1
			if (match($0, /"calls": [0-9]+/))
				n = substr($0, RSTART + 9, RLENGTH - 9)
			s += n
		} END { print s + 0 }' /tmp/dump.txt
	}
	exact=0
	files=0
	for f in big f0 f1 f2 f5 f10 f19; do
		ino=$(stat -c %i /mnt/n0/$f)
		want=$(reads_in_stream "$ino")
		got=$($HEAT stat /mnt/n0/$f | sed -n 's/.* read_calls=\([0-9]*\) .*/\1/p')
		files=$((files + 1))
		if [ "$got" = "$want" ]; then
			exact=$((exact + 1))
		else
			echo "nats-test: index: $f (ino $ino): read_calls ${got:-none}, the stream's READs have $want calls"
		fi
	done
	check "index: read calls of $files files are exactly the calls of the READ records of all three nodes ($exact exact)" \
		test "$exact" -eq "$files"
	$HEAT cold --json >/tmp/cold.json
	check "index: the coldest file is the one nobody read (only written)" \
		sh -c "sed -n 2p /tmp/cold.json | grep -q '\"last_use\": null.*\"path\": \"/mnt/n0/cold-file\"'"
	$HEAT hot --top 1 --since 1h >/tmp/hot.txt
	sed 's/^/nats-test: /' /tmp/hot.txt
	check "index: the hottest file is big, read on every node" grep -q "path=/mnt/n0/big\$" /tmp/hot.txt
	$HEAT report --by node | sed 's/^/nats-test: /'
	totlost=0
	i=0
	while [ $i -lt $NR ]; do
		read -r _ _ nlost _ _ </tmp/node$i.txt
		totlost=$((totlost + nlost))
		i=$((i + 1))
	done
	$HEAT coverage --json >/tmp/cov.json
	check "index: the coverage has the 3 mounts, each with records, and their $totlost lost records" \
		sh -c "grep -q '\"lost\": $totlost, ' /tmp/cov.json && [ \"\$(grep -o '\"node\": \"node[012]\"[^}]*\"records\": [1-9]' /tmp/cov.json | wc -l)\" -eq 3 ]"
else
	bad "scoutfs-notify-heat is not in this build (commit 5, libsqlite3-dev, libpq-dev on the host)"
fi

# ---- teardown: forwarders, daemons, NATS, mounts, devices
i=0
while [ $i -lt $NR ]; do
	F=$(eval echo "\$FWD$i")
	kill -TERM "$F"
	wait "$F"
	rc=$?
	check "forwarder $i: SIGTERM, exit $rc" test "$rc" -eq 0
	D=$(eval echo "\$DMN$i")
	kill -TERM "$D"
	wait "$D"
	i=$((i + 1))
done
kill -TERM "$NATS1" "$NATS3" 2>/dev/null
# concurrently, as upstream's t_umount_all: a quorum member unmounting
# alone after the others may wait for a majority that is gone
umounts=""
i=0
while [ $i -lt $NR ]; do
	timeout 180 umount /mnt/n$i &
	umounts="$umounts $!"
	i=$((i + 1))
done
for p in $umounts; do
	wait "$p" || bad "umount (pid $p)"
done
kill "$FENCER"
check "all three unmounted" test "$(grep -c ' /mnt/n[0-9] scoutfs ' /proc/mounts)" -eq 0
i=0
while [ $i -lt $NR ]; do
	dmsetup remove --noudevsync nm$i
	dmsetup remove --noudevsync nd$i
	i=$((i + 1))
done
if [ "$fail" -ne 0 ]; then
	for f in /tmp/f0.log /tmp/f1.log /tmp/f2.log /tmp/c1.err /tmp/c2.err /tmp/c3.err /tmp/dump.err; do
		echo "--- $f"
		tail -n 15 "$f"
	done
fi
echo "nats-test: $pass passed, $fail failed"
