//! A streaming rational resampler for devices that cannot run at 8 kHz:
//! a precomputed polyphase FIR (Kaiser-windowed sinc), exact for any
//! ratio of integer rates.
//!
//! From `from` Hz to `to` Hz with `g = gcd(from, to)`: up by `L = to/g`,
//! down by `M = from/g`. Output sample `n` sits at input position `n·M/L`;
//! with `n·M = q·L + p` it is the dot product of the `taps` inputs ending
//! at `q` with row `p` of an `L × taps` coefficient table, computed once per
//! rate pair and shared by every call (8 ↔ 48 kHz: 6 rows, 8 ↔ 44.1 kHz:
//! 441 or 80 rows; 35–200 taps). Per output sample that is one dot product
//! of f32s (which vectorises) and no trigonometry: the old resampler
//! evaluated a sine and two cosines per tap per sample (~9 M calls per
//! second per call at 48 kHz). The phase is kept as an integer fraction, so
//! the output count never drifts: 1 s in gives exactly 1 s out.
//!
//! The filter's cut-off is 90 % of the lower of the two Nyquist frequencies
//! (3.6 kHz at 8 kHz), so downsampling does not alias; its phase is linear,
//! with a delay of [`Resampler::delay`] output samples.
//!
//! Why not a crate: rubato (the well-kept Rust resampler) is built for
//! arbitrary and asynchronous ratios on deinterleaved f32/f64 vectors, and
//! brings num-complex/num-traits (and realfft/rustfft unless disabled); the
//! device rates here are all rational with a small table, and this module
//! is about 200 lines, tested for response, phase and exact length below.

use std::sync::{Arc, Mutex, OnceLock};

/// Half the filter length, in zero crossings of the cut-off.
const HALF: usize = 16;
/// Cut-off as a fraction of the lower Nyquist frequency.
const CUTOFF: f64 = 0.90;
/// Kaiser window shape (about 80 dB of stopband).
const KAISER_BETA: f64 = 8.0;

/// The coefficients of one rate pair.
#[derive(Debug)]
struct Table {
    up: usize,
    down: usize,
    taps: usize,
    /// `up` rows of `taps`, each reversed so that row `p` dotted with the
    /// inputs `q-taps+1 ..= q` in order gives output phase `p`.
    coeffs: Vec<f32>,
}

fn gcd(a: u64, b: u64) -> u64 {
    if b == 0 {
        a
    } else {
        gcd(b, a % b)
    }
}

/// Modified Bessel function of the first kind, order 0 (series).
fn bessel_i0(x: f64) -> f64 {
    let mut sum = 1.0;
    let mut term = 1.0;
    let q = x * x / 4.0;
    for k in 1..64 {
        term *= q / (k as f64 * k as f64);
        sum += term;
        if term < sum * 1e-12 {
            break;
        }
    }
    sum
}

impl Table {
    fn new(from: u32, to: u32) -> Table {
        let (from, to) = (u64::from(from.max(1)), u64::from(to.max(1)));
        let g = gcd(from, to);
        let (up, down) = ((to / g) as usize, (from / g) as usize);
        // Cut-off relative to the input rate (cycles per input sample).
        let fc = CUTOFF * 0.5 * (to.min(from) as f64) / from as f64;
        // Zero crossings of the sinc are 1/(2 fc) input samples apart.
        let taps = ((2.0 * HALF as f64) / (2.0 * fc)).ceil() as usize;
        let n = taps * up;
        let centre = (n as f64 - 1.0) / 2.0;
        let i0_beta = bessel_i0(KAISER_BETA);
        let mut coeffs = vec![0f32; n];
        for p in 0..up {
            for j in 0..taps {
                // Tap j of phase p is prototype tap k = j*up + p, in input samples t.
                let k = (j * up + p) as f64;
                let t = (k - centre) / up as f64;
                let x = 2.0 * fc * t;
                let sinc = if x.abs() < 1e-12 {
                    1.0
                } else {
                    (std::f64::consts::PI * x).sin() / (std::f64::consts::PI * x)
                };
                let r = (k - centre) / (n as f64 / 2.0);
                let w = if r.abs() <= 1.0 {
                    bessel_i0(KAISER_BETA * (1.0 - r * r).sqrt()) / i0_beta
                } else {
                    0.0
                };
                let c = 2.0 * fc * sinc * w;
                if let Some(slot) = coeffs.get_mut(p * taps + (taps - 1 - j)) {
                    *slot = c as f32;
                }
            }
        }
        // Unity gain at DC for every phase (no ripple at the phase rate).
        for row in coeffs.chunks_mut(taps) {
            let sum: f32 = row.iter().sum();
            if sum.abs() > 1e-6 {
                for c in row.iter_mut() {
                    *c /= sum;
                }
            }
        }
        Table {
            up,
            down,
            taps,
            coeffs,
        }
    }

