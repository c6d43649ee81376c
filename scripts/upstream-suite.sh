#!/usr/bin/env bash
# Run upstream scoutfs's own test suite (tests/run-tests.sh) twice in
# one run, in two VMs side by side: the release unpatched, and the
# release with the series applied and a scoutfs-notifyd + client
# attached to every test mount.  Then compare the two.
#
#   scripts/upstream-suite.sh --src DIR [--base TAG] [--out DIR]
#                             [--passes "base notify"] [--only 'a|b']
#                             [--timeout SECS] [--debug-kernel]
#
# Both trees are built here (scripts/build-scoutfs.sh, plus upstream's
# test programs); each guest is the Debian root of
# scripts/upstream-root.sh with the trees appended, booted under TCG.
# run-tests.sh runs with 5 mounts (3 quorum members: upstream's golden
# output is for 5 mounts) on four 64 GiB virtio disks and its results
# on a fifth (sparse files under DIR, removed afterwards), excluding the
# tests in tests/upstream/excluded.txt (each with its reason) that the
# release's sequence has (tests/upstream/exclusions.py).  --only runs just
# the tests matching one of the |-separated run-tests.sh -I regexes (for
# debugging; a run with it is not a comparison).  --timeout bounds each
# pass (default 4500 s: a v1.33 pass took 37 minutes with the host at a
# load of 7 on 2 cores); each VM gets its pass plus 10 minutes.
# --debug-kernel (or DEBUG_KERNEL=1) boots the debug kernel
# (scripts/build-debug-kernel.sh: lockdep, KASAN, kmemleak, UBSAN,
# docs/debug-kernel.md) with the modules built against it, and works in
# build/upstream-debug; the default --timeout is then 9000 s and each VM
# gets 20 minutes more.  After each pass, with scoutfs unloaded, the
# guest checks the detectors as vm-test's debug runs do (kmemleak's
# list, lockdep still on, no report in the kernel log, each report
# printed whole): anything they found fails the run.  That kernel has
# no nfsd, which basic-nfs (v1.32 on) needs.
#
# Writes DIR/report.md (default build/upstream/report.md): the host's
# load while the VMs ran; per pass, tests run, passed, failed, skipped
# and kernel-log warnings, what the readers received, and every test
# whose result differs; then the verdict,
# `upstream-suite: identical results ...` or `upstream-suite: DIFFERENT
# ...`, and the closing `upstream-suite: N passed, M failed` (N tests
# with the same result in both passes; M differing tests plus other
# problems).  The exit status is 0 only when both passes ran to the end
# with identical results and no new kernel warnings.  With one pass
# (--passes notify) the verdict is `upstream-suite: one pass only
# (notify), not a comparison: ...` and the closing line counts that
# pass's tests (M: its failed tests plus other problems, a kernel
# warning among them); exit 0 when M is 0.
set -euo pipefail

top=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

# shellcheck source=scripts/lib.sh
. "$top/scripts/lib.sh"

src=${SCOUTFS_SRC:-}
base=$(cat "$top/base.txt")
out=""
passes="base notify"
only=""
pass_timeout=""
while [ $# -gt 0 ]; do
	case "$1" in
	--src) [ $# -ge 2 ] || die "--src needs a directory"; src=$2; shift 2 ;;
	--base) base=${2:?--base needs a release tag}; shift 2 ;;
	--out) out=${2:?--out needs a directory}; shift 2 ;;
	--passes) passes=${2:?--passes needs pass names}; shift 2 ;;
	--only) only=${2:?--only needs a regex}; shift 2 ;;
	--timeout) pass_timeout=${2:?--timeout needs seconds}; shift 2 ;;
	--debug-kernel) DEBUG_KERNEL=1; shift ;;
	-h | --help) usage; exit 0 ;;
	*) die "unknown argument '$1' (see --help)" ;;
	esac
done
[ -n "$src" ] || die "--src (or SCOUTFS_SRC) must name an upstream scoutfs git dir"
src=$("$top/scripts/upstream-git.sh" "$src")
case "${DEBUG_KERNEL:-0}" in
0 | '') DEBUG_KERNEL=0 ;;
1) ;;
*) die "DEBUG_KERNEL must be 0 or 1, not '$DEBUG_KERNEL'" ;;
esac
# build-scoutfs.sh builds against the kernel this names (kernel_lines)
export DEBUG_KERNEL
if [ "$DEBUG_KERNEL" = 1 ]; then
	: "${out:=$top/build/upstream-debug}" "${pass_timeout:=9000}"
else
	: "${out:=$top/build/upstream}" "${pass_timeout:=4500}"
fi
case "$pass_timeout" in '' | *[!0-9]*) die "--timeout must be a number of seconds" ;; esac
for p in $passes; do
	case "$p" in base | notify) ;; *) die "unknown pass '$p' (base, notify)" ;; esac
done
[ -n "$passes" ] || die "--passes must name at least one pass"
"$top/apply.sh" --list | grep -qx "$base" ||
	die "no series for '$base' (supported: $("$top/apply.sh" --list | tr '\n' ' '))"
