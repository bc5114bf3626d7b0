#!/usr/bin/env bash
# make bench, guest-calls (also `make bench-calls-guest`): CPU per call with
# the card, in ONE boot of the production kernel under qemu TCG (2 vCPUs):
# voipbridge on snd-voip carrying 1, then 8 simultaneous calls, beside
# Debian's baresip (g711 + alsa) carrying the same calls on snd-aloop
# (pcm_substreams=8 both; both agents up throughout, the rounds alternating
# voipbridge 1, baresip 1, voipbridge 8, baresip 8). The far end is a SIPp
# UAC on the guest's loopback that calls the agent N times at once (PCMU,
# 20 ms packets) and echoes its RTP (-rtp_echo); an aplay per call plays a
# tone into the application end of the call's cable (hw:VoIP,0,n /
# hw:Loopback,0,n), the agent sits on the other end. Per round, over a
# steady window of BENCH_CALLS_SECONDS (15) after set-up: the agent's CPU
# (utime + stime of all threads, /proc/PID/stat: the scheduler's runtime,
# split into user and system by the tick), in % of one vCPU and per call,
# with SIPp's and the aplays' beside it; the kernel's system + softirq
# time (/proc/stat, all vCPUs, tick-sampled, net of the quieter of two idle
# windows with both modules loaded); the agent's VmRSS; and whether every
# call was up for the whole window (the agent's own count, SIPp's counters,
# the substreams running). A round whose calls failed prints FAILED, never a figure.
# BENCH_CALLS_N ("1 8") picks the call counts, BENCH_CALLS_PERIOD_MS sets
# voipbridge's [audio] period_ms, BENCH_KEEP=DIR keeps the guest's files;
# EXTRA_FRAGMENTS=$PWD/board-configs/common/trace.config boots the
# production kernel `make bench-kmod-trace` builds (exact irq/softirq time).
# tests/bench/guest-calls.sh is the guest half. Exit status: the boot, the
# calls and the measurement worked (no performance thresholds).
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
export SND_VOIP_KERNEL=${SND_VOIP_KERNEL:-prod}
W=${BENCH_CALLS_SECONDS:-15}
NS=${BENCH_CALLS_N:-1 8}
# voipbridge's [audio] period_ms (default: its own default, 10 ms; baresip's
# alsa module uses the packet time, 20 ms), with buffer_ms two periods
PERIOD=${BENCH_CALLS_PERIOD_MS:-}
. "$root/tests/bench/prod-kernel.sh"
bench_prod_kernel "guest-calls runs"
for t in sipp baresip aplay; do
    command -v "$t" >/dev/null || { echo "bench: $t not installed (make setup)"; exit 1; }
done
[ -f /usr/lib/baresip/modules/alsa.so ] || { echo "bench: baresip's alsa module is missing (/usr/lib/baresip/modules/alsa.so)"; exit 1; }
echo "== CPU per call with the card in the guest: voipbridge on snd-voip vs baresip on snd-aloop, 1 and 8 calls, one boot"
echo "kernel $(cat "$kdir/include/config/kernel.release") ($(basename "$kdir")): production config, HZ=$(sed -n 's/^CONFIG_HZ=//p' "$kdir/.config"), CPU time accounting: $acct"
echo "voipbridge: the tests' build (profile ${SND_VOIP_PROFILE:-ci}), [audio] period_ms ${PERIOD:-10 (its default)}; baresip's alsa module: period = packet time (20 ms)"
echo "qemu TCG, 2 vCPUs, on $(nproc) host CPUs ($(sed -n 's/^model name\s*: //p' /proc/cpuinfo | head -n 1)), host load at start $(cut -d' ' -f1-3 /proc/loadavg)"
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
t0=$SECONDS
rc=0
"$root/tests/qemu/run-guest.sh" --timeout 400 --out "$out" "$root/tests/bench/guest-calls.sh" "$W" "$NS" "$PERIOD" >"$out/console.log" 2>&1 || rc=$?
echo "host load at end $(cut -d' ' -f1-3 /proc/loadavg); the boot took $((SECONDS - t0)) s"
[ -z "${BENCH_KEEP:-}" ] || cp -r "$out" "$BENCH_KEEP"
if [ ! -s "$out/results" ]; then
    tr -d '\r' <"$out/console.log" | tail -n 30
    echo "bench: the guest wrote no figures (exit $rc)"
    exit 1
