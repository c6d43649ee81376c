#!/bin/sh
# shellcheck disable=SC2317 # the conditions are called through wait_for
# The guest side of `make demo`: scoutfs-notifyd attached to a fresh
# scoutfs mount, scoutfs-notify-watch connected, some file activity,
# and the records the client printed.  It checks what it shows (the
# records the activity must give, the raw socket, the counters, a clean
# daemon exit) and closes with `demo: N passed, N failed`, so the
# README's main job is tested wherever this suite runs (the matrix runs
# it on the base release).
set -u

MNT=$1
# shellcheck source=tests/vm/lib.sh
. /t/lib.sh
connected() {
	[ "$(sock_clients "$SOCK")" -ge 1 ]
}
# the daemon has noticed that earlier clients went away
alone() {
	[ "$(sock_clients "$SOCK")" -eq 0 ]
}
has() {
	grep -q "$1" /tmp/watch.txt
}

FSID=$(stat -f -c %i "$MNT")
SOCK=/run/scoutfs/$FSID/notify.sock
echo "demo: scoutfs mounted on $MNT, fsid $FSID"
echo "demo: starting scoutfs-notifyd $MNT"
scoutfs-notifyd "$MNT" 2>/tmp/notifyd.log &
DPID=$!
finish() {
	echo "demo: $pass passed, $fail failed"
	exit $((fail > 0))
}
wait_for 30 grep -q serving /tmp/notifyd.log || { bad "the daemon did not start: $(cat /tmp/notifyd.log)"; finish; }
echo "demo: scoutfs-notify-watch $MNT"
scoutfs-notify-watch "$MNT" >/tmp/watch.txt 2>&1 &
WPID=$!
wait_for 30 connected || { bad "the client did not connect: $(cat /tmp/watch.txt)"; finish; }
# the access index (commit 5), fed from this node's daemon
HEAT=""
if command -v scoutfs-notify-heat >/dev/null; then
	HEAT="scoutfs-notify-heat --db /tmp/heat.db"
	echo "demo: $HEAT ingest --socket $MNT"
	$HEAT ingest --socket "$MNT" --flush-interval 100ms 2>/tmp/heat.log &
	HPID=$!
	two_clients() {
		[ "$(sock_clients "$SOCK")" -ge 2 ]
	}
	wait_for 30 two_clients || bad "the index's ingest did not connect: $(cat /tmp/heat.log)"
fi

echo "demo: file activity:"
set -x
mkdir "$MNT/projects"
printf 'hello, archive\n' >"$MNT/projects/notes.txt"
printf 'nobody reads this\n' >"$MNT/projects/old.log"
dd if=/dev/urandom of="$MNT/projects/data.bin" bs=64k count=4 2>/dev/null
cat "$MNT/projects/notes.txt" >/dev/null
dd if="$MNT/projects/data.bin" of=/dev/null bs=64k skip=2 count=1 2>/dev/null
cp "$MNT/projects/notes.txt" "$MNT/projects/copy.txt"
ls -l "$MNT/projects" >/dev/null
su -s /bin/sh user -c "cat $MNT/projects/copy.txt" >/dev/null
set +x
wait_for 30 has "READ .* uid=1000 .*path=$MNT/projects/copy.txt" || echo "demo: (the last record did not arrive)"
kill "$WPID"
echo "demo: what scoutfs-notify-watch printed:"
cat /tmp/watch.txt
# each step of the activity left the record it must
expect_line() {
	if grep -q "$2" /tmp/watch.txt; then
		ok "record: $1"
	else
		bad "record: $1"
	fi
}
# every client's first line: the daemon's ATTACH, when the observation began
if head -n 1 /tmp/watch.txt | grep -q " seq=1 ATTACH "; then
	ok "the client's first line is the daemon's ATTACH, seq 1"
else
	bad "the client's first line is the daemon's ATTACH, seq 1: $(head -n 1 /tmp/watch.txt)"
fi
expect_line "cat opens notes.txt" "OPEN .* uid=0 .*flags=0100000 path=$MNT/projects/notes.txt\$"
expect_line "cat reads its 15 bytes" "READ .* offset=0 len=15 path=$MNT/projects/notes.txt\$"
expect_line "dd reads 64 KiB at 128 KiB" "READ .* offset=131072 len=65536 path=$MNT/projects/data.bin\$"
expect_line "a uid 1000 read of copy.txt" "READ .* uid=1000 gid=1000 .*len=15 path=$MNT/projects/copy.txt\$"
if grep -q "records lost" /tmp/watch.txt; then
	bad "no records lost"
