//! The acoustic path of the board, for `rtos-sim run --echo`: what the
//! speaker plays comes back into the microphone, as it does in a dash cam
//! or a door station whose speaker and microphone share one enclosure.
//!
//! ```text
//! mic(t) = near(t) + g · (h ∗ spk)(t − D(t)) + noise(t)
//! ```
//!
//! * `spk` is what the speaker ring played (silence before the codec
//!   started and for frames missing when due), on the speaker codec's clock;
//! * `D` is the bulk delay (codec FIFOs, DMA, the air), optionally stepped
//!   by `step_ms` at `step_at_s` (the 40 ms step a canceller must survive);
//! * `h` is a room impulse response with unit energy (generated: seeded
//!   Gaussian taps under an exponential decay reaching −60 dB at RT60, with
//!   a direct-path tap first; or read from a WAV and normalised), so
//!   `g = 10^(−ERL/20)` makes the echo return loss exact for a white signal
//!   and, with a single-tap response, for any signal;
//! * the speaker and microphone clocks may differ by `drift_ppm`, so the
//!   echo path drifts against both of Linux's streams as on a board whose
//!   codec runs the two directions off different clocks. The speaker signal
//!   is read at the microphone's sampling instants with a windowed-sinc
//!   interpolator (96 taps, Kaiser, flat to 0.47 of the rate), exact at
//!   whole-sample positions;
//! * `noise` is seeded white Gaussian noise at `noise_dbfs` RMS.
//!
//! [`EchoPath`] is pure (no clock, no I/O): `run` feeds it the speaker's
//! output and asks it for the echo of each microphone period, giving it the
//! time at which the speaker started; an offline benchmark can drive it in
//! virtual time the same way.

use std::collections::VecDeque;
use std::f64::consts::PI;
use std::path::{Path, PathBuf};

use g711::Law;
use serde::Serialize;
use snd_voip_logic::format::Format;

use crate::{wav, SimError};

/// Half-width of the interpolation kernel, in samples (96 taps).
const HALF_TAPS: i64 = 48;
/// Bulk delay bounds, ms (the issue's 20–200 ms, with room either side).
pub const DELAY_MS_RANGE: (f64, f64) = (0.0, 1000.0);
/// Longest impulse response accepted, ms.
pub const MAX_RIR_MS: f64 = 1000.0;

/// Where the room impulse response comes from.
#[derive(Clone, Debug, PartialEq)]
pub enum RirSpec {
    /// Seeded exponential decay: Gaussian taps, −60 dB after `rt60_ms`,
    /// `len_ms` long (at least one tap), a direct-path tap at 0.
    Generated {
        /// Reverberation time (−60 dB), ms.
        rt60_ms: f64,
        /// Length of the response, ms.
        len_ms: f64,
    },
    /// One tap: the echo is the speaker signal, delayed and scaled.
    Delta,
    /// A measured response (mono or first channel, the microphone's rate).
    Wav(PathBuf),
}

/// The acoustic path's parameters (`rtos-sim run --echo-*`).
#[derive(Clone, Debug, PartialEq)]
pub struct EchoConfig {
    /// Bulk delay from the speaker's output to the microphone, ms.
    pub delay_ms: f64,
    /// Echo return loss, dB (positive: the echo is quieter than the speaker).
    pub erl_db: f64,
    /// The room.
    pub rir: RirSpec,
    /// White noise at the microphone, dBFS RMS; `None`: no noise.
    pub noise_dbfs: Option<f64>,
    /// The speaker codec's clock against the microphone's, ppm.
    pub drift_ppm: f64,
    /// A change of the bulk delay during the run: (change in ms, at seconds
    /// after start on the microphone's clock).
    pub step: Option<(f64, f64)>,
    /// Seed of the generated response and of the noise.
    pub seed: u64,
}

impl Default for EchoConfig {
    fn default() -> Self {
        EchoConfig {
            delay_ms: 60.0,
            erl_db: 10.0,
            rir: RirSpec::Generated {
                rt60_ms: 100.0,
                len_ms: 100.0,
            },
            noise_dbfs: Some(-70.0),
            drift_ppm: 0.0,
            step: None,
            seed: 1,
        }
    }
}

