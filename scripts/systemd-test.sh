#!/usr/bin/env bash
# `make systemd-test` (and the "systemd" tier of `make test`): the
# scoutfs-notifyd@.service unit under a real systemd.  Applies the
# series to a fresh tree of BASE and builds it (scripts/build-scoutfs.sh),
# then boots the Debian bookworm root of scripts/upstream-root.sh in QEMU
# with systemd as PID 1 and, appended to it, the series' scoutfs.ko,
# utils and daemon, the unit installed exactly as the built tree ships it
# (utils/notifyd/scoutfs-notifyd@.service in /usr/lib/systemd/system,
# the daemon in /usr/sbin), a scoutfs mount unit (tests/systemd/units/)
# and the checks, tests/systemd/guest.sh, which run as a service once
# boot is done and then power the VM off.  One boot for all of them.
#
#   scripts/systemd-test.sh [--src DIR] [--base TAG] [--timeout SECS]
#                           [--no-build]
#
# --src defaults to $SCOUTFS_SRC, --base to base.txt, --timeout (the
# VM's, default 1500 s) to $VM_TIMEOUT.  Work files go to
# build/systemd/TAG/ (the console in console.log); --no-build boots what
# an earlier run built there (for work on the checks).  Ends with `systemd:
# N passed, N failed`: the build steps count as tests; a build that
# exits non-zero or leaves no scoutfs.ko, a guest that does not finish
# (no closing line after this run's nonce, notify.nonce= on the kernel
# command line) or does not power off by itself, is a failure.
# Needs root the first time (debootstrap of the root, cached).
set -euo pipefail

top=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

# shellcheck source=scripts/lib.sh
. "$top/scripts/lib.sh"

start=$SECONDS
# a setup error is a failed run: it says so in the closing line too
fail_run() {
	echo "$me: $*" >&2
	echo "systemd: 0 passed, 1 failed"
	exit 1
}

src=${SCOUTFS_SRC:-}
base=""
timeout=${VM_TIMEOUT:-1500}
build=true
while [ $# -gt 0 ]; do
	case "$1" in
	--src) src=${2:?}; shift 2 ;;
	--base) base=${2:?}; shift 2 ;;
	--timeout) timeout=${2:?}; shift 2 ;;
	--no-build) build=false; shift ;;
	-h | --help) usage; exit 0 ;;
	*) fail_run "unknown argument '$1' (see --help)" ;;
	esac
done
$build || [ -n "$src" ] || src=unused
[ -n "$src" ] || fail_run "set SCOUTFS_SRC (or --src) to an upstream scoutfs git dir with release tags"
[ -n "$base" ] || base=$(cat "$top/base.txt")
case "$timeout" in '' | *[!0-9]*) fail_run "--timeout must be a number of seconds" ;; esac
"$top/apply.sh" --list | grep -qx "$base" ||
	fail_run "no series for '$base' (supported: $("$top/apply.sh" --list | tr '\n' ' '))"

# systemctl: to enable units in the guest's root (--root)
"$top/scripts/deps.sh" vm systemd
t=$SECONDS
eval "$("$top/scripts/fetch-kernel.sh")"
echo "$me: kernel $KVER ($((SECONDS - t)) s)"
t=$SECONDS
eval "$("$top/scripts/upstream-root.sh")" || fail_run "no Debian root (scripts/upstream-root.sh)"
[ -f "${ROOT_CPIO:-}" ] || fail_run "no Debian root (scripts/upstream-root.sh)"
echo "$me: Debian root $ROOT_CPIO ($((SECONDS - t)) s)"

out=$top/build/systemd/$base
mkdir -p "$out"
pass=0
fail=0
t=$SECONDS
if $build; then
	build_counted "$out" --src "$src" --base "$base"
	pass=$build_pass
	fail=$build_fail
elif [ ! -f "$out/scoutfs.ko" ]; then
	echo "FAIL: --no-build: no $out/scoutfs.ko of an earlier build"
	fail=1
fi
tree=$out/src
if [ "$fail" -ne 0 ]; then
	echo "systemd: $pass passed, $fail failed"
	exit 1
fi
echo "$me: build took $((SECONDS - t)) s"
unit=$tree/utils/notifyd/scoutfs-notifyd@.service
for f in "$unit" "$tree/utils/notifyd/scoutfs-notifyd" "$tree/utils/notifyd/scoutfs-notify-watch"; do
	[ -f "$f" ] || {
		echo "$me: the $base series has no $(basename "$f") (patch 3)"
		echo "systemd: $pass passed, 1 failed"
		exit 1
	}
done

