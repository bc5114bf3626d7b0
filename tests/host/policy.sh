#!/usr/bin/env bash
# Issue 14's answer policy against the real binary, on loopback:
#  - default policy (no allow list, no accept = "any"): a direct SIPp call
#    gets 403 at once and rings nothing; carol's call through the registrar
#    (kamailio, digest) is answered;
#  - stealth = true: a direct INVITE gets no answer at all;
#  - [call] allow matches user@host exactly: alice@127.0.0.1 is answered,
#    Alice@..., alice@127.0.0.1.evil and a Request-URI for another user are
#    refused with 403;
#  - no media before the ACK, and media only towards the offer's address:
#    after the 200 no RTP reaches the SDP's port for 2 s; the ACK starts it.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
bin=${CARGO_TARGET_DIR:-$root/target}/debug
VB=$bin/voipbridge
for p in kamailio sipp python3; do command -v $p >/dev/null || { echo "FAIL: $p not installed (make setup)"; exit 1; }; done
. "$root/tests/lib/host.bash"
scen=$root/tests/lib/sipp
KPORT=5860

kamailio_db "$dir" board:boardpass carol:carolpass
sed -e "s|@PORT@|$KPORT|g" -e "s|@DB@|$dir/db|g" "$root/tests/lib/kamailio-registrar.cfg" >"$dir/kamailio.cfg"
kamailio -f "$dir/kamailio.cfg" -DD -E -P "$dir/run/k.pid" -Y "$dir/run" -w "$dir" >"$dir/kamailio.out" 2>"$dir/kamailio.log" & pids+=($!)
sleep 1

mkcfg() { # NAME USER PORT RTPBASE REGISTRAR-LINE CALL-KEYS
    cat >"$dir/$1.toml" <<CFG
[account]
uri = "sip:$2@127.0.0.1"
$5
[sip]
listen = "127.0.0.1:$3"
t1_ms = 100
[media]
rtp_ports = "$4-$(($4 + 10))"
[audio]
capture = "tone:1000"
playback = "null"
[call]
$6
[control]
socket = "$dir/$1.sock"
CFG
}
mkcfg board board 5861 42100 $'registrar = "127.0.0.1:'$KPORT$'"\npassword = "boardpass"' ""
mkcfg carol carol 5862 42120 $'registrar = "127.0.0.1:'$KPORT$'"\npassword = "carolpass"' ""
mkcfg quiet board 5863 42140 "" "stealth = true"
mkcfg door board 5864 42160 "" 'allow = ["alice@127.0.0.1"]'
for n in board carol quiet door; do vb_start $n; done
status() { "$VB" status --config "$dir/$1.toml" 2>&1 || true; }
no_calls() { [[ "$(status "$1")" == *"no calls"* ]]; }
for _ in $(seq 50); do [[ "$(status board)" == *"registration: registered"* ]] && [[ "$(status carol)" == *"registration: registered"* ]] && break; sleep 0.1; done

# 1. Default policy: a direct caller is refused, the registrar-routed one answered.
(cd "$dir" && timeout 20 sipp 127.0.0.1:5861 -sf "$scen/unauthorised_uac.xml" -s board -i 127.0.0.1 -p 5865 -mp 42200 -m 1 -nostdin \
    -trace_stat -stf unauth.csv -trace_err -error_file unauth.err -timeout 10 -timeout_error >unauth.out 2>&1) && rc=0 || rc=$?
if [ "$rc" = 0 ] && [ "$(sipp_stat "$dir/unauth.csv" 'SuccessfulCall(C)')" = 1 ]; then pass "default policy: a direct SIPp INVITE got 403 (no 100, no 180)"; else fail "direct INVITE: $(tail -n 3 "$dir/unauth.err" 2>/dev/null)"; fi
if no_calls board; then pass "the refused INVITE left no call"; else fail "board: $(status board)"; fi
"$VB" call sip:board@127.0.0.1 --config "$dir/carol.toml"
for _ in $(seq 50); do [[ "$(status board)" == *"[active]"* ]] && break; sleep 0.1; done
if [[ "$(status board)" == *"[active]"* ]]; then pass "carol's call through the registrar was answered by the default policy"; else fail "registrar-routed call: $(status board)"; fi
"$VB" hangup --config "$dir/carol.toml"
for _ in $(seq 30); do no_calls board && break; sleep 0.1; done

