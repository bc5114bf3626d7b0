#!/usr/bin/env bash
# voipbridge's RFC 3261 layers (issue 13) against SIPp scenarios
# (tests/lib/sipp/) and a raw UDP peer, on loopback, t1_ms = 100:
#  - a callee that rings 10 s (> 64*T1) then answers: voipbridge stays
#    ringing, then ACKs, goes active and hears its tone echoed;
#  - hang-up before any provisional response: no CANCEL until the 180, then
#    CANCEL, 487 ACKed;
#  - a 200 crossing the CANCEL: ACK and BYE;
#  - a challenged BYE: sent again with Authorization;
#  - re-INVITE glare on both sides: voipbridge answers the peer's re-INVITE
#    491, retries its own 2.1-4 s after the peer's 491 (timed on SIPp's trace);
#  - an offer with video, audio and SRTP audio: three m-lines back in order;
#  - a 486 retransmitted three times: re-ACKed each time on the INVITE's branch
#    (a raw UDP peer: SIPp takes an ACK identical to the one before for a
#    retransmission and resends its last message instead of going on);
#  - an unanswered call: 480 at the ring timeout; an INVITE with Expires: 487.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
bin=${CARGO_TARGET_DIR:-$root/target}/debug
VB=$bin/voipbridge AT=$bin/audiotest
for p in sipp python3; do command -v $p >/dev/null || { echo "FAIL: $p not installed (make setup)"; exit 1; }; done
. "$root/tests/lib/host.bash"
scen=$root/tests/lib/sipp

mk() { # NAME PORT RTPBASE EXTRA-CALL-KEYS
    cat >"$dir/$1.toml" <<CFG
[account]
uri = "sip:sess@127.0.0.1:$2"
[sip]
listen = "127.0.0.1:$2"
t1_ms = 100
[media]
rtp_ports = "$3-$(($3 + 10))"
[audio]
capture = "tone:1000"
playback = "wav:$dir/$1-heard.wav"
[call]
allow = ["sipp@127.0.0.1", "peer@127.0.0.1"]
$4
[control]
socket = "$dir/$1.sock"
CFG
}
mk vb 5581 41600 ""
mk ring 5591 41640 $'auto_answer = false\nring_timeout_s = 3'
vb_start vb
vb_start ring
call_line() { local out; out=$("$VB" status --config "$dir/$1.toml" 2>&1 || true); grep "^call " <<<"$out" || true; }
in_state() { [[ "$(call_line "$1")" == *"[$2]"* ]]; }
no_calls() { [ -z "$(call_line "$1")" ]; }
wait_state() { for _ in $(seq "${3:-50}"); do in_state "$1" "$2" && return 0; sleep 0.1; done; return 1; }
wait_idle() { for _ in $(seq 50); do no_calls "$1" && return 0; sleep 0.1; done; return 1; }

# uas NAME SCENARIO PORT [sipp args]: SIPp answering on PORT in the background (pid in uas_pid).
uas() {
    local name=$1 sc=$2 port=$3; shift 3
    (cd "$dir" && timeout 60 sipp -sf "$scen/$sc" -i 127.0.0.1 -p "$port" -mp $((port * 10 % 60000)) -rtp_echo -m 1 -nostdin \
        -trace_stat -stf "$name.csv" -trace_err -error_file "$name.err" -timeout 50 -timeout_error "$@" >"$name.out" 2>&1) &
    uas_pid=$!
    pids+=($uas_pid)
    sleep 0.5
}
# sipp_ok NAME PID: SIPp exited 0 with one successful call.
sipp_ok() { local rc=0; wait "$2" || rc=$?; [ "$rc" = 0 ] && [ "$(sipp_stat "$dir/$1.csv" 'SuccessfulCall(C)')" = 1 ]; }
sipp_why() { tail -n 4 "$dir/$1.err" "$dir/$1.out" 2>/dev/null | tr '\n' ' '; }

# 1. A long ring.

uas ring10 long_ring_uas.xml 5582
"$VB" call sip:sipp@127.0.0.1:5582 --config "$dir/vb.toml"
sleep 8
if in_state vb ringing; then pass "8 s into the ring (64*T1 = 6.4 s): still ringing"; else fail "8 s into the ring: $(call_line vb)"; fi
if wait_state vb active 50; then pass "answered after 10 s of ringing: ACKed, active ($(call_line vb | grep -o 'codec [A-Z]*'))"; else fail "after the late 200: $(call_line vb)"; fi
sleep 1.5
"$VB" hangup --config "$dir/vb.toml"
if sipp_ok ring10 "$uas_pid"; then pass "SIPp: the late 200 was ACKed and the call ended by BYE"; else fail "long ring: $(sipp_why ring10)"; fi
wait_idle vb || true
check_tone "voipbridge heard its 1 kHz echoed after the long ring" "$dir/vb-heard.wav" 1000 --min-seconds 1 --min-dbfs -8 --window 0.2

