#!/usr/bin/env bash
# Benchmark (prints numbers, asserts nothing): period-wakeup jitter and
# system CPU of one running capture cable, snd-voip (hrtimer) beside the
# kernel's snd-aloop (jiffies timer), in the same emulated guest.
# Numbers from a TCG guest are dominated by emulation; compare them side by
# side, not with real hardware.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
cat >"${TMPDIR:-/tmp}/snd-voip-bench.sh" <<'GUEST'
PC=$SND_VOIP_ROOT/target/release/pcmcheck
modprobe snd-voip
modprobe snd-aloop
for p in 160 80; do
    $PC wakeups hw:VoIP,1,0 8000 $p 10
    $PC wakeups hw:Loopback,1,0 8000 $p 10
done
GUEST
"$root/tests/qemu/run-guest.sh" --timeout 300 "${TMPDIR:-/tmp}/snd-voip-bench.sh" | grep -a "wakeups,"