git -C "$src" rev-parse -q --verify "$base^{commit}" >/dev/null 2>&1 ||
	die "'$src' has no $base: it must be an upstream scoutfs git dir with release tags"

# The exclusions for this release: the names in excluded.txt that its
# sequence has (a name no supported release has is an error).
excluded=$(python3 "$top/tests/upstream/exclusions.py" --excluded "$top/tests/upstream/excluded.txt" \
	--git "$src" --base "$base" --releases "$("$top/apply.sh" --list | tr '\n' ' ')") ||
	die "tests/upstream/excluded.txt does not fit the supported releases (see above)"

"$top/scripts/deps.sh" vm
kl=$(kernel_lines)
eval "$kl"
eval "$("$top/scripts/upstream-root.sh")"

mkdir -p "$out"
out=$(cd "$out" && pwd)

# Both trees, each with upstream's test programs built, as run-tests.sh
# would build them (it runs make again in the guest, where everything
# is up to date).
for p in $passes; do
	args=(--src "$src" --base "$base" --out "$out/$p")
	[ "$p" = base ] && args+=(--no-series)
	"$top/scripts/build-scoutfs.sh" "${args[@]}" | sed "s/^/$p: /"
	make -C "$out/$p/src/tests" -j"$(nproc)" >"$out/$p/tests-build.log" 2>&1 ||
		die "$p: building upstream's test programs failed, see $out/$p/tests-build.log"
done

seq_file=$out/$(echo "$passes" | awk '{print $1}')/src/tests/sequence
nseq=$(grep -cv '^#' "$seq_file")
exclude=$(echo "$excluded" | tr '\n' ' ')

ov=$out/overlay
rm -rf "$ov"
mkdir -p "$ov"/{scoutfs,results,opt/prebuilt-ksrc,mnt,etc,boot,"lib/modules/$KVER/kernel"}
# the kernel's config, where a Debian system has it: basic-posix-consistency
# copies /boot/conf* into scoutfs
if [ "$DEBUG_KERNEL" = 1 ]; then
	cp "$KDIR/.config" "$ov/boot/config-$KVER"
else
	cp "$(dirname "$VMLINUZ")/config-$KVER" "$ov/boot/"
fi
for p in $passes; do
	# the tree without git metadata and dependency files (so that make in
	# the guest finds everything up to date without the host's headers),
	# and the stripped module in place of the debug one
	tar -C "$out/$p/src" --exclude=.git --exclude='*.d' --exclude='kmod/src/*.o' \
		--exclude='kmod/src/.*.cmd' -cf - . | (mkdir -p "$ov/scoutfs/$p" && tar -C "$ov/scoutfs/$p" -xpf -)
	cp "$out/$p/scoutfs.ko" "$ov/scoutfs/$p/kmod/src/scoutfs.ko"
	git -C "$out/$p/src" describe --tags --always >"$ov/scoutfs/$p/describe"
	[ "$p" = notify ] && git -C "$out/$p/src" log --oneline "$base..HEAD" | sed 's/^/  + /' >>"$ov/scoutfs/$p/describe"
done
cat >"$ov/opt/prebuilt-ksrc/Makefile" <<'MK'
# scoutfs-notify upstream-suite guest: the module was built on the host
# (scripts/build-scoutfs.sh: -Werror, sparse); run-tests.sh's kmod make
# lands here and only checks that it is there.
all modules:
	@test -f $(M)/scoutfs.ko && echo "prebuilt $(M)/scoutfs.ko"
