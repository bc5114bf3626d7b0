//! The canceller in a whole call, in virtual time: the media engine's own
//! `Pipeline`s and `Scheduler` (as `media::sim` drives them) with a board
//! whose microphone hears its speaker. The far end sends a speech-like
//! voice; the board's playback device plays it into a room (a bulk delay
//! and an echo return loss), and its capture device returns the room to
//! the call. What the far end records is its own echo, unless the
//! canceller the agent wires in ([`processor_factory`]) removes it.
//!
//! The devices here behave like the card's (a period at a time, a ring
//! that underruns, `snd_pcm_delay()`-style delays), so the hook's timings
//! are what the card gives, and the canceller aligns its reference with
//! them exactly as on the board.

use super::*;
use crate::media::audio::{CaptureDevice, DeviceInfo, Frame, PlaybackDevice};
use crate::media::call::{CallCore, CoreConfig};
use crate::media::engine::{CallShared, Pipeline, Scheduler};
use crate::media::hooks::DeviceTiming;
use crate::media::report::NtpClock;
use crate::media::sim::{SimNet, SimPlayback, Tape};
use crate::media::{Codec, Direction, MediaError, MediaStats};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const FS: u64 = 8000;

fn ticks(d: Duration) -> u64 {
    (d.as_nanos() * u128::from(FS) / 1_000_000_000) as u64
}

