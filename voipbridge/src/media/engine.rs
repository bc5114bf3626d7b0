//! The media engine: one thread that runs the media of every call.
//!
//! Each call is a [`Pipeline`]: its capture and playback devices, its RTP
//! and RTCP sockets, its [`CallCore`] and its capture processors. The
//! engine thread waits in `poll(2)` on the PCM poll descriptors
//! (`avail_min` is one period, so a device wakes it once per period), the
//! sockets and a waker, with a timeout at the earliest deadline of any call
//! (timer-paced files and tones, RTCP, the RTP timeout, a watchdog per
//! device). It then services the calls that have something to do — and
//! only those — without ever blocking: it reads every whole frame the
//! capture device has, processes, encodes (or passes through) and sends
//! it; it drains the sockets into the cores; it tops the playback ring up
//! from the jitter buffer; it runs the timers. The sans-IO part of this
//! loop, [`Scheduler`], is the same code that the virtual-time tests drive
//! (see [`super::sim`]).
//!
//! Locking: a call's core, processors and device figures sit behind one
//! mutex ([`CallShared`]), taken once per service of the call by the
//! engine and briefly by the API ([`super::MediaHandle`]: `stats`,
//! `update`, `send_dtmf`); devices and sockets belong to the engine alone.
//! Nothing on the engine's path allocates in the steady state.
//!
//! A device whose poll descriptors keep firing without data (some ALSA
//! plugins) is taken out of the poll set after [`MAX_IDLE_WAKES`] empty
//! wake-ups in a row and serviced on a timer of half its period instead.

use super::audio::{CaptureDevice, DeviceInfo, Frame, PlaybackDevice};
use super::call::{CallCore, Channel, Outbox, MAX_DATAGRAM};
use super::hooks::{AudioProcessor, DeviceTiming};
use super::{MediaError, MediaEvent, MediaStats};
use alsa::poll::pollfd;
use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use std::sync::{mpsc as std_mpsc, Arc, Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, oneshot};

/// Datagrams read from one socket per service (a flood cannot hold the
/// engine on one call; the rest is read at the next pass).
const MAX_RX: usize = 64;
/// Frames read or written per device per service.
const MAX_FRAMES: usize = 16;
/// Empty wake-ups in a row before a device's descriptors are dropped from
/// the poll set.
pub const MAX_IDLE_WAKES: u32 = 200;

/// What a wake-up asks of a call: its devices (and timers).
pub const DEVICES: u8 = 1;
/// Its RTP socket.
pub const RTP: u8 = 2;
/// Its RTCP socket.
pub const RTCP: u8 = 4;

/// A datagram socket, as the engine uses it (non-blocking).
pub trait Datagrams: Send {
    /// Sends one datagram.
    fn send_to(&self, buf: &[u8], to: SocketAddr) -> io::Result<usize>;
    /// Receives one datagram (`WouldBlock` when there is none).
    fn recv_from(&self, buf: &mut [u8]) -> io::Result<(usize, SocketAddr)>;
    /// [`recv_from`](Self::recv_from), and when the datagram arrived where
    /// the socket knows it (the kernel's receive time:
    /// [`super::rxtime::TimedUdp`]); `None`: only the read time is known.
    fn recv_timed(&self, buf: &mut [u8]) -> io::Result<(usize, SocketAddr, Option<Instant>)> {
        self.recv_from(buf).map(|(n, a)| (n, a, None))
    }
    /// The descriptor to poll, if any.
    fn raw_fd(&self) -> Option<RawFd> {
        None
    }
}

impl Datagrams for UdpSocket {
    fn send_to(&self, buf: &[u8], to: SocketAddr) -> io::Result<usize> {
        UdpSocket::send_to(self, buf, to)
    }
    fn recv_from(&self, buf: &mut [u8]) -> io::Result<(usize, SocketAddr)> {
        UdpSocket::recv_from(self, buf)
    }
    fn raw_fd(&self) -> Option<RawFd> {
        Some(self.as_raw_fd())
    }
}

