#!/usr/bin/env bash
# voipbridge with `[sip] transport = "tcp"` (RFC 3261 18) against real peers
# on loopback. voipbridge then listens on TCP only, so every exchange below
# that succeeds went over TCP.
#  - framing on a raw connection: a request split in small writes after
#    CRLF keep-alives is answered on the same connection; a request without
#    Content-Length gets 400 and the connection is closed;
#  - kamailio (listen=tcp) as registrar with digest auth: bridge and carol
#    register over TCP (kamailio logs the protocol and the Contact), carol
#    calls bridge through kamailio, audio flows, carol's BYE ends it;
#  - baresip over TCP both ways: baresip calls voipbridge (baresip's BYE),
#    voipbridge calls baresip (voipbridge's BYE); audio checked each time.
# Host names go through the system resolver: carol's registrar is
# "localhost:PORT", and voipbridge calls baresip at sip:dave@localhost.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
for p in kamailio baresip python3; do command -v $p >/dev/null || { echo "FAIL: $p not installed (make setup)"; exit 1; }; done
. "$root/tests/lib/host.bash"
KPORT=5560

mkcfg() { # NAME USER PASS PORT RTPBASE CAPTURE [REGISTRAR]
    local reg=""
    if [ -n "${7:-}" ]; then reg="registrar = \"$7\""; fi
    cat >"$dir/$1.toml" <<CFG
[account]
uri = "sip:$2@127.0.0.1"
$reg
password = "$3"
expires = 120
[sip]
listen = "127.0.0.1:$4"
transport = "tcp"
[media]
rtp_ports = "$5-$(($5 + 10))"
[audio]
capture = "$6"
playback = "wav:$dir/$1-heard.wav"
[call]
allow = ["dave@127.0.0.1"]
[control]
socket = "$dir/$1.sock"
CFG
}
start() { vb_start "$1"; }
call_line() { local out; out=$("$VB" status --config "$dir/$1.toml" 2>&1 || true); grep "^call " <<<"$out" || true; }
in_state() { [[ "$(call_line "$1")" == *"[$2]"* ]]; }
reg_state() { "$VB" status --config "$dir/$1.toml" | sed -n 's/^registration: //p'; }
check_audio() { check_tone "$@" --min-seconds 2 --min-dbfs -8 --window 0.5; } # NAME WAV FREQ

# 1. Framing on a raw TCP connection (no registrar).
mkcfg solo solo x 5561 41800 null
start solo
cat >"$dir/raw.py" <<'PY'
import socket, sys
port, mode = int(sys.argv[1]), sys.argv[2]
def req(cl):
    h = ("OPTIONS sip:solo@127.0.0.1:%d SIP/2.0\r\nVia: SIP/2.0/TCP 127.0.0.1:9;branch=z9hG4bK%s\r\n"
         "From: <sip:t@127.0.0.1>;tag=1\r\nTo: <sip:solo@127.0.0.1>\r\nCall-ID: raw-%s\r\nCSeq: 1 OPTIONS\r\n" % (port, mode, mode))
    return (h + ("Content-Length: 0\r\n" if cl else "") + "\r\n").encode()
s = socket.create_connection(("127.0.0.1", port), timeout=5)
if mode == "chunked":
    data = b"\r\n\r\n" + req(True)
    for i in range(0, len(data), 7):
        s.sendall(data[i:i + 7])
    def answer():
        # The keep-alive ping (CRLF CRLF) is answered with a CRLF pong first (RFC 5626 4.4.1).
        got = b""
        while b"\r\n\r\n" not in got.lstrip(b"\r\n"):
            got += s.recv(4096)
        print("pong" if got.startswith(b"\r\n") and not got.startswith(b"\r\n\r\n") else "no pong")
        print(got.lstrip(b"\r\n").split(b"\r\n")[0].decode())
    answer()
    s.sendall(b"\r\n\r\n" + req(True))  # a second request on the same connection
    answer()
else:
    s.sendall(req(False))
    got = b""
    while True:
        d = s.recv(4096)
        if not d:
            break
        got += d
    print(got.split(b"\r\n")[0].decode())
    print("closed")
