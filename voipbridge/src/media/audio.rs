//! Audio devices for the media engine: ALSA PCMs (the card's bridge side),
//! WAV files, tones, null. Every device is non-blocking: the engine asks
//! a capture device for the next frame when it has one, and a playback
//! device how much it wants, and never waits on either.
//!
//! ALSA devices get the first hardware format that works, in this order:
//! the codec's own law (MU_LAW / A_LAW) at 8 kHz, so the card carries the
//! G.711 codes of the RTP payload untouched (*passthrough*: no decoding,
//! no re-encoding, bit-exact); else S16_LE at 8 kHz; else S16_LE at the
//! device's rate (nearest to 48 kHz) through the [`Resampler`]. Several
//! channels are mixed down on capture and duplicated on playback. Xruns are
//! recovered and counted, logged once per burst, and never end the call.
//!
//! Latency: the bridge keeps a playback device filled to a target that
//! settles at `[audio] buffer_ms` when the engine is on time and grows to
//! cover the delays it sees when it is not (see `Fill`); the ring itself
//! is larger (32 periods) so the target can grow, but only what is queued
//! delays the audio. The capture ring is 32 periods too: what waits in it
//! is read at every period, so its size costs no latency, only robustness. Both wake the engine once
//! per period (`avail_min`). Files, tones and null are paced by the
//! engine's clock at 8 kHz.

use super::hooks::DeviceTiming;
use super::mean::{WindowMean, MEAN_WINDOW};
use super::resample::Resampler;
use super::{AudioSpec, Codec, MediaError};
use alsa::poll::{pollfd, Descriptors};
use std::collections::VecDeque;
use std::f64::consts::PI;
use std::time::{Duration, Instant};

/// Sample rate of the audio path (G.711).
pub const RATE: u32 = 8000;

/// ALSA rings are this many periods long (320 ms at 10 ms): capture, so an
/// engine stalled that long loses nothing; playback, so the fill target has
/// room to grow on a loaded board. Only what is queued delays the audio.
const RING_PERIODS: u32 = 32;

/// A timer-paced device that falls further behind than this many frames
/// (the engine was stalled) skips ahead instead of bursting.
const MAX_CATCH_UP: u64 = 10;

/// Device period and buffer, from `[audio] period_ms` and `buffer_ms`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeviceConfig {
    /// Period (wake-up granularity), ms.
    pub period_ms: u32,
    /// Playback ring, ms: the most audio the device holds.
    pub buffer_ms: u32,
}

impl Default for DeviceConfig {
    fn default() -> Self {
        DeviceConfig {
            period_ms: 10,
            buffer_ms: 20,
        }
    }
}

/// A captured frame: codes of a G.711 law as the device gave them, or
/// linear samples.
#[derive(Debug, Clone, Default)]
pub struct Frame {
    /// `Some(law)`: `codes` holds the frame; `None`: `pcm` does.
    pub law: Option<g711::Law>,
    /// The frame as codes.
    pub codes: Vec<u8>,
    /// The frame as linear samples.
    pub pcm: Vec<i16>,
}

impl Frame {
    /// A frame of `n` samples (buffers allocated once).
    pub fn new(n: usize) -> Frame {
        Frame {
            law: None,
            codes: vec![0; n],
            pcm: vec![0; n],
        }
    }

    /// Makes `pcm` valid (decoding the codes if the device gave codes).
    pub fn to_linear(&mut self) {
        if let Some(law) = self.law.take() {
            law.decode(&self.codes, &mut self.pcm);
        }
    }

    /// Makes `codes` valid in `law` (encoding or transcoding as needed).
    pub fn to_law(&mut self, law: g711::Law) {
        match self.law {
            Some(l) if l == law => {}
            Some(l) => law.transcode_from(l, &mut self.codes),
            None => law.encode(&self.pcm, &mut self.codes),
        }
        self.law = Some(law);
    }
}

/// What `status` shows about a device.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DeviceInfo {
    /// e.g. `MU_LAW 8000 Hz 1 ch` or `wav:/tmp/x.wav`.
    pub format: String,
    /// Codes pass untouched (the device runs the call's law, mono, 8 kHz).
    pub passthrough: bool,
    /// Period in 8 kHz frames (0: not a device).
    pub period: usize,
    /// Ring in 8 kHz frames (0: not a device).
    pub buffer: usize,
}

/// A capture device, polled by the media engine.
pub trait CaptureDevice: Send {
    /// Poll descriptors that signal data (empty: the device is paced by
    /// [`next_due`](Self::next_due) alone).
    fn poll_fds(&self) -> Vec<pollfd> {
        Vec::new()
    }
    /// Puts the next frame into `frame` if one is complete (never waits).
    fn read_frame(&mut self, now: Instant, frame: &mut Frame) -> Result<bool, MediaError>;
    /// When a frame is due next, for timer-paced sources; for devices, a
    /// watchdog (a time by which the device should have woken us).
    fn next_due(&self) -> Option<Instant>;
    /// Frames (8 kHz) captured and not yet read, at the last read.
    fn delay(&self) -> i64 {
        0
    }
    /// [`delay`](Self::delay) averaged over the last second, in ms
    /// (`None`: not a device, or no whole second yet).
    fn delay_mean_ms(&self) -> Option<f64> {
        None
    }
    /// Xruns recovered so far.
    fn xruns(&self) -> u64 {
        0
    }
    /// Format and sizes.
    fn info(&self) -> DeviceInfo;
}

/// A playback device, polled by the media engine.
pub trait PlaybackDevice: Send {
    /// Poll descriptors that signal room (empty: paced by `next_due`).
    fn poll_fds(&self) -> Vec<pollfd> {
        Vec::new()
    }
    /// How many 8 kHz samples to write now to keep the device at its fill
    /// target (0: none yet). Recovers an underrun on the way.
    fn wanted(&mut self, now: Instant) -> Result<usize, MediaError>;
    /// Writes codes of `law` (at most what [`wanted`](Self::wanted) said);
    /// returns when and behind how much queued audio they went in.
    fn write_codes(
        &mut self,
        law: g711::Law,
        codes: &[u8],
        now: Instant,
    ) -> Result<DeviceTiming, MediaError>;
    /// When it wants data next (timer-paced), or a watchdog for devices.
    fn next_due(&self) -> Option<Instant>;
    /// Frames (8 kHz) queued ahead of the next write, at the last write.
    fn delay(&self) -> i64 {
        0
    }
    /// The device's delay averaged over the last second, in ms (`None`:
    /// not a device, or no whole second yet).
    fn delay_mean_ms(&self) -> Option<f64> {
        None
    }
    /// Frames (8 kHz) the bridge keeps queued in the device now (0: not a device).
    fn fill_target(&self) -> i64 {
        0
    }
    /// Xruns recovered so far.
    fn xruns(&self) -> u64 {
        0
    }
    /// Format and sizes.
    fn info(&self) -> DeviceInfo;
    /// Whether codes of `law` reach the device untouched.
    fn passes(&self, law: g711::Law) -> bool {
        let _ = law;
        false
    }
    /// Plays out what is queued and closes (blocking; never called on the
    /// media thread). WAV recordings get their final header here.
    fn finish(&mut self) -> Result<(), MediaError> {
        Ok(())
    }
}

fn frame_time(samples: u64) -> Duration {
    Duration::from_micros(samples * 1_000_000 / u64::from(RATE))
}

/// Paces a file, tone or null device at 8 kHz on the engine's clock.
#[derive(Debug, Clone)]
struct Pacer {
    frame: u64,
    created: Instant,
    start: Option<Instant>,
    done: u64,
    skipped: u64,
}

impl Pacer {
    fn new(frame: usize) -> Pacer {
        Pacer {
            frame: frame.max(1) as u64,
            created: Instant::now(),
            start: None,
            done: 0,
            skipped: 0,
        }
    }

    fn due(&self, k: u64) -> Option<Instant> {
        self.start.map(|s| s + frame_time(k * self.frame))
    }

    /// Frames due by `now` and not yet done (the first is due at once).
    fn pending(&mut self, now: Instant) -> u64 {
        let start = *self.start.get_or_insert(now);
        let elapsed = now.saturating_duration_since(start).as_micros() as u64;
        let due = elapsed * u64::from(RATE) / 1_000_000 / self.frame + 1;
        let mut n = due.saturating_sub(self.done);
        if n > MAX_CATCH_UP {
            // Stalled: skip what is too late rather than burst it out.
            self.skipped += n - 1;
            self.done += n - 1;
            n = 1;
        }
        n
    }

    fn next_due(&self) -> Option<Instant> {
        // Before the first frame: due since it was opened.
        Some(self.due(self.done).unwrap_or(self.created))
    }
}

/// A sine at -6 dBFS, by a rotating phasor (no trigonometry per sample).
struct Tone {
    hz: f64,
    phasor: (f64, f64),
    step: (f64, f64),
    pacer: Pacer,
}

impl Tone {
    fn new(hz: f64, frame: usize) -> Tone {
        let w = 2.0 * PI * hz / f64::from(RATE);
        Tone {
            hz,
            phasor: (1.0, 0.0),
            step: (w.cos(), w.sin()),
            pacer: Pacer::new(frame),
        }
    }
}

