#!/usr/bin/env bash
# TCP limits of the SIP transport (issue 14) with the real daemon,
# `transport = "tcp"`, max_connections 6, max_connections_per_source 3,
# idle_timeout_s 3. Sources are loopback addresses 127.0.0.x:
#  - 3 connections from one source are served (OPTIONS answered on each),
#    a 4th is closed at once; 3 more from a second source fill the budget,
#    one from a third source is refused; status counts them;
#  - with every inbound slot held, voipbridge still calls out (its own
#    budget) and binds its RTP socket: sipp answers over TCP, RTP flows;
#  - an idle connection is closed after idle_timeout_s; freed slots serve again;
#  - the open file limit: raised from a low soft limit to the hard one; a
#    hard limit below what the budgets need stops the daemon with a clear error.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
bin=${CARGO_TARGET_DIR:-$root/target}/debug
VB=$bin/voipbridge
for p in python3 sipp; do command -v $p >/dev/null || { echo "FAIL: $p not installed (make setup)"; exit 1; }; done
. "$root/tests/lib/host.bash"
PORT=5801
mkcfg() { # NAME PORT MAXCONN
    cat >"$dir/$1.toml" <<CFG
[account]
uri = "sip:gate@127.0.0.1"
[sip]
listen = "127.0.0.1:$2"
transport = "tcp"
max_connections = $3
max_connections_per_source = 3
idle_timeout_s = 3
[media]
rtp_ports = "42900-42910"
[audio]
capture = "tone:1000"
playback = "null"
[control]
socket = "$dir/$1.sock"
CFG
}
mkcfg vb $PORT 6
vb_start vb

# A client holding connections: "open SRC N" opens N connections from SRC,
# sends an OPTIONS on each, prints one word per connection: "served",
# "closed" (refused) or "silent"; then keeps them open until stdin closes.
cat >"$dir/hold.py" <<'PY'
import socket, sys, time
port = int(sys.argv[1])
held = []
def opts(src, me):
    return ("OPTIONS sip:gate@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/TCP %s:%d;branch=z9hG4bKh%d\r\n"
            "From: <sip:x@%s>;tag=%d\r\nTo: <sip:gate@127.0.0.1>\r\nCall-ID: hold-%d\r\n"
            "CSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n" % (src, me, me, src, me, me)).encode()
for line in sys.stdin:
    cmd = line.split()
    if not cmd:
        continue
    if cmd[0] == "open":
        src, n, out = cmd[1], int(cmd[2]), []
        for _ in range(n):
            s = socket.socket()
            s.bind((src, 0))
            s.connect(("127.0.0.1", port))
            s.settimeout(3)
            try:
                s.sendall(opts(src, s.getsockname()[1]))
                d = s.recv(4096)
                out.append("served" if d.startswith(b"SIP/2.0 200") else "closed" if not d else "other")
            except (ConnectionResetError, BrokenPipeError):
                out.append("closed")
            except socket.timeout:
                out.append("silent")
            held.append(s)
        print(" ".join(out), flush=True)
    elif cmd[0] == "idle":
        # one more connection that sends nothing: seconds until it is closed
        s = socket.socket(); s.bind((cmd[1], 0)); s.connect(("127.0.0.1", port)); s.settimeout(10)
        t0 = time.time()
        try:
            while s.recv(4096):
                pass
        except socket.timeout:
            pass
        print("%.1f" % (time.time() - t0), flush=True)
    elif cmd[0] == "drop":
        for s in held:
            s.close()
        held = []
        print("dropped", flush=True)
PY
coproc HOLD { python3 "$dir/hold.py" "$PORT"; }
pids+=($HOLD_PID)
ask() { echo "$*" >&"${HOLD[1]}"; local r; read -r -t 20 r <&"${HOLD[0]}" || r="(no answer)"; echo "$r"; }