fn at(t0: Instant, tick: u64) -> Instant {
    t0 + Duration::from_nanos(tick * 1_000_000_000 / FS)
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// The board's enclosure: what its speaker emitted, tick by tick (8 kHz
/// from `t0`), and how the microphone hears it.
struct Room {
    t0: Instant,
    /// Samples written to the speaker, in order, with the tick of their write.
    stream: Vec<(i16, u64)>,
    /// Playing runs: (tick it started, first stream index, end index or
    /// `usize::MAX` while it plays).
    runs: Vec<(u64, usize, usize)>,
    /// Air and codec delay between the speaker and the microphone, ticks,
    /// from `step_at` (tick) on `delay + step`.
    delay: u64,
    step: u64,
    step_at: u64,
    /// Linear gain of the path (the echo return loss).
    gain: f64,
    /// What the microphone hears of the room itself (near-end talker).
    near: Box<dyn Fn(u64) -> f64 + Send>,
    noise: u64,
}

impl Room {
    /// What the speaker emitted at `tick` (silence when it was not playing
    /// or the sample had not been written by then).
    fn emitted(&self, tick: u64) -> f64 {
        for &(start, first, end) in self.runs.iter().rev() {
            if tick >= start {
                let i = first + (tick - start) as usize;
                return match self.stream.get(i) {
                    Some(&(s, w)) if i < end && w <= tick => f64::from(s),
                    _ => 0.0,
                };
            }
        }
        0.0
    }

    /// The microphone's sample at `tick`.
    fn mic(&mut self, tick: u64) -> i16 {
        let d = if tick >= self.step_at {
            self.delay + self.step
        } else {
            self.delay
        };
        let echo = tick.checked_sub(d).map_or(0.0, |t| self.emitted(t)) * self.gain;
        // Seeded noise at about -70 dBFS.
        self.noise = self
            .noise
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let n = ((self.noise >> 40) as f64 / (1u64 << 24) as f64 - 0.5) * 35.0;
        (echo + (self.near)(tick) + n)
            .round()
            .clamp(-32768.0, 32767.0) as i16
    }
}

/// The board's playback device: a card-like ring of `ring` samples in
/// `period`s that starts when full and plays into the room.
struct Speaker {
    room: Arc<Mutex<Room>>,
    period: u64,
    ring: u64,
    start: Option<u64>,
    written: u64,
    delay: i64,
    last: Instant,
    xruns: u64,
}

impl PlaybackDevice for Speaker {
    fn wanted(&mut self, now: Instant) -> Result<usize, MediaError> {
        self.last = now;
        let t0 = lock(&self.room).t0;
        let tick = ticks(now.saturating_duration_since(t0));
        if let Some(s) = self.start {
            let played = tick - s;
            if played > self.written {
                // Underrun: the run ends where the written audio did.
                self.xruns += 1;
                let mut r = lock(&self.room);
                if let Some(run) = r.runs.last_mut() {
                    run.2 = run.1 + self.written as usize;
                }
                self.start = None;
                self.written = 0;
            }
        }
        let played = self.start.map_or(0, |s| tick - s);
        let fill = self.written - played;
        self.delay = fill as i64;
        Ok((self.ring - fill.min(self.ring)) as usize)
    }

    fn write_codes(
        &mut self,
        law: g711::Law,
        codes: &[u8],
        now: Instant,
    ) -> Result<DeviceTiming, MediaError> {
        let timing = DeviceTiming {
            at: now,
            delay: self.delay,
        };
        let mut r = lock(&self.room);
        let tick = ticks(now.saturating_duration_since(r.t0));
        if self.start.is_none() && self.written == 0 {
            let first = r.stream.len();
            r.runs.push((u64::MAX, first, usize::MAX));
        }
        r.stream
            .extend(codes.iter().map(|&c| (law.decode_one(c), tick)));
        self.written += codes.len() as u64;
        self.delay += codes.len() as i64;
        if self.start.is_none() && self.written >= self.ring {
            self.start = Some(tick);
            if let Some(run) = r.runs.last_mut() {
                run.0 = tick;
            }
        }
        Ok(timing)
    }

    fn next_due(&self) -> Option<Instant> {
        let t0 = lock(&self.room).t0;
        Some(match self.start {
            Some(s) => at(
                t0,
                s + (self.written.saturating_sub(self.ring) / self.period + 1) * self.period,
            ),
            None => self.last,
        })
    }

    fn delay(&self) -> i64 {
        self.delay
    }

    fn xruns(&self) -> u64 {
        self.xruns
    }

    fn info(&self) -> DeviceInfo {
        DeviceInfo {
            format: "room speaker".into(),
            passthrough: false,
            period: self.period as usize,
            buffer: self.ring as usize,
        }
    }
}

/// A card-like capture device: `period`s of whatever `sample(tick)` gives,
/// as mu-law codes, in a ring of `ring` samples.
struct Mic<F: FnMut(u64) -> i16 + Send> {
    t0: Instant,
    sample: F,
    period: u64,
    ring: u64,
    consumed: u64,
    frame: u64,
    delay: i64,
    xruns: u64,
    tape: Arc<Mutex<Vec<i16>>>,
}

impl<F: FnMut(u64) -> i16 + Send> CaptureDevice for Mic<F> {
    fn read_frame(&mut self, now: Instant, frame: &mut Frame) -> Result<bool, MediaError> {
        let produced = ticks(now.saturating_duration_since(self.t0)) / self.period * self.period;
        if produced - self.consumed.min(produced) > self.ring {
            self.xruns += 1;
            self.consumed = produced - self.period;
        }
        let n = frame.codes.len() as u64;
        self.frame = n;
        if produced < self.consumed + n {
            return Ok(false);
        }
        let mut tape = lock(&self.tape);
        for (i, c) in frame.codes.iter_mut().enumerate() {
            let s = (self.sample)(self.consumed + i as u64);
            tape.push(s);
            *c = g711::Law::MuLaw.encode_one(s);
        }
        frame.law = Some(g711::Law::MuLaw);
        self.consumed += n;
        self.delay = (produced - self.consumed) as i64;
        Ok(true)
    }

    fn next_due(&self) -> Option<Instant> {
        let boundary = (self.consumed + self.frame).div_ceil(self.period) * self.period;
        Some(at(self.t0, boundary))
    }

    fn delay(&self) -> i64 {
        self.delay
    }

    fn xruns(&self) -> u64 {
        self.xruns
    }

    fn info(&self) -> DeviceInfo {
        DeviceInfo {
            format: "room microphone".into(),
            passthrough: false,
            period: self.period as usize,
            buffer: self.ring as usize,
        }
    }
}

/// One call between the board and a far end that sends `far`, for
/// `seconds`. The board's devices: `period` samples, a playback ring of
/// `ring` (the card's ring plus the RTOS speaker ring, say); its room has
/// `air` ticks of delay (plus `step` from `step_at`) and `erl_db` of loss.
struct Call {
    seconds: u64,
    far: Vec<i16>,
    near: fn(u64) -> f64,
    period: u64,
    ring: u64,
    air: u64,
    step: u64,
    step_at: u64,
    erl_db: f64,
    echo_cancel: bool,
}

/// What a call left: what the far end heard, the board's microphone, the
/// board's figures.
struct Outcome {
    heard: Vec<i16>,
    mic: Vec<i16>,
    board: MediaStats,
    board_xruns: u64,
}

fn addr(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

fn shared(
    remote: SocketAddr,
    now: Instant,
    ssrc: u32,
    procs: &[ProcessorFactory],
) -> Arc<CallShared> {
    let core = CallCore::new(
        CoreConfig {
            remote,
            codec: Codec::Pcmu,
            payload_type: 0,
            ptime_ms: 20,
            telephone_event_pt: None,
            direction: Direction::SendRecv,
            jitter_min_ms: 40,
            jitter_max_ms: 200,
            rtp_timeout_ms: 0,
            latch: false,
        },
        now,
        NtpClock::new(now, 1 << 40),
        (ssrc, ssrc as u16, ssrc),
    );
    let (tx, _rx) = tokio::sync::mpsc::channel(64);
    let processors = procs.iter().map(|f| (f.0)()).collect();
    Arc::new(CallShared::new(core, processors, tx))
}

impl Call {
    fn run(&self) -> Outcome {
        let t0 = Instant::now();
        let net = SimNet::new(t0, Duration::from_millis(5));
        let (a, b) = (addr(20000), addr(20002));
        let procs = if self.echo_cancel {
            processors_for(
                &DspSettings {
                    echo_cancel: EchoMode::On,
                    noise_suppression: false,
                },
                &AudioSpec::Null,
                &AudioSpec::Null,
            )
        } else {
            Vec::new()
        };
        let near = self.near;
        let room = Arc::new(Mutex::new(Room {
            t0,
            stream: Vec::new(),
            runs: Vec::new(),
            delay: self.air,
            step: self.step,
            step_at: self.step_at,
            gain: 10f64.powf(-self.erl_db / 20.0),
            near: Box::new(near),
            noise: 7,
        }));
        // The board.
        let board = shared(b, t0, 1, &procs);
        let mic_tape = Arc::new(Mutex::new(Vec::new()));
        let r2 = room.clone();
        let mic = Mic {
            t0,
            sample: move |k| lock(&r2).mic(k),
            period: self.period,
            ring: 8 * self.period,
            consumed: 0,
            frame: self.period,
            delay: 0,
            xruns: 0,
            tape: mic_tape.clone(),
        };
        let speaker = Speaker {
            room: room.clone(),
            period: self.period,
            ring: self.ring,
            start: None,
            written: 0,
            delay: 0,
            last: t0,
            xruns: 0,
        };
        // The far end: sends `far`, records what it hears.
        let far_end = shared(a, t0, 2, &[]);
        let far = self.far.clone();
        let far_mic = Mic {
            t0,
            sample: move |k| far.get(k as usize).copied().unwrap_or(0),
            period: 80,
            ring: 640,
            consumed: 0,
            frame: 80,
            delay: 0,
            xruns: 0,
            tape: Arc::new(Mutex::new(Vec::new())),
        };
        let (far_play, heard) = SimPlayback::new(
            t0,
            Some(g711::Law::MuLaw),
            80,
            160,
            (self.seconds * FS) as usize + 8000,
        );
        let mut sched = Scheduler::new();
        sched.add(
            1,
            Pipeline::new(
                board.clone(),
                Box::new(mic),
                Box::new(speaker),
                Box::new(net.socket(a, 64)),
                Some(Box::new(net.socket(addr(20001), 8))),
            ),
        );
        sched.add(
            2,
            Pipeline::new(
                far_end,
                Box::new(far_mic),
                Box::new(far_play),
                Box::new(net.socket(b, 64)),
                Some(Box::new(net.socket(addr(20003), 8))),
            ),
        );
        // As media::sim::Sim::run_until: from one event to the next.
        let end = t0 + Duration::from_secs(self.seconds);
        let mut now = t0;
        let socks = [(a, addr(20001)), (b, addr(20003))];
        loop {
            let t = match (sched.deadline(), net.next_arrival()) {
                (Some(x), Some(y)) => x.min(y),
                (Some(x), None) | (None, Some(x)) => x,
                (None, None) => break,
            };
            if t > end {
                break;
            }
            now = now.max(t);
            net.set_now(now);
            sched.run_ready(now, |i| {
                socks
                    .get(i)
                    .is_some_and(|(r, c)| net.pending(*r, now) || net.pending(*c, now))
            });
        }
        let heard: Vec<i16> = lock::<Tape>(&heard).samples.clone();
        let mic = lock(&mic_tape).clone();
        let stats = board.stats();
        Outcome {
            heard,
            mic,
            board_xruns: stats.xruns,
            board: stats,
        }
    }
}

/// Mean power of `x[from..]`, excluding `notch` +- 300 Hz when given (DFT
/// bins of the whole slice).
fn power(x: &[i16], notch: Option<f64>) -> f64 {
    let x: Vec<f64> = x.iter().map(|&v| f64::from(v) / 32768.0).collect();
    let n = x.len() as f64;
    let total = x.iter().map(|v| v * v).sum::<f64>() / n;
    let Some(f0) = notch else { return total };
    // Subtract the band's power: Goertzel over the bins within 300 Hz.
    let bin = FS as f64 / n;
    let (lo, hi) = (
        ((f0 - 300.0) / bin).ceil() as usize,
        ((f0 + 300.0) / bin) as usize,
    );
    let mut band = 0.0;
    for k in lo..=hi {
        let w = 2.0 * std::f64::consts::PI * k as f64 / n;
        let (mut s1, mut s2) = (0.0, 0.0);
        for &v in &x {
            let s = v + 2.0 * w.cos() * s1 - s2;
            s2 = s1;
            s1 = s;
        }
        let re = s1 - s2 * w.cos();
        let im = s2 * w.sin();
        band += 2.0 * (re * re + im * im) / (n * n);
    }
    (total - band).max(1e-15)
}

fn db(p: f64) -> f64 {
    10.0 * p.max(1e-15).log10()
}

fn figure(s: &MediaStats, k: &str) -> f64 {
    s.processing_stats
        .iter()
        .find(|(n, _)| n == &format!("aec3.{k}"))
        .map_or(f64::NAN, |x| x.1)
}

fn silent(_: u64) -> f64 {
    0.0
}

fn voice_call(echo_cancel: bool) -> Call {
    Call {
        seconds: 10,
        far: snd_voip_aec::signal::voice(11, 8000, 12.0, -20.0),
        near: silent,
        period: 80,
        // 60 ms of playback queue: the card's ring and the RTOS speaker's.
        ring: 480,
        // 25 ms the devices do not count: the codec's buffers, the air.
        air: 200,
        step: 0,
        step_at: u64::MAX,
        erl_db: 10.0,
        echo_cancel,
    }
}

#[test]
fn a_call_with_the_canceller_sends_the_far_end_no_echo() {
    let off = voice_call(false).run();
    let on = voice_call(true).run();
    assert_eq!((off.board_xruns, on.board_xruns), (0, 0));
    // The echo is there: without the canceller the far end hears its own
    // voice ~30 dB down (voice at -20 dBFS, ERL 10 dB), and the mic heard
    // the same in both calls.
    let from = 3 * 8000;
    let echo = db(power(&off.heard[from..], None));
    assert!((-36.0..-26.0).contains(&echo), "echo {echo:.1} dBFS");
    assert!(
        (db(power(&on.mic[from..], None)) - db(power(&off.mic[from..], None))).abs() < 1.0,
        "the room differed"
    );
    // With it, the far end's own voice comes back at least 25 dB further
    // down after the first seconds (aim of issue 18: 30 dB; the noise
    // floor of -70 dBFS caps what can be measured near 40 dB).
    let left = db(power(&on.heard[from..], None));
    let erle = echo - left;
    eprintln!(
        "echo {echo:.1} dBFS, left {left:.1} dBFS, ERLE {erle:.1} dB, board {:?}",
        on.board.processing_stats
    );
    assert!(erle > 25.0, "ERLE {erle:.1} dB ({left:.1} dBFS left)");
    assert!(off.board.processing.is_empty() && off.board.capture_passthrough);
    // The board's status: the canceller, its ERLE and the echo path, which
    // is the playback queue at the write (up to 60 ms) plus the room's
    // 25 ms plus the capture queue (up to 10 ms).
    let s = &on.board;
    assert_eq!(s.processing, vec!["aec3".to_string()]);
    assert!(!s.capture_passthrough);
    assert!(figure(s, "erle_db") > 10.0, "{:?}", s.processing_stats);
    assert!(
        figure(s, "attenuation_db") > 25.0,
        "{:?}",
        s.processing_stats
    );
    // The echo path: the device delay the hooks give (the playback queue
    // at the write, 40-60 ms, plus the capture queue and the block) plus
    // the room's 25 ms, which AEC3 finds (in 4 ms steps).
    let dev = figure(s, "device_delay_ms");
    assert!((40.0..=70.0).contains(&dev), "device delay {dev} ms");
    let d = figure(s, "delay_ms");
    assert!(
        (d - (dev + 25.0)).abs() <= 8.0,
        "echo path {d} ms: {:?}",
        s.processing_stats
    );
    assert_eq!(figure(s, "drift_ppm"), 0.0);
    // status --json shows them as an object.
    let j = serde_json::to_value(s).unwrap();
    assert_eq!(j["processing_stats"]["aec3.delay_ms"].as_f64(), Some(d));
    assert_eq!(j["processing"][0], "aec3");
}

fn tone_1k(k: u64) -> f64 {
    // A near-end talker: 1 kHz at -26 dBFS (RMS) from 4 s.
    if k < 4 * FS {
        return 0.0;
    }
    0.05 * 32768.0
        * std::f64::consts::SQRT_2
        * (2.0 * std::f64::consts::PI * 1000.0 * k as f64 / FS as f64).sin()
}

#[test]
fn double_talk_keeps_the_near_end() {
    let mk = |ec| Call {
        near: tone_1k,
        ..voice_call(ec)
    };
    let (off, on) = (mk(false).run(), mk(true).run());
    let from = 5 * 8000;
    // The near end's tone reaches the far end (at most 3 dB lost) ...
    let tone = |x: &[i16]| db(power(x, None) - power(x, Some(1000.0)));
    let lost = tone(&off.heard[from..]) - tone(&on.heard[from..]);
    eprintln!("double talk: near end lost {lost:.1} dB");
    assert!(lost < 3.0, "near end lost {lost:.1} dB");
    // ... while its echo, outside the tone's band, is 20 dB down or more.
    let erle =
        db(power(&off.heard[from..], Some(1000.0))) - db(power(&on.heard[from..], Some(1000.0)));
    eprintln!("double talk: echo removed {erle:.1} dB");
    assert!(erle > 20.0, "echo removed during double talk {erle:.1} dB");
}

#[test]
fn the_echo_path_growing_by_40_ms_mid_call_is_followed() {
    // 40 ms more in the room at 5 s (nothing a device counts): the
    // canceller's own estimator finds it again.
    let mk = |ec| Call {
        seconds: 10,
        step: 320,
        step_at: 5 * FS,
        ..voice_call(ec)
    };
    let (off, on) = (mk(false).run(), mk(true).run());
    let from = 7 * 8000;
    let erle = db(power(&off.heard[from..], None)) - db(power(&on.heard[from..], None));
    assert!(erle > 20.0, "ERLE from 2 s after the step {erle:.1} dB");
    let d = figure(&on.board, "delay_ms");
    eprintln!("step: ERLE {erle:.1} dB, {:?}", on.board.processing_stats);
    let dev = figure(&on.board, "device_delay_ms");
    assert!(
        (d - (dev + 65.0)).abs() <= 8.0,
        "echo path {d} ms after the step ({dev} ms in the devices)"
    );
}
