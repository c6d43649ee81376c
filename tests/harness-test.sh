#!/usr/bin/env bash
# Tier "harness": the harnesses that count the VM and systemd runs and
# the tiers (scripts/vm-test.sh, scripts/systemd-test.sh, tests/run.sh,
# .ci/run and guest_closing in scripts/lib.sh) on stubs, so that each
# can say no: a copy of each script in a made-up repository whose
# build, boot and tiers are stubs told what to do.
#
#   - vm-test.sh: a build that dies with an old scoutfs.ko and console
#     log left from an earlier run, a vm-run.sh that dies before the boot
#     or leaves no log, a log of another run (its nonce), a killed VM, a
#     guest that ran nothing: each a failure; a guest of this run that
#     passed: a pass (the stubs work)
#   - systemd-test.sh: a build that dies over an earlier build's log and
#     scoutfs.ko
#   - vm-run.sh (the real one): deletes the console log before anything
#     can fail
#   - guest_closing: only the closing line after this run's nonce
#   - run.sh: a tier that ran nothing, exited non-zero, or printed no
#     closing line of its own fails; every SKIPPED line is listed; a
#     required tier that skips (in part, or wholly) fails; an unknown
#     tier name is refused
#   - .ci/run: fails without the shared tree, and requires every tier
#     run.sh has
#   - matrix.sh: a release counted by vm-test.sh's own closing line and
#     exit status, not by the last closing line of any program
#
# Ends with `harness: N passed, N failed`.
set -euo pipefail
# what a caller's environment would change in the scripts under test
# (CI's REQUIRED_TIERS, a debug kernel run, a timeout): each case sets
# its own
unset TIERS REQUIRED_TIERS DEBUG_KERNEL VM_TIMEOUT RELEASES MATRIX_BASE_SUITES MATRIX_BASE_TIMEOUT

top=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=tests/lib/counts.sh
. "$top/tests/lib/counts.sh"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# stub FILE BODY: an executable bash script
stub() {
	mkdir -p "$(dirname "$1")"
	printf '#!/usr/bin/env bash\n%s\n' "$2" >"$1"
	chmod +x "$1"
}

# the build: STUB_BUILD=ok (two steps, a scoutfs.ko), die (exits 1
# before any step, as scripts/lib.sh's die does), noko (exits 0, no .ko)
# shellcheck disable=SC2016 # the stubs' own code
BUILD='out=""
while [ $# -gt 0 ]; do case $1 in --out) out=$2; shift 2 ;; *) shift ;; esac; done
case ${STUB_BUILD:-ok} in
ok) mkdir -p "$out/src/utils/notifyd"; : >"$out/scoutfs.ko"; echo "build: apply ok"; echo "build: kmod ok" ;;
die) echo "build-scoutfs.sh: no release v1.30" >&2; exit 1 ;;
noko) echo "build: apply ok" ;;
esac'

# the boot: STUB_VM=die (before the boot), stale (no log, exit 0),
# replay (a log of another run), ok, killed (ok, then exit 124),
# nothing (this run, 0 passed 0 failed)
# shellcheck disable=SC2016 # the stubs' own code
VMRUN='out="" nonce=""
while [ $# -gt 0 ]; do case $1 in --out) out=$2; shift 2 ;; --nonce) nonce=$2; shift 2 ;; *) shift ;; esac; done
log=$out/console.log
case ${STUB_VM:-ok} in
die) echo "vm-run.sh: cannot build tests/vm/kernel-test.c" >&2; exit 1 ;;
stale) exit 0 ;;
replay) printf "guest: run 0123456789abcdef\nguest: 57 passed, 0 failed\n" >"$log" ;;
ok | killed) printf "guest: run %s\nPASS: x\nguest: 5 passed, 0 failed\n" "$nonce" >"$log" ;;
nothing) printf "guest: run %s\nguest: 0 passed, 0 failed\n" "$nonce" >"$log" ;;
esac
[ "${STUB_VM:-ok}" != killed ] || exit 124'

# fake_top DIR: the harness scripts and stubs for what they run
fake_top() {
	mkdir -p "$1/scripts" "$1/tests" "$1/.ci"
	cp "$top/scripts/lib.sh" "$top/scripts/vm-test.sh" "$top/scripts/systemd-test.sh" "$1/scripts/"
	cp "$top/tests/run.sh" "$1/tests/"
	cp "$top/.ci/run" "$1/.ci/"
	echo v1.30 >"$1/base.txt"
	stub "$1/apply.sh" 'echo v1.30'
	stub "$1/scripts/deps.sh" ':'
	stub "$1/scripts/fetch-kernel.sh" 'echo KVER=5.10.0-32-amd64; echo MODDIR=/nonexistent; echo VMLINUZ=/nonexistent'
	stub "$1/scripts/upstream-root.sh" "echo ROOT_CPIO=$1/root.cpio"
	: >"$1/root.cpio"
	stub "$1/scripts/build-scoutfs.sh" "$BUILD"
	stub "$1/scripts/vm-run.sh" "$VMRUN"
}

