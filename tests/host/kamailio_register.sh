#!/usr/bin/env bash
# voipbridge against a real registrar: kamailio (Debian) with digest
# authentication (auth_db + db_text) on loopback.
#  - bridge registers with the right password (401 challenge, then 200);
#  - a second account with a wrong password gets a clear failure;
#  - carol (a second voipbridge, also registered) calls sip:bridge@127.0.0.1
#    through kamailio, answers its 407 challenge with Proxy-Authorization, which finds bridge's binding and record-routes: the call
#    carries audio; ACKs, carol's BYE, and on a second call bridge's hold/resume
#    re-INVITEs and BYE all follow the route set through kamailio (its log
#    shows them loose-routed);
#  - on SIGTERM bridge un-registers: a new call to it then gets 404.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
command -v kamailio >/dev/null || { echo "FAIL: kamailio not installed (make setup)"; exit 1; }
. "$root/tests/lib/host.bash"
KPORT=5360

mkdir -p "$dir/db" "$dir/run"
cat >"$dir/db/version" <<'DB'
table_name(string) table_version(int)
subscriber:7
DB
cat >"$dir/db/subscriber" <<'DB'
id(int,auto) username(string) domain(string) password(string) ha1(string,null) ha1b(string,null)
1:bridge:127.0.0.1:bridgepass:::
2:carol:127.0.0.1:carolpass:::
3:mallory:127.0.0.1:rightpass:::
DB
cat >"$dir/kamailio.cfg" <<CFG
#!KAMAILIO
debug=2
log_stderror=yes
fork=yes
children=2
auto_aliases=no
listen=udp:127.0.0.1:$KPORT
mpath="/usr/lib/x86_64-linux-gnu/kamailio/modules/"
loadmodule "sl.so"
loadmodule "tm.so"
loadmodule "rr.so"
loadmodule "maxfwd.so"
loadmodule "textops.so"
loadmodule "siputils.so"
loadmodule "pv.so"
loadmodule "xlog.so"
loadmodule "usrloc.so"
loadmodule "registrar.so"
loadmodule "db_text.so"
loadmodule "auth.so"
loadmodule "auth_db.so"
modparam("usrloc", "db_mode", 0)
modparam("auth_db", "db_url", "text://$dir/db")
modparam("auth_db", "calculate_ha1", yes)
modparam("auth_db", "password_column", "password")
modparam("auth_db", "load_credentials", "")
request_route {
    if (!mf_process_maxfwd_header("10")) { sl_send_reply("483", "Too Many Hops"); exit; }
    if (is_method("REGISTER")) {
        if (!auth_check("\$fd", "subscriber", "1")) { auth_challenge("\$fd", "1"); exit; }
        if (!save("location")) { sl_reply_error(); }
        exit;
    }
    if (has_totag()) {
        if (loose_route()) { xlog("L_NOTICE", "loose-routed \$rm from \$si:\$sp\n"); t_relay(); exit; }
        if (is_method("ACK") && !t_check_trans()) { exit; }
        t_relay();
        exit;
    }
    if (is_method("CANCEL")) { if (t_check_trans()) { t_relay(); } exit; }
    if (is_method("INVITE")) {
        if (!proxy_authorize("\$fd", "subscriber")) { proxy_challenge("\$fd", "1"); exit; }
        xlog("L_NOTICE", "authorized INVITE from \$fU\n");
        consume_credentials();
        record_route();
        if (!lookup("location")) { sl_send_reply("404", "Not Found"); exit; }
        t_relay();
        exit;
    }
    sl_send_reply("405", "Method Not Allowed");
}
CFG
kamailio -f "$dir/kamailio.cfg" -DD -E -P "$dir/run/k.pid" -Y "$dir/run" -w "$dir" >"$dir/kamailio.out" 2>"$dir/kamailio.log" & pids+=($!)
wait_until 15 udp_listening $KPORT || { echo "FAIL: kamailio not listening on $KPORT after 15 s: $(tail -n 5 "$dir/kamailio.log")"; exit 1; }

mkcfg() { # NAME USER PASS PORT RTPBASE CAPTURE
    cat >"$dir/$1.toml" <<CFG
[account]
uri = "sip:$2@127.0.0.1"
registrar = "127.0.0.1:$KPORT"
password = "$3"
expires = 120
[sip]
listen = "127.0.0.1:$4"
[media]
rtp_ports = "$5-$(( $5 + 10 ))"
[audio]
capture = "$6"
playback = "wav:$dir/$1-heard.wav"
[control]
socket = "$dir/$1.sock"
CFG
}
mkcfg bridge bridge bridgepass 5381 41300 tone:1000
mkcfg carol carol carolpass 5382 41320 tone:440
mkcfg mallory mallory wrongpass 5383 41340 null
start() { vb_start "$1"; }
start bridge; start carol; start mallory
# (status output captured first: `status | grep -q` would fail under pipefail when grep exits early)
call_line() { local out; out=$("$VB" status --config "$dir/$1.toml" 2>&1 || true); grep "^call " <<<"$out" || true; }
in_state() { [[ "$(call_line "$1")" == *"[$2]"* ]]; }
reg_state() { "$VB" status --config "$dir/$1.toml" | sed -n 's/^registration: //p'; }
for _ in $(seq 50); do [ "$(reg_state bridge)" = registered ] && [ "$(reg_state carol)" = registered ] && break; sleep 0.1; done
[ "$(reg_state bridge)" = registered ] && pass "bridge registered with digest auth" || fail "bridge registration: $(reg_state bridge)"
[ "$(reg_state carol)" = registered ] && pass "carol registered" || fail "carol registration: $(reg_state carol)"
for _ in $(seq 50); do [ "$(reg_state mallory)" = failed ] && break; sleep 0.1; done
if [ "$(reg_state mallory)" = failed ] && grep -q "authentication failed: check username and password" "$dir/mallory.log"; then
    pass "wrong password: registration failed with a clear error"