    /// The table of a rate pair, computed once per process.
    fn shared(from: u32, to: u32) -> Arc<Table> {
        type Cache = Mutex<Vec<((u32, u32), Arc<Table>)>>;
        static CACHE: OnceLock<Cache> = OnceLock::new();
        let cache = CACHE.get_or_init(|| Mutex::new(Vec::new()));
        let mut c = cache.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((_, t)) = c.iter().find(|(k, _)| *k == (from, to)) {
            return t.clone();
        }
        let t = Arc::new(Table::new(from, to));
        c.push(((from, to), t.clone()));
        t
    }
}

/// A streaming resampler from one rate to another; see the module documentation.
#[derive(Debug, Clone)]
pub struct Resampler {
    table: Arc<Table>,
    /// Inputs not yet consumed, preceded by the `taps - 1` before them.
    history: Vec<f32>,
    /// Index in `history` of the input the next output ends at.
    q: usize,
    /// Its phase, 0..up.
    p: usize,
}

impl Resampler {
    /// Resamples from `from` Hz to `to` Hz.
    pub fn new(from: u32, to: u32) -> Resampler {
        let table = Table::shared(from, to);
        let taps = table.taps;
        let mut history = Vec::with_capacity(taps + 4096);
        history.resize(taps - 1, 0.0);
        Resampler {
            table,
            history,
            q: taps - 1,
            p: 0,
        }
    }

    /// Filter length in input samples.
    pub fn taps(&self) -> usize {
        self.table.taps
    }

    /// The filter's (constant) delay, in output samples: an input sample
    /// at time t comes out at output time t + delay.
    pub fn delay(&self) -> f64 {
        // Output n is the prototype (taps*up long, centred at its middle)
        // applied at upsampled time n*down, where input i sits at i*up.
        let t = &self.table;
        ((t.taps * t.up) as f64 - 1.0) / 2.0 / t.down as f64
    }

