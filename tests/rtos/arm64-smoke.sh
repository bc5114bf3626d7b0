#!/usr/bin/env bash
# Smoke test of the emulated arm64 board (board-configs/qemu-arm64): the
# cross-built kernel boots the Debian arm64 rootfs (scripts/arm64-rootfs.sh)
# with its RAM in a host file and the board DTB (dts/mkboard-dtb.sh).
#
#   boot 1 (DTB with the audio-fifo node, RAM file with a marker the host wrote
#           at the FIFO region): the node and the no-map reservation are in the
#           guest's device tree and /proc/iomem, Debian's arm64 aplay runs, the
#           driver reads the host's marker at 0x5f000000 (it refuses the ring:
#           bad magic), and the guest never writes into the region;
#   boot 2 (DTB without the node): modprobe snd-voip gives the plain card VoIP.
#
# usage: tests/rtos/arm64-smoke.sh [--module ARM64_KO]
#   Without --module the arm64 snd-voip.ko is built by scripts/kmod-arm64.sh
#   (the one in kmod-snd-voip/ is the x86_64 build).
# Needs: BOARD=qemu-arm64 make kernel (the arm64 kernel), make setup.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
export BOARD=qemu-arm64

ko=""
while [ $# -gt 0 ]; do
    case "$1" in
        --module) ko=$(readlink -f "$2"); shift 2 ;;
        *) echo "arm64-smoke: unknown argument $1" >&2; exit 2 ;;
    esac
done

pass=0 failed=0
ok() { echo "PASS: $*"; pass=$((pass + 1)); }
bad() { echo "FAIL: $*"; failed=$((failed + 1)); }

kernel=$("$root/scripts/kernel.sh" --print-kernel)
kdir=$("$root/scripts/kernel.sh" --print-kdir)
[ -f "$kernel" ] || { echo "arm64-smoke: $kernel not built: run 'BOARD=qemu-arm64 make kernel'" >&2; exit 2; }
rootfs=$("$root/scripts/arm64-rootfs.sh")

work=$(mktemp -d "${TMPDIR:-/tmp}/arm64-smoke.XXXXXX")
trap 'rm -rf "$work"' EXIT

[ -n "$ko" ] || ko=$("$root/scripts/kmod-arm64.sh" "$kdir")
case "$(file -b "$ko")" in *aarch64*) ok "snd-voip.ko is an arm64 module" ;; *) bad "$ko is not an arm64 module"; exit 1 ;; esac

mem=512 smp=2
"$root/dts/mkboard-dtb.sh" --smp $smp --mem $mem -o "$work/board.dtb"
"$root/dts/mkboard-dtb.sh" --smp $smp --mem $mem --no-node -o "$work/nonode.dtb"

# The RAM file: guest physical 0x40000000 + x is file offset x, so the FIFO
# region (0x5f000000) starts at 0x1f000000. The marker: a wrong ring magic
# 0x5a5a1234 (little endian) followed by random bytes, 64 KiB in all.
region=$work/ram
off=$((0x1f000000))
truncate -s ${mem}M "$region"
{ printf '\x34\x12\x5a\x5a'; head -c $((0x10000 - 4)) /dev/urandom; } >"$work/marker"
dd if="$work/marker" of="$region" bs=4096 seek=$((off / 4096)) conv=notrunc status=none

