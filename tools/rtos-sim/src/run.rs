//! The real-time M core: produces the microphone ring and consumes the
//! speaker ring at the ring's rate times (1 + ppm/1e6), paced by
//! `CLOCK_MONOTONIC` (`std::time::Instant`): each wakeup computes from the
//! elapsed time how many periods are due, so sleeping late never drifts.
//!
//! Memory ordering as ARCHITECTURE.md ("RTOS audio FIFO") states it:
//! producer: data, then `write_frames` with release; consumer: `write_frames`
//! with acquire, data, a full fence, then `read_frames` with release. The
//! simulator writes only its own lines: the producer line of the microphone
//! ring and the consumer line of the speaker ring.

use std::cell::RefCell;
use std::path::PathBuf;
use std::rc::Rc;
use std::sync::atomic::{fence, AtomicBool, Ordering};
use std::time::{Duration, Instant};

use serde::Serialize;
use snd_voip_logic::fifo::off;

use crate::echo::{EchoConfig, EchoPath, EchoSummary};
use crate::header::silence_byte;
use crate::pacing::Pace;
use crate::region::{Region, RingIo, Which};
use crate::source::{Source, SourceSpec};
use crate::wav::WavWriter;
use crate::writer::CounterStore;
use crate::SimError;

/// Longest single sleep, so a stop request is seen promptly.
const MAX_SLEEP: Duration = Duration::from_millis(10);

/// What `run` does.
#[derive(Clone, Debug)]
pub struct RunConfig {
    /// What the microphone hears.
    pub source: SourceSpec,
    /// Clock offset of the simulated codec, parts per million.
    pub ppm: f64,
    /// Stop after this long; `None`: until the stop flag is set.
    pub seconds: Option<f64>,
    /// Frames written into the microphone ring at once at start; `None`:
    /// two periods.
    pub start_fill: Option<u64>,
    /// Where the speaker ring's audio goes; `None`: discarded.
    pub out: Option<PathBuf>,
    /// How the RTOS stores its counters (a 32-bit core: two stores).
    pub store: CounterStore,
    /// The acoustic path from the speaker back into the microphone
    /// (`--echo`); `None`: the microphone hears only the source.
    pub echo: Option<EchoConfig>,
}

/// What a run did, printed as one JSON line at the end.
#[derive(Clone, Debug, Default, Serialize, PartialEq)]
pub struct Summary {
    /// Wall-clock duration of the run.
    pub seconds: f64,
    /// Clock offset used.
    pub ppm: f64,
    /// Frames published into the microphone ring.
    pub mic_frames_produced: u64,
    /// Frames the source made that did not fit (ring full), in total.
    pub mic_frames_dropped: u64,
    /// Ring-full events while Linux's consumer state is running (also in
    /// the header).
    pub mic_overruns: u32,
    /// Whether Linux was seen reading the microphone ring.
    pub mic_reader_started: bool,
    /// Lowest microphone fill seen before a write while Linux reads.
    pub mic_fill_min: Option<u64>,
    /// Highest microphone fill seen after a write while Linux reads.
    pub mic_fill_max: Option<u64>,
    /// Whether the speaker ring ever held two periods (consumption start).
    pub speaker_started: bool,
    /// Frames taken from the speaker ring.
    pub speaker_frames_consumed: u64,
    /// Frames missing when due (ring empty), written to the WAV as silence.
    pub speaker_silence_frames: u64,
    /// Ring-empty events while Linux's producer state is running (also in
    /// the header).
    pub speaker_underruns: u32,
    /// Lowest speaker fill seen after a read, once started.
    pub speaker_fill_min: Option<u64>,
    /// Highest speaker fill seen before a read, once started.
    pub speaker_fill_max: Option<u64>,
    /// Times a ring's counters were impossible (`Ring::fill` failed); the
    /// ring was left alone for that period.
    pub index_errors: u64,
    /// The speaker WAV, if any.
    pub out_wav: Option<PathBuf>,
    /// Frames in the speaker WAV (consumed plus silence).
    pub out_wav_frames: u64,
    /// The microphone write counter at the start and at the end (a run from
    /// `init --start-frames` below 2^32 shows it crossed the carry).
    pub mic_write_counter: (u64, u64),
    /// The speaker read counter at the start and at the end.
    pub speaker_read_counter: (u64, u64),
    /// The acoustic path, when `--echo` is on.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub echo: Option<EchoSummary>,
}

