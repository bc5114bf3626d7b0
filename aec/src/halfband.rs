//! 8 ↔ 16 kHz for AEC3, which runs at 16 kHz at least: a 63-tap half-band
//! FIR (Kaiser-windowed sinc, β = 8), up by two and down by two.
//!
//! Why not `aec3`'s own `AudioBuffer` resampling (WebRTC's `SincResampler`):
//! it is a general-ratio resampler (32-tap kernels interpolated between 32
//! sub-sample offsets, in part in `f64`) and took 31 % of the whole
//! canceller's instructions at 8 kHz (callgrind, `aec-eval`), which on the
//! emulated arm64 board, where every float operation is emulated, was the
//! difference between keeping up and not. A half-band filter for exactly
//! 2:1 costs 16 multiply-adds per interpolated sample (half its taps are
//! zero, the rest symmetric) and none for the other half. No crate in reach
//! does this one thing without a general resampler's weight, hence this
//! module (its tests pin the response).
//!
//! Response (test `response`): within 0.02 dB up to 3.4 kHz; from 4.6 kHz
//! at least 55 dB down (what would fold back into the 8 kHz band) and the
//! images of 8 kHz content at least 50 dB down; delay 31 samples at 16 kHz
//! each way (3.9 ms there and back).

use std::f64::consts::PI;
use std::sync::OnceLock;

/// Non-zero off-centre taps on each side of the centre.
const K: usize = 16;
const BETA: f64 = 8.0;
/// Delay of each direction, in 16 kHz samples.
pub const DELAY_16K: usize = 2 * K - 1;

/// `h[2j]` for `j = 0..K` (the taps at even offsets from the filter's
/// start, i.e. odd distances from its centre; the rest are mirrored), for a
/// filter whose taps sum to 1. The centre tap is ½.
fn taps() -> &'static [f32; K] {
    static T: OnceLock<[f32; K]> = OnceLock::new();
    T.get_or_init(|| {
        let c = DELAY_16K as f64;
        let i0b = crate::resample::bessel_i0(BETA);
        let h = |i: usize| {
            let n = i as f64 - c;
            let s = if n == 0.0 {
                1.0
            } else {
                (PI * n / 2.0).sin() / (PI * n / 2.0)
            };
            let r = n / c;
            0.5 * s * crate::resample::bessel_i0(BETA * (1.0 - r * r).max(0.0).sqrt()) / i0b
        };
        let sum: f64 = (0..4 * K - 1).map(h).sum();
        let mut t = [0f32; K];
        for (j, v) in t.iter_mut().enumerate() {
            *v = (h(2 * j) / sum) as f32;
        }
        t
    })
}

/// 8 → 16 kHz.
#[derive(Clone, Debug)]
pub struct Up {
    /// The last `2K − 1` inputs, then each block's.
    x: Vec<f32>,
}

impl Default for Up {
    fn default() -> Self {
        Up {
            x: vec![0.0; 2 * K - 1],
        }
    }
}

impl Up {
    /// Appends two output samples per input sample to `out` (cleared first).
    pub fn process(&mut self, input: &[f32], out: &mut Vec<f32>) {
        let t = taps();
        out.clear();
        let keep = 2 * K - 1;
        self.x.extend_from_slice(input);
        // x[p] is input n − keep + p relative to the block: output 2n is
        // 2·Σ h[2j]·(x[n−j] + x[n−2K+1+j]); output 2n+1 is x[n−K+1].
        for p in keep..self.x.len() {
            let mut acc = 0.0f32;
            for (j, &h) in t.iter().enumerate() {
                acc += h * (self.x[p - j] + self.x[p + 1 + j - 2 * K]);
            }
            out.push(2.0 * acc);
            out.push(self.x[p + 1 - K]);
        }
        let n = self.x.len();
        self.x.drain(..n - keep);
    }
}

/// 16 → 8 kHz (inputs in pairs; an odd one waits for its partner).
#[derive(Clone, Debug)]
pub struct Down {
    /// The last `4K − 2` inputs, then each block's.
    u: Vec<f32>,
}

impl Default for Down {
    fn default() -> Self {
        Down {
            u: vec![0.0; 4 * K - 2],
        }
    }
}

