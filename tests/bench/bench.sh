#!/usr/bin/env bash
# make bench: every performance figure of issue 16 in one run, each part
# printed as it completes (README "Performance" explains them):
#   1. footprint: stripped arm64 voipbridge (release-embedded), crate count,
#      baresip's binary and modules beside it (tests/bench/footprint.sh)
#   2. CPU per call and memory on the host: voipbridge beside baresip
#      answering the same call (tests/bench/calls.sh)
#   2b. 1 and 8 calls on the card in qemu beside baresip on snd-aloop (calls-guest.sh)
#   3. the media engine: CPU per call-second for 1, 8 and 100 file-backed
#      calls on one host core, allocations per packet, resampler, virtual-
#      time latency (cargo bench --bench media_calls; BENCH_MEDIA=0 skips it)
#   4. the card: period wake-ups, drift, kernel CPU and timer events of
#      snd-voip beside snd-aloop and snd-dummy in one boot of the production
#      kernel under qemu TCG (tests/bench/kernel.sh)
#   5. latency: the round trip an application on the card hears through
#      voipbridge and an RTP echo, chirps and cross-correlation, with the
#      bridge's own account of each leg (tests/bench/latency.sh)
# Benchmarks print numbers; nothing here is a timed pass/fail test. The run
# fails when a part could not produce its figures. BENCH_NETNS=NAME runs the
# host calls in that network namespace (created if missing; on a shared
# machine, so ports 5400-5402 collide with nobody). BENCH_PARTS="footprint
# calls guest-calls media kernel latency" (the default: all) picks parts.
set -uo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
rc=0 t0=$SECONDS
parts=" ${BENCH_PARTS:-footprint calls guest-calls media kernel latency} "
[ "${BENCH_MEDIA:-1}" != 0 ] || parts=${parts/ media / }
part() { # NAME CMD...
    local name=$1 s=$SECONDS; shift
    case "$parts" in *" $name "*) ;; *) return 0 ;; esac
    if "$@"; then echo "-- $name: $((SECONDS - s)) s"; else echo "-- $name: FAILED (exit $?) after $((SECONDS - s)) s"; rc=1; fi
    echo
}
echo "make bench: $(date -u '+%Y-%m-%d %H:%M UTC'), $(git -C "$root" describe --always --dirty 2>/dev/null), host $(nproc) CPUs, load $(cut -d' ' -f1-3 /proc/loadavg)"
echo
part footprint "$root/tests/bench/footprint.sh"
if [ -n "${BENCH_NETNS:-}" ] && [[ "$parts" == *" calls "* ]]; then
    ip netns add "$BENCH_NETNS" 2>/dev/null || true
    ip netns exec "$BENCH_NETNS" ip link set lo up
    part calls ip netns exec "$BENCH_NETNS" "$root/tests/bench/calls.sh"
else
    part calls "$root/tests/bench/calls.sh"
fi
part guest-calls "$root/tests/bench/calls-guest.sh"
if [[ "$parts" == *" media "* ]]; then
    echo "== media engine on the host (cargo bench -p voipbridge --bench media_calls, release profile)"
    part media bash -c "set -o pipefail; cd '$root' && ${CARGO:-cargo} bench -q --locked -p voipbridge --bench media_calls 2>&1 | grep -v '^\s*Compiling\|^\s*Finished\|^\s*Running'"
fi
part kernel "$root/tests/bench/kernel.sh"
part latency "$root/tests/bench/latency.sh"
echo "make bench: $((SECONDS - t0)) s, $([ "$rc" = 0 ] && echo "all parts printed" || echo "a part FAILED")"
exit "$rc"
