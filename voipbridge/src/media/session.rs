//! The I/O shell around [`CallCore`]: sockets, audio devices, clocks and
//! threads (see the [module documentation](super) for why threads).
//!
//! * *pump* thread: reads one ptime frame from the capture source (which
//!   blocks until it is due), hands it to the core, sends the RTP/RTCP the
//!   core returns, and writes the core's playout to the playback sink.
//! * *rtp-recv* and *rtcp-recv* threads: block on their sockets (100 ms
//!   timeouts to notice `stop`) and feed the core.
//!
//! The core sits behind a mutex held only for short, non-blocking calls.

use super::audio::{self, Sink, Source};
use super::call::{CallCore, CoreConfig, Transmit};
use super::report::NtpClock;
/// The event type (defined in [`super`]; re-exported here for older callers).
pub use super::MediaEvent;
use super::{AudioSpec, Codec, Direction, MediaError, MediaStats};
use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

/// Capacity of a call's event channel; events beyond it are dropped (and logged).
const EVENT_QUEUE: usize = 64;

/// Everything a call's media needs.
#[derive(Debug, Clone)]
pub struct MediaParams {
    /// Peer's RTP address from its SDP (`c=` and `m=`).
    pub remote: SocketAddr,
    /// Negotiated codec.
    pub codec: Codec,
    /// Its payload type.
    pub payload_type: u8,
    /// Packet time in ms (clamped to 10–60).
    pub ptime_ms: u32,
    /// telephone-event payload type, when negotiated.
    pub telephone_event_pt: Option<u8>,
    /// Negotiated direction (ours).
    pub direction: Direction,
    /// Capture device.
    pub capture: AudioSpec,
    /// Playback device.
    pub playback: AudioSpec,
    /// Jitter buffer minimum delay, ms.
    pub jitter_min_ms: u32,
    /// Jitter buffer maximum delay, ms.
    pub jitter_max_ms: u32,
    /// End the call after this long without RTP (0: never).
    pub rtp_timeout_ms: u32,
}

