//! Capture-side audio processing: acoustic echo cancellation (and optional
//! noise suppression) between the card's playback and capture, for a
//! board whose speaker and microphone share an enclosure.
//!
//! The canceller is [`snd_voip_aec::EchoCanceller`] (WebRTC AEC3, the
//! pure-Rust port; see `aec/README.md` for why). [`CaptureProcessor`] is
//! what the media engine's capture hook drives, per call:
//!
//! * [`CaptureProcessor::reference`] with what was written to the playback
//!   device, in order, as it is written;
//! * [`CaptureProcessor::process`] with each block read from the capture
//!   device, cleaned in place, and both devices' `snd_pcm_delay()` measured
//!   around that read: on snd-voip they include the RTOS rings, so the
//!   reference is aligned to the frame (`snd_voip_aec::align`).
//!
//! `[audio] echo_cancel = "auto"` (the default) turns it on when capture
//! and playback are the same `hw:VoIP,0,n` (or `plughw:`) device and that
//! substream's `Capture Source` and `Playback Sink` controls route it to
//! the RTOS microphone and speaker: then the far end's voice comes back
//! from the board's own speaker. On the bridge side (`hw:VoIP,1,n`, an
//! application's audio) there is no acoustic path and nothing to cancel.

use std::fmt;
use std::str::FromStr;
use std::time::Instant;

use serde::Serialize;
#[cfg(feature = "aec")]
use snd_voip_aec::{Config, EchoCanceller};

use crate::media::hooks::ProcessorFactory;
#[cfg(feature = "aec")]
use crate::media::hooks::{AudioProcessor, DeviceTiming};
use crate::media::AudioSpec;

/// The rate the media engine hands its processors (the calls' G.711 rate).
pub const RATE: u32 = 8000;

/// `[audio] echo_cancel`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum EchoMode {
    /// On when capture and playback are one RTOS-routed card device.
    Auto,
    /// Always on (any capture and playback: a USB headset's own path, a
    /// loop through another card).
    On,
    /// Never.
    Off,
}

impl FromStr for EchoMode {
    type Err = String;
    fn from_str(s: &str) -> Result<EchoMode, String> {
        match s {
            "auto" => Ok(EchoMode::Auto),
            "true" | "on" => Ok(EchoMode::On),
            "false" | "off" => Ok(EchoMode::Off),
            _ => Err(format!("'{s}' is not true, false or \"auto\"")),
        }
    }
}

impl fmt::Display for EchoMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            EchoMode::Auto => "auto",
            EchoMode::On => "true",
            EchoMode::Off => "false",
        })
    }
}

/// The `[audio]` processing settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DspSettings {
    /// `echo_cancel`.
    pub echo_cancel: EchoMode,
    /// `noise_suppression`.
    pub noise_suppression: bool,
}

impl Default for DspSettings {
    fn default() -> Self {
        DspSettings {
            echo_cancel: EchoMode::Auto,
            noise_suppression: false,
        }
    }
}

/// The card's application-side device a spec names, as (card, device,
/// substream), when it is an `alsa:hw:` or `alsa:plughw:` PCM given by
/// numbers or card id (`hw:VoIP,0,0`, `plughw:CARD=VoIP,DEV=0`).
pub fn card_device(spec: &AudioSpec) -> Option<(String, u32, u32)> {
    let AudioSpec::Alsa(pcm) = spec else {
        return None;
    };
    let rest = pcm
        .strip_prefix("hw:")
        .or_else(|| pcm.strip_prefix("plughw:"))?;
    let mut card = None;
    let mut dev = 0u32;
    let mut sub = 0u32;
    for (i, part) in rest.split(',').enumerate() {
        let (key, val) = match part.split_once('=') {
            Some((k, v)) => (Some(k), v),
            None => (None, part),
        };
        match (key, i) {
            (Some("CARD"), _) | (None, 0) => card = Some(val.to_string()),
            (Some("DEV"), _) | (None, 1) => dev = val.parse().ok()?,
            (Some("SUBDEV"), _) | (None, 2) => sub = val.parse().ok()?,
            _ => return None,
        }
    }
    Some((card?, dev, sub))
}

