//! Virtual time for the media engine: a card-like capture and playback
//! device clocked by the driver's `now`, a network of in-memory sockets
//! with a delay, and a driver that runs a [`Scheduler`] from one event to
//! the next (device period boundaries, packet arrivals, timers) exactly as
//! the engine thread does from one `poll(2)` to the next. Tests and
//! benchmarks use it to run hundreds of calls on one thread, deterministically
//! and faster than real time. Nothing here allocates per packet once
//! warmed up (its packet buffers are pooled), so it can also show that the
//! engine does not.

use super::audio::{CaptureDevice, DeviceInfo, Frame, PlaybackDevice};
use super::call::{CallCore, CoreConfig, MAX_DATAGRAM};
use super::engine::{CallShared, Datagrams, Pipeline, Scheduler};
use super::hooks::{AudioProcessor, DeviceTiming};
use super::report::NtpClock;
use super::{Codec, Direction, MediaError, MediaEvent};
use std::collections::VecDeque;
use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

const RATE: u64 = 8000;

fn samples_in(d: Duration) -> u64 {
    (d.as_nanos() * u128::from(RATE) / 1_000_000_000) as u64
}

fn time_of(samples: u64) -> Duration {
    Duration::from_nanos((u128::from(samples) * 1_000_000_000 / u128::from(RATE)) as u64)
}

struct Datagram {
    at: Instant,
    from: SocketAddr,
    len: usize,
    buf: Box<[u8]>,
}

struct Endpoint {
    addr: SocketAddr,
    queue: VecDeque<Datagram>,
}

struct NetState {
    now: Instant,
    delay: Duration,
    endpoints: Vec<Endpoint>,
    pool: Vec<Box<[u8]>>,
    /// Datagrams sent to an address nobody has.
    pub lost: u64,
}

/// An in-memory network: every datagram arrives `delay` after it is sent.
#[derive(Clone)]
pub struct SimNet(Arc<Mutex<NetState>>);

impl SimNet {
    /// A network whose datagrams take `delay`, starting at `now`.
    pub fn new(now: Instant, delay: Duration) -> SimNet {
        SimNet(Arc::new(Mutex::new(NetState {
            now,
            delay,
            endpoints: Vec::new(),
            pool: Vec::new(),
            lost: 0,
        })))
    }

    fn state(&self) -> std::sync::MutexGuard<'_, NetState> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A socket bound to `addr`, with room for `queue` datagrams in flight
    /// to it before the network allocates.
    pub fn socket(&self, addr: SocketAddr, queue: usize) -> SimSocket {
        let mut s = self.state();
        s.endpoints.push(Endpoint {
            addr,
            queue: VecDeque::with_capacity(queue),
        });
        for _ in 0..queue {
            s.pool.push(vec![0u8; MAX_DATAGRAM].into_boxed_slice());
        }
        SimSocket {
            net: self.clone(),
            addr,
        }
    }

    /// Sets the network's clock.
    pub fn set_now(&self, now: Instant) {
        self.state().now = now;
    }

    /// When the next datagram arrives anywhere.
    pub fn next_arrival(&self) -> Option<Instant> {
        let s = self.state();
        s.endpoints
            .iter()
            .filter_map(|e| e.queue.front().map(|d| d.at))
            .min()
    }

    /// Whether a datagram is waiting for `addr` at `now`.
    pub fn pending(&self, addr: SocketAddr, now: Instant) -> bool {
        let s = self.state();
        s.endpoints
            .iter()
            .find(|e| e.addr == addr)
            .and_then(|e| e.queue.front())
            .is_some_and(|d| d.at <= now)
    }

    /// Datagrams sent to addresses nobody has.
    pub fn lost(&self) -> u64 {
        self.state().lost
    }
}

/// A socket of a [`SimNet`].
pub struct SimSocket {
    net: SimNet,
    addr: SocketAddr,
}

impl Datagrams for SimSocket {
    fn send_to(&self, buf: &[u8], to: SocketAddr) -> io::Result<usize> {
        let mut s = self.net.state();
        let at = s.now + s.delay;
        let from = self.addr;
        let mut b = s
            .pool
            .pop()
            .unwrap_or_else(|| vec![0u8; MAX_DATAGRAM].into_boxed_slice());
        let n = buf.len().min(b.len());
        b[..n].copy_from_slice(&buf[..n]);
        match s.endpoints.iter_mut().find(|e| e.addr == to) {
            Some(e) => e.queue.push_back(Datagram {
                at,
                from,
                len: n,
                buf: b,
            }),
            None => {
                s.lost += 1;
                s.pool.push(b);
            }
        }
        Ok(n)
    }

    fn recv_from(&self, buf: &mut [u8]) -> io::Result<(usize, SocketAddr)> {
        self.recv_timed(buf).map(|(n, a, _)| (n, a))
    }

