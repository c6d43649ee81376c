#!/usr/bin/env bash
# Tier "nats": scoutfs-notify-forward and scoutfs-notify-watch-nats,
# built from what the series ships (tests/lib/tools-src.sh, patch 4),
# against the real scoutfs-notifyd over tests/daemon/fake-scoutfs.c and
# real nats-server processes with JetStream on loopback ports
# (tests/nats/run.sh).  Installs libnats-dev and nats-server with apt
# when they are missing; prints SKIPPED with the reason when that can't
# be done.
set -euo pipefail

top=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=tests/lib/tools-src.sh
. "$top/tests/lib/tools-src.sh"

need=()
pkg-config --exists libnats 2>/dev/null || need+=(libnats-dev)
command -v nats-server >/dev/null || need+=(nats-server)
command -v pkg-config >/dev/null || need+=(pkg-config)
if [ ${#need[@]} -gt 0 ]; then
	echo "nats tier: installing ${need[*]}"
	if ! DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null 2>&1; then
		apt-get update -qq >/dev/null 2>&1 || true
		if ! DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null 2>&1; then
			echo "SKIPPED: cannot install ${need[*]} with apt"
			echo "nats: 0 passed, 0 failed"
			exit 0
		fi
	fi
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
if ! msg=$(tools_src "$work/src" 2>&1); then
	echo "nats tier: $msg"
	echo "nats: 0 passed, 1 failed"
	exit 1
fi
echo "nats tier: $msg"
if [ ! -f "$work/src/utils/notifyd/scoutfs-notify-forward.c" ]; then
	echo "nats tier: the series has no scoutfs-notify-forward (patch 4 missing)"
	echo "nats: 0 passed, 1 failed"
	exit 1
fi
"$top/tests/nats/run.sh" "$work/src"