impl CaptureDevice for Tone {
    fn read_frame(&mut self, now: Instant, frame: &mut Frame) -> Result<bool, MediaError> {
        if self.pacer.pending(now) == 0 {
            return Ok(false);
        }
        self.pacer.done += 1;
        frame.law = None;
        let (c, s) = self.step;
        for o in frame.pcm.iter_mut() {
            let (x, y) = self.phasor;
            *o = (0.5 * 32767.0 * y) as i16;
            self.phasor = (x * c - y * s, x * s + y * c);
        }
        // Keep the phasor on the unit circle.
        let (x, y) = self.phasor;
        let r = (x * x + y * y).sqrt().max(1e-9);
        self.phasor = (x / r, y / r);
        Ok(true)
    }
    fn next_due(&self) -> Option<Instant> {
        self.pacer.next_due()
    }
    fn xruns(&self) -> u64 {
        self.pacer.skipped
    }
    fn info(&self) -> DeviceInfo {
        DeviceInfo {
            format: format!("tone:{}", self.hz),
            ..Default::default()
        }
    }
}

struct Silence {
    pacer: Pacer,
}

impl CaptureDevice for Silence {
    fn read_frame(&mut self, now: Instant, frame: &mut Frame) -> Result<bool, MediaError> {
        if self.pacer.pending(now) == 0 {
            return Ok(false);
        }
        self.pacer.done += 1;
        frame.law = None;
        frame.pcm.fill(0);
        Ok(true)
    }
    fn next_due(&self) -> Option<Instant> {
        self.pacer.next_due()
    }
    fn xruns(&self) -> u64 {
        self.pacer.skipped
    }
    fn info(&self) -> DeviceInfo {
        DeviceInfo {
            format: "null".into(),
            ..Default::default()
        }
    }
}

struct WavSource {
    path: String,
    samples: Vec<i16>,
    pos: usize,
    pacer: Pacer,
}

impl CaptureDevice for WavSource {
    fn read_frame(&mut self, now: Instant, frame: &mut Frame) -> Result<bool, MediaError> {
        if self.pacer.pending(now) == 0 {
            return Ok(false);
        }
        self.pacer.done += 1;
        frame.law = None;
        for s in frame.pcm.iter_mut() {
            *s = self.samples.get(self.pos).copied().unwrap_or(0);
            self.pos = (self.pos + 1) % self.samples.len().max(1);
        }
        Ok(true)
    }
    fn next_due(&self) -> Option<Instant> {
        self.pacer.next_due()
    }
    fn xruns(&self) -> u64 {
        self.pacer.skipped
    }
    fn info(&self) -> DeviceInfo {
        DeviceInfo {
            format: format!("wav:{}", self.path),
            ..Default::default()
        }
    }
}

/// Discards (null) or records (WAV, 8 kHz mono 16-bit) at 8 kHz.
struct PacedSink {
    pacer: Pacer,
    frame: usize,
    path: Option<String>,
    writer: Option<hound::WavWriter<std::io::BufWriter<std::fs::File>>>,
    pcm: Vec<i16>,
}

impl PlaybackDevice for PacedSink {
    fn wanted(&mut self, now: Instant) -> Result<usize, MediaError> {
        let n = self.pacer.pending(now);
        Ok(n as usize * self.frame)
    }
    fn write_codes(
        &mut self,
        law: g711::Law,
        codes: &[u8],
        now: Instant,
    ) -> Result<DeviceTiming, MediaError> {
        self.pacer.done += (codes.len() / self.frame.max(1)) as u64;
        if let Some(w) = self.writer.as_mut() {
            self.pcm.resize(codes.len(), 0);
            law.decode(codes, &mut self.pcm);
            for &s in &self.pcm {
                w.write_sample(s).map_err(|e| {
                    MediaError::Device(self.path.clone().unwrap_or_default(), e.to_string())
                })?;
            }
        }
        Ok(DeviceTiming { at: now, delay: 0 })
    }
    fn next_due(&self) -> Option<Instant> {
        self.pacer.next_due()
    }
    fn xruns(&self) -> u64 {
        self.pacer.skipped
    }
    fn info(&self) -> DeviceInfo {
        DeviceInfo {
            format: match &self.path {
                Some(p) => format!("wav:{p}"),
                None => "null".into(),
            },
            ..Default::default()
        }
    }
    fn finish(&mut self) -> Result<(), MediaError> {
        if let Some(w) = self.writer.take() {
            w.finalize().map_err(|e| {
                MediaError::Device(self.path.clone().unwrap_or_default(), e.to_string())
            })?;
        }
        Ok(())
    }
}

impl Drop for PacedSink {
    fn drop(&mut self) {
        let _ = self.finish();
    }
}

/// The hardware format an ALSA device was opened with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeviceFormat {
    /// G.711 law samples (MU_LAW / A_LAW), or `None` for S16_LE.
    pub law: Option<g711::Law>,
    /// Sample rate.
    pub rate: u32,
    /// Channels.
    pub channels: u32,
}

impl DeviceFormat {
    fn describe(&self) -> String {
        let f = match self.law {
            Some(g711::Law::MuLaw) => "MU_LAW",
            Some(g711::Law::ALaw) => "A_LAW",
            None => "S16_LE",
        };
        format!("{f} {} Hz {} ch", self.rate, self.channels)
    }

    fn bytes_per_frame(&self) -> usize {
        let b = if self.law.is_some() { 1 } else { 2 };
        b * self.channels.max(1) as usize
    }

    /// Codes of `law` go to and from the device as they are.
    fn passes(&self, law: g711::Law) -> bool {
        self.law == Some(law) && self.rate == RATE && self.channels == 1
    }
}

fn dev_err(name: &str) -> impl Fn(alsa::Error) -> MediaError + '_ {
    move |e| MediaError::Device(name.to_string(), e.to_string())
}

/// Period and ring an ALSA device was given, in device frames.
#[derive(Debug, Clone, Copy)]
struct Sizes {
    period: i64,
    buffer: i64,
}

/// Tries one hardware configuration; `rate` `None` takes the rate nearest 48 kHz.
fn try_hw(
    pcm: &alsa::PCM,
    format: alsa::pcm::Format,
    rate: Option<u32>,
    period_ms: u32,
    buffer_ms: u32,
) -> Result<(DeviceFormat, Sizes), alsa::Error> {
    use alsa::pcm::{Access, HwParams};
    let hw = HwParams::any(pcm)?;
    hw.set_access(Access::RWInterleaved)?;
    hw.set_format(format)?;
    let channels = match hw.set_channels(1) {
        Ok(()) => 1,
        Err(_) => hw.set_channels_near(1)?,
    };
    let rate = match rate {
        Some(r) => {
            hw.set_rate_resample(false)?;
            hw.set_rate(r, alsa::ValueOr::Nearest)?;
            r
        }
        None => hw.set_rate_near(48000, alsa::ValueOr::Nearest)?,
    };
    let period = i64::from(rate * period_ms / 1000).max(1);
    hw.set_period_size_near(period, alsa::ValueOr::Nearest)?;
    hw.set_buffer_size_near(i64::from(rate * buffer_ms / 1000).max(2 * period))?;
    pcm.hw_params(&hw)?;
    let cur = pcm.hw_params_current()?;
    let law = match format {
        alsa::pcm::Format::MuLaw => Some(g711::Law::MuLaw),
        alsa::pcm::Format::ALaw => Some(g711::Law::ALaw),
        _ => None,
    };
    Ok((
        DeviceFormat {
            law,
            rate: cur.get_rate()?,
            channels,
        },
        Sizes {
            period: cur.get_period_size()?,
            buffer: cur.get_buffer_size()?,
        },
    ))
}

/// Opens an ALSA PCM (non-blocking) with the format order of the module
/// documentation; `buffer_ms` is the ring to ask for.
fn open_alsa(
    name: &str,
    dir: alsa::Direction,
    codec: Codec,
    period_ms: u32,
    buffer_ms: u32,
) -> Result<(alsa::PCM, DeviceFormat, Sizes), MediaError> {
    use alsa::pcm::Format;
    let pcm = alsa::PCM::new(name, dir, true).map_err(dev_err(name))?;
    let law_format = match codec {
        Codec::Pcmu => Format::MuLaw,
        Codec::Pcma => Format::ALaw,
    };
    let mut last_err = None;
    let mut chosen = None;
    for (format, rate) in [
        (law_format, Some(RATE)),
        (Format::s16(), Some(RATE)),
        (Format::s16(), None),
    ] {
        match try_hw(&pcm, format, rate, period_ms, buffer_ms) {
            Ok(f) => {
                chosen = Some(f);
                break;
            }
            Err(e) => {
                tracing::debug!(device = name, %format, ?rate, "format refused: {e}");
                last_err = Some(e);
            }
        }
    }
    let Some((fmt, sizes)) = chosen else {
        return Err(MediaError::Device(
            name.to_string(),
            format!(
                "no usable format (tried {law_format} and S16_LE at 8 kHz, S16_LE at any rate): {}",
                last_err.map(|e| e.to_string()).unwrap_or_default()
            ),
        ));
    };
    {
        let sw = pcm.sw_params_current().map_err(dev_err(name))?;
        // Wake the engine once per period.
        sw.set_avail_min(sizes.period).map_err(dev_err(name))?;
        if dir == alsa::Direction::Playback {
            // Start when the ring is full (the first writes fill it).
            sw.set_start_threshold(sizes.buffer)
                .map_err(dev_err(name))?;
        }
        pcm.sw_params(&sw).map_err(dev_err(name))?;
    }
    pcm.prepare().map_err(dev_err(name))?;
    tracing::info!(device = name, ?dir, format = %fmt.describe(), period = sizes.period, buffer = sizes.buffer, "ALSA device opened");
    Ok((pcm, fmt, sizes))
}

/// Counts xruns and logs the first of each burst (xruns less than a second apart).
#[derive(Debug, Default)]
struct XrunLog {
    count: u64,
    last: Option<Instant>,
}

