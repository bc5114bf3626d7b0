#!/usr/bin/env bash
# tests/bench/rtpwire.py's split of a round trip at the wire, on a
# synthetic call whose legs are known: the application's clock (as pcmcheck
# prints it) and two RTP streams (as `rtpwire.py capture` records them)
# built with an out leg of 23.4 ms and an in leg of 41.7 ms for the first
# sample of each chirp's packet, a far end that turns packets round in
# 0.3 ms, the bridge's RTP timestamps wrapping mid-call and its first two
# packets on the wire out of order. The legs must come out within 0.2 ms;
# a wire whose times do not fit the card's clock must be refused.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
py=/usr/bin/python3
"$py" -c "import numpy" 2>/dev/null || { echo "SKIP: python3-numpy missing (make setup)"; exit 0; }
w=$(mktemp -d)
trap 'rm -rf "$w"' EXIT
cd "$w"
"$py" - "$root/tests/bench" <<'PY'
import json, sys
sys.path.insert(0, sys.argv[1])
import numpy as np
import rtpwire

RATE, CHIRP, SPACING = 8000, 400, 12000
OUT_MS, IN_MS, ECHO_MS = 23.4, 41.7, 0.3
t0 = 1_796_000_000_000_000_000          # the card's frame 0, wall clock ns
def at(frame):                           # card frame -> wall ns
    return t0 + frame * 1_000_000_000 // RATE

def ulaw(x):
    x = np.clip(x, -32635, 32635).astype(np.int32)
    sign = np.where(x < 0, 0x80, 0)
    m = np.abs(x) + 0x84
    exp = np.floor(np.log2(m)).astype(np.int32) - 7
    exp = np.clip(exp, 0, 7)
    mant = (m >> (exp + 3)) & 0x0F
    return (~(sign | (exp << 4) | mant)) & 0xFF

played = np.zeros(8 * SPACING)
ref = rtpwire.chirp(CHIRP, RATE) * 16000
starts = [SPACING // 4 + i * SPACING + 37 * i for i in range(7)]
for k in starts:
    played[k:k + CHIRP] = ref

# The bridge packs the played samples into 20 ms packets; packet p holds
# frames [p*160, p*160+160) and leaves OUT_MS after its first frame
# played. The far end echoes each 0.3 ms later; the bridge's in leg makes
# the first frame of each echoed packet reach the application IN_MS after
# the echo arrived: round trip = OUT + ECHO + IN for a packet's first frame.
base_ts = 0xFFFFFFFF - 160 * 100         # wraps after 100 packets
packets = []
for p in range(len(played) // 160):
    first = p * 160
    codes = ulaw(played[first:first + 160]).astype(np.uint8).tobytes().hex()
    ts = (base_ts + first) & 0xFFFFFFFF
    sent = at(first) + int(OUT_MS * 1e6)
    back = sent + int(ECHO_MS * 1e6)
    packets.append({"sport": 41610, "dport": 41600, "pt": 0, "seq": p & 0xFFFF, "ts": ts, "ssrc": 7, "payload": codes, "t_ns": sent})
    packets.append({"sport": 41600, "dport": 41610, "pt": 0, "seq": p & 0xFFFF, "ts": ts, "ssrc": 9, "payload": codes, "t_ns": back})
packets[0], packets[2] = packets[2], packets[0]   # out of order on the wire
with open("wire.jsonl", "w") as f:
    for r in packets:
        f.write(json.dumps(r) + "\n")

# pcmcheck's view: chirp k played at card frame k, heard back `lag` frames
# later; its start sits `off` frames into its packet.
rt_ms = OUT_MS + ECHO_MS + IN_MS
with open("rt.txt", "w") as f:
    for k in starts:
        lag = round(rt_ms * RATE / 1000)
        f.write(f"chirp at frame {k}: lag {lag} frames ({lag / 8:.1f} ms), correlation 1.00\n")
    f.write(f"roundtrip-clock t0_ns={t0} play_t0_ns={t0} rate={RATE} chirp_frames={CHIRP} linked=true\n")
PY
"$py" "$root/tests/bench/rtpwire.py" legs --wire wire.jsonl --pcmcheck rt.txt --bridge-ports 41610-41620 | tee legs.txt
fail=0
check() { # NAME PATTERN WANT
    got=$(sed -n "s/.*$2:* median \([0-9.]*\) ms.*/\1/p" legs.txt | head -n 1)
    if [ -n "$got" ] && awk -v g="$got" -v w="$3" 'BEGIN { exit !(g - w <= 0.2 && w - g <= 0.2) }'; then
        echo "PASS: $1 $got ms (built with $3)"
    else
        echo "FAIL: $1 '$got' ms, built with $3"; fail=1
    fi
}
grep -q "7 of 7 heard chirps matched" legs.txt || { echo "FAIL: not every chirp matched"; fail=1; }
check "out leg" "out leg (application -> wire), first sample of a packet" 23.4
check "in leg" "in leg (wire -> application), first sample of a packet" 41.7
check "round trip" "round trip" 65.4
# The card's clock 600 ms later than the packets say (a chirp would be on
# the wire before it was played): nothing matches, and the split is
# refused rather than made up.
"$py" -c '
import re, sys
s = open("rt.txt").read()
s = re.sub(r"(t0_ns)=(\d+)", lambda m: m.group(1) + "=" + str(int(m.group(2)) + 600_000_000), s)
open("rt-late.txt", "w").write(s)'
if "$py" "$root/tests/bench/rtpwire.py" legs --wire wire.jsonl --pcmcheck rt-late.txt --bridge-ports 41610-41620 >late.txt 2>&1; then
    echo "FAIL: a wire that does not fit the card's clock was accepted"; cat late.txt; fail=1
else
    echo "PASS: a wire that does not fit the card's clock is refused ($(head -n 1 late.txt))"
fi
exit $fail