struct Shared {
    stop: AtomicBool,
    core: Mutex<CallCore>,
    /// Xruns when one thread runs capture and playback.
    xruns: AtomicU64,
    /// Capture xruns when playback has its own thread.
    capture_xruns: AtomicU64,
    /// Playback xruns on its own thread.
    playback_xruns: AtomicU64,
    events: mpsc::Sender<MediaEvent>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Shared {
    fn stopped(&self) -> bool {
        self.stop.load(Ordering::SeqCst)
    }

    /// Forwards the core's events to the channel.
    fn flush_events(&self) {
        let mut core = lock(&self.core);
        while let Some(ev) = core.poll_event() {
            if let Err(e) = self.events.try_send(ev) {
                tracing::warn!("media event dropped: {e}");
            }
        }
    }
}

/// A running call's media.
pub struct MediaHandle {
    shared: Arc<Shared>,
    threads: Vec<JoinHandle<()>>,
    events: mpsc::Receiver<MediaEvent>,
    local: SocketAddr,
}

/// Starts a call's media on an already-bound UDP socket (its port went into
/// our SDP). RTCP uses the port above it when that can be bound (else the
/// call runs without RTCP, with a warning).
pub async fn start(
    params: MediaParams,
    socket: tokio::net::UdpSocket,
) -> Result<MediaHandle, MediaError> {
    let socket = socket.into_std()?;
    socket.set_nonblocking(false)?;
    tokio::task::spawn_blocking(move || start_std(params, socket))
        .await
        .map_err(|e| MediaError::Io(std::io::Error::other(e)))?
}

/// [`start`] for callers without a tokio runtime, on a blocking std socket.
pub fn start_std(params: MediaParams, socket: UdpSocket) -> Result<MediaHandle, MediaError> {
    let local = socket.local_addr()?;
    let now = Instant::now();
    let core = CallCore::new(
        CoreConfig {
            remote: params.remote,
            codec: params.codec,
            payload_type: params.payload_type,
            ptime_ms: params.ptime_ms,
            telephone_event_pt: params.telephone_event_pt,
            direction: params.direction,
            jitter_min_ms: params.jitter_min_ms,
            jitter_max_ms: params.jitter_max_ms,
            rtp_timeout_ms: params.rtp_timeout_ms,
        },
        now,
        NtpClock::system(),
        (rand::random(), rand::random(), rand::random()),
    );
    let frame = core.frame();
    let source = audio::open_source(&params.capture, params.codec, frame)?;
    let sink = audio::open_sink(&params.playback, params.codec, frame)?;
    let rtcp = match local
        .port()
        .checked_add(1)
        .map(|p| UdpSocket::bind(SocketAddr::new(local.ip(), p)))
    {
        Some(Ok(s)) => Some(s),
        Some(Err(e)) => {
            tracing::warn!(
                "no RTCP: cannot bind port {}: {e}",
                local.port().wrapping_add(1)
            );
            None
        }
        None => None,
    };
    let (tx, events) = mpsc::channel(EVENT_QUEUE);
    let shared = Arc::new(Shared {
        stop: AtomicBool::new(false),
        core: Mutex::new(core),
        xruns: AtomicU64::new(0),
        capture_xruns: AtomicU64::new(0),
        playback_xruns: AtomicU64::new(0),
        events: tx,
    });
    socket.set_read_timeout(Some(Duration::from_millis(100)))?;
    let rtp_rx = socket.try_clone()?;
    let rtcp_tx = match &rtcp {
        Some(s) => Some(s.try_clone()?),
        None => None,
    };
    let mut threads = Vec::new();
    // An ALSA playback device is paced by its own clock on a thread of its
    // own: a stall of the capture side (or a different capture clock) must
    // not starve it. Files and null have no clock: the pump paces them.
    let (pump_sink, device_sink) = if matches!(params.playback, AudioSpec::Alsa(_)) {
        (None, Some(sink))
    } else {
        (Some(sink), None)
    };
    {
        let shared = shared.clone();
        threads.push(
            std::thread::Builder::new()
                .name("rtp-pump".into())
                .spawn(move || pump(frame, source, pump_sink, socket, rtcp_tx, shared))?,
        );
    }
    if let Some(sink) = device_sink {
        let shared = shared.clone();
        threads.push(
            std::thread::Builder::new()
                .name("rtp-play".into())
                .spawn(move || play(frame, sink, shared))?,
        );
    }
    {
        let shared = shared.clone();
        threads.push(
            std::thread::Builder::new()
                .name("rtp-recv".into())
                .spawn(move || receive(rtp_rx, shared, false))?,
        );
    }
    if let Some(rtcp) = rtcp {
        rtcp.set_read_timeout(Some(Duration::from_millis(100)))?;
        let shared = shared.clone();
        threads.push(
            std::thread::Builder::new()
                .name("rtcp-recv".into())
                .spawn(move || receive(rtcp, shared, true))?,
        );
    }
    tracing::info!(%local, remote = %params.remote, codec = params.codec.name(), ptime = params.ptime_ms, capture = %params.capture, playback = %params.playback, "media started");
    Ok(MediaHandle {
        shared,
        threads,
        events,
        local,
    })
}

impl MediaHandle {
    /// Applies a re-INVITE: new peer address and/or direction (hold/resume).
    pub fn update(&self, remote: SocketAddr, direction: Direction) {
        lock(&self.shared.core).update(remote, direction, Instant::now());
    }

    /// Queues DTMF digits (0-9 * # A-D) for RFC 4733 sending: 100 ms tones,
    /// 60 ms apart, end packets sent three times.
    pub fn send_dtmf(&self, digits: &str) -> Result<(), MediaError> {
        if self.shared.stopped() {
            return Err(MediaError::Stopped);
        }
        lock(&self.shared.core).send_dtmf(digits)
    }

    /// Current counters.
    pub fn stats(&self) -> MediaStats {
        let mut s = lock(&self.shared.core).stats();
        s.xruns = self.shared.xruns.load(Ordering::Relaxed)
            + self.shared.capture_xruns.load(Ordering::Relaxed)
            + self.shared.playback_xruns.load(Ordering::Relaxed);
        s
    }

    /// The local RTP address.
    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }

    /// Events (DTMF received, RTP timeout, device failure).
    pub fn events(&mut self) -> &mut mpsc::Receiver<MediaEvent> {
        &mut self.events
    }

    /// Stops the call's media: the threads end, the playback device is
    /// drained and closed, a WAV recording gets its final header.
    pub async fn stop(mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        let threads = std::mem::take(&mut self.threads);
        let _ = tokio::task::spawn_blocking(move || {
            for t in threads {
                let _ = t.join();
            }
        })
        .await;
        tracing::info!(local = %self.local, "media stopped");
    }
}

