#!/usr/bin/env bash
# Registration across registrar restarts (issue 13): kamailio with digest
# auth, bridge registered for 8 s (refresh every 6.4 s), t1_ms = 100.
#  - kamailio restarted between two refreshes: the new instance does not
#    know bridge's nonce and challenges afresh; bridge must re-authenticate
#    with the new nonce (not report a wrong password) and stay registered;
#    the new kamailio routes carol's call to bridge, so it holds the binding;
#  - kamailio down during a refresh: the REGISTER times out (408), bridge
#    backs off and retries; kamailio back: bridge registers again.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
bin=${CARGO_TARGET_DIR:-$root/target}/debug
VB=$bin/voipbridge
command -v kamailio >/dev/null || { echo "FAIL: kamailio not installed (make setup)"; exit 1; }
. "$root/tests/lib/host.bash"
KPORT=5760

kamailio_db "$dir" bridge:bridgepass carol:carolpass
sed -e "s|@PORT@|$KPORT|g" -e "s|@DB@|$dir/db|g" \
    -e 's|^modparam("usrloc", "db_mode", 0)|modparam("usrloc", "db_mode", 0)\nmodparam("registrar", "min_expires", 2)|' \
    "$root/tests/lib/kamailio-registrar.cfg" >"$dir/kamailio.cfg"
kpid=""
kam_start() {
    kamailio -f "$dir/kamailio.cfg" -DD -E -P "$dir/run/k.pid" -Y "$dir/run" -w "$dir" >>"$dir/kamailio.out" 2>>"$dir/kamailio.log" &
    kpid=$!
    pids+=($kpid)
    sleep 1
}
kam_stop() { kill -TERM "$kpid" 2>/dev/null || true; wait "$kpid" 2>/dev/null || true; }

mkcfg() { # NAME USER PASS PORT RTPBASE EXPIRES
    cat >"$dir/$1.toml" <<CFG
[account]
uri = "sip:$2@127.0.0.1"
registrar = "sip:127.0.0.1:$KPORT;transport=udp"
password = "$3"
expires = $6
[sip]
listen = "127.0.0.1:$4"
t1_ms = 100
[media]
rtp_ports = "$5-$(($5 + 10))"
[audio]
capture = "null"
playback = "null"
[control]
socket = "$dir/$1.sock"
CFG
}
mkcfg bridge bridge bridgepass 5761 42000 8
mkcfg carol carol carolpass 5762 42020 120
reg_state() { "$VB" status --config "$dir/$1.toml" 2>/dev/null | sed -n 's/^registration: //p'; }
wait_reg() { for _ in $(seq "${3:-100}"); do [ "$(reg_state "$1")" = "$2" ] && return 0; sleep 0.1; done; return 1; }
registrations() { grep -c '"event":"registered"' "$dir/bridge.log" || true; }

kam_start
vb_start bridge
vb_start carol
if wait_reg bridge registered && wait_reg carol registered; then pass "bridge and carol registered (registrar given as a sip: URI with ;transport=udp)"; else fail "registration: bridge $(reg_state bridge), carol $(reg_state carol)"; fi

# 1. Restart between refreshes.
before=$(registrations)
kam_stop
kam_start
for _ in $(seq 150); do [ "$(registrations)" -gt "$before" ] && break; sleep 0.1; done
if [ "$(registrations)" -gt "$before" ] && [ "$(reg_state bridge)" = registered ]; then pass "after the restart bridge's refresh re-authenticated with the new instance's nonce"; else fail "after the restart: $(reg_state bridge): $(grep -iE 'registration|nonce' "$dir/bridge.log" | tail -n 3)"; fi
if grep -q "authentication failed" "$dir/bridge.log"; then fail "the restart was taken as a wrong password: $(grep 'authentication failed' "$dir/bridge.log" | head -n 1)"; else pass "no 'wrong password' after the restart"; fi
if grep -qE "new nonce and no stale=true|nonce is stale" "$dir/bridge.log"; then pass "bridge saw the restart: $(grep -ohE 'new nonce and no stale=true|nonce is stale' "$dir/bridge.log" | head -n 1)"; else fail "no sign of the new nonce in bridge's log"; fi
# The new instance routes a call to bridge: it holds the fresh binding.
"$VB" call sip:bridge@127.0.0.1 --config "$dir/carol.toml"
ok=""
for _ in $(seq 50); do
    if "$VB" status --config "$dir/carol.toml" | grep -q "\[active\]"; then ok=1; break; fi
    sleep 0.1
done
if [ -n "$ok" ]; then pass "carol -> restarted kamailio -> bridge: call established (registrar-routed, answered by default policy)"; else fail "call through the restarted kamailio: $(grep -i 'call' "$dir/carol.log" | tail -n 2)"; fi
"$VB" hangup --config "$dir/carol.toml" || true
sleep 0.5

# 2. Down during a refresh, then back.
kam_stop
if wait_reg bridge failed 150; then pass "registrar down: bridge's refresh timed out ($(grep -o 'code=408' "$dir/bridge.log" | head -n 1))"; else fail "registrar down: $(reg_state bridge)"; fi
kam_start
if wait_reg bridge registered 150; then pass "registrar back: bridge registered again after its back-off"; else fail "registrar back: $(reg_state bridge)"; fi

echo "$passed passed, $failed failed"
[ "$failed" = 0 ] || { grep -v DEBUG "$dir/bridge.log" | tail -n 30; tail -n 20 "$dir/kamailio.log"; exit 1; }
