#!/usr/bin/env bash
# Sourced by the native tiers (daemon, nats): the compiler and flags of
# their ASan/UBSan builds, with LeakSanitizer known to work.
#
#   san_pick DIR     sets SAN_CC (gcc or clang), SAN_FLAGS (an array),
#                    ASAN_LIB (the ASan runtime to put first in
#                    LD_PRELOAD, empty when the runtime is linked in) and
#                    SAN_NOTE (what was chosen and why); 1 when no
#                    compiler here has a LeakSanitizer that works
#   san_needed FILE  the libraries FILE itself links (its NEEDED), sorted,
#                    space-separated, the sanitizer runtimes of SAN_CC left out
#   san_options DIR  exports ASAN_OPTIONS (leak checks on) and UBSAN_OPTIONS,
#                    every report written to a file DIR/san.PROGRAM.PID (so that a
#                    report from a program whose output no test reads is
#                    seen too: tests/lib/testlib.py checks DIR), and
#                    SAN_REPORT_DIR=DIR
#
# A LeakSanitizer "works" when a program that leaks exits with the leak
# reported and one that doesn't exits 0.  gcc is tried first (it is what
# utils are built with); where its LeakSanitizer doesn't work, clang's
# (Debian's clang-14 and libclang-rt-14-dev, installed when missing).
# SAN_CC=clang (or gcc) in the environment tries that one alone.

# what a leak makes a sanitized program exit with (ASAN_OPTIONS exitcode)
SAN_EXIT_LEAK=99

san_probe() {
	local cc=$1 dir=$2 out rc=0
	shift 2
	cat >"$dir/san-leak.c" <<'EOF'
#include <stdlib.h>
#include <stdio.h>
static void *volatile keep;
int main(void) { keep = malloc(33); keep = NULL; puts("leaked"); return 0; }
EOF
	cat >"$dir/san-clean.c" <<'EOF'
#include <stdlib.h>
int main(void) { void *volatile p = malloc(33); free(p); return 0; }
EOF
	"$cc" "$@" -o "$dir/san-leak" "$dir/san-leak.c" 2>/dev/null || return 1
	"$cc" "$@" -o "$dir/san-clean" "$dir/san-clean.c" 2>/dev/null || return 1
	out=$(ASAN_OPTIONS="detect_leaks=1:exitcode=$SAN_EXIT_LEAK" "$dir/san-leak" 2>&1) || rc=$?
	[ "$rc" -eq "$SAN_EXIT_LEAK" ] && [[ $out == *"LeakSanitizer: detected memory leaks"* ]] || return 1
	ASAN_OPTIONS="detect_leaks=1:exitcode=$SAN_EXIT_LEAK" "$dir/san-clean" >/dev/null 2>&1
}

san_install_clang() {
	command -v clang >/dev/null && [ -f "$(clang -print-file-name=libclang_rt.asan-x86_64.so)" ] && return 0
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq clang libclang-rt-14-dev >/dev/null 2>&1 || {
		apt-get update -qq >/dev/null 2>&1 || true
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq clang libclang-rt-14-dev >/dev/null 2>&1
	}
}

san_pick() {
	local dir=$1 cc tried=()
	# shellcheck disable=SC2054
	local san_base=(-fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined -g -O1)
	for cc in ${SAN_CC:-gcc clang}; do
		case $cc in
		gcc)
			SAN_FLAGS=("${san_base[@]}")
			ASAN_LIB=$(gcc -print-file-name=libasan.so)
			;;
		clang)
			san_install_clang || { tried+=("clang (cannot install clang and libclang-rt-14-dev)"); continue; }
			# the shared runtime, so that it can come first in LD_PRELOAD
			ASAN_LIB=$(clang -print-file-name=libclang_rt.asan-x86_64.so)
			SAN_FLAGS=("${san_base[@]}" -shared-libasan "-Wl,-rpath,${ASAN_LIB%/*}")
			;;
		*)
			tried+=("$cc (not gcc or clang)")
			continue
			;;
		esac
		if san_probe "$cc" "$dir" "${SAN_FLAGS[@]}"; then
			SAN_CC=$cc
			SAN_NOTE="ASan, UBSan and LeakSanitizer with $cc${tried:+ (${tried[*]})}"
			export SAN_CC ASAN_LIB SAN_NOTE
			return 0
		fi
		tried+=("$cc: its LeakSanitizer does not report a leak here")
	done
	export SAN_NOTE="no compiler with a working LeakSanitizer: ${tried[*]}"
	return 1
}

san_options() {
	mkdir -p "$1"
	export SAN_REPORT_DIR=$1
	export ASAN_OPTIONS="detect_leaks=1:abort_on_error=0:exitcode=$SAN_EXIT_LEAK:log_path=$1/san:log_exe_name=1"
	export UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1:exitcode=98:log_path=$1/san:log_exe_name=1"
}

san_needed() {
	local runtimes='libasan|libubsan'
	# clang's shared ASan runtime, and the unwinder that it (not the tools) needs
	[ "$SAN_CC" = clang ] && runtimes+='|libclang_rt\.asan-x86_64|libgcc_s'
	readelf -d "$1" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p' | grep -vE "^($runtimes)\." | sort | tr '\n' ' '
}