fi
grep -a "^guest " "$out/results" | sed 's/^guest /guest: /'
awk -v ns="$NS" '
function kv(line,   n, i, a, f) {
    delete v; n = split(line, f, " ")
    for (i = 1; i <= n; i++) if (split(f[i], a, "=") == 2) v[a[1]] = a[2]
}
function name(a) { return a == "voipbridge" ? "voipbridge / snd-voip" : a == "baresip" ? "baresip / snd-aloop" : a }
# The idle baseline: the quieter of the idle windows (what disturbs an idle
# TCG guest, rcu_sched bursts when a vCPU stalled on the host, only adds).
/^idle / {
    kv($0); idles = idles sprintf(" %.2f+%.2f", v["sys"], v["softirq"])
    if (!nidle++ || v["sys"] + v["softirq"] < isys + isirq) { isys = v["sys"]; isirq = v["softirq"] }
    next
}
/^round / { kv($0); k = v["agent"] " " v["n"]; row[k] = $0; next }
/^fail / {
    kv($0); bad++
    if (v["n"] != "") { k = v["agent"] " " v["n"]; failed[k] = failed[k] " " $0 }
    else for (i = split(ns, N, " "); i > 0; i--) failed[v["agent"] " " N[i]] = failed[v["agent"] " " N[i]] " " $0
    next
}
/^detail / { details[++nd] = $0; next }
END {
    if (!nidle) { print "bench: no idle baseline from the guest"; exit 1 }
    printf "idle (5 s before and after the rounds, both modules loaded, nothing running), sys+softirq %% of one vCPU:%s; the quieter one, sys %.2f + softirq %.2f %%, is subtracted below\n", idles, isys, isirq
    printf "%-22s %5s %10s %9s %14s %16s %7s %-8s\n", "agent / card", "calls", "agent CPU%", "per call", "kernel sys+si%", "(sys / softirq)", "RSS MB", "calls up"
    nn = split(ns, N, " ")
    split("voipbridge baresip", A, " ")
    for (a = 1; a <= 2; a++) for (i = 1; i <= nn; i++) {
        k = A[a] " " N[i]
        if (!(k in row) || (k in failed)) {
            printf "%-22s %5d %10s %9s %14s %16s %7s %-8s\n", name(A[a]), N[i], "FAILED", "-", "-", "-", "-", "FAILED"
            continue
        }
        kv(row[k])
        ks = v["sys"] + v["softirq"] - isys - isirq
        printf "%-22s %5d %10.2f %9.2f %14.2f %16s %7.1f %-8s\n", name(A[a]), v["n"], v["agent_cpu"], v["agent_cpu"] / v["n"], ks,
            sprintf("(%.2f / %.2f)", v["sys"] - isys, v["softirq"] - isirq), v["rss_kb"] / 1024, v["up_end"] "/" v["n"]
    }
    print "per round (% of one vCPU): the agent user/sys split; the far end (SIPp) and the aplays; all vCPUs busy as the tick sampled it (/proc/stat) beside the three measured processes (their scheduler runtime); UDP datagrams received per second; set-up time; checks"
    for (a = 1; a <= 2; a++) for (i = 1; i <= nn; i++) {
        k = A[a] " " N[i]
        if (k in row) {
            kv(row[k])
            printf "  %-10s n=%d: window %.2f s; agent user %.2f sys %.2f; SIPp %.2f; aplays %.2f; busy %.2f vs processes %.2f; UDP in %.0f/s (%.1f per call); set-up %s s (calls %s, aplays %s); %s %s; hardirq %.2f; SIPp current %s failed %s; substreams running: agent capture %s playback %s, application %s\n",
                A[a], v["n"], v["elapsed"], v["user"], v["agentsys"], v["sipp"], v["app"], v["busy"], v["agent_cpu"] + v["sipp"] + v["app"], v["udp_per_s"], v["udp_per_s"] / v["n"], v["setup_s"], v["calls_s"], v["app_s"], (A[a] == "voipbridge" ? "xruns" : "alsa warnings"), v["xruns"], v["irq"], v["sipp_current"], v["sipp_failed"], v["subs_agent_capture"], v["subs_agent_playback"], v["subs_app"]
        }
        if (k in failed) print "  FAILED" failed[k]
    }
    for (i = 1; i <= nd; i++) { d = details[i]; sub(/^detail /, "", d); print "  " d }
    if (bad) exit 1
}' "$out/results" || rc=1
if [ "$rc" != 0 ]; then
    tr -d '\r' <"$out/console.log" | grep -a "calls-guest:\|run-guest:" | tail -n 20
    tr -d '\r' <"$out/console.log" | tail -n 15
    echo "bench: guest-calls failed (exit $rc)"
fi
exit "$rc"
