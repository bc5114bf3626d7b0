#!/usr/bin/env bash
# make bench, CPU per call and memory on the host: voipbridge beside baresip
# (Debian's baresip-core, the peer a board user would pick), each the
# answering end of the same call on loopback: G.711 PCMU, 8 kHz, 20 ms
# packets, audio from the same 8 kHz WAV file and the call's audio recorded
# to a WAV file (no sound card: this measures the agents, not ALSA). The
# caller is a baresip in both runs. Per agent: CPU (user + system, all its
# threads, from /proc/PID/stat) while idle and during BENCH_CALL_SECONDS
# (20) of the established call, and its resident memory (VmRSS) idle and in
# the call. Run it in a network namespace of your own on a shared machine
# (make bench does). Prints numbers; exit 1 only when a call fails.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
command -v baresip >/dev/null || { echo "bench: baresip not installed (make setup)"; exit 1; }
. "$root/tests/lib/host.bash"
. "$root/tests/lib/baresip.sh"
T=${BENCH_CALL_SECONDS:-20}
IDLE=${BENCH_IDLE_SECONDS:-5}
HZ=$(getconf CLK_TCK)
# baresip ends a call when its aufile source reaches the end of the file
# (voipbridge loops it): the file outlasts the call.
"$AT" gen --wav --rate 8000 --freq 440 --seconds $((T + 40)) "$dir/tone.wav"

cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }
rss_kb() { awk '/^VmRSS:/ { print $2 }' "/proc/$1/status"; }
# measure PID SECONDS: CPU of PID over SECONDS, in % of one core
measure() {
    local a b
    a=$(cpu_ticks "$1"); sleep "$2"; b=$(cpu_ticks "$1")
    awk -v d=$((b - a)) -v s="$2" -v hz="$HZ" 'BEGIN { printf "%.2f", 100 * d / hz / s }'
}
# caller URI: a baresip that dials URI and hangs up after the call
caller() {
    baresip_config "$dir/caller" 5400 "$dir/tone.wav" "<sip:caller@127.0.0.1:5400>;regint=0;audio_codecs=PCMU" menu
    timeout $((T + 30)) baresip -f "$dir/caller" -e "/dial $1" -t $((T + 8)) </dev/null >"$dir/caller.log" 2>&1 &
    caller_pid=$!
    pids+=($caller_pid)
}
report() { # NAME PID IDLE_CPU IDLE_RSS
    local call_cpu call_rss
    call_cpu=$(measure "$2" "$T")
    call_rss=$(rss_kb "$2")
    printf "%-22s %10s %10s %12s %12s\n" "$1" "$3" "$call_cpu" "$4" "$call_rss"
    echo "$1 $3 $call_cpu $4 $call_rss" >>"$dir/results"
}

echo "== CPU per call and memory: voipbridge vs baresip (host, loopback, one call of ${T} s, PCMU 20 ms, WAV in and out)"
echo "host: $(nproc) CPUs ($(sed -n 's/^model name\s*: //p' /proc/cpuinfo | head -n 1)), load $(cut -d' ' -f1-3 /proc/loadavg); voipbridge: the tests' build (profile ${SND_VOIP_PROFILE:-ci}: optimised, debug assertions on), $(baresip -h 2>&1 | head -n 1 | tr -d '\n' || true)"
printf "%-22s %10s %10s %12s %12s\n" "agent (answers)" "idle CPU%" "call CPU%" "idle RSS kB" "call RSS kB"

# voipbridge answers.
cat >"$dir/vb.toml" <<CFG
[account]
uri = "sip:bridge@127.0.0.1:5401"
[sip]
listen = "127.0.0.1:5401"
[media]
rtp_ports = "41300-41310"
[audio]
capture = "wav:$dir/tone.wav"
playback = "wav:$dir/vb-heard.wav"
[call]
allow = ["caller@127.0.0.1"]
[control]
socket = "$dir/vb.sock"
CFG
vb_start vb
sleep 1
idle_cpu=$(measure "$pid_vb" "$IDLE"); idle_rss=$(rss_kb "$pid_vb")
caller "sip:bridge@127.0.0.1:5401"
wait_until 15 sh -c "'$VB' status --config '$dir/vb.toml' | grep -q '\[active\]'" || { echo "bench: voipbridge's call not active: $(tail -n 5 "$dir/caller.log")"; exit 1; }
sleep 1
report "voipbridge" "$pid_vb" "$idle_cpu" "$idle_rss"
"$VB" status --config "$dir/vb.toml" >"$dir/status.txt"
grep -q '\[active\]' "$dir/status.txt" || { echo "bench: voipbridge's call ended inside the window: $(cat "$dir/status.txt") $(tail -n 5 "$dir/caller.log")"; exit 1; }
grep -E "codec|rtp:|latency:|latency \(1 s mean\):|devices:" "$dir/status.txt" | sed 's/^/    voipbridge status: /'
wait "$caller_pid" 2>/dev/null || true
kill "$pid_vb" 2>/dev/null || true

# baresip answers (auto-answer), same call.
baresip_config "$dir/bs" 5402 "$dir/tone.wav" "<sip:carol@127.0.0.1:5402>;regint=0;answermode=auto;audio_codecs=PCMU"
baresip -f "$dir/bs" </dev/null >"$dir/bs.log" 2>&1 &
bs_pid=$!; pids+=($bs_pid)
wait_until 15 udp_listening 5402 || { echo "bench: baresip not listening on 5402"; exit 1; }
sleep 1
idle_cpu=$(measure "$bs_pid" "$IDLE"); idle_rss=$(rss_kb "$bs_pid")
caller "sip:carol@127.0.0.1:5402"
wait_log "established" "$dir/bs.log" 15 || { echo "bench: baresip's call not established: $(tail -n 5 "$dir/bs.log")"; exit 1; }
sleep 1
report "baresip" "$bs_pid" "$idle_cpu" "$idle_rss"
grep -qi "terminated\|closed" "$dir/bs.log" && { echo "bench: baresip's call ended inside the window: $(tail -n 5 "$dir/bs.log")"; exit 1; }
wait "$caller_pid" 2>/dev/null || true
kill "$bs_pid" 2>/dev/null || true
echo "(CPU from /proc/PID/stat at ${HZ} Hz: over ${T} s one tick is $(awk -v t="$T" -v hz="$HZ" 'BEGIN { printf "%.2f", 100 / hz / t }') % of a core; RSS includes shared libraries: baresip's modules and libre, voipbridge's tokio workers' stacks)"