    /// Like a kernel-stamped socket: the datagram's arrival time.
    fn recv_timed(&self, buf: &mut [u8]) -> io::Result<(usize, SocketAddr, Option<Instant>)> {
        let mut s = self.net.state();
        let now = s.now;
        let e = s
            .endpoints
            .iter_mut()
            .find(|e| e.addr == self.addr)
            .ok_or_else(|| io::Error::from(io::ErrorKind::NotConnected))?;
        if e.queue.front().is_none_or(|d| d.at > now) {
            return Err(io::ErrorKind::WouldBlock.into());
        }
        let Some(d) = e.queue.pop_front() else {
            return Err(io::ErrorKind::WouldBlock.into());
        };
        let n = d.len.min(buf.len());
        buf[..n].copy_from_slice(&d.buf[..n]);
        let (from, at) = (d.from, d.at);
        s.pool.push(d.buf);
        Ok((n, from, Some(at)))
    }
}

/// What a virtual device saw, for the test to inspect.
#[derive(Debug, Default)]
pub struct Tape {
    /// Samples played (playback) in order, decoded.
    pub samples: Vec<i16>,
    /// The codes as written (playback devices running a law).
    pub codes: Vec<u8>,
    /// Underruns (playback) or overruns (capture).
    pub xruns: u64,
    /// Writes or reads.
    pub transfers: u64,
    /// Largest queued delay seen at a write, in samples.
    pub max_delay: i64,
    /// Playback: keep at most this many samples queued (the test lowers
    /// it as [`super::audio`]'s fill control does; `None`: the ring).
    pub fill_target: Option<u64>,
}

/// What a simulated microphone hears.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Signal {
    /// A sine of this frequency at -6 dBFS.
    Sine(f64),
    /// A click (one sample at 16000) every this many samples, silence between.
    Clicks(u64),
}

/// A card-like capture device: a sine (or the given codes) produced at
/// 8 kHz from `start`, available a period at a time, in a ring of
/// `ring` samples.
pub struct SimCapture {
    start: Instant,
    period: u64,
    ring: u64,
    consumed: u64,
    frame: u64,
    signal: Signal,
    law: Option<g711::Law>,
    tape: Arc<Mutex<Tape>>,
    delay: i64,
}

impl SimCapture {
    /// A device giving `signal`, as codes of `law` (or linear), periods
    /// of `period` samples, a ring of `ring`.
    pub fn new(
        start: Instant,
        signal: Signal,
        law: Option<g711::Law>,
        period: usize,
        ring: usize,
    ) -> (SimCapture, Arc<Mutex<Tape>>) {
        let tape = Arc::new(Mutex::new(Tape::default()));
        (
            SimCapture {
                start,
                period: period.max(1) as u64,
                ring: ring.max(period) as u64,
                consumed: 0,
                frame: period.max(1) as u64,
                signal,
                law,
                tape: tape.clone(),
                delay: 0,
            },
            tape,
        )
    }

    /// The sample a device of `signal` produces at index `k`.
    pub fn sample(signal: Signal, k: u64) -> i16 {
        match signal {
            Signal::Sine(hz) => {
                let phase = (hz * k as f64 / RATE as f64).fract();
                (16383.0 * (2.0 * std::f64::consts::PI * phase).sin()) as i16
            }
            Signal::Clicks(every) => {
                if k.is_multiple_of(every.max(1)) {
                    16000
                } else {
                    0
                }
            }
        }
    }

    fn produced(&self, now: Instant) -> u64 {
        samples_in(now.saturating_duration_since(self.start)) / self.period * self.period
    }
}

impl CaptureDevice for SimCapture {
    fn read_frame(&mut self, now: Instant, frame: &mut Frame) -> Result<bool, MediaError> {
        let produced = self.produced(now);
        if produced - self.consumed.min(produced) > self.ring {
            // Overrun: the oldest audio is gone.
            let mut t = self.tape.lock().unwrap_or_else(|p| p.into_inner());
            t.xruns += 1;
            self.consumed = produced - self.period;
        }
        let n = frame.codes.len() as u64;
        self.frame = n;
        if produced < self.consumed + n {
            return Ok(false);
        }
        for (i, (c, p)) in frame.codes.iter_mut().zip(frame.pcm.iter_mut()).enumerate() {
            let s = SimCapture::sample(self.signal, self.consumed + i as u64);
            *p = s;
            if let Some(l) = self.law {
                *c = l.encode_one(s);
            }
        }
        frame.law = self.law;
        self.frame = n;
        self.consumed += n;
        self.delay = (produced - self.consumed) as i64;
        self.tape
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .transfers += 1;
        Ok(true)
    }

    fn next_due(&self) -> Option<Instant> {
        // The period boundary at which the next frame is complete.
        let boundary = (self.consumed + self.frame).div_ceil(self.period) * self.period;
        Some(self.start + time_of(boundary))
    }

