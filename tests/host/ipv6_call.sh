#!/usr/bin/env bash
# Two voipbridge instances on IPv6 loopback ([::1]): SIP (Request-URI, Via and
# Contact with IPv6 references), SDP (c=IN IP6) and RTP all over ::1; each side
# must hear the other's tone; hang-up by BYE ends the call on both sides.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
. "$root/tests/lib/host.bash"
if ! python3 -c 'import socket; s = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM); s.bind(("::1", 0))' 2>/dev/null; then
    echo "FAIL: no IPv6 loopback on this machine"; exit 1
fi

mk() { # NAME PORT RTP TONE
    cat >"$dir/$1.toml" <<CFG
[account]
uri = "sip:$1@[::1]:$2"
[sip]
listen = "[::1]:$2"
[media]
rtp_ports = "$3-$(($3 + 10))"
[audio]
capture = "tone:$4"
playback = "wav:$dir/$1-heard.wav"
[call]
allow = ["alice@[::1]", "bob@[::1]"]
[control]
socket = "$dir/$1.sock"
CFG
    "$VB" run --config "$dir/$1.toml" 2>"$dir/$1.log" & pids+=($!)
}
mk alice 5681 41700 1000
mk bob 5682 41720 440
for _ in $(seq 50); do [ -S "$dir/alice.sock" ] && [ -S "$dir/bob.sock" ] && break; sleep 0.1; done
status() { "$VB" status --config "$dir/$1.toml" 2>&1 || true; }

"$VB" call "sip:bob@[::1]:5682" --config "$dir/alice.toml"
for _ in $(seq 50); do [[ "$(status alice)" == *"[active]"* ]] && break; sleep 0.1; done
if [[ "$(status alice)" == *"[active]"* ]] && [[ "$(status bob)" == *"[active]"* ]]; then pass "call over [::1] established"; else fail "IPv6 call: $(status alice)"; fi
sleep 3
"$VB" hangup --config "$dir/alice.toml"
for _ in $(seq 30); do [[ "$(status bob)" == *"no calls"* ]] && break; sleep 0.1; done
if [[ "$(status bob)" == *"no calls"* ]]; then pass "BYE over [::1] ended bob's call"; else fail "bob still in a call: $(status bob)"; fi
media_stopped "$dir/alice.log" 1 && media_stopped "$dir/bob.log" 1 || fail "media not stopped 10 s after the BYE"
if "$AT" analyze --wav "$dir/bob-heard.wav" --freq 1000 --min-seconds 2 --min-dbfs -8 --window 0.5 >"$dir/b.txt"; then pass "bob heard 1 kHz over IPv6"; else fail "$(cat "$dir/b.txt")"; fi
if "$AT" analyze --wav "$dir/alice-heard.wav" --freq 440 --min-seconds 2 --min-dbfs -8 --window 0.5 >"$dir/a.txt"; then pass "alice heard 440 Hz over IPv6"; else fail "$(cat "$dir/a.txt")"; fi
if grep -qiE "malformed|WARN" "$dir/alice.log" "$dir/bob.log"; then fail "warnings: $(grep -hiE 'malformed|WARN' "$dir/alice.log" "$dir/bob.log" | head -n 3)"; else pass "no malformed-message warnings on either side"; fi
echo "$passed passed, $failed failed"
[ "$failed" = 0 ] || exit 1
