#!/usr/bin/env bash
# Boot a build of the series in QEMU and run guest suites in it.
#
#   scripts/vm-run.sh --out DIR [--suite "kernel daemon"] [--timeout SECS]
#                     [--base-ko PATH]
#
# DIR is what scripts/build-scoutfs.sh made (src/ and scoutfs.ko).  This
# builds every tests/vm/*.c statically against the patched ioctl.h,
# makes an initramfs (busybox, the utils and daemon binaries with their
# libraries, the modules scoutfs needs, tests/vm/), and boots Debian's
# kernel with it under TCG with a hard timeout.  The guest's /init runs
# tests/vm/guest.sh with the suites; its console goes to stdout and to
# DIR/console.log.  VM_ONLY=NAME runs only that test of the test
# programs (their -t NAME).  --base-ko adds an unpatched scoutfs.ko as
# /modules/scoutfs-base.ko (for the benchmark).
set -euo pipefail

top=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

# shellcheck source=scripts/lib.sh
. "$top/scripts/lib.sh"

out=""
suite="kernel"
timeout=${VM_TIMEOUT:-900}
base_ko=""
while [ $# -gt 0 ]; do
	case "$1" in
	--out) out=${2:?}; shift 2 ;;
	--suite) suite=${2:?}; shift 2 ;;
	--timeout) timeout=${2:?}; shift 2 ;;
	--base-ko) base_ko=${2:?}; shift 2 ;;
	-h | --help) usage; exit 0 ;;
	*) die "unknown argument '$1'" ;;
	esac
done
if [ -z "$out" ] || [ ! -f "$out/scoutfs.ko" ] || [ ! -d "$out/src" ]; then
	die "--out must name a dir made by scripts/build-scoutfs.sh"
fi
out=$(cd "$out" && pwd)
tree=$out/src
case "$timeout" in '' | *[!0-9]*) die "--timeout must be a number of seconds" ;; esac

"$top/scripts/deps.sh" vm
eval "$("$top/scripts/fetch-kernel.sh")"

rd=$out/initrd
rm -rf "$rd"
mkdir -p "$rd"/{bin,sbin,usr/bin,usr/sbin,etc,proc,sys,dev,mnt,tmp,run,modules,t/bin}

# busybox with every applet as a link
cp /bin/busybox "$rd/bin/busybox"
for a in $("$rd/bin/busybox" --list); do
	[ -e "$rd/bin/$a" ] || ln -s busybox "$rd/bin/$a"
done

# a dynamically linked binary and the libraries ldd names
add_bin() {
	local bin=$1 dest=$2 lib
	cp "$bin" "$rd$dest"
	for lib in $(ldd "$bin" 2>/dev/null | grep -oE '/[^ ]+\.so[^ ]*'); do
		mkdir -p "$rd$(dirname "$lib")"
		[ -e "$rd$lib" ] || cp -L "$lib" "$rd$lib"
	done
}
add_bin "$tree/utils/src/scoutfs" /usr/sbin/scoutfs
# coreutils' stat: docs/interface.md spells fsids as `stat -f -c %i` prints them
rm -f "$rd/usr/bin/stat" "$rd/bin/stat"
add_bin "$(command -v stat)" /usr/bin/stat
add_bin "$(command -v socat)" /usr/bin/socat
for b in scoutfs-notifyd scoutfs-notify-watch scoutfs-notify-forward scoutfs-notify-watch-nats; do
	if [ -x "$tree/utils/notifyd/$b" ]; then
		add_bin "$tree/utils/notifyd/$b" "/usr/sbin/$b"
	fi
done
# the nats suite: a NATS cluster in the guest, the tests' libnats client
# and device-mapper for several mounts of one filesystem (built with
# patch 4 where libnats is installed; the suite says so when missing)
if [ -x "$tree/utils/notifyd/scoutfs-notify-forward" ] && command -v nats-server >/dev/null &&
	command -v dmsetup >/dev/null; then
	add_bin "$(command -v nats-server)" /usr/sbin/nats-server
	add_bin "$(command -v dmsetup)" /usr/sbin/dmsetup
	read -ra natsflags <<<"$(pkg-config --cflags --libs libnats)"
	gcc -std=c11 -O2 -Wall -Wextra -Werror -o "$out/tnats" "$top/tests/nats/tnats.c" \
		"${natsflags[@]}" || die "cannot build tests/nats/tnats.c"
	add_bin "$out/tnats" /t/bin/tnats
fi

cp "$out/scoutfs.ko" "$rd/modules/"
if [ -n "$base_ko" ]; then
	cp "$base_ko" "$rd/modules/scoutfs-base.ko"
fi
for m in crypto/crc32c_generic.ko lib/libcrc32c.ko drivers/block/brd.ko drivers/md/dm-mod.ko; do
	cp "$MODDIR/kernel/$m" "$rd/modules/"
done

# the guest side of the tests, and their programs
cp -R "$top/tests/vm/." "$rd/t/"
for c in "$top"/tests/vm/*.c; do
	[ -f "$c" ] || continue
	gcc -static -O2 -std=c11 -D_GNU_SOURCE -Wall -Wextra -Werror \
		-I"$tree/kmod/src" -o "$rd/t/bin/$(basename "$c" .c)" "$c" ||
		die "cannot build $c"
done

cat >"$rd/etc/passwd" <<'PW'
root:x:0:0:root:/root:/bin/sh
user:x:1000:1000:user:/tmp:/bin/sh
nobody:x:65534:65534:nobody:/nonexistent:/bin/false
PW
cat >"$rd/etc/group" <<'GR'
root:x:0:
user:x:1000:
nogroup:x:65534:
GR

cat >"$rd/init" <<'INIT'
#!/bin/sh
export PATH=/t/bin:/usr/sbin:/usr/bin:/sbin:/bin
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
mkdir -p /dev/pts /dev/shm
mount -t devpts devpts /dev/pts
mount -t tmpfs tmpfs /run
mount -t tmpfs tmpfs /tmp
mount -t tmpfs tmpfs /dev/shm
ifconfig lo 127.0.0.1 up
insmod /modules/crc32c_generic.ko
insmod /modules/libcrc32c.ko
insmod /modules/brd.ko rd_nr=2 rd_size=17179869
suite=$(sed -n 's/.*notify\.suite=\([^ ]*\).*/\1/p' /proc/cmdline | tr , ' ')
echo "vm: guest up, kernel $(uname -r), suites: $suite"
cd /t && sh /t/guest.sh $suite
echo "vm: guest done"
poweroff -f
INIT
chmod +x "$rd/init"

(cd "$rd" && find . | cpio -o -H newc --quiet | gzip -1) >"$out/initrd.gz"

suites=$(echo "$suite" | tr ' ' ,)
echo "vm-run.sh: booting $KVER with scoutfs $(git -C "$tree" describe --tags --always) (suites: $suite; timeout ${timeout}s)"
rc=0
boot_vm "$timeout" 6G "$out/initrd.gz" \
	"console=ttyS0 panic=-1 quiet loglevel=1 notify.suite=$suites notify.watchdog=$((timeout > 120 ? timeout - 60 : timeout / 2))${VM_ONLY:+ notify.only=$VM_ONLY}" \
	"$out/console.log" || rc=$?
exit "$rc"