# an earlier run's results where this run puts its own
earlier_run() {
	mkdir -p "$1/src/utils/notifyd" "$1/src/utils/src"
	: >"$1/scoutfs.ko"
	for f in scoutfs-notifyd@.service scoutfs-notifyd scoutfs-notify-watch; do
		: >"$1/src/utils/notifyd/$f"
	done
	printf 'build: apply ok (4 commits)\nbuild: kmod ok\nbuild: sparse ok\nbuild: utils ok\n' >"$1.build.log"
	printf 'guest: run 1111111111111111\nguest: 57 passed, 0 failed\n' >"$1/console.log"
}

# expect NAME WANT_RC WANT_LINE CMD...: CMD exits WANT_RC (0 or "fail")
# and prints a line matching WANT_LINE
expect() {
	local name=$1 want=$2 line=$3 rc=0
	shift 3
	"$@" >"$work/out" 2>&1 || rc=$?
	if { [ "$want" = 0 ] && [ "$rc" -ne 0 ]; } || { [ "$want" = fail ] && [ "$rc" -eq 0 ]; }; then
		bad "$name" "exit $rc: $(tail -n 3 "$work/out" | tr '\n' '|')"
	elif ! grep -qE "$line" "$work/out"; then
		bad "$name" "no line /$line/: $(tail -n 3 "$work/out" | tr '\n' '|')"
	else
		ok "$name (exit $rc: $(grep -E "$line" "$work/out" | tail -n 1))"
	fi
}

vm_case() {
	local t=$work/vm-$1
	fake_top "$t"
	earlier_run "$t/build/vm/v1.30"
	expect "vm-test.sh: $2" "$3" "$4" env STUB_BUILD="$5" STUB_VM="$6" \
		"$t/scripts/vm-test.sh" --src /nonexistent --base v1.30 --suite kernel
}

vm_case build-dies "a build that dies, over an earlier run's scoutfs.ko and console log" fail \
	'^vm: 0 passed, 1 failed$' die ok
vm_case build-noko "a build that exits 0 but leaves no scoutfs.ko" fail 'left no .*scoutfs\.ko' noko ok
vm_case vm-dies "vm-run.sh dies before the boot, an earlier console log left" fail \
	'^vm: 2 passed, 1 failed$' ok die
vm_case vm-stale "vm-run.sh exits 0 but writes no log: the earlier one is not read" fail \
	'did not finish' ok stale
vm_case vm-replay "a console log of another run (its nonce)" fail 'did not finish' ok replay
vm_case vm-killed "the guest of this run finished, but the VM was killed" fail 'vm-run.sh exited 124' ok killed
vm_case vm-nothing "the guest of this run ran nothing" fail 'the guest ran nothing' ok nothing
vm_case vm-ok "the guest of this run passed: counted" 0 '^vm: 7 passed, 0 failed$' ok ok
if [ -f "$work/vm-build-dies/build/vm/v1.30/scoutfs.ko" ]; then
	bad "vm-test.sh: the earlier scoutfs.ko is deleted before the build" "it is still there"
else
	ok "vm-test.sh: the earlier scoutfs.ko is deleted before the build"
fi

t=$work/sd
fake_top "$t"
earlier_run "$t/build/systemd/v1.30"
expect "systemd-test.sh: a build that dies, over an earlier build's log and scoutfs.ko" fail \
	'^systemd: 0 passed, 1 failed$' env STUB_BUILD=die "$t/scripts/systemd-test.sh" --src /nonexistent

mkdir -p "$work/vmrun"
echo "guest: 57 passed, 0 failed" >"$work/vmrun/console.log"
expect "vm-run.sh refuses a dir without a build" fail 'must name a dir made by' \
	"$top/scripts/vm-run.sh" --out "$work/vmrun"
if [ -e "$work/vmrun/console.log" ]; then
	bad "vm-run.sh deletes the console log before anything can fail" "it is still there"
else
	ok "vm-run.sh deletes the console log before anything can fail"
fi