impl Drop for MediaHandle {
    /// Dropping without [`stop`](MediaHandle::stop) still ends the threads
    /// (within 100 ms; the pump finalises its devices itself) without blocking.
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
    }
}

fn pump(
    frame: usize,
    mut source: Box<dyn Source>,
    mut sink: Option<Box<dyn Sink>>,
    socket: UdpSocket,
    rtcp: Option<UdpSocket>,
    shared: Arc<Shared>,
) {
    let mut pcm = vec![0i16; frame];
    let mut out = vec![0i16; frame];
    let mut failed = None;
    while !shared.stopped() {
        if let Err(e) = source.read(&mut pcm) {
            failed = Some(format!("capture: {e}"));
            break;
        }
        let now = Instant::now();
        let sends = lock(&shared.core).on_capture(&pcm, now);
        for t in sends {
            let r = match &t {
                Transmit::Rtp(to, d) => socket.send_to(d, to),
                Transmit::Rtcp(to, d) => match &rtcp {
                    Some(s) => s.send_to(d, to),
                    None => Ok(0),
                },
            };
            if let Err(e) = r {
                tracing::debug!("send: {e}");
            }
        }
        if let Some(sink) = sink.as_mut() {
            lock(&shared.core).playout(&mut out, Instant::now());
            if let Err(e) = sink.write(&out) {
                failed = Some(format!("playback: {e}"));
                break;
            }
            shared
                .xruns
                .store(source.xruns() + sink.xruns(), Ordering::Relaxed);
        } else {
            shared
                .capture_xruns
                .store(source.xruns(), Ordering::Relaxed);
        }
        shared.flush_events();
    }
    if let Some(e) = failed {
        tracing::error!("audio device failed, the call's audio stops: {e}");
        let _ = shared.events.try_send(MediaEvent::DeviceError(e));
    }
    if let (Some(s), Some(Transmit::Rtcp(to, d))) = (&rtcp, lock(&shared.core).bye(Instant::now()))
    {
        let _ = s.send_to(&d, to);
    }
    if let Some(sink) = sink.as_mut() {
        if let Err(e) = sink.finish() {
            tracing::error!("closing playback: {e}");
        }
    }
}

/// Plays the call on an ALSA device, paced by the device's own clock.
fn play(frame: usize, mut sink: Box<dyn Sink>, shared: Arc<Shared>) {
    let mut out = vec![0i16; frame];
    while !shared.stopped() {
        lock(&shared.core).playout(&mut out, Instant::now());
        if let Err(e) = sink.write(&out) {
            let e = format!("playback: {e}");
            tracing::error!("audio device failed, the call's audio stops: {e}");
            let _ = shared.events.try_send(MediaEvent::DeviceError(e));
            break;
        }
        shared.playback_xruns.store(sink.xruns(), Ordering::Relaxed);
        shared.flush_events();
    }
    if let Err(e) = sink.finish() {
        tracing::error!("closing playback: {e}");
    }
}