# 2. Hang-up before any provisional response.
uas cancel1 cancel_before_1xx_uas.xml 5583
"$VB" call sip:sipp@127.0.0.1:5583 --config "$dir/vb.toml"
sleep 0.5
"$VB" hangup --config "$dir/vb.toml"
if sipp_ok cancel1 "$uas_pid"; then pass "no CANCEL before the 180 (RFC 3261 9.1), then CANCEL, 487 ACKed"; else fail "CANCEL before 1xx: $(sipp_why cancel1)"; fi
if wait_idle vb; then pass "the cancelled call is gone"; else fail "left: $(call_line vb)"; fi

# 3. A 200 crossing the CANCEL.
uas cross cancel_crossing_2xx_uas.xml 5584
"$VB" call sip:sipp@127.0.0.1:5584 --config "$dir/vb.toml"
wait_state vb ringing 30 || true
"$VB" hangup --config "$dir/vb.toml"
if sipp_ok cross "$uas_pid"; then pass "a 200 after our CANCEL was ACKed and ended with BYE"; else fail "2xx after CANCEL: $(sipp_why cross)"; fi
if wait_idle vb; then pass "no call left after the crossed 200"; else fail "left: $(call_line vb)"; fi

# 4. A challenged BYE.
uas byeauth bye_challenge_uas.xml 5585
"$VB" call sip:sipp@127.0.0.1:5585 --config "$dir/vb.toml"
wait_state vb active 30 || true
"$VB" hangup --config "$dir/vb.toml"
if sipp_ok byeauth "$uas_pid"; then pass "the BYE challenged with 401 was sent again with Authorization"; else fail "challenged BYE: $(sipp_why byeauth)"; fi
if wait_idle vb; then pass "the call ended after the authenticated BYE"; else fail "left: $(call_line vb)"; fi

# 5. Glare.
uas glare glare_uas.xml 5586 -trace_msg -message_file glare.msg
"$VB" call sip:sipp@127.0.0.1:5586 --config "$dir/vb.toml"
wait_state vb active 30 || true
"$VB" hold --config "$dir/vb.toml"
sleep 6
"$VB" hangup --config "$dir/vb.toml"
if sipp_ok glare "$uas_pid"; then pass "glare: the peer's re-INVITE got 491, ours was retried after the peer's 491"; else fail "glare: $(sipp_why glare)"; fi
wait=$(python3 - "$dir/glare.msg" <<'PY'
import re, sys, datetime
text = open(sys.argv[1], errors="replace").read()
blocks = re.split(r"-{20,} (\d{4}-\d\d-\d\d\s+\d\d:\d\d:\d\d\.\d+)", text)
events = []
for i in range(1, len(blocks) - 1, 2):
    t = datetime.datetime.strptime(blocks[i].strip().replace("  ", " "), "%Y-%m-%d %H:%M:%S.%f")
    body = blocks[i + 1]
    m = re.search(r"message (sent|received)[^\n]*\n\s*\n?\s*(\S+ \S+)", body)
    if m:
        events.append((t, m.group(1), m.group(2)))
sent491 = [t for t, d, l in events if d == "sent" and l.startswith("SIP/2.0 491")]
invites = [t for t, d, l in events if d == "received" and l.startswith("INVITE ")]
if sent491:
    later = [t for t in invites if t > sent491[-1]]
    if later:
        print("%.3f" % (later[0] - sent491[-1]).total_seconds())
PY
) || wait=""
if [ -n "$wait" ] && python3 -c "import sys; w=float('$wait'); sys.exit(0 if 2.0 <= w <= 4.3 else 1)"; then pass "the re-INVITE was retried $wait s after the 491 (RFC 3261 14.1: 2.1-4 s for the Call-ID's owner)"; else fail "retry after 491 came after '$wait' s"; fi
wait_idle vb || true

