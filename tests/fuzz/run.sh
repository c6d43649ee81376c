#!/usr/bin/env bash
# Tier "fuzz": coverage-guided fuzzing (libFuzzer, clang, with ASan,
# UBSan and LeakSanitizer) of everything in utils/notifyd/ that reads
# bytes someone else wrote:
#
#   json        notify-json.c, the strict parser of stream payloads
#   format      notify-format.c's text and JSON encoders (file names)
#   watch-nats  scoutfs-notify-watch-nats's handling of whole messages
#   notifyd     scoutfs-notifyd's handling of what clients send
#   sock        notify-sock.c's parsers of requests and replies, and the
#               clients' reading of the daemon's messages (ns_recv())
#
# (each target's properties are at the top of tests/fuzz/fuzz-<target>.c).
# For each target: build it, check that every input of
# tests/fuzz/refused/<target>/ is refused (bad input the code once took),
# that every input of tests/fuzz/taken/<target>/ is taken as its .text
# file says,
# run every input of tests/fuzz/corpus/<target>/ (the seeds,
# tests/fuzz/seeds.py, and the regression inputs of what was found,
# found-*), then fuzz from that corpus for SECS seconds.  A crash,
# a leak, a timeout or a broken property fails the target, with the input
# that did it saved and printed.
#
#   tests/fuzz/run.sh [--time SECS] [--keep DIR] [TARGET...]
#
# --time: seconds of fuzzing per target (default $FUZZ_SECS or 30: what
# `make test` runs; `make fuzz` runs 600).  --keep: keep the corpus each
# run grew, and what it found, in DIR/<target>/ (default: a temporary
# directory, removed).  Builds from this repository's utils/notifyd/ and
# kmod/src/notify-abi.h (tests/lib/tools-src.sh).  Installs clang,
# libclang-rt-14-dev and libnats-dev when missing.  Ends with
# `fuzz: N passed, N failed`.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
top=$(cd "$here/../.." && pwd)
# shellcheck source=tests/lib/counts.sh
. "$top/tests/lib/counts.sh"
# shellcheck source=tests/lib/tools-src.sh
. "$top/tests/lib/tools-src.sh"

secs=${FUZZ_SECS:-30}
keep=
targets=()
while [ $# -gt 0 ]; do
	case $1 in
	--time) secs=$2; shift 2 ;;
	--keep) keep=$2; shift 2 ;;
	-*) echo "usage: tests/fuzz/run.sh [--time SECS] [--keep DIR] [TARGET...]" >&2; exit 2 ;;
	*) targets+=("$1"); shift ;;
	esac
