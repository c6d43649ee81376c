#!/bin/sh
# Shared by the guest scripts (busybox sh): PASS/FAIL counting and a
# bounded wait.  Sourced, never run.

pass=0
fail=0

ok() {
	echo "PASS: $1"
	pass=$((pass + 1))
}

bad() {
	echo "FAIL: $1"
	fail=$((fail + 1))
}

# wait_for SECS CMD...: run CMD every 50 ms until it succeeds; fails
# when SECS run out
wait_for() {
	n=$(($1 * 20))
	shift
	while ! "$@" 2>/dev/null; do
		n=$((n - 1))
		[ $n -gt 0 ] || return 1
		usleep 50000
	done
	return 0
}
