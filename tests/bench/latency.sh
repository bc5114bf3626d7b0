#!/usr/bin/env bash
# make bench, latency: the round trip an application on the card hears,
# measured in one boot of the production kernel under qemu TCG: pcmcheck
# plays 50 ms chirps into hw:VoIP,0,0 and records hw:VoIP,0,0 (linked
# streams, so the lag by cross-correlation is the round trip whatever its
# own buffering); voipbridge (defaults: [audio] period_ms 10, buffer_ms 20,
# 20 ms packets, 40 ms jitter target) carries them to a SIPp UAS on the
# guest's loopback that sends every RTP packet straight back. The round
# trip is the out leg (card -> RTP) plus the in leg (RTP -> card) with no
# network: voipbridge's status beside it names the device and jitter-buffer
# delays of each leg. rtpwire.py splits it at the wire; baresip on
# snd-aloop is measured the same way in the same boot. Environment:
# BENCH_LATENCY_OUT (keep the guest's files there), BENCH_LATENCY_LOG
# (voipbridge's RUST_LOG), BENCH_LATENCY_BARESIP=0 (leave baresip out),
# BENCH_LATENCY_SECONDS (each call, default 15). Exit status: the call and
# the measurement worked.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
export SND_VOIP_KERNEL=${SND_VOIP_KERNEL:-prod}
kdir=$("$root/scripts/kernel.sh" --print-kdir)
if grep -q "^CONFIG_KASAN=y" "$kdir/.config"; then echo "bench: latency runs on the production kernel (SND_VOIP_KERNEL=prod)" >&2; exit 2; fi
command -v sipp >/dev/null || { echo "bench: sipp not installed (make setup)"; exit 1; }
echo "== latency: round trip hw:VoIP,0,0 -> voipbridge -> RTP -> echo -> voipbridge -> hw:VoIP,0,0 (qemu TCG, production kernel $(cat "$kdir/include/config/kernel.release"), host load $(cut -d' ' -f1-3 /proc/loadavg))"
log=$(mktemp)
trap 'rm -f "$log"' EXIT
rc=0
"$root/tests/qemu/run-guest.sh" --timeout $((270 + 2 * ${BENCH_LATENCY_SECONDS:-15})) ${BENCH_LATENCY_OUT:+--out "$BENCH_LATENCY_OUT"} "$root/tests/bench/guest-latency.sh" "${BENCH_LATENCY_LOG:-info}" "${BENCH_LATENCY_BARESIP:-1}" "${BENCH_LATENCY_SECONDS:-15}" >"$log" 2>&1 || rc=$?
tr -d '\r' <"$log" | grep -a "^latency-" | sed 's/^latency-pc: //; s/^latency-//'
echo "issue 16's targets with these settings (period 10 ms, ptime 20 ms, jitter target 40 ms): out <= 35 ms, in <= 55 ms, so a round trip <= 90 ms with an on-time engine and no network; the in leg adds the playback fill above while it exceeds buffer_ms"
[ "$rc" = 0 ] || { tail -n 30 "$log"; echo "bench: latency failed (exit $rc)"; }
exit "$rc"
