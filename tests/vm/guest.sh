#!/bin/sh
# The guest side of `make vm-test` and `make demo`: runs inside the VM's
# initramfs (busybox sh) as /init's last step, with the suites named on
# the kernel command line.  Every suite starts from a freshly made and
# mounted scoutfs and ends with umount and a clean rmmod; the run ends
# with a scan of the kernel log for reports (warnings, oopses, lockdep,
# KASAN, UBSAN, hung tasks, printed whole) and, on a kernel with
# kmemleak (the debug kernel), a kmemleak scan after the module is gone,
# then the closing line `guest: N passed, N failed`.  It starts with
# `guest: run NONCE`, NONCE from notify.nonce= on the kernel command
# line: the host takes the closing line only after it (a console log of
# an earlier run has another).
#
# Suites:
#   kernel  tests/vm/kernel-test.c on the mount (the ring and the hooks),
#           then the readpath suite
#   readpath  tests/vm/readpath-test.c: every way of reading and its
#           records, on three data devices: brd, dm-delay over brd, and
#           virtio-blk (reads complete inline, later in a kworker, in
#           an interrupt)
#   daemon  tests/vm/daemon-test.sh: scoutfs-notifyd and its client on
#           the mount (needs patch 3)
#   demo    tests/vm/demo.sh: what `make demo` shows
#   faults  tests/vm/faults-test.c: concurrency storms, reader lifecycle
#           races and an ioctl fuzz loop (`make vm-test SUITE=faults`)
#   bench   tests/vm/bench.sh: hook cost and latency (`make bench`)
#   detectors  (debug kernel) planted bugs, tests/vm/bugs/notify_bugs.c,
#           each reported by its detector; runs after the final checks
#   dio-repro  tests/vm/dio-nowait-repro.c: a reproducer of upstream's
#           inode_dio_end() without inode_dio_begin() (docs/releases.md);
#           never a default suite, and the last one run: where the bug
#           is, it leaves a task asleep for good holding the inode lock
#   nats    tests/vm/nats-test.sh: three mounts of one filesystem, each
#           with its daemon and scoutfs-notify-forward, a three-server
#           NATS cluster holding the stream (needs patch 4)
set -u

MNT=/mnt
# the data device of the next mkfs_mount (the readpath suite changes it)
DATA=/dev/ram1
# shellcheck source=tests/vm/lib.sh
. /t/lib.sh
echo "guest: run $(sed -n 's/.*notify\.nonce=\([^ ]*\).*/\1/p' /proc/cmdline)"
# notify.only=NAME on the kernel command line runs one test of a program
ONLY=$(sed -n 's/.*notify\.only=\([^ ]*\).*/\1/p' /proc/cmdline)
only_args() {
	[ -z "$ONLY" ] || echo "-t $ONLY"
}
# a task stuck for 60 s gets a report in the kernel log (and fails the run)
echo $((60 * SLOW)) >/proc/sys/kernel/hung_task_timeout_secs 2>/dev/null
# kmemleak (debug kernel): what boot left unreferenced is not ours, so
# the list starts empty; the suites' leaks are listed at the end
KMEMLEAK=/sys/kernel/debug/kmemleak
if [ -w $KMEMLEAK ]; then
	echo scan >$KMEMLEAK
	echo clear >$KMEMLEAK
	echo "guest: kmemleak on, boot's suspects cleared"
fi
# a guest that is still running when the host's timeout nears shows why
# (a task stuck in the kernel can't be killed by `timeout`)
WATCHDOG=$(sed -n 's/.*notify\.watchdog=\([0-9]*\).*/\1/p' /proc/cmdline)
if [ -n "$WATCHDOG" ]; then
	(sleep "$WATCHDOG"
	 echo "guest watchdog: still running after ${WATCHDOG}s, blocked tasks:"
	 echo w >/proc/sysrq-trigger
	 ps
	 dmesg | grep -i scoutfs | grep -v '^\[[ 0-9.]*\]  ' | tail -n 40
	 dmesg | tail -n 200) &
fi

