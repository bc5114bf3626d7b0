#!/usr/bin/env bash
# Boots the debug x86_64 kernel (KASAN, lockdep, kmemleak) and runs
# tests/kmod/guest.d/50-robust.sh alone (make test-kmod runs it inside the
# card suite, after tests/kmod/guest-card.sh's own checks).
#
#   tests/kmod/robust.sh          the make-test counts (2,000 stress cycles,
#                                 64 load/unload cycles)
#   tests/kmod/robust.sh --long   the soak: 200,000 stress cycles and 10,000
#                                 load/unload cycles (make test-long)
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
out=${OUT:-$root/target/test-out/kmod-robust}
env=()
if [ "${1:-}" = --long ]; then
    env=(ROBUST_STRESS_CYCLES=200000 ROBUST_MOD_CYCLES=10000)
    timeout=${TIMEOUT:-7200}
else
    timeout=${TIMEOUT:-1500}
fi
rm -rf "$out"; mkdir -p "$out"
"$root/tests/pcmstress/build.sh" x86_64 >/dev/null
export SND_VOIP_ROOT=$root
printf 'export %s\n' "${env[@]+"${env[@]}"}" >"$out/robust.env"
cat >"$out/guest.sh" <<GUEST
#!/bin/sh
# run-guest: --pm
. /tmp/out/robust.env 2>/dev/null
. "\$SND_VOIP_ROOT/tests/kmod/guest.d/50-robust.sh"
GUEST
[ ${#env[@]} -gt 0 ] || : >"$out/robust.env"
"$root/tests/qemu/run-guest.sh" --debug-kernel --timeout "$timeout" --out "$out" "$out/guest.sh" 2>&1 | tee "$out/console.log" \
    | grep -E "^(PASS|FAIL|SKIP|  )|passed, .* failed|run-guest:|BUG|WARNING|KASAN"
exit "${PIPESTATUS[0]}"
