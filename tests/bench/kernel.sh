#!/usr/bin/env bash
# make bench, kernel part (also `make bench-kmod`): period wake-ups of one
# capture stream on snd-voip (hrtimer, soft mode, absolute expiries), on the
# kernel's snd-aloop (jiffies timer, its default timer_source) and snd-dummy
# (hrtimer, soft mode), side by side in ONE boot of the production kernel (no
# KASAN, lockdep or kmemleak; it refuses a kernel with them), at 8 kHz/20 ms
# and 48 kHz/10 ms. Per stream: wake-up jitter (|read-return interval -
# period|), drift of the stream against CLOCK_MONOTONIC, the kernel's CPU
# (system, softirq, hardirq; all CPUs, % of one core) and softirqs (HRTIMER,
# TIMER) and local timer interrupts per period, net of an idle window
# measured the same way. Prints numbers, asserts nothing about them (exit
# status: the boot and the tools worked).
#
# --trace: boot the production kernel built with
# board-configs/common/trace.config as well (exact irq/softirq time,
# timer and softirq tracepoints; `make bench-kmod-trace` builds it) and
# time every hrtimer callback and softirq run in one more 5 s window per
# module and configuration.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
export SND_VOIP_KERNEL=${SND_VOIP_KERNEL:-prod}
trace=
if [ "${1:-}" = --trace ]; then
    trace=trace
    export EXTRA_FRAGMENTS="${EXTRA_FRAGMENTS:+$EXTRA_FRAGMENTS }$root/board-configs/common/trace.config"
fi
. "$root/tests/bench/prod-kernel.sh"
bench_prod_kernel "benchmarks run" "${trace:+ with EXTRA_FRAGMENTS=board-configs/common/trace.config (make bench-kmod-trace does)}"
cc=$(sed -n 's/^CONFIG_CC_VERSION_TEXT="\(.*\)"/\1/p' "$kdir/.config")
echo "== kernel: snd-voip vs snd-aloop vs snd-dummy, one boot"
echo "kernel $(cat "$kdir/include/config/kernel.release") ($(basename "$kdir")): production config, no KASAN/lockdep/kmemleak; $cc; HZ=$(sed -n 's/^CONFIG_HZ=//p' "$kdir/.config"), irq/softirq time accounting: $acct"
echo "qemu TCG, 2 vCPUs, on $(nproc) host CPUs ($(sed -n 's/^model name\s*: //p' /proc/cpuinfo | head -n 1)), host load $(cut -d' ' -f1-3 /proc/loadavg)"
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
"$root/tests/qemu/run-guest.sh" --timeout 600 --out "$out" "$root/tests/bench/guest-kernel.sh" $trace >"$out/console.log" 2>&1 || {
    rc=$?; tail -n 30 "$out/console.log"; echo "bench: the guest failed (exit $rc)" >&2; exit "$rc"; }
