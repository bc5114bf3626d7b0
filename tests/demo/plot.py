#!/usr/bin/python3
"""Spectrum plot of a demo's two recordings.

usage: plot.py TOP.wav BOTTOM.wav OUT.png [TOP_TITLE BOTTOM_TITLE]
(the titles default to the x86_64 demo's: far end and application side)
"""
import sys
import wave

import numpy as np
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def spectrum(path):
    with wave.open(path) as w:
        rate = w.getframerate()
        x = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2").astype(float) / 32768.0
    if len(x) == 0:
        return rate, np.zeros(1), np.zeros(1)
    win = np.hanning(len(x))
    s = np.abs(np.fft.rfft(x * win)) / (np.sum(win) / 2)
    f = np.fft.rfftfreq(len(x), 1.0 / rate)
    return rate, f, 20 * np.log10(np.maximum(s, 1e-9))


def main():
    far, app, png = sys.argv[1:4]
    titles = sys.argv[4:6] if len(sys.argv) >= 6 else (
        "far end (baresip) heard: expect 1 kHz", "application on hw:VoIP,0,0 heard: expect 440 Hz")
    fig, axes = plt.subplots(2, 1, figsize=(9, 6), sharex=True)
    for ax, path, title in ((axes[0], far, titles[0]), (axes[1], app, titles[1])):
        try:
            _, f, db = spectrum(path)
        except (OSError, EOFError, wave.Error) as e:
            ax.set_title(f"{title}: {e}")
            continue
        ax.plot(f, db, linewidth=0.8)
        peak = f[int(np.argmax(db))]
        ax.set_title(f"{title} (peak {peak:.1f} Hz)")
        ax.set_ylabel("dBFS")
        ax.set_ylim(-120, 0)
        ax.grid(True, alpha=0.3)
    axes[1].set_xlabel("Hz")
    fig.tight_layout()
    fig.savefig(png, dpi=100)


if __name__ == "__main__":
    main()
