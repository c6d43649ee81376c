#!/bin/bash
# /init of the upstream-suite VM (scripts/upstream-suite.sh builds it):
# a Debian root with two prebuilt scoutfs trees of one release,
# /scoutfs/base (unpatched) and /scoutfs/notify (the series applied).
# It runs upstream's own tests/run-tests.sh from the tree of each pass
# named in /etc/upstream-suite.conf (one VM per pass, side by side), on
# four virtio disks, with a fresh mkfs:
#
#   base    the unpatched module, nothing attached
#   notify  the patched module, and as soon as each mount appears a
#           scoutfs-notifyd attached to it with a scoutfs-notify-watch
#           client reading every record it relays
#
# Each result goes to the console as one parseable line as soon as
# run-tests.sh prints it (result_lines)
#   upstream: <pass> <test> passed|failed|skipped <secs>s|- [message]
# and after each pass the totals, the kernel-log check and, for notify,
# what the readers saw.  Nothing here changes upstream's tree: the
# exclusions are run-tests.sh -E arguments and the builds were made on
# the host (the kernel tree run-tests.sh's kmod make points at is a
# stub that only checks the prebuilt scoutfs.ko is there).
set -uo pipefail

export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
export HOME=/root LANG=C
# no udev here: libdevmapper makes the /dev/mapper nodes itself
export DM_DISABLE_UDEV=1

mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
mkdir -p /dev/pts /dev/shm
mount -t devpts devpts /dev/pts
# what udev would add: bash's <(...) needs /dev/fd
ln -s /proc/self/fd /dev/fd
ln -s /proc/self/fd/0 /dev/stdin
ln -s /proc/self/fd/1 /dev/stdout
ln -s /proc/self/fd/2 /dev/stderr
mount -t tmpfs tmpfs /run
mount -t tmpfs tmpfs /dev/shm
mount -t debugfs debugfs /sys/kernel/debug
ip link set lo up
hostname upstream-suite

conf=/etc/upstream-suite.conf
# shellcheck source=/dev/null
. "$conf"
: "${PASSES:?}" "${EXCLUDE:?}" "${PASS_TIMEOUT:?}" "${NR_MOUNTS:?}" "${QUORUM:?}"
DEBUG_KERNEL=${DEBUG_KERNEL:-0}
# a task stuck for 60 s is reported in the kernel log (twice that on
# the debug kernel, as tests/vm/guest.sh's notify.slow=2)
echo $((DEBUG_KERNEL == 1 ? 120 : 60)) >/proc/sys/kernel/hung_task_timeout_secs

finish() {
	echo "upstream: guest done"
	sync
	echo o >/proc/sysrq-trigger
	sleep 60
}

# Four 64 GiB virtio disks (scoutfs mkfs's minimum device size), sparse
# files on the host: meta, data, extra meta, extra data; and a fifth for
# the results.
if ! modprobe virtio_pci || ! modprobe virtio_blk; then
	echo "upstream: virtio_blk FAILED"
	finish
fi
for d in vda vdb vdc vdd vde; do
	# devtmpfs adds the node as the driver probes: bounded wait
	for _ in $(seq 100); do
		[ -b /dev/$d ] && break
		sleep 0.1
	done
	[ -b /dev/$d ] || { echo "upstream: no /dev/$d"; finish; }
done
# run-tests.sh's results and tmp files on a real filesystem (the fifth
# disk), as on upstream's test hosts: tmpfs refuses O_DIRECT
if ! modprobe ext4 || ! mkfs.ext4 -q -F /dev/vde || ! mount -t ext4 /dev/vde /results; then
	echo "upstream: results filesystem FAILED"
	finish
fi
modprobe dm-mod || { echo "upstream: dm-mod FAILED"; finish; }
modprobe libcrc32c
# change-devices attaches sparse files with losetup --find
modprobe loop || { echo "upstream: loop FAILED"; finish; }
echo "upstream: guest up, kernel $(uname -r), $(nproc) cpus, $(awk '/MemTotal/ {print int($2 / 1048576)}' /proc/meminfo) GiB"

warn_re='WARNING|BUG|Oops|Call Trace|blocked for more than|general protection|KASAN|UBSAN'

