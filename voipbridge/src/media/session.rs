//! One call's media: a pump thread (capture → encode → RTP, and jitter buffer
//! → decode → playback, paced by the capture device) and a receiver thread
//! (RTP → jitter buffer, RFC 4733 events).
//!
//! Symmetric RTP (RFC 4961): we send from the port we receive on. Packets are
//! accepted only from the IP address the peer's SDP gave; the first one
//! latches the peer's port (NAT), later ones from other addresses are ignored.

use super::audio::{self, Sink, Source, RATE};
use super::jitter::{JitterBuffer, Playout};
use super::rtp::{self, DtmfReceiver, Sender};
use super::{AudioSpec, Codec, Direction, MediaError};
use serde::Serialize;
use std::collections::VecDeque;
use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

/// Everything a call's media needs.
#[derive(Debug, Clone)]
pub struct MediaParams {
    /// Peer's RTP address from its SDP.
    pub remote: SocketAddr,
    /// Negotiated codec.
    pub codec: Codec,
    /// Its payload type.
    pub payload_type: u8,
    /// Packet time in ms.
    pub ptime_ms: u32,
    /// telephone-event payload type, when negotiated.
    pub telephone_event_pt: Option<u8>,
    /// Negotiated direction (ours).
    pub direction: Direction,
    /// Capture device.
    pub capture: AudioSpec,
    /// Playback device.
    pub playback: AudioSpec,
    /// Jitter buffer minimum depth.
    pub jitter_min_ms: u32,
    /// Jitter buffer maximum depth.
    pub jitter_max_ms: u32,
    /// End the call after this long without RTP (0: never).
    pub rtp_timeout_ms: u32,
}

/// Media counters, shown by `voipbridge status`.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct MediaStats {
    /// RTP packets sent.
    pub packets_sent: u64,
    /// RTP packets received and accepted.
    pub packets_received: u64,
    /// Packets from unexpected sources or with unknown payload types.
    pub packets_ignored: u64,
    /// Frames concealed (lost packets).
    pub concealed: u64,
    /// Late packets.
    pub late: u64,
    /// Jitter buffer underruns.
    pub underruns: u64,
    /// Interarrival jitter (RFC 3550) in ms.
    pub jitter_ms: f64,
    /// ALSA xruns recovered.
    pub xruns: u64,
    /// DTMF digits received.
    pub dtmf_received: String,
}

/// Events a call's media reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MediaEvent {
    /// A DTMF digit arrived (RFC 4733).
    DtmfReceived(char),
    /// No RTP for the configured timeout.
    RtpTimeout,
    /// The audio device failed.
    DeviceError(String),
}

