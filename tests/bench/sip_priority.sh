#!/usr/bin/env bash
# Benchmark (prints numbers): voipbridge (release build, default answer
# policy plus one allow-listed caller) under a UDP INVITE flood, loopback
# only: OPTIONS and in-dialog INFO round trips during and after the flood,
# 403s sent, peak RSS, whether the live call survives. See
# tests/bench/sip_priority.py. Run it alone (in a network namespace on a
# shared machine):  ip netns exec NS bash tests/bench/sip_priority.sh [COUNT [SECONDS]]
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
VB=${CARGO_TARGET_DIR:-$root/target}/release/voipbridge
[ -x "$VB" ] || { echo "build it first: cargo build --release -p voipbridge" >&2; exit 1; }
dir=$(mktemp -d)
trap 'kill $vb 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$dir"' EXIT
for ban in true false; do
# Twice: with the ban table (the default: the scanner is banned after
# max_unauthorised refusals) and without it (the priority intake alone
# carries the whole flood).
echo "== [ban] enabled = $ban"
cat >"$dir/vb.toml" <<CFG
[account]
uri = "sip:bridge@127.0.0.1:5961"
[sip]
listen = "127.0.0.1:5961"
[media]
rtp_ports = "42300-42310"
[audio]
capture = "tone:1000"
playback = "null"
[call]
allow = ["peer@127.0.0.1"]
[ban]
enabled = $ban
[control]
socket = "$dir/vb.sock"
CFG
rm -f "$dir/vb.sock"
RUST_LOG=warn "$VB" run --config "$dir/vb.toml" 2>"$dir/vb.log" & vb=$!
for _ in $(seq 50); do [ -S "$dir/vb.sock" ] && break; sleep 0.1; done
python3 "$root/tests/bench/sip_priority.py" 5961 "$vb" "${1:-20000}" "${2:-10}"
echo "voipbridge log lines (warn and above): $(wc -l <"$dir/vb.log")"
grep -i ban "$dir/vb.log" || true
kill $vb; wait $vb 2>/dev/null || true
done
