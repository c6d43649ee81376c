#!/usr/bin/env bash
# Sourced by tests/daemon/run.sh and tests/nats/run.sh: the sanitizer
# build flags, and whether LeakSanitizer works here.
#   san                    the array of flags (ASan, UBSan, no recovery)
#   leak_checks DIR        sets $leaks to 1 when LeakSanitizer reports a
#                          planted leak (a program built in DIR), else to
#                          0 with a SKIPPED line (it needs ptrace-like
#                          access to stop the world)
# shellcheck disable=SC2034 # san and leaks are the caller's
san=("-fsanitize=address,undefined" -fno-omit-frame-pointer -fno-sanitize-recover=undefined -g -O1)

leak_checks() {
	# the block stays unreachable, and the volatile keeps the compiler
	# from dropping the malloc()
	printf '#include <stdlib.h>\nvoid *volatile p;\nint main(void) { p = malloc(7); p = 0; return 0; }\n' >"$1/leak.c"
	gcc "${san[@]}" -o "$1/leak" "$1/leak.c"
	# it exits non-zero when it reports (and when it can't run)
	said=$(ASAN_OPTIONS=detect_leaks=1 "$1/leak" 2>&1 || true)
	if [[ $said == *"LeakSanitizer: detected memory leaks"* ]]; then
		leaks=1
	else
		echo "SKIPPED: leak checks: LeakSanitizer does not report a planted leak here"
		leaks=0
	fi
}
