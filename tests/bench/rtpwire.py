#!/usr/bin/env python3
"""rtpwire: splits the card's round trip into its two legs at the wire.

    rtpwire.py capture --out FILE --seconds S [--iface lo]
        records every RTP packet (PCMU/PCMA) seen on IFACE with the
        kernel's receive time (SO_TIMESTAMPNS, CLOCK_REALTIME), one JSON
        line per packet, until S seconds pass or SIGTERM/SIGINT.

    rtpwire.py legs --wire FILE --pcmcheck FILE --bridge-ports LO-HI
                    [--period-ms 10] [--ptime-ms 20] [--jitter-ms 40] [--no-targets]
        reads `pcmcheck roundtrip`'s output (each chirp's frame and lag, and
        the card's clock on the wall clock: `roundtrip-clock t0_ns=...`)
        and the packets, finds each chirp in the RTP stream the bridge sent
        and in the one it received (normalised cross-correlation), and
        prints per chirp:

        out   the chirp's first sample played by the application into
              hw:VoIP,0 -> the packet carrying it on the wire (the bridge's
              capture side, packetisation included);
        echo  the far end's turnaround on the wire;
        in    the packet carrying it back on the wire -> that sample
              captured by the application from hw:VoIP,0 (jitter buffer,
              playback fill, cable).

        out + echo + in is the round trip pcmcheck measured. Each leg is
        also given for the first sample of the packet that carried the
        chirp's first sample, which is what issue 16's targets bound:
        out <= period + ptime + 5 ms (that sample waited a whole packet
        time), in <= jitter target + period + 5 ms (it waited in the jitter
        buffer for the whole target).

Needs root (a packet socket) for `capture`, numpy for `legs`. Only reads
the loopback interface unless told otherwise; sends nothing.
"""
import argparse
import json
import math
import signal
import socket
import struct
import sys
import time

ETH_P_ALL = 0x0003
PACKET_OUTGOING = 4
SO_TIMESTAMPNS = 35


def capture(args):
    s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
    s.bind((args.iface, 0))
    s.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
    s.settimeout(0.2)
    stop = [False]

    def on_signal(*_):
        stop[0] = True

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    end = time.monotonic() + args.seconds
    n = 0
    with open(args.out, "w") as out:
        while not stop[0] and time.monotonic() < end:
            try:
                data, anc, _flags, addr = s.recvmsg(65536, 64)
            except socket.timeout:
                continue
            except InterruptedError:
                continue
            # The loopback device shows each packet twice: going out and
            # coming in. Keep the one coming in.
            if addr[2] == PACKET_OUTGOING:
                continue
            t_ns = None
            for level, kind, value in anc:
                if level == socket.SOL_SOCKET and kind == SO_TIMESTAMPNS and len(value) >= 16:
                    sec, nsec = struct.unpack("qq", value[:16])
                    t_ns = sec * 1_000_000_000 + nsec
            if t_ns is None:
                t_ns = time.time_ns()
            rec = parse(data)
            if rec is None:
                continue
            rec["t_ns"] = t_ns
            out.write(json.dumps(rec) + "\n")
            n += 1
    print(f"rtpwire: {n} RTP packets recorded", file=sys.stderr)


def parse(frame):
    """An Ethernet-framed IPv4/UDP datagram carrying RTP with PCMU (0) or
    PCMA (8), as a dict; anything else None."""
    if len(frame) < 14 + 20 + 8 + 12 or frame[12:14] != b"\x08\x00":
        return None
    ip = frame[14:]
    ihl = (ip[0] & 0x0F) * 4
    if ip[0] >> 4 != 4 or ip[9] != 17 or len(ip) < ihl + 8 + 12:
        return None
    sport, dport = struct.unpack("!HH", ip[ihl:ihl + 4])
    rtp = ip[ihl + 8:]
    if rtp[0] >> 6 != 2:
        return None
    pt = rtp[1] & 0x7F
    if pt not in (0, 8):
        return None
    cc = rtp[0] & 0x0F
    off = 12 + 4 * cc
    if rtp[0] & 0x10:
        if len(rtp) < off + 4:
            return None
        off += 4 + 4 * struct.unpack("!H", rtp[off + 2:off + 4])[0]
    payload = rtp[off:]
    if rtp[0] & 0x20 and payload:
        payload = payload[: len(payload) - payload[-1]]
    seq, ts, ssrc = struct.unpack("!HII", rtp[2:12])
    return {"sport": sport, "dport": dport, "pt": pt, "seq": seq, "ts": ts,
            "ssrc": ssrc, "payload": payload.hex()}


