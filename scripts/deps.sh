#!/usr/bin/env bash
# Install the Debian packages a tier needs, only those that are missing.
#
#   scripts/deps.sh vm      QEMU, busybox, cpio and what upstream's kmod
#                           and utils build with (sparse, uuid, ssl, blkid),
#                           libnats and nats-server (patch 4 and the nats
#                           suite), dmsetup (several mounts of one fs,
#                           dm-delay), dwarves (pahole: 6.12's BTF step
#                           deletes a module built without it), xz-utils
#                           (6.12's modules are .ko.xz)
#   scripts/deps.sh lint    shellcheck
#   scripts/deps.sh bench   valgrind (callgrind, for the benchmarks' stages)
#   scripts/deps.sh index   SQLite, libpq, libnats, nats-server and a
#                           PostgreSQL server and client (the access
#                           index's tier and benchmark)
#   scripts/deps.sh systemd systemctl (systemd tier: enables units in
#                           the guest's root with --root)
#   scripts/deps.sh kernel  what building a kernel from source needs
#                           (scripts/build-debug-kernel.sh)
#
# Needs root (apt-get) when something is missing; prints what it installs.
set -euo pipefail

die() {
	echo "deps.sh: $*" >&2
	exit 1
}

[ $# -ge 1 ] || die "usage: scripts/deps.sh vm|lint|rpm|bench|index|systemd|kernel..."

pkgs=()
for set in "$@"; do
	case "$set" in
	vm) pkgs+=(qemu-system-x86 busybox-static cpio gzip gcc make sparse
		uuid-dev libssl-dev libblkid-dev pkg-config libc6-dev kmod
		binutils coreutils socat python3 libnats-dev nats-server dmsetup
		libsqlite3-dev libpq-dev dwarves xz-utils) ;;
	lint) pkgs+=(shellcheck) ;;
	rpm) pkgs+=(rpm) ;;
	bench) pkgs+=(valgrind) ;;
	index) pkgs+=(libsqlite3-dev libpq-dev libnats-dev nats-server pkg-config
		postgresql postgresql-client) ;;
	systemd) pkgs+=(systemd) ;;
	kernel) pkgs+=(gcc make flex bison bc libelf-dev libssl-dev xz-utils
		tar kmod cpio) ;;
	*) die "unknown set '$set' (vm, lint, rpm, bench, index, systemd, kernel)" ;;
	esac
done

missing=()
for p in "${pkgs[@]}"; do
	if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
		missing+=("$p")
	fi
done
[ ${#missing[@]} -eq 0 ] && exit 0

[ "$(id -u)" -eq 0 ] || die "missing packages (${missing[*]}); run as root or install them"
echo "deps.sh: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
if ! apt-get install -y -q --no-install-recommends "${missing[@]}" >/tmp/deps-apt.log 2>&1; then
	apt-get update -q >>/tmp/deps-apt.log 2>&1 || true
	apt-get install -y -q --no-install-recommends "${missing[@]}" >>/tmp/deps-apt.log 2>&1 ||
		die "apt-get install failed, see /tmp/deps-apt.log"
fi