# mkfs and mount a fresh scoutfs (both ram disks), loading the module
mkfs_mount() {
	if ! scoutfs mkfs -A -f -Q 0,127.0.0.1,53000 /dev/ram0 "$DATA" >/tmp/mkfs.log 2>&1; then
		cat /tmp/mkfs.log
		bad "$1: mkfs"
		return 1
	fi
	if [ ! -d /sys/module/scoutfs ]; then
		if ! insmod /modules/scoutfs.ko; then
			bad "$1: insmod scoutfs"
			return 1
		fi
		# to decode a report's addresses once the module is gone
		[ ! -w $KMEMLEAK ] || echo "guest: scoutfs.ko .text at $(cat /sys/module/scoutfs/sections/.text)"
	fi
	# A mount that fails can itself never return on releases before
	# v1.33 (upstream cebe4654: srch_destroy waits for a compaction
	# request that nobody answers), and `timeout` can't kill a task in
	# D state: wait for it in the background, and when it is stuck say
	# so with the stacks and skip what would only wait on it too.
	mount -t scoutfs -o metadev_path=/dev/ram0,quorum_slot_nr=0 "$DATA" $MNT 2>/tmp/mount.err &
	mpid=$!
	if ! wait_for $((180 * SLOW)) gone $mpid; then
		bad "$1: mount did not return within $((180 * SLOW)) s (a failed mount hangs before v1.33, upstream cebe4654); skipping the remaining suites"
		dmesg | grep -i scoutfs | grep -v '^\[[ 0-9.]*\]  ' | tail -n 20
		echo w >/proc/sysrq-trigger
		dmesg | tail -n 60
		STUCK=1
		return 1
	fi
	if ! wait $mpid; then
		bad "$1: mount: $(cat /tmp/mount.err)"
		dmesg | grep -i scoutfs | tail -n 20
		return 1
	fi
	return 0
}

# umount (if still mounted) and unload the module: both must work
umount_rmmod() {
	if grep -q " $MNT scoutfs " /proc/mounts; then
		if timeout $((120 * SLOW)) umount $MNT; then
			ok "$1: umount"
		else
			bad "$1: umount"
			return 1
		fi
	fi
	wait_for 30 module_unused
	if rmmod scoutfs; then
		ok "$1: rmmod scoutfs"
	else
		bad "$1: rmmod scoutfs (refcnt $(cat /sys/module/scoutfs/refcnt 2>/dev/null))"
	fi
}

# run a program that ends with its own `X: N passed, N failed` line and
# add its counts; a missing closing line is a failure
run_counted() {
	name=$1
	shift
	t=$(cut -d. -f1 /proc/uptime)
	("$@"; echo $? >/tmp/run.rc) 2>&1 | tee /tmp/run.out
	rc=$(cat /tmp/run.rc)
	echo "guest: $name took $(($(cut -d. -f1 /proc/uptime) - t)) s"
	if [ "$rc" -eq 124 ] || [ "$rc" -eq 143 ]; then
		# timed out: what the kernel says about blocked tasks
		echo w >/proc/sysrq-trigger
		dmesg | tail -n 120
	fi
	line=$(grep -E '^[A-Za-z0-9_-]+: [0-9]+ passed, [0-9]+ failed$' /tmp/run.out | tail -n 1)
	if [ -z "$line" ]; then
		bad "$name: no closing line (exit $rc)"
		return
	fi
	p=$(echo "$line" | sed 's/.*: \([0-9]*\) passed.*/\1/')
	f=$(echo "$line" | sed 's/.*passed, \([0-9]*\) failed/\1/')
	pass=$((pass + p))
	fail=$((fail + f))
	if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then
		bad "$name: exit $rc"
	elif [ "$p" -eq 0 ] && [ "$f" -eq 0 ]; then
		bad "$name: ran nothing ($line)"
	fi
	if [ "$rc" -ne 0 ] || [ "$f" -ne 0 ]; then
		# what scoutfs said (the console shows only emergencies)
		dmesg | grep -i scoutfs | tail -n 30
	fi
}

# suite_prog SUITE PROG: a fresh mount, /t/bin/PROG on it, umount, rmmod
suite_prog() {
	mkfs_mount "$1" || return
	if [ -x "/t/bin/$2" ]; then
		# shellcheck disable=SC2046
		run_counted "$2" timeout $((600 * SLOW)) "/t/bin/$2" $(only_args) $MNT
	else
		bad "$1: /t/bin/$2 is missing"
	fi
	umount_rmmod "$1"
}

suite_kernel() {
	suite_prog kernel kernel-test
	[ "$STUCK" = 1 ] || suite_readpath
}