/// What the API side of a call shares with the engine.
pub struct CallShared {
    /// Core, processors and device figures.
    pub inner: Mutex<Inner>,
    events: mpsc::Sender<MediaEvent>,
}

/// The part of a call behind its mutex.
pub struct Inner {
    /// The call's media state machine.
    pub core: CallCore,
    /// Capture processors, in order.
    pub processors: Vec<Box<dyn AudioProcessor>>,
    capture: DeviceInfo,
    playback: DeviceInfo,
    capture_passthrough: bool,
    capture_delay: i64,
    playback_delay: i64,
    capture_delay_mean: Option<f64>,
    playback_delay_mean: Option<f64>,
    playback_target: i64,
    xruns: u64,
    playback_xruns: u64,
    send_errors: u64,
    /// The audio devices failed: the call's audio has stopped.
    pub failed: bool,
}

/// Locks a mutex, taking the data of a poisoned one (a panic elsewhere
/// must not stop the media of every call).
pub fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl CallShared {
    /// A call's shared state; events go to `events`.
    pub fn new(
        core: CallCore,
        processors: Vec<Box<dyn AudioProcessor>>,
        events: mpsc::Sender<MediaEvent>,
    ) -> CallShared {
        CallShared {
            inner: Mutex::new(Inner {
                core,
                processors,
                capture: DeviceInfo::default(),
                playback: DeviceInfo::default(),
                capture_passthrough: false,
                capture_delay: 0,
                playback_delay: 0,
                capture_delay_mean: None,
                playback_delay_mean: None,
                playback_target: 0,
                xruns: 0,
                playback_xruns: 0,
                send_errors: 0,
                failed: false,
            }),
            events,
        }
    }

    /// The call's counters, devices included.
    pub fn stats(&self) -> MediaStats {
        let inner = lock(&self.inner);
        let mut s = inner.core.stats();
        let ms = |frames: i64| frames as f64 * 1000.0 / f64::from(super::call::RATE);
        s.capture_format = inner.capture.format.clone();
        s.playback_format = inner.playback.format.clone();
        s.capture_passthrough = inner.capture_passthrough;
        s.playback_passthrough = inner.playback.passthrough;
        s.device_period_ms = ms(inner.capture.period.max(inner.playback.period) as i64);
        s.device_buffer_ms = ms(if inner.playback_target > 0 {
            inner.playback_target
        } else {
            inner.playback.buffer as i64
        });
        s.capture_delay_ms = ms(inner.capture_delay);
        s.playback_delay_ms = ms(inner.playback_delay);
        s.capture_delay_mean_ms = inner.capture_delay_mean;
        s.playback_delay_mean_ms = inner.playback_delay_mean;
        s.xruns = inner.xruns;
        s.processing = inner
            .processors
            .iter()
            .map(|p| p.name().to_string())
            .collect();
        let mut figures = Vec::new();
        for p in &inner.processors {
            let mut f = Vec::new();
            p.stats(&mut f);
            figures.extend(f.into_iter().map(|(k, v)| (format!("{}.{k}", p.name()), v)));
        }
        s.processing_stats = figures;
        s
    }
}

/// One call's media as the engine runs it.
pub struct Pipeline {
    shared: Arc<CallShared>,
    capture: Box<dyn CaptureDevice>,
    playback: Box<dyn PlaybackDevice>,
    rtp: Box<dyn Datagrams>,
    rtcp: Option<Box<dyn Datagrams>>,
    law: g711::Law,
    outbox: Outbox,
    frame: Frame,
    play_codes: Vec<u8>,
    play_pcm: Vec<i16>,
    recv: Box<[u8]>,
    failed: bool,
    core_timeout: Instant,
    /// Poll the devices' descriptors (false: serviced on a timer).
    poll_devices: bool,
    idle_wakes: u32,
    fallback_tick: Duration,
    last_service: Instant,
}