cat >"$dir/peer.py" <<'PY'
# A raw SIP caller: INVITE with an SDP naming a socket of its own, then
# checks what comes back. Usage: peer.py MODE PORT [FROM_USER [RURI_USER [FROM_HOST]]]
import socket, sys, time, re
mode, port = sys.argv[1], int(sys.argv[2])
user = sys.argv[3] if len(sys.argv) > 3 else "alice"
ruser = sys.argv[4] if len(sys.argv) > 4 else "board"
fhost = sys.argv[5] if len(sys.argv) > 5 else "127.0.0.1"
sip = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); sip.bind(("127.0.0.1", 0))
rtp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); rtp.bind(("127.0.0.1", 0))
me, rtp_port = sip.getsockname()[1], rtp.getsockname()[1]
sdp = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio %d RTP/AVP 0\r\n" % rtp_port
def req(method, cseq, branch, to_tag="", body=""):
    return ("%s sip:%s@127.0.0.1:%d SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:%d;branch=z9hG4bK%s\r\nFrom: <sip:%s@%s>;tag=p1\r\n"
            "To: <sip:%s@127.0.0.1>%s\r\nCall-ID: policy-%s-%d@peer\r\nCSeq: %d %s\r\nContact: <sip:%s@127.0.0.1:%d>\r\nMax-Forwards: 70\r\n%s"
            "Content-Length: %d\r\n\r\n%s") % (method, ruser, port, me, branch, user, fhost, ruser, to_tag, mode, me, cseq, method, user, me,
            "Content-Type: application/sdp\r\n" if body else "", len(body), body)
sip.sendto(req("INVITE", 1, "inv" + mode, body=sdp).encode(), ("127.0.0.1", port))
sip.settimeout(1.5)
final = None
try:
    while final is None:
        data = sip.recv(65535).decode(errors="replace")
        code = int(data.split(" ")[1])
        if code >= 200:
            final = data
except socket.timeout:
    pass
if final is None:
    print("no answer"); sys.exit(0)
code = int(final.split(" ")[1])
print("final %d" % code)
if code != 200 or mode != "media":
    sys.exit(0)
tag = re.search(r"^To:.*;tag=([^;\s]+)", final, re.M | re.I).group(1)
rtp.settimeout(2.0)
try:
    rtp.recv(2048); print("RTP before the ACK")
except socket.timeout:
    print("no RTP before the ACK")
sip.sendto(req("ACK", 1, "ack" + mode, ";tag=" + tag).encode(), ("127.0.0.1", port))
try:
    rtp.recv(2048); print("RTP after the ACK")
except socket.timeout:
    print("no RTP after the ACK")
sip.sendto(req("BYE", 2, "bye" + mode, ";tag=" + tag).encode(), ("127.0.0.1", port))
time.sleep(0.5)
PY
peer() { python3 "$dir/peer.py" "$@" 2>&1 | tr '\n' '|'; }

# 2. Stealth: nothing comes back.
out=$(peer stealth 5863)
if [ "$out" = "no answer|" ]; then pass "stealth: an unauthorised INVITE got no answer at all"; else fail "stealth: $out"; fi
if no_calls quiet; then pass "stealth: no call"; else fail "quiet: $(status quiet)"; fi

# 3. The allow list, exactly.
for u in Alice@127.0.0.1 alice2@127.0.0.1 alice@127.0.0.1.evil; do
    out=$(peer "deny${u%%@*}" 5864 "${u%%@*}" board "${u#*@}")
    if [ "$out" = "final 403|" ]; then pass "allow list: '$u' is not alice@127.0.0.1: 403"; else fail "allow list, $u: $out"; fi
done
out=$(peer otheruser 5864 alice admin)
if [ "$out" = "final 403|" ]; then pass "a Request-URI for another user (admin): 403 like an unauthorised caller"; else fail "unknown user: $out"; fi

# 4. alice is admitted; no media before the ACK; media to the offer's address.
out=$(peer media 5864 alice)
if [[ "$out" == "final 200|"* ]]; then pass "allow list: alice@127.0.0.1 answered 200"; else fail "alice: $out"; fi
if [[ "$out" == *"|no RTP before the ACK|"* ]]; then pass "no RTP in the 2 s between the 200 and the ACK"; else fail "before the ACK: $out"; fi
if [[ "$out" == *"|RTP after the ACK|"* ]]; then pass "the ACK started the media, towards the SDP's port (not the SIP source)"; else fail "after the ACK: $out"; fi
for _ in $(seq 30); do no_calls door && break; sleep 0.1; done
if no_calls door; then pass "the BYE ended alice's call"; else fail "door: $(status door)"; fi

echo "$passed passed, $failed failed"
[ "$failed" = 0 ] || { grep -v DEBUG "$dir/door.log" | tail -n 20; exit 1; }
