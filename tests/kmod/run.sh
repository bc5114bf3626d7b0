#!/usr/bin/env bash
# Host side of the card tests: boot the debug kernel (KASAN, lockdep,
# kmemleak: run-guest.sh refuses another) with the module and run
# guest-card.sh inside. Usage: tests/kmod/run.sh [quick|full|long] [trace]
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
mode=${1:-full}
out=${OUT:-$root/target/test-out/kmod}
rm -rf "$out"; mkdir -p "$out"
timeout=${TIMEOUT:-1500}; [ "$mode" = long ] && timeout=${TIMEOUT:-9000}
# guest.d/50-robust.sh's test program, into the guest's $SND_VOIP_BIN.
"$root/tests/pcmstress/build.sh" x86_64 >/dev/null
"$root/tests/qemu/run-guest.sh" --debug-kernel --timeout "$timeout" --out "$out" \
    "$root/tests/kmod/guest-card.sh" "$mode" ${2:-} 2>&1 | tee "$out/console.log" | grep -E "^(PASS|FAIL|SKIP)|passed, .* failed|run-guest:|guest-card:|snd_voip|BUG|WARNING|KASAN"
exit "${PIPESTATUS[0]}"