fn min_opt(a: Option<u64>, b: u64) -> Option<u64> {
    Some(a.map_or(b, |a| a.min(b)))
}

fn max_opt(a: Option<u64>, b: u64) -> Option<u64> {
    Some(a.map_or(b, |a| a.max(b)))
}

struct Producer<'a> {
    io: RingIo<'a>,
    pace: Pace,
    period: u64,
    start_fill: u64,
    frame_bytes: usize,
    source: Source,
    /// Our write counter (we are its only writer).
    write: u64,
    /// Linux's read counter when we started.
    read0: u64,
    /// Frames the source generated this run.
    generated: u64,
    buf: Vec<u8>,
    store: CounterStore,
    /// The acoustic path, shared with the consumer.
    echo: Option<Rc<RefCell<EchoPath>>>,
}

impl Producer<'_> {
    /// Whether Linux says it is consuming (its state word).
    fn reader_running(&self) -> bool {
        self.io.u32(off::CONSUMER_STATE).load(Ordering::Acquire) == 1
    }

    fn reader_started(&self, read: u64) -> bool {
        read != self.read0 || self.reader_running()
    }

    /// Produces everything due at `elapsed`, a period (or the start fill)
    /// at a time.
    fn step(&mut self, elapsed: Duration, s: &mut Summary) {
        let target = self.start_fill + self.pace.periods_due(elapsed, self.period);
        while self.generated < target {
            let n = if self.generated < self.start_fill {
                self.start_fill - self.generated
            } else {
                self.period.min(target - self.generated)
            };
            self.buf.clear();
            self.source.next_frames(n as usize, &mut self.buf);
            if let Some(e) = &self.echo {
                let p = self.io.ring().params;
                e.borrow_mut().add_to_mic(
                    self.generated,
                    &mut self.buf,
                    p.format,
                    p.channels as usize,
                );
            }
            let read = self.io.read_frames().load(Ordering::Acquire);
            if !s.mic_reader_started && self.reader_started(read) {
                s.mic_reader_started = true;
            }
            // A full ring is an overrun only while Linux streams; frames
            // that nobody is reading are just dropped.
            let streaming = self.reader_running();
            match self.io.ring().fill(self.write, read) {
                Err(_) => {
                    s.index_errors += 1;
                    s.mic_frames_dropped += n;
                }
                Ok(fill) => {
                    let free = self.io.ring().capacity() - fill;
                    let k = n.min(free);
                    let bytes = k as usize * self.frame_bytes;
                    self.io.put(self.write, &self.buf[..bytes]);
                    self.write += k;
                    // Data before index: the release store orders the copy.
                    self.store.publish(&self.io, off::WRITE_FRAMES, self.write);
                    s.mic_frames_produced += k;
                    if k < n {
                        s.mic_frames_dropped += n - k;
                        if streaming {
                            s.mic_overruns += 1;
                            self.io.u32(off::OVERRUNS).fetch_add(1, Ordering::Release);
                        }
                    }
                    if streaming {
                        s.mic_fill_min = min_opt(s.mic_fill_min, fill);
                        s.mic_fill_max = max_opt(s.mic_fill_max, fill + k);
                    }
                }
            }
            self.io
                .u32(off::PRODUCER_HEARTBEAT)
                .fetch_add(1, Ordering::Release);
            self.generated += n;
        }
    }

    /// When the next period is due, after start.
    fn next_due(&self) -> Duration {
        let produced = self.generated.saturating_sub(self.start_fill);
        self.pace.time_of(produced + self.period)
    }
}

struct Consumer<'a> {
    io: RingIo<'a>,
    pace: Pace,
    period: u64,
    frame_bytes: usize,
    silence: u8,
    /// Our read counter (we are its only writer).
    read: u64,
    /// When the ring first held two periods.
    start: Option<Instant>,
    /// Frames due and handled since the start (consumed or silence).
    taken: u64,
    buf: Vec<u8>,
    wav: Option<WavWriter>,
    store: CounterStore,
    /// The acoustic path, and when the run started (for the speaker's start).
    echo: Option<(Rc<RefCell<EchoPath>>, Instant)>,
}

