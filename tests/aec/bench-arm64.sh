#!/usr/bin/env bash
# Benchmark (prints numbers, not a test): the echo canceller on the emulated
# arm64 board. Cross-builds aec-eval for arm64 (scripts/xbuild-arm64.sh -p
# aec-eval), boots the board's kernel with its Debian arm64 userspace
# (no card needed) and runs issue 18's scenarios in virtual time there:
# ERLE, convergence, double talk, the 40 ms step, +-300 ppm drift, and the
# CPU the canceller takes per call on the guest's (emulated) cortex-a57.
#
# usage: tests/aec/bench-arm64.sh [SCENARIO...]   (default: all of aec-eval's)
# Output: target/aec-bench-arm64/ (aec-eval.txt, aec-eval.jsonl, console.log).
# Under TCG the guest's CPU figures are those of an emulator on a shared
# host: they show the canceller runs and its order of magnitude, not a real
# Cortex-A's time (see README, Echo cancellation).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
export BOARD=qemu-arm64
out=${OUT:-$root/target/aec-bench-arm64}
rm -rf "$out"; mkdir -p "$out"; out=$(readlink -f "$out")
die() { echo "bench-arm64: $*" >&2; exit 2; }
"$root/scripts/kernel.sh" || die "the arm64 kernel build failed"
kernel=$("$root/scripts/kernel.sh" --print-kernel)
kdir=$("$root/scripts/kernel.sh" --print-kdir)
rootfs=$("$root/scripts/arm64-rootfs.sh") || die "the arm64 userspace could not be built"
bin=$("$root/scripts/xbuild-arm64.sh" -p aec-eval) || die "cross build of aec-eval failed"
llvm-strip --strip-debug -o "$out/aec-eval" "$bin" || die "llvm-strip failed"
echo "bench-arm64: aec-eval for arm64: $(du -k "$out/aec-eval" | cut -f1) KiB stripped of debug info"
"$root/tests/qemu/run-guest.sh" --kernel "$kernel" --kdir "$kdir" --mode rootdir --rootdir "$rootfs" \
    --mem 512 --smp 2 --timeout 1200 --out "$out" "$here/guest-bench.sh" "$@" >"$out/console.log" 2>&1 \
    || { tail -n 30 "$out/console.log"; die "the guest run failed (console: $out/console.log)"; }
sed -n '/^scenario /,$p' "$out/aec-eval.txt"
