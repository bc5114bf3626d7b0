#!/usr/bin/python3
"""An acoustic path between two ALSA streams, for an application's own
echo canceller (the linphone test).

usage: room.py voice OUT.wav SECONDS
       room.py run --delay-ms MS --erl-db DB --noise-dbfs DBFS --spk SPK.wav --summary SUM.json

`voice` writes a speech-like far-end signal (8 kHz mono S16_LE WAV, seeded):
syllables of 120-300 ms at a 90-220 Hz voice with its harmonics through two
moving formants, pauses between them, about -20 dBFS RMS while it speaks.
A pure tone is the wrong test for a canceller (every one of them is weak on
a steady tone, and a tone says nothing about the echo path's shape).

`run` is a room between a speaker and a microphone: it reads raw S16_LE
mono 8 kHz from stdin (what the application played, e.g. `arecord` on the
cable's far end) and writes to stdout what the microphone hears: the same,
DELAY ms later and ERL dB down (one tap, so the echo's level is known
exactly), plus white noise at DBFS RMS (the microphone's floor), e.g. into
`aplay` on the cable end the application captures. It writes what it read
to SPK.wav and, when stdin ends, SUM.json in the shape
tests/aec/echo_report.py reads (rtos-sim's `echo` summary: rir_taps 1,
erl_db, delay_ms, noise_dbfs, speaker and echo RMS).

The pipes and the two ALSA streams add their own buffering to DELAY: the
echo path the canceller sees is longer, and fixed once the streams run.
"""
import json
import math
import os
import sys
import wave

import numpy as np

RATE = 8000


def db(p):
    return 10 * math.log10(max(p, 1e-20))


def voice(path, seconds):
    rng = np.random.default_rng(18)
    n = int(seconds * RATE)
    out = np.zeros(n)
    t = int(0.3 * RATE)
    while t < n:
        syl = int(rng.uniform(0.12, 0.30) * RATE)
        f0 = rng.uniform(90, 220)
        glide = rng.uniform(-0.3, 0.3)
        k = np.arange(min(syl, n - t))
        f = f0 * (1 + glide * k / syl)
        phase = 2 * np.pi * np.cumsum(f) / RATE
        # Harmonics up to 3.4 kHz, shaped by two formants that move.
        f1, f2 = rng.uniform(300, 800), rng.uniform(900, 2500)
        s = np.zeros(len(k))
        for h in range(1, int(3400 / f0)):
            fh = h * f0
            g = 1.0 / (1 + ((fh - f1) / 150) ** 2) + 0.5 / (1 + ((fh - f2) / 250) ** 2) + 0.02
            s += g * np.sin(h * phase + rng.uniform(0, 2 * np.pi))
        s += 0.05 * rng.standard_normal(len(k))  # breath: a broadband part
        env = np.sin(np.pi * k / syl) ** 0.5
        out[t:t + len(k)] = s * env
        t += syl + int(rng.choice([0.05, 0.1, 0.2, 0.6]) * RATE)
    active = out[np.abs(out) > 0]
    out *= 10 ** (-20 / 20) / max(np.sqrt(np.mean(active ** 2)), 1e-9)
    pcm = np.clip(out * 32767, -32768, 32767).astype("<i2")
    with wave.open(path, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(RATE)
        w.writeframes(pcm.tobytes())


def run(opts):
    delay = int(float(opts["--delay-ms"]) * RATE / 1000)
    erl = float(opts["--erl-db"])
    noise_dbfs = float(opts["--noise-dbfs"])
    gain = 10 ** (-erl / 20)
    noise = 10 ** (noise_dbfs / 20)
    rng = np.random.default_rng(7)
    spk = wave.open(opts["--spk"], "wb")
    spk.setnchannels(1)
    spk.setsampwidth(2)
    spk.setframerate(RATE)
    line = np.zeros(delay)  # what has been played and is still in the air
    p_spk = p_echo = 0.0
    n_active = 0
    src, dst = sys.stdin.buffer, sys.stdout.buffer
    # What the recorder wrote into the pipe while this interpreter started
    # (a second or more in an emulated guest) would stay in the path as a
    # delay of its own: drop it, so the room starts with the present.
    os.set_blocking(src.fileno(), False)
    try:
        while src.read(65536):
            pass
    except BlockingIOError:
        pass
    os.set_blocking(src.fileno(), True)
    block = RATE // 100 * 2  # 10 ms of S16_LE
    rest = b""
    while True:
        data = src.read1(block) if hasattr(src, "read1") else src.read(block)
        if not data:
            break
        data = rest + data
        cut = len(data) - len(data) % 2
        rest = data[cut:]
        if cut == 0:
            continue
        x = np.frombuffer(data[:cut], dtype="<i2").astype(float) / 32768.0
        spk.writeframes(data[:cut])
        line = np.concatenate([line, x])
        heard, line = line[:len(x)], line[len(x):]
        echo = gain * heard
        if np.sqrt(np.mean(x ** 2)) > 10 ** (-50 / 20):
            p_spk += float(np.sum(x ** 2))
            p_echo += float(np.sum(echo ** 2))
            n_active += len(x)
        y = echo + noise * rng.standard_normal(len(x))
        try:
            dst.write(np.clip(y * 32768, -32768, 32767).astype("<i2").tobytes())
            dst.flush()
        except BrokenPipeError:
            break
    spk.close()
    summary = {"echo": {
        "source": "tests/aec/room.py",
        "rir_taps": 1, "erl_db": erl, "delay_ms": float(opts["--delay-ms"]),
        "noise_dbfs": noise_dbfs,
        "speaker_rms_dbfs": db(p_spk / n_active) if n_active else None,
        "echo_rms_dbfs": db(p_echo / n_active) if n_active else None,
    }}
    with open(opts["--summary"], "w") as f:
        json.dump(summary, f)
        f.write("\n")


def main():
    a = sys.argv[1:]
    if len(a) == 3 and a[0] == "voice":
        voice(a[1], float(a[2]))
        return
    if a and a[0] == "run" and len(a) == 11:
        opts = dict(zip(a[1::2], a[2::2]))
        need = {"--delay-ms", "--erl-db", "--noise-dbfs", "--spk", "--summary"}
        if set(opts) == need:
            run(opts)
            return
    sys.stderr.write(__doc__)
    sys.exit(2)


if __name__ == "__main__":
    main()