impl XrunLog {
    fn note(&mut self, name: &str, what: &str, e: &alsa::Error) {
        self.count += 1;
        let now = Instant::now();
        if self
            .last
            .is_none_or(|t| now.duration_since(t) > Duration::from_secs(1))
        {
            tracing::warn!(device = name, xruns = self.count, "{what}: {e}; recovering");
        }
        self.last = Some(now);
    }
}

fn is_again(e: &alsa::Error) -> bool {
    e.errno() == libc::EAGAIN
}

fn is_xrun(e: &alsa::Error) -> bool {
    e.errno() == libc::EPIPE || e.errno() == libc::ESTRPIPE
}

/// Device frames to 8 kHz frames (floor).
fn to_8k(frames: i64, rate: u32) -> i64 {
    frames * i64::from(RATE) / i64::from(rate.max(1))
}

/// Device frames (any law or S16_LE, n channels, any rate) to 8 kHz mono
/// linear samples, without allocating once its buffers have grown.
pub struct InConv {
    fmt: DeviceFormat,
    mono: Vec<i16>,
    resampled: Vec<i16>,
    resampler: Option<Resampler>,
}

impl InConv {
    /// A converter from `fmt`.
    pub fn new(fmt: DeviceFormat) -> InConv {
        InConv {
            fmt,
            mono: Vec::with_capacity(4096),
            resampled: Vec::with_capacity(4096),
            resampler: (fmt.rate != RATE).then(|| Resampler::new(fmt.rate, RATE)),
        }
    }

    /// Converts whole device frames of `bytes`, appending to `out`.
    pub fn push(&mut self, bytes: &[u8], out: &mut VecDeque<i16>) {
        let ch = self.fmt.channels.max(1) as usize;
        self.mono.clear();
        match self.fmt.law {
            Some(law) => self.mono.extend(bytes.chunks_exact(ch).map(|f| {
                let sum: i32 = f.iter().map(|&c| i32::from(law.decode_one(c))).sum();
                (sum / ch as i32) as i16
            })),
            None => self.mono.extend(bytes.chunks_exact(2 * ch).map(|f| {
                let sum: i32 = f
                    .chunks_exact(2)
                    .map(|b| i32::from(i16::from_le_bytes([b[0], b[1]])))
                    .sum();
                (sum / ch as i32) as i16
            })),
        }
        match &mut self.resampler {
            Some(r) => {
                self.resampled.clear();
                r.process(&self.mono, &mut self.resampled);
                out.extend(self.resampled.iter().copied());
            }
            None => out.extend(self.mono.iter().copied()),
        }
    }
}

/// G.711 codes at 8 kHz to device frames (any law or S16_LE, n channels,
/// any rate), without allocating once its buffers have grown.
pub struct OutConv {
    fmt: DeviceFormat,
    pcm8k: Vec<i16>,
    resampled: Vec<i16>,
    raw: Vec<u8>,
    resampler: Option<Resampler>,
}

impl OutConv {
    /// A converter to `fmt`.
    pub fn new(fmt: DeviceFormat) -> OutConv {
        OutConv {
            fmt,
            pcm8k: Vec::with_capacity(4096),
            resampled: Vec::with_capacity(4096),
            raw: Vec::with_capacity(8192),
            resampler: (fmt.rate != RATE).then(|| Resampler::new(RATE, fmt.rate)),
        }
    }

    /// The device bytes of `codes` (of `law`).
    pub fn convert(&mut self, law: g711::Law, codes: &[u8]) -> &[u8] {
        self.raw.clear();
        if self.fmt.passes(law) {
            self.raw.extend_from_slice(codes);
            return &self.raw;
        }
        self.pcm8k.resize(codes.len(), 0);
        law.decode(codes, &mut self.pcm8k);
        let samples: &[i16] = match &mut self.resampler {
            Some(r) => {
                self.resampled.clear();
                r.process(&self.pcm8k, &mut self.resampled);
                &self.resampled
            }
            None => &self.pcm8k,
        };
        let ch = self.fmt.channels.max(1) as usize;
        for &v in samples {
            for _ in 0..ch {
                match self.fmt.law {
                    Some(l) => self.raw.push(l.encode_one(v)),
                    None => self.raw.extend_from_slice(&v.to_le_bytes()),
                }
            }
        }
        &self.raw
    }
}

/// An ALSA capture device.
pub struct AlsaCapture {
    name: String,
    pcm: alsa::PCM,
    fmt: DeviceFormat,
    sizes: Sizes,
    /// Codes of the device's law (mono 8 kHz law devices: passthrough).
    codes: VecDeque<u8>,
    /// Linear 8 kHz samples (every other format).
    pcm8k: VecDeque<i16>,
    raw: Vec<u8>,
    conv: InConv,
    delay: i64,
    /// `delay` averaged over time (8 kHz frames): it grows at the card's
    /// clock between two reads, each read takes a frame off.
    delay_mean: WindowMean,
    opened: Instant,
    started: bool,
    /// The last look ([`CaptureDevice::read_frame`]), frame or not: the
    /// watchdog counts from it (counted from the last frame read, it was
    /// due all the time a device delivered nothing, and the engine spun).
    last_read: Option<Instant>,
    /// When the device's clock completes the frame a look found short
    /// (see [`device_clock_look`]).
    next_look: Option<Instant>,
    xruns: XrunLog,
}

/// The shortest wait for a look timed by a device's clock.
const MIN_LOOK: Duration = Duration::from_millis(1);

/// When to look at a device again: after `samples` (8 kHz) of its clock
/// from `now` (at least [`MIN_LOOK`]), the time the frame a capture look
/// found short completes, or a playback device plays down a period below
/// its fill target.
///
/// A look timed by the device's clock finds the data where the card's
/// pointer follows its clock between period interrupts (snd-voip's and
/// snd-aloop's do), instead of waiting for the period's wake-up and the
/// scheduler: under TCG the wake-ups come 5-10 ms late and a packet
/// left that much later (the out leg went from 23 to 26-31 ms once the
/// engine stopped spinning on its watchdog). On a card whose pointer
/// moves only at period interrupts, the look finds nothing new and the
/// next one waits for the interrupt: a wake-up or two more per period at
/// most (what PulseAudio's timer-based scheduling does, without its
/// rewinds).
fn device_clock_look(now: Instant, samples: i64) -> Instant {
    now + frame_time(samples.max(0) as u64).max(MIN_LOOK)
}

impl AlsaCapture {
    /// The negotiated hardware format.
    pub fn format(&self) -> DeviceFormat {
        self.fmt
    }

    fn keeps_codes(&self) -> bool {
        self.fmt.law.is_some() && self.fmt.rate == RATE && self.fmt.channels == 1
    }

    fn pending(&self) -> usize {
        if self.keeps_codes() {
            self.codes.len()
        } else {
            self.pcm8k.len()
        }
    }

    /// Converts `n` device frames of `raw` into the pending queue.
    fn take_raw(&mut self, n: usize) {
        let bytes = self
            .raw
            .get(..n * self.fmt.bytes_per_frame())
            .unwrap_or_default();
        if self.keeps_codes() {
            self.codes.extend(bytes.iter().copied());
        } else {
            self.conv.push(bytes, &mut self.pcm8k);
        }
    }

    fn recover(&mut self, e: alsa::Error) -> Result<(), MediaError> {
        self.xruns.note(&self.name, "capture overrun", &e);
        self.pcm
            .recover(e.errno(), true)
            .map_err(dev_err(&self.name))?;
        self.pcm.start().map_err(dev_err(&self.name))
    }
}

impl CaptureDevice for AlsaCapture {
    fn poll_fds(&self) -> Vec<pollfd> {
        self.pcm.get().unwrap_or_default()
    }

    fn read_frame(&mut self, now: Instant, frame: &mut Frame) -> Result<bool, MediaError> {
        if !self.started {
            // Started by the engine's first look, not at open: opening the
            // playback side and handing the call over take time, and the
            // ring would fill meanwhile.
            self.pcm.start().map_err(dev_err(&self.name))?;
            self.started = true;
        }
        self.last_read = Some(now);
        let n = frame.codes.len();
        // At most a ring and a frame's worth per call (a device that lies
        // about its fill cannot keep the engine here).
        for _ in 0..4 {
            if self.pending() >= n {
                break;
            }
            let avail = match self.pcm.avail_update() {
                Ok(a) => a,
                Err(e) if is_xrun(&e) => {
                    self.recover(e)?;
                    continue;
                }
                Err(e) => return Err(dev_err(&self.name)(e)),
            };
            if avail <= 0 {
                break;
            }
            let frames = (avail as usize).min(self.sizes.buffer as usize);
            self.raw.resize(frames * self.fmt.bytes_per_frame(), 0);
            let got = self.pcm.io_bytes().readi(&mut self.raw);
            match got {
                Ok(k) => self.take_raw(k),
                Err(e) if is_again(&e) => break,
                Err(e) if is_xrun(&e) => self.recover(e)?,
                Err(e) => return Err(dev_err(&self.name)(e)),
            }
        }
        if self.pending() < n {
            self.next_look = Some(device_clock_look(now, (n - self.pending()) as i64));
            return Ok(false);
        }
        if self.keeps_codes() {
            frame.law = self.fmt.law;
            for (o, c) in frame.codes.iter_mut().zip(self.codes.drain(..n)) {
                *o = c;
            }
        } else {
            frame.law = None;
            for (o, s) in frame.pcm.iter_mut().zip(self.pcm8k.drain(..n)) {
                *o = s;
            }
        }
        let waiting = self.pcm.delay().unwrap_or(0);
        let delay = to_8k(waiting.max(0), self.fmt.rate) + self.pending() as i64;
        // Up from what the last read left to what this one found (the
        // frame just taken included).
        self.delay_mean
            .segment(now, self.delay as f64, (delay + n as i64) as f64);
        self.delay = delay;
        Ok(true)
    }

