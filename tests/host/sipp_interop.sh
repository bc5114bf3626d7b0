#!/usr/bin/env bash
# voipbridge against SIPp, a third SIP implementation, on loopback:
#  - SIPp's built-in UAC places 6 calls, 2 at a time, to voipbridge
#    (2 substreams, auto-answer): INVITE / 200 / ACK / BYE, all must succeed;
#    SIPp echoes the RTP it gets, so voipbridge must hear its own 1 kHz back;
#  - the same with SIPp dropping 10 % of the messages it sends and receives
#    (-lost 10): retransmissions on both sides must still complete every call;
#  - voipbridge calls SIPp's built-in UAS, which answers; voipbridge hangs up
#    and SIPp counts one successful call (its BYE got a 200).
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
command -v sipp >/dev/null || { echo "FAIL: sipp not installed (make setup)"; exit 1; }
. "$root/tests/lib/host.bash"

cat >"$dir/vb.toml" <<CFG
[account]
uri = "sip:bridge@127.0.0.1:5481"
[sip]
listen = "127.0.0.1:5481"
t1_ms = 100
[media]
rtp_ports = "41400-41410"
[audio]
capture = "tone:1000"
playback = "wav:$dir/heard.wav"
substreams = 2
[call]
allow = ["sipp@127.0.0.1"]
[control]
socket = "$dir/vb.sock"
CFG
vb_start vb

# successful_calls STATSFILE: the last "SuccessfulCall(C)" value of a -trace_stat csv.
successful_calls() { sipp_stat "$1" 'SuccessfulCall(C)'; }
failed_calls() { sipp_stat "$1" 'FailedCall(C)'; }

uac() { # NAME EXTRA-ARGS...
    local name=$1; shift
    (cd "$dir" && timeout 90 sipp -sn uac 127.0.0.1:5481 -s bridge -i 127.0.0.1 -p 5482 -mp 41500 -rtp_echo \
        -m 6 -l 2 -r 4 -d 1500 -nostdin -trace_stat -stf "$name.csv" -fd 1 -trace_err -error_file "$name.err" \
        -timeout 80 -timeout_error "$@" >"$name.out" 2>&1) && rc=0 || rc=$?
    echo "$rc"
}
rc=$(uac plain)
ok=$(successful_calls "$dir/plain.csv") bad=$(failed_calls "$dir/plain.csv")
if [ "$rc" = 0 ] && [ "$ok" = 6 ] && [ "$bad" = 0 ]; then pass "SIPp UAC: 6 calls, 2 at a time, all successful"; else fail "SIPp UAC: exit $rc, $ok successful, $bad failed: $(tail -n 5 "$dir/plain.err" 2>/dev/null)"; fi
# (the last call's media thread closes the WAV once the call is gone)
no_calls() { "$VB" status --config "$dir/vb.toml" >"$dir/st.txt" && grep -q "no calls" "$dir/st.txt"; }
wait_until 10 no_calls || true
if "$AT" analyze --wav "$dir/heard.wav" --freq 1000 --min-seconds 1 --min-dbfs -8 --window 0.2 >"$dir/a.txt"; then pass "voipbridge heard its 1 kHz echoed by SIPp"; else fail "echo: $(cat "$dir/a.txt")"; fi

rc=$(uac lossy -lost 10)
ok=$(successful_calls "$dir/lossy.csv") bad=$(failed_calls "$dir/lossy.csv")
if [ "$rc" = 0 ] && [ "$ok" = 6 ] && [ "$bad" = 0 ]; then pass "SIPp UAC with 10 % message loss: all 6 calls completed by retransmission"; else fail "lossy UAC: exit $rc, $ok successful, $bad failed: $(tail -n 5 "$dir/lossy.err" 2>/dev/null)"; fi
# sipp has exited: every BYE was answered, so voipbridge must hold no call
# within its own teardown (one RTP/RTCP thread join): 2 s.
if wait_until 2 no_calls; then pass "no call left behind in voipbridge"; else fail "calls left: $(cat "$dir/st.txt")"; fi

(cd "$dir" && timeout 60 sipp -sn uas -i 127.0.0.1 -p 5483 -mp 41520 -rtp_echo -m 1 -nostdin \
    -trace_stat -stf uas.csv -fd 1 -timeout 50 -timeout_error >uas.out 2>&1) & uas=$!; pids+=($uas)
wait_until 10 udp_listening 5483 || fail "SIPp UAS not listening on 5483 after 10 s"
"$VB" call sip:sipp@127.0.0.1:5483 --config "$dir/vb.toml"
for _ in $(seq 50); do "$VB" status --config "$dir/vb.toml" >"$dir/st.txt"; grep -q "\[active\]" "$dir/st.txt" && break; sleep 0.1; done
if grep -q "\[active\]" "$dir/st.txt"; then pass "voipbridge -> SIPp UAS: call established"; else fail "call to SIPp UAS: $(cat "$dir/st.txt")"; fi
sleep 1  # one second of call
"$VB" hangup --config "$dir/vb.toml"
if wait "$uas"; then rc=0; else rc=$?; fi
ok=$(successful_calls "$dir/uas.csv")
if [ "$rc" = 0 ] && [ "$ok" = 1 ]; then pass "SIPp UAS: voipbridge's BYE ended the call cleanly"; else fail "SIPp UAS: exit $rc, $ok successful: $(tail -n 5 "$dir/uas.out")"; fi

echo "$passed passed, $failed failed"
[ "$failed" = 0 ] || { tail -n 30 "$dir/vb.log"; exit 1; }