    fn delay(&self) -> i64 {
        self.delay
    }

    fn xruns(&self) -> u64 {
        self.tape.lock().unwrap_or_else(|p| p.into_inner()).xruns
    }

    fn info(&self) -> DeviceInfo {
        DeviceInfo {
            format: format!("sim {:?}", self.law),
            passthrough: false,
            period: self.period as usize,
            buffer: self.ring as usize,
        }
    }
}

/// A card-like playback device: starts when its ring of `ring` samples is
/// full, then plays at 8 kHz, waking the engine at each period boundary.
pub struct SimPlayback {
    period: u64,
    ring: u64,
    start: Option<Instant>,
    /// Samples written since the (re)start.
    written: u64,
    law: Option<g711::Law>,
    tape: Arc<Mutex<Tape>>,
    delay: i64,
    last_now: Instant,
}

impl SimPlayback {
    /// A device of `law` (or linear), periods of `period`, a ring of
    /// `ring`, recording into a tape with room for `capacity` samples.
    pub fn new(
        start: Instant,
        law: Option<g711::Law>,
        period: usize,
        ring: usize,
        capacity: usize,
    ) -> (SimPlayback, Arc<Mutex<Tape>>) {
        let tape = Arc::new(Mutex::new(Tape {
            samples: Vec::with_capacity(capacity),
            codes: Vec::with_capacity(capacity),
            ..Tape::default()
        }));
        (
            SimPlayback {
                period: period.max(1) as u64,
                ring: ring.max(period) as u64,
                start: None,
                written: 0,
                law,
                tape: tape.clone(),
                delay: 0,
                last_now: start,
            },
            tape,
        )
    }

    /// What the device keeps queued: the tape's fill target, at most the ring.
    fn target(&self) -> u64 {
        let t = self.tape.lock().unwrap_or_else(|p| p.into_inner());
        t.fill_target
            .unwrap_or(self.ring)
            .clamp(self.period, self.ring)
    }

    fn played(&self, now: Instant) -> u64 {
        match self.start {
            Some(s) => samples_in(now.saturating_duration_since(s)),
            None => 0,
        }
    }
}

impl PlaybackDevice for SimPlayback {
    fn wanted(&mut self, now: Instant) -> Result<usize, MediaError> {
        self.last_now = now;
        let played = self.played(now);
        if self.start.is_some() && played > self.written {
            // Underrun: the device stops; the next writes restart it.
            self.tape.lock().unwrap_or_else(|p| p.into_inner()).xruns += 1;
            self.start = None;
            self.written = 0;
            return Ok(self.ring as usize);
        }
        let fill = self.written - played;
        self.delay = fill as i64;
        let target = self.target();
        Ok((target - fill.min(target)) as usize)
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
        {
            let mut t = self.tape.lock().unwrap_or_else(|p| p.into_inner());
            t.transfers += 1;
            t.max_delay = t.max_delay.max(self.delay);
            for &c in codes {
                t.samples.push(law.decode_one(c));
                t.codes.push(match self.law {
                    Some(l) => l.transcode_one(law, c),
                    None => c,
                });
            }
        }
        self.written += codes.len() as u64;
        self.delay += codes.len() as i64;
        // It starts once it holds what it keeps queued (its fill target:
        // a whole ring unless the test set one).
        if self.start.is_none() && self.written >= self.target() {
            self.start = Some(now);
        }
        Ok(timing)
    }

    fn next_due(&self) -> Option<Instant> {
        Some(match self.start {
            // The period boundary at which a period of room opens.
            Some(s) => {
                s + time_of(
                    (self.written.saturating_sub(self.target()) / self.period + 1) * self.period,
                )
            }
            None => self.last_now,
        })
    }

    fn delay(&self) -> i64 {
        self.delay
    }

    fn fill_target(&self) -> i64 {
        self.target() as i64
    }

    fn xruns(&self) -> u64 {
        self.tape.lock().unwrap_or_else(|p| p.into_inner()).xruns
    }

    fn info(&self) -> DeviceInfo {
        DeviceInfo {
            format: format!("sim {:?}", self.law),
            passthrough: false,
            period: self.period as usize,
            buffer: self.ring as usize,
        }
    }

    fn passes(&self, law: g711::Law) -> bool {
        self.law == Some(law)
    }
}

trait TranscodeOne {
    fn transcode_one(self, from: g711::Law, c: u8) -> u8;
}

impl TranscodeOne for g711::Law {
    fn transcode_one(self, from: g711::Law, c: u8) -> u8 {
        if self == from {
            c
        } else {
            self.encode_one(from.decode_one(c))
        }
    }
}

/// One end of a simulated call.
pub struct End {
    /// Its RTP address.
    pub rtp: SocketAddr,
    /// What its capture device produced (reads).
    pub captured: Arc<Mutex<Tape>>,
    /// What its playback device played.
    pub played: Arc<Mutex<Tape>>,
    /// The shared state (counters).
    pub shared: Arc<CallShared>,
    /// Its events.
    pub events: mpsc::Receiver<MediaEvent>,
}

