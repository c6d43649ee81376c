#!/usr/bin/env bash
# Sourced by tests/apply-test.sh (after tests/lib/counts.sh):
#
#   rpm_checks TREE
#
# builds the RPMs of TREE (a scoutfs checkout with the series applied)
# the way a site does (`make -C utils dist`, then `rpmbuild -tb`), once
# as they come and once with --with nats --with heat, and checks the
# packaging contract of docs/stream.md and docs/index.md: the optional
# tools are subpackages of their own, only those need libnats, libpq or
# SQLite, and the main package holds and needs none of them.  Needs
# Debian's rpm and the build dependencies (scripts/deps.sh vm rpm);
# without them it prints SKIPPED, and under CI it fails.

# rpm_files RPMS NAME: the files of package NAME among the built RPMs
rpm_files() {
	local f
	f=$(find "$1" -name "$2-[0-9]*.rpm" | head -n 1)
	[ -n "$f" ] && rpm -qpl "$f"
}

rpm_requires() {
	local f
	f=$(find "$1" -name "$2-[0-9]*.rpm" | head -n 1)
	[ -n "$f" ] && rpm -qpR "$f"
}

# rpm_build TREE OUT [rpmbuild options]: the RPMs into OUT/RPMS; 0 if built
rpm_build() {
	local tree=$1 out=$2 tar
	shift 2
	tar=$(find "$tree/utils" -maxdepth 1 -name 'scoutfs-utils-*.tar' | head -n 1)
	rpmbuild --define "_topdir $out" --define "_buildshell /bin/bash" \
		--define "_unitdir /usr/lib/systemd/system" --nodeps "$@" -tb "$tar" >"$out.log" 2>&1
}

# rpm_expect NAME LIST PATTERN...: every PATTERN (grep -E) is a line of LIST
rpm_expect() {
	local name=$1 list=$2 p
	shift 2
	for p in "$@"; do
		if ! grep -qE -- "$p" <<<"$list"; then
			bad "$name" "no line matches /$p/ in: $(tr '\n' ' ' <<<"$list" | cut -c1-400)"
			return
		fi
	done
	ok "$name"
}

rpm_refuse() {
	local name=$1 list=$2 pat=$3
	if grep -qE -- "$pat" <<<"$list"; then
		bad "$name" "$(grep -E -- "$pat" <<<"$list" | tr '\n' ' ')"
	else
		ok "$name"
	fi
}

rpm_checks() {
	local tree=$1 out plain full deps
	deps=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)/scripts/deps.sh
	if ! "$deps" vm rpm >/dev/null 2>&1 || ! command -v rpmbuild >/dev/null; then
		if [ -n "${CI:-}" ]; then
			bad "RPM packaging" "cannot install rpm and the build dependencies, and CI requires it"
		else
			echo "SKIPPED: RPM packaging: cannot install rpm and the build dependencies"
		fi
		return
	fi
	out=$(mktemp -d)
	if ! make -s -C "$tree/utils" dist >"$out/dist.log" 2>&1; then
		bad "RPM packaging: make -C utils dist" "$(tail -n 5 "$out/dist.log")"
		return
	fi
	plain=$out/plain full=$out/full
	if ! rpm_build "$tree" "$plain" || ! rpm_build "$tree" "$full" --with nats --with heat; then
		bad "RPM packaging: rpmbuild -tb" "$(tail -n 5 "$plain.log" "$full.log" 2>/dev/null)"
		return
	fi
	ok "RPM packaging: rpmbuild -tb, as it comes and --with nats --with heat"
	rpm_refuse "RPM: without options, no nats or heat subpackage" \
		"$(find "$plain/RPMS" -name '*.rpm' -printf '%f\n')" '^scoutfs-utils-(nats|heat)-'
	rpm_expect "RPM: scoutfs-utils holds the daemon, the client, its unit and man pages" \
		"$(rpm_files "$plain/RPMS" scoutfs-utils)" '/usr/sbin/scoutfs-notifyd$' \
		'/usr/sbin/scoutfs-notify-watch$' 'scoutfs-notifyd@\.service$' 'scoutfs-notifyd\.8'
	rpm_expect "RPM --with heat: scoutfs-utils-heat holds the index, its unit and man page" \
		"$(rpm_files "$full/RPMS" scoutfs-utils-heat)" '/usr/sbin/scoutfs-notify-heat$' \
		'scoutfs-notify-heat\.service$' 'scoutfs-notify-heat\.8'
	rpm_expect "RPM --with heat: it needs SQLite, libpq, libnats and its own scoutfs-utils" \
		"$(rpm_requires "$full/RPMS" scoutfs-utils-heat)" '^libsqlite3\.so' '^libpq\.so' \
		'^libnats\.so' '^scoutfs-utils = '
	rpm_expect "RPM --with nats: scoutfs-utils-nats holds the forwarder and consumer" \
		"$(rpm_files "$full/RPMS" scoutfs-utils-nats)" '/usr/sbin/scoutfs-notify-forward$' \
		'/usr/sbin/scoutfs-notify-watch-nats$' 'scoutfs-notify-forward@\.service$'
	rpm_refuse "RPM --with nats --with heat: scoutfs-utils holds none of their files" \
		"$(rpm_files "$full/RPMS" scoutfs-utils)" 'notify-(heat|forward|watch-nats)'
	rpm_refuse "RPM: scoutfs-utils needs no libnats, libpq or SQLite, with or without them" \
		"$(rpm_requires "$plain/RPMS" scoutfs-utils; rpm_requires "$full/RPMS" scoutfs-utils)" \
		'libnats|libpq|libsqlite3'
	rm -rf "$out"
}