    /// Consumes `input`, appends the output samples it completes to `out`
    /// (no allocation once `out` and the history have grown to the block size).
    pub fn process(&mut self, input: &[i16], out: &mut Vec<i16>) {
        self.history.extend(input.iter().map(|&s| f32::from(s)));
        let (up, down, taps) = (self.table.up, self.table.down, self.table.taps);
        while self.q < self.history.len() {
            let start = self.q + 1 - taps;
            let x = self.history.get(start..=self.q).unwrap_or_default();
            let row = self
                .table
                .coeffs
                .get(self.p * taps..(self.p + 1) * taps)
                .unwrap_or_default();
            let acc: f32 = x.iter().zip(row).map(|(a, b)| a * b).sum();
            out.push(acc.round().clamp(-32768.0, 32767.0) as i16);
            self.p += down;
            self.q += self.p / up;
            self.p %= up;
        }
        // Keep the taps-1 inputs before the next output's window.
        let keep_from = (self.q + 1).saturating_sub(taps).min(self.history.len());
        if keep_from > 0 {
            self.history.drain(..keep_from);
            self.q -= keep_from;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::analysis::{dominant_frequency, tone_level};
    use std::f64::consts::PI;

    fn tone(hz: f64, rate: f64, n: usize, amp: f64) -> Vec<i16> {
        (0..n)
            .map(|k| (amp * (2.0 * PI * hz * k as f64 / rate).sin()).round() as i16)
            .collect()
    }

    fn run(r: &mut Resampler, x: &[i16], block: usize) -> Vec<i16> {
        let mut out = Vec::new();
        for b in x.chunks(block) {
            r.process(b, &mut out);
        }
        out
    }

    fn db(x: f64) -> f64 {
        20.0 * x.log10()
    }

    #[test]
    fn up_and_down_keep_frequency_level_and_length() {
        for (rate, block) in [(48000u32, 160usize), (44100, 37), (16000, 80), (32000, 1)] {
            let x = tone(1000.0, 8000.0, 8000, 10000.0);
            let mut r = Resampler::new(8000, rate);
            let up = run(&mut r, &x, block);
            // Exactly as many outputs as the input's duration at the new rate.
            assert_eq!(up.len(), rate as usize, "{rate}");
            let f = f64::from(rate);
            let mid = &up[up.len() / 4..3 * up.len() / 4];
            let l = tone_level(mid, 1000.0, f);
            assert!((l - 10000.0).abs() < 50.0, "{rate}: {l}");
            let mut back = Resampler::new(rate, 8000);
            let down = run(&mut back, &up, block);
            assert_eq!(down.len(), 8000, "{rate}");
            let mid = &down[2000..6000];
            assert_eq!(dominant_frequency(mid, 8000.0), 1000.0);
            assert!(
                (tone_level(mid, 1000.0, 8000.0) - 10000.0).abs() < 100.0,
                "{rate}"
            );
        }
    }

    #[test]
    fn passband_is_flat_and_the_stopband_rejects_aliases() {
        // 48 kHz to 8 kHz: the telephone band passes within 0.1 dB ...
        for hz in [300.0, 1000.0, 2000.0, 3000.0] {
            let x = tone(hz, 48000.0, 48000, 10000.0);
            let y = run(&mut Resampler::new(48000, 8000), &x, 480);
            let l = tone_level(&y[2000..7000], hz, 8000.0);
            assert!(
                db(l / 10000.0).abs() < 0.1,
                "{hz} Hz: {:.2} dB",
                db(l / 10000.0)
            );
        }
        // ... and everything that would fold into it is 60 dB down or more.
        for (hz, alias) in [
            (4600.0, 3400.0),
            (6000.0, 2000.0),
            (10000.0, 2000.0),
            (21000.0, 3000.0),
        ] {
            let x = tone(hz, 48000.0, 48000, 10000.0);
            let y = run(&mut Resampler::new(48000, 8000), &x, 480);
            let l = tone_level(&y[2000..7000], alias, 8000.0);
            assert!(
                db(l / 10000.0) < -60.0,
                "{hz} Hz -> {alias} Hz at {:.1} dB",
                db(l / 10000.0)
            );
        }
        // 8 kHz to 48 kHz: the images of a 1 kHz tone (7, 9, 15 kHz) are gone.
        let x = tone(1000.0, 8000.0, 8000, 10000.0);
        let y = run(&mut Resampler::new(8000, 48000), &x, 160);
        for image in [7000.0, 9000.0, 15000.0, 17000.0] {
            let l = tone_level(&y[6000..42000], image, 48000.0);
            assert!(
                db(l / 10000.0) < -60.0,
                "image {image} Hz at {:.1} dB",
                db(l / 10000.0)
            );
        }
    }

    #[test]
    fn phase_is_linear_with_the_reported_delay() {
        // A 700 Hz sine through 8 -> 48 kHz must equal the same sine
        // delayed by delay() output samples, sample for sample.
        for (from, to) in [
            (8000u32, 48000u32),
            (48000, 8000),
            (8000, 44100),
            (44100, 8000),
        ] {
            let amp = 8000.0;
            let x = tone(700.0, f64::from(from), from as usize, amp);
            let mut r = Resampler::new(from, to);
            let d = r.delay();
            let y = run(&mut r, &x, 333);
            let f = f64::from(to);
            let worst = (y.len() / 4..3 * y.len() / 4)
                .map(|n| {
                    let ideal = amp * (2.0 * PI * 700.0 * (n as f64 - d) / f).sin();
                    (f64::from(y[n]) - ideal).abs()
                })
                .fold(0.0, f64::max);
            assert!(
                worst < 8.0,
                "{from}->{to}: delay {d:.3}, worst error {worst:.1}"
            );
        }
    }

    #[test]
    fn block_size_does_not_change_the_output() {
        let x = tone(1234.0, 44100.0, 20000, 12000.0);
        let a = run(&mut Resampler::new(44100, 8000), &x, 441);
        let b = run(&mut Resampler::new(44100, 8000), &x, 7);
        let c = run(&mut Resampler::new(44100, 8000), &x, 20000);
        assert_eq!(a, b);
        assert_eq!(a, c);
    }

    #[test]
    fn tables_are_shared_and_small() {
        let a = Resampler::new(8000, 48000);
        let b = Resampler::new(8000, 48000);
        assert!(Arc::ptr_eq(&a.table, &b.table));
        assert_eq!((a.table.up, a.table.down), (6, 1));
        let c = Resampler::new(44100, 8000);
        assert_eq!((c.table.up, c.table.down), (80, 441));
        assert!(c.table.coeffs.len() < 20_000, "{}", c.table.coeffs.len());
    }

    #[test]
    fn full_scale_overshoot_is_clamped_not_wrapped() {
        // A full-scale step overshoots by ~9 % (Gibbs): the output must
        // saturate at 32767, never wrap to a large negative value.
        let x: Vec<i16> = (0..4800)
            .map(|k| if k < 2400 { -32768 } else { 32767 })
            .collect();
        let mut r = Resampler::new(48000, 8000);
        let d = r.delay();
        let y = run(&mut r, &x, 480);
        let step = (400.0 + d) as usize;
        let after = &y[step + 20..];
        assert!(after.iter().all(|&v| v > 20000), "{after:?}");
        assert_eq!(y.iter().max(), Some(&32767));
        assert_eq!(y.iter().min(), Some(&-32768));
    }
}
