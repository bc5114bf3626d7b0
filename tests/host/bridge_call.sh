#!/usr/bin/env bash
# Two voipbridge instances call each other on loopback with tone and WAV
# backends: a 1 kHz tone goes one way and 440 Hz the other; each recording
# must hold its tone (frequency, level, length). DTMF digits sent one way
# must arrive in order. Then hang-up, status and clean SIGTERM shutdown.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
bin=${CARGO_TARGET_DIR:-$root/target}/debug
VB=$bin/voipbridge AT=$bin/audiotest
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
[control]
socket = "$dir/b.sock"
CFG
"$VB" run --config "$dir/a.toml" 2>"$dir/a.log" & pids+=($!)
"$VB" run --config "$dir/b.toml" 2>"$dir/b.log" & pids+=($!)
for s in a b; do for _ in $(seq 50); do [ -S "$dir/$s.sock" ] && break; sleep 0.1; done; done

"$VB" call sip:bob@127.0.0.1:5182 --config "$dir/a.toml"
for _ in $(seq 50); do "$VB" status --config "$dir/a.toml" | grep -q "\[active\]" && break; sleep 0.1; done
st=$("$VB" status --config "$dir/a.toml")
if echo "$st" | grep -q "\[active\].*codec PCMA"; then pass "call established, PCMA chosen by the caller's preference"; else fail "call not active with PCMA: $st"; fi
sleep 3
"$VB" hangup --config "$dir/a.toml"
for _ in $(seq 50); do "$VB" status --config "$dir/b.toml" | grep -q "no calls" && break; sleep 0.1; done
if "$VB" status --config "$dir/b.toml" | grep -q "no calls"; then pass "BYE ended the call on both sides"; else fail "call still up at bob"; fi
# b heard alice's 1 kHz and a heard bob's 440 Hz, about 3 s each.
if $AT analyze --wav "$dir/b-heard.wav" --freq 1000 --min-dbfs -8 >"$dir/b.txt"; then pass "bob heard 1 kHz: $(grep channel "$dir/b.txt")"; else fail "bob's recording: $(cat "$dir/b.txt")"; fi
if $AT analyze --wav "$dir/a-heard.wav" --freq 440 --min-dbfs -8 >"$dir/a.txt"; then pass "alice heard 440 Hz: $(grep channel "$dir/a.txt")"; else fail "alice's recording: $(cat "$dir/a.txt")"; fi

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
