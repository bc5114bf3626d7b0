#!/usr/bin/env python3
"""SIP INVITE flood with a probe, for tests/bench/flood.sh (loopback only).

Sends COUNT INVITEs with fresh Call-IDs over SECONDS, from the given source
addresses in turn (UDP: one socket per source; TCP: CONNS connections spread
over the sources, INVITEs round-robin), while a probe sends an OPTIONS from
PROBE_SRC every PROBE_MS and times the 200. After the flood it probes 10
more times. Prints one JSON object.
"""
import argparse, ipaddress, json, random, select, socket, statistics, threading, time

ap = argparse.ArgumentParser()
ap.add_argument("--target", required=True)          # 127.0.0.1:5070
ap.add_argument("--proto", choices=["udp", "tcp"], default="udp")
ap.add_argument("--count", type=int, default=20000)
ap.add_argument("--seconds", type=float, default=10.0)
ap.add_argument("--sources", default="127.0.0.10-127.0.0.10")
ap.add_argument("--conns", type=int, default=64)
ap.add_argument("--probe-src", default="127.0.0.5")
ap.add_argument("--probe-ms", type=int, default=200)
a = ap.parse_args()
host, port = a.target.rsplit(":", 1)
port = int(port)
lo, hi = a.sources.split("-")
lo, hi = int(ipaddress.ip_address(lo)), int(ipaddress.ip_address(hi))
for x in (lo, hi):
    if not ipaddress.ip_address(x).is_loopback:
        raise SystemExit("flood.py: loopback sources only")
if not ipaddress.ip_address(host).is_loopback:
    raise SystemExit("flood.py: loopback target only")
sources = [str(ipaddress.ip_address(x)) for x in range(lo, hi + 1)]
T = "UDP" if a.proto == "udp" else "TCP"

def invite(src, sport, i):
    cid = "flood-%d-%d-%d" % (i, sport, random.getrandbits(32))
    sdp = ("v=0\r\no=- %d 1 IN IP4 %s\r\ns=-\r\nc=IN IP4 %s\r\nt=0 0\r\n"
           "m=audio %d RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n" % (i, src, src, 20000 + i % 20000))
    return ("INVITE sip:bridge@%s:%d SIP/2.0\r\nVia: SIP/2.0/%s %s:%d;branch=z9hG4bKf%s\r\n"
            "Max-Forwards: 70\r\nFrom: <sip:%d@%s>;tag=f%d\r\nTo: <sip:bridge@%s>\r\n"
            "Call-ID: %s\r\nCSeq: 1 INVITE\r\nContact: <sip:%d@%s:%d>\r\n"
            "Content-Type: application/sdp\r\nContent-Length: %d\r\n\r\n%s"
            % (host, port, T, src, sport, cid, i, src, i, host, cid, i, src, sport, len(sdp), sdp)).encode()

def options(src, sport, i):
    return ("OPTIONS sip:bridge@%s:%d SIP/2.0\r\nVia: SIP/2.0/%s %s:%d;branch=z9hG4bKp%d%d\r\n"
            "Max-Forwards: 70\r\nFrom: <sip:probe@%s>;tag=p%d\r\nTo: <sip:bridge@%s>\r\n"
            "Call-ID: probe-%d-%d\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n"
            % (host, port, T, src, sport, sport, i, src, i, host, sport, i)).encode()

stop = threading.Event()
sent = [0]
refused = [0]

def flood_udp():
    socks = []
    for s in sources:
        k = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        k.bind((s, 0))
        k.setblocking(False)
        socks.append(k)
    t0 = time.monotonic()
    for i in range(a.count):
        due = t0 + a.seconds * i / a.count
        d = due - time.monotonic()
        if d > 0:
            time.sleep(d)
        k = socks[i % len(socks)]
        try:
            k.sendto(invite(k.getsockname()[0], k.getsockname()[1], i), (host, port))
            sent[0] += 1
        except OSError:
            pass
        if i % 64 == 0:  # drain answers so our buffers never fill
            for k2 in socks:
                try:
                    while k2.recv(65536):
                        pass
                except OSError:
                    pass

def flood_tcp():
    conns = []
    for j in range(a.conns):
        s = sources[j % len(sources)]
        k = socket.socket()
        k.bind((s, 0))
        try:
            k.connect((host, port))
            k.setblocking(False)
            conns.append(k)
        except OSError:
            refused[0] += 1
    t0 = time.monotonic()
    for i in range(a.count):
        if not conns:
            break
        due = t0 + a.seconds * i / a.count
        d = due - time.monotonic()
        if d > 0:
            time.sleep(d)
        k = conns[i % len(conns)]
        try:
            k.send(invite(k.getsockname()[0], k.getsockname()[1], i))
            sent[0] += 1
        except OSError:
            conns.remove(k)  # closed by the target (banned, limit)
        if i % 64 == 0:
            for k2 in list(conns):
                try:
                    while True:
                        if not k2.recv(65536):
                            conns.remove(k2)
                            break
                except BlockingIOError:
                    pass
                except OSError:
                    conns.remove(k2)
    stop.set()

def probe_once(i, timeout=2.0):
    if a.proto == "udp":
        k = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        k.bind((a.probe_src, 0))
        k.settimeout(timeout)
        t = time.monotonic()
        k.sendto(options(a.probe_src, k.getsockname()[1], i), (host, port))
        try:
            while True:
                d = k.recv(65536)
                if d.startswith(b"SIP/2.0 200"):
                    return (time.monotonic() - t) * 1000
        except socket.timeout:
            return None
        finally:
            k.close()
    k = socket.socket()
    k.bind((a.probe_src, 0))
    k.settimeout(timeout)
    t = time.monotonic()
    try:
        k.connect((host, port))
        k.sendall(options(a.probe_src, k.getsockname()[1], i))
        got = b""
        while b"\r\n\r\n" not in got:
            d = k.recv(65536)
            if not d:
                return None
            got += d
        return (time.monotonic() - t) * 1000 if got.startswith(b"SIP/2.0 200") else None
    except OSError:
        return None
    finally:
        k.close()

def summary(xs):
    ok = [x for x in xs if x is not None]
    r = {"probes": len(xs), "answered": len(ok)}
    if ok:
        ok.sort()
        r.update(p50_ms=round(statistics.median(ok), 2), p95_ms=round(ok[max(0, -(-95 * len(ok) // 100) - 1)], 2),
                 max_ms=round(ok[-1], 2))
    return r

during = []
f = threading.Thread(target=flood_udp if a.proto == "udp" else flood_tcp)
t0 = time.monotonic()
f.start()
i = 0
while f.is_alive():
    during.append(probe_once(i))
    i += 1
    time.sleep(a.probe_ms / 1000)
f.join()
elapsed = time.monotonic() - t0
after = []
for j in range(10):
    after.append(probe_once(10000 + j))
    time.sleep(0.05)
print(json.dumps({"proto": a.proto, "sent": sent[0], "seconds": round(elapsed, 2),
                  "sources": len(sources), "refused_connections": refused[0],
                  "probe_during": summary(during), "probe_after": summary(after)}))