impl EchoConfig {
    /// Checks every parameter; the message names the option.
    pub fn validate(&self) -> Result<(), SimError> {
        let bad = |m: String| Err(SimError::Params(m));
        let (lo, hi) = DELAY_MS_RANGE;
        if !(self.delay_ms.is_finite() && self.delay_ms >= lo && self.delay_ms <= hi) {
            return bad(format!(
                "--echo-delay {} ms must be between {lo} and {hi} ms",
                self.delay_ms
            ));
        }
        if !(self.erl_db.is_finite() && (-20.0..=120.0).contains(&self.erl_db)) {
            return bad(format!(
                "--echo-erl {} dB must be between -20 and 120 dB",
                self.erl_db
            ));
        }
        if let Some(n) = self.noise_dbfs {
            if !(n.is_finite() && n <= 0.0) {
                return bad(format!("--echo-noise {n} dBFS must be <= 0"));
            }
        }
        if !(self.drift_ppm.is_finite() && self.drift_ppm.abs() <= 10_000.0) {
            return bad(format!(
                "--echo-drift-ppm {} must be within ±10000",
                self.drift_ppm
            ));
        }
        if let Some((ms, at)) = self.step {
            let after = self.delay_ms + ms;
            if !(ms.is_finite() && at.is_finite() && at >= 0.0 && after >= lo && after <= hi) {
                return bad(format!(
                    "--echo-delay-step {ms}@{at}: the step time must be >= 0 s and the delay after it ({after} ms) between {lo} and {hi} ms"
                ));
            }
        }
        if let RirSpec::Generated { rt60_ms, len_ms } = self.rir {
            if !(rt60_ms.is_finite() && rt60_ms > 0.0 && rt60_ms <= 10_000.0) {
                return bad(format!(
                    "--echo-rt60 {rt60_ms} ms must be above 0 and at most 10000"
                ));
            }
            if !(len_ms.is_finite() && (0.0..=MAX_RIR_MS).contains(&len_ms)) {
                return bad(format!(
                    "--echo-rir-len {len_ms} ms must be between 0 and {MAX_RIR_MS}"
                ));
            }
        }
        Ok(())
    }

    /// The speaker's rate for a microphone at `mic_rate`: `drift_ppm` off.
    pub fn speaker_rate(&self, mic_rate: f64) -> f64 {
        mic_rate * (1.0 + self.drift_ppm * 1e-6)
    }

    /// The impulse response at `rate`, with unit energy.
    pub fn impulse_response(&self, rate: u32) -> Result<Vec<f32>, SimError> {
        let h = match &self.rir {
            RirSpec::Delta => vec![1.0],
            RirSpec::Generated { rt60_ms, len_ms } => {
                generate_rir(self.seed, *rt60_ms, *len_ms, rate)
            }
            RirSpec::Wav(path) => load_rir(path, rate)?,
        };
        Ok(h)
    }
}

/// A seeded exponential-decay room response at `rate`: tap 0 is the direct
/// path (amplitude 1), then Gaussian taps whose envelope falls 60 dB per
/// `rt60_ms`, scaled so the reverberant energy equals the direct path's at
/// RT60 = 100 ms (a small enclosure). Normalised to unit energy.
pub fn generate_rir(seed: u64, rt60_ms: f64, len_ms: f64, rate: u32) -> Vec<f32> {
    let n = ((len_ms / 1000.0 * f64::from(rate)).round() as usize).max(1);
    let mut rng = Rng::new(seed ^ 0x5249_5220_6765_6e21);
    // Amplitude envelope exp(-k n): 60 dB (factor 1000) after rt60.
    let k = 1000f64.ln() / (rt60_ms / 1000.0 * f64::from(rate));
    let mut h = Vec::with_capacity(n);
    h.push(1.0f64);
    let reverb = 0.35;
    for i in 1..n {
        h.push(reverb * rng.gaussian() * (-k * i as f64).exp());
    }
    normalise(&h)
}

fn normalise(h: &[f64]) -> Vec<f32> {
    let e: f64 = h.iter().map(|x| x * x).sum();
    let s = if e > 0.0 { 1.0 / e.sqrt() } else { 0.0 };
    h.iter().map(|x| (x * s) as f32).collect()
}

fn load_rir(path: &Path, rate: u32) -> Result<Vec<f32>, SimError> {
    let a = wav::read(path)?;
    let err = |msg: String| SimError::Wav {
        path: path.to_owned(),
        msg,
    };
    if a.rate != rate {
        return Err(err(format!(
            "impulse response at {} Hz, the microphone ring runs at {rate} Hz",
            a.rate
        )));
    }
    let ch = usize::from(a.channels.max(1));
    let h: Vec<f64> = a
        .samples
        .iter()
        .step_by(ch)
        .map(|&s| f64::from(s) / 32768.0)
        .collect();
    if h.len() as f64 > MAX_RIR_MS / 1000.0 * f64::from(rate) {
        return Err(err(format!(
            "impulse response of {} samples is longer than {MAX_RIR_MS} ms",
            h.len()
        )));
    }
    if h.iter().all(|&x| x == 0.0) {
        return Err(err("impulse response is all zeros".into()));
    }
    Ok(normalise(&h))
}

/// A small seeded generator (SplitMix64) with Gaussian samples
/// (Box–Muller): the path must be reproducible from `--echo-seed` alone.
#[derive(Clone, Debug)]
pub struct Rng {
    state: u64,
    spare: Option<f64>,
}