impl Pipeline {
    /// A call's pipeline over opened devices and sockets.
    pub fn new(
        shared: Arc<CallShared>,
        capture: Box<dyn CaptureDevice>,
        playback: Box<dyn PlaybackDevice>,
        rtp: Box<dyn Datagrams>,
        rtcp: Option<Box<dyn Datagrams>>,
    ) -> Pipeline {
        let (law, frame, core_timeout) = {
            let mut inner = lock(&shared.inner);
            inner.capture = capture.info();
            inner.playback = playback.info();
            inner.playback.passthrough = playback.passes(inner.core.codec().law());
            (
                inner.core.codec().law(),
                inner.core.frame(),
                inner.core.next_timeout(),
            )
        };
        let period = capture.info().period.max(playback.info().period).max(frame);
        // Room for the largest write the playback device can ask for.
        let chunk = 4 * playback.info().buffer.max(frame) + 4 * frame;
        let now = Instant::now();
        Pipeline {
            shared,
            capture,
            playback,
            rtp,
            rtcp,
            law,
            outbox: Outbox::new(),
            frame: Frame::new(frame),
            play_codes: vec![0; chunk],
            play_pcm: vec![0; chunk],
            recv: vec![0u8; MAX_DATAGRAM].into_boxed_slice(),
            failed: false,
            core_timeout,
            poll_devices: true,
            idle_wakes: 0,
            fallback_tick: Duration::from_micros(period as u64 * 1_000_000 / 8000 / 2),
            last_service: now,
        }
    }

    /// The call's shared state.
    pub fn shared(&self) -> &Arc<CallShared> {
        &self.shared
    }

    /// The earliest time this call needs servicing without a poll event.
    pub fn deadline(&self) -> Instant {
        let mut t = self.core_timeout;
        if !self.failed {
            for d in [self.capture.next_due(), self.playback.next_due()]
                .into_iter()
                .flatten()
            {
                t = t.min(d);
            }
            if !self.poll_devices {
                t = t.min(self.last_service + self.fallback_tick);
            }
        }
        t
    }

    /// The descriptors to poll for this call, each with what it wakes
    /// ([`DEVICES`], [`RTP`] or [`RTCP`]).
    fn fds(&self, out: &mut Vec<(pollfd, u8)>) {
        if self.poll_devices && !self.failed {
            out.extend(self.capture.poll_fds().into_iter().map(|f| (f, DEVICES)));
            out.extend(self.playback.poll_fds().into_iter().map(|f| (f, DEVICES)));
        }
        for (s, role) in [(Some(&self.rtp), RTP), (self.rtcp.as_ref(), RTCP)] {
            if let Some(fd) = s.and_then(|s| s.raw_fd()) {
                let f = pollfd {
                    fd,
                    events: libc::POLLIN,
                    revents: 0,
                };
                out.push((f, role));
            }
        }
    }

    fn fail(&mut self, inner: &mut Inner, what: &str, e: MediaError) {
        let msg = format!("{what}: {e}");
        tracing::error!("audio device failed, the call's audio stops: {msg}");
        self.failed = true;
        inner.failed = true;
        if self
            .shared
            .events
            .try_send(MediaEvent::DeviceError(msg))
            .is_err()
        {
            tracing::warn!("media event dropped");
        }
    }

    fn send(
        outbox: &mut Outbox,
        rtp: &dyn Datagrams,
        rtcp: Option<&dyn Datagrams>,
        inner: &mut Inner,
    ) {
        for d in outbox.iter() {
            let r = match (d.channel, rtcp) {
                (Channel::Rtp, _) => rtp.send_to(d.data(), d.to),
                (Channel::Rtcp, Some(s)) => s.send_to(d.data(), d.to),
                (Channel::Rtcp, None) => continue,
            };
            if let Err(e) = r {
                inner.send_errors += 1;
                tracing::debug!(to = %d.to, "send: {e}");
            }
        }
        outbox.clear();
    }