impl Consumer<'_> {
    fn step(&mut self, now: Instant, s: &mut Summary) -> Result<(), SimError> {
        let start = match self.start {
            Some(t) => t,
            None => {
                let write = self.io.write_frames().load(Ordering::Acquire);
                match self.io.ring().fill(write, self.read) {
                    Ok(f) if f >= 2 * self.period => {
                        self.start = Some(now);
                        s.speaker_started = true;
                        if let Some((e, t0)) = &self.echo {
                            e.borrow_mut()
                                .speaker_started(now.saturating_duration_since(*t0).as_secs_f64());
                        }
                        now
                    }
                    Ok(_) => return Ok(()),
                    Err(_) => {
                        s.index_errors += 1;
                        return Ok(());
                    }
                }
            }
        };
        // Like a codec's DMA, a period is taken when it starts playing.
        let target = self.period + self.pace.periods_due(now - start, self.period);
        while self.taken < target {
            let n = self.period.min(target - self.taken);
            let write = self.io.write_frames().load(Ordering::Acquire);
            let k = match self.io.ring().fill(write, self.read) {
                Ok(fill) => {
                    let k = n.min(fill);
                    s.speaker_fill_max = max_opt(s.speaker_fill_max, fill);
                    s.speaker_fill_min = min_opt(s.speaker_fill_min, fill - k);
                    k
                }
                Err(_) => {
                    s.index_errors += 1;
                    0
                }
            };
            let bytes = k as usize * self.frame_bytes;
            self.buf.resize(n as usize * self.frame_bytes, self.silence);
            self.io.get(self.read, &mut self.buf[..bytes]);
            // Done with the frames before they are handed back.
            fence(Ordering::SeqCst);
            self.read += k;
            self.store.publish(&self.io, off::READ_FRAMES, self.read);
            s.speaker_frames_consumed += k;
            if k < n {
                self.buf[bytes..].fill(self.silence);
                s.speaker_silence_frames += n - k;
                // An empty ring is an underrun only while Linux says it
                // produces; after it stopped the ring just runs dry.
                if self.io.u32(off::PRODUCER_STATE).load(Ordering::Acquire) == 1 {
                    s.speaker_underruns += 1;
                    self.io.u32(off::UNDERRUNS).fetch_add(1, Ordering::Release);
                }
            }
            if let Some((e, _)) = &self.echo {
                let p = self.io.ring().params;
                e.borrow_mut().played_bytes(
                    self.taken,
                    &self.buf[..n as usize * self.frame_bytes],
                    p.format,
                    p.channels as usize,
                );
            }
            if let Some(w) = &mut self.wav {
                w.write(&self.buf)?;
                s.out_wav_frames += n;
            }
            self.io
                .u32(off::CONSUMER_HEARTBEAT)
                .fetch_add(1, Ordering::Release);
            self.taken += n;
        }
        Ok(())
    }

    /// When the next period is due, if started.
    fn next_due(&self) -> Option<Instant> {
        // Period k (taken = k + 1 periods) starts when k periods are due.
        self.start.map(|t| t + self.pace.time_of(self.taken))
    }
}