impl Rng {
    /// A generator for `seed`.
    pub fn new(seed: u64) -> Rng {
        Rng {
            state: seed,
            spare: None,
        }
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in (0, 1].
    fn uniform(&mut self) -> f64 {
        ((self.next_u64() >> 11) + 1) as f64 / (1u64 << 53) as f64
    }

    /// Standard normal.
    pub fn gaussian(&mut self) -> f64 {
        if let Some(s) = self.spare.take() {
            return s;
        }
        let r = (-2.0 * self.uniform().ln()).sqrt();
        let a = 2.0 * PI * self.uniform();
        self.spare = Some(r * a.sin());
        r * a.cos()
    }
}

/// Fractional positions tabulated for the interpolator (linear in between).
const PHASES: usize = 256;
/// Kaiser window shape: sidelobes near −90 dB.
const KAISER_BETA: f64 = 9.0;

fn bessel_i0(x: f64) -> f64 {
    let (mut sum, mut term) = (1.0, 1.0);
    for k in 1..50 {
        term *= (x / 2.0) / k as f64;
        sum += term * term;
        if term * term < 1e-16 * sum {
            break;
        }
    }
    sum
}

/// Kernels for fractional positions `j / PHASES`, `j` in `0..=PHASES`: taps
/// `k` in `1 − HALF_TAPS ..= HALF_TAPS` (index `k + HALF_TAPS − 1`), a
/// Kaiser-windowed sinc normalised to unit DC gain.
fn kernels() -> &'static [Vec<f32>] {
    static K: std::sync::OnceLock<Vec<Vec<f32>>> = std::sync::OnceLock::new();
    K.get_or_init(|| {
        let w = HALF_TAPS as f64;
        let i0b = bessel_i0(KAISER_BETA);
        (0..=PHASES)
            .map(|j| {
                let f = j as f64 / PHASES as f64;
                let c: Vec<f64> = ((1 - HALF_TAPS)..=HALF_TAPS)
                    .map(|k| {
                        let d = k as f64 - f;
                        let sinc = if d.abs() < 1e-12 {
                            1.0
                        } else {
                            (PI * d).sin() / (PI * d)
                        };
                        let r = (d / w).clamp(-1.0, 1.0);
                        sinc * bessel_i0(KAISER_BETA * (1.0 - r * r).sqrt()) / i0b
                    })
                    .collect();
                let norm: f64 = c.iter().sum();
                c.iter().map(|v| (v / norm) as f32).collect()
            })
            .collect()
    })
}

/// The value of the band-limited signal `x` (sample `i` at `x(i)`) at the
/// fractional position `p`: a 96-tap Kaiser-windowed sinc (flat to 0.47 of
/// the rate, so 8 kHz speech keeps its top band), from a table of 256
/// fractional positions interpolated linearly. Exact (one tap) at whole
/// positions.
fn interpolate(p: f64, x: impl Fn(i64) -> f32) -> f32 {
    let i = p.floor();
    let f = p - i;
    let i = i as i64;
    if f < 1e-9 {
        return x(i);
    }
    if f > 1.0 - 1e-9 {
        return x(i + 1);
    }
    let pos = f * PHASES as f64;
    let j = (pos.floor() as usize).min(PHASES - 1);
    let a = (pos - j as f64) as f32;
    let k = kernels();
    let (k0, k1) = (&k[j], &k[j + 1]);
    let mut acc = 0.0f32;
    for (t, k) in ((1 - HALF_TAPS)..=HALF_TAPS).enumerate() {
        let c = k0[t] + a * (k1[t] - k0[t]);
        acc += c * x(i + k);
    }
    acc
}

/// What the path did, in `run`'s JSON summary.
#[derive(Clone, Debug, Default, Serialize, PartialEq)]
pub struct EchoSummary {
    /// Bulk delay at start, ms.
    pub delay_ms: f64,
    /// The delay step (ms, at seconds), if any.
    pub delay_step: Option<(f64, f64)>,
    /// Echo return loss, dB.
    pub erl_db: f64,
    /// Taps of the impulse response.
    pub rir_taps: usize,
    /// Speaker clock against the microphone's, ppm.
    pub drift_ppm: f64,
    /// Noise level, dBFS RMS.
    pub noise_dbfs: Option<f64>,
    /// Seed.
    pub seed: u64,
    /// RMS of what the speaker played (mono mix), dBFS, while it played.
    pub speaker_rms_dbfs: Option<f64>,
    /// RMS of the echo added to the microphone, dBFS, over the same time.
    pub echo_rms_dbfs: Option<f64>,
    /// Microphone samples that needed speaker samples not yet played (the
    /// simulator fell behind): they got no echo.
    pub late_samples: u64,
    /// Microphone samples clipped to full scale after adding the echo.
    pub clipped_samples: u64,
}

/// The acoustic path (see the module documentation).
pub struct EchoPath {
    cfg: EchoConfig,
    h: Vec<f32>,
    gain: f32,
    noise_rms: Option<f64>,
    rng: Rng,
    /// Microphone and speaker clocks, effective frames per second.
    mic_rate: f64,
    spk_rate: f64,
    /// Microphone frames whose capture time is before the run's start (the
    /// start fill): frame `n` is captured at `(n - mic_origin) / mic_rate`.
    mic_origin: u64,
    /// When the speaker's frame 0 played, seconds after the run's start.
    spk_start: Option<f64>,
    /// Speaker frames played, mono, from absolute index `spk_base`.
    spk: VecDeque<f32>,
    spk_base: u64,
    /// The speaker signal at the microphone's instants, newest last, as
    /// long as the impulse response.
    line: VecDeque<f32>,
    /// Next microphone frame expected.
    next_mic: u64,
    sums: Sums,
    late: u64,
    clipped: u64,
}

#[derive(Default)]
struct Sums {
    spk_sq: f64,
    spk_n: u64,
    echo_sq: f64,
    echo_n: u64,
}

