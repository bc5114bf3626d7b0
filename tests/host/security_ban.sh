#!/usr/bin/env bash
# Built-in abuse banning (issue 14) with the real daemon on UDP. Sources are
# loopback addresses 127.0.0.x, so each is its own "host":
#  - a burst of 100 OPTIONS from one source: the first 20 (the threshold
#    of this config) are answered, then the source is banned, with one log
#    line; `status` lists the ban; another source is still answered;
#  - the ban expires after ban_time_s (3 s here): the source is answered again;
#  - the registrar's address is never banned, however much it sends;
#  - `voipbridge ban ADDR` / `unban ADDR`, and the registrar refused as a target;
#  - the SIP layer's abuse reports reach the ban table: INVITEs from a
#    caller the answer policy refuses get 403; the one over max_unauthorised
#    bans the source (one log line, in status), which then gets nothing.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
bin=${CARGO_TARGET_DIR:-$root/target}/debug
VB=$bin/voipbridge
command -v python3 >/dev/null || { echo "FAIL: python3 not installed"; exit 1; }
. "$root/tests/lib/host.bash"
PORT=5791
cat >"$dir/vb.toml" <<CFG
[account]
uri = "sip:guard@127.0.0.1"
registrar = "127.0.0.2:5799"
[sip]
listen = "127.0.0.1:$PORT"
[audio]
capture = "null"
playback = "null"
[ban]
window_s = 10
max_requests = 20
max_unauthorised = 5
ban_time_s = 3
[control]
socket = "$dir/vb.sock"
CFG
vb_start vb

# burst SRC COUNT: sends COUNT OPTIONS from SRC (one socket), prints how many were answered.
cat >"$dir/burst.py" <<'PY'
import socket, sys, time
src, n, port = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind((src, 0))
me = s.getsockname()[1]
got = 0
for i in range(n):
    tag = "%d%d" % (me, i)  # a new transaction each time (port and index)
    m = ("OPTIONS sip:guard@127.0.0.1:%d SIP/2.0\r\nVia: SIP/2.0/UDP %s:%d;branch=z9hG4bKb%s\r\n"
         "Max-Forwards: 70\r\nFrom: <sip:x@%s>;tag=%s\r\nTo: <sip:guard@127.0.0.1>\r\n"
         "Call-ID: burst-%s-%s\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n"
         % (port, src, me, tag, src, tag, src, tag))
    s.sendto(m.encode(), ("127.0.0.1", port))
    time.sleep(0.002)
    s.setblocking(False)  # read answers as they come: our receive buffer is small
    try:
        while True:
            d, _ = s.recvfrom(65536)
            if d.startswith(b"SIP/2.0 200"):
                got += 1
    except BlockingIOError:
        pass
    s.setblocking(True)
s.settimeout(0.5)
try:
    while True:
        d, _ = s.recvfrom(65536)
        if d.startswith(b"SIP/2.0 200"):
            got += 1
except socket.timeout:
    pass
print(got)
PY
burst() { python3 "$dir/burst.py" "$1" "$2" "$PORT"; }

n=$(burst 127.0.0.3 100)
if [ "$n" = 20 ]; then pass "100 OPTIONS from 127.0.0.3: the first 20 answered, the rest dropped"; else fail "127.0.0.3: $n of 100 answered (want 20)"; fi
if [ "$(grep -c 'banned 127.0.0.3 for 3 s: 21 request rate within the window' "$dir/vb.log")" = 1 ]; then pass "one log line for the ban: $(grep -o 'banned 127.0.0.3.*window' "$dir/vb.log")"; else fail "ban log: $(grep -i ban "$dir/vb.log")"; fi
st=$("$VB" status --config "$dir/vb.toml")
if grep -q '^  127.0.0.3 (rate) [1-3] s left' <<<"$st" && grep -q '^bans: 1 now, 1 since start' <<<"$st"; then pass "status lists the ban"; else fail "status: $st"; fi
n=$(burst 127.0.0.4 5)
if [ "$n" = 5 ]; then pass "another source (127.0.0.4) is still answered during the ban"; else fail "127.0.0.4: $n of 5"; fi
n=$(burst 127.0.0.3 3)
if [ "$n" = 0 ]; then pass "127.0.0.3 is ignored while banned"; else fail "banned source answered $n times"; fi
sleep 3.2
n=$(burst 127.0.0.3 3)
if [ "$n" = 3 ]; then pass "after the ban time (3 s) 127.0.0.3 is answered again"; else fail "after expiry: $n of 3"; fi
st=$("$VB" status --config "$dir/vb.toml")
if grep -q '^bans: 0 now' <<<"$st"; then pass "the expired ban is gone from status"; else fail "status after expiry: $(grep bans <<<"$st")"; fi