struct Shared {
    stop: AtomicBool,
    remote: Mutex<(SocketAddr, bool)>,
    direction: Mutex<Direction>,
    jitter: Mutex<JitterBuffer>,
    dtmf_out: Mutex<VecDeque<char>>,
    packets_sent: AtomicU64,
    packets_received: AtomicU64,
    packets_ignored: AtomicU64,
    xruns: AtomicU64,
    dtmf_in: Mutex<String>,
    last_rx: Mutex<Instant>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// A running call's media.
pub struct MediaHandle {
    shared: Arc<Shared>,
    threads: Vec<JoinHandle<()>>,
    events: mpsc::UnboundedReceiver<MediaEvent>,
}

/// Starts a call's media on a bound UDP socket (the one in our SDP).
pub fn start(params: MediaParams, socket: UdpSocket) -> Result<MediaHandle, MediaError> {
    let frame = (RATE * params.ptime_ms.clamp(10, 60) / 1000) as usize;
    let source = audio::open_source(&params.capture, frame)?;
    let sink = audio::open_sink(&params.playback, frame)?;
    let ptime = params.ptime_ms.clamp(10, 60);
    let jb = JitterBuffer::new(
        frame,
        (params.jitter_min_ms / ptime).max(1) as usize,
        (40 / ptime).max(2) as usize,
        (params.jitter_max_ms / ptime).max(3) as usize,
    );
    let shared = Arc::new(Shared {
        stop: AtomicBool::new(false),
        remote: Mutex::new((params.remote, false)),
        direction: Mutex::new(params.direction),
        jitter: Mutex::new(jb),
        dtmf_out: Mutex::new(VecDeque::new()),
        packets_sent: AtomicU64::new(0),
        packets_received: AtomicU64::new(0),
        packets_ignored: AtomicU64::new(0),
        xruns: AtomicU64::new(0),
        dtmf_in: Mutex::new(String::new()),
        last_rx: Mutex::new(Instant::now()),
    });
    socket.set_read_timeout(Some(Duration::from_millis(100)))?;
    let rx_socket = socket.try_clone()?;
    let (tx, events) = mpsc::unbounded_channel();
    let mut threads = Vec::new();
    {
        let shared = shared.clone();
        let tx = tx.clone();
        let p = params.clone();
        threads.push(
            std::thread::Builder::new()
                .name("rtp-pump".into())
                .spawn(move || pump(p, frame, source, sink, socket, shared, tx))?,
        );
    }
    {
        let shared = shared.clone();
        let p = params.clone();
        threads.push(
            std::thread::Builder::new()
                .name("rtp-recv".into())
                .spawn(move || receive(p, rx_socket, shared, tx))?,
        );
    }
    tracing::info!(remote = %params.remote, codec = params.codec.name(), ptime, capture = %params.capture, playback = %params.playback, "media started");
    Ok(MediaHandle {
        shared,
        threads,
        events,
    })
}

impl MediaHandle {
    /// Applies a re-INVITE: new peer address and/or direction.
    pub fn update(&self, remote: SocketAddr, direction: Direction) {
        *lock(&self.shared.remote) = (remote, false);
        *lock(&self.shared.direction) = direction;
    }

    /// Queues DTMF digits for RFC 4733 sending.
    pub fn send_dtmf(&self, digits: &str) -> Result<(), MediaError> {
        if let Some(bad) = digits.chars().find(|c| rtp::dtmf_event(*c).is_none()) {
            return Err(MediaError::BadDigit(bad));
        }
        lock(&self.shared.dtmf_out).extend(digits.chars());
        Ok(())
    }

    /// Current counters.
    pub fn stats(&self) -> MediaStats {
        let jb = lock(&self.shared.jitter);
        let s = jb.stats();
        MediaStats {
            packets_sent: self.shared.packets_sent.load(Ordering::Relaxed),
            packets_received: self.shared.packets_received.load(Ordering::Relaxed),
            packets_ignored: self.shared.packets_ignored.load(Ordering::Relaxed),
            concealed: s.concealed,
            late: s.late,
            underruns: s.underruns,
            jitter_ms: f64::from(jb.jitter_samples()) * 1000.0 / f64::from(RATE),
            xruns: self.shared.xruns.load(Ordering::Relaxed),
            dtmf_received: lock(&self.shared.dtmf_in).clone(),
        }
    }

    /// Events (DTMF, RTP timeout).
    pub fn events(&mut self) -> &mut mpsc::UnboundedReceiver<MediaEvent> {
        &mut self.events
    }