fn dbfs(sum_sq: f64, n: u64) -> Option<f64> {
    (n > 0).then(|| {
        let rms = (sum_sq / n as f64).sqrt() / 32768.0;
        if rms > 0.0 {
            20.0 * rms.log10()
        } else {
            -200.0
        }
    })
}

impl EchoPath {
    /// A path between a microphone clocked at `mic_rate` frames per second
    /// and a speaker at `spk_rate`, both effective rates (clock offsets
    /// included: the speaker's is `cfg.drift_ppm` off the microphone's, see
    /// [`EchoConfig::speaker_rate`]); the first `mic_origin` microphone
    /// frames are captured before the run starts.
    pub fn new(
        cfg: &EchoConfig,
        mic_rate: f64,
        spk_rate: f64,
        mic_origin: u64,
    ) -> Result<EchoPath, SimError> {
        cfg.validate()?;
        if !(mic_rate > 0.0 && spk_rate > 0.0) {
            return Err(SimError::Params("rates must be positive".into()));
        }
        let h = cfg.impulse_response(mic_rate.round() as u32)?;
        let line = VecDeque::from(vec![0.0; h.len()]);
        Ok(EchoPath {
            gain: 10f64.powf(-cfg.erl_db / 20.0) as f32,
            noise_rms: cfg.noise_dbfs.map(|d| 32768.0 * 10f64.powf(d / 20.0)),
            rng: Rng::new(cfg.seed),
            mic_rate,
            spk_rate,
            mic_origin,
            spk_start: None,
            spk: VecDeque::new(),
            spk_base: 0,
            line,
            next_mic: 0,
            sums: Sums::default(),
            late: 0,
            clipped: 0,
            h,
            cfg: cfg.clone(),
        })
    }

    /// The speaker's effective rate.
    pub fn speaker_rate(&self) -> f64 {
        self.spk_rate
    }

    /// The impulse response in use (unit energy).
    pub fn impulse_response(&self) -> &[f32] {
        &self.h
    }

    /// The speaker's frame 0 played `at_s` seconds after the run started.
    pub fn speaker_started(&mut self, at_s: f64) {
        self.spk_start = Some(at_s);
    }

    /// Frames `first..` played by the speaker (mono samples, silence
    /// included), in order.
    pub fn played(&mut self, first: u64, mono: &[f32]) {
        let end = self.spk_base + self.spk.len() as u64;
        if first > end {
            // A gap (should not happen): silence.
            self.spk
                .extend(std::iter::repeat_n(0.0, (first - end) as usize));
        }
        let skip = end.saturating_sub(first) as usize;
        for &v in mono.iter().skip(skip) {
            self.spk.push_back(v);
            self.sums.spk_sq += f64::from(v) * f64::from(v);
            self.sums.spk_n += 1;
        }
        // Keep what the latest delay, the response and the kernel may need,
        // plus a second.
        let max_delay = self.cfg.delay_ms + self.cfg.step.map_or(0.0, |(ms, _)| ms.max(0.0));
        let keep = ((max_delay / 1000.0 + 1.0) * self.spk_rate) as usize
            + self.h.len()
            + 2 * HALF_TAPS as usize;
        while self.spk.len() > keep {
            self.spk.pop_front();
            self.spk_base += 1;
        }
    }

    /// The bulk delay in force at `t` seconds after start, ms.
    pub fn delay_at(&self, t: f64) -> f64 {
        match self.cfg.step {
            Some((ms, at)) if t >= at => self.cfg.delay_ms + ms,
            _ => self.cfg.delay_ms,
        }
    }

    /// The speaker sample with absolute index `k` (silence before the
    /// start); `None` if it has not been played yet.
    fn spk_sample(&self, k: i64) -> Option<f32> {
        if k < self.spk_base as i64 {
            return Some(0.0);
        }
        self.spk.get((k - self.spk_base as i64) as usize).copied()
    }

    /// The echo (plus noise) for microphone frame `n`, in linear sample
    /// units (full scale 32768).
    fn next_sample(&mut self, n: u64) -> f32 {
        let t = (n as f64 - self.mic_origin as f64) / self.mic_rate;
        let x = match self.spk_start {
            None => 0.0,
            Some(t0) => {
                let mut p = (t - self.delay_at(t) / 1000.0 - t0) * self.spk_rate;
                let r = p.round();
                if (p - r).abs() < 1e-6 {
                    p = r;
                }
                let last = self.spk_base as i64 + self.spk.len() as i64 - 1;
                let need = if p.fract() == 0.0 {
                    p as i64
                } else {
                    p.floor() as i64 + HALF_TAPS
                };
                if need > last {
                    if p >= 0.0 {
                        self.late += 1;
                    }
                    0.0
                } else {
                    interpolate(p, |k| self.spk_sample(k).unwrap_or(0.0))
                }
            }
        };
        self.line.pop_front();
        self.line.push_back(x);
        let mut e = 0.0f32;
        for (c, v) in self.h.iter().zip(self.line.iter().rev()) {
            e += c * v;
        }
        e *= self.gain;
        if self.spk_start.is_some() {
            self.sums.echo_sq += f64::from(e) * f64::from(e);
            self.sums.echo_n += 1;
        }
        if let Some(rms) = self.noise_rms {
            e += (rms * self.rng.gaussian()) as f32;
        }
        e
    }