else
    fail "wrong password: state $(reg_state mallory)"
fi

"$VB" call sip:bridge@127.0.0.1 --config "$dir/carol.toml"
for _ in $(seq 50); do in_state carol active && break; sleep 0.1; done
if in_state carol active; then pass "carol -> kamailio -> bridge: call established"; else fail "call through kamailio: $(grep -i 'call' "$dir/carol.log" | tail -n 2)"; fi
if grep -q "authorized INVITE from carol" "$dir/kamailio.log"; then pass "carol's INVITE answered kamailio's 407 challenge"; else fail "kamailio never authorized carol's INVITE"; fi
sleep 3  # three seconds of call
"$VB" hangup --config "$dir/carol.toml"
for _ in $(seq 30); do [ -z "$(call_line bridge)" ] && break; sleep 0.1; done
if [ -n "$(call_line bridge)" ]; then fail "bridge still in the call after carol's BYE"; else pass "carol's BYE (via kamailio) ended bridge's call"; fi
media_stopped "$dir/bridge.log" 1 && media_stopped "$dir/carol.log" 1 || fail "media not stopped 10 s after the BYE"
# Windowed purity: this test is about signalling; a frame the jitter buffer
# slips on a loaded machine is normal (tests/host/bridge_call.sh is strict).
if "$AT" analyze --wav "$dir/bridge-heard.wav" --freq 440 --min-seconds 2 --min-dbfs -8 --window 0.5 >"$dir/a.txt"; then pass "bridge heard carol's 440 Hz through the proxied call"; else fail "$(cat "$dir/a.txt")"; fi
if "$AT" analyze --wav "$dir/carol-heard.wav" --freq 1000 --min-seconds 2 --min-dbfs -8 --window 0.5 >"$dir/b.txt"; then pass "carol heard bridge's 1 kHz"; else fail "$(cat "$dir/b.txt")"; fi

# Second call: bridge (the UAS) holds, resumes and hangs up, all along its route set.
"$VB" call sip:bridge@127.0.0.1 --config "$dir/carol.toml"
for _ in $(seq 50); do in_state carol active && break; sleep 0.1; done
"$VB" hold --config "$dir/bridge.toml"
for _ in $(seq 30); do in_state carol held && break; sleep 0.1; done
if in_state carol held; then pass "bridge's hold re-INVITE reached carol"; else fail "hold: carol says $(call_line carol)"; fi
"$VB" resume --config "$dir/bridge.toml"
for _ in $(seq 30); do in_state carol active && break; sleep 0.1; done
if in_state carol active; then pass "bridge's resume re-INVITE reached carol"; else fail "resume: carol says $(call_line carol)"; fi
"$VB" hangup --config "$dir/bridge.toml"
for _ in $(seq 30); do [ -z "$(call_line carol)" ] && break; sleep 0.1; done
if [ -n "$(call_line carol)" ]; then fail "carol still in the call after bridge's BYE"; else pass "bridge's BYE (via kamailio) ended carol's call"; fi
# kamailio logs each in-dialog request it loose-routed, with its source (carol 5382, bridge 5381).
for m in "ACK from 127.0.0.1:5382" "BYE from 127.0.0.1:5382" "INVITE from 127.0.0.1:5381" "ACK from 127.0.0.1:5381" "BYE from 127.0.0.1:5381"; do
    if grep -q "loose-routed $m" "$dir/kamailio.log"; then pass "in-dialog $m followed the Record-Route through kamailio"; else fail "kamailio did not loose-route $m"; fi
done

kill -TERM "$pid_bridge"
if wait "$pid_bridge"; then pass "bridge exited 0 on SIGTERM"; else fail "bridge exit status"; fi
"$VB" call sip:bridge@127.0.0.1 --config "$dir/carol.toml"
if wait_until 5 grep -q 'code=404' "$dir/carol.log"; then pass "after un-REGISTER, kamailio answers 404 for bridge"; else fail "no 404 after bridge un-registered: $(grep -i ended "$dir/carol.log" | tail -n 1)"; fi
echo "$passed passed, $failed failed"
[ "$failed" = 0 ] || { tail -n 20 "$dir/kamailio.log"; exit 1; }