r=$(ask open 127.0.0.3 4)
if [ "$r" = "served served served closed" ]; then pass "3 connections from 127.0.0.3 served, the 4th closed at once"; else fail "per source: $r"; fi
r=$(ask open 127.0.0.4 3)
if [ "$r" = "served served served" ]; then pass "3 more from 127.0.0.4 served (6 in all)"; else fail "second source: $r"; fi
r=$(ask open 127.0.0.5 1)
if [ "$r" = "closed" ]; then pass "a 7th from 127.0.0.5 refused: max_connections reached"; else fail "global limit: $r"; fi
st=$("$VB" status --config "$dir/vb.toml")
if grep -q "connections in 6 out 0" <<<"$st" && grep -q "refused connections 2 " <<<"$st"; then pass "status: 6 connections in, 2 refused"; else fail "status: $(grep connections <<<"$st")"; fi

# Every inbound slot is held: a call out still works, RTP bound and sent.
(cd "$dir" && timeout 30 sipp -sn uas -t t1 -i 127.0.0.1 -p 5809 -mp 42950 -m 1 -nostdin >"$dir/sipp.out" 2>&1) & sp=$!
pids+=($sp)
sleep 1
"$VB" call "sip:uas@127.0.0.1:5809;transport=tcp" --config "$dir/vb.toml"
for _ in $(seq 50); do [[ "$("$VB" status --config "$dir/vb.toml")" == *"[active]"* ]] && break; sleep 0.1; done
sleep 1
st=$("$VB" status --config "$dir/vb.toml")
sent=$(sed -n 's/^  rtp: sent \([0-9]*\) .*/\1/p' <<<"$st")
if grep -q '\[active\]' <<<"$st" && [ "${sent:-0}" -gt 10 ]; then pass "with every inbound slot taken, a call out over TCP is active and RTP flows (sent $sent)"; else fail "call while full: $(grep -E '^call|rtp:|connections' <<<"$st")"; fi
"$VB" hangup --config "$dir/vb.toml"
wait "$sp" || true

# Idle timeout, and freed slots.
r=$(ask drop)
sleep 0.5
r=$(ask idle 127.0.0.6)
if awk -v t="$r" 'BEGIN { exit !(t >= 2.5 && t <= 6) }'; then pass "an idle connection closed after $r s (idle_timeout_s = 3)"; else fail "idle connection: $r"; fi
r=$(ask open 127.0.0.5 2)
if [ "$r" = "served served" ]; then pass "freed slots serve new connections"; else fail "after drop: $r"; fi
kill -TERM "$pid_vb"; wait "$pid_vb" || true
exec {HOLD[1]}>&-

# The open file limit.
mkcfg lim 5802 64
(ulimit -Sn 100; exec "$VB" run --config "$dir/lim.toml" 2>"$dir/lim.log") & lp=$!
pids+=($lp)
for _ in $(seq 50); do [ -S "$dir/lim.sock" ] && break; sleep 0.1; done
soft=$(awk '/Max open files/ {print $4}' /proc/$lp/limits) hard=$(awk '/Max open files/ {print $5}' /proc/$lp/limits)
if [ -S "$dir/lim.sock" ] && [ "$soft" = "$hard" ]; then pass "a soft open-file limit of 100 is raised to the hard limit ($hard) at start"; else fail "soft limit: $soft/$hard, socket $(ls "$dir"/lim.sock 2>&1)"; fi
kill -TERM "$lp"; wait "$lp" || true
rm -f "$dir/lim.sock"
if (ulimit -n 150; exec "$VB" run --config "$dir/lim.toml" 2>"$dir/lim2.log"); then fail "started with a hard limit of 150"; else
    if grep -q "the open file limit is 150, and 2 x max_connections (64) + 2 media sockets + 64 need 194: lower \[sip\] max_connections or raise the limit" "$dir/lim2.log"; then pass "a hard limit of 150 stops the daemon: $(grep -o 'the open file limit.*' "$dir/lim2.log")"; else fail "hard limit: $(cat "$dir/lim2.log")"; fi
fi

echo "$passed passed, $failed failed"
[ "$failed" = 0 ] || { grep -v DEBUG "$dir/vb.log" | tail -n 20; tail -n 5 "$dir/sipp.out"; exit 1; }
