#!/usr/bin/env bash
# voipbridge against a real registrar: kamailio (Debian) with digest
# authentication (auth_db + db_text) on loopback.
#  - bridge registers with the right password (401 challenge, then 200);
#  - a second account with a wrong password gets a clear failure;
#  - carol (a second voipbridge, also registered) calls sip:bridge@127.0.0.1
#    through kamailio, which finds bridge's binding: the call carries audio;
#  - on SIGTERM bridge un-registers: a new call to it then gets 404.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
bin=${CARGO_TARGET_DIR:-$root/target}/debug
VB=$bin/voipbridge AT=$bin/audiotest
command -v kamailio >/dev/null || { echo "FAIL: kamailio not installed (make setup)"; exit 1; }
dir=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$dir"; }
trap cleanup EXIT
failed=0 passed=0
pass() { echo "PASS: $*"; passed=$((passed + 1)); }
fail() { echo "FAIL: $*"; failed=$((failed + 1)); }
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
    if (is_method("CANCEL|ACK")) { if (t_check_trans()) { t_relay(); } exit; }
    if (has_totag()) { t_relay(); exit; }
    if (is_method("INVITE")) {
        if (!lookup("location")) { sl_send_reply("404", "Not Found"); exit; }
        t_relay();
        exit;
    }
    sl_send_reply("405", "Method Not Allowed");
}
CFG
kamailio -f "$dir/kamailio.cfg" -DD -E -P "$dir/run/k.pid" -Y "$dir/run" -w "$dir" >"$dir/kamailio.out" 2>"$dir/kamailio.log" & pids+=($!)
sleep 1

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
start() { "$VB" run --config "$dir/$1.toml" 2>"$dir/$1.log" & pids+=($!); eval "pid_$1=$!"; for _ in $(seq 50); do [ -S "$dir/$1.sock" ] && break; sleep 0.1; done; }
start bridge; start carol; start mallory
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
for _ in $(seq 50); do "$VB" status --config "$dir/carol.toml" | grep -q "\[active\]" && break; sleep 0.1; done
if "$VB" status --config "$dir/carol.toml" | grep -q "\[active\]"; then pass "carol -> kamailio -> bridge: call established"; else fail "call through kamailio: $(grep -i 'call' "$dir/carol.log" | tail -n 2)"; fi
sleep 3
"$VB" hangup --config "$dir/carol.toml"
sleep 0.5
if "$AT" analyze --wav "$dir/bridge-heard.wav" --freq 440 --min-seconds 2 --min-dbfs -8 >"$dir/a.txt"; then pass "bridge heard carol's 440 Hz through the proxied call"; else fail "$(cat "$dir/a.txt")"; fi
if "$AT" analyze --wav "$dir/carol-heard.wav" --freq 1000 --min-seconds 2 --min-dbfs -8 >"$dir/b.txt"; then pass "carol heard bridge's 1 kHz"; else fail "$(cat "$dir/b.txt")"; fi

kill -TERM "$pid_bridge"
if wait "$pid_bridge"; then pass "bridge exited 0 on SIGTERM"; else fail "bridge exit status"; fi
"$VB" call sip:bridge@127.0.0.1 --config "$dir/carol.toml"
sleep 1
if grep -q 'code=404' "$dir/carol.log"; then pass "after un-REGISTER, kamailio answers 404 for bridge"; else fail "no 404 after bridge un-registered: $(grep -i ended "$dir/carol.log" | tail -n 1)"; fi
echo "$passed passed, $failed failed"
[ "$failed" = 0 ] || { tail -n 20 "$dir/kamailio.log"; exit 1; }