# The debug kernel's detectors (DEBUG_KERNEL=1, docs/debug-kernel.md),
# checked after each pass with scoutfs unmounted and unloaded, as
# tests/vm/guest.sh checks them after its suites: kmemleak's list
# (cleared as the pass starts: what boot left is not ours), lockdep
# still on (it turns itself off after its first report), and no report
# in the kernel log of the pass and of the boot before it, each printed
# whole.  A finding is a `detectors: ... FAILED` line (the report counts
# it), the lists and reports `upstream: <pass> report | ` lines.
KMEMLEAK=/sys/kernel/debug/kmemleak
# tests/vm/guest.sh's REPORT: the header lines of reports
REPORT='WARNING:|BUG:|kernel BUG at|Oops|general protection fault|Kernel panic|Call Trace:|INFO: task .* blocked for more than|INFO: trying to register non-static key|UBSAN:|KASAN:|rcu: INFO:|detected stall'

debug_start() {
	dmesg >"/tmp/dmesg.before.$1"
	if [ -w $KMEMLEAK ]; then
		echo scan >$KMEMLEAK
		echo clear >$KMEMLEAK
	fi
}

# kmemleak lists an object only once it is 5 s old: scan until a scan
# starts 6 s after now, then twice more (as tests/vm/guest.sh does)
kmemleak_settle() {
	local t
	t=$(cut -d. -f1 /proc/uptime)
	until [ "$(cut -d. -f1 /proc/uptime)" -ge $((t + 6)) ]; do
		echo scan >$KMEMLEAK
	done
	echo scan >$KMEMLEAK
	echo scan >$KMEMLEAK
}

debug_check() {
	local pass=$1 n
	if [ ! -w $KMEMLEAK ]; then
		echo "upstream: $pass detectors: kmemleak: not on this kernel FAILED"
	else
		kmemleak_settle
		cat $KMEMLEAK >"/tmp/kmemleak.$pass"
		n=$(grep -c '^unreferenced object' "/tmp/kmemleak.$pass")
		if [ "$n" -eq 0 ]; then
			echo "upstream: $pass detectors: kmemleak: no leak"
		else
			head -n 3000 "/tmp/kmemleak.$pass" | sed "s/^/upstream: $pass report | /"
			echo "upstream: $pass detectors: kmemleak: $n unreferenced objects FAILED"
		fi
	fi
	if grep -qE 'debug_locks: +1$' /proc/lockdep_stats 2>/dev/null; then
		echo "upstream: $pass detectors: lockdep: still on at the end"
	else
		grep -E 'debug_locks|max' /proc/lockdep_stats 2>&1 | sed "s/^/upstream: $pass report | /"
		echo "upstream: $pass detectors: lockdep: off at the end (a report turned it off, or no lockdep) FAILED"
	fi
	{
		cat "/tmp/dmesg.before.$pass"
		dmesg
	} >"/tmp/dmesg.$pass"
	n=$(grep -cE "$REPORT" "/tmp/dmesg.$pass")
	if [ "$n" -eq 0 ]; then
		echo "upstream: $pass detectors: kernel log: no warning, oops, lockdep, KASAN, UBSAN report or hung task ($(wc -l <"/tmp/dmesg.$pass") lines)"
	else
		awk -v re="$REPORT" '$0 ~ re { n = 150 } n > 0 { print; n-- }' "/tmp/dmesg.$pass" |
			head -n 3000 | sed "s/^/upstream: $pass report | /"
		echo "upstream: $pass detectors: kernel log: $n report header lines FAILED"
	fi
}