/// Whether `echo_cancel = "auto"` turns the canceller on for a call with
/// these devices: the same device 0 substream of a card, both routed to
/// the RTOS (`routed(card, substream)` reads the card's `Capture Source`
/// and `Playback Sink` controls).
pub fn auto_wanted(
    capture: &AudioSpec,
    playback: &AudioSpec,
    routed: impl Fn(&str, u32) -> bool,
) -> bool {
    match (card_device(capture), card_device(playback)) {
        (Some(c), Some(p)) if c == p && c.1 == 0 => routed(&c.0, c.2),
        _ => false,
    }
}

/// Reads the card's routing controls: `Capture Source` is `RTOS` and
/// `Playback Sink` is `RTOS` or `Both` for `substream` (the controls'
/// index). False when the card has no such controls (no RTOS FIFO).
pub fn card_routes_to_rtos(card: &str, substream: u32) -> bool {
    /// The selected item of an enumerated control, if the card has it.
    fn selected(card: &str, name: &str, index: u32) -> Option<u32> {
        use alsa::ctl::{Ctl, ElemId, ElemIface, ElemType, ElemValue};
        // A missing control makes elem_read fail (ENOENT): no RTOS FIFO.
        let ctl = Ctl::new(&format!("hw:{card}"), false).ok()?;
        let mut id = ElemId::new(ElemIface::Mixer);
        id.set_name(&std::ffi::CString::new(name).ok()?);
        id.set_index(index);
        let mut v = ElemValue::new(ElemType::Enumerated).ok()?;
        v.set_id(&id);
        ctl.elem_read(&mut v).ok()?;
        v.get_enumerated(0)
    }
    // The card's items (README, "The RTOS audio FIFO"): Capture Source =
    // Bridge, RTOS; Playback Sink = Bridge, RTOS, Both.
    selected(card, "Capture Source", substream) == Some(1)
        && matches!(selected(card, "Playback Sink", substream), Some(1 | 2))
}

/// Whether a call with these devices runs the echo canceller under
/// `settings` (`auto`: [`auto_wanted`] with the card's routing controls).
pub fn echo_wanted(settings: &DspSettings, capture: &AudioSpec, playback: &AudioSpec) -> bool {
    match settings.echo_cancel {
        EchoMode::On => true,
        EchoMode::Off => false,
        EchoMode::Auto => auto_wanted(capture, playback, card_routes_to_rtos),
    }
}

/// Echo canceller figures for `status`.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct EchoStats {
    /// AEC3's estimate of the echo return loss enhancement, dB.
    pub erle_db: f64,
    /// Microphone power in over out while the far end plays, dB (total
    /// echo removed; near-end speech counts against it).
    pub attenuation_db: Option<f64>,
    /// The echo path delay: the card's device delays plus what AEC3 found, ms.
    pub delay_ms: f64,
    /// The device delays the reference is aligned by, ms.
    pub device_delay_ms: f64,
    /// Noise suppression on.
    pub noise_suppression: bool,
    /// 10 ms blocks processed.
    pub blocks: u64,
}

