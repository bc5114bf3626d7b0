//! The API of a call's media over the [engine](super::engine): start a
//! call on its socket and devices, change it (re-INVITE, DTMF), read its
//! counters, stop it. Everything runs on the one media thread; this
//! module only opens the devices (which may block: ALSA's open, a WAV
//! file's load) on the caller's thread and hands the call over.

use super::audio::{self, DeviceConfig};
use super::call::{CallCore, CoreConfig};
use super::engine::{lock, CallShared, Engine, Pipeline};
use super::hooks::{ProcessorFactory, TransformFactory};
use super::report::NtpClock;
/// The event type (defined in [`super`]; re-exported here for older callers).
pub use super::MediaEvent;
use super::{AudioSpec, Codec, Direction, MediaError, MediaStats};
use std::net::{SocketAddr, UdpSocket};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, oneshot};

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
    /// Latch to the first RTP packet's source and lock its SSRC (a peer
    /// behind NAT) instead of talking only to the SDP's address; see
    /// [`call`](super::call).
    pub latch: bool,
    /// ALSA device period, ms (`[audio] period_ms`).
    pub period_ms: u32,
    /// ALSA playback ring, ms (`[audio] buffer_ms`).
    pub buffer_ms: u32,
    /// The call's packet transform (SRTP), made when media starts.
    pub transform: Option<TransformFactory>,
    /// Capture processors (echo cancellation, noise suppression), in order.
    pub processors: Vec<ProcessorFactory>,
}

impl Default for MediaParams {
    /// PCMU at 20 ms to 0.0.0.0:0 (nothing accepted until a real address
    /// is set), null devices, the configuration's defaults.
    fn default() -> Self {
        let dev = DeviceConfig::default();
        MediaParams {
            remote: SocketAddr::from(([0, 0, 0, 0], 0)),
            codec: Codec::Pcmu,
            payload_type: 0,
            ptime_ms: 20,
            telephone_event_pt: None,
            direction: Direction::SendRecv,
            capture: AudioSpec::Null,
            playback: AudioSpec::Null,
            jitter_min_ms: 40,
            jitter_max_ms: 200,
            rtp_timeout_ms: 30_000,
            latch: false,
            period_ms: dev.period_ms,
            buffer_ms: dev.buffer_ms,
            transform: None,
            processors: Vec::new(),
        }
    }
}

/// A running call's media.
pub struct MediaHandle {
    id: u64,
    shared: Arc<CallShared>,
    events: mpsc::Receiver<MediaEvent>,
    local: SocketAddr,
    stopped: bool,
}

/// Starts a call's media on an already-bound UDP socket (its port went into
/// our SDP). RTCP uses the port above it when that can be bound (else the
/// call runs without RTCP, with a warning).
pub async fn start(
    params: MediaParams,
    socket: tokio::net::UdpSocket,
) -> Result<MediaHandle, MediaError> {
    let socket = socket.into_std()?;
    tokio::task::spawn_blocking(move || start_std(params, socket))
        .await
        .map_err(|e| MediaError::Io(std::io::Error::other(e)))?
}

/// [`start`] for callers without a tokio runtime.
pub fn start_std(params: MediaParams, socket: UdpSocket) -> Result<MediaHandle, MediaError> {
    let local = socket.local_addr()?;
    socket.set_nonblocking(true)?;
    let now = Instant::now();
    let mut core = CallCore::new(
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
            latch: params.latch,
        },
        now,
        NtpClock::system(),
        (rand::random(), rand::random(), rand::random()),
    );
    if let Some(f) = &params.transform {
        core.set_transform((f.0)().map_err(|e| MediaError::Transform(e.to_string()))?);
    }
    let processors = params.processors.iter().map(|f| (f.0)()).collect();
    let frame = core.frame();
    let dev = DeviceConfig {
        period_ms: params.period_ms.clamp(1, 100),
        buffer_ms: params.buffer_ms.max(2 * params.period_ms.clamp(1, 100)),
    };
    let capture = audio::open_capture(&params.capture, params.codec, frame, dev)?;
    let playback = audio::open_playback(&params.playback, params.codec, frame, dev)?;
    let rtcp: Option<Box<dyn super::engine::Datagrams>> = match local
        .port()
        .checked_add(1)
        .map(|p| UdpSocket::bind(SocketAddr::new(local.ip(), p)))
    {
        Some(Ok(s)) => {
            s.set_nonblocking(true)?;
            Some(Box::new(s))
        }
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
    let shared = Arc::new(CallShared::new(core, processors, tx));
    let pipeline = Pipeline::new(
        shared.clone(),
        capture,
        playback,
        Box::new(super::rxtime::TimedUdp::new(socket)),
        rtcp,
    );
    let id = Engine::get()?.add(pipeline)?;
    tracing::info!(%local, remote = %params.remote, codec = params.codec.name(), ptime = params.ptime_ms, capture = %params.capture, playback = %params.playback, latch = params.latch, "media started");
    Ok(MediaHandle {
        id,
        shared,
        events,
        local,
        stopped: false,
    })
}

impl MediaHandle {
    /// Applies a re-INVITE: new peer address and/or direction (hold/resume).
    pub fn update(&self, remote: SocketAddr, direction: Direction) {
        lock(&self.shared.inner)
            .core
            .update(remote, direction, Instant::now());
    }

    /// Queues DTMF digits (0-9 * # A-D) for RFC 4733 sending: 100 ms tones,
    /// 60 ms apart, end packets sent three times.
    pub fn send_dtmf(&self, digits: &str) -> Result<(), MediaError> {
        let mut inner = lock(&self.shared.inner);
        if inner.failed {
            return Err(MediaError::Stopped);
        }
        inner.core.send_dtmf(digits)
    }

    /// Current counters.
    pub fn stats(&self) -> MediaStats {
        self.shared.stats()
    }

    /// The local RTP address.
    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }

    /// Events (DTMF received, RTP timeout, device failure).
    pub fn events(&mut self) -> &mut mpsc::Receiver<MediaEvent> {
        &mut self.events
    }

    /// Stops the call's media: the engine sends the last RTCP (BYE) and
    /// lets go of the call; the playback device is then drained and closed
    /// (a WAV recording gets its final header) off the media thread.
    pub async fn stop(mut self) {
        self.stopped = true;
        let (tx, rx) = oneshot::channel();
        match Engine::get() {
            Ok(e) => e.remove(self.id, Some(tx)),
            Err(_) => return,
        }
        match tokio::time::timeout(Duration::from_secs(5), rx).await {
            Ok(Ok(mut playback)) => {
                let _ = tokio::task::spawn_blocking(move || {
                    if let Err(e) = playback.finish() {
                        tracing::error!("closing playback: {e}");
                    }
                })
                .await;
            }
            _ => tracing::warn!(local = %self.local, "media engine did not hand the call back"),
        }
        tracing::info!(local = %self.local, "media stopped");
    }
}

impl Drop for MediaHandle {
    /// Dropping without [`stop`](MediaHandle::stop) still ends the call's
    /// media (its devices are closed by the engine, without draining).
    fn drop(&mut self) {
        if !self.stopped {
            if let Ok(e) = Engine::get() {
                e.remove(self.id, None);
            }
        }
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
            ..MediaParams::default()
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