# matrix.sh on a stub vm-test.sh: STUB_VMTEST=ok (its own closing
# line), killed (only the guest's closing line, exit 1), exit1 (its
# closing line with 0 failed, exit 1)
t=$work/matrix
fake_top "$t"
cp "$top/tests/matrix.sh" "$t/tests/"
stub "$t/tests/abi-test.sh" 'echo "PASS patches/ x"; echo "1 passed, 0 failed"'
# shellcheck disable=SC2016 # the stub's own code
stub "$t/scripts/vm-test.sh" 'echo "vm-run.sh: booting 5.10 (suites: kernel; clock: wall)"
case ${STUB_VMTEST:-ok} in
ok) echo "vm-test.sh: the guest of this run: 5 passed, 0 failed"; echo "vm: 5 passed, 0 failed" ;;
killed) echo "guest: 57 passed, 0 failed"; exit 1 ;;
exit1) echo "vm: 5 passed, 0 failed"; exit 1 ;;
hang | hang1)
	# upstream'"'"'s mount hang: on every boot, or on the first one only
	if [ "$STUB_VMTEST" = hang ] || [ ! -e "$STUB_STATE" ]; then
		: >"$STUB_STATE"
		echo "FAIL: daemon: mount did not return within 180 s (a failed mount hangs before v1.33, upstream cebe4654); skipping the remaining suites"
		echo "[  186.029336]  scoutfs_client_srch_get_compact+0x2e/0x40 [scoutfs]"
		echo "vm-test.sh: the guest of this run: 3 passed, 1 failed"; echo "vm: 3 passed, 1 failed"; exit 1
	fi
	echo "vm-test.sh: the guest of this run: 5 passed, 0 failed"; echo "vm: 5 passed, 0 failed" ;;
esac'
matrix() {
	env SCOUTFS_SRC=/nonexistent RELEASES=v1.30 "$@" "$t/tests/matrix.sh"
}
expect "matrix.sh: a release's run counted by vm-test.sh's own closing line" 0 '^matrix: 6 passed, 0 failed$' matrix
expect "matrix.sh: a vm-test.sh that died after the guest's closing line fails" fail \
	"no closing line 'vm: N passed, N failed' \(exit 1\)" matrix STUB_VMTEST=killed
expect "matrix.sh: a vm-test.sh that exits 1 with 0 failed fails" fail 'exit 1 with no failure counted' \
	matrix STUB_VMTEST=exit1
rm -f "$work/hang-state"
expect "matrix.sh: upstream's mount hang before v1.33 on one boot: booted once more, the second counts" 0 \
	'^matrix: 6 passed, 0 failed$' matrix STUB_VMTEST=hang1 STUB_STATE="$work/hang-state"
expect "matrix.sh: ... and says so" 0 "upstream's mount hang before v1.33 \(cebe4654\) on this boot" \
	env STUB_VMTEST=hang1 STUB_STATE="$work/hang-state2" SCOUTFS_SRC=/nonexistent RELEASES=v1.30 "$t/tests/matrix.sh"
expect "matrix.sh: the hang on both boots fails" fail '^matrix: [0-9]+ passed, [1-9][0-9]* failed$' \
	matrix STUB_VMTEST=hang STUB_STATE="$work/hang-state3"
rm -f "$work/hang-state4"
expect "matrix.sh: the same hang on v1.33, where upstream fixed it, is a failure, no second boot" fail \
	'^matrix: [0-9]+ passed, [1-9][0-9]* failed$' \
	env STUB_VMTEST=hang1 STUB_STATE="$work/hang-state4" SCOUTFS_SRC=/nonexistent RELEASES=v1.33 "$t/tests/matrix.sh"

# guest_closing: this run's closing line only
printf 'guest: run aaa\nguest: 3 passed, 0 failed\nguest: run bbb\nPASS: x\nguest: 4 passed, 1 failed\n' >"$work/gc.log"
# shellcheck disable=SC2016 # expanded by the inner bash
gc='top=$1; . "$top/scripts/lib.sh"; echo "[$(guest_closing "$2" aaa guest)] [$(guest_closing "$2" bbb guest)] [$(guest_closing "$2" ccc guest)] [$(guest_closing "$2" bbb systemd-test)]"'
got=$(bash -c "$gc" gc "$top" "$work/gc.log")
if [ "$got" = "[3 0] [4 1] [] []" ]; then
	ok "guest_closing: the closing line after this run's nonce only ($got)"
else
	bad "guest_closing: the closing line after this run's nonce only" "$got"
fi
# a systemd service's first line on the serial console follows the
# terminal's reset sequence, and its lines end in CR
printf '\033c\033[?7l\033[2Jsystemd-test: run ddd\r\nsystemd-test: 116 passed, 0 failed\r\n' >"$work/gc2.log"
printf 'x systemd-test: run ddd\nsystemd-test: 9 passed, 0 failed\n' >"$work/gc3.log"
# shellcheck disable=SC2016 # expanded by the inner bash
gc2='top=$1; . "$top/scripts/lib.sh"; echo "[$(guest_closing "$2" ddd systemd-test)] [$(guest_closing "$3" ddd systemd-test)]"'
got=$(bash -c "$gc2" gc "$top" "$work/gc2.log" "$work/gc3.log")
if [ "$got" = "[116 0] []" ]; then
	ok "guest_closing: a nonce line after a terminal reset, CR line ends; not one inside other text ($got)"