# What is appended to the root: the module and the modules it needs
# (modprobe finds them through depmod), the binaries, the units, the
# checks.  Paths under usr/ only: the root is merged-/usr, and an
# overlay lib/ or sbin/ would replace its symlinks.
ov=$out/overlay
rm -rf "$ov"
mkdir -p "$ov"/{usr/sbin,usr/lib/systemd/system,etc/systemd/system,t,mnt/scoutfs,home}
mkdir -p "$ov/lib/modules/$KVER/kernel" "$ov/lib/modules/$KVER/extra"
for m in drivers/block/brd.ko lib/libcrc32c.ko crypto/crc32c_generic.ko; do
	mkdir -p "$(dirname "$ov/lib/modules/$KVER/kernel/$m")"
	cp "$MODDIR/kernel/$m" "$ov/lib/modules/$KVER/kernel/$m"
done
cp "$out/scoutfs.ko" "$ov/lib/modules/$KVER/extra/"
cp "$MODDIR"/modules.{order,builtin,builtin.modinfo} "$ov/lib/modules/$KVER/"
depmod -b "$ov" "$KVER"
mkdir -p "$ov/usr/lib"
mv "$ov/lib/modules" "$ov/usr/lib/modules"
rmdir "$ov/lib"
install -m 755 "$tree/utils/src/scoutfs" "$tree/utils/notifyd/scoutfs-notifyd" \
	"$tree/utils/notifyd/scoutfs-notify-watch" "$ov/usr/sbin/"
# the unit exactly as shipped, where the RPM puts it (%{_unitdir})
install -m 644 "$unit" "$ov/usr/lib/systemd/system/"
install -m 644 "$top"/tests/systemd/units/* "$ov/etc/systemd/system/"
install -m 755 "$top/tests/systemd/guest.sh" "$ov/t/guest.sh"
cat >"$ov/etc/scoutfs-systemd-test.conf" <<CONF
BASE=$base
UNIT_SHA256=$(sha256sum <"$unit" | cut -d' ' -f1)
CONF
# A lean boot: no logins, timers, NFS or first-boot questions on the
# console.
for u in getty.target systemd-logind.service systemd-firstboot.service \
	nfs-server.service nfs-client.target rpcbind.service rpcbind.socket \
	e2scrub_reap.service e2scrub_all.timer systemd-pstore.service \
	apt-daily.timer apt-daily-upgrade.timer dpkg-db-backup.timer fstrim.timer; do
	ln -sf /dev/null "$ov/etc/systemd/system/$u"
done
# Enabled as an administrator would (the [Install] sections, systemd's
# own logic): the mount at boot, the daemon's instance for it, and the
# checks.
enable=(mnt-scoutfs.mount scoutfs-notifyd@mnt-scoutfs.service scoutfs-systemd-test.service)
systemctl --root="$ov" --quiet enable "${enable[@]}" ||
	fail_run "systemctl --root enable ${enable[*]} failed"
(cd "$ov" && find . | cpio -o -H newc --quiet) >"$out/overlay.cpio"
cat "$ROOT_CPIO" "$out/overlay.cpio" >"$out/initrd"

nonce=$(run_nonce)
rm -f "$out/console.log"
echo "$me: booting $KVER with systemd as PID 1, scoutfs $(git -C "$tree" describe --tags --always) (timeout ${timeout}s; run $nonce)"
t=$SECONDS
rc=0
boot_vm "$timeout" 4G "$out/initrd" \
	"console=ttyS0 panic=-1 quiet loglevel=1 rdinit=/usr/lib/systemd/systemd systemd.show_status=false notify.nonce=$nonce" \
	"$out/console.log" || rc=$?
echo "$me: the VM ran $((SECONDS - t)) s (exit $rc)"
rm -f "$out/initrd"

# the closing line of this run's guest only (its nonce before it)
read -r gp gf <<<"$(guest_closing "$out/console.log" "$nonce" systemd-test)" || true
if [ -n "${gp:-}" ] && [ $((gp + gf)) -gt 0 ]; then
	pass=$((pass + gp))
	fail=$((fail + gf))
else
	echo "FAIL: the guest of this run (systemd-test: run $nonce) did not finish or ran nothing (exit $rc); console in $out/console.log"
	fail=$((fail + 1))
fi
if [ "$rc" -eq 0 ]; then
	pass=$((pass + 1))
else
	echo "FAIL: the VM powered off by itself (exit $rc)"
	fail=$((fail + 1))
fi
echo "$me: wall time $((SECONDS - start)) s"
echo "systemd: $base: $pass passed, $fail failed"
echo "systemd: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