    /// The echo and noise for microphone frames `first..first + count`, in
    /// order (frames must be asked for without gaps; a repeated or skipped
    /// range restarts the sequence there).
    pub fn echo(&mut self, first: u64, count: usize) -> Vec<f32> {
        if first != self.next_mic {
            self.next_mic = first;
        }
        let out = (0..count as u64)
            .map(|i| self.next_sample(first + i))
            .collect();
        self.next_mic = first + count as u64;
        out
    }

    /// Adds the echo for microphone frames `first..` to `buf`, interleaved
    /// frames in `format` with `channels` (the same echo on every channel).
    pub fn add_to_mic(&mut self, first: u64, buf: &mut [u8], format: Format, channels: usize) {
        let mut pcm = decode(format, buf);
        let frames = pcm.len() / channels.max(1);
        let e = self.echo(first, frames);
        for (frame, &v) in pcm.chunks_exact_mut(channels.max(1)).zip(&e) {
            for s in frame {
                let y = f32::from(*s) + v;
                let c = y.round().clamp(-32768.0, 32767.0);
                if c != y.round() {
                    self.clipped += 1;
                }
                *s = c as i16;
            }
        }
        encode_into(format, &pcm, buf);
    }

    /// Decodes interleaved speaker frames and hands their mono mix to
    /// [`EchoPath::played`].
    pub fn played_bytes(&mut self, first: u64, buf: &[u8], format: Format, channels: usize) {
        let ch = channels.max(1);
        let pcm = decode(format, buf);
        let mono: Vec<f32> = pcm
            .chunks_exact(ch)
            .map(|f| f.iter().map(|&s| f32::from(s)).sum::<f32>() / ch as f32)
            .collect();
        self.played(first, &mono);
    }

    /// The summary for `run`'s JSON line.
    pub fn summary(&self) -> EchoSummary {
        EchoSummary {
            delay_ms: self.cfg.delay_ms,
            delay_step: self.cfg.step,
            erl_db: self.cfg.erl_db,
            rir_taps: self.h.len(),
            drift_ppm: self.cfg.drift_ppm,
            noise_dbfs: self.cfg.noise_dbfs,
            seed: self.cfg.seed,
            speaker_rms_dbfs: dbfs(self.sums.spk_sq, self.sums.spk_n),
            echo_rms_dbfs: dbfs(self.sums.echo_sq, self.sums.echo_n),
            late_samples: self.late,
            clipped_samples: self.clipped,
        }
    }
}

/// Linear samples of interleaved `bytes` in `format`.
pub fn decode(format: Format, bytes: &[u8]) -> Vec<i16> {
    match format {
        Format::S16Le => bytes
            .chunks_exact(2)
            .map(|c| i16::from_le_bytes([c[0], c[1]]))
            .collect(),
        Format::MuLaw | Format::ALaw => {
            let law = if format == Format::MuLaw {
                Law::MuLaw
            } else {
                Law::ALaw
            };
            let mut out = vec![0i16; bytes.len()];
            law.decode(bytes, &mut out);
            out
        }
    }
}

/// Encodes `pcm` over `out` (same number of samples) in `format`.
fn encode_into(format: Format, pcm: &[i16], out: &mut [u8]) {
    let mut v = Vec::with_capacity(out.len());
    crate::source::encode(format, pcm, &mut v);
    out.copy_from_slice(&v[..out.len()]);
}

/// The `--echo*` options of `rtos-sim run` (flattened into its arguments).
#[derive(clap::Args, Clone, Debug, Default)]
#[command(next_help_heading = "Acoustic echo path (speaker -> microphone)")]
pub struct EchoArgs {
    /// Add the speaker's output, through a room, to the microphone ring.
    #[arg(long)]
    pub echo: bool,
    /// Bulk delay from the speaker ring's output to the microphone, ms.
    #[arg(
        long,
        value_name = "MS",
        default_value_t = 60.0,
        requires = "echo",
        allow_negative_numbers = true
    )]
    pub echo_delay: f64,
    /// Echo return loss in dB (speaker level minus echo level, for white noise).
    #[arg(
        long,
        value_name = "DB",
        default_value_t = 10.0,
        requires = "echo",
        allow_negative_numbers = true
    )]
    pub echo_erl: f64,
    /// Reverberation time (-60 dB) of the generated room, ms.
    #[arg(
        long,
        value_name = "MS",
        default_value_t = 100.0,
        requires = "echo",
        conflicts_with = "echo_rir"
    )]
    pub echo_rt60: f64,
    /// Length of the generated room's response, ms [default: the RT60, at most 1000].
    #[arg(
        long,
        value_name = "MS",
        requires = "echo",
        conflicts_with = "echo_rir"
    )]
    pub echo_rir_len: Option<f64>,
    /// The room's impulse response: a WAV (mono, the ring's rate; normalised
    /// to unit energy) or `delta` (one tap: a pure delay).
    #[arg(long, value_name = "FILE.wav|delta", requires = "echo")]
    pub echo_rir: Option<PathBuf>,
    /// White noise at the microphone, dBFS RMS (`--echo-noise off`: none).
    #[arg(
        long,
        value_name = "DBFS|off",
        default_value = "-70",
        requires = "echo",
        allow_negative_numbers = true
    )]
    pub echo_noise: String,
    /// The speaker codec's clock against the microphone's, ppm (the echo path drifts).
    #[arg(
        long,
        value_name = "PPM",
        default_value_t = 0.0,
        requires = "echo",
        allow_negative_numbers = true
    )]
    pub echo_drift_ppm: f64,
    /// Change the bulk delay by MS at SECONDS after start, e.g. 40@10.
    #[arg(long, value_name = "MS@SECONDS", requires = "echo", value_parser = parse_step, allow_hyphen_values = true)]
    pub echo_delay_step: Option<(f64, f64)>,
    /// Seed of the generated room and of the noise.
    #[arg(long, value_name = "N", default_value_t = 1, requires = "echo")]
    pub echo_seed: u64,
}