# 6. An offer with video, audio and SRTP audio.
(cd "$dir" && timeout 40 sipp 127.0.0.1:5581 -sf "$scen/multi_mline_uac.xml" -s sess -i 127.0.0.1 -p 5587 -mp 41700 -rtp_echo -m 1 -nostdin \
    -trace_stat -stf multi.csv -trace_err -error_file multi.err -timeout 30 -timeout_error >multi.out 2>&1) && rc=0 || rc=$?
if [ "$rc" = 0 ] && [ "$(sipp_stat "$dir/multi.csv" 'SuccessfulCall(C)')" = 1 ]; then pass "video + audio + SRTP audio offer: answered video 0, audio PCMA, SAVP 0, in order"; else fail "multi m-line offer: $(sipp_why multi)"; fi
wait_idle vb || true

# 7. A 486 retransmitted three times: each one re-ACKed on the INVITE's branch.
cat >"$dir/reack.py" <<'PY'
import socket, sys, re
port, vbport = int(sys.argv[1]), int(sys.argv[2])
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("127.0.0.1", port))
s.settimeout(5)
def recv(method):
    while True:
        data, addr = s.recvfrom(65535)
        text = data.decode(errors="replace")
        if text.startswith(method + " "):
            return text, addr
def hdr(text, name):
    return re.search(r"^%s:\s*(.*)$" % name, text, re.M | re.I).group(1).strip()
inv, addr = recv("INVITE")
branch = re.search(r"branch=([^;\s]+)", hdr(inv, "Via")).group(1)
busy = "SIP/2.0 486 Busy Here\r\nVia: %s\r\nFrom: %s\r\nTo: %s;tag=busy1\r\nCall-ID: %s\r\nCSeq: %s\r\nContent-Length: 0\r\n\r\n" % (
    hdr(inv, "Via"), hdr(inv, "From"), hdr(inv, "To"), hdr(inv, "Call-ID"), hdr(inv, "CSeq"))
acks = 0
for i in range(4):
    s.sendto(busy.encode(), addr)
    ack, _ = recv("ACK")
    b = re.search(r"branch=([^;\s]+)", hdr(ack, "Via")).group(1)
    if b != branch or "tag=busy1" not in hdr(ack, "To") or not hdr(ack, "CSeq").endswith("ACK"):
        print("bad ACK %d: branch %s (INVITE %s)" % (i, b, branch)); sys.exit(1)
    acks += 1
# Nothing more: no INVITE retransmission after the final response.
s.settimeout(1.5)
try:
    data, _ = s.recvfrom(65535)
    print("unexpected: " + data.decode(errors="replace").split("\r\n")[0]); sys.exit(1)
except socket.timeout:
    pass
print("%d ACKs" % acks)
PY
python3 "$dir/reack.py" 5588 5581 >"$dir/reack.txt" 2>&1 & rp=$!
sleep 0.3
"$VB" call sip:peer@127.0.0.1:5588 --config "$dir/vb.toml"
if wait "$rp" && grep -q "4 ACKs" "$dir/reack.txt"; then pass "a 486 sent 4 times: ACKed 4 times on the INVITE's branch, no INVITE retransmission"; else fail "re-ACK: $(cat "$dir/reack.txt")"; fi
if wait_idle vb && grep -q 'code=486' "$dir/vb.log"; then pass "the call failed once with 486"; else fail "after 486: $(call_line vb)"; fi

# 8. Unanswered: 480 at the ring timeout (3 s); an INVITE with Expires: 2 gets 487.
for sc in ring_timeout_uac:480 invite_expires_uac:487; do
    name=${sc%%:*} code=${sc##*:}
    (cd "$dir" && timeout 30 sipp 127.0.0.1:5591 -sf "$scen/$name.xml" -s sess -i 127.0.0.1 -p 5592 -mp 41720 -m 1 -nostdin \
        -trace_stat -stf "$name.csv" -trace_err -error_file "$name.err" -timeout 20 -timeout_error >"$name.out" 2>&1) && rc=0 || rc=$?
    if [ "$rc" = 0 ] && [ "$(sipp_stat "$dir/$name.csv" 'SuccessfulCall(C)')" = 1 ]; then pass "$name: $code, ACKed"; else fail "$name: $(sipp_why "$name")"; fi
done
if wait_idle ring; then pass "no unanswered call left behind"; else fail "left: $(call_line ring)"; fi

echo "$passed passed, $failed failed"
[ "$failed" = 0 ] || { grep -v DEBUG "$dir/vb.log" | tail -n 30; exit 1; }