/// Why a processor cannot run.
#[derive(Debug, thiserror::Error)]
pub enum DspError {
    /// The canceller refused the stream.
    #[cfg(feature = "aec")]
    #[error("echo canceller: {0}")]
    Aec(#[from] snd_voip_aec::AecError),
    /// This voipbridge was built without the canceller.
    #[error("this voipbridge was built without the echo canceller (cargo feature \"aec\")")]
    NotBuilt,
}

/// One call's capture processing (see the module documentation).
#[cfg(feature = "aec")]
pub struct CaptureProcessor {
    aec: EchoCanceller,
    rate: u32,
    noise_suppression: bool,
    /// Reference samples written in all.
    written: u64,
    /// The last reference block: when it was written, the device delay
    /// then (frames), its length.
    last_write: Option<(Instant, i64, usize)>,
}

/// A block's level, dBFS, to a tenth (−100 for digital silence).
#[cfg(feature = "aec")]
fn dbfs(x: &[i16]) -> f64 {
    let energy: f64 = x.iter().map(|&v| f64::from(v) * f64::from(v)).sum();
    let p = energy / (x.len().max(1) as f64) / (32768.0 * 32768.0);
    (10.0 * p.max(1e-10).log10() * 10.0).round() / 10.0
}

/// The device delay `Dp + Dc` (frames at `rate`) a capture block read at
/// `read_at` with `capture_delay` frames still in the device implies, from
/// the last reference block (written at `write_at`, `len` samples, behind
/// `playback_delay` frames): the number of reference samples written after
/// the one that was playing when the block's newest sample was captured.
///
/// The block's first reference sample leaves the speaker `playback_delay`
/// frames after `write_at`; the newest microphone sample entered the
/// device `capture_delay + 1` frames before `read_at`. So the reference
/// sample playing then is `W − len − Dp + (t_c − write_at)·rate`, and
/// `W` minus that is `len + Dp + Dc + 1 − (read_at − write_at)·rate`
/// (negative: the timings are inconsistent, and 0 is returned).
pub fn delay_from_timings(
    rate: u32,
    write_at: Instant,
    playback_delay: i64,
    len: usize,
    read_at: Instant,
    capture_delay: i64,
) -> u64 {
    let since = read_at.saturating_duration_since(write_at).as_secs_f64()
        - write_at.saturating_duration_since(read_at).as_secs_f64();
    let d =
        len as f64 + playback_delay as f64 + capture_delay as f64 + 1.0 - since * f64::from(rate);
    d.max(0.0).round() as u64
}

#[cfg(feature = "aec")]
impl CaptureProcessor {
    /// A processor for mono audio at `rate` Hz.
    pub fn new(rate: u32, noise_suppression: bool) -> Result<CaptureProcessor, DspError> {
        let mut c = Config::new(rate);
        c.noise_suppression = noise_suppression;
        Ok(CaptureProcessor {
            aec: EchoCanceller::new(&c)?,
            rate,
            noise_suppression,
            written: 0,
            last_write: None,
        })
    }

    /// A block written to the playback device at `at`, behind `delay`
    /// frames still queued there (the media engine's far-end hook).
    pub fn far_end_timed(&mut self, written: &[i16], at: Instant, delay: i64) {
        self.written += written.len() as u64;
        self.last_write = Some((at, delay.max(0), written.len()));
        self.aec.far_end(written);
    }

    /// A block read from the capture device at `at`, with `delay` frames
    /// captured after it still in the device (the media engine's capture
    /// hook), cleaned in place. Without a reference written yet, or with
    /// timings from a file or tone (delay 0 on both sides at `at`), the
    /// canceller's own estimator finds the delay.
    pub fn process_timed(&mut self, mic: &mut [i16], at: Instant, delay: i64) {
        let d = self
            .last_write
            .map(|(w_at, dp, len)| delay_from_timings(self.rate, w_at, dp, len, at, delay.max(0)));
        if !tracing::enabled!(tracing::Level::TRACE) {
            self.aec.near_end(mic, d);
            return;
        }
        // Traced (VB_LOG=voipbridge::dsp=trace on the board): each block's
        // timing, its level before and after, and what AEC3 makes of it.
        let before = dbfs(mic);
        self.aec.near_end(mic, d);
        let s = self.aec.stats();
        tracing::trace!(?d, written = self.written, capture_delay = delay, last_write = ?self.last_write.map(|(w, dp, len)| (at.saturating_duration_since(w), dp, len)), before, after = dbfs(mic), echo_delay_ms = s.echo_delay_ms, erle_db = s.erle_db, resyncs = s.resyncs, "aec timing");
    }

    /// Samples written to the playback device, in order.
    pub fn reference(&mut self, written: &[i16]) {
        self.aec.far_end(written);
    }

    /// Samples just read from the capture device, cleaned in place;
    /// `playback_delay` and `capture_delay`: the devices' `snd_pcm_delay()`
    /// in frames at this rate, when known.
    pub fn process(
        &mut self,
        mic: &mut [i16],
        playback_delay: Option<i64>,
        capture_delay: Option<i64>,
    ) {
        let delay = match (playback_delay, capture_delay) {
            (Some(p), Some(c)) if p >= 0 && c >= 0 => Some((p + c) as u64),
            _ => None,
        };
        self.aec.near_end(mic, delay);
    }

