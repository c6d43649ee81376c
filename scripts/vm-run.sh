#!/usr/bin/env bash
# Boot a build of the series in QEMU and run guest suites in it.
#
#   scripts/vm-run.sh --out DIR [--suite "kernel daemon"] [--timeout SECS]
#                     [--base-ko PATH] [--nonce WORD]
#
# DIR is what scripts/build-scoutfs.sh made (src/ and scoutfs.ko).  This
# builds every tests/vm/*.c statically against the patched ioctl.h,
# makes an initramfs (busybox, the utils and daemon binaries with their
# libraries, the modules scoutfs needs, tests/vm/), and boots Debian's
# kernel with it under TCG with a hard timeout.  The guest's /init runs
# tests/vm/guest.sh with the suites; its console goes to stdout and to
# DIR/console.log, which is deleted before anything else is done (a run
# that fails before the boot leaves none).  --nonce WORD (default: a
# fresh one, printed) goes on the kernel command line as notify.nonce=,
# and the guest prints `guest: run WORD` before its results: a caller
# takes the closing line only after it (guest_closing in
# scripts/lib.sh).  VM_ONLY=NAME runs only that test of the test
# programs (their -t NAME).  --base-ko adds an unpatched scoutfs.ko as
# /modules/scoutfs-base.ko (for the benchmark); --bin adds a further
# program to /usr/sbin.  --icount SHIFT runs QEMU with `-icount
# shift=SHIFT,sleep=off` and one vCPU: the guest's clocks then follow
# the instructions executed (2^SHIFT ns each) instead of the host's
# clock (docs/benchmarks.md).  One vCPU because QEMU 7.2 (bookworm's)
# hangs bringing up the second vCPU of a 5.10 guest under -icount.
#
# With DEBUG_KERNEL=1 it boots the debug kernel
# (scripts/build-debug-kernel.sh, docs/debug-kernel.md): brd and crc32c
# are built in there (brd's sizes go on the command line), the VM gets
# 8 GiB and 4-level paging (no5lvl), the console shows warnings as they
# happen (loglevel=5), the default timeout is 1800 s, and notify.slow=2
# on the command line makes the guest's own bounds twice as long.
#
# $TEST_KERNEL (5.10 or 6.12) picks the kernel, as for the build.  The
# guest gets device-mapper with dm-delay and a virtio-blk disk (a sparse
# 17 GiB file in DIR) as further data devices for the readpath suite,
# and notify.iomap=1 when upstream's compat layer built the iomap read
# path (KC_USE_IOMAP_FOR_IO), so that it expects direct I/O to work.
set -euo pipefail

top=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

# shellcheck source=scripts/lib.sh
. "$top/scripts/lib.sh"

out=""
suite="kernel"
debug=false
[ "${DEBUG_KERNEL:-0}" = 1 ] && debug=true
if $debug; then
	timeout=${VM_TIMEOUT:-1800}
else
	timeout=${VM_TIMEOUT:-900}
fi
base_ko=""
extra_bins=()
icount=""
nonce=""
while [ $# -gt 0 ]; do
	case "$1" in
	--out) out=${2:?}; shift 2 ;;
	--suite) suite=${2:?}; shift 2 ;;
	--timeout) timeout=${2:?}; shift 2 ;;
	--base-ko) base_ko=${2:?}; shift 2 ;;
	--bin) extra_bins+=("${2:?}"); shift 2 ;;
	--icount) icount=${2:?}; shift 2 ;;
	--nonce) nonce=${2:?}; shift 2 ;;
	-h | --help) usage; exit 0 ;;
	*) die "unknown argument '$1'" ;;
	esac
done
[ -z "$out" ] || rm -f "$out/console.log"
if [ -z "$out" ] || [ ! -f "$out/scoutfs.ko" ] || [ ! -d "$out/src" ]; then
	die "--out must name a dir made by scripts/build-scoutfs.sh"
fi
out=$(cd "$out" && pwd)
tree=$out/src
[ -n "$nonce" ] || nonce=$(run_nonce)
case "$nonce" in *[!0-9a-zA-Z]*) die "--nonce must be letters and digits" ;; esac
case "$timeout" in '' | *[!0-9]*) die "--timeout must be a number of seconds" ;; esac
case "$icount" in *[!0-9]*) die "--icount must be a shift (a number, e.g. 0)" ;; esac

"$top/scripts/deps.sh" vm
kl=$(kernel_lines)
eval "$kl"

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
for b in scoutfs-notifyd scoutfs-notify-watch scoutfs-notify-forward scoutfs-notify-watch-nats \
	scoutfs-notify-heat; do
	if [ -x "$tree/utils/notifyd/$b" ]; then
		add_bin "$tree/utils/notifyd/$b" "/usr/sbin/$b"
	fi
done
# device-mapper: the nats suite's several mounts of one filesystem,
# the readpath suite's dm-delay
add_bin "$(command -v dmsetup)" /usr/sbin/dmsetup
# the nats suite: a NATS cluster in the guest and the tests' libnats
# client (built with patch 4 where libnats is installed; the suite says
# so when missing)
if [ -x "$tree/utils/notifyd/scoutfs-notify-forward" ] && command -v nats-server >/dev/null; then
	add_bin "$(command -v nats-server)" /usr/sbin/nats-server
	read -ra natsflags <<<"$(pkg-config --cflags --libs libnats)"
	gcc -std=c11 -O2 -Wall -Wextra -Werror -o "$out/tnats" "$top/tests/nats/tnats.c" \
		"${natsflags[@]}" || die "cannot build tests/nats/tnats.c"
	add_bin "$out/tnats" /t/bin/tnats