    /// Does everything the call has to do at `now`, without blocking.
    /// Returns whether there was anything (a frame, a datagram, a write).
    pub fn service(&mut self, now: Instant) -> bool {
        self.service_parts(now, DEVICES | RTP | RTCP)
    }

    /// [`service`](Self::service) limited to what `parts` names: a socket
    /// whose descriptor did not fire is not read (a system call saved per
    /// socket and wake-up; poll is level-triggered, so nothing waits).
    pub fn service_parts(&mut self, now: Instant, parts: u8) -> bool {
        let shared = self.shared.clone();
        let mut guard = lock(&shared.inner);
        let inner = &mut *guard;
        let mut work = false;
        self.last_service = now;
        // Receive.
        for _ in 0..if parts & RTP != 0 { MAX_RX } else { 0 } {
            match self.rtp.recv_timed(&mut self.recv) {
                Ok((n, from, at)) => {
                    work = true;
                    let data = self.recv.get_mut(..n).unwrap_or_default();
                    // When it arrived, not when the engine got to it: the
                    // jitter buffer sizes itself by the network's jitter;
                    // the engine's own lateness is the playback fill's.
                    let at = at.filter(|&t| t <= now).unwrap_or(now);
                    inner.core.on_rtp(from, data, at);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) => {
                    // ICMP port unreachable surfaces here on Linux.
                    tracing::debug!("RTP receive: {e}");
                    break;
                }
            }
        }
        if let Some(rtcp) = self.rtcp.as_ref().filter(|_| parts & RTCP != 0) {
            for _ in 0..MAX_RX {
                match rtcp.recv_from(&mut self.recv) {
                    Ok((n, from)) => {
                        work = true;
                        let data = self.recv.get_mut(..n).unwrap_or_default();
                        inner.core.on_rtcp(from, data, now);
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(e) => {
                        tracing::debug!("RTCP receive: {e}");
                        break;
                    }
                }
            }
        }
        let devices = parts & DEVICES != 0;
        if devices && !self.failed {
            // Capture: every whole frame the device has, sent at once.
            for _ in 0..MAX_FRAMES {
                match self.capture.read_frame(now, &mut self.frame) {
                    Ok(true) => {
                        work = true;
                        if inner.processors.is_empty() {
                            inner.capture_passthrough = self.frame.law == Some(self.law);
                        } else {
                            self.frame.to_linear();
                            let timing = DeviceTiming {
                                at: now,
                                delay: self.capture.delay(),
                            };
                            for p in inner.processors.iter_mut() {
                                p.process(&mut self.frame.pcm, timing);
                            }
                            inner.capture_passthrough = false;
                        }
                        self.frame.to_law(self.law);
                        inner
                            .core
                            .on_capture_codes(&self.frame.codes, now, &mut self.outbox);
                        Self::send(&mut self.outbox, &*self.rtp, self.rtcp.as_deref(), inner);
                    }
                    Ok(false) => break,
                    Err(e) => {
                        self.fail(inner, "capture", e);
                        break;
                    }
                }
            }
        }
        if devices && !self.failed {
            // Playback: top the device up from the jitter buffer.
            for _ in 0..MAX_FRAMES {
                let want = match self.playback.wanted(now) {
                    Ok(w) => w.min(self.play_codes.len()),
                    Err(e) => {
                        self.fail(inner, "playback", e);
                        break;
                    }
                };
                if want == 0 {
                    break;
                }
                work = true;
                let codes = self.play_codes.get_mut(..want).unwrap_or_default();
                inner.core.playout_codes(codes, now);
                let timing = match self.playback.write_codes(self.law, codes, now) {
                    Ok(t) => t,
                    Err(e) => {
                        self.fail(inner, "playback", e);
                        break;
                    }
                };
                if !inner.processors.is_empty() {
                    let pcm = self.play_pcm.get_mut(..want).unwrap_or_default();
                    self.law.decode(codes, pcm);
                    for p in inner.processors.iter_mut() {
                        p.far_end(pcm, timing);
                    }
                }
            }
        }
        inner.core.on_tick(now, &mut self.outbox);
        if !self.outbox.is_empty() {
            Self::send(&mut self.outbox, &*self.rtp, self.rtcp.as_deref(), inner);
        }
        self.core_timeout = inner.core.next_timeout();
        inner.capture_delay = self.capture.delay();
        inner.playback_delay = self.playback.delay();
        inner.capture_delay_mean = self.capture.delay_mean_ms();
        inner.playback_delay_mean = self.playback.delay_mean_ms();
        let target = self.playback.fill_target();
        if target < inner.playback_target {
            // A smaller device fill: the audio the device no longer holds
            // would wait in the playout queue; drop it there.
            inner
                .core
                .shed_playout((inner.playback_target - target) as usize);
        }
        inner.playback_target = target;
        let playback_xruns = self.playback.xruns();
        if playback_xruns != inner.playback_xruns {
            // An underrun: the device played nothing while packets kept
            // coming, and its refill may have emptied the jitter buffer,
            // which then buffered up to its target again. What the playout
            // queue holds above its natural level now is latency the
            // underrun added, not margin the call needs (the device's new
            // fill target is the margin): drop it, as after a descent (the
            // queue never sheds below that level, so asking for more than
            // there is costs nothing).
            inner.core.shed_playout(usize::MAX);
        }
        inner.playback_xruns = playback_xruns;
        let xruns = self.capture.xruns() + self.playback.xruns();
        if xruns != inner.xruns {
            // An underrun played silence the reference does not have, an
            // overrun lost microphone frames: the echo path jumped.
            for p in inner.processors.iter_mut() {
                p.discontinuity();
            }
        }
        inner.xruns = xruns;
        while let Some(ev) = inner.core.poll_event() {
            if let Err(e) = self.shared.events.try_send(ev) {
                tracing::warn!("media event dropped: {e}");
            }
        }
        work
    }

    /// The call's last RTCP (report and BYE); the pipeline is done.
    fn finish(&mut self, now: Instant) {
        let shared = self.shared.clone();
        let mut inner = lock(&shared.inner);
        inner.core.bye(now, &mut self.outbox);
        Self::send(
            &mut self.outbox,
            &*self.rtp,
            self.rtcp.as_deref(),
            &mut inner,
        );
    }

    /// Gives the playback device back (to be finished off the engine).
    pub fn into_playback(self) -> Box<dyn PlaybackDevice> {
        self.playback
    }
}

/// The calls the engine runs and the decisions of its loop, without I/O:
/// which calls to service, and when to wake next.
#[derive(Default)]
pub struct Scheduler {
    calls: Vec<(u64, Pipeline)>,
    /// Poll set: index 0 is the waker, then each call's descriptors.
    fds: Vec<pollfd>,
    /// For each descriptor after the waker, the index of its call and
    /// what it wakes.
    owner: Vec<(usize, u8)>,
    dirty: bool,
    ready: Vec<u8>,
    /// Services performed (for benchmarks).
    pub services: u64,
    /// Wake-ups of the loop (for benchmarks).
    pub wakeups: u64,
}

impl Scheduler {
    /// No calls.
    pub fn new() -> Scheduler {
        Scheduler::default()
    }

