#!/bin/sh
# The guest side of `make demo`: scoutfs-notifyd attached to a fresh
# scoutfs mount, scoutfs-notify-watch connected, some file activity,
# and the records the client printed.
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
wait_for 30 grep -q serving /tmp/notifyd.log || { echo "demo: the daemon did not start"; cat /tmp/notifyd.log; exit 1; }
echo "demo: scoutfs-notify-watch $MNT"
scoutfs-notify-watch "$MNT" >/tmp/watch.txt 2>&1 &
WPID=$!
wait_for 30 connected || { echo "demo: the client did not connect"; cat /tmp/watch.txt; exit 1; }

echo "demo: file activity:"
set -x
mkdir "$MNT/projects"
printf 'hello, archive\n' >"$MNT/projects/notes.txt"
dd if=/dev/urandom of="$MNT/projects/data.bin" bs=64k count=4 2>/dev/null
cat "$MNT/projects/notes.txt" >/dev/null
dd if="$MNT/projects/data.bin" of=/dev/null bs=64k skip=2 count=1 2>/dev/null
cp "$MNT/projects/notes.txt" "$MNT/projects/copy.txt"
ls -l "$MNT/projects" >/dev/null
su -s /bin/sh user -c "cat $MNT/projects/copy.txt" >/dev/null
set +x
wait_for 30 has "copy.txt.*READ\|READ.*copy.txt" || echo "demo: (the last record did not arrive)"
kill "$WPID"
echo "demo: what scoutfs-notify-watch printed:"
cat /tmp/watch.txt
echo "demo: the same socket as raw 64-byte records (smoke test in docs/interface.md):"
wait_for 30 alone
socat -u UNIX-CONNECT:/run/scoutfs/"$(stat -f -c %i "$MNT")"/notify.sock,type=5 - >/tmp/raw.bin &
SPID=$!
wait_for 30 connected
cat "$MNT/projects/notes.txt" >/dev/null
wait_for 30 test "$(wc -c </tmp/raw.bin)" -ge 128
kill "$SPID"
od -A d -t x8 /tmp/raw.bin
echo "demo: counters:"
for c in /sys/fs/scoutfs/*/counters/notify_*; do
	echo "  ${c##*/} $(cat "$c")"
done
kill -TERM "$DPID"
wait "$DPID"
echo "demo: scoutfs-notifyd exited $?; its log:"
cat /tmp/notifyd.log
