#!/usr/bin/env bash
# Two voipbridge instances call each other on loopback with tone and WAV
# backends: a 1 kHz tone goes one way and 440 Hz the other; each recording
# must hold its tone (frequency, level, purity) for as long as the call
# carried audio (the time from 'active' to the hang-up). DTMF digits sent one way
# must arrive in order. Then hang-up, status and clean SIGTERM shutdown.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
. "$root/tests/lib/host.bash"

cat >"$dir/a.toml" <<CFG
[account]
uri = "sip:alice@127.0.0.1:5181"
[sip]
listen = "127.0.0.1:5181"
[media]
rtp_ports = "41000-41010"
codecs = ["PCMA", "PCMU"]
[audio]
capture = "tone:1000"
playback = "wav:$dir/a-heard.wav"
[control]
socket = "$dir/a.sock"
CFG
cat >"$dir/b.toml" <<CFG
[account]
uri = "sip:bob@127.0.0.1:5182"
[sip]
listen = "127.0.0.1:5182"
[media]
rtp_ports = "41020-41030"
[audio]
capture = "tone:440"
playback = "wav:$dir/b-heard.wav"
[call]
auto_answer = 200
allow = ["alice@127.0.0.1"]
[control]
socket = "$dir/b.sock"
CFG
"$VB" run --config "$dir/a.toml" 2>"$dir/a.log" & pids+=($!)
"$VB" run --config "$dir/b.toml" 2>"$dir/b.log" & pids+=($!)
for s in a b; do wait_until 10 test -S "$dir/$s.sock" || { echo "FAIL: no control socket $s.sock after 10 s"; exit 1; }; done
now() { date +%s.%N; }

"$VB" call sip:bob@127.0.0.1:5182 --config "$dir/a.toml"
for _ in $(seq 50); do "$VB" status --config "$dir/a.toml" | grep -q "\[active\]" && break; sleep 0.1; done
st=$("$VB" status --config "$dir/a.toml")
if echo "$st" | grep -q "\[active\].*codec PCMA"; then pass "call established, PCMA chosen by the caller's preference"; else fail "call not active with PCMA: $st"; fi
t_active=$(now)
# A reader that goes away before the answer is printed (`| grep -q`,
# `| head`, here `| true`, gone at once) ends the command quietly: exit 0,
# no panic on the closed pipe.
if "$VB" status --config "$dir/a.toml" 2>"$dir/pipe.err" | true && ! grep -q . "$dir/pipe.err"; then
    pass "status into a closed pipe: exit 0, nothing on stderr"
else
    fail "status into a closed pipe: $(head -n 3 "$dir/pipe.err")"
fi
sleep 3  # three seconds of call
"$VB" hangup --config "$dir/a.toml"
t_bye=$(now)
for _ in $(seq 50); do "$VB" status --config "$dir/b.toml" | grep -q "no calls" && break; sleep 0.1; done
if "$VB" status --config "$dir/b.toml" | grep -q "no calls"; then pass "BYE ended the call on both sides"; else fail "call still up at bob"; fi
media_stopped "$dir/a.log" 1 && media_stopped "$dir/b.log" 1 || fail "media not stopped 10 s after the BYE"
# Each side heard the other's tone for as long as the call carried audio:
# from 'active' (seen by polling every 0.1 s, so up to 0.1 s late; media
# starts with the 200/ACK, and bob's first frames wait in his jitter buffer
# for its 40 ms target) to the BYE (the recording ends when each side stops
# its media). Bounds: the measured active-to-hangup time T, minus 0.2 s,
# plus 0.4 s (measured: T + 0.02 .. T + 0.10 s on the 2-core host
# while kernels built beside it).
T=$(awk -v a="$t_active" -v b="$t_bye" 'BEGIN { printf "%.2f", b - a }')
lo=$(awk -v t="$T" 'BEGIN { printf "%.2f", t - 0.2 }') hi=$(awk -v t="$T" 'BEGIN { printf "%.2f", t + 0.4 }')
if $AT analyze --wav "$dir/b-heard.wav" --freq 1000 --min-dbfs -8 --min-seconds "$lo" --max-seconds "$hi" >"$dir/b.txt"; then pass "bob heard 1 kHz for the call's $T s ($lo..$hi): $(grep channel "$dir/b.txt")"; else fail "bob's recording (call $T s): $(cat "$dir/b.txt")"; fi
if $AT analyze --wav "$dir/a-heard.wav" --freq 440 --min-dbfs -8 --min-seconds "$lo" --max-seconds "$hi" >"$dir/a.txt"; then pass "alice heard 440 Hz for the call's $T s ($lo..$hi): $(grep channel "$dir/a.txt")"; else fail "alice's recording (call $T s): $(cat "$dir/a.txt")"; fi

# Second call: DTMF.
"$VB" call sip:bob@127.0.0.1:5182 --config "$dir/a.toml"
for _ in $(seq 50); do "$VB" status --config "$dir/a.toml" | grep -q "\[active\]" && break; sleep 0.1; done
"$VB" dtmf 159# --config "$dir/a.toml"
for _ in $(seq 50); do "$VB" status --json --config "$dir/b.toml" | grep -q '"dtmf_received":"159#"' && break; sleep 0.1; done
bst=$("$VB" status --json --config "$dir/b.toml")
if echo "$bst" | grep -q '"dtmf_received":"159#"'; then pass "DTMF 159# arrived in order (RFC 4733)"; else fail "DTMF: $bst"; fi
if "$VB" dtmf 12x --config "$dir/a.toml" 2>"$dir/err"; then fail "bad DTMF digit accepted"; else pass "bad DTMF digit refused: $(head -n 1 "$dir/err")"; fi

kill -TERM "${pids[@]}"
for p in "${pids[@]}"; do
    if wait "$p"; then pass "voipbridge $p exited 0 on SIGTERM"; else fail "voipbridge $p exit status $?"; fi
done
pids=()
[ ! -e "$dir/a.sock" ] && pass "control socket removed on exit" || fail "control socket left behind"
echo "$passed passed, $failed failed"
[ "$failed" = 0 ] || { tail -n 20 "$dir/a.log" "$dir/b.log"; exit 1; }
