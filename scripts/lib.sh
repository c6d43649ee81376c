#!/usr/bin/env bash
# Sourced by the scripts/ entry points.
#   die MSG                the script's name and MSG on stderr, exit 1
#   usage                  the script's header comment, as --help text
#   src_base_args ARGS...  parse --src DIR, --base TAG and --help into
#                          $src (default $SCOUTFS_SRC) and $base (default
#                          base.txt); anything else is an error
#   debian_mirror          the Debian mirror apt uses here (deb822 or
#                          one-line sources), for fetches that must not
#                          touch the system's apt configuration
#   boot_vm SECS MEM INITRD APPEND LOG [QEMU ARGS...]
#                          boot $VMLINUZ (scripts/fetch-kernel.sh) in QEMU
#                          under TCG, killed after SECS; the console goes
#                          to stdout and LOG; QEMU's or timeout's status;
#                          $VM_CPUS vCPUs (default 2)
#   test_kernel            set $kseries, the test kernel's series, from
#                          $TEST_KERNEL: 5.10 (the default: Debian
#                          bullseye's) or 6.12 (Debian bookworm-backports');
#                          $ksuite, its Debian suite; $ktag, what names
#                          its build dirs ("" for 5.10, "-6.12"); dies on
#                          any other value
#   kernel_lines           the KVER=, KDIR=, VMLINUZ=, MODDIR= lines of the
#                          kernel to build against and boot: Debian's
#                          (scripts/fetch-kernel.sh), or with
#                          DEBUG_KERNEL=1 the debug kernel built from
#                          its source (scripts/build-debug-kernel.sh);
#                          both for $TEST_KERNEL
#   kernel_cache           set $cache: $SCOUTFS_NOTIFY_CACHE, default
#                          /var/cache/scoutfs-notify (build/cache when
#                          that isn't writable), made if missing
#   kernel_apt             set $apt_dir, $apt_uri and the array $apt_opts:
#                          a private apt configuration for $ksuite under
#                          $cache (needs kernel_cache and test_kernel);
#                          the system's apt configuration and state are
#                          untouched
#   kernel_apt_update      apt-get update with $apt_opts (log in $cache)
#   kernel_apt_lists       true when $ksuite's package lists are there
#   module_file MODDIR M   the path of module M (e.g. drivers/md/dm-mod)
#                          under MODDIR/kernel, .ko or .ko.xz; fails when
#                          neither is there
#   copy_module MODDIR M DEST
#                          module M as the plain .ko DEST (decompressed
#                          when the kernel ships .ko.xz)
#   run_nonce              a fresh random word for a guest's kernel command
#                          line (notify.nonce=), which the guest prints
#                          before its results
#   guest_closing LOG NONCE NAME
#                          "P F" from the `NAME: P passed, F failed` line
#                          that follows `NAME: run NONCE` in LOG: the
#                          closing line of this run's guest; nothing when
#                          LOG has none (a stale log, a guest that never
#                          started or never finished)
#   build_counted OUT ARGS...
#                          scripts/build-scoutfs.sh ARGS --out OUT, its
#                          output to stdout and a fresh OUT.build.log (the
#                          old scoutfs.ko deleted first); sets $build_pass
#                          (its ok steps) and $build_fail (its FAILED
#                          steps, or 1 when it exited non-zero without
#                          one or left no scoutfs.ko)

: "${top:?scripts/lib.sh needs top set to the repository}"
me=$(basename "$0")

die() {
	echo "$me: $*" >&2
	exit 1
}

usage() {
	sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//p}' "$0"
}

# shellcheck disable=SC2034 # src and base are the caller's
src_base_args() {
	src=${SCOUTFS_SRC:-}
	base=""
	while [ $# -gt 0 ]; do
		case "$1" in
		--src) src=${2:?--src needs a directory}; shift 2 ;;
		--base) base=${2:?--base needs a release tag}; shift 2 ;;
		-h | --help) usage; exit 0 ;;
		*) die "unknown argument '$1' (see --help)" ;;
		esac
	done
	[ -n "$base" ] || base=$(cat "$top/base.txt")
}

