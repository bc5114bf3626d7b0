#!/usr/bin/env bash
# The card tests (tests/kmod/guest-card.sh: the format x rate x channels
# matrix, pcmcheck's timing checks, parameters, load/unload cycles,
# kmemleak) on the product's real target: the emulated arm64 board, debug
# kernel, without the RTOS node (the plain card; tests/rtos covers the FIFO),
# with Debian's arm64 alsa-utils and arm64 builds of audiotest and pcmcheck
# (scripts/xbuild-arm64.sh).
#
# usage: tests/kmod/run-arm64.sh [quick|full|long|matrix SPEC...]
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
export BOARD=qemu-arm64
mode=${1:-full}
out=${OUT:-$root/target/test-out/kmod-arm64$([ "$mode" = matrix ] && echo -matrix)}
rm -rf "$out"; mkdir -p "$out"
kernel=$("$root/scripts/kernel.sh" --print-kernel)
kdir=$("$root/scripts/kernel.sh" --print-kdir)
[ -f "$kernel" ] || { echo "run-arm64: $kernel not built: run 'make kernel-arm64'" >&2; exit 2; }
ko=$("$root/scripts/kmod-arm64.sh" "$kdir")
rootfs=$("$root/scripts/arm64-rootfs.sh")
"$root/scripts/xbuild-arm64.sh" >/dev/null
bindir=$("$root/scripts/xbuild-arm64.sh" --print-bin-dir)
# guest.d/50-robust.sh's test program (static, nolibc), beside them.
"$root/tests/pcmstress/build.sh" arm64 "$bindir/pcmstress" >/dev/null
mem=1024 smp=2
dtb=$out/nonode.dtb
"$root/dts/mkboard-dtb.sh" --smp $smp --mem $mem --no-node -o "$dtb" >/dev/null
timeout=${TIMEOUT:-2400}; [ "$mode" = long ] && timeout=${TIMEOUT:-14400}
"$root/tests/qemu/run-guest.sh" --debug-kernel --kernel "$kernel" --kdir "$kdir" --module "$ko" \
    --mode rootdir --rootdir "$rootfs" --dtb "$dtb" --bin-dir "$bindir" --mem $mem --smp $smp \
    --timeout "$timeout" --out "$out" "$root/tests/kmod/guest-card.sh" "$mode" "${@:2}" 2>&1 |
    tee "$out/console.log" | grep -aE "^(PASS|FAIL|SKIP)|passed, .* failed|run-guest:|guest-card:|snd_voip|BUG|WARNING|KASAN|RETRY"
exit "${PIPESTATUS[0]}"