# The notify pass's readers: one supervisor per mount for the whole
# pass.  It attaches a scoutfs-notifyd (each with its own run dir:
# every mount here is of the same filesystem, so they share an fsid)
# and a client counting what it receives as soon as the mount appears,
# and again after every remount.  Tests that unmount do so through the
# umount wrapper (install_umount_wrapper below), which stops that mount's reader
# first, as systemd does for the unit (BindsTo= the mount): umount(2)
# of a mount with an open file is EBUSY, for a daemon as for anyone.
#
# The supervisor decides to start a daemon (no hold, mount there) and
# records its pid under a lock that notify-stop-reader takes to set the
# hold and read the pid: either the daemon was started first and is
# stopped, or the supervisor sees the hold.  (Without the lock a daemon
# could start on a mount that umount -f was already tearing down: that
# is how we read the one that failed with ENOLINK in the first run of
# the subset.)
#
# A reader's end is counted as clean when its daemon exited 0 on
# SIGTERM, was killed by the SIGTERM that stopped it before it had set
# its handler (as systemd counts a stop), or exited 4 because its mount
# went away underneath it or is being forcibly unmounted (the documented
# lazy and forced unmount cases);
# anything else is an early exit, reported with the reader's events.
supervise() {
	local i=$1 mnt=/mnt/test.$1 rd=/run/notify.$1 bin=/scoutfs/notify/utils/notifyd
	local d w rc n g fsid lk
	local starts=0 lines=0 gaps=0 early=0 relayed=0 lost=0
	exec {lk}>"$rd.lock"
	while :; do
		while :; do
			kill -0 "$runpid" 2>/dev/null || break 2
			flock "$lk"
			[ ! -e "$rd.hold" ] && findmnt -n -t scoutfs "$mnt" >/dev/null && break
			flock -u "$lk"
			findmnt --poll=mount --first-only --timeout 1000 >/dev/null 2>&1
		done
		"$bin/scoutfs-notifyd" --run-dir "$rd" "$mnt" >>"/tmp/notifyd.$i.log" 2>&1 {lk}>&- &
		d=$!
		echo "$d" >"$rd.pid"
		flock -u "$lk"
		echo "$EPOCHREALTIME start $d" >>"$rd.events"
		starts=$((starts + 1))
		[ "$starts" -eq 1 ] && echo "upstream: notify reader $i attached to $mnt"
		w=""
		fsid=$(stat -f -c %i "$mnt" 2>/dev/null) || fsid=none
		# the daemon binds its socket once it is attached
		while [ ! -S "$rd/$fsid/notify.sock" ] && kill -0 "$d" 2>/dev/null; do
			inotifywait -qq -t 1 -e create -r "$rd" 2>/dev/null || true
		done
		if [ -S "$rd/$fsid/notify.sock" ]; then
			"$bin/scoutfs-notify-watch" --no-paths --socket "$rd/$fsid/notify.sock" 2>&1 |
				awk '/gap|lost|dropped/ {g++} {n++} END {print n + 0, g + 0}' >"/tmp/watch.$i.count" &
			w=$!
		fi
		wait "$d"
		rc=$?
		rm -f "$rd.pid"
		echo "$EPOCHREALTIME exit $d $rc" >>"$rd.events"
		if [ -n "$w" ]; then
			wait "$w"
			read -r n g <"/tmp/watch.$i.count"
			lines=$((lines + n))
			gaps=$((gaps + g))
		fi
		# "client 1 gone (...): relayed N, lost M", logged as the daemon ends
		read -r n g < <(grep -h 'client 1 gone' "/tmp/notifyd.$i.log" | tail -n 1 |
			sed -n 's/.*relayed \([0-9]*\), lost \([0-9]*\).*/\1 \2/p')
		relayed=$((relayed + ${n:-0}))
		lost=$((lost + ${g:-0}))
		if [ "$rc" -eq 0 ] || { [ "$rc" -eq 143 ] && [ -e "$rd.hold" ]; } ||
			{ [ "$rc" -eq 4 ] && ! findmnt -n -t scoutfs "$mnt" >/dev/null; }; then
			:
		else
			early=$((early + 1))
			echo "upstream: notify reader $i: daemon EXITED EARLY ($rc): $(tail -n 3 "/tmp/notifyd.$i.log" | tr '\n' ' ')"
			tail -n 8 "$rd.events" | sed "s/^/upstream: notify reader $i: event /"
			# not again on this mount: wait for it to go (or the run to end)
			while findmnt -n -t scoutfs "$mnt" >/dev/null && kill -0 "$runpid" 2>/dev/null; do
				findmnt --poll=mount --first-only --timeout 1000 >/dev/null 2>&1
			done
		fi
		cat "/tmp/notifyd.$i.log" >>"/tmp/notifyd.$i.all"
		: >"/tmp/notifyd.$i.log"
	done
	if [ "$early" -eq 0 ]; then
		echo "upstream: notify reader $i: daemon was up to the end, $starts attaches, each ended cleanly"
	else
		echo "upstream: notify reader $i: daemon EXITED EARLY $early of $starts attaches"
	fi
	echo "upstream: notify reader $i: client received $lines lines, $gaps gap lines"
	echo "upstream: notify reader $i: the daemon relayed $relayed records to it, lost $lost"
}

start_readers() {
	local i
	for ((i = 0; i < NR_MOUNTS; i++)); do
		supervise "$i" &
		spid[i]=$!
	done
}

# The run is over (runpid is gone): stop every daemon, and the
# supervisors then print their totals and end.
stop_readers() {
	local i
	for i in "${!spid[@]}"; do
		/opt/notify-wrap/notify-stop-reader "$i"
	done
	for i in "${!spid[@]}"; do
		wait "${spid[i]}"
		rm -f "/run/notify.$i.hold"
	done
	spid=()
}