MK
# The modules the guest loads, each with what it depends on (the kernel
# package has no modules.dep to read that from): the disks, loop and
# device-mapper, scoutfs's libcrc32c and crc32c, the results' ext4, and
# for basic-nfs (v1.32 on) the NFS server and the NFSv3 client.  A
# module the kernel has built in (the debug kernel has them all but
# nfsd) is left out.
declare -A kmod_path kmod_builtin
while read -r f; do
	n=$(basename "$f" .ko)
	kmod_path[${n//-/_}]=$f
done < <(cd "$MODDIR/kernel" && find . -name '*.ko')
while read -r f; do
	n=$(basename "$f" .ko)
	kmod_builtin[${n//-/_}]=1
done <"$MODDIR/modules.builtin"
add_kmod() {
	local f=${kmod_path[${1//-/_}]:-} d
	[ -z "${kmod_builtin[${1//-/_}]:-}" ] || return 0
	[ -n "$f" ] || die "no module '$1' in $MODDIR/kernel"
	[ ! -e "$ov/lib/modules/$KVER/kernel/$f" ] || return 0
	mkdir -p "$(dirname "$ov/lib/modules/$KVER/kernel/$f")"
	cp "$MODDIR/kernel/$f" "$ov/lib/modules/$KVER/kernel/$f"
	for d in $(modinfo -F depends "$MODDIR/kernel/$f" | tr ',' ' '); do
		add_kmod "$d"
	done
}
for m in virtio_pci virtio_blk loop dm-mod libcrc32c crc32c_generic ext4 nfsd nfsv3; do
	if [ "$m" = nfsd ] && [ -z "${kmod_path[nfsd]:-}${kmod_builtin[nfsd]:-}" ]; then
		! grep -qx basic-nfs.sh "$seq_file" ||
			echo "upstream-suite.sh: $KVER has no nfsd: basic-nfs will skip for want of the NFS server"
		continue
	fi
	add_kmod "$m"
done
cp "$MODDIR"/modules.{order,builtin,builtin.modinfo} "$ov/lib/modules/$KVER/"
depmod -b "$ov" "$KVER"
# the root is merged-/usr: an overlay lib/ would replace its lib symlink
mkdir -p "$ov/usr/lib"
mv "$ov/lib/modules" "$ov/usr/lib/modules"
rmdir "$ov/lib"
cp "$top/tests/upstream/guest.sh" "$ov/init"
chmod +x "$ov/init"
(cd "$ov" && find . | cpio -o -H newc --quiet) >"$out/overlay.cpio"

# One VM per pass, side by side (each with 2 vCPUs on the host's cores,
# so both passes see the same load), each with its own four 64 GiB
# sparse disk files: the data the tests write lands on the host's disk,
# not in the guest's memory (with RAM disks the VM ran out of memory
# part way through the suite).
vm_timeout=$((pass_timeout + (DEBUG_KERNEL ? 1200 : 600)))
append="console=ttyS0 panic=-1 quiet loglevel=1 rdinit=/init"
kernel="Debian $KVER"
if [ "$DEBUG_KERNEL" = 1 ]; then
	# as scripts/vm-run.sh boots it: 4-level paging (no5lvl, against a
	# false KASAN report at boot) and reports on the console as they
	# happen (loglevel=5), so a VM that hangs after one still shows it
	append="console=ttyS0 panic=-1 quiet loglevel=5 no5lvl rdinit=/init"
	kernel="the debug kernel $KVER (lockdep, KASAN, kmemleak, UBSAN)"
fi
# The host's load while the VMs run (its 1-minute load average, once a
# minute, for the report): a TCG guest on an overloaded host stalls, and
# scoutfs's timeouts take a stall for a failing node.
cut -d' ' -f1 /proc/loadavg >"$out/loadavg"
(while sleep 60; do cut -d' ' -f1 /proc/loadavg; done) >>"$out/loadavg" &
loadpid=$!
trap 'kill "$loadpid" 2>/dev/null || true' EXIT
echo "upstream-suite.sh: booting $kernel, one VM per pass ($passes); $nseq tests in $base's sequence, $(echo "$exclude" | wc -w) excluded${only:+, only /$only/} (timeout ${vm_timeout}s)"
pids=()
for p in $passes; do
	d=$out/$p/disks
	mkdir -p "$d" "$out/$p/conf/etc"
	drives=()
	# and a fifth, 16 GiB, for run-tests.sh's results and tmp files:
	# change-devices opens files there with O_DIRECT, which the
	# initramfs's tmpfs refuses (EINVAL)
	for n in meta:64G data:64G exmeta:64G exdata:64G results:16G; do
		rm -f "$d/${n%:*}.img"
		truncate -s "${n#*:}" "$d/${n%:*}.img"
		drives+=(-drive "file=$d/${n%:*}.img,format=raw,if=virtio,cache=unsafe,discard=unmap")
	done
	cat >"$out/$p/conf/etc/upstream-suite.conf" <<CONF
PASSES="$p"
EXCLUDE="$exclude"
PASS_TIMEOUT=$pass_timeout
NR_MOUNTS=5
QUORUM=3
ONLY="$only"
DEBUG_KERNEL=$DEBUG_KERNEL
CONF
	(cd "$out/$p/conf" && find . | cpio -o -H newc --quiet) >"$out/$p/conf.cpio"
	cat "$ROOT_CPIO" "$out/overlay.cpio" "$out/$p/conf.cpio" >"$out/$p/initrd"
	# the console goes to its log; the guest's own lines (a result line
	# per test as it ends) and run-tests.sh's summary to stdout as well
	boot_vm "$vm_timeout" 8G "$out/$p/initrd" "$append" "$out/$p/console.log" "${drives[@]}" |
		grep --line-buffered -E '^(upstream: |\[== all tests)' &
	pids+=($!)
done
rc=0
for pid in "${pids[@]}"; do
	wait "$pid" || rc=$?
done
kill "$loadpid" 2>/dev/null || true
cut -d' ' -f1 /proc/loadavg >>"$out/loadavg"
for p in $passes; do
	cat "$out/$p/console.log"
	rm -rf "$out/$p/disks"
done >"$out/console.log"

echo "$excluded" | grep . >"$out/excluded" || true
args=(--console "$out/console.log" --passes "$passes" --base "$base" --excluded "$out/excluded"
	--nseq "$nseq" --loadavg "$out/loadavg" --cores "$(nproc)" --kernel "$kernel")
[ -z "$only" ] || args+=(--only "$only")
[ "$DEBUG_KERNEL" = 0 ] || args+=(--debug-kernel)
rrc=0
python3 "$top/tests/upstream/report.py" "${args[@]}" >"$out/report.md" || rrc=$?
cat "$out/report.md"
[ "$rrc" -eq 0 ] && [ "$rc" -eq 0 ]