/// Runs the M core on `region` until `cfg.seconds` pass or `stop` is set.
/// Both rings must be valid (see [`crate::header::init`]).
pub fn run(region: &Region, cfg: &RunConfig, stop: &AtomicBool) -> Result<Summary, SimError> {
    let mic = region.ring(Which::Mic)?;
    let spk = region.ring(Which::Speaker)?;
    if !mic.ring().to_linux || spk.ring().to_linux {
        return Err(SimError::Params(
            "direction fields wrong: the first ring must be RTOS->Linux (0), the second Linux->RTOS (1)"
                .into(),
        ));
    }
    if let Some(s) = cfg.seconds {
        if !(s.is_finite() && s >= 0.0) {
            return Err(SimError::Params(format!("--seconds {s} must be >= 0")));
        }
    }
    let mic_ring = *mic.ring();
    let spk_ring = *spk.ring();
    let mic_period = u64::from(mic_ring.period_frames);
    let start_fill = cfg.start_fill.unwrap_or(2 * mic_period);
    if start_fill > mic_ring.capacity() {
        return Err(SimError::Params(format!(
            "--start-fill {start_fill} is more than the microphone ring holds ({} frames)",
            mic_ring.capacity()
        )));
    }
    let wav = match &cfg.out {
        Some(p) => Some(WavWriter::create(
            p,
            spk_ring.params.format,
            spk_ring.params.channels as u16,
            spk_ring.params.rate.get(),
        )?),
        None => None,
    };
    let mic_pace = Pace::new(mic_ring.params.rate.get(), cfg.ppm)?;
    // With an echo path, the speaker's codec clock may differ from the
    // microphone's (--echo-drift-ppm): the speaker ring is paced by it.
    let spk_ppm = cfg.ppm + cfg.echo.as_ref().map_or(0.0, |c| c.drift_ppm);
    let spk_pace = Pace::new(spk_ring.params.rate.get(), spk_ppm)?;
    let echo = match &cfg.echo {
        Some(c) => Some(Rc::new(RefCell::new(EchoPath::new(
            c,
            mic_pace.effective_rate(),
            spk_pace.effective_rate(),
            start_fill,
        )?))),
        None => None,
    };
    let mut prod = Producer {
        pace: mic_pace,
        period: mic_period,
        start_fill,
        frame_bytes: mic_ring.params.frame_bytes(),
        source: Source::new(&cfg.source, mic_ring.params)?,
        write: mic.write_frames().load(Ordering::Acquire),
        read0: mic.read_frames().load(Ordering::Acquire),
        generated: 0,
        buf: Vec::new(),
        store: cfg.store,
        echo: echo.clone(),
        io: mic,
    };
    let mut cons = Consumer {
        pace: spk_pace,
        period: u64::from(spk_ring.period_frames),
        frame_bytes: spk_ring.params.frame_bytes(),
        silence: silence_byte(spk_ring.params.format),
        read: spk.read_frames().load(Ordering::Acquire),
        start: None,
        taken: 0,
        buf: Vec::new(),
        wav,
        store: cfg.store,
        echo: None,
        io: spk,
    };
    let (mic_write0, spk_read0) = (prod.write, cons.read);
    let mut s = Summary {
        ppm: prod.pace.ppm(),
        out_wav: cfg.out.clone(),
        ..Summary::default()
    };
    prod.io.u32(off::PRODUCER_STATE).store(1, Ordering::Release);
    cons.io.u32(off::CONSUMER_STATE).store(1, Ordering::Release);
    let limit = cfg.seconds.map(Duration::from_secs_f64);
    let t0 = Instant::now();
    cons.echo = echo.clone().map(|e| (e, t0));
    let result = loop {
        let now = Instant::now();
        let elapsed = now - t0;
        if stop.load(Ordering::Relaxed) || limit.is_some_and(|l| elapsed >= l) {
            break Ok(());
        }
        prod.step(elapsed, &mut s);
        if let Err(e) = cons.step(now, &mut s) {
            break Err(e);
        }
        let mut wake = t0 + prod.next_due();
        if let Some(t) = cons.next_due() {
            wake = wake.min(t);
        }
        if let Some(l) = limit {
            wake = wake.min(t0 + l);
        }
        let now = Instant::now();
        std::thread::sleep(wake.saturating_duration_since(now).min(MAX_SLEEP));
    };
    prod.io.u32(off::PRODUCER_STATE).store(0, Ordering::Release);
    cons.io.u32(off::CONSUMER_STATE).store(0, Ordering::Release);
    s.seconds = t0.elapsed().as_secs_f64();
    s.mic_write_counter = (mic_write0, prod.write);
    s.speaker_read_counter = (spk_read0, cons.read);
    s.echo = echo.map(|e| e.borrow().summary());
    if let Some(w) = cons.wav.take() {
        w.finish()?;
    }
    result.map(|()| s)
}
