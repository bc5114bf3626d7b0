#!/usr/bin/env bash
# voipbridge with `[sip] transport = "tls"` (RFC 3261 26) against kamailio's
# TLS module as registrar and proxy, with a test CA this script creates.
# voipbridge then speaks TLS only, so every exchange that succeeds went over
# TLS, with kamailio's certificate verified by name:
#  - bridge (registrar "localhost:PORT": the name checked is "localhost")
#    and carol (registrar an IP address and a sips: AOR: the name checked
#    is the AOR's domain "registrar.test") register with digest auth;
#  - both refresh (kamailio grants 12 s) over the same TLS connection;
#  - kamailio restarts: bridge sees its flow go and registers again at
#    once over a new connection (RFC 5626 4.4);
#  - carol calls bridge through kamailio (kamailio opens a TLS connection
#    to bridge's listener and verifies bridge's certificate), audio both
#    ways checked by frequency, carol's BYE ends it;
#  - refusals, each with the log line naming the check and the name: a
#    registrar certificate from another CA (unknown issuer), an expired one,
#    one for another name; none of them registers;
#  - a registrar that requires client certificates: registered with
#    [tls] cert_file, refused without one (the alert and the fix logged).
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
bin=${CARGO_TARGET_DIR:-$root/target}/debug
VB=$bin/voipbridge AT=$bin/audiotest
for p in kamailio openssl python3; do command -v $p >/dev/null || { echo "FAIL: $p not installed (make setup)"; exit 1; }; done
[ -f /usr/lib/x86_64-linux-gnu/kamailio/modules/tls.so ] || ls /usr/lib/*/kamailio/modules/tls.so >/dev/null 2>&1 \
    || { echo "FAIL: kamailio's tls.so not installed (kamailio-tls-modules; make setup)"; exit 1; }
. "$root/tests/lib/host.bash"
. "$root/tests/lib/pki.sh"
KPORT=5660 KOLD=5662 KREQ=5664

# The test PKI: our CA signs kamailio's and the phones' certificates; an
# expired kamailio certificate; another CA nobody trusts.
pki=$dir/pki; mkdir -p "$pki"
pki_ca "$pki" ca && pki_ca "$pki" other
pki_cert "$pki" ca kamailio "DNS:localhost,DNS:registrar.test,IP:127.0.0.1"
pki_cert "$pki" ca kamailio-old "DNS:localhost,DNS:registrar.test,IP:127.0.0.1" 20200101000000Z 20200201000000Z
pki_cert "$pki" ca bridge "DNS:bridge.test,IP:127.0.0.1"
pki_cert "$pki" ca carol "DNS:carol.test,IP:127.0.0.1"

# kamailio: the shared registrar config plus TLS (listen=tls, tls.so).
start_kamailio() { # NAME PORT CERT [require: client certificates required]
    local n=$1 port=$2 cert=$3 req=no
    if [ "${4:-}" = require ]; then req=yes; fi
    mkdir -p "$dir/$n/db" "$dir/$n/run"
    printf 'table_name(string) table_version(int)\nsubscriber:7\nlocation:9\n' >"$dir/$n/db/version"
    cat >"$dir/$n/db/subscriber" <<'DB'
id(int,auto) username(string) domain(string) password(string) ha1(string,null) ha1b(string,null)
1:bridge:127.0.0.1:bridgepass:::
2:carol:registrar.test:carolpass:::
3:dave:127.0.0.1:davepass:::
DB
    cat >"$dir/$n/tls.cfg" <<TLS
[server:default]
method = TLSv1.2+
verify_certificate = $req
require_certificate = $req
certificate = $pki/$cert.pem
private_key = $pki/$cert.key
ca_list = $pki/ca.pem

[client:default]
method = TLSv1.2+
verify_certificate = yes
require_certificate = yes
ca_list = $pki/ca.pem
TLS
    sed -e "s|@PORT@|$port|g" -e "s|@DB@|$dir/$n/db|g" \
        -e "s|^listen=udp:127.0.0.1:$port|enable_tls=yes\nlisten=tls:127.0.0.1:$port|" \
        -e 's|^loadmodule "sl.so"|loadmodule "tls.so"\nmodparam("tls", "config", "'"$dir/$n/tls.cfg"'")\nloadmodule "sl.so"|' \
        -e 's|^loadmodule "usrloc.so"|loadmodule "xlog.so"\nloadmodule "usrloc.so"|' \
        -e 's|^modparam("usrloc", "db_mode", 0)|modparam("usrloc", "db_mode", 0)\nmodparam("registrar", "min_expires", 10)\nmodparam("registrar", "max_expires", 12)|' \
        -e 's|if (!save("location"))|xlog("L_NOTICE", "REGISTER over $pr from $fU contact $ct via $si:$sp\\n"); if (!save("location"))|' \
        -e 's|if (is_method("INVITE")) {|if (is_method("INVITE")) { xlog("L_NOTICE", "INVITE over $pr from $fU\\n");|' \
        "$root/tests/lib/kamailio-registrar.cfg" >"$dir/$n/kamailio.cfg"
    grep -q "listen=tls:127.0.0.1:$port" "$dir/$n/kamailio.cfg" || { echo "FAIL: kamailio config not rewritten"; exit 1; }
    kamailio -f "$dir/$n/kamailio.cfg" -DD -E -P "$dir/$n/run/k.pid" -Y "$dir/$n/run" -w "$dir/$n" >"$dir/$n/out" 2>"$dir/$n/log" & pids+=($!)
}
start_kamailio k "$KPORT" kamailio
start_kamailio kold "$KOLD" kamailio-old
start_kamailio kreq "$KREQ" kamailio require
for _ in $(seq 50); do grep -q "listening on" "$dir/k/log" 2>/dev/null && break; sleep 0.1; done
sleep 0.5

mkcfg() { # NAME AOR PASS PORT RTPBASE CAPTURE REGISTRAR CA [CERT]
    local own=""
    if [ -n "${9:-}" ]; then own="cert_file = \"$pki/$9.pem\"
key_file = \"$pki/$9.key\""; fi
    cat >"$dir/$1.toml" <<CFG
[account]
uri = "$2"
registrar = "$7"
password = "$3"
expires = 12
[sip]
listen = "127.0.0.1:$4"
transport = "tls"
[tls]
ca_file = "$pki/$8.pem"
$own
[media]
rtp_ports = "$5-$(($5 + 10))"
[audio]
capture = "$6"
playback = "wav:$dir/$1-heard.wav"
[control]
socket = "$dir/$1.sock"
CFG
}
call_line() { local out; out=$("$VB" status --config "$dir/$1.toml" 2>&1 || true); grep "^call " <<<"$out" || true; }
in_state() { [[ "$(call_line "$1")" == *"[$2]"* ]]; }
reg_state() { "$VB" status --config "$dir/$1.toml" 2>/dev/null | sed -n 's/^registration: //p'; }
check_audio() { check_tone "$@" --min-seconds 2 --min-dbfs -8 --window 0.5; }

# 1. Registration over TLS, names checked two ways.
mkcfg bridge "sip:bridge@127.0.0.1" bridgepass 5671 42800 tone:1000 "localhost:$KPORT" ca bridge
mkcfg carol "sips:carol@registrar.test" carolpass 5672 42820 tone:440 "127.0.0.1:$KPORT" ca carol
vb_start bridge; vb_start carol
for _ in $(seq 80); do [ "$(reg_state bridge)" = registered ] && [ "$(reg_state carol)" = registered ] && break; sleep 0.1; done
for u in bridge carol; do
    if [ "$(reg_state $u)" = registered ]; then pass "$u registered with kamailio over TLS (digest)"; else fail "$u registration over TLS: $(reg_state $u)"; fi
done
if grep -q 'TLS connection established, certificate verified.*name=localhost' "$dir/bridge.log"; then pass "bridge verified kamailio's certificate for 'localhost' (the registrar's host name)"; else fail "bridge: no verified TLS connection for localhost: $(grep -i tls "$dir/bridge.log" | head -n 3)"; fi
if grep -q 'TLS connection established, certificate verified.*name=registrar.test' "$dir/carol.log"; then pass "carol verified kamailio's certificate for 'registrar.test' (the sips: AOR's domain; registrar given as an IP)"; else fail "carol: no verified TLS connection for registrar.test: $(grep -i tls "$dir/carol.log" | head -n 3)"; fi
if wait_log "REGISTER over tls from bridge contact <sip:bridge@127.0.0.1:5671;transport=tls>" "$dir/k/log"; then pass "kamailio saw bridge's REGISTER over TLS with a transport=tls Contact"; else fail "kamailio log: $(grep 'REGISTER over' "$dir/k/log" | head -n 2)"; fi
st=$("$VB" status --config "$dir/bridge.toml")
if grep -q "^transport: TLS 127.0.0.1:5671 listening, servers verified against ca_file $pki/ca.pem" <<<"$st"; then pass "status shows the TLS transport, the listener and the trust"; else fail "status: $st"; fi

# 2. Refresh (kamailio grants at most 12 s: refreshed at 80 %) on the same connection.
for _ in $(seq 150); do [ "$(grep -c 'REGISTER over tls from bridge' "$dir/k/log")" -ge 2 ] && break; sleep 0.1; done
n=$(grep -c 'REGISTER over tls from bridge' "$dir/k/log" || true)
ports=$(grep 'REGISTER over tls from bridge' "$dir/k/log" | sed -n 's/.* via 127.0.0.1:\([0-9]*\)$/\1/p' | sort -u | wc -l)
if [ "$n" -ge 2 ] && [ "$ports" = 1 ] && [ "$(reg_state bridge)" = registered ]; then pass "bridge refreshed its registration over the same TLS connection ($n REGISTERs, one source port)"; else fail "refresh: $n REGISTERs from $ports source ports, state $(reg_state bridge)"; fi

# 2b. The registrar restarts: the flow is gone, bridge registers again at
# once over a new connection (RFC 5626 4.4), without waiting for its refresh.
kpid=${pids[0]}
kill -TERM "$kpid"; wait "$kpid" 2>/dev/null || true
start_kamailio k "$KPORT" kamailio
for _ in $(seq 60); do grep -q "registering again" "$dir/bridge.log" && [ "$(reg_state bridge)" = registered ] && break; sleep 0.1; done
if grep -q "the connection to the registrar is gone: registering again" "$dir/bridge.log" && [ "$(reg_state bridge)" = registered ]; then pass "kamailio restarted: bridge saw its TLS flow go and registered again over a new one"; else fail "after the registrar restart: $(grep -i -E 'gone|registering' "$dir/bridge.log" | tail -n 2), state $(reg_state bridge)"; fi
for _ in $(seq 60); do [ "$(reg_state carol)" = registered ] && grep -q "REGISTER over tls from carol" "$dir/k/log" && break; sleep 0.1; done

# 3. A proxied call over TLS: carol -> kamailio -> bridge.
"$VB" call sips:bridge@127.0.0.1 --config "$dir/carol.toml"
for _ in $(seq 80); do in_state carol active && in_state bridge active && break; sleep 0.1; done
if in_state carol active && in_state bridge active; then pass "carol -> kamailio -> bridge over TLS: call established"; else fail "call over TLS: carol [$(call_line carol)] bridge [$(call_line bridge)]"; fi
if wait_log "INVITE over tls from carol" "$dir/k/log"; then pass "kamailio got carol's INVITE over TLS"; else fail "no INVITE over TLS in kamailio's log"; fi
sleep 3
"$VB" hangup --config "$dir/carol.toml"
for _ in $(seq 30); do [ -z "$(call_line bridge)" ] && break; sleep 0.1; done
if [ -z "$(call_line bridge)" ]; then pass "carol's BYE over TLS ended bridge's call"; else fail "bridge still in the call: $(call_line bridge)"; fi
sleep 0.3
check_audio "bridge heard carol's 440 Hz (TLS signalling)" "$dir/bridge-heard.wav" 440
check_audio "carol heard bridge's 1 kHz (TLS signalling)" "$dir/carol-heard.wav" 1000
kill -TERM "$pid_bridge" "$pid_carol"
if wait "$pid_bridge" && wait "$pid_carol"; then pass "both exited 0 on SIGTERM (un-REGISTER over TLS)"; else fail "exit status after SIGTERM"; fi

# 4. Certificates that must be refused, each with the check and the name.
refused() { # NAME WHAT EXPECTED-LOG-TEXT
    vb_start "$1"
    for _ in $(seq 60); do grep -q -E "TLS to 127.0.0.1|TLS connection ended by the peer" "$dir/$1.log" && break; sleep 0.1; done
    sleep 0.3
    local line; line=$(grep -E "TLS to 127.0.0.1|TLS connection ended by the peer" "$dir/$1.log" | head -n 1 | sed -E 's/.*(ERROR|WARN) [^ ]* //' || true)
    if [[ "$line" == *"$3"* ]] && [ "$(reg_state "$1")" != registered ]; then pass "$2 refused: $line"; else fail "$2: state $(reg_state "$1"), log: $line"; fi
    kill -TERM "$(eval echo "\$pid_$1")"; wait "$(eval echo "\$pid_$1")" || true
}
mkcfg dave1 "sip:dave@127.0.0.1" davepass 5673 42840 null "localhost:$KPORT" other
refused dave1 "a registrar certificate from an untrusted CA" "certificate of localhost rejected: it is not issued by a CA in ca_file $pki/other.pem (unknown issuer)"
mkcfg dave2 "sip:dave@127.0.0.1" davepass 5674 42850 null "localhost:$KOLD" ca
refused dave2 "an expired registrar certificate" "certificate of localhost rejected: it expired on 2020-02-01 00:00:00 UTC"
mkcfg dave3 "sip:dave@wrong.test" davepass 5675 42860 null "127.0.0.1:$KPORT" ca
refused dave3 "a registrar certificate for another name" "certificate of wrong.test rejected: it is not valid for this name (it is for localhost, registrar.test, 127.0.0.1)"

# 5. A registrar that requires client certificates: ours (cert_file) is
# accepted, and without one the refusal names the alert and the fix.
mkcfg erin "sip:dave@127.0.0.1" davepass 5676 42870 null "localhost:$KREQ" ca bridge
vb_start erin
for _ in $(seq 80); do [ "$(reg_state erin)" = registered ] && break; sleep 0.1; done
if [ "$(reg_state erin)" = registered ]; then pass "registered with a registrar that requires a client certificate ([tls] cert_file)"; else fail "client certificate: $(reg_state erin); $(grep -i tls "$dir/erin.log" | tail -n 2)"; fi
kill -TERM "$pid_erin"; wait "$pid_erin" || true
mkcfg dave4 "sip:dave@127.0.0.1" davepass 5677 42880 null "localhost:$KREQ" ca
refused dave4 "no client certificate for a registrar that requires one" "alert CertificateRequired (it refused our client certificate, or needs one: [tls] cert_file/key_file)"

echo "$passed passed, $failed failed"
[ "$failed" = 0 ] || { for f in bridge carol dave1 dave2 dave3; do echo "== $f"; grep -v DEBUG "$dir/$f.log" 2>/dev/null | tail -n 8; done; tail -n 20 "$dir/k/log"; exit 1; }
