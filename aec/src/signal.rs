//! Test signals for the canceller's evaluation: an artificial voice
//! (speech-like in spectrum and rhythm, seeded, so a benchmark is
//! repeatable without shipping recordings) and a multi-tone.

use std::f64::consts::TAU;

/// A seeded SplitMix64 generator.
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    /// A generator for `seed`.
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    /// Uniform in [lo, hi).
    pub fn range(&mut self, lo: f64, hi: f64) -> f64 {
        lo + (hi - lo) * ((self.next() >> 11) as f64 / (1u64 << 53) as f64)
    }
}

/// Gain of a resonance at `f` Hz with centre `fc` and bandwidth `bw`.
fn resonance(f: f64, fc: f64, bw: f64) -> f64 {
    1.0 / (1.0 + ((f - fc) / (bw / 2.0)).powi(2)).sqrt()
}

/// `seconds` of an artificial voice at `rate`, active level `dbfs` RMS:
/// syllables of 120–350 ms (a glottal pitch of 90–220 Hz gliding ±15 %,
/// harmonics to 3.6 kHz shaped by two formants that move per syllable,
/// 15 ms attack and release), an unvoiced burst now and then, pauses of
/// 40–250 ms. About 70 % of the time is active, as in conversation.
pub fn voice(seed: u64, rate: u32, seconds: f64, dbfs: f64) -> Vec<i16> {
    let fs = f64::from(rate);
    let n = (seconds * fs) as usize;
    let mut rng = Rng::new(seed);
    let mut x = vec![0.0f64; n];
    let mut t = (rng.range(0.0, 0.1) * fs) as usize;
    let mut phase = 0.0f64;
    while t < n {
        let len = (rng.range(0.12, 0.35) * fs) as usize;
        let f0 = rng.range(90.0, 220.0);
        let glide = rng.range(-0.15, 0.15);
        let (f1, f2) = (rng.range(300.0, 900.0), rng.range(900.0, 2500.0));
        let unvoiced = rng.range(0.0, 1.0) < 0.2;
        let ramp = 0.015 * fs;
        for i in 0..len.min(n - t) {
            let env = (i as f64 / ramp).min(1.0).min((len - i) as f64 / ramp);
            let v = if unvoiced {
                // Hiss: noise, weighted to the upper band.
                let a = rng.range(-1.0, 1.0);
                let b = rng.range(-1.0, 1.0);
                0.3 * (a - b)
            } else {
                let f = f0 * (1.0 + glide * i as f64 / len as f64);
                phase += f / fs;
                if phase > 1.0 {
                    phase -= 1.0;
                }
                let mut s = 0.0;
                let mut k = 1.0;
                while k * f < 3600.0 {
                    let h = k * f;
                    let g = (resonance(h, f1, 150.0) + 0.6 * resonance(h, f2, 250.0)) / k.powf(0.5);
                    s += g * (TAU * k * phase).sin();
                    k += 1.0;
                }
                s
            };
            x[t + i] += env * v;
        }
        t += len + (rng.range(0.04, 0.25) * fs) as usize;
    }
    scale(&x, dbfs)
}

/// `seconds` of the sum of `freqs` (equal amplitudes, seeded phases) at
/// `dbfs` RMS.
pub fn multitone(seed: u64, rate: u32, freqs: &[f64], seconds: f64, dbfs: f64) -> Vec<i16> {
    let fs = f64::from(rate);
    let mut rng = Rng::new(seed);
    let ph: Vec<f64> = freqs.iter().map(|_| rng.range(0.0, 1.0)).collect();
    let x: Vec<f64> = (0..(seconds * fs) as usize)
        .map(|i| {
            freqs
                .iter()
                .zip(&ph)
                .map(|(f, p)| (TAU * (f * i as f64 / fs + p)).sin())
                .sum()
        })
        .collect();
    scale(&x, dbfs)
}

/// A sine of `hz` at `dbfs` RMS.
pub fn tone(rate: u32, hz: f64, seconds: f64, dbfs: f64) -> Vec<i16> {
    multitone(0, rate, &[hz], seconds, dbfs)
}

/// Scales `x` so its active samples (above −40 dB of the peak envelope)
/// have RMS `dbfs`.
fn scale(x: &[f64], dbfs: f64) -> Vec<i16> {
    let peak = x.iter().fold(0.0f64, |a, &v| a.max(v.abs()));
    let floor = peak * 0.01;
    let (mut s, mut n) = (0.0, 0usize);
    for &v in x {
        if v.abs() > floor {
            s += v * v;
            n += 1;
        }
    }
    let rms = (s / n.max(1) as f64).sqrt();
    let g = if rms > 0.0 {
        32768.0 * 10f64.powf(dbfs / 20.0) / rms
    } else {
        0.0
    };
    x.iter()
        .map(|&v| (v * g).round().clamp(-32768.0, 32767.0) as i16)
        .collect()
}

/// RMS of `x` in dBFS (−200 for silence).
pub fn rms_dbfs(x: &[i16]) -> f64 {
    let p = x.iter().map(|&v| f64::from(v).powi(2)).sum::<f64>() / x.len().max(1) as f64;
    if p > 0.0 {
        10.0 * (p / (32768.0f64 * 32768.0)).log10()
    } else {
        -200.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn voice_is_seeded_speech_like_and_at_level() {
        let a = voice(1, 8000, 10.0, -20.0);
        assert_eq!(a, voice(1, 8000, 10.0, -20.0));
        assert_ne!(a, voice(2, 8000, 10.0, -20.0));
        // Pauses: 20 ms frames near silence make up 15-50 % of the time.
        let frames: Vec<f64> = a.chunks(160).map(rms_dbfs).collect();
        let quiet = frames.iter().filter(|&&d| d < -50.0).count() as f64 / frames.len() as f64;
        assert!((0.15..0.5).contains(&quiet), "quiet share {quiet}");
        // Active level within 1.5 dB of -20 dBFS.
        let active: Vec<i16> = a
            .chunks(160)
            .filter(|c| rms_dbfs(c) > -45.0)
            .flatten()
            .copied()
            .collect();
        let l = rms_dbfs(&active);
        assert!((l + 20.0).abs() < 1.5, "{l}");
    }

    #[test]
    fn tones_at_level() {
        let t = tone(8000, 1000.0, 1.0, -20.0);
        assert!((rms_dbfs(&t) + 20.0).abs() < 0.05);
        let m = multitone(3, 8000, &[300.0, 700.0, 1300.0], 1.0, -15.0);
        assert!((rms_dbfs(&m) + 15.0).abs() < 0.3);
    }
}
