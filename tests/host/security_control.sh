#!/usr/bin/env bash
# The control socket on a shared board (issue 14): who may drive the phone.
#  - created mode 0600 under umask 0177: strace shows umask(0177) around
#    bind(), and even a daemon started with umask 000 never shows another
#    mode (the path is polled while it starts, 10 times);
#  - another user cannot connect (EACCES), and the client says why;
#  - SO_PEERCRED: with the mode opened by hand (chmod 666), uid 1 is still
#    refused with an error line naming the rule, and logged;
#  - [control] group: the socket is 0660 and group-owned, a member
#    (nobody, group nogroup) is served, a non-member is refused;
#  - a request line over 4096 bytes gets an error and the connection is
#    closed; the next client is served; bad JSON gets an error line.
# Needs root (it runs clients as nobody and daemon).
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
bin=${CARGO_TARGET_DIR:-$root/target}/debug
VB=$bin/voipbridge
for p in python3 strace setpriv; do command -v $p >/dev/null || { echo "FAIL: $p not installed (make setup)"; exit 1; }; done
[ "$(id -u)" = 0 ] || { echo "FAIL: security_control.sh needs root (it switches users)"; exit 1; }
. "$root/tests/lib/host.bash"
chmod 755 "$dir"

mkcfg() { # NAME PORT [GROUP]
    local g=""
    if [ -n "${3:-}" ]; then g="group = \"$3\""; fi
    cat >"$dir/$1.toml" <<CFG
[account]
uri = "sip:ctl@127.0.0.1"
[sip]
listen = "127.0.0.1:$2"
[audio]
capture = "null"
playback = "null"
[control]
socket = "$dir/$1.sock"
$g
CFG
}
cat >"$dir/client.py" <<'PY'
import json, socket, sys
path, line = sys.argv[1], sys.argv[2].encode()
try:
    s = socket.socket(socket.AF_UNIX)
    s.connect(path)
except OSError as e:
    print("connect: %s" % e.strerror); sys.exit(0)
try:
    s.sendall(line + b"\n")
except OSError:
    pass  # refused before reading: the answer is still there to read
s.settimeout(5)
got = b""
while not got.endswith(b"\n"):
    try:
        d = s.recv(4096)
    except OSError as e:
        print("recv: %s" % e.strerror); sys.exit(0)
    if not d: break
    got += d
print(got.decode().strip() or "closed")
PY
as() { local u=$1; shift; setpriv --reuid="$u" --regid="$(id -g "$u")" --clear-groups "$@"; }
mode() { stat -c '%a %U %G' "$1"; }

# 1. Mode from the first instant: strace, then polling under umask 000.
mkcfg a 5781
strace -f -e trace=umask,bind -o "$dir/strace.txt" "$VB" run --config "$dir/a.toml" 2>"$dir/a.log" & pids+=($!); spid=$!
for _ in $(seq 100); do [ -S "$dir/a.sock" ] && break; sleep 0.1; done
sleep 0.3
kill -TERM "$(pgrep -P "$spid")"; wait "$spid" || true  # the traced daemon; strace then exits
seq_ok=$(awk -v p="$dir/a.sock" '/umask\(0177\)/ {u=NR} index($0, "bind(") && index($0, p) {b=NR} /umask\(/ && !/umask\(0177\)/ && u && b && NR > b {r=NR} END {print (u && b && r && u < b && b < r) ? "yes" : "no"}' "$dir/strace.txt")
if [ "$seq_ok" = yes ]; then pass "the control socket is bound between umask(0177) and the umask's restore (strace)"; else fail "umask/bind order: $(grep -E 'umask|bind\(.*sock' "$dir/strace.txt" | head -n 6)"; fi
seen=""
for i in $(seq 10); do
    rm -f "$dir/a.sock"
    python3 - "$dir/a.sock" >"$dir/modes.$i" <<'PY' &
import os, sys, time
p, seen, t0 = sys.argv[1], set(), time.time()
while time.time() - t0 < 8 and len(seen) < 2:
    try:
        seen.add(oct(os.stat(p).st_mode & 0o777))
        if time.time() - t0 > 0.5 and seen: break
    except FileNotFoundError:
        pass
print(" ".join(sorted(seen)))
PY
    ppid=$!
    (umask 000; exec "$VB" run --config "$dir/a.toml" 2>>"$dir/a.log") & vpid=$!
    wait "$ppid" || true
    kill -TERM "$vpid"; wait "$vpid" || true
    seen="$seen $(cat "$dir/modes.$i")"