    fn next_due(&self) -> Option<Instant> {
        // Watchdog: the device wakes us every period; if it stops, look
        // anyway after two.
        let p = frame_time(to_8k(self.sizes.period, self.fmt.rate) as u64);
        let watchdog = self.last_read.unwrap_or(self.opened) + 2 * p;
        Some(self.next_look.map_or(watchdog, |t| t.min(watchdog)))
    }

    fn delay(&self) -> i64 {
        self.delay
    }

    fn delay_mean_ms(&self) -> Option<f64> {
        self.delay_mean.mean().map(|f| f * 1000.0 / f64::from(RATE))
    }

    fn xruns(&self) -> u64 {
        self.xruns.count
    }

    fn info(&self) -> DeviceInfo {
        DeviceInfo {
            format: self.fmt.describe(),
            passthrough: false,
            period: to_8k(self.sizes.period, self.fmt.rate) as usize,
            buffer: to_8k(self.sizes.buffer, self.fmt.rate) as usize,
        }
    }
}

/// An ALSA playback device.
pub struct AlsaPlayback {
    name: String,
    pcm: alsa::PCM,
    fmt: DeviceFormat,
    sizes: Sizes,
    /// Device bytes converted but not yet accepted by the device.
    backlog: VecDeque<u8>,
    conv: OutConv,
    /// Device frames queued at the last look.
    delay: i64,
    /// `delay` averaged over time (device frames): it falls at the card's
    /// clock between two looks, each write tops it up.
    delay_mean: WindowMean,
    fill: Fill,
    /// What ALSA's ring held right after the last write (device frames):
    /// what it lost since is what the device consumed while the engine was
    /// away.
    after: Option<i64>,
    /// What ALSA's ring and the backlog held at the last look, plus what
    /// was written since.
    queued: i64,
    opened: Instant,
    /// The last write, and the last look ([`PlaybackDevice::wanted`]): the
    /// watchdog counts from the later (after a descent the device plays
    /// down for several periods with nothing to write, and a watchdog
    /// counted from the last write alone was due all that time: the engine
    /// looked every 0.6 ms, 2900 looks for one descent under TCG).
    last_write: Option<Instant>,
    last_look: Option<Instant>,
    /// When the device will have played a period below the fill target
    /// (see [`device_clock_look`]).
    next_look: Option<Instant>,
    xruns: XrunLog,
}

/// How much audio the bridge keeps queued in a playback device, and the
/// control loop that moves it (device frames).
///
/// The card consumes audio as its clock runs and wakes the engine each
/// period; the engine tops the device up to `target`. Between two top-ups
/// the device plays on: what the ring *lost* meanwhile (its `drop`,
/// measured from ALSA's own ring, not from the wall clock, so an engine
/// that looks a little late but before the next tick costs nothing) is what
/// the target must cover, with something to spare. The loop:
///
/// * grows at once when a look found less than half a period left (to that
///   drop and a whole period), and by a period after an underrun or when
///   the low water of a two-second window came within half a period of
///   empty;
/// * after the first two calm windows in a row (every look leaving half a
///   period or more; [`FIRST_CALM`]), drops straight to what their largest
///   drop needed (the drop and half a period); after that, after three
///   calm windows in a row, halfway towards what they needed, never below
///   `[audio] buffer_ms` and never below the largest drop of the last
///   20 s ([`NEED_MEMORY`] windows: a
///   board whose looks come late a few times a minute keeps the margin
///   those looks need instead of learning it again by an underrun);
/// * treats the call's start-up as such: when a look of its first two
///   seconds ([`START_GRACE`]) lost more than four periods, or an
///   underrun came before the first descent, the start stalled: those
///   looks grow the target as they must, but the descents do not remember
///   them, and the first descent waits for two calm windows after the
///   first (at 6 s of the call). A start that kept time is an ordinary
///   window.
///
/// It starts at 100 ms (or `buffer_ms` if larger), so a loaded board (or an
/// emulated one) does not glitch while it learns; an on-time engine brings
/// it to a period and a half after two windows (4 s; 6 s after a stalled
/// start), to `buffer_ms` and no lower. Each descent also drops what the
/// device no longer holds from the playout queue (`CallCore::shed_playout`), or the latency would only
/// move there. (Until 2026-12-05 the need was the wall-clock gap between
/// looks rounded up to periods and a period more, and the first descent
/// added another: under TCG, where looks come 10-22 ms apart, 40 ms.)
#[derive(Debug, Clone)]
struct Fill {
    period: i64,
    rate: u32,
    min: i64,
    max: i64,
    target: i64,
    low: i64,
    /// This window's need: its largest drop (frames) and half a period.
    need: i64,
    /// The needs of the last [`NEED_MEMORY`] windows (slot `k %
    /// NEED_MEMORY` for window `k`).
    recent: [i64; NEED_MEMORY],
    recent_at: usize,
    window: Option<Instant>,
    last: Option<Instant>,
    /// This window's looks, longest gap (frames) and largest drop.
    looks: u32,
    max_gap: i64,
    max_drop: i64,
    calm: u32,
    /// The first descent (from the start) was made (an underrun before it
    /// is the start-up's, see [`Fill::underrun`]).
    settled: bool,
    /// The first look of the running stream: looks in the
    /// [`START_GRACE`] after it are the start-up's.
    started: Option<Instant>,
    /// This window's start-up looks: their largest drop, need and low
    /// water, kept apart until the window ends.
    start_drop: i64,
    start_need: i64,
    start_low: i64,
    /// A start-up look lost more than [`START_STALL_PERIODS`], or an
    /// underrun came before the first descent: the start-up stalled.
    start_stalled: bool,
    /// After an underrun: the target it set, which no descent goes below
    /// until [`UNDERRUN_MEMORY`] has passed (each underrun restarts it).
    floor: Option<(i64, Instant)>,
}

/// `v` rounded up to a multiple of `step` (both positive).
fn up_to(v: i64, step: i64) -> i64 {
    (v.max(0) + step - 1) / step * step
}

/// The control window of [`Fill`].
const FILL_WINDOW: Duration = Duration::from_secs(2);
/// Where [`Fill`] starts, at least.
const FILL_START: Duration = Duration::from_millis(100);
/// Calm windows (of [`FILL_WINDOW`]) in a row before the first descent:
/// one window of a late engine (TCG) is too short a sample of its gaps:
/// a bench run descended from 100 to 26 ms after the first window and
/// underran on a 36 ms gap a second later.
const FIRST_CALM: u32 = 2;
/// Windows (of [`FILL_WINDOW`]) whose needs bound the descents: 20 s.
const NEED_MEMORY: usize = 10;
/// How long the target an underrun set stays the floor of the descents.
/// The gap that caused it is not in any calm window's need, so without a
/// memory the next descents go back below it: on the emulated board an
/// underrun came 1-2 s after each, and each one costs a call with echo
/// cancellation half a second of echo while the canceller re-converges.
const UNDERRUN_MEMORY: Duration = Duration::from_secs(30);
/// The start of a call's playback: the looks in it grow the target at once
/// if they have to, as any look does, but what they lost is not a need the
/// descents remember. The start is not the engine's steady state: the
/// devices open and start, the echo canceller takes its first frames, the
/// first packets come in. On the emulated board one look 92 ms late there
/// (the device lost as much: the engine's start, not the card) kept the
/// fill at 98 ms for 20 s of a call whose looks needed 25 ms afterwards,
/// and in another call a look 61 ms late came 1.5 s in (after an underrun
/// at 0.13 s): the first control window ([`FILL_WINDOW`]) is the start.
const START_GRACE: Duration = FILL_WINDOW;
/// A start-up look that lost more than this many periods is a stall (the
/// emulated board's were 61-136 ms with 10 ms periods; a late engine
/// under TCG loses 2-3 periods now and then, which is its steady state).
const START_STALL_PERIODS: i64 = 4;

impl Fill {
    fn new(period: i64, rate: u32, min: i64, max: i64) -> Fill {
        let period = period.max(1);
        let max = max.max(2 * period);
        let min = min.clamp(2 * period, max);
        let start = up_to(
            i64::from(rate) * FILL_START.as_millis() as i64 / 1000,
            period,
        );
        Fill {
            period,
            rate,
            min,
            max,
            target: start.clamp(min, max),
            low: i64::MAX,
            need: 0,
            recent: [0; NEED_MEMORY],
            recent_at: 0,
            window: None,
            last: None,
            looks: 0,
            max_gap: 0,
            max_drop: 0,
            calm: 0,
            settled: false,
            started: None,
            start_drop: 0,
            start_need: 0,
            start_low: i64::MAX,
            start_stalled: false,
            floor: None,
        }
    }

    fn frames(&self, d: Duration) -> i64 {
        (d.as_micros() as i64).saturating_mul(i64::from(self.rate)) / 1_000_000
    }

    /// What covers a drop of `drop` frames between two top-ups: the drop
    /// and half a period to spare.
    fn cover(&self, drop: i64) -> i64 {
        drop + self.period / 2
    }