fn receive(socket: UdpSocket, shared: Arc<Shared>, rtcp: bool) {
    let mut buf = vec![0u8; 2048];
    while !shared.stopped() {
        let (n, from) = match socket.recv_from(&mut buf) {
            Ok(x) => x,
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                continue
            }
            Err(e) => {
                // ICMP port unreachable surfaces here on Linux; keep going.
                tracing::debug!("receive: {e}");
                std::thread::sleep(Duration::from_millis(5));
                continue;
            }
        };
        let data = buf.get(..n).unwrap_or_default();
        let now = Instant::now();
        if rtcp {
            lock(&shared.core).on_rtcp(from, data, now);
        } else {
            lock(&shared.core).on_rtp(from, data, now);
        }
        shared.flush_events();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::analysis::{dominant_frequency, rms, tone_level};

    fn params(remote: SocketAddr, capture: &str, playback: &str) -> MediaParams {
        MediaParams {
            remote,
            codec: Codec::Pcmu,
            payload_type: 0,
            ptime_ms: 20,
            telephone_event_pt: Some(101),
            direction: Direction::SendRecv,
            capture: capture.parse().unwrap(),
            playback: playback.parse().unwrap(),
            jitter_min_ms: 40,
            jitter_max_ms: 200,
            rtp_timeout_ms: 5000,
        }
    }

    fn read_wav(path: &std::path::Path) -> Vec<i16> {
        let mut r = hound::WavReader::open(path).unwrap();
        assert_eq!(r.spec().sample_rate, 8000);
        r.samples::<i16>().map(|s| s.unwrap()).collect()
    }

    /// Two calls' media against each other on 127.0.0.1: a 1 kHz tone one
    /// way, 440 Hz the other, each recorded to a WAV file; then DTMF.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn two_sessions_exchange_tones_and_dtmf_on_loopback() {
        let dir = std::env::temp_dir().join(format!("voipbridge-media-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let (wav_a, wav_b) = (dir.join("a_heard.wav"), dir.join("b_heard.wav"));
        let sa = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let sb = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let (aa, ab) = (sa.local_addr().unwrap(), sb.local_addr().unwrap());
        let a = start(
            params(ab, "tone:1000", &format!("wav:{}", wav_a.display())),
            sa,
        )
        .await
        .unwrap();
        let mut b = start(
            params(aa, "tone:440", &format!("wav:{}", wav_b.display())),
            sb,
        )
        .await
        .unwrap();
        assert_eq!(a.local_addr(), aa);
        tokio::time::sleep(Duration::from_millis(2000)).await;
        let (sa1, sb1) = (a.stats(), b.stats());
        a.send_dtmf("12#").unwrap();
        assert!(matches!(a.send_dtmf("1z"), Err(MediaError::BadDigit('z'))));
        let mut digits = String::new();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(3);
        while digits.len() < 3 {
            match tokio::time::timeout_at(deadline, b.events().recv()).await {
                Ok(Some(MediaEvent::DtmfReceived(d))) => digits.push(d),
                Ok(Some(e)) => panic!("unexpected event {e:?}"),
                Ok(None) | Err(_) => break,
            }
        }
        assert_eq!(digits, "12#");
        let (sa2, sb2) = (a.stats(), b.stats());
        a.stop().await;
        b.stop().await;

        // Two seconds of 20 ms packets each way, none lost.
        for s in [&sa1, &sb1] {
            assert!((90..=110).contains(&s.packets_sent), "{s:?}");
            assert!(s.packets_received >= 88, "{s:?}");
            assert_eq!(s.lost, 0, "{s:?}");
            assert_eq!(s.packets_ignored, 0, "{s:?}");
        }
        assert_eq!(sb2.dtmf_received, "12#");
        // Loopback has next to no jitter, events included (they repeat
        // their timestamp and must not count), and no clock drift to correct
        // beyond start-up.
        assert!(sb2.jitter_ms < 5.0, "{sb2:?}");
        for s in [&sa2, &sb2] {
            assert!(s.drift_inserted + s.drift_dropped <= 4, "{s:?}");
        }
        assert_eq!(sa2.dtmf_sent, 3);

        // B heard A's 1 kHz (at the tone source's level, -6 dBFS), A heard B's 440 Hz.
        let heard_b = read_wav(&wav_b);
        let heard_a = read_wav(&wav_a);
        for (heard, hz, other) in [(&heard_b, 1000.0, 440.0), (&heard_a, 440.0, 1000.0)] {
            // Length: the whole call (about 2.5-3.5 s) at 8 kHz.
            assert!((16000..40000).contains(&heard.len()), "{}", heard.len());
            // A second of audio from the steady part, before the DTMF.
            let steady = &heard[4000..12000];
            assert_eq!(dominant_frequency(steady, 8000.0), hz);
            let level = tone_level(steady, hz, 8000.0);
            assert!(
                (level - 16383.0).abs() < 0.06 * 16383.0,
                "{hz} Hz at {level}"
            );
            assert!(tone_level(steady, other, 8000.0) < 300.0);
            assert!(rms(steady) > 10000.0);
        }
    }

    #[tokio::test]
    async fn bad_devices_fail_start_with_a_clear_error() {
        let s = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let remote = "127.0.0.1:9".parse().unwrap();
        match start(params(remote, "wav:/nonexistent/x.wav", "null"), s).await {
            Err(MediaError::Device(path, _)) => assert_eq!(path, "/nonexistent/x.wav"),
            Err(e) => panic!("{e}"),
            Ok(_) => panic!("started with a missing file"),
        }
        let s = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
        assert!(matches!(
            start(params(remote, "null", "tone:100"), s).await,
            Err(MediaError::BadSpec(_))
        ));
    }
}
