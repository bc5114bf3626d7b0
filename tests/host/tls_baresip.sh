#!/usr/bin/env bash
# voipbridge against baresip (Debian's baresip-core) over TLS on loopback,
# both ways, with a test CA this script creates, and SRTP with SDES keys
# (RFC 3711, RFC 4568). voipbridge speaks TLS only (`[sip] transport =
# "tls"`) with `[media] srtp = "mandatory"`; baresip listens for TLS on its
# SIP port + 1 and loads srtp.so with `mediaenc=srtp-mand`.
#  1. baresip calls voipbridge (sip:...;transport=tls): baresip's TLS
#     connection to our listener (our certificate, signed by the test CA),
#     an RTP/SAVP offer answered with our key;
#  2. voipbridge calls baresip at sips:dave@localhost:PORT: the host name
#     goes through the system resolver, baresip's certificate is verified
#     for "localhost"; our RTP/SAVP offer; `status` shows the call's SRTP;
#  3. baresip without SRTP (a plain RTP/AVP offer) calls voipbridge: 488,
#     no media;
#  4. a baresip certificate from another CA: voipbridge refuses the call's
#     TLS connection with the check and the name, and the call fails.
# Each SRTP call: voipbridge sends 1 kHz, baresip 440 Hz, each recording
# must hold the other's tone. Both ends drop what does not authenticate
# (voipbridge's transform refuses plain RTP, baresip's srtp-mand too), so
# the tones prove the media was SRTP both ways. No key reaches the log.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
bin=${CARGO_TARGET_DIR:-$root/target}/debug
VB=$bin/voipbridge AT=$bin/audiotest
for p in baresip openssl; do command -v $p >/dev/null || { echo "FAIL: $p not installed (make setup)"; exit 1; }; done
. "$root/tests/lib/host.bash"
. "$root/tests/lib/pki.sh"
BPORT=5690 VPORT=5693

pki=$dir/pki; mkdir -p "$pki"
pki_ca "$pki" ca && pki_ca "$pki" other
pki_cert "$pki" ca vb "DNS:bridge.test,IP:127.0.0.1"
pki_cert "$pki" ca dave "DNS:localhost,IP:127.0.0.1"
pki_cert "$pki" other mallory "DNS:localhost,IP:127.0.0.1"

mkdir -p "$dir/bs/snd"
"$AT" gen --wav --rate 8000 --freq 440 --seconds 20 "$dir/bs/tone440.wav"
. "$root/tests/lib/baresip.sh"
bs_setup() { # CERT ACCOUNT-PARAMS
    baresip_config "$dir/bs" "$BPORT" "$dir/bs/tone440.wav" "<sip:dave@127.0.0.1:$((BPORT + 1));transport=tls>;regint=0;answermode=auto;audio_codecs=PCMU,PCMA${2:-}" menu
    # baresip registers media encryption modules before accounts read mediaenc.
    sed -i 's/^module\t\t\taccount.so$/module\t\t\tsrtp.so\n&/' "$dir/bs/config"
    grep -q "srtp.so" "$dir/bs/config" || { echo "FAIL: srtp.so not in baresip's config"; exit 1; }
    cat "$pki/$1.pem" "$pki/$1.key" >"$dir/bs/cert.pem"
    printf 'sip_certificate\t\t%s\nsip_cafile\t\t%s\n' "$dir/bs/cert.pem" "$pki/ca.pem" >>"$dir/bs/config"
}
cat >"$dir/vb.toml" <<CFG
[account]
uri = "sip:vb@127.0.0.1"
[sip]
listen = "127.0.0.1:$VPORT"
transport = "tls"
[tls]
ca_file = "$pki/ca.pem"
cert_file = "$pki/vb.pem"
key_file = "$pki/vb.key"
[media]
rtp_ports = "43000-43010"
srtp = "mandatory"
[audio]
capture = "tone:1000"
playback = "wav:$dir/vb-heard.wav"
[call]
allow = ["dave@127.0.0.1", "dave@localhost"]
[control]
socket = "$dir/vb.sock"
CFG
vb_start vb
call_line() { local out; out=$("$VB" status --config "$dir/vb.toml" 2>&1 || true); grep "^call " <<<"$out" || true; }
check_audio() { check_tone "$@" --min-seconds 2 --min-dbfs -8 --window 0.5; }