    /// Adds a call.
    pub fn add(&mut self, id: u64, p: Pipeline) {
        self.calls.push((id, p));
        self.dirty = true;
    }

    /// Removes a call, sending its last RTCP at `now`.
    pub fn remove(&mut self, id: u64, now: Instant) -> Option<Pipeline> {
        let i = self.calls.iter().position(|(k, _)| *k == id)?;
        let (_, mut p) = self.calls.swap_remove(i);
        p.finish(now);
        self.dirty = true;
        Some(p)
    }

    /// Calls running.
    pub fn len(&self) -> usize {
        self.calls.len()
    }

    /// Whether no call runs.
    pub fn is_empty(&self) -> bool {
        self.calls.is_empty()
    }

    /// The poll set (index 0: `waker`), rebuilt only when calls changed.
    pub fn poll_set(&mut self, waker: RawFd) -> &mut [pollfd] {
        if self.dirty || self.fds.first().map(|f| f.fd) != Some(waker) {
            self.fds.clear();
            self.owner.clear();
            self.fds.push(pollfd {
                fd: waker,
                events: libc::POLLIN,
                revents: 0,
            });
            let mut tmp = Vec::new();
            for (i, (_, p)) in self.calls.iter().enumerate() {
                tmp.clear();
                p.fds(&mut tmp);
                self.owner.extend(tmp.iter().map(|(_, role)| (i, *role)));
                self.fds.extend(tmp.iter().map(|(f, _)| *f));
            }
            self.dirty = false;
        }
        for f in self.fds.iter_mut() {
            f.revents = 0;
        }
        &mut self.fds
    }