impl EchoArgs {
    /// The path's configuration, `None` without `--echo`.
    pub fn config(&self) -> Result<Option<EchoConfig>, SimError> {
        if !self.echo {
            return Ok(None);
        }
        let rir = match &self.echo_rir {
            Some(p) if p.as_os_str() == "delta" => RirSpec::Delta,
            Some(p) => RirSpec::Wav(p.clone()),
            None => RirSpec::Generated {
                rt60_ms: self.echo_rt60,
                len_ms: self.echo_rir_len.unwrap_or(self.echo_rt60.min(MAX_RIR_MS)),
            },
        };
        let noise_dbfs =
            match self.echo_noise.trim() {
                "off" | "none" => None,
                v => Some(v.parse::<f64>().map_err(|e| {
                    SimError::Params(format!("--echo-noise '{v}': {e} (dBFS or off)"))
                })?),
            };
        let c = EchoConfig {
            delay_ms: self.echo_delay,
            erl_db: self.echo_erl,
            rir,
            noise_dbfs,
            drift_ppm: self.echo_drift_ppm,
            step: self.echo_delay_step,
            seed: self.echo_seed,
        };
        c.validate()?;
        Ok(Some(c))
    }
}

/// Parses `MS@SECONDS` (`--echo-delay-step 40@10`).
pub fn parse_step(s: &str) -> Result<(f64, f64), String> {
    let (ms, at) = s
        .split_once('@')
        .ok_or_else(|| format!("'{s}': expected MS@SECONDS, e.g. 40@10"))?;
    let ms: f64 = ms
        .trim()
        .parse()
        .map_err(|e| format!("'{s}': delay change: {e}"))?;
    let at: f64 = at.trim().parse().map_err(|e| format!("'{s}': time: {e}"))?;
    Ok((ms, at))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg() -> EchoConfig {
        EchoConfig {
            noise_dbfs: None,
            ..EchoConfig::default()
        }
    }

    fn noise(seed: u64, n: usize, rms: f64) -> Vec<f32> {
        let mut r = Rng::new(seed);
        (0..n).map(|_| (rms * r.gaussian()) as f32).collect()
    }

    fn power(x: &[f32]) -> f64 {
        x.iter().map(|&v| f64::from(v) * f64::from(v)).sum::<f64>() / x.len() as f64
    }

    /// Runs `spk` (played from time 0) through `path` in virtual time, a
    /// period at a time with the speaker ahead, as `run` does.
    fn drive(path: &mut EchoPath, spk: &[f32], period: usize) -> Vec<f32> {
        path.speaker_started(0.0);
        let mut out = Vec::new();
        let mut n = 0u64;
        for (i, chunk) in spk.chunks(period).enumerate() {
            path.played((i * period) as u64, chunk);
            let e = path.echo(n, chunk.len());
            n += chunk.len() as u64;
            out.extend(e);
        }
        out
    }

    #[test]
    fn delay_is_exact_to_the_sample() {
        for (delay_ms, samples) in [(20.0, 160), (60.0, 480), (200.0, 1600), (37.5, 300)] {
            let c = EchoConfig {
                delay_ms,
                erl_db: 0.0,
                rir: RirSpec::Delta,
                ..cfg()
            };
            let mut p = EchoPath::new(&c, 8000.0, 8000.0, 0).unwrap();
            let spk = noise(3, 8000, 3000.0);
            let e = drive(&mut p, &spk, 160);
            assert!(e[..samples].iter().all(|&v| v == 0.0), "{delay_ms} ms");
            assert_eq!(&e[samples..], &spk[..8000 - samples], "{delay_ms} ms");
            assert_eq!(p.summary().late_samples, 0);
        }
    }

    #[test]
    fn erl_is_exact_with_one_tap_and_white_with_a_room() {
        for erl in [6.0, 10.0, 20.0] {
            let c = EchoConfig {
                erl_db: erl,
                rir: RirSpec::Delta,
                delay_ms: 20.0,
                ..cfg()
            };
            let mut p = EchoPath::new(&c, 8000.0, 8000.0, 0).unwrap();
            // A tone: a single tap scales any signal exactly.
            let spk: Vec<f32> = (0..16000)
                .map(|i| (8000.0 * (2.0 * PI * 440.0 * i as f64 / 8000.0).sin()) as f32)
                .collect();
            let e = drive(&mut p, &spk, 160);
            let got = 10.0 * (power(&spk[..15840]) / power(&e[160..])).log10();
            assert!((got - erl).abs() < 0.001, "ERL {erl}: measured {got}");
            // A generated room, white noise: within 0.25 dB over 10 s.
            let c = EchoConfig {
                erl_db: erl,
                ..cfg()
            };
            let mut p = EchoPath::new(&c, 8000.0, 8000.0, 0).unwrap();
            let spk = noise(9, 80000, 3000.0);
            let e = drive(&mut p, &spk, 160);
            let skip = 480 + 800;
            let got = 10.0 * (power(&spk) / power(&e[skip..])).log10();
            assert!((got - erl).abs() < 0.25, "ERL {erl} room: measured {got}");
            let s = p.summary();
            let reported = s.speaker_rms_dbfs.unwrap() - s.echo_rms_dbfs.unwrap();
            assert!((reported - erl).abs() < 0.3, "summary ERL {reported}");
        }
    }

    #[test]
    fn generated_rir_energy_and_decay() {
        for (rt60, len) in [(100.0, 100.0), (50.0, 200.0), (300.0, 300.0)] {
            let h = generate_rir(7, rt60, len, 8000);
            assert_eq!(h.len(), (len * 8.0) as usize);
            let e: f64 = h.iter().map(|&x| f64::from(x) * f64::from(x)).sum();
            assert!((e - 1.0).abs() < 1e-5, "energy {e}");
            // Energy decays 60 dB per RT60: compare the energy in two 10 ms
            // windows rt60/2 apart (30 dB), over several seeds' average.
            let w = 80usize;
            let a0 = 8usize;
            let a1 = a0 + (rt60 * 4.0) as usize; // rt60/2 in samples at 8 kHz
            if a1 + w > h.len() {
                continue;
            }
            let mut ratio = 0.0;
            for seed in 0..50 {
                let h = generate_rir(seed, rt60, len, 8000);
                let e0: f64 = h[a0..a0 + w].iter().map(|&x| f64::from(x).powi(2)).sum();
                let e1: f64 = h[a1..a1 + w].iter().map(|&x| f64::from(x).powi(2)).sum();
                ratio += 10.0 * (e0 / e1).log10() / 50.0;
            }
            assert!((ratio - 30.0).abs() < 1.5, "rt60 {rt60}: {ratio} dB");
        }
        // Seeded: same seed, same room; another seed, another room.
        assert_eq!(
            generate_rir(1, 100.0, 100.0, 8000),
            generate_rir(1, 100.0, 100.0, 8000)
        );
        assert_ne!(
            generate_rir(1, 100.0, 100.0, 8000),
            generate_rir(2, 100.0, 100.0, 8000)
        );
        assert_eq!(generate_rir(1, 100.0, 0.0, 8000), vec![1.0]);
    }

    #[test]
    fn delay_step_moves_the_echo() {
        let c = EchoConfig {
            delay_ms: 20.0,
            erl_db: 0.0,
            rir: RirSpec::Delta,
            step: Some((40.0, 1.0)),
            ..cfg()
        };
        let mut p = EchoPath::new(&c, 8000.0, 8000.0, 0).unwrap();
        let spk = noise(4, 16000, 3000.0);
        let e = drive(&mut p, &spk, 160);
        assert_eq!(&e[1000..8000], &spk[840..7840]);
        assert_eq!(&e[8000..16000], &spk[8000 - 480..16000 - 480]);
    }

    #[test]
    fn drift_slides_the_delay() {
        // Speaker 300 ppm fast: after 10 s its sample index is 24 ahead
        // of the microphone's, so the echo lines up 24 samples later in
        // the speaker signal. Find the best lag by correlation.
        let c = EchoConfig {
            delay_ms: 20.0,
            erl_db: 0.0,
            rir: RirSpec::Delta,
            drift_ppm: 300.0,
            ..cfg()
        };
        let mut p = EchoPath::new(&c, 8000.0, c.speaker_rate(8000.0), 0).unwrap();
        assert!((p.speaker_rate() - 8002.4).abs() < 1e-9);
        // Band-limited noise (the interpolator needs it): white noise
        // through a moving average.
        let w = noise(5, 88000, 3000.0);
        let spk: Vec<f32> = w.windows(4).map(|x| x.iter().sum::<f32>() / 4.0).collect();
        let e = drive(&mut p, &spk, 160);
        let lag = |at: usize| {
            (150..200)
                .max_by(|&a, &b| {
                    let c = |l: usize| -> f64 {
                        (0..800)
                            .map(|i| f64::from(e[at + i]) * f64::from(spk[at + i + 24 - l]))
                            .sum()
                    };
                    c(a).partial_cmp(&c(b)).unwrap()
                })
                .unwrap() as i64
                - 24
        };
        // lag: echo[n] = spk[n * 1.0003 - 160.048]
        assert_eq!(
            lag(8000),
            160 - 2,
            "at 1 s the speaker is 2.4 samples ahead"
        );
        assert_eq!(lag(80000), 160 - 24, "at 10 s, 24 samples");
    }

    #[test]
    fn interpolation_of_a_sine_is_accurate_to_the_top_of_the_band() {
        // Error below -60 dB up to 3.6 kHz at 8 kHz (speech's top band:
        // an interpolator that loses it makes a drifting path that no
        // canceller could follow), below -80 dB at 1 kHz.
        for (hz, tol) in [(1000.0, 1e-4), (3000.0, 1e-3), (3600.0, 1e-3)] {
            let f = hz / 8000.0;
            let x = |i: i64| (2.0 * PI * f * i as f64).sin() as f32;
            for k in 0..200 {
                let p = 100.0 + k as f64 * 0.137;
                let got = interpolate(p, x);
                let want = (2.0 * PI * f * p).sin() as f32;
                assert!((got - want).abs() < tol, "{hz} Hz at {p}: {got} vs {want}");
            }
            assert_eq!(interpolate(42.0, x), x(42));
        }
    }

    #[test]
    fn noise_level_and_seed() {
        let c = EchoConfig {
            noise_dbfs: Some(-40.0),
            ..EchoConfig::default()
        };
        let mut p = EchoPath::new(&c, 8000.0, 8000.0, 0).unwrap();
        let e = p.echo(0, 80000);
        let db = 10.0 * (power(&e) / (32768.0f64 * 32768.0)).log10();
        assert!((db + 40.0).abs() < 0.1, "{db}");
        let mut q = EchoPath::new(&c, 8000.0, 8000.0, 0).unwrap();
        assert_eq!(q.echo(0, 1000), e[..1000].to_vec());
    }

    #[test]
    fn late_speaker_is_counted_not_invented() {
        let c = EchoConfig {
            delay_ms: 20.0,
            rir: RirSpec::Delta,
            ..cfg()
        };
        let mut p = EchoPath::new(&c, 8000.0, 8000.0, 0).unwrap();
        p.speaker_started(0.0);
        p.played(0, &[1000.0; 160]);
        // Frames 160..320 need speaker 0..160: there. 320..480 need 160..320: not yet.
        let e = p.echo(0, 480);
        assert!(e[160..320].iter().all(|&v| v != 0.0));
        assert!(e[320..].iter().all(|&v| v == 0.0));
        assert_eq!(p.summary().late_samples, 160);
    }

    #[test]
    fn mixes_into_ring_formats() {
        let c = EchoConfig {
            delay_ms: 0.0,
            erl_db: 0.0,
            rir: RirSpec::Delta,
            ..cfg()
        };
        for format in [Format::S16Le, Format::MuLaw, Format::ALaw] {
            let mut p = EchoPath::new(&c, 8000.0, 8000.0, 0).unwrap();
            p.speaker_started(0.0);
            let mut spk = Vec::new();
            crate::source::encode(format, &[1000, 1000, -2000, -2000, 30000, 30000], &mut spk);
            p.played_bytes(0, &spk, format, 2);
            let mut mic = Vec::new();
            crate::source::encode(format, &[100, 100, 100, 100, 10000, 10000], &mut mic);
            p.add_to_mic(0, &mut mic, format, 2);
            let got = decode(format, &mic);
            let want = decode(format, &{
                let mut v = Vec::new();
                crate::source::encode(format, &[1100, 1100, -1900, -1900, 32767, 32767], &mut v);
                v
            });
            // G.711 requantises: within one step of the exact sum.
            for (g, w) in got.iter().zip(&want) {
                assert!(
                    (i32::from(*g) - i32::from(*w)).abs() <= 1024,
                    "{format:?}: {got:?}"
                );
            }
            if format == Format::S16Le {
                assert_eq!(got, want);
                assert_eq!(p.summary().clipped_samples, 2);
            }
        }
    }

    #[test]
    fn rejects_bad_parameters() {
        let ok = EchoConfig::default();
        assert!(ok.validate().is_ok());
        for bad in [
            EchoConfig {
                delay_ms: -1.0,
                ..ok.clone()
            },
            EchoConfig {
                delay_ms: f64::NAN,
                ..ok.clone()
            },
            EchoConfig {
                erl_db: 200.0,
                ..ok.clone()
            },
            EchoConfig {
                noise_dbfs: Some(3.0),
                ..ok.clone()
            },
            EchoConfig {
                drift_ppm: 1e6,
                ..ok.clone()
            },
            EchoConfig {
                step: Some((-100.0, 1.0)),
                ..ok.clone()
            },
            EchoConfig {
                step: Some((40.0, -1.0)),
                ..ok.clone()
            },
            EchoConfig {
                rir: RirSpec::Generated {
                    rt60_ms: 0.0,
                    len_ms: 10.0,
                },
                ..ok.clone()
            },
            EchoConfig {
                rir: RirSpec::Generated {
                    rt60_ms: 10.0,
                    len_ms: 5000.0,
                },
                ..ok.clone()
            },
        ] {
            assert!(bad.validate().is_err(), "{bad:?}");
        }
        assert_eq!(parse_step("40@10").unwrap(), (40.0, 10.0));
        assert_eq!(parse_step("-40@2.5").unwrap(), (-40.0, 2.5));
        assert!(parse_step("40").is_err());
        assert!(parse_step("x@1").is_err());
    }
}