cat >"$work/guest1.sh" <<'GUEST'
r=$GUEST_OUT/guest1.txt
: >"$r"
say() { echo "$*" | tee -a "$r"; }
say "arch $(uname -m)"
say "compatible $(tr -d '\0' </proc/device-tree/audio-fifo/compatible)"
say "capture-source $(tr -d '\0' </proc/device-tree/audio-fifo/snd-voip,capture-source)"
n=/proc/device-tree/reserved-memory/audio-fifo@5f000000
say "reg $(od -An -tx1 "$n/reg" | tr -d ' \n')"
[ -e "$n/no-map" ] && say "no-map yes"
# No System RAM range of /proc/iomem may cover the region (no-map).
covered=no
while read -r range colon what; do
    case "$what" in "System RAM") ;; *) continue ;; esac
    s=$((0x${range%-*})) e=$((0x${range#*-}))
    if [ $s -le $((0x5f00ffff)) ] && [ $e -ge $((0x5f000000)) ]; then covered=yes; fi
done </proc/iomem
say "region-in-system-ram $covered"
grep 'System RAM' /proc/iomem
aplay --version >/dev/null 2>&1 && say "aplay $(aplay --version | head -n1)"
say "$(amixer --version | head -n1)"
# The driver reads the ring header the host wrote into the region.
modprobe snd-voip >"$GUEST_OUT/modprobe1.txt" 2>&1; say "modprobe-status $?"
dmesg | grep -i 'snd.voip\|rtos' | tee "$GUEST_OUT/dmesg1.txt"
grep -q 0x5a5a1234 "$GUEST_OUT/dmesg1.txt" && say "driver-read-marker yes"
rmmod snd-voip 2>/dev/null
dmesg | grep -E "BUG:|WARNING:|KASAN|possible recursive locking|circular locking|inconsistent lock state|INFO: task|Oops|general protection|refcount_t:|UBSAN" && say "dmesg-warnings yes"
say "done"
GUEST

cat >"$work/guest2.sh" <<'GUEST'
r=$GUEST_OUT/guest2.txt
[ -e /proc/device-tree/audio-fifo ] && echo "node present" >>"$r"
modprobe snd-voip; echo "modprobe-status $?" >>"$r"
cat /proc/asound/cards | tee -a "$r"
aplay -l 2>&1 | tee -a "$r"
rmmod snd-voip; echo "rmmod-status $?" >>"$r"
# (the reports tests/kmod/lib.sh's check_dmesg looks for)
dmesg | grep -E "BUG:|WARNING:|KASAN|possible recursive locking|circular locking|inconsistent lock state|INFO: task|Oops|general protection|refcount_t:|UBSAN" >>"$r" && echo "dmesg-warnings yes" >>"$r"
echo done >>"$r"
GUEST

echo "== boot 1: board DTB with the audio-fifo node, RAM in $region"
mkdir -p "$work/out1" "$work/out2"
t0=$(date +%s)
"$root/tests/qemu/run-guest.sh" --kernel "$kernel" --kdir "$kdir" --module "$ko" \
    --mode rootdir --rootdir "$rootfs" --region "$region" --dtb "$work/board.dtb" \
    --mem $mem --smp $smp --timeout 300 --out "$work/out1" "$work/guest1.sh" >"$work/boot1.log" 2>&1 \
    && ok "boot 1: guest script ran (exit 0) in $(($(date +%s) - t0)) s" || { tail -n 40 "$work/boot1.log"; bad "boot 1 did not complete"; }
g=$work/out1/guest1.txt
[ -f "$g" ] && cat "$g"
expect() { # expect FILE LINE WHAT
    if [ -f "$1" ] && grep -qxF "$2" "$1"; then ok "$3"; else bad "$3 (no line '$2')"; fi
}
expect "$g" "arch aarch64" "the guest runs arm64 userspace"
expect "$g" "compatible snd-voip,rtos-fifo" "/proc/device-tree/audio-fifo/compatible is snd-voip,rtos-fifo"
expect "$g" "capture-source rtos" "the node carries snd-voip,capture-source = rtos"
expect "$g" "reg 000000005f0000000000000000010000" "reserved-memory/audio-fifo@5f000000 reg is 0x5f000000 + 0x10000"
expect "$g" "no-map yes" "the reservation is no-map"
expect "$g" "region-in-system-ram no" "/proc/iomem: no System RAM range covers 0x5f000000-0x5f00ffff"
if [ -f "$g" ] && grep -q '^aplay aplay: version 1\.2\.8' "$g"; then ok "Debian arm64 aplay runs in the guest"; else bad "aplay --version"; fi
expect "$g" "driver-read-marker yes" "the driver read the marker the host wrote at file offset 0x1f000000 (dmesg: bad magic 0x5a5a1234)"
expect "$g" "modprobe-status 1" "modprobe fails on the marker (exit status 1)"
if grep -q "No such device" "$work/out1/modprobe1.txt" 2>/dev/null; then
    ok "modprobe reports ENODEV (No such device) for the bad magic: $(head -n 1 "$work/out1/modprobe1.txt")"
else
    bad "modprobe's error for the bad magic: $(cat "$work/out1/modprobe1.txt" 2>/dev/null)"
fi
expect "$g" "done" "the guest wrote its report to \$GUEST_OUT"
if [ -f "$g" ] && ! grep -q 'dmesg-warnings yes' "$g"; then ok "boot 1: no KASAN/lockdep/BUG/WARNING in dmesg"; else bad "boot 1: dmesg has kernel reports"; fi
if cmp -s <(dd if="$region" bs=4096 skip=$((off / 4096)) count=16 status=none) "$work/marker"; then
    ok "the FIFO region in the RAM file is untouched by the guest"
else
    bad "the guest changed the FIFO region (no-map not honoured, or the driver wrote into a refused ring)"
fi
if [ "$(head -c 4M "$region" | tr -d '\0' | head -c 4096 | wc -c)" -gt 0 ]; then
    ok "the guest RAM is the host file (kernel and DTB loaded into it)"
else
    bad "the RAM file's first 4 MiB are still zero: the guest did not use it"
fi

echo "== boot 2: board DTB without the node"
t0=$(date +%s)
"$root/tests/qemu/run-guest.sh" --kernel "$kernel" --kdir "$kdir" --module "$ko" \
    --mode rootdir --rootdir "$rootfs" --dtb "$work/nonode.dtb" \
    --mem $mem --smp $smp --timeout 300 --out "$work/out2" "$work/guest2.sh" >"$work/boot2.log" 2>&1 \
    && ok "boot 2: guest script ran (exit 0) in $(($(date +%s) - t0)) s" || { tail -n 40 "$work/boot2.log"; bad "boot 2 did not complete"; }
g=$work/out2/guest2.txt
[ -f "$g" ] && cat "$g"
if [ -f "$g" ] && ! grep -q 'node present' "$g"; then ok "no audio-fifo node in the guest's device tree"; else bad "node-less DTB"; fi
expect "$g" "modprobe-status 0" "modprobe snd-voip loads on arm64"
if [ -f "$g" ] && grep -q '\[VoIP *\]' "$g"; then ok "/proc/asound/cards lists card VoIP"; else bad "no card VoIP"; fi
if [ -f "$g" ] && grep -q 'card 0: VoIP .*device 1' "$g"; then ok "aplay -l shows the card's device 1"; else bad "aplay -l"; fi
expect "$g" "rmmod-status 0" "rmmod snd-voip"
if [ -f "$g" ] && ! grep -q 'dmesg-warnings yes' "$g"; then ok "boot 2: no KASAN/lockdep/BUG/WARNING in dmesg"; else bad "boot 2: dmesg has kernel reports"; fi

echo "arm64-smoke: $pass passed, $failed failed"
[ "$failed" = 0 ]