/// How to build one end of a simulated call.
#[derive(Clone)]
pub struct EndSpec {
    /// What its capture device produces.
    pub signal: Signal,
    /// Law the devices run (`None`: linear S16).
    pub device_law: Option<g711::Law>,
    /// Negotiated codec.
    pub codec: Codec,
    /// Device period and playback ring, in samples.
    pub period: usize,
    /// Playback ring, samples.
    pub ring: usize,
    /// Packet time, ms.
    pub ptime_ms: u32,
    /// Jitter buffer minimum, ms.
    pub jitter_min_ms: u32,
    /// Seconds of playback to keep on tape.
    pub seconds: usize,
    /// Network delay is the world's; RTP timeout, ms (0: never).
    pub rtp_timeout_ms: u32,
    /// Capture processors.
    pub processors: Vec<Arc<dyn Fn() -> Box<dyn AudioProcessor> + Send + Sync>>,
}

impl Default for EndSpec {
    fn default() -> Self {
        EndSpec {
            signal: Signal::Sine(1000.0),
            device_law: Some(g711::Law::MuLaw),
            codec: Codec::Pcmu,
            period: 80,
            ring: 160,
            ptime_ms: 20,
            jitter_min_ms: 40,
            seconds: 10,
            rtp_timeout_ms: 5000,
            processors: Vec::new(),
        }
    }
}

/// A simulated world: a network, the calls' pipelines on one scheduler,
/// a clock.
pub struct Sim {
    /// The network.
    pub net: SimNet,
    /// The engine's scheduler.
    pub sched: Scheduler,
    /// Virtual now.
    pub now: Instant,
    /// RTP and RTCP addresses of each pipeline, in the scheduler's order.
    addrs: Vec<(SocketAddr, SocketAddr)>,
    next_id: u64,
}

impl Sim {
    /// An empty world at `start`, one-way network delay `delay`.
    pub fn new(start: Instant, delay: Duration) -> Sim {
        Sim {
            net: SimNet::new(start, delay),
            sched: Scheduler::new(),
            now: start,
            addrs: Vec::new(),
            next_id: 1,
        }
    }

    /// Adds one end at `rtp` (RTCP on the next port) talking to `remote`.
    pub fn add_end(
        &mut self,
        rtp: SocketAddr,
        remote: SocketAddr,
        spec: &EndSpec,
        ssrc: u32,
    ) -> End {
        let rtcp = SocketAddr::new(rtp.ip(), rtp.port() + 1);
        let core = CallCore::new(
            CoreConfig {
                remote,
                codec: spec.codec,
                payload_type: spec.codec.payload_type(),
                ptime_ms: spec.ptime_ms,
                telephone_event_pt: Some(101),
                direction: Direction::SendRecv,
                jitter_min_ms: spec.jitter_min_ms,
                jitter_max_ms: 200,
                rtp_timeout_ms: spec.rtp_timeout_ms,
                latch: false,
            },
            self.now,
            NtpClock::new(self.now, 1 << 40),
            (ssrc, ssrc as u16, ssrc),
        );
        let (tx, events) = mpsc::channel(64);
        let processors = spec.processors.iter().map(|f| f()).collect();
        let shared = Arc::new(CallShared::new(core, processors, tx));
        let (cap, captured) = SimCapture::new(
            self.now,
            spec.signal,
            spec.device_law,
            spec.period,
            8 * spec.period,
        );
        let (play, played) = SimPlayback::new(
            self.now,
            spec.device_law,
            spec.period,
            spec.ring,
            spec.seconds * 8000 + 8000,
        );
        let p = Pipeline::new(
            shared.clone(),
            Box::new(cap),
            Box::new(play),
            Box::new(self.net.socket(rtp, 64)),
            Some(Box::new(self.net.socket(rtcp, 8))),
        );
        self.sched.add(self.next_id, p);
        self.next_id += 1;
        self.addrs.push((rtp, rtcp));
        End {
            rtp,
            captured,
            played,
            shared,
            events,
        }
    }

    /// The engine thread is not scheduled for `d` (a loaded board): time
    /// passes, the devices play and capture on, nothing is serviced.
    pub fn stall(&mut self, d: Duration) {
        self.now += d;
        self.net.set_now(self.now);
    }

