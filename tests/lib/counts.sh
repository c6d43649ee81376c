#!/usr/bin/env bash
# Sourced by the host-side test scripts: PASS/FAIL lines and counts.
#   ok NAME          a passed check
#   bad NAME WHY     a failed check
# The script ends with "$pass passed, $fail failed".

pass=0
fail=0

ok() {
	echo "PASS $1"
	pass=$((pass + 1))
}

bad() {
	echo "FAIL $1: $2"
	fail=$((fail + 1))
}