    /// A processor for the media engine's calls (8 kHz): the canceller,
    /// then noise suppression when `noise_suppression`.
    pub fn for_calls(noise_suppression: bool) -> CaptureProcessor {
        match CaptureProcessor::new(RATE, noise_suppression) {
            Ok(p) => p,
            // AEC3 runs at 8 kHz (`processor_runs_at_the_engines_rate`
            // tests this); only another rate can fail.
            Err(e) => unreachable!("{e}"),
        }
    }

    /// The sample rate.
    pub fn rate(&self) -> u32 {
        self.rate
    }

    /// Short name for `status`.
    pub fn name(&self) -> &'static str {
        if self.noise_suppression {
            "aec3+ns"
        } else {
            "aec3"
        }
    }

    /// The figures as (name, value) pairs, for a `status` that lists a
    /// processor's figures generically: `erle_db`, `attenuation_db` (when
    /// measured), `delay_ms`, `device_delay_ms`, `drift_ppm`, `resyncs`.
    pub fn stats_pairs(&self, out: &mut Vec<(String, f64)>) {
        let s = self.aec.stats();
        let r1 = |v: f64| (v * 10.0).round() / 10.0;
        out.push(("erle_db".into(), r1(s.erle_db)));
        if let Some(a) = s.attenuation_db {
            out.push(("attenuation_db".into(), r1(a)));
        }
        out.push(("delay_ms".into(), s.echo_delay_ms.round()));
        out.push(("device_delay_ms".into(), s.device_delay_ms.round()));
        out.push(("drift_ppm".into(), s.drift_ppm.round()));
        out.push(("resyncs".into(), s.resyncs as f64));
    }

    /// Figures for `status`.
    pub fn stats(&self) -> EchoStats {
        let s = self.aec.stats();
        EchoStats {
            erle_db: (s.erle_db * 10.0).round() / 10.0,
            attenuation_db: s.attenuation_db.map(|v| (v * 10.0).round() / 10.0),
            delay_ms: s.echo_delay_ms.round(),
            device_delay_ms: s.device_delay_ms.round(),
            noise_suppression: self.noise_suppression,
            blocks: s.blocks,
        }
    }
}

/// The media engine's capture hook (`media::hooks`): the engine hands the
/// processor each block written to the playback device and each block read
/// from the capture device with their [`DeviceTiming`]s, which are exactly
/// what [`CaptureProcessor::far_end_timed`] and
/// [`CaptureProcessor::process_timed`] take.
#[cfg(feature = "aec")]
impl AudioProcessor for CaptureProcessor {
    fn far_end(&mut self, pcm: &[i16], timing: DeviceTiming) {
        self.far_end_timed(pcm, timing.at, timing.delay);
    }

    fn process(&mut self, pcm: &mut [i16], timing: DeviceTiming) {
        self.process_timed(pcm, timing.at, timing.delay);
    }

    fn discontinuity(&mut self) {
        self.aec.discontinuity();
    }

    fn name(&self) -> &str {
        CaptureProcessor::name(self)
    }

    fn stats(&self, out: &mut Vec<(String, f64)>) {
        self.stats_pairs(out);
    }
}

/// The factory [`crate::media::MediaParams::processors`] takes: one fresh
/// canceller (with noise suppression when `settings` asks) per call, so
/// no call's adaptive filter ever sees another call's audio.
#[cfg(feature = "aec")]
pub fn processor_factory(settings: &DspSettings) -> ProcessorFactory {
    let ns = settings.noise_suppression;
    ProcessorFactory(std::sync::Arc::new(move || {
        Box::new(CaptureProcessor::for_calls(ns)) as Box<dyn AudioProcessor>
    }))
}