    /// When the loop must wake at the latest.
    pub fn deadline(&self) -> Option<Instant> {
        self.calls.iter().map(|(_, p)| p.deadline()).min()
    }

    /// Services, at `now`, the calls whose descriptors fired (from the
    /// poll set's `revents`), whose deadline has passed, or every call
    /// when `all`.
    pub fn run(&mut self, now: Instant, all: bool) {
        self.wakeups += 1;
        self.ready.clear();
        self.ready
            .resize(self.calls.len(), if all { DEVICES | RTP | RTCP } else { 0 });
        for (f, &(i, role)) in self.fds.iter().skip(1).zip(&self.owner) {
            if f.revents != 0 {
                if let Some(r) = self.ready.get_mut(i) {
                    *r |= role;
                }
            }
        }
        for (i, (_, p)) in self.calls.iter_mut().enumerate() {
            let fired = self.ready.get(i).copied().unwrap_or(0);
            let by_fd = fired != 0;
            let due = p.deadline() <= now;
            if !by_fd && !due {
                continue;
            }
            // Timers and timer-paced devices are due: the devices' part.
            // Sockets without a descriptor in the set are always read.
            let mut parts = fired | if due { DEVICES } else { 0 };
            if p.rtp.raw_fd().is_none() || p.rtcp.as_ref().is_some_and(|s| s.raw_fd().is_none()) {
                parts |= RTP | RTCP;
            }
            self.services += 1;
            let work = p.service_parts(now, parts);
            if by_fd && !work && p.poll_devices {
                p.idle_wakes += 1;
                if p.idle_wakes >= MAX_IDLE_WAKES {
                    tracing::warn!(
                        "an audio device keeps waking the engine without data: servicing it on a {:?} timer instead",
                        p.fallback_tick
                    );
                    p.poll_devices = false;
                    self.dirty = true;
                }
            } else if work {
                p.idle_wakes = 0;
            }
        }
    }

    /// Services the calls whose entry in `ready` is set, or whose deadline
    /// passed (virtual-time drivers, which know readiness without poll).
    pub fn run_ready(&mut self, now: Instant, ready: impl Fn(usize) -> bool) {
        self.wakeups += 1;
        for (i, (_, p)) in self.calls.iter_mut().enumerate() {
            if ready(i) || p.deadline() <= now {
                self.services += 1;
                p.service(now);
            }
        }
    }
}

/// What the API sends the engine thread.
enum Command {
    Add(u64, Box<Pipeline>),
    Remove(u64, Option<oneshot::Sender<Box<dyn PlaybackDevice>>>),
}

/// The engine thread's mailbox.
pub struct Engine {
    tx: std_mpsc::Sender<Command>,
    waker: UnixStream,
    next_id: AtomicU64,
}

/// How the engine thread waits (for measurements; the default is the
/// event-driven loop).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Mode {
    /// poll(2) on device and socket descriptors, timeouts at deadlines.
    #[default]
    Events,
    /// No descriptors: every call serviced at this fixed interval.
    Tick(Duration),
}

static ENGINE: OnceLock<Engine> = OnceLock::new();
static MODE: OnceLock<Mode> = OnceLock::new();

