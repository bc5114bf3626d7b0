#!/usr/bin/python3
"""How much of the far end's own echo came back to it, on the board.

usage: echo_report.py FAR_HEARD.wav SPK.wav SIM.json OUT.png [--min-erle DB] [--band HZ]

FAR_HEARD.wav is what the far end recorded (the board's microphone after
voipbridge, through G.711 and RTP); SPK.wav is what the RTOS speaker played
(rtos-sim --out); SIM.json is rtos-sim's summary line. The echo path must be
a pure delay (`--echo-rir delta`), so the echo that entered the microphone
is the speaker signal scaled by the echo return loss, whatever the
alignment: its power is known from SPK.wav alone.

ERLE = the echo's power (speaker power - ERL, over the speaker's active
span) over the power of the far end's recording (from 3 s after the
microphone's noise floor starts in it, the canceller's convergence, to
where the floor ends: the RTOS stopped). With --band HZ a near-end tone
at HZ is excluded from both (+-300 Hz). Prints one line per figure and
exits 1 when ERLE is below --min-erle (default 20 dB), 2 on bad input.
Plots the spectra (expected echo vs what the far end heard) and the far
end's level over time against the expected echo level into OUT.png.
"""
import json
import sys
import wave

import numpy as np


def load(path):
    with wave.open(path) as w:
        if w.getsampwidth() != 2 or w.getnchannels() != 1:
            sys.exit("echo_report: %s: want 16-bit mono (%d bytes, %d channels)"
                     % (path, w.getsampwidth(), w.getnchannels()))
        rate = w.getframerate()
        x = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2").astype(float) / 32768.0
    return rate, x


def band_power(x, rate, exclude, half=300.0):
    """Mean power of x, less the band exclude +- half Hz (Parseval)."""
    if len(x) == 0:
        return 0.0
    s = np.abs(np.fft.rfft(x)) ** 2
    f = np.fft.rfftfreq(len(x), 1.0 / rate)
    keep = np.ones_like(f, dtype=bool) if exclude is None else np.abs(f - exclude) > half
    # rfft: one-sided; bins 1..n/2-1 stand for two.
    w = np.full_like(s, 2.0)
    w[0] = 1.0
    if len(x) % 2 == 0:
        w[-1] = 1.0
    return float(np.sum((s * w)[keep]) / len(x) ** 2)


def active_span(x, rate, thresh_db=-50.0):
    """First to last 20 ms frame above thresh_db RMS."""
    n = rate // 50
    frames = [x[i:i + n] for i in range(0, len(x) - n + 1, n)]
    loud = [np.sqrt(np.mean(f ** 2)) > 10 ** (thresh_db / 20) for f in frames]
    if True not in loud:
        return 0, 0
    a = loud.index(True)
    b = len(loud) - loud[::-1].index(True)
    return a * n, b * n


def db(p):
    return 10 * np.log10(max(p, 1e-20))


