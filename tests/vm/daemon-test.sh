#!/bin/sh
# Tier 2 of the daemon tests, in the VM (`make vm-test`, suite daemon):
# the real scoutfs-notifyd and scoutfs-notify-watch on a real scoutfs
# mount.  Run by guest.sh with the mount point; ends with
# `daemon-test: N passed, N failed`.  Every wait is a bounded poll for
# a condition that fails the test when it runs out.
set -u

MNT=$1
RUN=/run/scoutfs
# shellcheck source=tests/vm/lib.sh
. /t/lib.sh
check() {
	name=$1
	shift
	if "$@"; then ok "$name"; else bad "$name"; fi
}


counter() {
	cat /sys/fs/scoutfs/*/counters/"$1"
}

clients_ge() {
	[ "$(sock_clients "$SOCK")" -ge "$1" ]
}
# the daemon notices a client that went away within its wait timeout
no_clients() {
	[ "$(sock_clients "$SOCK")" -eq 0 ]
}
lines_ge() {
	[ -f "$1" ] && [ "$(grep -c "$2" "$1")" -ge "$3" ]
}
bytes_ge() {
	[ -f "$1" ] && [ "$(wc -c <"$1")" -ge "$2" ]
}
# denied RC FILE: a command that exited RC failed for want of permission
denied() {
	[ "$1" -ne 0 ] && grep -q "Permission denied" "$2"
}

FSID=$(stat -f -c %i "$MNT")
SOCK=$RUN/$FSID/notify.sock
echo "daemon-test: fsid $FSID, socket $SOCK"

# start a daemon and wait until it says it serves (a socket file alone
# could be the stale one of a killed daemon)
start_daemon() {
	n0=$(grep -c 'serving' /tmp/notifyd.log 2>/dev/null)
	scoutfs-notifyd "$MNT" 2>>/tmp/notifyd.log &
	DPID=$!
	wait_for 30 lines_ge /tmp/notifyd.log serving $((n0 + 1)) && test -S "$SOCK"
}

# --- start, socket and directory modes
check "notifyd starts and binds $SOCK" start_daemon
check "socket is 0600 root" test "$(stat -c '%a %u' "$SOCK")" = "600 0"
check "socket dir is 0700 root" test "$(stat -c '%a %u' "$RUN/$FSID")" = "700 0"
check "notify_reader_attached is 1" test "$(counter notify_reader_attached)" = 1

# --- an unprivileged user can neither connect nor list the directory:
# refused for want of permission (EACCES), not for any other reason (no
# such user, no socat); the same command as root connects
check "user is uid 1000 and runs commands" test "$(su -s /bin/sh user -c 'id -u')" = 1000
socat -u UNIX-CONNECT:"$SOCK",type=5 - </dev/null >/tmp/root.bin 2>/tmp/root.err &
SOPID=$!
check "root connects with the same socat command" wait_for 30 clients_ge 1
kill "$SOPID" 2>/dev/null
wait "$SOPID" 2>/dev/null
wait_for 30 no_clients
su -s /bin/sh user -c "socat -u UNIX-CONNECT:$SOCK,type=5 - </dev/null" >/tmp/u.out 2>&1
rc=$?
check "uid 1000 cannot connect: permission denied (exit $rc: $(head -c 120 /tmp/u.out))" \
	denied "$rc" /tmp/u.out
su -s /bin/sh user -c "ls $RUN/$FSID" >/tmp/u.out 2>&1
rc=$?
check "uid 1000 cannot list the socket directory: permission denied (exit $rc: $(head -c 120 /tmp/u.out))" \
	denied "$rc" /tmp/u.out
su -s /bin/sh user -c "scoutfs-notify-watch $MNT" >/tmp/u.out 2>&1
rc=$?
check "scoutfs-notify-watch as uid 1000 fails clearly (exit $rc: $(head -c 80 /tmp/u.out))" \
	grep -q "Permission denied" /tmp/u.out

# --- a second daemon is refused, the first stays
scoutfs-notifyd "$MNT" >/tmp/second.out 2>&1
rc=$?
check "second daemon refused (exit $rc)" test "$rc" -ne 0
check "second daemon says why" grep -qi "another\|already\|busy" /tmp/second.out
check "first daemon still running" kill -0 "$DPID"

# --- three clients see the same records, and they match the activity
echo hello >"$MNT/f0"
dd if=/dev/zero of="$MNT/f1" bs=1k count=10 2>/dev/null
INO=$(stat -c %i "$MNT/f1")
# (client 3 takes one record per message, the others ask for batches)
for c in 1 2 3; do
	one=""
	[ "$c" != 3 ] || one=--one-per-message
	scoutfs-notify-watch --json $one "$MNT" >/tmp/c$c.json 2>/tmp/c$c.err &
	eval "CPID$c=\$!"
done
check "three clients connected" wait_for 30 clients_ge 3
dd if="$MNT/f1" of=/dev/null bs=4k 2>/dev/null
dd if="$MNT/f1" of=/dev/null bs=1k skip=3 count=1 2>/dev/null
cat "$MNT/f0" >/dev/null
# dd f1: OPEN + READ 4096, 4096, 2048 (merged: one READ, or more when a
# drain came between); dd skip: OPEN + READ 1024 at 3072; cat: OPEN +
# READ 6, the last
for c in 1 2 3; do
	check "client $c got the records up to cat's READ" wait_for 30 lines_ge /tmp/c$c.json '"len": *6,' 1
done
kill "$CPID1" "$CPID2" "$CPID3" 2>/dev/null
wait "$CPID1" "$CPID2" "$CPID3" 2>/dev/null
grep -v '"lost"' /tmp/c1.json | sed 's/"time[^,]*,//g' >/tmp/c1.norm
for c in 2 3; do
	grep -v '"lost"' /tmp/c$c.json | sed 's/"time[^,]*,//g' >/tmp/c$c.norm
	check "client $c saw exactly what client 1 saw" cmp -s /tmp/c1.norm /tmp/c$c.norm
done
check "no client saw a gap" test "$(cat /tmp/c1.json /tmp/c2.json /tmp/c3.json | grep -c '"lost"')" = 0
for c in 1 2 3; do
	check "client $c's first line is the daemon's ATTACH, seq 1: $(head -n 1 /tmp/c$c.json | cut -c 1-60)" \
		grep -q '^{"schema": 1, "seq": 1, "op": "ATTACH"' /tmp/c$c.json
done
opens=$(grep '"op": *"OPEN"' /tmp/c1.json | grep -c "\"ino\": *${INO}[,}]")
check "two OPENs of f1 (ino $INO): $opens" test "$opens" = 2
# "offset len calls" of f1's READs: dd's three reads merged into records
# that tile 0..10240 and count 3 calls, then the skip's 3072+1024
grep '"op": *"READ"' /tmp/c1.json | grep "\"ino\": *$INO," |
	sed 's/.*"offset": *\([0-9]*\), *"len": *\([0-9]*\), *"flags": *[0-9]*, *"calls": *\([0-9]*\).*/\1 \2 \3/' >/tmp/f1.reads
tiled=$(awk 'NR > 1 && prev != "" { print prev } { prev = $0 }' /tmp/f1.reads |
	awk 'BEGIN { end = 0; calls = 0; ok = 1 } { if ($1 != end) ok = 0; end = $1 + $2; calls += $3 }
		END { print ok, end, calls }')
check "dd's 3 reads of f1 in merged READs that tile 0..10240 (ok, end, calls: $tiled; $(tr '\n' ';' </tmp/f1.reads))" \
	test "$tiled" = "1 10240 3"
check "the skip's READ of f1: 3072+1024, calls 1" test "$(tail -n 1 /tmp/f1.reads)" = "3072 1024 1"
check "paths resolved" grep -q '"path": *"[^"]*f1"' /tmp/c1.json

# --- the human form, and a gap line when a client misses records
check "the daemon dropped the clients that exited" wait_for 30 no_clients
scoutfs-notify-watch "$MNT" >/tmp/h.txt 2>/tmp/h.err &
HPID=$!
check "human client connected" wait_for 30 clients_ge 1
cat "$MNT/f0" >/dev/null
check "human client prints OPEN and READ" wait_for 30 lines_ge /tmp/h.txt 'READ' 1
check "human line has op, ino, pid" grep -q "OPEN.*ino=*[0-9]" /tmp/h.txt
kill "$HPID"

# --- file names are untrusted: an unprivileged user makes names that
# try to forge records or break JSON; each record must still be one
# text line, and one strict UTF-8 JSON object, giving back the exact
# bytes of the name (tests/vm/hostile-names.c checks both)
wait_for 30 no_clients
mkdir -m 1777 "$MNT/pub"
N=$(hostile-names count)
scoutfs-notify-watch --count "$N" "$MNT" >/tmp/hn.txt 2>/tmp/hn.err &
HT=$!
scoutfs-notify-watch --count "$N" --json "$MNT" >/tmp/hn.json 2>/tmp/hn.jerr &
HJ=$!
check "two clients for the hostile names" wait_for 30 clients_ge 2
su -s /bin/sh user -c "/t/bin/hostile-names create $MNT/pub" >/tmp/hn.create 2>&1
rc=$?
check "uid 1000 creates and reads the hostile names (exit $rc $(head -c 200 /tmp/hn.create))" test "$rc" = 0
check "text client exits after the $N records" wait_for 60 gone "$HT"
check "json client exits after the $N records" wait_for 60 gone "$HJ"
kill "$HT" "$HJ" 2>/dev/null
hostile-names text "$MNT/pub" /tmp/hn.txt >/tmp/hn.check
rc=$?
check "text: one line per record, every path exact ($(grep -c '^PASS' /tmp/hn.check) checks)" test "$rc" = 0
grep '^FAIL' /tmp/hn.check
hostile-names json "$MNT/pub" /tmp/hn.json >/tmp/hn.check
rc=$?
check "json: strict UTF-8 JSON, every path exact ($(grep -c '^PASS' /tmp/hn.check) checks)" test "$rc" = 0
grep '^FAIL' /tmp/hn.check
if [ "$fail" -gt 0 ]; then
	od -c /tmp/hn.txt | head -n 20
fi

# --- the smoke test in docs/interface.md, as written there
wait_for 30 no_clients
socat -u UNIX-CONNECT:/run/scoutfs/"$(stat -f -c %i "$MNT")"/notify.sock,type=5 - >/tmp/smoke.bin 2>/tmp/smoke.err &
SPID=$!
check "socat connected" wait_for 30 clients_ge 1
cat "$MNT/f0" >/dev/null
check "socat got the ATTACH and 2 records (192 bytes)" wait_for 30 bytes_ge /tmp/smoke.bin 192
kill "$SPID" 2>/dev/null
check "socat output is whole 64-byte records" test $(($(wc -c </tmp/smoke.bin) % 64)) = 0
check "the first is the daemon's ATTACH (op 3)" \
	test "$(od -A n -t u4 -j 40 -N 4 /tmp/smoke.bin | tr -d ' ')" = 3

# --- SIGSTOP for longer than the ring takes to fill: the kernel drops
# records, the client sees exactly that gap, the daemon carries on
wait_for 30 no_clients
scoutfs-notify-watch --json "$MNT" >/tmp/s.json 2>/tmp/s.err &
SWPID=$!
check "client connected before the pause" wait_for 30 clients_ge 1
d0=$(counter notify_dropped_ring_full)
kill -STOP "$DPID"
hookbench backread "$MNT/f1" 3000
kill -CONT "$DPID"
# reads of f0 until one lands after the daemon drained the full ring
# (those made while it is still full are dropped too, and counted)
read_f0_arrived() {
	cat "$MNT/f0" >/dev/null
	lines_ge /tmp/s.json '"len": *6,' 1
}
check "the client gets a record after the pause" wait_for 30 read_f0_arrived
lost=$(sed -n 's/.*"lost": *\([0-9]*\).*/\1/p' /tmp/s.json | awk '{s += $1} END {print s + 0}')
d1=$(counter notify_dropped_ring_full)
check "after SIGSTOP the client's gap ($lost) equals the ring's drops ($((d1 - d0)))" \
	test "$lost" -gt 0 -a "$lost" = $((d1 - d0))
check "the daemon survives SIGSTOP" kill -0 "$DPID"
if [ "$lost" = 0 ]; then
	echo "client stderr: $(cat /tmp/s.err)"
	echo "client lines: $(wc -l </tmp/s.json)"
	tail -n 3 /tmp/s.json
	tail -n 5 /tmp/notifyd.log
	grep " $SOCK\$" /proc/net/unix
fi
kill "$SWPID"

# --- SIGKILL and restart: the reader detaches, a new daemon attaches,
# and seq continues: nothing is recorded while no reader is attached
before=$(($(counter notify_emitted) + $(counter notify_dropped_ring_full)))
kill -9 "$DPID"
wait "$DPID" 2>/dev/null
cat "$MNT/f0" >/dev/null
cat "$MNT/f1" >/dev/null
check "nothing recorded while the daemon is down" \
	test "$(($(counter notify_emitted) + $(counter notify_dropped_ring_full)))" = "$before"
check "restarted daemon replaces the stale socket" start_daemon
scoutfs-notify-watch --json "$MNT" >/tmp/r.json 2>/tmp/r.err &
RPID=$!
check "client connected to the restarted daemon" wait_for 30 clients_ge 1
cat "$MNT/f0" >/dev/null
check "client got the READ after restart" wait_for 30 lines_ge /tmp/r.json '"op": *"READ"' 1
seq=$(grep '"op": *"READ"' /tmp/r.json | tail -n 1 | sed 's/.*"seq": *\([0-9]*\).*/\1/')
total=$(($(counter notify_emitted) + $(counter notify_dropped_ring_full)))
# the restart's ATTACH, then OPEN and READ of f0
check "seq continues: last seq $seq = $before + 3 = records generated ($total)" \
	test "$seq" = $((before + 3)) -a "$seq" = "$total"
# the client's first line: the new daemon's ATTACH, marking the time unobserved
check "the client's first line is the restarted daemon's ATTACH, seq $((before + 1)): $(head -n 1 /tmp/r.json | cut -c 1-60)" \
	grep -q "^{\"schema\": 1, \"seq\": $((before + 1)), \"op\": \"ATTACH\"" /tmp/r.json
kill "$RPID"

# --- SIGTERM: clean exit, socket removed, reader detached
kill -TERM "$DPID"
wait "$DPID"
rc=$?
check "SIGTERM exits 0 (exit $rc)" test "$rc" = 0
check "socket removed" test ! -e "$SOCK"
att=$(counter notify_reader_attached)
check "reader detached: a new daemon attaches" start_daemon
check "notify_reader_attached counts it ($att -> $(counter notify_reader_attached))" \
	test "$(counter notify_reader_attached)" = $((att + 1))

# --- the filesystem goes away: the daemon exits non-zero, saying so
umount -l "$MNT"
check "daemon exits after a lazy umount" wait_for 60 gone "$DPID"
wait "$DPID"
rc=$?
check "daemon exits 4, the filesystem is gone (exit $rc)" test "$rc" = 4
tail -n 3 /tmp/notifyd.log

echo "daemon-test: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