n=$(burst 127.0.0.2 200)
if [ "$n" = 200 ] && ! grep -q 'banned 127.0.0.2' "$dir/vb.log"; then pass "the registrar's address (127.0.0.2) sent 200 and was never banned"; else fail "registrar: $n of 200 answered; $(grep 'banned 127.0.0.2' "$dir/vb.log")"; fi

out=$("$VB" ban 127.0.0.5 --seconds 60 --config "$dir/vb.toml")
n=$(burst 127.0.0.5 3)
if [ "$out" = "banned 127.0.0.5 for 60 s" ] && [ "$n" = 0 ]; then pass "voipbridge ban 127.0.0.5: '$out', then ignored"; else fail "manual ban: '$out', $n answered"; fi
"$VB" unban 127.0.0.5 --config "$dir/vb.toml"
n=$(burst 127.0.0.5 3)
if [ "$n" = 3 ]; then pass "voipbridge unban 127.0.0.5: answered again"; else fail "after unban: $n of 3"; fi
out=$("$VB" unban 127.0.0.5 --config "$dir/vb.toml" 2>&1 || true)
if [[ "$out" == *"127.0.0.5 is not banned"* ]]; then pass "unban of an address not banned: $out"; else fail "unban twice: $out"; fi
out=$("$VB" ban 127.0.0.2 --config "$dir/vb.toml" 2>&1 || true)
if [[ "$out" == *"127.0.0.2 is the registrar, the outbound proxy or in [ban] exempt: never banned"* ]]; then pass "the registrar cannot be banned by hand: $out"; else fail "ban registrar: $out"; fi
out=$("$VB" ban not-an-ip --config "$dir/vb.toml" 2>&1 || true)
if [[ "$out" == *"'not-an-ip' is not an IP address"* ]]; then pass "a bad address is refused: $out"; else fail "bad address: $out"; fi

# invites SRC COUNT: COUNT INVITEs (new Call-IDs) from an unknown caller at
# SRC; prints how many got 403.
cat >"$dir/invites.py" <<'PY'
import socket, sys, time
src, n, port = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind((src, 0))
me = s.getsockname()[1]
sdp = "v=0\r\no=- 1 1 IN IP4 %s\r\ns=-\r\nc=IN IP4 %s\r\nt=0 0\r\nm=audio 49170 RTP/AVP 0\r\n" % (src, src)
got = 0
for i in range(n):
    tag = "%d%d" % (me, i)
    m = ("INVITE sip:guard@127.0.0.1:%d SIP/2.0\r\nVia: SIP/2.0/UDP %s:%d;branch=z9hG4bKi%s\r\n"
         "Max-Forwards: 70\r\nFrom: <sip:scanner@%s>;tag=%s\r\nTo: <sip:guard@127.0.0.1>\r\n"
         "Call-ID: inv-%s-%s\r\nCSeq: 1 INVITE\r\nContact: <sip:scanner@%s:%d>\r\n"
         "Content-Type: application/sdp\r\nContent-Length: %d\r\n\r\n%s"
         % (port, src, me, tag, src, tag, src, tag, src, me, len(sdp), sdp))
    s.sendto(m.encode(), ("127.0.0.1", port))
    s.settimeout(0.3)
    try:
        while True:
            d, _ = s.recvfrom(65536)
            if d.startswith(b"SIP/2.0 403"):
                got += 1
                break
    except socket.timeout:
        pass
print(got)
PY
n=$(python3 "$dir/invites.py" 127.0.0.6 10 "$PORT")
if [ "$n" = 6 ] && grep -q 'banned 127.0.0.6 for 3 s: 6 unauthorised requests' "$dir/vb.log"; then pass "10 unauthorised INVITEs from 127.0.0.6: 6 got 403 (the 6th, over max_unauthorised = 5, banned the source), 4 got nothing: $(grep -o 'banned 127.0.0.6.*requests' "$dir/vb.log")"; else fail "unauthorised INVITEs: $n got 403; $(grep '127.0.0.6' "$dir/vb.log" | grep -v DEBUG | tail -n 2)"; fi
st=$("$VB" status --config "$dir/vb.toml")
if grep -q '^  127.0.0.6 (unauthorised) [1-3] s left' <<<"$st"; then pass "status lists the abuse ban"; else fail "status: $(grep -A3 '^bans' <<<"$st")"; fi

echo "$passed passed, $failed failed"
[ "$failed" = 0 ] || { grep -v DEBUG "$dir/vb.log" | tail -n 20; exit 1; }