def main():
    args = sys.argv[1:]
    min_erle, band = 20.0, None
    for opt in ("--min-erle", "--band"):
        if opt in args:
            i = args.index(opt)
            v = float(args[i + 1])
            del args[i:i + 2]
            if opt == "--min-erle":
                min_erle = v
            else:
                band = v
    if len(args) != 4:
        sys.stderr.write(__doc__)
        sys.exit(2)
    heard_path, spk_path, sim_path, png = args
    try:
        sim = json.load(open(sim_path))
        echo = sim["echo"]
    except (OSError, ValueError, KeyError) as e:
        sys.exit("echo_report: %s: no echo summary (%s)" % (sim_path, e))
    if echo.get("rir_taps") != 1:
        sys.exit("echo_report: the echo path has %s taps: run rtos-sim with --echo-rir delta"
                 % echo.get("rir_taps"))
    erl = float(echo["erl_db"])
    rate, heard = load(heard_path)
    srate, spk = load(spk_path)
    if rate != srate:
        sys.exit("echo_report: rates differ (%d, %d)" % (rate, srate))
    a, b = active_span(spk, rate)
    if b - a < 5 * rate:
        print("echo report:   the speaker played %.1f s only  [FAIL]" % ((b - a) / rate))
        sys.exit(1)
    p_echo = band_power(spk[a:b], rate, band) * 10 ** (-erl / 10)
    # The far end's recording holds the microphone's noise floor (-70 dBFS)
    # while the RTOS runs and digital silence after it stopped: measure
    # from 3 s after the floor starts (the canceller's convergence) to its
    # end, whatever the canceller left.
    ha, hb = active_span(heard, rate, -78.0)
    h0 = ha + 3 * rate
    if hb < h0 + 3 * rate:
        print("echo report:   the far end recorded %.1f s of the call only  [FAIL]" % ((hb - ha) / rate))
        sys.exit(1)
    tail = heard[h0:hb]
    p_heard = band_power(tail, rate, band)
    erle = db(p_echo) - db(p_heard)
    where = "" if band is None else " outside %g +- 300 Hz" % band
    print("echo path:     rtos-sim --echo: %.0f ms bulk delay, ERL %.1f dB, one tap, noise %s dBFS; "
          "speaker %.1f dBFS, echo %.1f dBFS RMS while it played"
          % (echo["delay_ms"], erl, echo.get("noise_dbfs"), echo.get("speaker_rms_dbfs") or -200,
             echo.get("echo_rms_dbfs") or -200))
    print("echo report:   echo into the microphone%s %.1f dBFS; the far end heard %.1f dBFS "
          "(%.1f s to %.1f s of its recording)" % (where, db(p_echo), db(p_heard), h0 / rate, hb / rate))
    verdict = "PASS" if erle >= min_erle else "FAIL"
    print("echo removed:  ERLE %.1f dB  [%s: at least %.0f dB]" % (erle, verdict, min_erle))
    try:
        plot(heard, spk, rate, erl, band, png, erle)
        print("echo plot:     %s (spectra and level over time)" % png)
    except Exception as e:  # the figure is a report, not the verdict
        print("echo plot:     failed (%s)" % e)
    sys.exit(0 if erle >= min_erle else 1)


def plot(heard, spk, rate, erl, band, png, erle):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax1, ax2) = plt.subplots(2, 1, figsize=(10, 7))
    g = 10 ** (-erl / 20)
    for x, label in ((spk * g, "echo into the microphone (speaker - ERL)"),
                     (heard[3 * rate:], "what the far end heard (from 3 s)")):
        if len(x) == 0:
            continue
        win = np.hanning(len(x))
        s = np.abs(np.fft.rfft(x * win)) / (np.sum(win) / 2)
        f = np.fft.rfftfreq(len(x), 1.0 / rate)
        ax1.plot(f, 20 * np.log10(np.maximum(s, 1e-9)), linewidth=0.6, label=label)
    ax1.set_xlabel("Hz")
    ax1.set_ylabel("dBFS")
    ax1.set_ylim(-140, -20)
    ax1.set_title("Spectra: ERLE %.1f dB%s" % (erle, "" if band is None else " (near end at %g Hz)" % band))
    ax1.legend(fontsize=8)
    n = rate // 10
    t = np.arange(len(heard) // n) * 0.1
    lv = [10 * np.log10(max(np.mean(heard[i * n:(i + 1) * n] ** 2), 1e-12)) for i in range(len(t))]
    ax2.plot(t, lv, linewidth=0.8, label="far end heard, 100 ms RMS")
    a, b = active_span(spk, rate)
    e = 10 * np.log10(max(np.mean(spk[a:b] ** 2), 1e-12)) - erl
    ax2.axhline(e, color="r", linestyle="--", linewidth=0.8, label="echo level without a canceller")
    ax2.axvline(3, color="k", linestyle=":", linewidth=0.8)
    ax2.set_xlabel("s (from the start of the far end's recording)")
    ax2.set_ylabel("dBFS")
    ax2.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(png, dpi=90)


if __name__ == "__main__":
    main()
