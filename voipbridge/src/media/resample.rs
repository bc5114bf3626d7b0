//! A small streaming resampler for devices that cannot run at 8 kHz:
//! band-limited interpolation with a Blackman-windowed sinc spanning 2 × 16
//! zero crossings of the output band, its cut-off at the lower of the two Nyquist
//! frequencies (so downsampling does not alias). Any ratio; state is kept
//! across calls so blocks join seamlessly.

use std::f64::consts::PI;

/// Half the filter length, in zero crossings of the cut-off.
const HALF: usize = 16;

/// A streaming resampler from one rate to another.
#[derive(Debug, Clone)]
pub struct Resampler {
    step: f64,
    cutoff: f64,
    half: usize,
    history: Vec<f64>,
    pos: f64,
}

impl Resampler {
    /// Resamples from `from` Hz to `to` Hz.
    pub fn new(from: u32, to: u32) -> Resampler {
        let (from, to) = (f64::from(from.max(1)), f64::from(to.max(1)));
        let ratio = (to / from).min(1.0);
        let half = (HALF as f64 / ratio).ceil() as usize;
        Resampler {
            step: from / to,
            cutoff: ratio * 0.95,
            half,
            history: vec![0.0; half],
            pos: half as f64,
        }
    }

    fn kernel(&self, t: f64) -> f64 {
        let x = t * self.cutoff;
        let sinc = if x.abs() < 1e-9 {
            1.0
        } else {
            (PI * x).sin() / (PI * x)
        };
        // Blackman window over |t| < HALF.
        let w = (t / self.half as f64 + 1.0) / 2.0;
        if !(0.0..=1.0).contains(&w) {
            return 0.0;
        }
        let win = 0.42 - 0.5 * (2.0 * PI * w).cos() + 0.08 * (4.0 * PI * w).cos();
        self.cutoff * sinc * win
    }

    /// Consumes `input`, appends the output samples it completes to `out`.
    pub fn process(&mut self, input: &[i16], out: &mut Vec<i16>) {
        self.history.extend(input.iter().map(|&s| f64::from(s)));
        let half = self.half;
        while self.pos + (half as f64) < self.history.len() as f64 {
            let centre = self.pos.floor() as usize;
            let lo = (centre + 1).saturating_sub(half);
            let mut acc = 0.0;
            for k in lo..=centre + half {
                let x = self.history.get(k).copied().unwrap_or(0.0);
                acc += x * self.kernel(self.pos - k as f64);
            }
            out.push(acc.round().clamp(-32768.0, 32767.0) as i16);
            self.pos += self.step;
        }
        let keep_from = (self.pos.floor() as usize).saturating_sub(half);
        if keep_from > 0 {
            self.history.drain(..keep_from.min(self.history.len()));
            self.pos -= keep_from as f64;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::analysis::{dominant_frequency, tone_level};

    fn tone(hz: f64, rate: f64, n: usize, amp: f64) -> Vec<i16> {
        (0..n)
            .map(|k| (amp * (2.0 * PI * hz * k as f64 / rate).sin()) as i16)
            .collect()
    }

    fn run(r: &mut Resampler, x: &[i16], block: usize) -> Vec<i16> {
        let mut out = Vec::new();
        for b in x.chunks(block) {
            r.process(b, &mut out);
        }
        out
    }

    #[test]
    fn up_and_down_keep_frequency_level_and_length() {
        for (rate, block) in [(48000u32, 160usize), (44100, 37), (16000, 80)] {
            let x = tone(1000.0, 8000.0, 8000, 10000.0);
            let up = run(&mut Resampler::new(8000, rate), &x, block);
            let expect = 8000 * rate as usize / 8000;
            assert!(
                up.len().abs_diff(expect) <= 2 * HALF * rate as usize / 8000,
                "{rate}: {}",
                up.len()
            );
            let r = f64::from(rate);
            let mid = &up[up.len() / 4..3 * up.len() / 4];
            assert!(
                (tone_level(mid, 1000.0, r) - 10000.0).abs() < 200.0,
                "{rate}: {}",
                tone_level(mid, 1000.0, r)
            );
            let down = run(&mut Resampler::new(rate, 8000), &up, block);
            let mid = &down[down.len() / 4..3 * down.len() / 4];
            assert_eq!(dominant_frequency(mid, 8000.0), 1000.0);
            assert!(
                (tone_level(mid, 1000.0, 8000.0) - 10000.0).abs() < 300.0,
                "{rate}"
            );
        }
    }

    #[test]
    fn downsampling_does_not_alias() {
        // 10 kHz at 48 kHz would alias to 2 kHz at 8 kHz without the filter.
        let x = tone(10000.0, 48000.0, 48000, 10000.0);
        let down = run(&mut Resampler::new(48000, 8000), &x, 480);
        let mid = &down[1000..7000];
        assert!(
            tone_level(mid, 2000.0, 8000.0) < 100.0,
            "{}",
            tone_level(mid, 2000.0, 8000.0)
        );
    }
}