# The notify pass's umount(8), first in run-tests.sh's PATH: for a test
# mount with a reader, stop the reader (holding its supervisor off),
# then unmount; the reader comes back once the mount does.  Its helper
# notify-stop-reader I also serves stop_readers: hold mount I's
# supervisor off, SIGTERM its daemon if one runs and wait for it to be
# gone (bounded: a daemon that ignores SIGTERM is a failure).
install_umount_wrapper() {
	mkdir -p /opt/notify-wrap
	cat >/opt/notify-wrap/notify-stop-reader <<'STOP'
#!/bin/bash
r=/run/notify.$1
exec 9>"$r.lock"
flock 9
touch "$r.hold"
p=$(cat "$r.pid" 2>/dev/null)
exec 9>&-
echo "$EPOCHREALTIME stop ${p:-none}" >>"$r.events"
[ -n "$p" ] || exit 0
kill -TERM "$p" 2>/dev/null || exit 0
if ! timeout 60 tail --pid="$p" -s 0.05 -f /dev/null; then
	echo "upstream: notify reader $1: daemon $p still there 60 s after SIGTERM" >&2
	exit 1
fi
STOP
	cat >/opt/notify-wrap/umount <<'WRAP'
#!/bin/bash
held=()
for a in "$@"; do
	case "$a" in
	/mnt/test.[0-9]*) i=${a##*.} ;;
	*) continue ;;
	esac
	held+=("$i")
	echo "$EPOCHREALTIME umount $* called" >>"/run/notify.$i.events"
	/opt/notify-wrap/notify-stop-reader "$i"
done
for i in "${held[@]}"; do
	echo "$EPOCHREALTIME umount $* starts" >>"/run/notify.$i.events"
done
/usr/bin/umount "$@"
rc=$?
for i in "${held[@]}"; do
	echo "$EPOCHREALTIME umount $* exited $rc" >>"/run/notify.$i.events"
	rm -f "/run/notify.$i.hold"
done
exit $rc
WRAP
	chmod +x /opt/notify-wrap/notify-stop-reader /opt/notify-wrap/umount
}

