#!/usr/bin/env bash
# Offerless INVITE (RFC 3264 5) against SIPp scenarios (tests/lib/sipp/):
#  - an INVITE without SDP: voipbridge's 200 carries its offer (PCMU, PCMA),
#    SIPp's ACK answers PCMA only; voipbridge must then run the call on PCMA
#    (status shows it) and hear its own 1 kHz echoed by SIPp; SIPp's BYE ends it;
#  - the same with an ACK without SDP: voipbridge hangs up with a BYE
#    carrying "Reason: SIP;cause=488", SIPp counts the call successful.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
command -v sipp >/dev/null || { echo "FAIL: sipp not installed (make setup)"; exit 1; }
. "$root/tests/lib/host.bash"
scen=$root/tests/lib/sipp

cat >"$dir/vb.toml" <<CFG
[account]
uri = "sip:bridge@127.0.0.1:5570"
[sip]
listen = "127.0.0.1:5570"
t1_ms = 100
[media]
rtp_ports = "41900-41910"
[audio]
capture = "tone:1000"
playback = "wav:$dir/heard.wav"
[call]
allow = ["sipp@127.0.0.1"]
[control]
socket = "$dir/vb.sock"
CFG
vb_start vb

successful_calls() { sipp_stat "$1" 'SuccessfulCall(C)'; }
uac() { # NAME SCENARIO
    (cd "$dir" && timeout 40 sipp 127.0.0.1:5570 -sf "$scen/$2" -s bridge -i 127.0.0.1 -p 5571 -mp 41950 -rtp_echo \
        -m 1 -nostdin -trace_stat -stf "$1.csv" -fd 1 -trace_err -error_file "$1.err" -timeout 30 -timeout_error >"$1.out" 2>&1)
}

uac answer offerless_uac.xml & sp=$!
codec=""
for _ in $(seq 40); do
    codec=$("$VB" status --config "$dir/vb.toml" | sed -n 's/^call .*\[active\].* codec \([A-Z0-9-]*\) .*/\1/p')
    [ -n "$codec" ] && [ "$codec" != - ] && break
    sleep 0.1
done
if wait "$sp"; then rc=0; else rc=$?; fi
if [ "$rc" = 0 ] && [ "$(successful_calls "$dir/answer.csv")" = 1 ]; then pass "SIPp offerless INVITE: 200 carried an offer with PCMU and PCMA, call completed"; else fail "offerless INVITE: sipp exit $rc: $(tail -n 5 "$dir/answer.err" "$dir/answer.out" 2>/dev/null)"; fi
if [ "$codec" = PCMA ]; then pass "the answer in the ACK chose the codec (PCMA, though PCMU was offered first)"; else fail "codec during the call: '$codec'"; fi
media_stopped "$dir/vb.log" 1 || fail "media not stopped 10 s after the call"
if "$AT" analyze --wav "$dir/heard.wav" --freq 1000 --min-seconds 1 --min-dbfs -8 --window 0.2 >"$dir/a.txt"; then pass "media ran on the ACK's answer: voipbridge heard its 1 kHz echoed by SIPp"; else fail "echo: $(cat "$dir/a.txt")"; fi

if uac noanswer offerless_no_answer_uac.xml; then rc=0; else rc=$?; fi
if [ "$rc" = 0 ] && [ "$(successful_calls "$dir/noanswer.csv")" = 1 ]; then pass "ACK without an answer: voipbridge hung up with BYE, Reason: SIP;cause=488"; else fail "ACK without answer: sipp exit $rc: $(tail -n 5 "$dir/noanswer.err" "$dir/noanswer.out" 2>/dev/null)"; fi
for _ in $(seq 20); do "$VB" status --config "$dir/vb.toml" >"$dir/st.txt"; grep -q "no calls" "$dir/st.txt" && break; sleep 0.1; done
if grep -q "no calls" "$dir/st.txt"; then pass "no call left behind"; else fail "calls left: $(cat "$dir/st.txt")"; fi

echo "$passed passed, $failed failed"
[ "$failed" = 0 ] || { grep -v DEBUG "$dir/vb.log" | tail -n 20; exit 1; }