/// Chooses how the engine waits; only before its first call starts
/// (returns false afterwards).
pub fn set_mode(mode: Mode) -> bool {
    MODE.set(mode).is_ok() && ENGINE.get().is_none()
}

/// `[audio] realtime_priority`: the engine thread's SCHED_FIFO priority
/// (0: normal scheduling), taken when the engine next gets a call.
static RT_PRIORITY: AtomicU8 = AtomicU8::new(0);

/// Sets the engine thread's scheduling for its next calls: SCHED_FIFO at
/// `priority` (1..=99, larger values are clamped to 99), or normal
/// scheduling with 0. The engine applies it when it is handed a call (so a
/// reloaded configuration takes effect with the next call) and logs the
/// outcome once per change: without CAP_SYS_NICE or a high enough
/// RLIMIT_RTPRIO it warns and keeps normal scheduling.
pub fn set_realtime_priority(priority: u8) {
    RT_PRIORITY.store(priority.min(99), Ordering::Relaxed);
}

/// How long a SCHED_FIFO engine may run without blocking before the kernel
/// signals the process (RLIMIT_RTTIME, soft: SIGXCPU, which ends it so a
/// supervisor restarts it; hard, a second later: SIGKILL). The engine
/// blocks in poll(2) every period: only a bug spins this long, and on a
/// single-core board a spinning real-time thread would leave the rest of
/// the system (the SIP agent, ssh) only the kernel's 5 % RT-throttling
/// share.
const RT_SPIN_LIMIT: Duration = Duration::from_secs(2);

/// Applies [`RT_PRIORITY`] to the calling (engine) thread when it changed
/// since `applied`.
fn apply_realtime(applied: &mut Option<u8>) {
    let want = RT_PRIORITY.load(Ordering::Relaxed);
    if *applied == Some(want) || (applied.is_none() && want == 0) {
        return;
    }
    *applied = Some(want);
    if want > 0 {
        guard_rt_spin();
    }
    match super::sched::set_current_thread_fifo(want) {
        Ok(()) if want > 0 => {
            tracing::info!("media engine: SCHED_FIFO priority {want} ([audio] realtime_priority)")
        }
        Ok(()) => tracing::info!("media engine: normal scheduling ([audio] realtime_priority = 0)"),
        Err(e) => tracing::warn!(
            "media engine: cannot take SCHED_FIFO priority {want}: {e}; running at normal \
             priority (give voipbridge CAP_SYS_NICE or an RLIMIT_RTPRIO of at least {want}, \
             e.g. systemd LimitRTPRIO={want})"
        ),
    }
}

/// Sets the process's RLIMIT_RTTIME to [`RT_SPIN_LIMIT`] unless a limit
/// (an administrator's, or ours) is there already.
fn guard_rt_spin() {
    use nix::sys::resource::{getrlimit, setrlimit, Resource, RLIM_INFINITY};
    let Ok((soft, hard)) = getrlimit(Resource::RLIMIT_RTTIME) else {
        return;
    };
    if soft != RLIM_INFINITY {
        return;
    }
    let us = RT_SPIN_LIMIT.as_micros() as u64;
    let hard_us = if hard == RLIM_INFINITY {
        us + 1_000_000
    } else {
        hard.min(us + 1_000_000)
    };
    if let Err(e) = setrlimit(Resource::RLIMIT_RTTIME, us.min(hard_us), hard_us) {
        tracing::warn!("media engine: cannot set RLIMIT_RTTIME: {e}");
    }
}