fi

for b in "${extra_bins[@]}"; do
	[ -x "$b" ] || die "--bin $b is not an executable"
	add_bin "$b" "/usr/sbin/$(basename "$b")"
done

cp "$out/scoutfs.ko" "$rd/modules/"
if [ -n "$base_ko" ]; then
	cp "$base_ko" "$rd/modules/scoutfs-base.ko"
fi
# the modules the guest needs (scoutfs, brd, device-mapper and
# dm-delay, virtio-blk), unless the kernel has them built in; /init
# loads those that are there in the order of /modules/order (6.12's
# .ko.xz decompressed here, busybox's insmod takes plain .ko)
: >"$rd/modules/order"
for m in crypto/crc32c_generic lib/libcrc32c drivers/block/brd drivers/md/dm-mod \
	drivers/md/dm-delay drivers/virtio/virtio drivers/virtio/virtio_ring \
	drivers/virtio/virtio_pci drivers/block/virtio_blk; do
	if copy_module "$MODDIR" "$m" "$rd/modules/${m##*/}.ko"; then
		echo "${m##*/}" >>"$rd/modules/order"
	elif ! grep -qxF "kernel/$m.ko" "$MODDIR/modules.builtin"; then
		die "$KVER has neither $m nor it built in"
	fi
done
brd_args="rd_nr=2 rd_size=17179869"

# the detectors suite's planted bugs: a module built against the kernel
case " $suite " in
*" detectors "*)
	rm -rf "$out/bugs"
	cp -R "$top/tests/vm/bugs" "$out/bugs"
	make -C "$KDIR" M="$out/bugs" CC=gcc modules >"$out/bugs.log" 2>&1 ||
		die "cannot build tests/vm/bugs (see $out/bugs.log)"
	cp "$out/bugs/notify_bugs.ko" "$rd/modules/"
	;;
esac

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
mount -t debugfs debugfs /sys/kernel/debug
ifconfig lo 127.0.0.1 up
for m in $(cat /modules/order); do
	if [ $m = brd ]; then
		insmod /modules/brd.ko @BRD_ARGS@
	else
		insmod /modules/$m.ko
	fi
done
suite=$(sed -n 's/.*notify\.suite=\([^ ]*\).*/\1/p' /proc/cmdline | tr , ' ')
echo "vm: guest up, kernel $(uname -r), suites: $suite"
cd /t && sh /t/guest.sh $suite
echo "vm: guest done"
# nothing to sync (initramfs and RAM disks), and a sync would wait for
# a mount that is stuck (upstream's hang before v1.33, guest.sh)
poweroff -n -f
INIT
sed -i "s/@BRD_ARGS@/$brd_args/" "$rd/init"
chmod +x "$rd/init"

(cd "$rd" && find . | cpio -o -H newc --quiet | gzip -1) >"$out/initrd.gz"

suites=$(echo "$suite" | tr ' ' ,)
mem=6G
append="console=ttyS0 panic=-1 quiet loglevel=1"
wd=$((timeout > 120 ? timeout - 60 : timeout / 2))
if $debug; then
	mem=8G
	# no5lvl: with 5-level paging (QEMU's max CPU has LA57) an
	# interrupt during identify_cpu(), which briefly clears the LA57
	# feature bit that KASAN's shadow bounds depend on, is a false
	# "wild-memory-access" report at boot (docs/debug-kernel.md)
	append="console=ttyS0 panic=-1 quiet loglevel=5 notify.slow=2 no5lvl"
	# the blocked tasks' dump is slow on a debug kernel
	wd=$((timeout > 600 ? timeout - 300 : timeout / 2))
fi
# upstream's compat layer built the iomap read path: direct I/O works
if grep -q -- '-DKC_USE_IOMAP_FOR_IO\b' "$tree/kmod/src/.file.o.cmd" 2>/dev/null; then
	append+=" notify.iomap=1"
fi
if [ ! -f "$rd/modules/brd.ko" ]; then
	for a in $brd_args; do
		append+=" brd.$a"
	done
fi
clock=wall
qemu_args=()
if [ -n "$icount" ]; then
	clock=icount$icount
	qemu_args=(-icount "shift=$icount,sleep=off")
	export VM_CPUS=1
fi
# the readpath suite's virtio-blk data device: sparse, made afresh
rm -f "$out/vdata.img"
truncate -s 17G "$out/vdata.img"
qemu_args+=(-drive "file=$out/vdata.img,if=virtio,format=raw,cache=unsafe")
echo "vm-run.sh: booting $KVER with scoutfs $(git -C "$tree" describe --tags --always) (suites: $suite; clock: $clock; timeout ${timeout}s; run $nonce)"
rc=0
boot_vm "$timeout" "$mem" "$out/initrd.gz" \
	"$append notify.nonce=$nonce notify.suite=$suites notify.clock=$clock notify.watchdog=$wd${VM_ONLY:+ notify.only=$VM_ONLY}" \
	"$out/console.log" "${qemu_args[@]}" || rc=$?
exit "$rc"
