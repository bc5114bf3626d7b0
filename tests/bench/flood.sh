#!/usr/bin/env bash
# Flood benchmark (issue 14): prints numbers, asserts nothing.
#
# A release voipbridge ("bridge") registered with kamailio, and a legitimate
# caller ("carol", another voipbridge registered with the same kamailio),
# on loopback only. Three floods of 20,000 INVITEs with fresh Call-IDs in
# 10 s (what scanners do), each against a freshly started bridge:
#   udp-1src   one source address (the ban table's case)
#   udp-240src 240 source addresses, each below the rate threshold (83
#              INVITEs per 10 s): shedding and the SIP layer's own bounds
#   tcp-64conn 64 TCP connections from 64 addresses (bridge on TCP)
# During each flood an OPTIONS probe from another address every 200 ms
# (round trip), and 5 s in, carol calls bridge through kamailio (a
# registrar-routed INVITE); after the flood 10 more probes. For each it
# prints: INVITEs sent, what bridge handed to its SIP layer per second,
# shed / banned drops / bans, bridge's peak RSS (VmHWM), the probe's round
# trips during and after, and whether carol's call was answered and how fast.
#
# usage: tests/bench/flood.sh [COUNT SECONDS]   (run it in a network namespace
#        while others share the machine: ip netns exec NS bash tests/bench/flood.sh)
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
COUNT=${1:-20000} SECS=${2:-10}
VB=${CARGO_TARGET_DIR:-$root/target}/release/voipbridge
for p in kamailio python3; do command -v $p >/dev/null || { echo "flood.sh: $p not installed (make setup)" >&2; exit 1; }; done
if [ ! -x "$VB" ] || [ -n "$(find "$root/voipbridge/src" -newer "$VB" -name '*.rs' | head -n 1)" ]; then
    echo "flood.sh: building the release voipbridge" >&2
    (cd "$root" && cargo build -q --release -p voipbridge)
fi
rel=$VB
. "$root/tests/lib/host.bash"
VB=$rel # host.bash points VB at the test profile's build: a benchmark measures the release one
KPORT=5890
kamailio_db "$dir" bridge:bridgepass carol:carolpass
sed -e "s|@PORT@|$KPORT|g" -e "s|@DB@|$dir/db|g" \
    -e "s|^listen=udp:127.0.0.1:$KPORT|listen=udp:127.0.0.1:$KPORT\nlisten=tcp:127.0.0.1:$KPORT|" \
    "$root/tests/lib/kamailio-registrar.cfg" >"$dir/kamailio.cfg"
kamailio -f "$dir/kamailio.cfg" -DD -E -P "$dir/run/k.pid" -Y "$dir/run" -w "$dir" >/dev/null 2>"$dir/kamailio.log" & pids+=($!)
sleep 1

mkcfg() { # NAME USER PORT RTP TRANSPORT
    cat >"$dir/$1.toml" <<CFG
[account]
uri = "sip:$2@127.0.0.1"
registrar = "127.0.0.1:$KPORT"
password = "$2pass"
[sip]
listen = "127.0.0.1:$3"
transport = "$5"
[media]
rtp_ports = "$4-$(($4 + 20))"
[audio]
capture = "null"
playback = "null"
[control]
socket = "$dir/$1.sock"
CFG
}
status_json() { "$VB" status --json --config "$dir/$1.toml" 2>/dev/null || echo '{}'; }
reg_ok() { [ "$(status_json "$1" | python3 -c 'import json,sys; print(json.load(sys.stdin).get("registration",""))' 2>/dev/null)" = registered ]; }
jget() { python3 -c "import json,sys; d=json.load(sys.stdin); print(eval(sys.argv[1]))" "$1"; }

results=()
phase() { # NAME TRANSPORT SOURCES
    local name=$1 tp=$2 src=$3
    mkcfg bridge bridge 5891 44000 "$tp"
    mkcfg carol carol 5892 44100 "$tp"
    vb_start bridge; vb_start carol
    for _ in $(seq 100); do reg_ok bridge && reg_ok carol && break; sleep 0.1; done
    reg_ok bridge || { echo "flood.sh: bridge did not register ($name)" >&2; exit 1; }
    local before; before=$(status_json bridge | jget 'd["transport"]["received"]')
    local extra=""
    [ "$tp" = tcp ] && extra="--conns 64"
    python3 "$root/tests/bench/flood.py" --target 127.0.0.1:5891 --proto "$tp" --count "$COUNT" \
        --seconds "$SECS" --sources "$src" $extra >"$dir/$name.json" &
    local fp=$!
    sleep "$(python3 -c "print($SECS / 2)")"
    local t0 call_ms="not answered"
    t0=$(date +%s%N)
    "$VB" call sip:bridge@127.0.0.1 --config "$dir/carol.toml" || true
    for _ in $(seq 100); do
        if [[ "$("$VB" status --config "$dir/carol.toml" 2>/dev/null)" == *"[active]"* ]]; then
            call_ms="answered in $(( ($(date +%s%N) - t0) / 1000000 )) ms"; break
        fi
        sleep 0.05
    done
    if [ "$call_ms" = "not answered" ]; then
        call_ms="not answered ($(grep -o 'call ended.*' "$dir/carol.log" | tail -n 1 | cut -c1-60))"
    fi
    "$VB" hangup --config "$dir/carol.toml" >/dev/null 2>&1 || true
    wait "$fp"
    local st; st=$(status_json bridge)
    local hwm; hwm=$(awk '/VmHWM/ {printf "%.1f MiB", $2 / 1024}' /proc/"$pid_bridge"/status)
    local secs; secs=$(jget 'd["seconds"]' <"$dir/$name.json")
    local line
    line=$(python3 - "$dir/$name.json" "$before" "$hwm" "$call_ms" <<PY
import json, sys
f = json.load(open(sys.argv[1])); st = json.loads('''$st''')["transport"]
before, hwm, call = int(sys.argv[2]), sys.argv[3], sys.argv[4]
def pr(p):
    if not p.get("answered"): return "0/%d answered" % p["probes"]
    return "%d/%d answered, p50 %.1f p95 %.1f max %.1f ms" % (p["answered"], p["probes"], p["p50_ms"], p["p95_ms"], p["max_ms"])
print("%-11s sent %5d in %4.1f s | SIP layer got %5.0f msg/s | shed %5d banned drops %5d bans %3d refused conns %3d | peak RSS %s\n%-11s OPTIONS during: %s; after: %s\n%-11s carol via kamailio mid-flood: %s" % (
    "${name}", f["sent"], f["seconds"], (st["received"] - before) / f["seconds"], st["shed"], st["banned_drops"],
    st["bans_total"], st["refused_connections"], hwm, "", pr(f["probe_during"]), pr(f["probe_after"]), "", call))
PY
)
    results+=("$line")
    echo "$line"
    kill -TERM "$pid_bridge" "$pid_carol"; wait "$pid_bridge" || true; wait "$pid_carol" || true
    rm -f "$dir"/*.sock
}
echo "flood.sh: $COUNT INVITEs in $SECS s per phase, release build, $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg)"
phase udp-1src udp 127.0.0.10-127.0.0.10
phase udp-240src udp 127.0.0.10-127.0.0.249
phase tcp-64conn tcp 127.0.0.10-127.0.0.73
echo
echo "== summary"
printf '%s\n' "${results[@]}"