def decode(codes, pt):
    """G.711 codes (uint8 array) to linear samples (ITU-T G.711)."""
    import numpy as np
    c = codes.astype(np.int32)
    if pt == 0:
        u = ~c & 0xFF
        exp = (u >> 4) & 7
        mag = (((u & 0x0F) << 3) + 0x84 << exp) - 0x84
        return np.where(u & 0x80, -mag, mag).astype(np.float64)
    a = c ^ 0x55
    exp = (a >> 4) & 7
    mant = a & 0x0F
    mag = np.where(exp == 0, (mant << 4) + 8, ((mant << 4) + 0x108) << np.maximum(exp - 1, 0))
    return np.where(a & 0x80, mag, -mag).astype(np.float64)


def chirp(n, rate):
    """pcmcheck roundtrip's chirp: 300 to 3400 Hz, Hann window."""
    import numpy as np
    i = np.arange(n)
    t = i / rate
    d = n / rate
    w = 0.5 - 0.5 * np.cos(2 * math.pi * i / n)
    return w * np.sin(2 * math.pi * (300 * t + 3100 * t * t / (2 * d)))


def stream(packets, rate):
    """One direction's packets as (signal, packet table): the signal laid
    out by RTP timestamp (unwrapped, from the first packet), the table
    (first sample, samples, wire time) per packet. The largest SSRC only."""
    import numpy as np
    by = {}
    for p in packets:
        by.setdefault(p["ssrc"], []).append(p)
    if not by:
        return None, []
    pk = max(by.values(), key=len)
    pk.sort(key=lambda p: p["t_ns"])
    base = pk[0]["ts"]
    table = []
    last = 0
    for p in pk:
        d = (p["ts"] - base) & 0xFFFFFFFF
        if d >= 1 << 31:
            d -= 1 << 32
        # Unwrap around the previous packet's timestamp.
        k = last + (((d - last) + (1 << 31)) % (1 << 32)) - (1 << 31)
        last = k
        table.append((k, len(p["payload"]) // 2, p["t_ns"], p))
    lo = min(k for k, _, _, _ in table)
    hi = max(k + n for k, n, _, _ in table)
    if hi - lo > 3600 * rate:
        return None, []
    x = np.zeros(hi - lo)
    for k, n, _, p in table:
        codes = np.frombuffer(bytes.fromhex(p["payload"]), dtype=np.uint8)
        x[k - lo:k - lo + n] = decode(codes, p["pt"])
    return x, [(k - lo, n, t) for k, n, t, _ in table]


def onsets(x, ref, threshold=0.5, spacing=4000):
    """Where `ref` starts in `x` (normalised cross-correlation above
    `threshold`), peaks at least `spacing` samples apart."""
    import numpy as np
    n = len(ref)
    if x is None or len(x) < n:
        return []
    m = 1 << int(math.ceil(math.log2(len(x) + n)))
    cor = np.fft.irfft(np.fft.rfft(x, m) * np.conj(np.fft.rfft(ref, m)), m)[: len(x) - n + 1]
    e = np.concatenate(([0.0], np.cumsum(x * x)))
    local = np.sqrt(np.maximum(e[n:] - e[:-n], 1e-9))
    ncc = cor / (local * np.sqrt(np.sum(ref * ref)))
    found = []
    order = np.argsort(-ncc)
    for i in order:
        if ncc[i] < threshold:
            break
        if all(abs(int(i) - j) >= spacing for j, _ in found):
            found.append((int(i), float(ncc[i])))
    return sorted(found)


def packet_at(table, s):
    """The packet carrying sample `s`: (its first sample, wire time)."""
    for k, n, t in table:
        if k <= s < k + n:
            return k, t
    return None


def legs(args):
    import numpy as np
    lo, hi = (int(v) for v in args.bridge_ports.split("-"))
    t0 = t0_play = rate = nchirp = None
    chirps = []
    for line in open(args.pcmcheck):
        if line.startswith("roundtrip-clock"):
            kv = dict(f.split("=", 1) for f in line.split()[1:])
            t0, rate, nchirp = int(kv["t0_ns"]), int(kv["rate"]), int(kv["chirp_frames"])
            t0_play = int(kv.get("play_t0_ns", t0))
        elif line.startswith("chirp at frame"):
            w = line.replace(":", "").replace(",", "").split()
            k, lag, corr = int(w[3]), int(w[5]), float(w[-1])
            if corr >= 0.5:
                chirps.append((k, lag))
    if t0 is None or not chirps:
        print("wire: no card clock or no chirp in pcmcheck's output")
        return 1
    packets = [json.loads(line) for line in open(args.wire)]
    sent = [p for p in packets if lo <= p["sport"] <= hi]
    back = [p for p in packets if lo <= p["dport"] <= hi]
    ref = chirp(nchirp, rate)
    xo, to = stream(sent, rate)
    xb, tb = stream(back, rate)
    found_o = onsets(xo, ref)
    found_b = onsets(xb, ref)

    def wire(found, table):
        out = []
        for s, c in found:
            at = packet_at(table, s)
            if at:
                out.append((at[1], s - at[0], c))
        return out

    wo = wire(found_o, to)
    wb = wire(found_b, tb)
    ns = 1e6
    rows = []
    for k, lag in chirps:
        t_play = t0_play + k * 1_000_000_000 // rate
        t_cap = t0 + (k + lag) * 1_000_000_000 // rate
        o = [(t, off) for t, off, _ in wo if 0 <= t - t_play < 500 * ns]
        b = [(t, off) for t, off, _ in wb if 0 <= t_cap - t < 500 * ns and t >= t_play]
        if not o or not b:
            continue
        (w1, off1), (w2, off2) = min(o), max(b)
        out_ms = (w1 - t_play) / ns
        in_ms = (t_cap - w2) / ns
        rows.append({
            "out": out_ms, "echo": (w2 - w1) / ns, "in": in_ms,
            "round": (t_cap - t_play) / ns,
            "out_first": out_ms + off1 * 1000 / rate,
            "in_first": in_ms - off2 * 1000 / rate,
        })
    print(f"wire: {len(wo)} chirps on the wire out, {len(wb)} back, {len(rows)} of {len(chirps)} heard chirps matched "
          f"({len(sent)} packets sent, {len(back)} received)")
    for i, r in enumerate(rows):
        print(f"wire: chirp {i + 1}: out {r['out']:.1f} ms (first sample of its packet {r['out_first']:.1f}), "
              f"echo {r['echo']:.1f}, in {r['in']:.1f} ms (first sample of its packet {r['in_first']:.1f}), "
              f"round trip {r['round']:.1f} ms")
    if not rows:
        print("wire: no chirp matched: the card's clock and the packet times do not line up")
        return 1

    def med(key):
        v = sorted(r[key] for r in rows)
        return v[len(v) // 2], v[0], v[-1]

    t_out = args.period_ms + args.ptime_ms + 5
    t_in = args.jitter_ms + args.period_ms + 5
    for key, name, target in (("out_first", "out leg (application -> wire)", t_out),
                              ("in_first", "in leg (wire -> application)", t_in)):
        m, a, b = med(key)
        verdict = "within" if m <= target else "above"
        judged = f" (target <= {target:.0f} ms: {verdict})" if not args.no_targets else ""
        print(f"wire-legs: {name}, first sample of a packet: median {m:.1f} ms, min {a:.1f}, max {b:.1f}{judged}")
    m, a, b = med("round")
    e, _, _ = med("echo")
    print(f"wire-legs: round trip median {m:.1f} ms (min {a:.1f}, max {b:.1f}), far end's turnaround {e:.2f} ms")
    # A chirp is matched only where both legs come out between 0 and
    # 500 ms: when the card's clock and the packet times do not line up,
    # few or none are.
    if len(rows) * 2 < len(chirps):
        print("wire: fewer than half the heard chirps matched on the wire")
        return 1
    return 0


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    c = sub.add_parser("capture", help="record RTP packets with their receive times")
    c.add_argument("--out", required=True)
    c.add_argument("--seconds", type=float, required=True)
    c.add_argument("--iface", default="lo")
    g = sub.add_parser("legs", help="split pcmcheck's round trip at the wire")
    g.add_argument("--wire", required=True)
    g.add_argument("--pcmcheck", required=True)
    g.add_argument("--bridge-ports", required=True, help="the bridge's RTP port range, LO-HI")
    g.add_argument("--period-ms", type=float, default=10)
    g.add_argument("--ptime-ms", type=float, default=20)
    g.add_argument("--jitter-ms", type=float, default=40)
    g.add_argument("--no-targets", action="store_true", help="print the legs without issue 16's targets")
    a = ap.parse_args()
    if a.cmd == "capture":
        capture(a)
        return 0
    return legs(a)


if __name__ == "__main__":
    sys.exit(main())
