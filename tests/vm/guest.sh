#!/bin/sh
# The guest side of `make vm-test` and `make demo`: runs inside the VM's
# initramfs (busybox sh) as /init's last step, with the suites named on
# the kernel command line.  Every suite starts from a freshly made and
# mounted scoutfs and ends with umount and a clean rmmod; the run ends
# with a scan of the kernel log and the closing line
# `guest: N passed, N failed`.
#
# Suites:
#   kernel  tests/vm/kernel-test.c on the mount (the ring and the hooks)
#   daemon  tests/vm/daemon-test.sh: scoutfs-notifyd and its client on
#           the mount (needs patch 3)
#   demo    tests/vm/demo.sh: what `make demo` shows
#   faults  tests/vm/faults-test.c: concurrency storms, reader lifecycle
#           races and an ioctl fuzz loop (`make vm-test SUITE=faults`)
#   bench   tests/vm/bench.sh: hook cost and latency (`make bench`)
#   nats    tests/vm/nats-test.sh: three mounts of one filesystem, each
#           with its daemon and scoutfs-notify-forward, a three-server
#           NATS cluster holding the stream (needs patch 4)
set -u

MNT=/mnt
# shellcheck source=tests/vm/lib.sh
. /t/lib.sh
# notify.only=NAME on the kernel command line runs one test of a program
ONLY=$(sed -n 's/.*notify\.only=\([^ ]*\).*/\1/p' /proc/cmdline)
only_args() {
	[ -z "$ONLY" ] || echo "-t $ONLY"
}
# a task stuck for 60 s gets a report in the kernel log (and fails the run)
echo 60 >/proc/sys/kernel/hung_task_timeout_secs 2>/dev/null
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
	if ! scoutfs mkfs -A -f -Q 0,127.0.0.1,53000 /dev/ram0 /dev/ram1 >/tmp/mkfs.log 2>&1; then
		cat /tmp/mkfs.log
		bad "$1: mkfs"
		return 1
	fi
	if [ ! -d /sys/module/scoutfs ] && ! insmod /modules/scoutfs.ko; then
		bad "$1: insmod scoutfs"
		return 1
	fi
	if ! timeout 120 mount -t scoutfs -o metadev_path=/dev/ram0,quorum_slot_nr=0 /dev/ram1 $MNT; then
		bad "$1: mount"
		return 1
	fi
	return 0
}

# umount (if still mounted) and unload the module: both must work
umount_rmmod() {
	if grep -q " $MNT scoutfs " /proc/mounts; then
		if timeout 120 umount $MNT; then
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
	("$@"; echo $? >/tmp/run.rc) 2>&1 | tee /tmp/run.out
	rc=$(cat /tmp/run.rc)
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
		run_counted "$2" timeout 600 "/t/bin/$2" $(only_args) $MNT
	else
		bad "$1: /t/bin/$2 is missing"
	fi
	umount_rmmod "$1"
}

suite_kernel() {
	suite_prog kernel kernel-test
}

suite_daemon() {
	if [ ! -x /usr/sbin/scoutfs-notifyd ]; then
		bad "daemon: scoutfs-notifyd is not in this build (patch 3 missing?)"
		return
	fi
	mkfs_mount daemon || return
	run_counted daemon-test timeout 600 sh /t/daemon-test.sh $MNT
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

# the benchmark loads its own modules (unpatched and patched) in turn
suite_bench() {
	run_counted bench sh /t/bench.sh $MNT
}

for s in "$@"; do
	case "$s" in
	kernel | daemon | demo | faults | bench | nats) "suite_$s" ;;
	*) bad "unknown suite '$s'" ;;
	esac
done

# no warning, oops, lockdep report or hung task in the kernel log
dmesg >/tmp/dmesg.txt
if grep -E 'WARNING:|BUG:|Oops|general protection|Call Trace:|circular locking|lock held|INFO: task .* blocked|UBSAN:|KASAN:|kmemleak' /tmp/dmesg.txt >/tmp/bad.txt; then
	cat /tmp/bad.txt
	bad "kernel log has warnings ($(wc -l </tmp/bad.txt) lines)"
else
	ok "kernel log: no warning, oops, lockdep report or hung task ($(wc -l </tmp/dmesg.txt) lines)"
fi
echo "guest: $pass passed, $fail failed"