# 1. baresip -> voipbridge over TLS, SRTP.
bs_setup dave ";mediaenc=srtp-mand"
timeout 30 baresip -f "$dir/bs" -e "/dial sip:vb@127.0.0.1:$VPORT;transport=tls" -t 6 </dev/null >"$dir/bs1.log" 2>&1 || true
if grep -q "Call established" "$dir/bs1.log"; then pass "baresip -> voipbridge over TLS: call established"; else fail "baresip -> voipbridge over TLS: $(grep -a -i -E 'call|tls' "$dir/bs1.log" | tail -n 3 | tr '\n' ' ')"; fi
if grep -q 'starting media.*srtp="\?AES_CM_128_HMAC_SHA1_\(80\|32\)' "$dir/vb.log"; then pass "incoming call's media is SRTP: $(grep -o 'srtp="\?AES_CM_128_HMAC_SHA1_[0-9]*' "$dir/vb.log" | head -n 1)"; else fail "incoming call not SRTP: $(grep 'starting media' "$dir/vb.log" | tail -n 1)"; fi
for _ in $(seq 30); do [ -z "$(call_line vb)" ] && break; sleep 0.1; done
if [ -z "$(call_line vb)" ]; then pass "baresip's BYE over TLS ended the call"; else fail "voipbridge still has the call: $(call_line vb)"; fi
check_audio "voipbridge heard baresip's 440 Hz (incoming TLS call)" "$dir/vb-heard.wav" 440
check_audio "baresip heard voipbridge's 1 kHz (incoming TLS call)" "$(ls "$dir"/bs/snd/*-dec.wav | head -n 1)" 1000
rm -f "$dir"/bs/snd/*

# 2. voipbridge -> baresip at sips:dave@localhost:PORT.
timeout 30 baresip -f "$dir/bs" -t 12 </dev/null >"$dir/bs2.log" 2>&1 & bsp=$!
pids+=($bsp)
sleep 1.5
"$VB" call "sips:dave@localhost:$((BPORT + 1))" --config "$dir/vb.toml"
for _ in $(seq 50); do [[ "$(call_line vb)" == *"[active]"* ]] && break; sleep 0.1; done
if [[ "$(call_line vb)" == *"[active]"* ]]; then pass "voipbridge -> baresip over TLS: call established"; else fail "voipbridge -> baresip over TLS: $(grep -v DEBUG "$dir/vb.log" | tail -n 3)"; fi
if grep -q "TLS connection established, certificate verified.*name=localhost" "$dir/vb.log"; then pass "baresip's certificate verified for 'localhost' (the URI's host)"; else fail "no verified TLS connection to localhost: $(grep -i tls "$dir/vb.log" | tail -n 2)"; fi
sleep 2
st=$("$VB" status --config "$dir/vb.toml" 2>&1 || true)
if grep -q "media SRTP AES_CM_128_HMAC_SHA1_" <<<"$st"; then pass "status shows the call's SRTP: $(grep -o 'media SRTP [A-Z0-9_]*' <<<"$st")"; else fail "status without SRTP: $(grep -E 'devices|^call' <<<"$st" | tr '\n' ' ')"; fi
sleep 2
"$VB" hangup --config "$dir/vb.toml"
sleep 1
if grep -q "terminated" "$dir/bs2.log"; then pass "voipbridge's BYE over TLS ended the call in baresip"; else fail "baresip did not see the BYE"; fi
kill "$bsp" 2>/dev/null || true; wait "$bsp" 2>/dev/null || true
check_audio "voipbridge heard baresip's 440 Hz (outgoing TLS call)" "$dir/vb-heard.wav" 440
check_audio "baresip heard voipbridge's 1 kHz (outgoing TLS call)" "$(ls "$dir"/bs/snd/*-dec.wav 2>/dev/null | head -n 1)" 1000
rm -f "$dir"/bs/snd/*

# 3. A plain RTP offer (baresip without mediaenc) to mandatory SRTP: 488.
bs_setup dave
starts=$(grep -c "starting media" "$dir/vb.log" || true)
timeout 30 baresip -f "$dir/bs" -e "/dial sip:vb@127.0.0.1:$VPORT;transport=tls" -t 3 </dev/null >"$dir/bs3p.log" 2>&1 || true
if grep -a -q "488 Not Acceptable Here" "$dir/bs3p.log" && ! grep -q "Call established" "$dir/bs3p.log" && [ "$(grep -c "starting media" "$dir/vb.log" || true)" = "$starts" ]; then pass "a plain RTP offer refused in mandatory mode: $(grep -a -o '488 Not Acceptable Here.*' "$dir/bs3p.log" | head -n 1)"; else fail "plain offer in mandatory mode: $(grep -a -i -E 'call|488|established' "$dir/bs3p.log" | tail -n 3 | tr '\n' ' ')"; fi
rm -f "$dir"/bs/snd/*

# No SDES key in our log (keys are redacted everywhere; debug level logs
# whole SIP messages).
if grep -E -q 'inline:[A-Za-z0-9+/]{8}' "$dir/vb.log"; then fail "an SDES key in voipbridge's log: $(grep -E -o '.{20}inline:[A-Za-z0-9+/]{8}' "$dir/vb.log" | head -n 1)"; else pass "no SDES key in voipbridge's log ($(grep -c 'inline:<redacted>' "$dir/vb.log" || true) redacted)"; fi

# 4. A baresip certificate from a CA we do not trust.
bs_setup mallory
timeout 30 baresip -f "$dir/bs" -t 6 </dev/null >"$dir/bs3.log" 2>&1 & bsp=$!
pids+=($bsp)
sleep 1.5
"$VB" call "sip:dave@127.0.0.1:$((BPORT + 1));transport=tls" --config "$dir/vb.toml"
for _ in $(seq 50); do grep -q "TLS to 127.0.0.1:$((BPORT + 1)) failed" "$dir/vb.log" && break; sleep 0.1; done
sleep 0.5
line=$(grep "TLS to 127.0.0.1:$((BPORT + 1)) failed" "$dir/vb.log" | tail -n 1 | sed 's/.*ERROR [^ ]* //')
if [[ "$line" == *"certificate of 127.0.0.1 rejected: it is not issued by a CA in ca_file $pki/ca.pem (unknown issuer)"* ]] && [[ "$(call_line vb)" != *"[active]"* ]]; then pass "an untrusted baresip certificate refused, no call: $line"; else fail "untrusted peer: [$(call_line vb)] $line"; fi
kill "$bsp" 2>/dev/null || true; wait "$bsp" 2>/dev/null || true

echo "$passed passed, $failed failed"
[ "$failed" = 0 ] || { grep -v DEBUG "$dir/vb.log" | tail -n 20; tail -n 20 "$dir/bs1.log"; exit 1; }