# readpath_on NAME DEVICE [DM]: readpath-test with DEVICE as the data device
readpath_on() {
	DATA=$2
	if mkfs_mount "readpath-$1"; then
		# shellcheck disable=SC2046
		run_counted "readpath-$1" env READPATH_DEV="$1" READPATH_DM="${3:-}" \
			timeout $((600 * SLOW)) /t/bin/readpath-test $(only_args) $MNT
		umount_rmmod "readpath-$1"
	fi
	DATA=/dev/ram1
}

# brd completes reads inline, dm-delay (5 ms, over brd) later in a
# kworker, virtio-blk in its interrupt handler.  Only asynchronous
# direct reads, which need upstream's iomap read path (notify.iomap=1),
# complete outside the call that made them: virtio-blk's interrupt
# context only matters there, so without iomap it is left out.
suite_readpath() {
	readpath_on brd /dev/ram1
	[ "$STUCK" = 0 ] || return
	# no udev in the guest: dmsetup makes the /dev/mapper node itself
	if dmsetup create --noudevsync notify-delay \
		--table "0 $(blockdev --getsz /dev/ram1) delay /dev/ram1 0 5" &&
		dmsetup mknodes notify-delay; then
		ok "readpath: dm-delay over /dev/ram1"
		readpath_on dm-delay /dev/mapper/notify-delay notify-delay
		dmsetup remove --noudevsync notify-delay || bad "readpath: dmsetup remove notify-delay"
	else
		bad "readpath: dmsetup create of a dm-delay device"
	fi
	[ "$STUCK" = 0 ] || return
	if ! grep -q 'notify\.iomap=1' /proc/cmdline; then
		echo "not applicable: readpath on virtio-blk: no iomap read path in this build, so no asynchronous direct reads"
	elif [ -b /dev/vda ]; then
		readpath_on virtio /dev/vda
	else
		bad "readpath: no virtio-blk disk /dev/vda"
	fi
}

suite_daemon() {
	if [ ! -x /usr/sbin/scoutfs-notifyd ]; then
		bad "daemon: scoutfs-notifyd is not in this build (patch 3 missing?)"
		return
	fi
	mkfs_mount daemon || return
	run_counted daemon-test timeout $((600 * SLOW)) sh /t/daemon-test.sh $MNT
	umount_rmmod daemon
}

suite_demo() {
	mkfs_mount demo || return
	run_counted demo timeout 300 sh /t/demo.sh $MNT
	umount_rmmod demo
}

suite_faults() {
	suite_prog faults faults-test
}

# the nats suite makes its own filesystem and three mounts of it
suite_nats() {
	if [ ! -x /usr/sbin/scoutfs-notify-forward ]; then
		bad "nats: scoutfs-notify-forward is not in this build (patch 4, libnats)"
		return
	fi
	if [ ! -d /sys/module/scoutfs ] && ! insmod /modules/scoutfs.ko; then
		bad "nats: insmod scoutfs"
		return
	fi
	run_counted nats-test timeout 900 sh /t/nats-test.sh
	wait_for 30 module_unused
	if rmmod scoutfs; then
		ok "nats: rmmod scoutfs"
	else
		bad "nats: rmmod scoutfs (refcnt $(cat /sys/module/scoutfs/refcnt 2>/dev/null))"
	fi
}

# upstream's bug wedges the mount: nothing else runs after it
suite_dio_repro() {
	mkfs_mount dio-repro || return
	run_counted dio-nowait-repro timeout $((300 * SLOW)) /t/bin/dio-nowait-repro $MNT
	STUCK=1
}

# the benchmark loads its own modules (unpatched and patched) in turn
suite_bench() {
	run_counted bench sh /t/bench.sh $MNT
}

STUCK=0
# the header lines of reports in the kernel log: warnings, oopses,
# lockdep (its WARNING:/BUG:/INFO: headers), KASAN, UBSAN, DEBUG_LIST
# (a WARNING), hung tasks and stalls
REPORT='WARNING:|BUG:|kernel BUG at|Oops|general protection fault|Kernel panic|Call Trace:|INFO: task .* blocked for more than|INFO: trying to register non-static key|UBSAN:|KASAN:|rcu: INFO:|detected stall'

# kmemleak lists an object only once it is 5 s old: scan until a scan
# starts 6 s after uptime $1, then twice more (as kmemleak's
# documentation recommends)
kmemleak_settle() {
	until [ "$(cut -d. -f1 /proc/uptime)" -ge $(($1 + 6)) ]; do
		echo scan >$KMEMLEAK
	done
	echo scan >$KMEMLEAK
	echo scan >$KMEMLEAK
}

