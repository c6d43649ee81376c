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