# Counters of every mount still there, then everything unmounted and
# the module removed, so that the next pass starts clean.
teardown() {
	local pass=$1 d m wd upids
	for d in /sys/fs/scoutfs/*/counters; do
		[ -f "$d/notify_emitted" ] || continue
		echo "upstream: $pass counters $(basename "$(dirname "$d")"): emitted $(cat "$d/notify_emitted") dropped $(cat "$d/notify_dropped_ring_full") attached $(cat "$d/notify_reader_attached")"
	done
	[ "$pass" = notify ] && stop_readers
	# to place the addresses of a report made after the module is gone
	# (kmemleak's): run-tests.sh loads it again as it starts
	if [ "$DEBUG_KERNEL" = 1 ] && [ -r /sys/module/scoutfs/sections/.text ]; then
		echo "upstream: $pass: module .text at $(cat /sys/module/scoutfs/sections/.text) before its rmmod"
	fi
	# Bounded: an unmount that has not returned after 5 minutes is
	# reported with the kernel's list of blocked tasks and stacks, and
	# the guest powers off (a task stuck in the kernel can't be killed).
	(
		sleep 300
		echo "upstream: $pass: unmount HUNG: $(findmnt -n -t scoutfs -o TARGET | tr '\n' ' ')still mounted after 300 s"
		echo w >/proc/sysrq-trigger
		echo l >/proc/sysrq-trigger
		dmesg | tail -n 300 | sed "s/^/upstream: $pass hung | /"
		echo o >/proc/sysrq-trigger
	) &
	wd=$!
	upids=()
	for m in $(findmnt -n -t scoutfs -o TARGET); do
		umount "$m" &
		upids+=($!)
	done
	[ ${#upids[@]} -eq 0 ] || wait "${upids[@]}"
	kill "$wd"
	for d in /dev/mapper/_scoutfs_test_*; do
		[ -b "$d" ] && dmsetup remove "$d"
	done
	if [ -e /sys/module/scoutfs ] && ! rmmod scoutfs; then
		echo "upstream: $pass: rmmod scoutfs FAILED"
	fi
}

excl=()
for t in $EXCLUDE; do
	excl+=(-E "^${t//./\\.}\$")
done
# run-tests.sh greps with basic regexes, one -I per alternative
incl=()
IFS='|' read -r -a only <<<"${ONLY:-}"
for t in "${only[@]}"; do
	incl+=(-I "$t")
done

# What upstream's tests expect of the userland they were written on
# (el7-el9, coreutils 8), first in run-tests.sh's PATH in both passes.
# coreutils 9 (bookworm's) prints stat's "Device:" as MAJ,MIN, which
# upstream's t_filter_fs does not normalise (it expects 8's HEXh/DECd),
# so every cross-mount stat comparison in basic-posix-consistency and
# dirent-consistency differed; the wrapper prints 8's form of the same
# device number.  (basic-posix-consistency also copies /boot/conf*:
# scripts/upstream-suite.sh puts the kernel's config there.)
install_compat_stat() {
	mkdir -p /opt/compat
	cat >/opt/compat/stat <<'STAT'
#!/bin/bash
# argv[0] "stat", as stat's own messages name it (inode-deletion's
# golden output has "stat: cannot stat ...")
(exec -a stat /usr/bin/stat "$@") | perl -pe 's{^Device: (\d+),(\d+)(?=\s)}{
	my $d = ($2 & 0xff) | ($1 << 8) | (($2 & ~0xff) << 12);
	sprintf("Device: %xh/%dd", $d, $d)}e'
exit "${PIPESTATUS[0]}"
STAT
	chmod +x /opt/compat/stat
}

# basic-nfs (v1.32 on) exports a test mount over NFS after `systemctl
# start nfs-server`, and stops it with `systemctl stop nfs-server`.  No
# systemd here (this script is init), so this systemctl does for that
# unit what systemd does on upstream's test hosts, after Debian's
# nfs-server.service and the units it requires and wants: the nfsd
# filesystem on /proc/fs/nfsd, rpcbind, rpc.statd and rpc.mountd, then
# `exportfs -r` and `rpc.nfsd`; on stop `rpc.nfsd 0`, `exportfs -au`,
# `exportfs -f`, and rpc.mountd (which BindsTo= the server) ends.  Any
# other request fails with a message.  The daemons keep no descriptor of
# the test's: run-tests.sh gives each test its own stdout on fd 6, a pipe
# to result_lines here, which must close when run-tests.sh ends.
install_compat_systemctl() {
	cat >/opt/compat/systemctl <<'CTL'
#!/bin/bash
set -uo pipefail
log=/run/compat-systemctl.log
echo "$EPOCHREALTIME systemctl $*" >>"$log"
daemon() {
	(
		for f in "/proc/$BASHPID/fd/"*; do
			f=${f##*/}
			[ "$f" -gt 2 ] && [ "$f" -ne 255 ] && eval "exec $f>&-"
		done
		exec "$@"
	) </dev/null >>"$log" 2>&1
}
running() {
	[ -s "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null
}
case "${1:-} ${2%.service}" in
"start nfs-server")
	modprobe nfsd || exit 1
	mountpoint -q /proc/fs/nfsd || mount -t nfsd nfsd /proc/fs/nfsd || exit 1
	rpcinfo -p 127.0.0.1 >/dev/null 2>&1 || daemon rpcbind -w || exit 1
	running /run/rpc.statd.pid || daemon rpc.statd --no-notify || exit 1
	pidof rpc.mountd >/dev/null || daemon rpc.mountd || exit 1
	exportfs -r
	rpc.nfsd || exit 1
	;;
"stop nfs-server")
	rpc.nfsd 0
	rc=$?
	exportfs -au
	exportfs -f
	for p in $(pidof rpc.mountd); do
		kill "$p" && timeout 30 tail --pid="$p" -s 0.05 -f /dev/null
	done
	exit $rc
	;;
*)
	echo "systemctl: no systemd in the upstream-suite guest; only 'start' and 'stop' of nfs-server are provided" >&2
	exit 1
	;;
esac
CTL
	chmod +x /opt/compat/systemctl
}

# Upstream's harness puts `git describe --tags` of the tree in its TAP
# header (funcs/tap.sh, every release); the trees here have no .git, so
# this git answers that one command from the describe file
# scripts/upstream-suite.sh wrote beside each tree, and refuses any
# other (the tests that need real git, xfstests.sh and
# format-version-forward-back.sh, are excluded).
install_compat_git() {
	cat >/opt/compat/git <<'GIT'
#!/bin/bash
if [ "$*" = "describe --tags" ]; then
	d=$PWD
	while [ "$d" != / ] && [ ! -f "$d/describe" ]; do
		d=$(dirname "$d")
	done
	[ -f "$d/describe" ] && head -n 1 "$d/describe" && exit 0
fi
echo "git: the upstream-suite guest has no git; only 'git describe --tags' of a test tree is answered" >&2
exit 1
GIT
	chmod +x /opt/compat/git
}