else
	bad "guest_closing: a nonce line after a terminal reset, CR line ends; not one inside other text" "$got"
fi

# run.sh on stub tiers: STUB_<tier>=ok (default), nothing, skip (the
# whole tier), part (a part skipped), exit1, noclose (only another
# program's closing line)
# shellcheck disable=SC2016 # the stubs' own code
TIER='name=$(basename "$0" .sh); name=${name%-tier}; name=${name%-test}; name=${STUB_NAME:-$name}
v=STUB_${name//-/_}
case ${!v:-ok} in
ok) echo "$name: 3 passed, 0 failed" ;;
nothing) echo "$name: 0 passed, 0 failed" ;;
skip) echo "SKIPPED: $name cannot run here"; echo "$name: 0 passed, 0 failed" ;;
part) echo "SKIPPED: a part of $name"; echo "$name: 2 passed, 0 failed" ;;
exit1) echo "$name: 3 passed, 0 failed"; exit 1 ;;
noclose) echo "sub: 3 passed, 0 failed" ;;
esac'
t=$work/tiers
fake_top "$t"
for s in lint apply-test series-test daemon-tier nats-tier index-tier harness-test; do
	stub "$t/tests/$s.sh" "$TIER"
done
stub "$t/tests/upstream/report_test.py" "STUB_NAME=upstream-report; $TIER"
stub "$t/tests/bench/report_test.py" "STUB_NAME=bench-report; $TIER"
stub "$t/tests/fuzz/run.sh" "STUB_NAME=fuzz; $TIER"
# python3 runs the .py stubs (bash scripts) in the made-up repository
stub "$t/bin/python3" 'exec bash "$@"'
runsh() {
	env PATH="$t/bin:$PATH" TEST_LOG_DIR="$t/logs" SCOUTFS_SRC= "$@" "$t/tests/run.sh"
}
expect "run.sh: every tier passed, two skipped for want of SCOUTFS_SRC" 0 '^30 passed, 0 failed$' runsh
expect "run.sh: the SKIPPED lines are listed" 0 '^  systemd +SKIPPED: SCOUTFS_SRC is not set' runsh
expect "run.sh: a tier that ran nothing fails" fail 'tier daemon ran nothing' runsh STUB_daemon=nothing
expect "run.sh: a tier that exits non-zero fails" fail 'tier lint: exit 1 with 0 failed' runsh STUB_lint=exit1
expect "run.sh: a tier without its own closing line fails" fail "tier nats: no closing line 'nats: N passed" \
	runsh STUB_nats=noclose
expect "run.sh: a part a tier skips is listed" 0 '^  daemon +SKIPPED: a part of daemon$' runsh STUB_daemon=part
expect "run.sh: a required tier that skips a part fails" fail 'tier daemon is required to run whole' \
	runsh STUB_daemon=part REQUIRED_TIERS=daemon
expect "run.sh: a whole tier that skips is listed, not counted" 0 '^  nats +SKIPPED: nats cannot run here$' \
	runsh STUB_nats=skip
expect "run.sh: a required tier that skips fails" fail 'tier nats is required to run whole' \
	runsh STUB_nats=skip REQUIRED_TIERS="nats lint"
expect "run.sh: a required tier that cannot run here fails" fail 'tier matrix is required to run, and it skipped' \
	runsh REQUIRED_TIERS=matrix
expect "run.sh: an unknown tier name is refused" fail "unknown tier 'dameon'" runsh REQUIRED_TIERS=dameon

# .ci/run: no shared tree, no CI; with it, every tier required
expect ".ci/run fails without the shared tree" fail 'ci: FAILED: ../shared/upstream/scoutfs.git is not there' \
	"$t/.ci/run"
mkdir -p "$work/shared/upstream/scoutfs.git"
# shellcheck disable=SC2016 # make's and the shell's, not ours
printf 'test:\n\t@echo "REQUIRED_TIERS=$$REQUIRED_TIERS SCOUTFS_SRC=$(SCOUTFS_SRC)"\n' >"$t/Makefile"
all=$(sed -n 's/^ALL_TIERS="\(.*\)"$/\1/p' "$top/tests/run.sh")
expect ".ci/run requires every tier of run.sh ($all)" 0 "^REQUIRED_TIERS=$all SCOUTFS_SRC=../shared/upstream/scoutfs.git\$" \
	"$t/.ci/run"

echo "harness: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