    /// The device held `queued` frames at a look at `now`, having lost
    /// `drop` frames since it was last topped up; returns whether the
    /// target changed.
    fn observe(&mut self, queued: i64, drop: i64, now: Instant) -> bool {
        let old = self.target;
        let gap = self
            .last
            .map_or(0, |t| self.frames(now.saturating_duration_since(t)));
        self.last = Some(now);
        let started = *self.started.get_or_insert(now);
        let start_up = now.saturating_duration_since(started) < START_GRACE;
        self.looks += 1;
        self.max_gap = self.max_gap.max(gap);
        let need = self.cover(drop);
        if need > self.target {
            // Less than half a period was left: at once to what that drop
            // needs and a whole period to spare.
            // (This look's low water is answered: the window's starts over.)
            self.target = (drop + self.period).min(self.max);
            self.calm = 0;
            self.low = i64::MAX;
        } else if start_up {
            self.start_low = self.start_low.min(queued);
        } else {
            self.low = self.low.min(queued);
        }
        if start_up {
            self.start_drop = self.start_drop.max(drop);
            self.start_need = self.start_need.max(need);
            if drop > START_STALL_PERIODS * self.period {
                self.start_stalled = true;
            }
        } else {
            self.max_drop = self.max_drop.max(drop);
            self.need = self.need.max(need);
        }
        let start = *self.window.get_or_insert(now);
        if self.floor.is_some_and(|(_, until)| now >= until) {
            self.floor = None;
        }
        let floor = self.floor.map_or(self.min, |(f, _)| f.max(self.min));
        if now.saturating_duration_since(start) >= FILL_WINDOW {
            // A window that began in a start-up that stalled is no sample
            // of the engine's steady state either way: its start-up looks
            // set no need, and it neither counts as calm (the first
            // descent waits for [`FIRST_CALM`] windows after it, each
            // with its own looks) nor raises the target. A start-up that
            // kept time is an ordinary part of its window.
            let skip = start.saturating_duration_since(started) < START_GRACE && self.start_stalled;
            if !skip {
                self.need = self.need.max(self.start_need);
                self.max_drop = self.max_drop.max(self.start_drop);
                self.low = self.low.min(self.start_low);
            }
            self.start_drop = 0;
            self.start_need = 0;
            self.start_low = i64::MAX;
            self.start_stalled = false;
            let low = self.low;
            // What the windows of the last NEED_MEMORY needed: no descent
            // goes below a drop seen that recently (the emulated board's
            // looks come late by 30 ms a few times a minute, and a target
            // that came down between them underran on the next one).
            if let Some(slot) = self.recent.get_mut(self.recent_at % NEED_MEMORY) {
                *slot = self.need;
            }
            self.recent_at += 1;
            let need = self.recent.iter().copied().max().unwrap_or(self.need);
            tracing::debug!(
                looks = self.looks,
                max_gap = self.max_gap,
                max_drop = self.max_drop,
                low,
                need = self.need,
                need_recent = need,
                target = self.target,
                "playback fill window"
            );
            self.looks = 0;
            self.max_gap = 0;
            self.max_drop = 0;
            self.low = i64::MAX;
            self.need = 0;
            self.window = Some(now);
            if skip {
                // (The looks that found the device low already raised it.)
            } else if low < self.period / 2 {
                self.target = (self.target + self.period).min(self.max);
                self.calm = 0;
            } else if need + self.period / 8 <= self.target {
                // Calm: every look of the window left half a period or
                // more, and the target is above what the recent windows
                // needed.
                self.calm += 1;
                if !self.settled && self.calm >= FIRST_CALM {
                    // The first [`FIRST_CALM`] calm windows in a row:
                    // straight down to what their largest drop needed
                    // (100 ms for a whole call is what users hear).
                    self.settled = true;
                    self.target = need.clamp(floor, self.target.max(floor));
                    self.calm = 0;
                } else if self.settled && self.calm >= 3 {
                    let half = (self.target + need) / 2;
                    self.target = half.max(floor).min(self.target);
                    self.calm = 0;
                }
            } else {
                self.calm = 0;
            }
        }
        self.target != old
    }

    /// An underrun at `now`: cover the gap that caused it, and a period more.
    ///
    /// Once the fill has settled (its first descent made), that target is
    /// the floor of the descents for [`UNDERRUN_MEMORY`]. Before, the
    /// underrun is the call's start-up (the devices starting, the echo
    /// canceller's first frames: on the emulated board a look 136 ms after
    /// the last, 160 ms into the call, underran the 100 ms the device
    /// started with), which says nothing of the engine's steady state: the
    /// target still rises, but the first descent, after [`FIRST_CALM`]
    /// calm windows, still goes straight to what they needed (the board's
    /// calls held 146 ms for the whole call after such an underrun, where
    /// their looks needed 28).
    fn underrun(&mut self, now: Instant) {
        let gap = self
            .last
            .map_or(0, |t| self.frames(now.saturating_duration_since(t)));
        self.target = (self.target + self.period)
            .max(gap + self.period)
            .min(self.max);
        self.calm = 0;
        self.need = 0;
        self.low = i64::MAX;
        self.window = None;
        if self.settled {
            self.floor = Some((self.target, now + UNDERRUN_MEMORY));
        } else {
            self.start_stalled = true;
            tracing::debug!(
                target = self.target,
                "playback underrun before the fill settled (start-up): no floor"
            );
        }
    }
}

impl AlsaPlayback {
    /// The negotiated hardware format.
    pub fn format(&self) -> DeviceFormat {
        self.fmt
    }

    fn recover(&mut self, e: alsa::Error) -> Result<(), MediaError> {
        self.xruns.note(&self.name, "playback underrun", &e);
        self.backlog.clear();
        self.pcm
            .recover(e.errno(), true)
            .map_err(dev_err(&self.name))?;
        self.fill.underrun(Instant::now());
        self.after = None;
        self.queued = 0;
        self.apply_target();
        Ok(())
    }

    /// Wakes the engine when the device has drained a period below the
    /// target (`avail_min`); a failure only costs wake-ups, and is logged.
    fn apply_target(&mut self) {
        let avail_min = (self.sizes.buffer - self.fill.target + self.sizes.period).max(1);
        let r = self
            .pcm
            .sw_params_current()
            .and_then(|sw| sw.set_avail_min(avail_min).map(|_| sw))
            .and_then(|sw| self.pcm.sw_params(&sw));
        if let Err(e) = r {
            tracing::warn!(device = %self.name, "cannot set avail_min: {e}");
        }
        tracing::info!(device = %self.name, target = self.fill.target, ring = self.sizes.buffer, "playback fill target");
    }

    /// Writes the backlog; what the device does not take stays.
    fn flush(&mut self) -> Result<(), MediaError> {
        let bpf = self.fmt.bytes_per_frame();
        for _ in 0..2 {
            if self.backlog.len() < bpf {
                return Ok(());
            }
            let (a, _) = self.backlog.as_slices();
            let chunk = if a.len() >= bpf {
                a
            } else {
                self.backlog.make_contiguous()
            };
            let whole = chunk.len() / bpf * bpf;
            let r = self
                .pcm
                .io_bytes()
                .writei(chunk.get(..whole).unwrap_or_default());
            match r {
                Ok(k) => {
                    self.backlog.drain(..(k * bpf).min(self.backlog.len()));
                }
                Err(e) if is_again(&e) => return Ok(()),
                Err(e) if is_xrun(&e) => self.recover(e)?,
                Err(e) => return Err(dev_err(&self.name)(e)),
            }
        }
        Ok(())
    }
}

impl PlaybackDevice for AlsaPlayback {
    fn poll_fds(&self) -> Vec<pollfd> {
        self.pcm.get().unwrap_or_default()
    }

    fn wanted(&mut self, now: Instant) -> Result<usize, MediaError> {
        self.last_look = Some(now);
        if self.pcm.state() == alsa::pcm::State::XRun {
            let e = alsa::Error::new("snd_pcm_state", libc::EPIPE);
            self.recover(e)?;
        }
        self.flush()?;
        let (avail, delay) = match self.pcm.avail_delay() {
            Ok(x) => x,
            Err(e) if is_xrun(&e) => {
                self.recover(e)?;
                (self.sizes.buffer, 0)
            }
            Err(e) => return Err(dev_err(&self.name)(e)),
        };
        // Before the start, `delay` is what was written so far.
        let backlog = (self.backlog.len() / self.fmt.bytes_per_frame()) as i64;
        // Down from what the last write left to what this look found.
        let delay = delay.max(0) + backlog;
        self.delay_mean
            .segment(now, self.delay as f64, delay as f64);
        self.delay = delay;
        // The fill is what ALSA's own ring still holds: only that plays on
        // while the engine is away. `delay` can also count frames the card
        // has already moved on (snd-voip's RTOS speaker ring, a codec's
        // FIFO), which play at the device's pace whatever the engine does,
        // so a fill measured by it leaves the ring short by that much and
        // its low water never shows the ring running dry (on the emulated
        // board: 160-420 frames in the speaker ring, and underruns with
        // the `delay` on target).
        let queued = (self.sizes.buffer - avail).max(0) + backlog;
        // What the ring lost since it was last topped up (from at most the
        // target: after a descent it holds more until it has played down).
        let drop = self
            .after
            .map_or(0, |a| (a.min(self.fill.target) - queued).max(0));
        self.queued = queued;
        if self.pcm.state() == alsa::pcm::State::Running && self.fill.observe(queued, drop, now) {
            self.apply_target();
        }
        let room = (self.fill.target - queued).min(avail).max(0);
        self.next_look = (self.pcm.state() == alsa::pcm::State::Running).then(|| {
            let above = queued + room - (self.fill.target - self.sizes.period);
            device_clock_look(now, to_8k(above, self.fmt.rate))
        });
        tracing::trace!(state = ?self.pcm.state(), avail, delay, queued, room, "playback");
        Ok(to_8k(room, self.fmt.rate) as usize)
    }