    /// Runs every event up to `end`, servicing the calls that have one, as
    /// the engine thread does.
    pub fn run_until(&mut self, end: Instant) {
        let mut stuck = 0;
        loop {
            let t = match (self.sched.deadline(), self.net.next_arrival()) {
                (Some(a), Some(b)) => a.min(b),
                (Some(a), None) | (None, Some(a)) => a,
                (None, None) => break,
            };
            if t > end {
                break;
            }
            if t <= self.now {
                stuck += 1;
                assert!(
                    stuck < 100_000,
                    "the simulation does not advance at {:?}",
                    self.now
                );
            } else {
                stuck = 0;
            }
            self.now = self.now.max(t);
            self.net.set_now(self.now);
            let (net, addrs, now) = (&self.net, &self.addrs, self.now);
            self.sched.run_ready(now, |i| {
                addrs
                    .get(i)
                    .is_some_and(|(a, b)| net.pending(*a, now) || net.pending(*b, now))
            });
        }
        self.now = self.now.max(end);
        self.net.set_now(self.now);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::analysis::tone_level;
    use crate::media::hooks::DeviceTiming;

    fn addr(i: usize) -> SocketAddr {
        SocketAddr::from(([127, 0, (i / 200) as u8, 1], 20000 + 2 * (i % 200) as u16))
    }

    fn tape(t: &Arc<Mutex<Tape>>) -> std::sync::MutexGuard<'_, Tape> {
        t.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// 100 calls (200 ends) on one scheduler for 6 s of virtual time, the
    /// card's period 10 ms, ring 20 ms, 20 ms packets: every end hears its
    /// own peer's tone, nothing is lost, no device runs dry, and the
    /// scheduler services a call only when it has work.
    #[test]
    fn a_hundred_calls_share_one_thread() {
        let t0 = Instant::now();
        let mut sim = Sim::new(t0, Duration::from_millis(5));
        let mut ends = Vec::new();
        for k in 0..100 {
            let (a, b) = (addr(2 * k), addr(2 * k + 1));
            let hz = 400.0 + 25.0 * k as f64;
            let sa = EndSpec {
                signal: Signal::Sine(hz),
                seconds: 7,
                ..EndSpec::default()
            };
            let sb = EndSpec {
                signal: Signal::Sine(3100.0),
                seconds: 7,
                ..EndSpec::default()
            };
            let ea = sim.add_end(a, b, &sa, 1000 + k as u32);
            let eb = sim.add_end(b, a, &sb, 5000 + k as u32);
            ends.push((hz, ea, eb));
        }
        sim.run_until(t0 + Duration::from_secs(6));
        for (hz, a, b) in &ends {
            for e in [a, b] {
                let s = e.shared.stats();
                assert!((299..=301).contains(&s.packets_sent), "{s:?}");
                assert!(s.packets_received >= 296, "{s:?}");
                assert_eq!(
                    (s.lost, s.underruns, s.concealed, s.xruns),
                    (0, 0, 0, 0),
                    "{s:?}"
                );
                assert!(s.capture_passthrough && s.playback_passthrough, "{s:?}");
                assert_eq!(tape(&e.captured).xruns, 0);
                assert_eq!(tape(&e.played).xruns, 0);
            }
            // B heard A's own tone (no cross-talk from the 99 others); A heard 3.1 kHz.
            let heard = tape(&b.played).samples[16000..40000].to_vec();
            let l = tone_level(&heard, *hz, 8000.0);
            assert!((l - 16383.0).abs() < 400.0, "{hz} Hz at {l}");
            for other in [hz - 25.0, hz + 25.0] {
                assert!(
                    tone_level(&heard, other, 8000.0) < 200.0,
                    "{other} Hz leaks into {hz} Hz"
                );
            }
            let heard = tape(&a.played).samples[16000..40000].to_vec();
            assert!((tone_level(&heard, 3100.0, 8000.0) - 16383.0).abs() < 400.0);
        }
        // Per end and second: 100 capture periods, 100 playback periods and
        // 50 packets at most wake it; a loop that serviced every call at
        // every wake-up would do ~200 times more.
        let per_end_second = sim.sched.services as f64 / 200.0 / 6.0;
        assert!(
            per_end_second < 260.0,
            "{per_end_second} services per end-second"
        );
        assert!(per_end_second > 50.0, "{per_end_second}");
        assert_eq!(sim.net.lost(), 0);
    }

    /// Clicks through a whole call measure each leg's latency in virtual
    /// time: it stays within issue 16's budget, out: period + ptime + 5 ms,
    /// in: jitter target + period + 5 ms (plus the network's 5 ms).
    #[test]
    fn latency_stays_within_the_budget() {
        for (period, ptime) in [(80usize, 20u32), (160, 20), (80, 10), (160, 40)] {
            let t0 = Instant::now();
            let mut sim = Sim::new(t0, Duration::from_millis(5));
            let (a, b) = (addr(0), addr(1));
            let spec = EndSpec {
                signal: Signal::Clicks(4000),
                period,
                ring: 2 * period,
                ptime_ms: ptime,
                seconds: 5,
                ..EndSpec::default()
            };
            let ea = sim.add_end(a, b, &spec, 1);
            let eb = sim.add_end(
                b,
                a,
                &EndSpec {
                    signal: Signal::Sine(0.0),
                    ..spec.clone()
                },
                2,
            );
            sim.run_until(t0 + Duration::from_secs(4));
            let s = eb.shared.stats();
            assert_eq!((s.xruns, s.underruns, s.concealed), (0, 0, 0), "{s:?}");
            let played = tape(&eb.played);
            // The device started when its ring was first full; sample i of
            // the tape played at start + i/8000. Clicks left A at k*4000.
            let clicks: Vec<usize> = played
                .samples
                .iter()
                .enumerate()
                .filter(|(_, &v)| v > 8000)
                .map(|(i, _)| i)
                .collect();
            assert!(clicks.len() >= 6, "{clicks:?}");
            assert!(clicks.windows(2).all(|w| w[1] - w[0] == 4000), "{clicks:?}");
            // The tape's first sample was written when B's device started
            // (its ring full); B's and A's devices share t0 in this world.
            // B's device started at t0 (its first write filled the ring), so
            // tape sample i played at t0 + i/8000; click k left A's
            // microphone at k*4000.
            let e2e = clicks[1] as i64 - 4000;
            let e2e_ms = e2e as f64 / 8.0;
            let p_ms = period as f64 / 8.0;
            let jb_ms = f64::from(s.jitter_buffer_ms);
            let budget = (p_ms + f64::from(ptime) + 5.0) + 5.0 + (jb_ms + p_ms + 5.0);
            eprintln!(
                "period {p_ms} ms, ptime {ptime} ms: mouth to ear {e2e_ms} ms (budget {budget} ms: network 5, jitter target {jb_ms}); playback delay at writes up to {} ms",
                played.max_delay as f64 / 8.0
            );
            assert!(
                e2e_ms <= budget && e2e_ms >= f64::from(ptime) + jb_ms,
                "period {p_ms} ms, ptime {ptime}: {e2e_ms} ms end to end, budget {budget} ms"
            );
            assert!(played.max_delay <= 2 * period as i64);
            drop(played);
            let _ = ea;
        }
    }

    /// When the card and the call run the same law, the codes the far
    /// end's microphone produced reach our card bit for bit (and ours reach
    /// theirs): nothing decodes or re-encodes them. With A-law devices on a
    /// mu-law call, they are transcoded, and status says so.
    #[test]
    fn same_law_passes_codes_through_bit_exact() {
        let t0 = Instant::now();
        let mut sim = Sim::new(t0, Duration::from_millis(5));
        let (a, b) = (addr(0), addr(1));
        let spec = EndSpec {
            signal: Signal::Sine(1234.5),
            seconds: 4,
            ..EndSpec::default()
        };
        let _ea = sim.add_end(a, b, &spec, 1);
        let eb = sim.add_end(
            b,
            a,
            &EndSpec {
                signal: Signal::Sine(700.0),
                ..spec.clone()
            },
            2,
        );
        sim.run_until(t0 + Duration::from_secs(3));
        let s = eb.shared.stats();
        assert_eq!(s.drift_inserted + s.drift_dropped, 0, "{s:?}");
        assert!(s.playback_passthrough && s.capture_passthrough);
        let played = tape(&eb.played);
        let first = played.codes.iter().position(|&c| c != 0xFF).unwrap();
        let want: Vec<u8> = (0..16000u64)
            .map(|k| g711::Law::MuLaw.encode_one(SimCapture::sample(Signal::Sine(1234.5), k)))
            .collect();
        // The first code that is not silence is the source's first code that is not.
        let src_first = want.iter().position(|&c| c != 0xFF).unwrap();
        let got = &played.codes[first..first + 16000 - src_first];
        assert_eq!(got, &want[src_first..], "codes changed on the way");
        drop(played);

        // A-law cards, mu-law call: transcoded both ways, not passthrough.
        let t0 = Instant::now();
        let mut sim = Sim::new(t0, Duration::from_millis(5));
        let spec = EndSpec {
            device_law: Some(g711::Law::ALaw),
            seconds: 3,
            ..EndSpec::default()
        };
        let _ea = sim.add_end(a, b, &spec, 1);
        let eb = sim.add_end(b, a, &spec, 2);
        sim.run_until(t0 + Duration::from_secs(2));
        let s = eb.shared.stats();
        assert!(!s.playback_passthrough && !s.capture_passthrough, "{s:?}");
        let heard = tape(&eb.played).samples[4000..12000].to_vec();
        assert!((tone_level(&heard, 1000.0, 8000.0) - 16383.0).abs() < 400.0);
    }

    /// A processor that records what the hook gives it and mutes the
    /// microphone: the far-end reference is exactly what the playback
    /// device got, with its delay; the near end runs through it before
    /// encoding.
    /// Far-end samples, their delays, near-end blocks, their delays.
    type ProbeLog = Arc<Mutex<(Vec<i16>, Vec<i64>, usize, Vec<i64>)>>;

    /// The processor list of an end that runs `make()`'s probe.
    fn probed(
        make: impl Fn() -> Probe + Send + Sync + 'static,
    ) -> Vec<Arc<dyn Fn() -> Box<dyn AudioProcessor> + Send + Sync>> {
        vec![Arc::new(move || {
            Box::new(make()) as Box<dyn AudioProcessor>
        })]
    }

    #[derive(Default)]
    struct Probe {
        far: Vec<i16>,
        far_delays: Vec<i64>,
        near_blocks: usize,
        near_delays: Vec<i64>,
        log: ProbeLog,
        /// Discontinuities announced (shared with the test).
        gaps: Arc<Mutex<u32>>,
    }

    impl AudioProcessor for Probe {
        fn far_end(&mut self, pcm: &[i16], timing: DeviceTiming) {
            self.far.extend_from_slice(pcm);
            self.far_delays.push(timing.delay);
            let mut l = self.log.lock().unwrap();
            l.0.extend_from_slice(pcm);
            l.1.push(timing.delay);
        }
        fn process(&mut self, pcm: &mut [i16], timing: DeviceTiming) {
            pcm.fill(0);
            self.near_blocks += 1;
            self.near_delays.push(timing.delay);
            let mut l = self.log.lock().unwrap();
            l.2 += 1;
            l.3.push(timing.delay);
        }
        fn discontinuity(&mut self) {
            *self.gaps.lock().unwrap() += 1;
        }
        fn name(&self) -> &str {
            "probe"
        }
        fn stats(&self, out: &mut Vec<(String, f64)>) {
            out.push(("blocks".into(), self.near_blocks as f64));
        }
    }

    #[test]
    fn capture_processors_get_the_far_end_reference_and_their_delays() {
        let t0 = Instant::now();
        let mut sim = Sim::new(t0, Duration::from_millis(5));
        let (a, b) = (addr(0), addr(1));
        let log = Arc::new(Mutex::new((Vec::new(), Vec::new(), 0usize, Vec::new())));
        let l2 = log.clone();
        let spec_a = EndSpec {
            signal: Signal::Sine(600.0),
            seconds: 3,
            processors: probed(move || Probe {
                log: l2.clone(),
                ..Probe::default()
            }),
            ..EndSpec::default()
        };
        let ea = sim.add_end(a, b, &spec_a, 1);
        let eb = sim.add_end(
            b,
            a,
            &EndSpec {
                signal: Signal::Sine(900.0),
                seconds: 3,
                ..EndSpec::default()
            },
            2,
        );
        sim.run_until(t0 + Duration::from_secs(2));
        let l = log.lock().unwrap();
        // The reference is the playback tape, sample for sample.
        let played = tape(&ea.played);
        assert_eq!(l.0, played.samples);
        assert!((tone_level(&l.0[4000..12000], 900.0, 8000.0) - 16383.0).abs() < 400.0);
        // Each block went in behind what the ring held: at most the ring.
        assert!(l.1.iter().all(|&d| (0..=160).contains(&d)), "{:?}", l.1);
        assert!(l.1.iter().skip(2).any(|&d| d > 0));
        // Every captured frame went through it, with the device's delay.
        assert_eq!(l.2 as u64, tape(&ea.captured).transfers);
        assert!(l.3.iter().all(|&d| (0..80).contains(&d)), "{:?}", l.3);
        // It muted A's microphone: B hears silence, not 600 Hz.
        let heard = tape(&eb.played).samples[4000..12000].to_vec();
        assert!(tone_level(&heard, 600.0, 8000.0) < 10.0);
        let s = ea.shared.stats();
        assert_eq!(s.processing, vec!["probe".to_string()]);
        assert!(!s.capture_passthrough);
        assert_eq!(s.processing_stats[0].0, "probe.blocks");
        assert!(s.processing_stats[0].1 > 90.0);
    }

    #[test]
    fn a_stall_that_underruns_tells_the_processors() {
        let t0 = Instant::now();
        let mut sim = Sim::new(t0, Duration::from_millis(5));
        let (a, b) = (addr(0), addr(1));
        let gaps = Arc::new(Mutex::new(0u32));
        let g2 = gaps.clone();
        let spec_a = EndSpec {
            seconds: 4,
            processors: probed(move || Probe {
                gaps: g2.clone(),
                ..Probe::default()
            }),
            ..EndSpec::default()
        };
        let ea = sim.add_end(a, b, &spec_a, 1);
        let _eb = sim.add_end(
            b,
            a,
            &EndSpec {
                seconds: 4,
                ..EndSpec::default()
            },
            2,
        );
        sim.run_until(t0 + Duration::from_secs(1));
        assert_eq!(*gaps.lock().unwrap(), 0, "no xrun, nothing announced");
        // 300 ms without the engine: the playback ring runs dry and the
        // capture ring overflows.
        sim.stall(Duration::from_millis(300));
        sim.run_until(t0 + Duration::from_secs(2));
        let xruns = tape(&ea.played).xruns + tape(&ea.captured).xruns;
        assert!(xruns >= 1, "the stall caused no xrun");
        let g = *gaps.lock().unwrap();
        assert!(
            (1..=xruns as u32).contains(&g),
            "{g} announced for {xruns} xruns"
        );
    }

    #[test]
    fn a_smaller_playback_fill_does_not_park_its_audio_in_the_queue() {
        // B's device holds 100 ms, then 20 ms from 2 s: the 80 ms it no
        // longer holds must leave the playout queue too (a quiet sample
        // at a time), or the far end's voice stays as late as before.
        let t0 = Instant::now();
        let mut sim = Sim::new(t0, Duration::from_millis(5));
        let (a, b) = (addr(0), addr(1));
        let spec = EndSpec {
            ring: 800,
            seconds: 14,
            ..EndSpec::default()
        };
        let _ea = sim.add_end(a, b, &spec, 1);
        let eb = sim.add_end(b, a, &spec, 2);
        sim.run_until(t0 + Duration::from_secs(2));
        let before = eb.shared.stats().queued_ms;
        tape(&eb.played).fill_target = Some(160);
        sim.run_until(t0 + Duration::from_millis(2100));
        let parked = eb.shared.stats().queued_ms;
        // Parked (what the jitter buffer's own bound, its target and two
        // frames, did not drop whole).
        assert!(parked >= before + 30, "{parked} ms queued, {before} before");
        sim.run_until(t0 + Duration::from_secs(12));
        let s = eb.shared.stats();
        assert!(
            s.queued_ms <= before + 10,
            "{} ms queued, {before} before",
            s.queued_ms
        );
        assert_eq!(tape(&eb.played).xruns, 0);
        // Never starved: every 20 ms written from 1 s to 11 s carries the
        // tone at its level (RMS: a dropped sample shifts its phase, which
        // a one-second tone measurement would count against it).
        let t = tape(&eb.played);
        for (k, w) in t.samples[8000..88_000].chunks(160).enumerate() {
            let rms = (w.iter().map(|&v| f64::from(v).powi(2)).sum::<f64>() / 160.0).sqrt();
            assert!((rms - 11585.0).abs() < 600.0, "window {k}: RMS {rms}");
        }
    }

    /// The playout queue's level (ms), averaged over `secs` of running
    /// (it moves by a frame between a packet and a request).
    fn mean_queued(sim: &mut Sim, e: &End, secs: u64) -> f64 {
        let mut sum = 0.0;
        for _ in 0..secs * 100 {
            sim.run_until(sim.now + Duration::from_millis(10));
            sum += f64::from(e.shared.stats().queued_ms);
        }
        sum / (secs * 100) as f64
    }

    #[test]
    fn an_underrun_does_not_leave_its_latency_in_the_queue() {
        // B's engine stalls: its playback device (30 ms fill) runs dry, the
        // refill empties the playout queue and the jitter buffer starts
        // buffering again, while packets wait in the socket; a long stall
        // also looks like jitter to the jitter buffer, which raises its
        // target until that passes. What the queue then holds above its
        // level before the stall is latency the underrun added, not
        // anything the call needs: it must go, in a tone (block drops)
        // as in clicks and silence (quiet drops).
        for (signal, stall_ms, settle_s) in [
            (Signal::Sine(1000.0), 60, 2),
            (Signal::Clicks(4000), 60, 2),
            (Signal::Sine(440.0), 300, 8),
        ] {
            let t0 = Instant::now();
            let mut sim = Sim::new(t0, Duration::from_millis(5));
            let (a, b) = (addr(0), addr(1));
            let spec = EndSpec {
                ring: 800,
                seconds: 16,
                signal,
                ..EndSpec::default()
            };
            let _ea = sim.add_end(a, b, &spec, 1);
            let eb = sim.add_end(b, a, &spec, 2);
            tape(&eb.played).fill_target = Some(240);
            sim.run_until(t0 + Duration::from_secs(2));
            let before = mean_queued(&mut sim, &eb, 1);
            sim.stall(Duration::from_millis(stall_ms));
            sim.run_until(sim.now + Duration::from_millis(100));
            assert!(
                tape(&eb.played).xruns >= 1,
                "{stall_ms} ms: the stall caused no underrun"
            );
            sim.run_until(sim.now + Duration::from_secs(settle_s));
            let after = mean_queued(&mut sim, &eb, 1);
            assert!(
                after <= before + 5.0,
                "{signal:?}, {stall_ms} ms stall: {after:.1} ms queued {settle_s} s after the underrun, {before:.1} before"
            );
            assert_eq!(
                tape(&eb.played).xruns,
                1,
                "{signal:?} {stall_ms} ms: underruns"
            );
        }
    }
}