# run-tests.sh's lines pass through; after each test's result line
# ("  name<pad>  passed: Ns" or "  name<pad>  [ failed|skipped...: msg ]")
# comes its parseable copy, as it scrolls by, so a pass that is cut
# short (timeout, a killed VM) still reports every test that ran.
result_lines() {
	sed -u -n -e p \
		-e "s/^  \([a-z0-9_-]\+\)\( .*\)\?  passed: \([0-9]\+s\)\$/upstream: $1 \1 passed \3/p" \
		-e "s/^  \([a-z0-9_-]\+\)\( .*\)\?  \[ \(failed\|skipped\)\( (permitted)\)\?: \(.*\) \]\$/upstream: $1 \1 \3 - \5/p"
}

declare -a spid
install_umount_wrapper
install_compat_stat
install_compat_systemctl
install_compat_git
for pass in $PASSES; do
	tree=/scoutfs/$pass
	res=/results/$pass
	[ "$DEBUG_KERNEL" = 0 ] || debug_start "$pass"
	dmesg -C
	insmod "$tree/kmod/src/scoutfs.ko" || { echo "upstream: $pass: insmod FAILED"; continue; }
	echo "upstream: $pass: scoutfs $(cat "$tree/describe"), $(echo "$EXCLUDE" | wc -w) tests excluded"
	start=$SECONDS
	(
		cd "$tree/tests" || exit
		wrap=/opt/compat:
		[ "$pass" = notify ] && wrap=/opt/notify-wrap:$wrap
		PATH=$wrap$PATH SK_KSRC=/opt/prebuilt-ksrc timeout -k 30 "$PASS_TIMEOUT" \
			bash ./run-tests.sh -M /dev/vda -D /dev/vdb -f /dev/vdc -e /dev/vdd \
			-m -n "$NR_MOUNTS" -q "$QUORUM" -r "$res" "${excl[@]}" "${incl[@]}"
		echo $? >"/tmp/rc.$pass"
	) 2>&1 | tee "/tmp/run.$pass.log" | result_lines "$pass" &
	runpid=$!
	[ "$pass" = notify ] && start_readers
	wait "$runpid"
	rc=$(cat "/tmp/rc.$pass")
	echo "upstream: $pass: run-tests.sh exited $rc after $((SECONDS - start))s"
	[ "$rc" -eq 124 ] && echo "upstream: $pass: TIMED OUT after ${PASS_TIMEOUT}s"
	if ! grep -q '^\[== all tests run' "/tmp/run.$pass.log"; then
		tail -n 25 "$res/run.log" | sed "s/^/upstream: $pass run.log | /"
		dmesg | tail -n 25 | sed "s/^/upstream: $pass dmesg | /"
	fi
	if [ -s "$res/fail.log" ]; then
		echo "upstream: $pass fail.log:"
		head -n 150 "$res/fail.log" | sed "s/^/upstream: $pass | /"
		# and the ends of what each failed test left in its tmp dir
		awk '{print $1}' "$res/fail.log" | grep -E '^[a-z0-9_-]+$' | sort -u |
			while read -r t; do
				for f in "$res/tmp/$t"/*; do
					[ -f "$f" ] || continue
					tail -n 6 "$f" | sed "s#^#upstream: $pass | $t/$(basename "$f"): #"
				done
			done
		# and what the guest's systemctl did (basic-nfs's NFS server)
		[ -s /run/compat-systemctl.log ] &&
			tail -n 20 /run/compat-systemctl.log | sed "s#^#upstream: $pass | systemctl: #"
		# and every reader's events (start, exit, stop, umount called /
		# starts / exited, with times)
		for f in /run/notify.*.events; do
			[ -f "$f" ] && sed "s#^#upstream: $pass | $(basename "$f"): #" "$f"
		done
	fi
	teardown "$pass"
	nw=$(dmesg | grep -cE "$warn_re")
	echo "upstream: $pass kernel log: $nw warning lines"
	dmesg | grep -E -A12 "$warn_re" | head -n 40 | sed "s/^/upstream: $pass dmesg | /"
	[ "$DEBUG_KERNEL" = 0 ] || debug_check "$pass"
done
finish