done
if [ "$(tr ' ' '\n' <<<"$seen" | sort -u | grep -v '^$' | tr '\n' ' ')" = "0o600 " ]; then pass "started 10 times with umask 000: the socket was never seen with a mode other than 0600"; else fail "modes seen: $seen"; fi

# 2. Default: 0600; another user cannot connect; SO_PEERCRED refuses even with the mode opened.
mkcfg b 5782
vb_start b
m=$(mode "$dir/b.sock")
if [ "$m" = "600 root root" ]; then pass "control socket mode 0600, owned by the daemon's user"; else fail "mode: $m"; fi
out=$(as nobody /usr/bin/python3 "$dir/client.py" "$dir/b.sock" '{"cmd":"status"}')
if [ "$out" = "connect: Permission denied" ]; then pass "nobody cannot connect to a 0600 socket"; else fail "nobody: $out"; fi
out=$(as nobody "$VB" status --config "$dir/b.toml" 2>&1 || true)
if [[ "$out" == *"the control socket admits root, the daemon's user and [control] group only"*"Permission denied"* ]]; then pass "the client says why it was refused: $out"; else fail "client message: $out"; fi
chmod 666 "$dir/b.sock"
out=$(as daemon /usr/bin/python3 "$dir/client.py" "$dir/b.sock" '{"cmd":"status"}')
if [[ "$out" == *'"ok":false'* && "$out" == *"permission denied: uid 1 is not root or the daemon's uid 0"* ]]; then pass "SO_PEERCRED: uid 1 refused even through a 0666 socket: $out"; else fail "peer credentials: $out"; fi
if wait_log "control client refused: permission denied: uid 1" "$dir/b.log"; then pass "the refusal is logged"; else fail "no log line for the refusal"; fi
out=$(python3 "$dir/client.py" "$dir/b.sock" '{"cmd":"status"}')
if [[ "$out" == '{"ok":true'* ]]; then pass "root is served"; else fail "root: $out"; fi

# 3. Request size and syntax.
long=$(python3 -c 'print("{\"cmd\":\"call\",\"uri\":\"sip:" + "a" * 5000 + "@x\"}")')
out=$(python3 "$dir/client.py" "$dir/b.sock" "$long")
if [[ "$out" == *"request longer than 4096 bytes"* ]]; then pass "a 5 KB request line is refused: $out"; else fail "long line: $out"; fi
out=$(python3 "$dir/client.py" "$dir/b.sock" 'not json')
if [[ "$out" == *'"ok":false'* && "$out" == *"bad request"* ]]; then pass "bad JSON gets an error line"; else fail "bad JSON: $out"; fi
out=$("$VB" status --config "$dir/b.toml" 2>&1 || true)
if grep -q '^registration:' <<<"$out"; then pass "the next client is served"; else fail "status after the refusals: $out"; fi
kill -TERM "$pid_b"; wait "$pid_b" || true

# 4. [control] group.
mkcfg c 5783 nogroup
vb_start c
m=$(mode "$dir/c.sock")
if [ "$m" = "660 root nogroup" ]; then pass "with group = \"nogroup\": mode 0660, group nogroup"; else fail "group mode: $m"; fi
out=$(as nobody /usr/bin/python3 "$dir/client.py" "$dir/c.sock" '{"cmd":"status"}')
if [[ "$out" == '{"ok":true'* ]]; then pass "a member of the group (nobody) is served"; else fail "group member: $out"; fi
chmod 666 "$dir/c.sock"
out=$(as daemon /usr/bin/python3 "$dir/client.py" "$dir/c.sock" '{"cmd":"status"}')
if [[ "$out" == *"uid 1 is not root, the daemon's uid 0 or in group nogroup"* ]]; then pass "a non-member is refused by SO_PEERCRED"; else fail "non-member: $out"; fi
kill -TERM "$pid_c"; wait "$pid_c" || true
mkcfg d 5784 no-such-group-xyz
if "$VB" run --config "$dir/d.toml" 2>"$dir/d.log"; then fail "an unknown group was accepted"; elif grep -q "no group named 'no-such-group-xyz'" "$dir/d.log"; then pass "an unknown group stops the daemon with a clear error"; else fail "unknown group: $(cat "$dir/d.log")"; fi

echo "$passed passed, $failed failed"
[ "$failed" = 0 ] || { for f in a b c; do echo "== $f"; tail -n 5 "$dir/$f.log" 2>/dev/null; done; exit 1; }