    fn write_codes(
        &mut self,
        law: g711::Law,
        codes: &[u8],
        now: Instant,
    ) -> Result<DeviceTiming, MediaError> {
        let timing = DeviceTiming {
            at: now,
            delay: to_8k(self.delay, self.fmt.rate),
        };
        let raw = self.conv.convert(law, codes);
        self.queued += (raw.len() / self.fmt.bytes_per_frame()) as i64;
        self.after = Some(self.queued);
        self.backlog.extend(raw.iter().copied());
        self.flush()?;
        if self.pcm.state() == alsa::pcm::State::Prepared {
            // The kernel starts a stream at its start threshold only when
            // the write brought it there, and says nothing when that start
            // fails: start it here, and say why it did not.
            if let Err(e) = self.pcm.start() {
                self.xruns.note(&self.name, "playback start", &e);
            }
        }
        self.delay += to_8k(codes.len() as i64, RATE) * i64::from(self.fmt.rate) / i64::from(RATE);
        self.last_write = Some(now);
        Ok(timing)
    }

    fn next_due(&self) -> Option<Instant> {
        let p = frame_time(to_8k(self.sizes.period, self.fmt.rate) as u64);
        let last = self.last_write.max(self.last_look).unwrap_or(self.opened);
        let watchdog = last + 2 * p;
        Some(self.next_look.map_or(watchdog, |t| t.min(watchdog)))
    }

    fn delay(&self) -> i64 {
        to_8k(self.delay, self.fmt.rate)
    }

    fn delay_mean_ms(&self) -> Option<f64> {
        self.delay_mean
            .mean()
            .map(|f| f * 1000.0 / f64::from(self.fmt.rate))
    }

    fn fill_target(&self) -> i64 {
        to_8k(self.fill.target, self.fmt.rate)
    }

    fn xruns(&self) -> u64 {
        self.xruns.count
    }

    fn info(&self) -> DeviceInfo {
        DeviceInfo {
            format: self.fmt.describe(),
            passthrough: false,
            period: to_8k(self.sizes.period, self.fmt.rate) as usize,
            buffer: to_8k(self.sizes.buffer, self.fmt.rate) as usize,
        }
    }

    fn passes(&self, law: g711::Law) -> bool {
        self.fmt.passes(law)
    }

    fn finish(&mut self) -> Result<(), MediaError> {
        // Play out what is queued (at most a ring): the PCM is
        // non-blocking, so start the drain and wait for it to end.
        let _ = self.flush();
        let ring = frame_time(to_8k(self.sizes.buffer, self.fmt.rate).max(0) as u64);
        let deadline = Instant::now() + ring + Duration::from_millis(200);
        if self.pcm.drain().is_err() {
            while self.pcm.state() == alsa::pcm::State::Draining && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(5));
            }
        }
        let _ = self.pcm.drop();
        Ok(())
    }
}

/// Opens an ALSA capture device (public for tests and tools).
pub fn open_alsa_capture(
    name: &str,
    codec: Codec,
    dev: DeviceConfig,
) -> Result<AlsaCapture, MediaError> {
    // The capture ring costs no latency (it is read every period): make it
    // large, so a stalled engine does not overrun it.
    let buffer_ms = dev.buffer_ms.max(RING_PERIODS * dev.period_ms);
    let (pcm, fmt, sizes) = open_alsa(
        name,
        alsa::Direction::Capture,
        codec,
        dev.period_ms,
        buffer_ms,
    )?;
    let ring = sizes.buffer as usize * fmt.bytes_per_frame();
    Ok(AlsaCapture {
        name: name.to_string(),
        pcm,
        fmt,
        sizes,
        codes: VecDeque::with_capacity(ring + 2048),
        pcm8k: VecDeque::with_capacity(ring + 2048),
        raw: Vec::with_capacity(ring),
        conv: InConv::new(fmt),
        delay: 0,
        delay_mean: WindowMean::new(MEAN_WINDOW),
        opened: Instant::now(),
        started: false,
        last_read: None,
        next_look: None,
        xruns: XrunLog::default(),
    })
}

/// Opens an ALSA playback device (public for tests and tools).
pub fn open_alsa_playback(
    name: &str,
    codec: Codec,
    dev: DeviceConfig,
) -> Result<AlsaPlayback, MediaError> {
    // The ring leaves the fill room to grow (see `Fill`); what is queued,
    // not the ring, is the latency.
    let (pcm, fmt, sizes) = open_alsa(
        name,
        alsa::Direction::Playback,
        codec,
        dev.period_ms,
        dev.buffer_ms.max(RING_PERIODS * dev.period_ms),
    )?;
    let ms = |v: u32| i64::from(fmt.rate) * i64::from(v) / 1000;
    let fill = Fill::new(sizes.period, fmt.rate, ms(dev.buffer_ms), sizes.buffer);
    let ring = sizes.buffer as usize * fmt.bytes_per_frame();
    let mut p = AlsaPlayback {
        name: name.to_string(),
        pcm,
        fmt,
        sizes,
        backlog: VecDeque::with_capacity(2 * ring + 4096),
        conv: OutConv::new(fmt),
        fill,
        after: None,
        queued: 0,
        delay: 0,
        delay_mean: WindowMean::new(MEAN_WINDOW),
        opened: Instant::now(),
        last_write: None,
        last_look: None,
        next_look: None,
        xruns: XrunLog::default(),
    };
    p.apply_target();
    Ok(p)
}

/// Reads a WAV file for capture as 8 kHz mono: any integer or float
/// sample format, channels mixed down, other rates resampled.
pub fn load_wav(path: &str) -> Result<Vec<i16>, MediaError> {
    let err = |e: hound::Error| MediaError::Device(path.to_string(), e.to_string());
    let mut r = hound::WavReader::open(path).map_err(err)?;
    let spec = r.spec();
    let scaled: Vec<f64> = match spec.sample_format {
        hound::SampleFormat::Float => r
            .samples::<f32>()
            .map(|s| s.map(|v| f64::from(v) * 32767.0))
            .collect::<Result<_, _>>()
            .map_err(err)?,
        hound::SampleFormat::Int => {
            let scale = 2f64.powi(16 - i32::from(spec.bits_per_sample));
            r.samples::<i32>()
                .map(|s| s.map(|v| f64::from(v) * scale))
                .collect::<Result<_, _>>()
                .map_err(err)?
        }
    };
    let ch = usize::from(spec.channels.max(1));
    let mono: Vec<i16> = scaled
        .chunks_exact(ch)
        .map(|f| {
            (f.iter().sum::<f64>() / ch as f64)
                .round()
                .clamp(-32768.0, 32767.0) as i16
        })
        .collect();
    if spec.sample_rate == RATE {
        return Ok(mono);
    }
    let mut out =
        Vec::with_capacity(mono.len() * RATE as usize / spec.sample_rate.max(1) as usize + 1);
    Resampler::new(spec.sample_rate, RATE).process(&mono, &mut out);
    Ok(out)
}

/// Opens a capture source delivering `frame`-sample frames.
pub fn open_capture(
    spec: &AudioSpec,
    codec: Codec,
    frame: usize,
    dev: DeviceConfig,
) -> Result<Box<dyn CaptureDevice>, MediaError> {
    Ok(match spec {
        AudioSpec::Tone(hz) => Box::new(Tone::new(*hz, frame)),
        AudioSpec::Null => Box::new(Silence {
            pacer: Pacer::new(frame),
        }),
        AudioSpec::Wav(path) => Box::new(WavSource {
            path: path.clone(),
            samples: load_wav(path)?,
            pos: 0,
            pacer: Pacer::new(frame),
        }),
        AudioSpec::Alsa(name) => Box::new(open_alsa_capture(name, codec, dev)?),
    })
}

