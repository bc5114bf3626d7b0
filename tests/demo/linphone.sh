#!/usr/bin/env bash
# linphone on the card (issue: the scenario users started from), in qemu.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
out=${OUT:-$root/target/test-out/linphone}
rm -rf "$out"; mkdir -p "$out"
"$root/tests/qemu/run-guest.sh" --timeout 900 --out "$out" "$root/tests/demo/guest-linphone.sh" 2>&1 | tee "$out/console.log" | grep -aE "^(PASS|FAIL|NOTE)|passed, |run-guest:"
exit "${PIPESTATUS[0]}"