    /// Stops both threads; files are finalised and devices drained.
    pub fn stop(mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

impl Drop for MediaHandle {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

fn pump(
    p: MediaParams,
    frame: usize,
    mut source: Box<dyn Source>,
    mut sink: Box<dyn Sink>,
    socket: UdpSocket,
    shared: Arc<Shared>,
    events: mpsc::UnboundedSender<MediaEvent>,
) {
    let law = p.codec.law();
    let mut sender = Sender::new();
    let mut pcm = vec![0i16; frame];
    let mut enc = vec![0u8; frame];
    let mut dtmf_pkts: VecDeque<Vec<u8>> = VecDeque::new();
    let mut timed_out = false;
    while !shared.stop.load(Ordering::SeqCst) {
        if let Err(e) = source.read(&mut pcm) {
            tracing::error!("capture failed: {e}");
            let _ = events.send(MediaEvent::DeviceError(e.to_string()));
            break;
        }
        let direction = *lock(&shared.direction);
        let remote = lock(&shared.remote).0;
        if dtmf_pkts.is_empty() {
            if let (Some(pt), Some(d)) = (p.telephone_event_pt, lock(&shared.dtmf_out).pop_front())
            {
                if let Some(ev) = rtp::dtmf_event(d) {
                    // 100 ms tone; the update packets go out one per frame.
                    dtmf_pkts.extend(sender.dtmf(pt, ev, 800));
                }
            }
        }
        if let Some(pkt) = dtmf_pkts.pop_front() {
            let mut burst = vec![pkt];
            // The three end packets go out together.
            if dtmf_pkts.len() <= 2
                && burst
                    .first()
                    .and_then(|b| b.get(13))
                    .is_some_and(|f| f & 0x80 != 0)
            {
                burst.extend(dtmf_pkts.drain(..));
            }
            for b in burst {
                let _ = socket.send_to(&b, remote);
                shared.packets_sent.fetch_add(1, Ordering::Relaxed);
            }
        } else if direction.sends() {
            law.encode(&pcm, &mut enc);
            let pkt = sender.packet(p.payload_type, &enc, frame as u32);
            match socket.send_to(&pkt, remote) {
                Ok(_) => {
                    shared.packets_sent.fetch_add(1, Ordering::Relaxed);
                }
                Err(e) => tracing::debug!("RTP send to {remote}: {e}"),
            }
        } else {
            sender.skip(frame as u32);
            sender.new_talkspurt();
        }
        let out = match lock(&shared.jitter).pop() {
            Playout::Frame(f) | Playout::Concealed(f) if direction.receives() => f,
            _ => vec![0; frame],
        };
        if let Err(e) = sink.write(&out) {
            tracing::error!("playback failed: {e}");
            let _ = events.send(MediaEvent::DeviceError(e.to_string()));
            break;
        }
        shared.xruns.store(sink.xruns(), Ordering::Relaxed);
        if p.rtp_timeout_ms > 0 && !timed_out && direction.receives() {
            let idle = lock(&shared.last_rx).elapsed();
            if idle > Duration::from_millis(u64::from(p.rtp_timeout_ms)) {
                tracing::warn!("no RTP from {remote} for {} ms", idle.as_millis());
                let _ = events.send(MediaEvent::RtpTimeout);
                timed_out = true;
            }
        }
    }
    if let Err(e) = sink.finish() {
        tracing::error!("closing playback: {e}");
    }
}

fn receive(
    p: MediaParams,
    socket: UdpSocket,
    shared: Arc<Shared>,
    events: mpsc::UnboundedSender<MediaEvent>,
) {
    let law = p.codec.law();
    let start = Instant::now();
    let mut buf = vec![0u8; 2048];
    let mut dtmf = DtmfReceiver::default();
    while !shared.stop.load(Ordering::SeqCst) {
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
                tracing::debug!("RTP receive: {e}");
                continue;
            }
        };
        {
            let mut r = lock(&shared.remote);
            if from != r.0 {
                if from.ip() == r.0.ip() && !r.1 {
                    tracing::info!("latching RTP peer to {from} (SDP said {})", r.0);
                    r.0 = from;
                } else {
                    shared.packets_ignored.fetch_add(1, Ordering::Relaxed);
                    continue;
                }
            }
            r.1 = true;
        }
        let Some(pkt) = buf.get(..n).and_then(rtp::parse) else {
            shared.packets_ignored.fetch_add(1, Ordering::Relaxed);
            continue;
        };
        *lock(&shared.last_rx) = Instant::now();
        if Some(pkt.payload_type) == p.telephone_event_pt {
            if let Some(d) = dtmf.feed(pkt.timestamp, &pkt.payload) {
                tracing::info!(digit = %d, "DTMF received");
                lock(&shared.dtmf_in).push(d);
                let _ = events.send(MediaEvent::DtmfReceived(d));
            }
            shared.packets_received.fetch_add(1, Ordering::Relaxed);
            continue;
        }
        if pkt.payload_type != p.payload_type {
            shared.packets_ignored.fetch_add(1, Ordering::Relaxed);
            continue;
        }
        shared.packets_received.fetch_add(1, Ordering::Relaxed);
        let mut pcm = vec![0i16; pkt.payload.len()];
        law.decode(&pkt.payload, &mut pcm);
        let arrival = (start.elapsed().as_micros() as u64) * u64::from(RATE) / 1_000_000;
        lock(&shared.jitter).push(pkt.seq, pkt.timestamp, arrival, pcm);
    }
}