/// Opens a playback sink; files and null take `frame` samples per frame time.
pub fn open_playback(
    spec: &AudioSpec,
    codec: Codec,
    frame: usize,
    dev: DeviceConfig,
) -> Result<Box<dyn PlaybackDevice>, MediaError> {
    Ok(match spec {
        AudioSpec::Null => Box::new(PacedSink {
            pacer: Pacer::new(frame),
            frame,
            path: None,
            writer: None,
            pcm: Vec::with_capacity(frame),
        }),
        AudioSpec::Tone(_) => {
            return Err(MediaError::BadSpec(format!(
                "{spec} cannot be a playback device"
            )))
        }
        AudioSpec::Wav(path) => {
            let spec = hound::WavSpec {
                channels: 1,
                sample_rate: RATE,
                bits_per_sample: 16,
                sample_format: hound::SampleFormat::Int,
            };
            let w = hound::WavWriter::create(path, spec)
                .map_err(|e| MediaError::Device(path.clone(), e.to_string()))?;
            Box::new(PacedSink {
                pacer: Pacer::new(frame),
                frame,
                path: Some(path.clone()),
                writer: Some(w),
                pcm: Vec::with_capacity(frame),
            })
        }
        AudioSpec::Alsa(name) => Box::new(open_alsa_playback(name, codec, dev)?),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::analysis::{dominant_frequency, tone_level};
    use std::path::PathBuf;
    use std::sync::Once;
    use std::time::Duration;

    fn tone(hz: f64, n: usize, amp: f64) -> Vec<i16> {
        (0..n)
            .map(|k| (amp * (2.0 * PI * hz * k as f64 / 8000.0).sin()) as i16)
            .collect()
    }

    /// A directory with an ALSA configuration defining test PCMs on
    /// alsa-lib's own `file`, `linear` and `null` plugins, loaded after the
    /// system's through ALSA_CONFIG_PATH (the same value for every test).
    fn alsa_dir() -> PathBuf {
        static INIT: Once = Once::new();
        let dir = std::env::temp_dir().join(format!("voipbridge-alsa-{}", std::process::id()));
        INIT.call_once(|| {
            std::fs::create_dir_all(&dir).unwrap();
            let d = dir.display();
            let conf = format!(
                r#"
pcm.vb_law_out {{ type file slave.pcm "null" file "{d}/law_out.raw" format "raw" }}
pcm.vb_s16_out {{ type linear slave {{ pcm "vb_s16_file" format S16_LE }} }}
pcm.vb_s16_file {{ type file slave.pcm "null" file "{d}/s16_out.raw" format "raw" }}
pcm.vb_law_in {{ type file slave.pcm "null" file "/dev/null" infile "{d}/law_in.raw" format "raw" }}
"#
            );
            std::fs::write(dir.join("asound.conf"), conf).unwrap();
            let path = format!(
                "/usr/share/alsa/alsa.conf:{}",
                dir.join("asound.conf").display()
            );
            std::env::set_var("ALSA_CONFIG_PATH", path);
        });
        dir
    }

    const DEV: DeviceConfig = DeviceConfig {
        period_ms: 10,
        buffer_ms: 20,
    };

    fn codes_of(law: g711::Law, x: &[i16]) -> Vec<u8> {
        let mut c = vec![0u8; x.len()];
        law.encode(x, &mut c);
        c
    }

    #[test]
    fn alsa_playback_uses_the_law_format_and_carries_the_codes_untouched() {
        let dir = alsa_dir();
        for codec in [Codec::Pcmu, Codec::Pcma] {
            let mut sink = open_alsa_playback("vb_law_out", codec, DEV).unwrap();
            assert_eq!(
                sink.format(),
                DeviceFormat {
                    law: Some(codec.law()),
                    rate: 8000,
                    channels: 1
                }
            );
            assert!(sink.format().passes(codec.law()));
            let x = tone(1000.0, 8000, 12000.0);
            let now = Instant::now();
            for f in x.chunks(160) {
                sink.write_codes(codec.law(), &codes_of(codec.law(), f), now)
                    .unwrap();
            }
            sink.finish().unwrap();
            drop(sink);
            let raw = std::fs::read(dir.join("law_out.raw")).unwrap();
            assert!(raw.len() >= 8000, "{}", raw.len());
            let pcm: Vec<i16> = raw[..8000]
                .iter()
                .map(|&c| codec.law().decode_one(c))
                .collect();
            assert_eq!(dominant_frequency(&pcm, 8000.0), 1000.0);
            let l = tone_level(&pcm, 1000.0, 8000.0);
            assert!((l - 12000.0).abs() < 300.0, "{codec:?} {l}");
            // The codes are G.711 of the samples: nothing else in between.
            let mut codes = vec![0u8; 8000];
            codec.law().encode(&x, &mut codes);
            assert_eq!(&raw[..8000], &codes[..]);
        }
    }

    #[test]
    fn alsa_falls_back_to_s16_at_8k_when_the_law_is_refused() {
        let dir = alsa_dir();
        let mut sink = open_alsa_playback("vb_s16_out", Codec::Pcmu, DEV).unwrap();
        assert_eq!(
            sink.format(),
            DeviceFormat {
                law: None,
                rate: 8000,
                channels: 1
            }
        );
        let x = tone(440.0, 8000, 9000.0);
        let codes = codes_of(g711::Law::MuLaw, &x);
        let now = Instant::now();
        for f in codes.chunks(160) {
            sink.write_codes(g711::Law::MuLaw, f, now).unwrap();
        }
        sink.finish().unwrap();
        drop(sink);
        let raw = std::fs::read(dir.join("s16_out.raw")).unwrap();
        let pcm: Vec<i16> = raw
            .chunks_exact(2)
            .map(|b| i16::from_le_bytes([b[0], b[1]]))
            .take(8000)
            .collect();
        let mut want = vec![0i16; 8000];
        g711::Law::MuLaw.decode(&codes, &mut want);
        assert_eq!(pcm, want);
    }

    #[test]
    fn alsa_capture_reads_frames_from_the_device() {
        let dir = alsa_dir();
        let x = tone(440.0, 8000, 10000.0);
        let mut codes = vec![0u8; x.len()];
        g711::Law::MuLaw.encode(&x, &mut codes);
        std::fs::write(dir.join("law_in.raw"), &codes).unwrap();
        let mut src = open_alsa_capture("vb_law_in", Codec::Pcmu, DEV).unwrap();
        assert_eq!(src.format().law, Some(g711::Law::MuLaw));
        let mut got = Vec::new();
        let mut raw = Vec::new();
        let mut frame = Frame::new(160);
        let deadline = Instant::now() + Duration::from_secs(5);
        while got.len() < 40 * 160 && Instant::now() < deadline {
            if src.read_frame(Instant::now(), &mut frame).unwrap() {
                // The device's codes, as they are: passthrough.
                assert_eq!(frame.law, Some(g711::Law::MuLaw));
                raw.extend_from_slice(&frame.codes);
                frame.to_linear();
                got.extend_from_slice(&frame.pcm);
            } else {
                std::thread::sleep(Duration::from_millis(1));
            }
        }
        assert_eq!(&raw[..], &codes[..raw.len()]);
        assert_eq!(dominant_frequency(&got, 8000.0), 440.0);
        let l = tone_level(&got, 440.0, 8000.0);
        assert!((l - 10000.0).abs() < 300.0, "{l}");
        assert_eq!(src.xruns(), 0);
    }

    #[test]
    fn converters_resample_and_map_channels_at_48k_stereo() {
        let fmt = DeviceFormat {
            law: None,
            rate: 48000,
            channels: 2,
        };
        assert!(!fmt.passes(g711::Law::MuLaw));
        let mut play = OutConv::new(fmt);
        let x = tone(1000.0, 8000, 10000.0);
        let codes = codes_of(g711::Law::MuLaw, &x);
        let mut raw = Vec::new();
        for f in codes.chunks(160) {
            raw.extend_from_slice(play.convert(g711::Law::MuLaw, f));
        }
        let frames: Vec<(i16, i16)> = raw
            .chunks_exact(4)
            .map(|b| {
                (
                    i16::from_le_bytes([b[0], b[1]]),
                    i16::from_le_bytes([b[2], b[3]]),
                )
            })
            .collect();
        assert_eq!(frames.len(), 48000);
        assert!(frames.iter().all(|(l, r)| l == r));
        let left: Vec<i16> = frames.iter().map(|f| f.0).collect();
        let mid = &left[6000..42000];
        assert!((tone_level(mid, 1000.0, 48000.0) - 10000.0).abs() < 300.0);
        // And back: 48 kHz stereo capture to 8 kHz mono.
        let mut cap = InConv::new(fmt);
        let mut back = VecDeque::new();
        for b in raw.chunks(48 * 4 * 20) {
            cap.push(b, &mut back);
        }
        let back: Vec<i16> = back.into_iter().collect();
        assert_eq!(back.len(), 8000);
        let mid = &back[1000..7000];
        assert_eq!(dominant_frequency(mid, 8000.0), 1000.0);
        assert!((tone_level(mid, 1000.0, 8000.0) - 10000.0).abs() < 400.0);
        // A-law devices of a mu-law call: transcoded, stereo A-law mixed down.
        let alaw = DeviceFormat {
            law: Some(g711::Law::ALaw),
            rate: 8000,
            channels: 2,
        };
        let mut out = OutConv::new(alaw);
        let a: Vec<u8> = out.convert(g711::Law::MuLaw, &codes[..160]).to_vec();
        assert_eq!(a.len(), 320);
        for (k, pair) in a.chunks(2).enumerate() {
            assert_eq!(pair[0], pair[1]);
            assert_eq!(
                pair[0],
                g711::Law::ALaw.encode_one(g711::Law::MuLaw.decode_one(codes[k]))
            );
        }
        let mut inc = InConv::new(alaw);
        let mut lin = VecDeque::new();
        inc.push(&a, &mut lin);
        assert_eq!(lin.len(), 160);
        // A mono mu-law device of a mu-law call: the codes as they are.
        let mu = DeviceFormat {
            law: Some(g711::Law::MuLaw),
            rate: 8000,
            channels: 1,
        };
        assert_eq!(
            OutConv::new(mu).convert(g711::Law::MuLaw, &codes),
            &codes[..]
        );
    }

    #[test]
    fn playback_fill_settles_low_when_on_time_and_grows_when_late() {
        // Periods of 80 frames at 8 kHz, buffer_ms 2 periods, a ring of 32.
        let t0 = Instant::now();
        let mut f = Fill::new(80, 8000, 160, 2560);
        assert_eq!(f.target, 800, "starts at 100 ms");
        // A look every period, the device losing a period between top-ups
        // (more when a look comes late): `late_ms` late every `late_every`.
        let mut t = t0;
        let run = |f: &mut Fill, t: &mut Instant, secs: u64, late_every: u64, late_ms: u64| {
            for k in 0..(secs * 100) {
                let late = if late_every > 0 && k % late_every == late_every - 1 {
                    late_ms
                } else {
                    0
                };
                *t += Duration::from_millis(10 + late);
                let drop = 80 + late as i64 * 8;
                f.observe((f.target - drop).max(0), drop, *t);
            }
        };
        // On time (a start-up that keeps time is an ordinary window):
        // after the first two 2 s windows straight to what a period's drop
        // needs (a period and a half), which buffer_ms raises to two; not
        // after one.
        run(&mut f, &mut t, 3, 0, 0);
        assert_eq!(f.target, 800, "one window is not enough");
        run(&mut f, &mut t, 2, 0, 0);
        assert_eq!(f.target, 160);
        // A look that misses a tick now and then (TCG): the drop of two
        // periods left nothing; at once to that drop and a period, then
        // down towards the drop and half a period.
        run(&mut f, &mut t, 1, 20, 10);
        assert_eq!(f.target, 240);
        run(&mut f, &mut t, 30, 20, 10);
        assert!((200..240).contains(&f.target), "{}", f.target);
        // One look 30 ms late (a drop of 320 frames): at once to that and a
        // period; no descent below what it needed for the 20 s the windows
        // remember it, then down again.
        run(&mut f, &mut t, 10, 0, 0);
        f.observe((f.target - 320).max(0), 320, t + Duration::from_millis(40));
        t += Duration::from_millis(40);
        assert_eq!(f.target, 400);
        run(&mut f, &mut t, 18, 0, 0);
        assert!(f.target >= 360, "{}", f.target);
        run(&mut f, &mut t, 30, 0, 0);
        assert!(f.target < 360, "{}", f.target);
        // A look 45 ms late now and then (a drop of 440 frames): at once
        // that and a period, then it settles above the drop and half a
        // period.
        run(&mut f, &mut t, 1, 50, 45);
        assert_eq!(f.target, 520);
        run(&mut f, &mut t, 30, 50, 45);
        assert!((480..520).contains(&f.target), "{}", f.target);
        // 300 ms stalls: up to the ring, never beyond.
        run(&mut f, &mut t, 5, 100, 300);
        assert_eq!(f.target, 2560);
        // Calm again: back down to buffer_ms.
        run(&mut f, &mut t, 60, 0, 0);
        assert_eq!(f.target, 160);
        // Once settled, an underrun 120 ms after the last look covers
        // 120 ms and a period.
        let mut g = Fill::new(80, 8000, 160, 2560);
        run(&mut g, &mut t, 10, 0, 0);
        assert!(g.settled && g.target < 800, "{}", g.target);
        g.observe(720, 80, t);
        g.underrun(t + Duration::from_millis(200));
        assert_eq!(g.target, 1680);
        // Calm after it: no descent below that for 30 s, then down again.
        let mut t = t + Duration::from_millis(200);
        run(&mut g, &mut t, 28, 0, 0);
        assert_eq!(g.target, 1680, "held for 30 s after the underrun");
        run(&mut g, &mut t, 10, 0, 0);
        assert!(g.target < 1680, "{}", g.target);
        // buffer_ms below 2 periods is raised; a small ring caps everything.
        assert_eq!(Fill::new(80, 8000, 80, 2560).min, 160);
        assert_eq!(Fill::new(80, 8000, 160, 400).target, 400);
    }

    #[test]
    fn an_underrun_at_start_up_does_not_hold_the_fill_for_the_call() {
        // The emulated board: 136 ms between the first looks of a call
        // (the devices starting, the canceller's first frames) underran a
        // device started at 100 ms; after that the looks need 20-25 ms.
        let t0 = Instant::now();
        let mut f = Fill::new(80, 8000, 160, 2560);
        f.observe(800, 0, t0);
        f.underrun(t0 + Duration::from_millis(136));
        assert_eq!(f.target, 1168, "up at once to the gap and a period");
        let mut t = t0 + Duration::from_millis(136);
        // Looks 20-25 ms apart (drops of 160-200 frames) for 8.5 s: the
        // first descent comes after two calm windows after the start-up
        // one, straight to what they needed, as without the underrun.
        for k in 0..400u32 {
            let ms = if k % 4 == 3 { 25 } else { 20 };
            t += Duration::from_millis(ms);
            let drop = i64::from(ms as u32) * 8;
            f.observe((f.target - drop).max(0), drop, t);
        }
        assert_eq!(f.target, 240, "the 25 ms looks and half a period");
        assert!(f.floor.is_none());
        // Settled now: an underrun sets the floor for 30 s as before.
        f.underrun(t + Duration::from_millis(60));
        assert_eq!(f.target, 560);
        assert_eq!(f.floor.map(|(v, _)| v), Some(560));
    }

    #[test]
    fn a_late_look_at_start_up_is_not_a_need_the_descents_remember() {
        // The emulated board: one look 92 ms after the last, 100 ms into
        // the call (the devices starting, the canceller's first frames), then
        // looks 20-25 ms apart.
        let t0 = Instant::now();
        let mut f = Fill::new(80, 8000, 160, 2560);
        let mut t = t0;
        let look = |f: &mut Fill, t: &mut Instant, ms: u64| {
            *t += Duration::from_millis(ms);
            let drop = ms as i64 * 8;
            f.observe((f.target - drop).max(0), drop, *t);
        };
        for _ in 0..5 {
            look(&mut f, &mut t, 20);
        }
        look(&mut f, &mut t, 92);
        assert_eq!(f.target, 800, "the 100 ms the fill starts at covered it");
        for k in 0..320u32 {
            look(&mut f, &mut t, if k % 4 == 3 { 25 } else { 20 });
        }
        // 7 s: the start-up window and two calm windows after it, straight
        // down to what the looks after the start needed.
        assert_eq!(f.target, 240);
        // The same look 2.2 s into the call is the engine's: it is
        // remembered (no descent below it for 20 s).
        let mut g = Fill::new(80, 8000, 160, 2560);
        let mut t = t0;
        for _ in 0..110 {
            look(&mut g, &mut t, 20);
        }
        look(&mut g, &mut t, 92);
        for k in 0..320u32 {
            look(&mut g, &mut t, if k % 4 == 3 { 25 } else { 20 });
        }
        assert_eq!(g.target, 776, "the 92 ms look and half a period");
    }

    #[test]
    fn looks_timed_by_the_device_clock_are_never_immediate() {
        let t = Instant::now();
        // 80 samples missing: 10 ms of the device's clock.
        assert_eq!(device_clock_look(t, 80), t + Duration::from_millis(10));
        // Almost there, there already, or a device ahead of its target:
        // a millisecond at least, so a look that finds nothing new cannot
        // spin.
        assert_eq!(device_clock_look(t, 1), t + MIN_LOOK);
        assert_eq!(device_clock_look(t, 0), t + MIN_LOOK);
        assert_eq!(device_clock_look(t, -400), t + MIN_LOOK);
    }

    #[test]
    fn playback_fill_first_descent_covers_a_late_look_of_its_second_window() {
        // A late engine (TCG): drops of up to 21 ms in the first window,
        // one of 36 ms in the second. The first descent covers that one
        // (the drop and half a period), where a descent after the first
        // window alone would have gone to 26 ms and underrun on it.
        let t0 = Instant::now();
        let mut f = Fill::new(80, 8000, 160, 2560);
        let mut t = t0;
        for k in 0..400u32 {
            let late: u32 = match k {
                50 | 150 => 11,
                250 => 26,
                _ => 0,
            };
            t += Duration::from_millis(10 + u64::from(late));
            let drop = 80 + i64::from(late) * 8;
            f.observe(f.target - drop, drop, t);
        }
        assert_eq!(f.target, 288 + 40, "{}", f.target);
        // A look as late as that one again leaves half a period.
        let drop = 288;
        assert!(f.target - drop >= 40);
        // A look 80 ms late every 1.5 s: every window sees one, and no
        // descent goes below what it needs.
        let mut g = Fill::new(80, 8000, 160, 2560);
        let mut t = t0;
        for k in 0..1000u32 {
            let late: u32 = if k % 150 == 149 { 80 } else { 0 };
            t += Duration::from_millis(10 + u64::from(late));
            let drop = 80 + i64::from(late) * 8;
            g.observe((g.target - drop).max(0), drop, t);
        }
        assert!(g.target >= 720 + 40, "{}", g.target);
    }

    #[test]
    fn wav_capture_accepts_other_rates_channels_and_formats() {
        let dir = std::env::temp_dir().join(format!("voipbridge-wav-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        // 16 kHz stereo 16-bit, and 44.1 kHz mono float: 1 kHz tones at half scale.
        let cases = [
            (16000u32, 2u16, hound::SampleFormat::Int, 16u16),
            (44100, 1, hound::SampleFormat::Float, 32),
            (8000, 1, hound::SampleFormat::Int, 24),
        ];
        for (rate, channels, format, bits) in cases {
            let path = dir.join(format!("t{rate}.wav"));
            let spec = hound::WavSpec {
                channels,
                sample_rate: rate,
                bits_per_sample: bits,
                sample_format: format,
            };
            let mut w = hound::WavWriter::create(&path, spec).unwrap();
            for k in 0..rate {
                let v = 0.5 * (2.0 * PI * 1000.0 * f64::from(k) / f64::from(rate)).sin();
                for _ in 0..channels {
                    match format {
                        hound::SampleFormat::Float => w.write_sample(v as f32).unwrap(),
                        hound::SampleFormat::Int => {
                            let full = f64::from((1i32 << (bits - 1)) - 1);
                            w.write_sample((v * full) as i32).unwrap()
                        }
                    }
                }
            }
            w.finalize().unwrap();
            let x = load_wav(path.to_str().unwrap()).unwrap();
            assert!(x.len().abs_diff(8000) < 100, "{rate}: {}", x.len());
            let mid = &x[1000..7000];
            assert_eq!(dominant_frequency(mid, 8000.0), 1000.0, "{rate}");
            let l = tone_level(mid, 1000.0, 8000.0);
            assert!((l - 16383.0).abs() < 400.0, "{rate}: {l}");
        }
        assert!(matches!(
            load_wav("/nonexistent.wav"),
            Err(MediaError::Device(..))
        ));
    }

    #[test]
    fn missing_device_is_a_clear_error() {
        alsa_dir();
        match open_alsa_playback("vb_no_such_pcm", Codec::Pcmu, DEV) {
            Err(MediaError::Device(name, _)) => assert_eq!(name, "vb_no_such_pcm"),
            Err(e) => panic!("{e}"),
            Ok(_) => panic!("opened a PCM that does not exist"),
        }
    }
}