PY
out=$(timeout 10 python3 "$dir/raw.py" 5561 chunked 2>&1 || true)
if [ "$(printf '%s' "$out" | tr -d '\r' | tr '\n' '|')" = "pong|SIP/2.0 200 OK|pong|SIP/2.0 200 OK" ]; then pass "TCP: keep-alive pings answered with a pong, a request cut in 7-byte writes answered 200, twice on one connection"; else fail "chunked OPTIONS over TCP: $out"; fi
out=$(timeout 10 python3 "$dir/raw.py" 5561 nolength 2>&1 || true)
if [ "$(printf '%s' "$out" | tr -d '\r' | tr '\n' '|')" = "SIP/2.0 400 Bad Request|closed" ]; then pass "TCP: a request without Content-Length gets 400 and the connection is closed"; else fail "no Content-Length over TCP: $out"; fi
kill -TERM "$pid_solo"; wait "$pid_solo" || true

# 2. kamailio over TCP.
kamailio_db "$dir" bridge:bridgepass carol:carolpass
sed -e "s|@PORT@|$KPORT|g" -e "s|@DB@|$dir/db|g" \
    -e "s|^listen=udp:127.0.0.1:$KPORT|listen=udp:127.0.0.1:$KPORT\nlisten=tcp:127.0.0.1:$KPORT|" \
    -e 's|^loadmodule "usrloc.so"|loadmodule "xlog.so"\nloadmodule "usrloc.so"|' \
    -e 's|if (!save("location"))|xlog("L_NOTICE", "REGISTER over $pr from $fU contact $ct\\n"); if (!save("location"))|' \
    -e 's|if (is_method("INVITE")) {|if (is_method("INVITE")) { xlog("L_NOTICE", "INVITE over $pr from $fU\\n");|' \
    "$root/tests/lib/kamailio-registrar.cfg" >"$dir/kamailio.cfg"
grep -q "listen=tcp:127.0.0.1:$KPORT" "$dir/kamailio.cfg" || { echo "FAIL: kamailio config not rewritten"; exit 1; }
kamailio -f "$dir/kamailio.cfg" -DD -E -P "$dir/run/k.pid" -Y "$dir/run" -w "$dir" >"$dir/kamailio.out" 2>"$dir/kamailio.log" & pids+=($!)
wait_until 15 tcp_listening $KPORT || { echo "FAIL: kamailio not listening on TCP $KPORT after 15 s: $(tail -n 5 "$dir/kamailio.log")"; exit 1; }
mkcfg bridge bridge bridgepass 5562 41820 tone:1000 "127.0.0.1:$KPORT"
mkcfg carol carol carolpass 5563 41840 tone:440 "localhost:$KPORT"  # a host name: resolved at start
start bridge; start carol
for _ in $(seq 50); do [ "$(reg_state bridge)" = registered ] && [ "$(reg_state carol)" = registered ] && break; sleep 0.1; done
for u in bridge carol; do
    if [ "$(reg_state $u)" = registered ]; then pass "$u registered with kamailio over TCP (digest)"; else fail "$u registration over TCP: $(reg_state $u)"; fi
done
if grep -q 'registrar resolved host=localhost addr=127.0.0.1:5560' "$dir/carol.log"; then pass "carol's registrar 'localhost:$KPORT' resolved through the system resolver"; else fail "carol's registrar not resolved: $(grep -i resolv "$dir/carol.log")"; fi
if wait_log "REGISTER over tcp from bridge contact <sip:bridge@127.0.0.1:5562;transport=tcp>" "$dir/kamailio.log"; then pass "kamailio saw bridge's REGISTER over TCP with a transport=tcp Contact"; else fail "kamailio log: $(grep 'REGISTER over' "$dir/kamailio.log" | head -n 2)"; fi
"$VB" call sip:bridge@127.0.0.1 --config "$dir/carol.toml"
for _ in $(seq 50); do in_state carol active && in_state bridge active && break; sleep 0.1; done
if in_state carol active && in_state bridge active; then pass "carol -> kamailio -> bridge over TCP: call established"; else fail "call over TCP: carol [$(call_line carol)] bridge [$(call_line bridge)]"; fi
if wait_log "INVITE over tcp from carol" "$dir/kamailio.log"; then pass "kamailio got carol's INVITE over TCP"; else fail "no INVITE over TCP in kamailio's log"; fi
sleep 3  # three seconds of call
"$VB" hangup --config "$dir/carol.toml"
for _ in $(seq 30); do [ -z "$(call_line bridge)" ] && break; sleep 0.1; done
if [ -z "$(call_line bridge)" ]; then pass "carol's BYE over TCP ended bridge's call"; else fail "bridge still in the call: $(call_line bridge)"; fi
media_stopped "$dir/bridge.log" 1 && media_stopped "$dir/carol.log" 1 || fail "media not stopped 10 s after the BYE"
check_audio "bridge heard carol's 440 Hz (TCP signalling)" "$dir/bridge-heard.wav" 440
check_audio "carol heard bridge's 1 kHz (TCP signalling)" "$dir/carol-heard.wav" 1000
kill -TERM "$pid_bridge" "$pid_carol"
if wait "$pid_bridge" && wait "$pid_carol"; then pass "both exited 0 on SIGTERM (un-REGISTER over TCP)"; else fail "exit status after SIGTERM"; fi

