#!/usr/bin/env bash
# Host side of the card tests: boot the reference kernel with the module and
# run guest-card.sh inside. Usage: tests/kmod/run.sh [quick]
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
out=${OUT:-$root/target/test-out/kmod}
rm -rf "$out"; mkdir -p "$out"
"$root/tests/qemu/run-guest.sh" --timeout "${TIMEOUT:-1500}" --out "$out" \
    "$root/tests/kmod/guest-card.sh" "${1:-full}" 2>&1 | tee "$out/console.log" | grep -E "^(PASS|FAIL|SKIP)|passed, .* failed|run-guest:|snd_voip|BUG|WARNING|KASAN" 
exit "${PIPESTATUS[0]}"