/// The capture processors of a call with these devices under `settings`
/// (empty: the capture path may pass G.711 through untouched).
/// `auto` reads the card's routing controls: call it off the async
/// runtime's threads.
pub fn processors_for(
    settings: &DspSettings,
    capture: &AudioSpec,
    playback: &AudioSpec,
) -> Vec<ProcessorFactory> {
    if !echo_wanted(settings, capture, playback) {
        return Vec::new();
    }
    #[cfg(feature = "aec")]
    return vec![processor_factory(settings)];
    // `echo_cancel = true` is refused at start without the canceller
    // (Config::settings); `auto` that would want it says so per call.
    #[cfg(not(feature = "aec"))]
    {
        tracing::warn!(
            "echo_cancel = \"auto\": capture and playback are one RTOS-routed device, but {}",
            DspError::NotBuilt
        );
        Vec::new()
    }
}

/// Whether this binary has the echo canceller (cargo feature `aec`).
pub const AEC_BUILT: bool = cfg!(feature = "aec");

#[cfg(all(test, feature = "aec"))]
mod call_tests;

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(s: &str) -> AudioSpec {
        s.parse().unwrap()
    }

    #[test]
    fn modes_parse_and_print() {
        for (s, m) in [
            ("auto", EchoMode::Auto),
            ("true", EchoMode::On),
            ("on", EchoMode::On),
            ("false", EchoMode::Off),
        ] {
            assert_eq!(s.parse::<EchoMode>().unwrap(), m);
        }
        assert!("yes".parse::<EchoMode>().is_err());
        assert_eq!(EchoMode::On.to_string(), "true");
    }

    #[test]
    fn card_devices() {
        assert_eq!(
            card_device(&spec("alsa:hw:VoIP,0,1")),
            Some(("VoIP".into(), 0, 1))
        );
        assert_eq!(
            card_device(&spec("alsa:plughw:CARD=VoIP,DEV=0")),
            Some(("VoIP".into(), 0, 0))
        );
        assert_eq!(card_device(&spec("alsa:hw:1")), Some(("1".into(), 0, 0)));
        assert_eq!(card_device(&spec("alsa:default")), None);
        assert_eq!(card_device(&spec("alsa:hw:VoIP,x")), None);
        assert_eq!(card_device(&spec("wav:/tmp/a.wav")), None);
    }

    #[test]
    fn auto_needs_one_rtos_routed_application_device() {
        let yes = |_: &str, _: u32| true;
        let no = |_: &str, _: u32| false;
        let a = spec("alsa:hw:VoIP,0,0");
        assert!(auto_wanted(&a, &a, yes));
        assert!(!auto_wanted(&a, &a, no), "routed to the bridge");
        let b = spec("alsa:hw:VoIP,1,0");
        assert!(
            !auto_wanted(&b, &b, yes),
            "the bridge side has no acoustic path"
        );
        assert!(!auto_wanted(&a, &spec("alsa:hw:VoIP,0,1"), yes));
        assert!(!auto_wanted(&a, &spec("null"), yes));
        // The substream is the controls' index.
        let s1 = spec("alsa:plughw:VoIP,0,1");
        assert!(auto_wanted(&s1, &spec("alsa:hw:VoIP,0,1"), |c, n| c
            == "VoIP"
            && n == 1));
    }

    #[test]
    fn a_card_without_the_controls_is_not_routed() {
        assert!(!card_routes_to_rtos("NoSuchCard", 0));
        let a = spec("alsa:hw:NoSuchCard,0,0");
        let s = |m| DspSettings {
            echo_cancel: m,
            noise_suppression: false,
        };
        assert!(!echo_wanted(&s(EchoMode::Auto), &a, &a));
        assert!(echo_wanted(&s(EchoMode::On), &a, &spec("null")));
        assert!(!echo_wanted(&s(EchoMode::Off), &a, &a));
    }

    #[test]
    fn device_delay_from_the_hooks_timings() {
        use std::time::Duration;
        let t0 = Instant::now();
        // 160 written at t0 behind 400 queued; read 5 ms (40 frames) later
        // with 40 frames waiting: W - playing = 160 + 400 + 40 + 1 - 40.
        let d = delay_from_timings(8000, t0, 400, 160, t0 + Duration::from_millis(5), 40);
        assert_eq!(d, 561);
        // Read before the write (another thread's order): still consistent.
        let d = delay_from_timings(8000, t0 + Duration::from_millis(5), 400, 160, t0, 40);
        assert_eq!(d, 641);
        // Inconsistent (read long after the block left): 0, not negative.
        assert_eq!(
            delay_from_timings(8000, t0, 0, 160, t0 + Duration::from_secs(1), 0),
            0
        );
    }

    #[test]
    #[cfg(feature = "aec")]
    fn processor_cancels_a_delayed_echo_with_hook_timings() {
        // The hooks' view of a steady call: each 20 ms a block is written
        // behind 400 queued frames and read back 1 ms later with 40
        // waiting: the reference playing when the newest microphone sample
        // was captured is 160 + 400 + 40 + 1 - 8 = 593 samples behind the
        // newest written; the codec and the air add 40 more.
        use std::time::Duration;
        let far = snd_voip_aec::signal::voice(6, 8000, 6.0, -20.0);
        let mut p = CaptureProcessor::new(8000, false).unwrap();
        let t0 = Instant::now();
        let (mut out, mut echo) = (Vec::new(), Vec::new());
        for (i, f) in far.chunks_exact(160).enumerate() {
            let t = t0 + Duration::from_millis(20 * i as u64);
            p.far_end_timed(f, t, 400);
            let mut mic: Vec<i16> = (0..160)
                .map(|k| {
                    let j = (i * 160 + k) as i64 - 633;
                    if j >= 0 {
                        (f64::from(far[j as usize]) * 0.316) as i16
                    } else {
                        0
                    }
                })
                .collect();
            echo.extend_from_slice(&mic);
            p.process_timed(&mut mic, t + Duration::from_millis(1), 40);
            out.extend(mic);
        }
        let pw = |x: &[i16]| x.iter().map(|&v| f64::from(v).powi(2)).sum::<f64>();
        let erle = 10.0 * (pw(&echo[16000..]) / pw(&out[16000..]).max(1.0)).log10();
        assert!(erle > 20.0, "ERLE {erle} dB");
        // 160 + 400 + 40 + 1 - 8 = 593 frames: 74 ms.
        assert_eq!(p.stats().device_delay_ms, 74.0);
        let mut v = Vec::new();
        p.stats_pairs(&mut v);
        let get = |k: &str| v.iter().find(|(n, _)| n == k).map(|x| x.1);
        assert_eq!(get("device_delay_ms"), Some(74.0));
        assert_eq!(get("drift_ppm"), Some(0.0));
        assert!(get("attenuation_db").unwrap() > 20.0, "{v:?}");
        assert_eq!(p.name(), "aec3");
    }

    #[test]
    #[cfg(feature = "aec")]
    fn processor_cancels_a_delayed_echo() {
        // The reference comes back 60 ms later, 10 dB down, with the
        // device delays reported: after 2 s the echo is 20 dB down.
        let far = snd_voip_aec::signal::voice(5, 8000, 6.0, -20.0);
        let mut p = CaptureProcessor::new(8000, false).unwrap();
        let d = 480;
        let mut out = Vec::new();
        let mut echo = Vec::new();
        for (i, f) in far.chunks_exact(160).enumerate() {
            p.reference(f);
            let mut mic: Vec<i16> = (0..160)
                .map(|k| {
                    let j = (i * 160 + k) as i64 - d;
                    if j >= 0 {
                        (f64::from(far[j as usize]) * 0.316) as i16
                    } else {
                        0
                    }
                })
                .collect();
            echo.extend_from_slice(&mic);
            p.process(&mut mic, Some(400), Some(40));
            out.extend(mic);
        }
        let pw = |x: &[i16]| x.iter().map(|&v| f64::from(v).powi(2)).sum::<f64>();
        let erle = 10.0 * (pw(&echo[16000..]) / pw(&out[16000..]).max(1.0)).log10();
        assert!(erle > 20.0, "ERLE {erle} dB");
        let s = p.stats();
        assert_eq!(s.device_delay_ms, 55.0);
        assert!(s.blocks == 600);
        assert!(s.attenuation_db.unwrap() > 20.0, "{s:?}");
    }
}