impl Down {
    /// Appends one output sample per two input samples to `out` (cleared
    /// first).
    pub fn process(&mut self, input: &[f32], out: &mut Vec<f32>) {
        let t = taps();
        out.clear();
        let keep = 4 * K - 2;
        self.u.extend_from_slice(input);
        // Output n: ½·u[2n−2K+1] + Σ h[2j]·(u[2n−2j] + u[2n−4K+2+2j]),
        // u[2n] the first sample of its pair (the second is not needed, but
        // waited for: one output per pair).
        let mut p = keep;
        while p + 1 < self.u.len() {
            let q = p;
            let mut acc = 0.5 * self.u[q - DELAY_16K];
            for (j, &h) in t.iter().enumerate() {
                acc += h * (self.u[q - 2 * j] + self.u[q + 2 + 2 * j - 4 * K]);
            }
            out.push(acc);
            p += 2;
        }
        let used = p - keep;
        self.u.drain(..used);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sine(hz: f64, rate: f64, n: usize) -> Vec<f32> {
        (0..n)
            .map(|i| (2.0 * PI * hz * i as f64 / rate).sin() as f32 * 0.5)
            .collect()
    }

    fn rms(x: &[f32]) -> f64 {
        (x.iter().map(|&v| f64::from(v).powi(2)).sum::<f64>() / x.len() as f64).sqrt()
    }

    fn db(a: f64, b: f64) -> f64 {
        20.0 * (a / b).log10()
    }

    #[test]
    fn response() {
        // Pass band: level kept to 0.02 dB.
        for hz in [100.0, 1000.0, 2500.0, 3400.0] {
            let x = sine(hz, 8000.0, 4000);
            let mut y = Vec::new();
            Up::default().process(&x, &mut y);
            assert!(db(rms(&y[200..]), rms(&x[100..])).abs() < 0.02, "up {hz}");
            let u = sine(hz, 16000.0, 8000);
            Down::default().process(&u, &mut y);
            assert!(db(rms(&y[100..]), rms(&u[200..])).abs() < 0.02, "down {hz}");
        }
        // Stop band: what 16 kHz content above 4.6 kHz folds back into
        // 8 kHz, and the image of 8 kHz content below 3.4 kHz.
        for hz in [4600.0, 5500.0, 7000.0, 7900.0] {
            let u = sine(hz, 16000.0, 8000);
            let mut y = Vec::new();
            Down::default().process(&u, &mut y);
            assert!(db(rms(&y[100..]), rms(&u)) < -55.0, "fold-back of {hz}");
        }
        for hz in [500.0, 2000.0, 3400.0] {
            // Upsampled, then the image (16000 − ... Hz mirrored at 4 kHz)
            // measured by mixing it down: y·cos(2π·8000·t) moves the image
            // onto the tone and the tone onto the image.
            let x = sine(hz, 8000.0, 4000);
            let mut y = Vec::new();
            Up::default().process(&x, &mut y);
            let shifted: Vec<f32> = y
                .iter()
                .enumerate()
                .map(|(i, &v)| if i % 2 == 0 { v } else { -v })
                .collect();
            let mut back = Vec::new();
            Down::default().process(&shifted, &mut back);
            assert!(db(rms(&back[100..]), rms(&x)) < -50.0, "image of {hz}");
        }
    }

    #[test]
    fn delay_and_block_independence() {
        // An impulse comes out DELAY_16K samples later each way, whatever
        // the block lengths.
        let mut x = vec![0f32; 400];
        x[100] = 1.0;
        let mut whole = Vec::new();
        Up::default().process(&x, &mut whole);
        let peak = (0..whole.len())
            .max_by(|&a, &b| whole[a].total_cmp(&whole[b]))
            .unwrap();
        assert_eq!(peak, 200 + DELAY_16K);
        let mut up = Up::default();
        let mut pieces = Vec::new();
        let mut y = Vec::new();
        for c in x.chunks(37) {
            up.process(c, &mut y);
            pieces.extend_from_slice(&y);
        }
        assert_eq!(pieces, whole);

        let mut down = Down::default();
        let mut back = Vec::new();
        for c in whole.chunks(23) {
            down.process(c, &mut y);
            back.extend_from_slice(&y);
        }
        assert_eq!(back.len(), 400);
        let peak = (0..back.len())
            .max_by(|&a, &b| back[a].total_cmp(&back[b]))
            .unwrap();
        assert_eq!(peak, 100 + DELAY_16K);
    }
}