# detectors (debug kernel): the planted bugs of tests/vm/bugs/
# notify_bugs.c, one load each, must each be reported as the checks
# below look for them.  Runs after those checks (its reports would fail
# them, and lockdep turns itself off after its first report: that bug
# goes first, before KASAN's and UBSAN's reports turn it off too).
suite_detectors() {
	if [ ! -w $KMEMLEAK ] || [ ! -f /modules/notify_bugs.ko ]; then
		bad "detectors: needs the debug kernel's kmemleak and notify_bugs.ko"
		return
	fi
	# the planted reports stay off the console (the log has them)
	echo 1 >/proc/sys/kernel/printk
	for b in lockdep atomic uaf ubsan list hung; do
		case $b in
		lockdep) want='WARNING: possible circular locking dependency detected' ;;
		atomic) want='BUG: sleeping function called from invalid context' ;;
		uaf) want='BUG: KASAN: (slab-)?use-after-free in bug_uaf' ;;
		ubsan) want='UBSAN: shift-out-of-bounds' ;;
		list) want='list_del corruption' ;;
		hung) want='INFO: task insmod:[0-9]+ blocked for more than 10 seconds' ;;
		esac
		dmesg -c >/dev/null
		[ $b != hung ] || echo 10 >/proc/sys/kernel/hung_task_timeout_secs
		insmod /modules/notify_bugs.ko bug=$b && rmmod notify_bugs
		[ $b != hung ] || echo $((60 * SLOW)) >/proc/sys/kernel/hung_task_timeout_secs
		dmesg >/tmp/det.txt
		if grep -qE "$want" /tmp/det.txt && grep -qE "$REPORT" /tmp/det.txt; then
			ok "detectors: $b reported ($want)"
		else
			tail -n 40 /tmp/det.txt
			bad "detectors: $b not reported (no '$want' and a report header)"
		fi
	done
	echo clear >$KMEMLEAK
	t=$(cut -d. -f1 /proc/uptime)
	insmod /modules/notify_bugs.ko bug=leak && rmmod notify_bugs
	kmemleak_settle "$t"
	if grep -q 'notify_bugs leak' $KMEMLEAK; then
		ok "detectors: leak listed by kmemleak"
	else
		cat $KMEMLEAK
		bad "detectors: leak not listed by kmemleak"
	fi
	echo clear >$KMEMLEAK
	dmesg -c >/dev/null
	echo 5 >/proc/sys/kernel/printk
}

detectors=false
for s in "$@"; do
	[ "$STUCK" = 0 ] || break
	case "$s" in
	kernel | readpath | daemon | demo | faults | bench | nats) "suite_$s" ;;
	dio-repro) suite_dio_repro ;;
	detectors) detectors=true ;;
	*) bad "unknown suite '$s'" ;;
	esac
done

# kmemleak: what the suites left unreferenced, with the module unloaded
if [ -w $KMEMLEAK ]; then
	kmemleak_settle "$(cut -d. -f1 /proc/uptime)"
	cat $KMEMLEAK >/tmp/kmemleak.txt
	n=$(grep -c '^unreferenced object' /tmp/kmemleak.txt)
	if [ "$n" -eq 0 ]; then
		ok "kmemleak: no leak"
	else
		echo "guest: kmemleak report:"
		cat /tmp/kmemleak.txt
		bad "kmemleak: $n unreferenced objects"
	fi
fi

# lockdep turns itself off after a report (or when it runs out of room)
if [ -r /proc/lockdep_stats ]; then
	if grep -qE 'debug_locks: +1$' /proc/lockdep_stats; then
		ok "lockdep: still on at the end"
	else
		grep -E 'debug_locks|max' /proc/lockdep_stats
		bad "lockdep: turned off during the run"
	fi
fi

# no report in the kernel log; each is printed with what follows it
dmesg >/tmp/dmesg.txt
if grep -E "$REPORT" /tmp/dmesg.txt >/tmp/bad.txt; then
	echo "guest: kernel log reports (each with up to 150 lines after it):"
	awk -v re="$REPORT" '$0 ~ re { n = 150 } n > 0 { print; n-- }' /tmp/dmesg.txt | head -n 3000
	bad "kernel log has reports ($(wc -l </tmp/bad.txt) header lines)"
else
	ok "kernel log: no warning, oops, lockdep, KASAN, UBSAN report or hung task ($(wc -l </tmp/dmesg.txt) lines)"
fi

! $detectors || suite_detectors
echo "guest: $pass passed, $fail failed"
