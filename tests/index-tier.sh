#!/usr/bin/env bash
# Tier "index": scoutfs-notify-heat, the access index of commit 5, built
# from what the series ships (tests/lib/tools-src.sh) and tested against
# real engines (SQLite, a PostgreSQL server the tests start themselves)
# and real nats-server processes, over the real daemon and forwarder on
# the ioctl stand-in (tests/index/run.sh).  Installs what it needs with
# apt; when that can't be done it prints SKIPPED with the reason, except
# under CI (CI=true), where the tier is required and that is a failure.
set -euo pipefail

top=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=tests/lib/tools-src.sh
. "$top/tests/lib/tools-src.sh"

need=()
for p in libsqlite3-dev libpq-dev libnats-dev; do
	dpkg -s "$p" >/dev/null 2>&1 || need+=("$p")
done
command -v nats-server >/dev/null || need+=(nats-server)
command -v pkg-config >/dev/null || need+=(pkg-config)
[ -x /usr/lib/postgresql/15/bin/initdb ] || need+=(postgresql)
command -v psql >/dev/null || need+=(postgresql-client)
if [ ${#need[@]} -gt 0 ]; then
	echo "index tier: installing ${need[*]}"
	if ! DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null 2>&1; then
		apt-get update -qq >/dev/null 2>&1 || true
		if ! DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null 2>&1; then
			if [ -n "${CI:-}" ]; then
				echo "index tier: cannot install ${need[*]} with apt, and CI requires this tier"
				echo "index: 0 passed, 1 failed"
				exit 1
			fi
			echo "SKIPPED: cannot install ${need[*]} with apt"
			echo "index: 0 passed, 0 failed"
			exit 0
		fi
	fi
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
if ! msg=$(tools_src "$work/src" 2>&1); then
	echo "index tier: $msg"
	echo "index: 0 passed, 1 failed"
	exit 1
fi
echo "index tier: $msg"
if [ ! -f "$work/src/utils/notifyd/heat.mk" ]; then
	echo "index tier: the series has no scoutfs-notify-heat (commit 5 missing)"
	echo "index: 0 passed, 1 failed"
	exit 1
fi
"$top/tests/index/run.sh" "$work/src"