# 3. baresip over TCP, both ways (baresip also takes its SIP port + 1 for TLS).
mkdir -p "$dir/bs/snd"
"$AT" gen --wav --rate 8000 --freq 440 --seconds 20 "$dir/bs/tone440.wav"
. "$root/tests/lib/baresip.sh"
baresip_config "$dir/bs" 5564 "$dir/bs/tone440.wav" "<sip:dave@127.0.0.1:5564;transport=tcp>;regint=0;answermode=auto;audio_codecs=PCMU,PCMA" menu
mkcfg vb vb x 5567 41860 tone:1000
start vb
timeout 30 baresip -f "$dir/bs" -e "/dial sip:vb@127.0.0.1:5567;transport=tcp" -t 6 </dev/null >"$dir/bs1.log" 2>&1 || true
if grep -q "Call established" "$dir/bs1.log"; then pass "baresip -> voipbridge over TCP: call established"; else fail "baresip -> voipbridge over TCP: $(grep -a -i call "$dir/bs1.log" | tail -n 3 | tr '\n' ' ')"; fi
for _ in $(seq 30); do [ -z "$(call_line vb)" ] && break; sleep 0.1; done
if [ -z "$(call_line vb)" ]; then pass "baresip's BYE over TCP ended the call"; else fail "voipbridge still has the call: $(call_line vb)"; fi
media_stopped "$dir/vb.log" 1 || fail "voipbridge's media not stopped 10 s after baresip's BYE"
check_audio "voipbridge heard baresip's 440 Hz (incoming TCP call)" "$dir/vb-heard.wav" 440
check_audio "baresip heard voipbridge's 1 kHz (incoming TCP call)" "$(ls "$dir"/bs/snd/*-dec.wav | head -n 1)" 1000
rm -f "$dir"/bs/snd/*
timeout 30 baresip -f "$dir/bs" -t 12 </dev/null >"$dir/bs2.log" 2>&1 & bsp=$!
pids+=($bsp)
wait_until 15 tcp_listening 5564 || fail "baresip not listening on TCP 5564 after 15 s"
"$VB" call "sip:dave@localhost:5564;transport=tcp" --config "$dir/vb.toml"  # resolved by the agent
for _ in $(seq 50); do in_state vb active && break; sleep 0.1; done
if grep -q 'call target resolved host=localhost addr=127.0.0.1:5564' "$dir/vb.log"; then pass "the call URI's host 'localhost' resolved through the system resolver"; else fail "call target not resolved: $(grep -i resolv "$dir/vb.log")"; fi
if in_state vb active; then pass "voipbridge -> baresip over TCP: call established"; else fail "voipbridge -> baresip over TCP: $(grep -v DEBUG "$dir/vb.log" | tail -n 3)"; fi
sleep 4  # four seconds of call
"$VB" hangup --config "$dir/vb.toml"
if wait_log "terminated" "$dir/bs2.log" 5; then pass "voipbridge's BYE over TCP ended the call in baresip"; else fail "baresip did not see the BYE"; fi
kill "$bsp" 2>/dev/null || true; wait "$bsp" 2>/dev/null || true
media_stopped "$dir/vb.log" 2 || fail "voipbridge's media not stopped 10 s after its BYE"
check_audio "voipbridge heard baresip's 440 Hz (outgoing TCP call)" "$dir/vb-heard.wav" 440
check_audio "baresip heard voipbridge's 1 kHz (outgoing TCP call)" "$(ls "$dir"/bs/snd/*-dec.wav 2>/dev/null | head -n 1)" 1000

echo "$passed passed, $failed failed"
[ "$failed" = 0 ] || { for f in solo bridge carol vb; do echo "== $f"; grep -v DEBUG "$dir/$f.log" 2>/dev/null | tail -n 8; done; tail -n 20 "$dir/kamailio.log"; exit 1; }