impl Engine {
    /// The process's engine, started on first use.
    pub fn get() -> Result<&'static Engine, MediaError> {
        if let Some(e) = ENGINE.get() {
            return Ok(e);
        }
        let (tx, rx) = std_mpsc::channel();
        let (waker, wake_rx) = UnixStream::pair()?;
        waker.set_nonblocking(true)?;
        wake_rx.set_nonblocking(true)?;
        let mode = *MODE.get_or_init(Mode::default);
        let engine = Engine {
            tx,
            waker,
            next_id: AtomicU64::new(1),
        };
        // Two callers racing here: one engine wins, the other's parts are
        // dropped before any thread starts.
        if ENGINE.set(engine).is_ok() {
            std::thread::Builder::new()
                .name("media-engine".into())
                .spawn(move || run(rx, wake_rx, mode))?;
        }
        ENGINE.get().ok_or(MediaError::Stopped)
    }

    fn wake(&self) {
        use std::io::Write;
        // A full pipe means a wake-up is pending already.
        let _ = (&self.waker).write(&[1]);
    }

    /// Hands a call to the engine; returns its id.
    pub fn add(&self, p: Pipeline) -> Result<u64, MediaError> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        self.tx
            .send(Command::Add(id, Box::new(p)))
            .map_err(|_| MediaError::Stopped)?;
        self.wake();
        Ok(id)
    }

    /// Takes a call out of the engine (it sends its last RTCP); the
    /// playback device comes back on `reply` to be finished.
    pub fn remove(&self, id: u64, reply: Option<oneshot::Sender<Box<dyn PlaybackDevice>>>) {
        if self.tx.send(Command::Remove(id, reply)).is_ok() {
            self.wake();
        }
    }
}

/// The engine thread.
fn run(rx: std_mpsc::Receiver<Command>, wake: UnixStream, mode: Mode) {
    let mut sched = Scheduler::new();
    let mut drain = [0u8; 64];
    let tick = match mode {
        Mode::Tick(d) => Some(d),
        Mode::Events => None,
    };
    let mut next_tick = Instant::now() + tick.unwrap_or_default();
    let mut realtime = None;
    loop {
        loop {
            match rx.try_recv() {
                Ok(Command::Add(id, p)) => {
                    apply_realtime(&mut realtime);
                    let mut p = *p;
                    if tick.is_some() {
                        p.poll_devices = false;
                    }
                    sched.add(id, p);
                }
                Ok(Command::Remove(id, reply)) => {
                    if let Some(p) = sched.remove(id, Instant::now()) {
                        match reply {
                            Some(r) => {
                                let _ = r.send(p.into_playback());
                            }
                            None => drop(p),
                        }
                    }
                }
                Err(std_mpsc::TryRecvError::Empty) => break,
                Err(std_mpsc::TryRecvError::Disconnected) => return,
            }
        }
        let now = Instant::now();
        let timeout = match tick {
            Some(_) => ceil_ms(next_tick.saturating_duration_since(now)),
            None => match sched.deadline() {
                Some(t) => ceil_ms(t.saturating_duration_since(now)),
                None => -1,
            },
        };
        let fds = if tick.is_some() {
            // Tick mode: only the waker; every call each tick.
            let fds = sched.poll_set(wake.as_raw_fd());
            let n = fds.len().min(1);
            &mut fds[..n]
        } else {
            sched.poll_set(wake.as_raw_fd())
        };
        if let Err(e) = alsa::poll::poll(fds, timeout) {
            if e.errno() != libc::EINTR {
                tracing::error!("media engine: poll: {e}");
                std::thread::sleep(Duration::from_millis(10));
            }
        }
        if fds.first().is_some_and(|f| f.revents != 0) {
            use std::io::Read;
            while matches!((&wake).read(&mut drain), Ok(n) if n > 0) {}
        }
        let now = Instant::now();
        let all = match tick {
            Some(d) if now >= next_tick => {
                // The next tick on the grid (skipping ticks missed while
                // busy); a wake-up for a command does not move it.
                next_tick += d;
                if next_tick <= now {
                    next_tick = now + d;
                }
                true
            }
            _ => false,
        };
        sched.run(now, all);
    }
}

/// A timeout for poll(2), rounded up to whole milliseconds (at most 1 s).
fn ceil_ms(d: Duration) -> i32 {
    d.as_micros().div_ceil(1000).min(1000) as i32
}
