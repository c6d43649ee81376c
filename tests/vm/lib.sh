#!/bin/sh
# Shared by the guest scripts (busybox sh): PASS/FAIL counting, a
# bounded wait and the conditions they wait for.  Sourced, never run.

pass=0
fail=0

# notify.slow=N on the kernel command line (the debug kernel, which runs
# several times slower): every bound below and in guest.sh is N times
# longer
SLOW=$(sed -n 's/.*notify\.slow=\([0-9]*\).*/\1/p' /proc/cmdline 2>/dev/null)
SLOW=${SLOW:-1}

ok() {
	echo "PASS: $1"
	pass=$((pass + 1))
}

bad() {
	echo "FAIL: $1"
	fail=$((fail + 1))
}

# sock_clients SOCK: clients connected to the listening socket SOCK
# (accepted or waiting to be: server-side sockets carry the bound path
# in /proc/net/unix, client sockets don't; one line is the listener)
sock_clients() {
	echo $(($(grep -c " $1\$" /proc/net/unix) - 1))
}

# module_unused: no mount (nor anything else) holds the scoutfs module
module_unused() {
	[ "$(cat /sys/module/scoutfs/refcnt 2>/dev/null || echo 0)" = 0 ]
}

# gone PID: the (background) process PID has ended
gone() {
	! kill -0 "$1" 2>/dev/null
}

# wait_for SECS CMD...: run CMD every 50 ms until it succeeds; fails
# when SECS (times SLOW) run out.  A subshell: its count is its own, so
# neither a CMD that waits itself nor the caller's own variables can
# change it (or be changed by it).
wait_for() (
	n=$(($1 * 20 * SLOW))
	shift
	while ! "$@" 2>/dev/null; do
		n=$((n - 1))
		[ $n -gt 0 ] || return 1
		usleep 50000
	done
	return 0
)