else
	ok "no records lost"
fi
if [ -n "$HEAT" ]; then
	heat_applied() {
		kill -USR1 "$HPID"
		grep -q 'counts: .*applied [1-9]' /tmp/heat.log && [ "$(grep -c 'counts:' /tmp/heat.log)" -ge 1 ] &&
			tail -n 1 /tmp/heat.log | grep -q "applied $(grep -c . /tmp/watch.txt),"
	}
	wait_for 30 heat_applied || echo "demo: (the index has not applied every record: $(tail -n 1 /tmp/heat.log))"
	kill -TERM "$HPID"
	wait "$HPID"
	hrc=$?
	echo "demo: the access index: $HEAT scan $MNT"
	$HEAT scan "$MNT"
	echo "demo: $HEAT cold --under $MNT/projects (coldest first)"
	$HEAT cold --under "$MNT/projects" | tee /tmp/cold.txt
	echo "demo: $HEAT hot --since 1h"
	$HEAT hot --since 1h | tee /tmp/hot.txt
	if [ "$hrc" -eq 0 ] && grep -v '^#' /tmp/cold.txt | head -n 1 | grep -q "last_use=never .*path=$MNT/projects/old.log\$"; then
		ok "index: the file nobody read (only written) is the coldest, last_use=never"
	else
		bad "index: the file nobody read (only written) is the coldest, last_use=never (ingest exit $hrc)"
	fi
	# each file's reads and bytes: exactly what its READ records say
	reads_of() {
		grep "READ .*path=$MNT/projects/$1\$" /tmp/watch.txt |
			sed 's/.* len=\([0-9]*\) .*/\1/' | awk '{ n++; s += $1 } END { printf "read_calls=%d read_bytes=%d", n, s }'
	}
	heat_ok=1
	for f in notes.txt data.bin copy.txt; do
		grep -q "$(reads_of "$f") .*path=$MNT/projects/$f\$" /tmp/hot.txt || heat_ok=0
	done
	grep -q "reader=1000@.*path=$MNT/projects/copy.txt\$" /tmp/hot.txt || heat_ok=0
	if [ "$heat_ok" = 1 ]; then
		ok "index: hot lists the files read with exactly their records' reads and bytes, copy.txt's last reader uid 1000"
	else
		bad "index: hot lists the files read with exactly their records' reads and bytes, copy.txt's last reader uid 1000"
	fi
fi
echo "demo: the same socket as raw 64-byte records (smoke test in docs/interface.md):"
wait_for 30 alone
socat -u UNIX-CONNECT:/run/scoutfs/"$(stat -f -c %i "$MNT")"/notify.sock,type=5 - >/tmp/raw.bin &
SPID=$!
wait_for 30 connected
cat "$MNT/projects/notes.txt" >/dev/null
# the ATTACH, then the OPEN and READ of the cat
raw_ge_192() {
	[ "$(wc -c </tmp/raw.bin)" -ge 192 ]
}
if wait_for 30 raw_ge_192 && [ "$(od -A n -t u4 -j 40 -N 4 /tmp/raw.bin | tr -d ' ')" = 3 ]; then
	ok "the socat smoke test gets raw 64-byte records, the ATTACH (op 3) first"
else
	bad "the socat smoke test gets raw 64-byte records, the ATTACH (op 3) first ($(wc -c </tmp/raw.bin) bytes)"
fi
kill "$SPID"
od -A d -t x8 /tmp/raw.bin
echo "demo: counters:"
for c in /sys/fs/scoutfs/*/counters/notify_*; do
	echo "  ${c##*/} $(cat "$c")"
done
if [ "$(cat /sys/fs/scoutfs/*/counters/notify_reader_attached)" = 1 ] &&
	[ "$(cat /sys/fs/scoutfs/*/counters/notify_emitted)" -ge 8 ]; then
	ok "counters: one reader attached, records emitted"
else
	bad "counters: one reader attached, records emitted"
fi
kill -TERM "$DPID"
wait "$DPID"
rc=$?
echo "demo: scoutfs-notifyd exited $rc; its log:"
cat /tmp/notifyd.log
if [ "$rc" -eq 0 ]; then
	ok "scoutfs-notifyd exits 0 on SIGTERM"
else
	bad "scoutfs-notifyd exits 0 on SIGTERM (exit $rc)"
fi
finish
