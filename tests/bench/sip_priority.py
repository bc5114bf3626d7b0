#!/usr/bin/env python3
"""Benchmark (prints numbers, asserts nothing): how the UA's priority intake
holds up under an INVITE flood, against a running voipbridge.

A caller on the allow list (peer@127.0.0.1) sets up a live call first. Then
COUNT INVITEs with fresh Call-IDs are sent over SECONDS from one socket of
another host, 127.0.0.2 (a scanner is not the peer: from the peer's own
address the ban table would, rightly, ban the peer too; loopback only), while an OPTIONS ping and an INFO of the live call are sent
every 100 ms from their own sockets. Printed: INVITEs sent and 403s received,
OPTIONS and INFO round trips (median, 95th percentile, max, lost) during and
right after the flood, the voipbridge's peak RSS (VmHWM) and whether the
live call survived.

Usage: sip_priority.py PORT PID [COUNT [SECONDS]]   (tests/bench/sip_priority.sh runs it)
"""
import re
import socket
import statistics
import sys
import threading
import time

PORT, PID = int(sys.argv[1]), int(sys.argv[2])
COUNT = int(sys.argv[3]) if len(sys.argv) > 3 else 20000
SECONDS = float(sys.argv[4]) if len(sys.argv) > 4 else 10.0
DEST = ("127.0.0.1", PORT)


def sock(host="127.0.0.1"):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind((host, 0))
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
    return s, s.getsockname()[1]


def request(method, port, call_id, cseq, branch, user="peer", to_tag="", body="", host="127.0.0.1"):
    ct = "Content-Type: application/sdp\r\n" if body else ""
    return (
        f"{method} sip:bridge@127.0.0.1:{PORT} SIP/2.0\r\n"
        f"Via: SIP/2.0/UDP {host}:{port};branch=z9hG4bK{branch}\r\n"
        f"From: <sip:{user}@{host}>;tag=t{port}\r\nTo: <sip:bridge@127.0.0.1>{to_tag}\r\n"
        f"Call-ID: {call_id}\r\nCSeq: {cseq} {method}\r\nContact: <sip:{user}@{host}:{port}>\r\n"
        f"Max-Forwards: 70\r\n{ct}Content-Length: {len(body)}\r\n\r\n{body}"
    ).encode()


def rss_kb():
    with open(f"/proc/{PID}/status") as f:
        return int(re.search(r"VmHWM:\s+(\d+)", f.read()).group(1))


# The live call.
call, cport = sock()
rtp, rport = sock()
sdp = f"v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio {rport} RTP/AVP 0\r\n"
call.sendto(request("INVITE", cport, "live@bench", 1, "live", body=sdp), DEST)
call.settimeout(3)
tag = None
while tag is None:
    data = call.recv(65535).decode(errors="replace")
    if data.startswith("SIP/2.0 200"):
        tag = re.search(r"^To:.*;tag=([^;\s]+)", data, re.M | re.I).group(1)
call.sendto(request("ACK", cport, "live@bench", 1, "liveack", to_tag=f";tag={tag}"), DEST)
rss0 = rss_kb()

results = {"options": [], "info": []}
stop = threading.Event()
phase = {"name": "during"}


def pinger(kind):
    s, p = sock()
    s.settimeout(1.0)
    n = 0
    while not stop.is_set():
        n += 1
        if kind == "options":
            msg = request("OPTIONS", p, f"ping{n}@bench", 1, f"p{n}")
        else:
            msg = request("INFO", cport, "live@bench", 10 + n, f"i{n}", to_tag=f";tag={tag}")
        t0 = time.monotonic()
        s.sendto(msg, DEST)
        rtt = None
        try:
            while True:
                d = s.recv(65535).decode(errors="replace")
                if d.startswith("SIP/2.0 200") and (f"branch=z9hG4bKp{n}" in d or f"branch=z9hG4bKi{n}" in d):
                    rtt = (time.monotonic() - t0) * 1000
                    break
        except socket.timeout:
            pass
        results[kind].append((phase["name"], rtt))
        time.sleep(0.1)


# The INFO pinger sends from its own socket but in the live call's dialog.
threads = [threading.Thread(target=pinger, args=(k,)) for k in ("options", "info")]
for t in threads:
    t.start()
flood, fport = sock("127.0.0.2")
replies = {"403": 0, "other": 0}


def drain():
    flood.settimeout(0.5)
    while not stop.is_set():
        try:
            d = flood.recv(65535)
            replies["403" if d.startswith(b"SIP/2.0 403") else "other"] += 1
        except socket.timeout:
            pass


dr = threading.Thread(target=drain)
dr.start()
start = time.monotonic()
for i in range(COUNT):
    target = start + i * SECONDS / COUNT
    while time.monotonic() < target:
        pass
    flood.sendto(request("INVITE", fport, f"flood{i}@scanner", 1, f"f{i}", user="scanner", body=sdp, host="127.0.0.2"), DEST)
sent_time = time.monotonic() - start
phase["name"] = "after"
time.sleep(3)
stop.set()
for t in threads + [dr]:
    t.join()

# The live call still answers: BYE.
call.sendto(request("BYE", cport, "live@bench", 99999, "livebye", to_tag=f";tag={tag}"), DEST)
live = False
try:
    while True:
        d = call.recv(65535).decode(errors="replace")
        if "CSeq: 99999 BYE" in d:
            live = d.startswith("SIP/2.0 200")
            break
except socket.timeout:
    pass


def summary(kind, ph):
    v = [r for p, r in results[kind] if p == ph]
    ok = sorted(r for r in v if r is not None)
    if not ok:
        return f"{kind} {ph}: {len(v)} sent, none answered"
    p95 = ok[min(len(ok) - 1, int(len(ok) * 0.95))]
    return (f"{kind} {ph} the flood: {len(v)} sent, {len(v) - len(ok)} lost, round trip median "
            f"{statistics.median(ok):.1f} ms, p95 {p95:.1f} ms, max {ok[-1]:.1f} ms")


print(f"flood: {COUNT} INVITEs with fresh Call-IDs in {sent_time:.1f} s ({COUNT / sent_time:.0f}/s), "
      f"{replies['403']} answered 403, {replies['other']} other answers")
for k in ("options", "info"):
    for ph in ("during", "after"):
        print(summary(k, ph))
print(f"peak RSS: {rss_kb() / 1024:.1f} MiB (before the flood {rss0 / 1024:.1f} MiB)")
print(f"live call after the flood: {'answered its BYE' if live else 'LOST'}")