debian_mirror() {
	local f u
	for f in /etc/apt/sources.list.d/*.sources; do
		[ -f "$f" ] || continue
		u=$(awk '/^URIs:/ {for (i = 2; i <= NF; i++) if ($i ~ /\/debian\/?$/) {print $i; exit}}' "$f")
		[ -n "$u" ] && { echo "${u%/}"; return; }
	done
	for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
		[ -f "$f" ] || continue
		u=$(awk '$1 == "deb" {for (i = 2; i <= NF; i++) if ($i ~ /^[a-z]+:\/\/.*\/debian\/?$/) {print $i; exit}}' "$f")
		[ -n "$u" ] && { echo "${u%/}"; return; }
	done
	return 1
}

boot_vm() {
	local rc=0 secs=$1 mem=$2 initrd=$3 append=$4 log=$5
	shift 5
	# -cpu max: upstream's utils are built with -msse4.2
	timeout --foreground -k 10 "$secs" qemu-system-x86_64 -cpu max -smp "${VM_CPUS:-2}" -m "$mem" \
		-nographic -no-reboot -kernel "${VMLINUZ:?boot_vm needs VMLINUZ}" \
		-initrd "$initrd" -append "$append" "$@" \
		</dev/null 2>&1 | sed -u 's/\r$//' | tee "$log" || rc=$?
	if [ "$rc" -eq 124 ] || [ "$rc" -eq 137 ]; then
		echo "$me: the VM did not finish within ${secs}s"
	fi
	return "$rc"
}

kernel_lines() {
	if [ "${DEBUG_KERNEL:-0}" = 1 ]; then
		"$top/scripts/build-debug-kernel.sh" || die "the debug kernel did not build"
	else
		"$top/scripts/fetch-kernel.sh" || die "the kernel could not be fetched"
	fi
}

# shellcheck disable=SC2034 # cache is the caller's
kernel_cache() {
	cache=${SCOUTFS_NOTIFY_CACHE:-/var/cache/scoutfs-notify}
	if ! mkdir -p "$cache" 2>/dev/null || [ ! -w "$cache" ]; then
		cache=$top/build/cache
		mkdir -p "$cache"
	fi
}

# shellcheck disable=SC2034 # kseries, ksuite and ktag are the caller's
test_kernel() {
	kseries=${TEST_KERNEL:-5.10}
	case "$kseries" in
	5.10) ksuite=bullseye; ktag="" ;;
	6.12) ksuite=bookworm-backports; ktag=-6.12 ;;
	*) die "TEST_KERNEL must be 5.10 or 6.12, not '$kseries'" ;;
	esac
}

# shellcheck disable=SC2034 # apt_dir, apt_uri and apt_opts are the caller's
kernel_apt() {
	: "${ksuite:?kernel_apt needs test_kernel}"
	# bullseye's lists have always been in apt/: a cache keeps them
	apt_dir=${cache:?kernel_apt needs kernel_cache}/apt
	[ "$ksuite" = bullseye ] || apt_dir+=-$ksuite
	mkdir -p "$apt_dir/lists/partial" "$apt_dir/cache/archives/partial"
	apt_uri=$(debian_mirror) || die "no Debian mirror found in /etc/apt sources"
	echo "deb $apt_uri $ksuite main" >"$apt_dir/sources.list"
	apt_opts=(-o "Dir::Etc::SourceList=$apt_dir/sources.list" -o "Dir::Etc::SourceParts=/dev/null"
		-o "Dir::State::Lists=$apt_dir/lists" -o "Dir::Cache=$apt_dir/cache"
		-o "Dir::State::Status=/dev/null" -o "Debug::NoLocking=1")
}

kernel_apt_update() {
	apt-get "${apt_opts[@]}" update -q >"$apt_dir/apt-update.log" 2>&1 ||
		die "apt-get update of $ksuite failed, see $apt_dir/apt-update.log"
}

kernel_apt_lists() {
	ls "$apt_dir"/lists/*"_${ksuite}_"*Packages* >/dev/null 2>&1
}

module_file() {
	local f
	for f in "$1/kernel/$2.ko" "$1/kernel/$2.ko.xz"; do
		[ -f "$f" ] && { echo "$f"; return 0; }
	done
	return 1
}

copy_module() {
	local f
	f=$(module_file "$1" "$2") || return 1
	case "$f" in
	*.xz) xz -dc "$f" >"$3" ;;
	*) cp "$f" "$3" ;;
	esac
}

run_nonce() {
	od -An -N8 -tx8 /dev/urandom | tr -d ' \n'
}

guest_closing() {
	[ -f "$1" ] || return 0
	# a serial console's lines may end in CR, and the first line a
	# service writes to a TTY follows the terminal's reset sequence
	awk -v name="$3" -v run="$3: run $2" -v re="^$3: [0-9]+ passed, [0-9]+ failed\$" '
		{ sub(/\r$/, "") }
		(i = index($0, name ": run ")) > 0 && (i == 1 || substr($0, 1, i - 1) ~ /^\033/) {
			seen = (substr($0, i) == run)
			next
		}
		seen && $0 ~ re { last = $2 " " $4 }
		END { if (last != "") print last }' "$1"
}

# shellcheck disable=SC2034 # build_pass and build_fail are the caller's
build_counted() {
	local out=$1 rc=0 nfail
	shift
	mkdir -p "$(dirname "$out")"
	rm -f "$out.build.log" "$out/scoutfs.ko"
	"$top/scripts/build-scoutfs.sh" "$@" --out "$out" 2>&1 | tee "$out.build.log" || rc=$?
	build_pass=$(grep -c '^build: .* ok' "$out.build.log" || true)
	nfail=$(grep -c '^build: .* FAILED' "$out.build.log" || true)
	if [ "$nfail" -eq 0 ] && [ "$rc" -ne 0 ]; then
		echo "FAIL: scripts/build-scoutfs.sh exited $rc"
		nfail=1
	elif [ "$nfail" -eq 0 ] && [ ! -f "$out/scoutfs.ko" ]; then
		echo "FAIL: scripts/build-scoutfs.sh left no $out/scoutfs.ko"
		nfail=1
	fi
	build_fail=$nfail
}