done
if [ ${#targets[@]} -eq 0 ]; then
	for f in "$here"/fuzz-*.c; do
		f=${f##*/fuzz-}
		targets+=("${f%.c}")
	done
fi
[[ $secs =~ ^[0-9]+$ ]] || { echo "--time needs seconds, not '$secs'" >&2; exit 2; }

closing() {
	echo "fuzz: $pass passed, $fail failed"
	[ "$fail" -eq 0 ]
}

need=()
command -v clang >/dev/null || need+=(clang)
command -v clang >/dev/null && [ -f "$(clang -print-file-name=libclang_rt.fuzzer-x86_64.a)" ] ||
	need+=(libclang-rt-14-dev)
pkg-config --exists libnats 2>/dev/null || need+=(libnats-dev)
command -v pkg-config >/dev/null || need+=(pkg-config)
if [ ${#need[@]} -gt 0 ]; then
	echo "fuzz tier: installing ${need[*]}"
	if ! DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null 2>&1; then
		apt-get update -qq >/dev/null 2>&1 || true
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null 2>&1 ||
			bad "install ${need[*]}" "apt-get failed"
	fi
fi
if [ "$fail" -ne 0 ]; then
	closing || exit 1
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
[ -n "$keep" ] || keep=$work/keep
mkdir -p "$keep"
keep=$(cd "$keep" && pwd)	# the fuzzers run in its subdirectories
if ! msg=$(SCOUTFS_SRC='' tools_src "$work/src" 2>&1); then
	bad "the tools' sources" "$msg"
	closing || exit 1
fi
src=$work/src/utils/notifyd
# shellcheck disable=SC2054
cflags=(-fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined
	-fno-omit-frame-pointer -g -O1 -std=c11 -Wall -Wextra -Werror
	-I"$here" -I"$src" -I"$work/src/kmod/src")
read -ra natsflags <<<"$(pkg-config --cflags --libs libnats)"

# what a target is built of beside tests/fuzz/fuzz-<target>.c, into the array parts
target_parts() {
	case $1 in
	json | format) parts=("$src/notify-json.c" "$src/notify-format.c") ;;
	watch-nats) parts=("$src/notify-json.c" "$src/notify-format.c" "$src/notify-nats.c"
		"${natsflags[@]}" -lpthread) ;;
	notifyd) parts=("$src/notify-sock.c") ;;
	*) parts=() ;;
	esac
}

# of a run of inputs: the input that failed, and why
failing() {
	grep -E 'Running:|property broken|ERROR|SUMMARY|^    #[0-9] ' <<<"$1" |
		grep -B 1 -A 12 -E 'property broken|ERROR' | head -n 30
}

# the inputs of tests/fuzz/refused/<target>/, each of which must be refused
refusals() {
	local t=$1 bin=$2 dir=$here/refused/$1 n out
	[ -d "$dir" ] || return 0
	n=$(find "$dir" -type f | wc -l)
	if out=$(cd "$keep/$t" && FUZZ_MUST_REFUSE=1 "$bin" -timeout=10 "$dir"/* 2>&1); then
		ok "$t: the $n inputs of tests/fuzz/refused/$t are refused"
	else
		bad "$t: tests/fuzz/refused/$t" "$(failing "$out")"
	fi
}

# each input X of tests/fuzz/taken/<target>/ (not *.text) taken as X.text
# says: its origin and record as text, or why it was refused
takings() {
	local t=$1 bin=$2 dir=$here/taken/$1 x got out n=0 failed=""
	[ -d "$dir" ] || return 0
	got=$keep/$t/taken.text
	for x in "$dir"/*; do
		case $x in *.text) continue ;; esac
		n=$((n + 1))
		rm -f "$got"
		if ! out=$(cd "$keep/$t" && FUZZ_TAKEN_TO=$got "$bin" -timeout=10 "$x" 2>&1); then
			failed+="$(basename "$x"): $(failing "$out")"$'\n'
		elif ! out=$(diff "$x.text" "$got" 2>&1); then
			failed+="$(basename "$x"): not what $(basename "$x").text says:"$'\n'"$out"$'\n'
		fi
	done
	if [ -z "$failed" ]; then
		ok "$t: the $n inputs of tests/fuzz/taken/$t are taken as their .text says"
	else
		bad "$t: tests/fuzz/taken/$t" "$failed"
	fi
}

# every input of the corpus, once each: the regression cases
replay() {
	local t=$1 bin=$2 corpus=$here/corpus/$1 n out
	n=$(find "$corpus" -type f | wc -l)
	if [ "$n" -eq 0 ]; then
		bad "$t: the corpus" "tests/fuzz/corpus/$t is empty"
		return 1
	fi
	if out=$(cd "$keep/$t" && "$bin" -timeout=10 -rss_limit_mb=2048 "$corpus"/* 2>&1); then
		ok "$t: the $n inputs of tests/fuzz/corpus/$t run clean"
	else
		bad "$t: the corpus" "$(failing "$out")"
		return 1
	fi
}

# fuzz for secs from a copy of the corpus; what it found is kept
fuzz() {
	local t=$1 bin=$2 log=$keep/$1/fuzz.log rc=0 execs found dict=() stamp
	stamp=$(date +%Y%m%d-%H%M%S)-$$
	mkdir -p "$keep/$t/corpus"
	cp -n "$here/corpus/$t"/* "$keep/$t/corpus/"
	case $t in
	json | watch-nats) dict=(-dict="$here/json.dict") ;;
	esac
	(cd "$keep/$t" && "$bin" -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 \
		-print_final_stats=1 -artifact_prefix="$keep/$t/$stamp-" "${dict[@]}" corpus) >"$log" 2>&1 || rc=$?
	execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
	found=$(find "$keep/$t" -maxdepth 1 -type f -name "$stamp-*" | head -n 1)
	if [ "$rc" -eq 0 ] && [ -z "$found" ] && [ -n "$execs" ]; then
		ok "$t: ${secs} s of fuzzing, ${execs} executions, nothing found ($(grep -m 1 -o 'Seed: [0-9]*' "$log"))"
	else
		bad "$t: fuzzing (exit $rc, ${execs:-?} executions)" "$(grep -E 'property broken|ERROR|SUMMARY|Test unit written|Seed:' "$log" | head -n 20)
    input: ${found:-none} $( [ -n "$found" ] && base64 -w0 "$found" | head -c 3000)"
	fi
}

for t in "${targets[@]}"; do
	[ -f "$here/fuzz-$t.c" ] || { bad "$t" "no tests/fuzz/fuzz-$t.c"; continue; }
	mkdir -p "$keep/$t"
	bin=$work/fuzz-$t
	target_parts "$t"
	if ! out=$(clang "${cflags[@]}" -o "$bin" "$here/fuzz-$t.c" "${parts[@]}" 2>&1); then
		bad "$t: build" "$out"
		continue
	fi
	ok "$t: built with clang -fsanitize=fuzzer,address,undefined"
	refusals "$t" "$bin"
	takings "$t" "$bin"
	replay "$t" "$bin" || continue
	fuzz "$t" "$bin"
done
closing