[ -s "$out/results" ] || { tail -n 30 "$out/console.log"; echo "bench: the guest wrote no figures" >&2; exit 1; }
[ -z "${BENCH_KEEP:-}" ] || cp "$out/results" "$BENCH_KEEP"
grep -a "^bench-kernel:" "$out/results"
awk '
function kv(line,   n, i, a, f) {
    delete v; n = split(line, f, " ")
    for (i = 1; i <= n; i++) if (split(f[i], a, "=") == 2) v[a[1]] = a[2]
}
function mod(d) { return d ~ /VoIP/ ? "snd-voip" : d ~ /Loopback/ ? "snd-aloop" : d ~ /Dummy/ ? "snd-dummy" : d }
/^wakeups,/ {
    kv($0)
    if (v["dev"] == "idle") {
        nidle++
        # per second, to subtract from any configuration
        ih += v["hrtimer_per_period"] * v["rate"] / v["period"]
        it += v["timer_per_period"] * v["rate"] / v["period"]
        il += v["loc_per_period"] * v["rate"] / v["period"]
        isys += v["sys_pct"]; isirq += v["softirq_pct"]
        next
    }
    rows[++n] = $0; next
}
/^failed,/ { print "bench: " $0; bad++; next }
/^phase,/ { kv($0); k = sprintf("%-9s %5d/%-3d", mod(v["dev"]), v["rate"], v["period"]); ph[k] = ph[k] sprintf(" %5.1f", v["softirq_pct"]); phj[k] = phj[k] sprintf(" %d", v["p50_us"]); next }
END {
    if (nidle == 0 || n == 0) { print "bench: no figures from the guest"; exit 1 }
    ih /= nidle; it /= nidle; il /= nidle; isys /= nidle; isirq /= nidle
    printf "idle baseline (mean of %d windows): sys %.2f %%, softirq %.2f %% of one core; %.1f HRTIMER, %.1f TIMER softirqs and %.1f timer interrupts per second\n", nidle, isys, isirq, ih, it, il
    printf "%-9s %-18s %5s %23s %7s %8s %16s %8s %8s %8s\n", "module", "rate/period", "round", "jitter p50/p99/max us", "drift", "sys %", "softirq %", "HRTIMER", "TIMER", "timer"
    printf "%-9s %-18s %5s %23s %7s %8s %16s %8s %8s %8s\n", "", "", "", "", "ppm", "", "(busiest CPU)", "/period", "/period", "irq/per"
    for (i = 1; i <= n; i++) {
        kv(rows[i]); pps = v["rate"] / v["period"]
        printf "%-9s %5d/%-3d %-8s %5s %23s %7.1f %8.2f %8.2f (%5.2f) %8.2f %8.2f %8.2f\n", mod(v["dev"]), v["rate"], v["period"], v["period"] * 1000 / v["rate"] "ms", v["round"], \
            sprintf("%d/%d/%d", v["p50_us"], v["p99_us"], v["max_us"]), v["drift_ppm"], v["sys_pct"], v["softirq_pct"], v["softirq_max_cpu_pct"], \
            (v["hrtimer_per_period"] * pps - ih) / pps, (v["timer_per_period"] * pps - it) / pps, (v["loc_per_period"] * pps - il) / pps
    }
    print "softirq % (all CPUs, " acct ") of 3 s windows, each a new stream start:"
    for (k in ph) printf "  %s %s   (median wake-up jitter, us:%s)\n", k, ph[k], phj[k]
    if (bad) exit 1
}' acct="$acct" "$out/results"
[ -n "$trace" ] || exit 0
# The traced windows: every hrtimer callback timed from its
# hrtimer_expire_entry to its exit, every softirq run from entry to exit
# (per CPU; tracing adds its own cost to each event, the same for every
# module).
echo "each hrtimer callback and softirq run, traced (one 5 s window each; the tracepoints add their own cost, alike for all three):"
printf "%-9s %-14s %-34s %8s %9s %9s %8s | %-24s %-24s\n" module rate/period "top hrtimer callbacks" calls/s "mean us" "max us" "% core" "HRTIMER softirq" "TIMER softirq"
printf "%-9s %-14s %-34s %8s %9s %9s %8s | %-24s %-24s\n" "" "" "" "" "" "" "" "% core, runs/s, max us" "% core, runs/s, max us"
grep -a "^traced," "$out/results" | while IFS= read -r line; do
    n=$(echo "$line" | sed -n 's/.*trace=\([0-9]*\).*/\1/p')
    dev=$(echo "$line" | sed -n 's/.* dev=\([^ ]*\).*/\1/p')
    rp=$(echo "$line" | sed -n 's/.* rate=\([0-9]*\).* period=\([0-9]*\).*/\1\/\2/p')
    [ -s "$out/trace-$n.txt" ] || { echo "bench: trace $n is empty"; continue; }
    awk -v dev="$dev" -v rp="$rp" '
    function mod(d) { return d ~ /VoIP/ ? "snd-voip" : d ~ /Loopback/ ? "snd-aloop" : d ~ /Dummy/ ? "snd-dummy" : d }
    /^ *#/ { next }
    {
        cpu = ""; ts = ""
        for (i = 1; i <= NF; i++) {
            if (cpu == "" && $i ~ /^\[[0-9]+\]$/) cpu = substr($i, 2, length($i) - 2)
            if (ts == "" && $i ~ /^[0-9]+\.[0-9]+:$/) { ts = substr($i, 1, length($i) - 1) + 0; ev = $(i + 1) }
        }
        if (cpu == "" || ts == "") next
        if (first == "") first = ts
        last = ts
        nl++; L[nl] = $0; T[nl] = ts
        if (ev == "hrtimer_expire_entry:") {
            fn = "?"; for (i = 1; i <= NF; i++) if ($i ~ /^function=/) fn = substr($i, 10)
            hs[cpu] = ts; hf[cpu] = fn; hi[cpu] = nl
        } else if (ev == "hrtimer_expire_exit:" && (cpu in hs)) {
            d = (ts - hs[cpu]) * 1e6; f = hf[cpu]; delete hs[cpu]
            hc[f]++; ht[f] += d; if (d > hm[f]) hm[f] = d
            # the card modules own callbacks: keep the slowest two
            if (f ~ /snd_vo|dummy_hrtimer/) {
                mc++; mt += d
                if (d > s1) { s2 = s1; s2a = s1a; s2b = s1b; s1 = d; s1a = hi[cpu]; s1b = nl }
                else if (d > s2) { s2 = d; s2a = hi[cpu]; s2b = nl }
            }
        } else if (ev == "softirq_entry:" || ev == "softirq_exit:") {
            v = ""; for (i = 1; i <= NF; i++) if ($i ~ /^vec=/) v = substr($i, 5) + 0
            if (ev == "softirq_entry:") ss[cpu, v] = ts
            else if ((cpu, v) in ss) {
                d = (ts - ss[cpu, v]) * 1e6; delete ss[cpu, v]
                sc[v]++; st[v] += d; if (d > sm[v]) sm[v] = d
            }
        }
    }
    END {
        span = last - first; if (span <= 0) span = 1
        k = 0
        for (f in hc) { keys[++k] = f }
        # top three by total time
        for (i = 1; i <= k; i++) for (j = i + 1; j <= k; j++) if (ht[keys[j]] > ht[keys[i]]) { t = keys[i]; keys[i] = keys[j]; keys[j] = t }
        for (i = 1; i <= 3 && i <= k; i++) {
            f = keys[i]; name = f; if (length(name) > 34) name = substr(name, 1, 31) "..."
            soft = i == 1 ? sprintf("%5.2f %6.0f %9.0f", st[8] / span / 1e4, sc[8] / span, sm[8]) : ""
            tim = i == 1 ? sprintf("%5.2f %6.0f %9.0f", st[1] / span / 1e4, sc[1] / span, sm[1]) : ""
            printf "%-9s %-14s %-34s %8.1f %9.1f %9.0f %8.3f | %-24s %-24s\n", i == 1 ? mod(dev) : "", i == 1 ? rp : "", name, hc[f] / span, ht[f] / hc[f], hm[f], ht[f] / span / 1e4, soft, tim
        }
        # A window whose module callbacks average over 200 us: what the
        # slowest two did, event by event (all CPUs, us from its entry).
        if (mc && mt / mc > 200) {
            for (k = 1; k <= 2; k++) {
                a = k == 1 ? s1a : s2a; b = k == 1 ? s1b : s2b
                if (!a) continue
                printf "    slow callback %d (%.0f us):\n", k, (T[b] - T[a]) * 1e6
                for (j = a; j <= b && j < a + 30; j++) {
                    line = L[j]; sub(/^ +/, "", line); gsub(/ +/, " ", line)
                    printf "      %+8.1f  %s\n", (T[j] - T[a]) * 1e6, substr(line, 1, 150)
                }
                if (b >= a + 30) printf "      ... %d more events\n", b - a - 29
            }
        }
    }' "$out/trace-$n.txt"
done
