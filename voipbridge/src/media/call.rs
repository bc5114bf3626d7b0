//! One call's media as a sans-IO state machine: fed captured frames,
//! received datagrams and `Instant`s, it writes datagrams to send into an
//! [`Outbox`], fills playback buffers and reports events. The media engine
//! ([`super::engine`]) drives it with real sockets, devices and clocks; the
//! tests here drive it in virtual time. Nothing in the steady state of a
//! call allocates: packets are parsed in place and written into the
//! outbox's reused buffers, frames travel as G.711 codes.
//!
//! # Where RTP goes and whom we listen to
//! We send RTP from the port we receive on (symmetric RTP, RFC 4961), and
//! the peer's SDP names where it receives. Two policies
//! ([`CoreConfig::latch`]):
//!
//! * **Strict** (`latch = false`, the default): we send only to the SDP's
//!   address and accept RTP only from exactly that address (IP and port: a
//!   symmetric peer sends from where it receives, as RFC 4961 asks and
//!   every current phone does). Packets from anywhere else are counted and
//!   dropped, so nobody can inject audio or redirect our microphone, and
//!   we never send to an address a packet claimed (no reflection). RTCP
//!   is accepted from the SDP's IP (its port may differ, RFC 3605) and
//!   sent to the SDP port + 1.
//! * **Latch** (`latch = true`, for a peer behind NAT whose SDP names a
//!   private address, when the signalling path vouches for it): until the
//!   first valid RTP packet (right payload type, authenticated when a
//!   transform is set) we send to the SDP's address; its source is then
//!   *latched* and its SSRC *locked*: from then on we send there and
//!   accept RTP only from that source with that SSRC. RTCP goes to the
//!   latched port + 1 until RTCP arrives from the latched IP, whose source
//!   is then used.
//!
//! A re-INVITE with a new address ([`CallCore::update`]) resets both.

use super::drift::PlayoutQueue;
use super::hooks::{PacketTransform, MAX_OVERHEAD};
use super::jitter::JitterBuffer;
use super::mean::{WindowMean, MEAN_WINDOW};
use super::report::{self, NtpClock, ReceiveStats, ReportBlock, SenderInfo};
use super::rtp::{self, DtmfReceiver, DtmfSender, Sender};
use super::{Codec, Direction, MediaError, MediaEvent, MediaStats};
use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// Samples per second of G.711.
pub const RATE: u32 = 8000;
/// Nominal RTCP report interval.
pub const RTCP_INTERVAL: Duration = Duration::from_secs(5);
/// DTMF tone length (100 ms) and pause between digits (60 ms), in samples.
const DTMF_DURATION: u32 = 800;
const DTMF_GAP: u32 = 480;

/// What the core needs to know about the call.
#[derive(Debug, Clone)]
pub struct CoreConfig {
    /// Peer's RTP address from its SDP.
    pub remote: SocketAddr,
    /// Negotiated codec.
    pub codec: Codec,
    /// Its payload type.
    pub payload_type: u8,
    /// Packet time in ms (10–60).
    pub ptime_ms: u32,
    /// telephone-event payload type, when negotiated.
    pub telephone_event_pt: Option<u8>,
    /// Our direction.
    pub direction: Direction,
    /// Jitter buffer bounds in ms.
    pub jitter_min_ms: u32,
    /// Jitter buffer bounds in ms.
    pub jitter_max_ms: u32,
    /// End of call after this long without RTP (0: never).
    pub rtp_timeout_ms: u32,
    /// Latch to the first packet's source (see the module documentation).
    pub latch: bool,
}

/// Audio packets accepted: 5 to 240 ms of samples.
const MIN_PACKET: usize = 40;
/// The largest audio payload accepted (240 ms at 8 kHz).
pub const MAX_PACKET: usize = 1920;
/// The largest datagram the core writes or accepts: RTP header, the
/// largest payload, a transform's overhead.
pub const MAX_DATAGRAM: usize = 2048;
const _: () = assert!(rtp::HEADER_LEN + MAX_PACKET + MAX_OVERHEAD <= MAX_DATAGRAM);
const _: () = assert!(report::MAX_REPORT_LEN + MAX_OVERHEAD <= MAX_DATAGRAM);

/// A jitter buffer for packets of `frame` samples: bounds from the
/// configuration, starting at about 40 ms.
fn new_jitter_buffer(cfg: &CoreConfig, frame: usize) -> JitterBuffer {
    let frames = |ms: u32| (ms as usize * RATE as usize / 1000) / frame.max(1);
    let min = (cfg.jitter_min_ms as usize * RATE as usize / 1000)
        .div_ceil(frame.max(1))
        .max(1);
    let start = (320usize.div_ceil(frame.max(1))).max(2);
    let max = frames(cfg.jitter_max_ms).max(3);
    JitterBuffer::new(cfg.codec.law(), frame, min, start, max)
}

/// Which socket a datagram leaves on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Channel {
    /// The RTP socket.
    Rtp,
    /// The RTCP socket (RTP port + 1).
    Rtcp,
}

/// One datagram to send, in a buffer the outbox reuses.
#[derive(Debug)]
pub struct Datagram {
    /// The socket it leaves on.
    pub channel: Channel,
    /// Its destination.
    pub to: SocketAddr,
    len: usize,
    buf: Box<[u8]>,
}

impl Datagram {
    /// The bytes to send.
    pub fn data(&self) -> &[u8] {
        self.buf.get(..self.len).unwrap_or_default()
    }
}

/// Datagrams the core wants sent; the driver sends them and clears it.
/// Its buffers are allocated on first use and reused for the whole call.
#[derive(Debug, Default)]
pub struct Outbox {
    items: Vec<Datagram>,
    used: usize,
}

impl Outbox {
    /// An outbox with room for the two datagrams one frame produces (RTP
    /// and RTCP) before it ever allocates.
    pub fn new() -> Outbox {
        let mut o = Outbox::default();
        for _ in 0..2 {
            o.items.push(Outbox::fresh());
        }
        o
    }

    fn fresh() -> Datagram {
        Datagram {
            channel: Channel::Rtp,
            to: SocketAddr::from(([0, 0, 0, 0], 0)),
            len: 0,
            buf: vec![0u8; MAX_DATAGRAM].into_boxed_slice(),
        }
    }

    /// The next free buffer (whole, [`MAX_DATAGRAM`] bytes).
    fn slot(&mut self) -> &mut Datagram {
        if self.used == self.items.len() {
            self.items.push(Outbox::fresh());
        }
        let i = self.used;
        // `used < items.len()` holds after the push above.
        &mut self.items[i]
    }

    fn commit(&mut self, channel: Channel, to: SocketAddr, len: usize) {
        if let Some(d) = self.items.get_mut(self.used) {
            d.channel = channel;
            d.to = to;
            d.len = len;
            self.used += 1;
        }
    }

    /// The datagrams waiting.
    pub fn iter(&self) -> impl Iterator<Item = &Datagram> {
        self.items.iter().take(self.used)
    }

    /// Whether nothing is waiting.
    pub fn is_empty(&self) -> bool {
        self.used == 0
    }

    /// How many are waiting.
    pub fn len(&self) -> usize {
        self.used
    }

    /// Forgets the datagrams (their buffers stay for reuse).
    pub fn clear(&mut self) {
        self.used = 0;
    }
}

/// The media state machine of one call; see the module documentation.
pub struct CallCore {
    cfg: CoreConfig,
    frame: usize,
    jb_frame: usize,
    /// Where RTP goes: the SDP's address, or the latched source.
    remote: SocketAddr,
    /// Latch mode: the source and SSRC we latched to.
    latched: Option<(SocketAddr, u32)>,
    rtcp_remote: Option<SocketAddr>,
    direction: Direction,
    sender: Sender,
    jb: JitterBuffer,
    playout: PlayoutQueue,
    rx: Option<ReceiveStats>,
    start: Instant,
    ntp: NtpClock,
    dtmf_tx: DtmfSender,
    dtmf_rx: DtmfReceiver,
    last_rx: Instant,
    timed_out: bool,
    next_rtcp: Instant,
    sent_since_report: bool,
    rtt: Option<Duration>,
    rand: u32,
    events: VecDeque<MediaEvent>,
    stats: MediaStats,
    cname: String,
    encoded: Vec<u8>,
    codes: Vec<u8>,
    transform: Option<Box<dyn PacketTransform>>,
    /// The playout level (jitter buffer and playout queue) averaged over
    /// the last second: what a sample waits on the way in (Little's law),
    /// where a snapshot lands anywhere on a packet's 20 ms sawtooth.
    queued_mean: WindowMean,
}

impl std::fmt::Debug for CallCore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CallCore")
            .field("cfg", &self.cfg)
            .field("remote", &self.remote)
            .field("latched", &self.latched)
            .field("direction", &self.direction)
            .finish_non_exhaustive()
    }
}

impl CallCore {
    /// A call starting at `now`. `ssrc`, `seq` and `ts` are the RTP bases
    /// (random in production, fixed in tests).
    pub fn new(
        cfg: CoreConfig,
        now: Instant,
        ntp: NtpClock,
        (ssrc, seq, ts): (u32, u16, u32),
    ) -> CallCore {
        let ptime = cfg.ptime_ms.clamp(10, 60);
        let frame = (RATE * ptime / 1000) as usize;
        let jb = new_jitter_buffer(&cfg, frame);
        let rand = ssrc ^ u32::from(seq).rotate_left(16) ^ ts;
        CallCore {
            remote: cfg.remote,
            latched: None,
            rtcp_remote: None,
            direction: cfg.direction,
            sender: Sender::with_bases(ssrc, seq, ts),
            jb,
            playout: PlayoutQueue::new(cfg.codec.law(), frame),
            rx: None,
            start: now,
            ntp,
            dtmf_tx: DtmfSender::new(DTMF_DURATION, DTMF_GAP),
            dtmf_rx: DtmfReceiver::default(),
            last_rx: now,
            timed_out: false,
            next_rtcp: now + report::next_interval(RTCP_INTERVAL, rand),
            sent_since_report: false,
            rtt: None,
            rand,
            events: VecDeque::with_capacity(16),
            stats: MediaStats {
                codec: cfg.codec.name().to_string(),
                remote: cfg.remote.to_string(),
                direction: cfg.direction.attr().to_string(),
                latch: cfg.latch,
                ..Default::default()
            },
            cname: format!("voipbridge-{ssrc:08x}"),
            encoded: vec![0; frame],
            codes: Vec::new(),
            transform: None,
            queued_mean: WindowMean::new(MEAN_WINDOW),
            jb_frame: frame,
            frame,
            cfg,
        }
    }

    /// Sets the call's packet transform (SRTP); see [`PacketTransform`].
    pub fn set_transform(&mut self, t: Box<dyn PacketTransform>) {
        self.stats.transform = Some(t.describe());
        self.transform = Some(t);
    }

    /// Samples per packet (ptime at 8 kHz).
    pub fn frame(&self) -> usize {
        self.frame
    }

    /// The negotiated codec.
    pub fn codec(&self) -> Codec {
        self.cfg.codec
    }

    /// Our SSRC.
    pub fn ssrc(&self) -> u32 {
        self.sender.ssrc()
    }

    /// Where RTP goes now.
    pub fn remote(&self) -> SocketAddr {
        self.remote
    }

    /// Our current direction.
    pub fn direction(&self) -> Direction {
        self.direction
    }

    /// Applies a re-INVITE.
    pub fn update(&mut self, remote: SocketAddr, direction: Direction, now: Instant) {
        if remote != self.cfg.remote {
            tracing::info!(old = %self.cfg.remote, new = %remote, "RTP peer address changed");
            self.cfg.remote = remote;
            self.remote = remote;
            self.latched = None;
            self.rtcp_remote = None;
        }
        if direction != self.direction {
            tracing::info!(
                from = self.direction.attr(),
                to = direction.attr(),
                "media direction"
            );
            self.sender.new_talkspurt();
            if direction.receives() && !self.direction.receives() {
                // Resuming: nothing buffered before the hold may play now.
                self.jb = new_jitter_buffer(&self.cfg, self.jb_frame);
                self.playout = PlayoutQueue::new(self.cfg.codec.law(), self.jb_frame);
            }
        }
        self.direction = direction;
        self.last_rx = now;
        self.timed_out = false;
        self.stats.remote = self.remote.to_string();
        self.stats.direction = direction.attr().to_string();
    }

    /// Queues DTMF digits for RFC 4733 sending.
    pub fn send_dtmf(&mut self, digits: &str) -> Result<(), MediaError> {
        if self.cfg.telephone_event_pt.is_none() {
            return Err(MediaError::NoTelephoneEvent);
        }
        let codes = digits
            .chars()
            .map(|c| rtp::dtmf_event(c).ok_or(MediaError::BadDigit(c)))
            .collect::<Result<Vec<_>, _>>()?;
        for c in codes {
            self.dtmf_tx.queue(c);
        }
        Ok(())
    }

    /// The next event to report.
    pub fn poll_event(&mut self) -> Option<MediaEvent> {
        self.events.pop_front()
    }

    /// Counters (the device fields are the driver's to fill in).
    pub fn stats(&self) -> MediaStats {
        let mut s = self.stats.clone();
        let j = self.jb.stats();
        s.concealed = j.concealed;
        s.late = j.late;
        s.duplicates = j.duplicates;
        s.underruns = j.underruns;
        s.jitter_buffer_ms = (self.jb.target_frames() * self.jb_frame) as u32 * 1000 / RATE;
        s.queued_ms = (self.playout.level(&self.jb) as u64 * 1000 / u64::from(RATE)) as u32;
        s.queued_mean_ms = self
            .queued_mean
            .mean()
            .map(|m| m * 1000.0 / f64::from(RATE));
        s.drift_inserted = self.playout.inserted();
        s.drift_dropped = self.playout.dropped();
        if let Some(rx) = &self.rx {
            s.lost = rx.lost().max(0) as u64;
            s.jitter_ms = f64::from(rx.jitter()) * 1000.0 / f64::from(RATE);
        }
        s.rtt_ms = self.rtt.map(|d| d.as_secs_f64() * 1000.0);
        s
    }

    /// Audio queued for playback (jitter buffer and playout queue), in samples.
    pub fn queued_samples(&self) -> usize {
        self.playout.level(&self.jb)
    }

    /// Whether an RTP datagram from `from` may be looked at (before any
    /// decryption or parsing).
    fn accept_from(&self, from: SocketAddr) -> bool {
        if self.cfg.latch {
            return self.latched.is_none_or(|(addr, _)| from == addr);
        }
        !self.cfg.remote.ip().is_unspecified() && from == self.cfg.remote
    }

    /// A datagram arrived on the RTP socket (`data` may be rewritten in
    /// place by the packet transform).
    pub fn on_rtp(&mut self, from: SocketAddr, data: &mut [u8], now: Instant) {
        self.hold_level(now);
        if !self.accept_from(from) {
            self.stats.packets_ignored += 1;
            return;
        }
        let mut len = data.len();
        if let Some(t) = self.transform.as_mut() {
            match t.unprotect_rtp(data, len) {
                Ok(n) => len = n.min(data.len()),
                Err(e) => {
                    self.stats.transform_dropped += 1;
                    tracing::debug!(%from, "RTP dropped by the transform: {e}");
                    return;
                }
            }
        }
        let Some(pkt) = rtp::parse(data.get(..len).unwrap_or_default()) else {
            self.stats.packets_ignored += 1;
            return;
        };
        let is_event = Some(pkt.payload_type) == self.cfg.telephone_event_pt;
        if !is_event && pkt.payload_type != self.cfg.payload_type {
            self.stats.packets_ignored += 1;
            return;
        }
        if self.cfg.latch {
            match self.latched {
                Some((_, ssrc)) if ssrc != pkt.ssrc => {
                    self.stats.packets_ignored += 1;
                    return;
                }
                Some(_) => {}
                None => {
                    tracing::info!(sdp = %self.cfg.remote, source = %from, ssrc = pkt.ssrc, "latched RTP peer");
                    self.latched = Some((from, pkt.ssrc));
                    self.remote = from;
                    self.stats.remote = from.to_string();
                }
            }
        }
        self.last_rx = now;
        self.timed_out = false;
        self.stats.packets_received += 1;
        self.stats.bytes_received += pkt.payload.len() as u64;
        let arrival = self.arrival(now);
        let rx = match &mut self.rx {
            Some(rx) if rx.ssrc() == pkt.ssrc => rx,
            slot => {
                if slot.is_some() {
                    tracing::info!(ssrc = pkt.ssrc, "peer changed SSRC; restarting reception");
                    self.jb = new_jitter_buffer(&self.cfg, self.jb_frame);
                }
                slot.insert(ReceiveStats::new(pkt.ssrc, pkt.seq))
            }
        };
        if is_event {
            rx.on_event_packet(pkt.seq);
        } else {
            rx.on_packet(pkt.seq, pkt.timestamp, arrival as u32);
        }
        if is_event {
            if let Some(d) = self.dtmf_rx.feed(pkt.timestamp, pkt.payload) {
                tracing::info!(digit = %d, "DTMF received");
                self.stats.dtmf_received.push(d);
                self.events.push_back(MediaEvent::DtmfReceived(d));
            }
            return;
        }
        if !self.direction.receives() {
            return;
        }
        let n = pkt.payload.len();
        if !(MIN_PACKET..=MAX_PACKET).contains(&n) {
            self.stats.packets_ignored += 1;
            return;
        }
        if n != self.jb_frame {
            // The peer's packets need not follow our ptime: the jitter buffer
            // works in the peer's packets, the playout queue in samples.
            tracing::info!(samples = n, ours = self.frame, "peer packet size");
            self.jb_frame = n;
            self.jb = new_jitter_buffer(&self.cfg, n);
            self.playout = PlayoutQueue::new(self.cfg.codec.law(), n);
        }
        self.playout.on_arrival(&self.jb, arrival);
        self.jb.push(pkt.seq, pkt.timestamp, arrival, pkt.payload);
    }

    /// Whether an RTCP datagram from `from` may be looked at.
    fn accept_rtcp_from(&self, from: SocketAddr) -> bool {
        let ip = match self.latched {
            Some((addr, _)) => addr.ip(),
            None => self.cfg.remote.ip(),
        };
        !ip.is_unspecified() && from.ip() == ip
    }

    /// A datagram arrived on the RTCP socket (`data` may be rewritten in
    /// place by the packet transform).
    pub fn on_rtcp(&mut self, from: SocketAddr, data: &mut [u8], now: Instant) {
        if !self.accept_rtcp_from(from) {
            self.stats.packets_ignored += 1;
            return;
        }
        let mut len = data.len();
        if let Some(t) = self.transform.as_mut() {
            match t.unprotect_rtcp(data, len) {
                Ok(n) => len = n.min(data.len()),
                Err(e) => {
                    self.stats.transform_dropped += 1;
                    tracing::debug!(%from, "RTCP dropped by the transform: {e}");
                    return;
                }
            }
        }
        let Some(p) = report::parse(data.get(..len).unwrap_or_default()) else {
            self.stats.packets_ignored += 1;
            return;
        };
        if self.cfg.latch {
            self.rtcp_remote = Some(from);
        }
        self.stats.rtcp_received += 1;
        let ntp_now = self.ntp.ntp(now);
        if let (Some((ssrc, ntp)), Some(rx)) = (p.sender_report, self.rx.as_mut()) {
            if rx.ssrc() == ssrc {
                rx.on_sender_report(ntp, now);
            }
        }
        for b in p.blocks().iter().filter(|b| b.ssrc == self.sender.ssrc()) {
            if let Some(rtt) = report::round_trip(b, ntp_now) {
                self.rtt = Some(rtt);
            }
            self.stats.remote_fraction_lost = f64::from(b.fraction_lost) / 256.0;
            self.stats.remote_jitter_ms = f64::from(b.jitter) * 1000.0 / f64::from(RATE);
        }
        if p.bye {
            tracing::info!("peer sent RTCP BYE");
        }
    }

    /// Arrival time in samples since the start.
    fn arrival(&self, now: Instant) -> u64 {
        (now.saturating_duration_since(self.start).as_micros() * u128::from(RATE) / 1_000_000)
            as u64
    }

    /// One captured frame of linear samples (exactly
    /// [`frame`](Self::frame) of them) at `now`: encodes it and goes on as
    /// [`on_capture_codes`](Self::on_capture_codes).
    pub fn on_capture(&mut self, pcm: &[i16], now: Instant, out: &mut Outbox) {
        let mut codes = std::mem::take(&mut self.encoded);
        codes.resize(pcm.len(), 0);
        self.cfg.codec.law().encode(pcm, &mut codes);
        self.on_capture_codes(&codes, now, out);
        self.encoded = codes;
    }

    /// One captured frame as codes of the call's law (exactly
    /// [`frame`](Self::frame) of them) at `now`: puts into `out` what to
    /// send (RTP audio or DTMF, RTCP when due); the codes go out as they
    /// are. Also checks the RTP timeout.
    pub fn on_capture_codes(&mut self, codes: &[u8], now: Instant, out: &mut Outbox) {
        let frame = self.frame as u32;
        let ts = self.sender.timestamp();
        if self.direction.sends() {
            let to = self.remote;
            if let (Some(pt), Some(ev)) =
                (self.cfg.telephone_event_pt, self.dtmf_tx.tick(ts, frame))
            {
                let d = out.slot();
                let n = self
                    .sender
                    .write_at(pt, ev.marker, ev.timestamp, &ev.payload, &mut d.buf);
                if ev.marker {
                    self.stats.dtmf_sent += 1;
                }
                self.sender.skip(frame);
                self.sender.new_talkspurt();
                self.send_rtp(out, to, n);
            } else {
                let payload = codes.get(..self.frame).unwrap_or(codes);
                let d = out.slot();
                let n = self
                    .sender
                    .write(self.cfg.payload_type, payload, frame, &mut d.buf);
                self.send_rtp(out, to, n);
            }
        } else {
            self.sender.skip(frame);
            self.sender.new_talkspurt();
        }
        self.on_tick(now, out);
    }

    /// Protects and commits the RTP packet of `n` bytes in the outbox's next slot.
    fn send_rtp(&mut self, out: &mut Outbox, to: SocketAddr, n: usize) {
        if n == 0 {
            return;
        }
        let payload_len = n.saturating_sub(rtp::HEADER_LEN);
        let mut len = n;
        if let Some(t) = self.transform.as_mut() {
            match t.protect_rtp(&mut out.slot().buf, n) {
                Ok(m) => len = m,
                Err(e) => {
                    self.stats.transform_errors += 1;
                    tracing::warn!("RTP packet not sent: the transform failed: {e}");
                    return;
                }
            }
        }
        self.stats.packets_sent += 1;
        self.stats.bytes_sent += payload_len as u64;
        self.sent_since_report = true;
        out.commit(Channel::Rtp, to, len.min(MAX_DATAGRAM));
    }

    /// Time-driven work (RTCP reports, the RTP timeout) at `now`; called
    /// with every captured frame and by the driver when
    /// [`next_timeout`](Self::next_timeout) is reached.
    pub fn on_tick(&mut self, now: Instant, out: &mut Outbox) {
        if now >= self.next_rtcp {
            self.rtcp_report(now, false, out);
        }
        self.check_timeout(now);
    }

    /// When [`on_tick`](Self::on_tick) has work next.
    pub fn next_timeout(&self) -> Instant {
        let mut t = self.next_rtcp;
        if self.cfg.rtp_timeout_ms > 0 && !self.timed_out && self.direction.receives() {
            t = t.min(self.last_rx + Duration::from_millis(u64::from(self.cfg.rtp_timeout_ms)));
        }
        t
    }

    /// Writes the periodic SR/RR (or the final one, with BYE) into `out`
    /// and schedules the next.
    fn rtcp_report(&mut self, now: Instant, bye: bool, out: &mut Outbox) {
        self.rand = self
            .rand
            .wrapping_mul(1_664_525)
            .wrapping_add(1_013_904_223);
        self.next_rtcp = now + report::next_interval(RTCP_INTERVAL, self.rand >> 8);
        let sender = self.sent_since_report.then(|| SenderInfo {
            ntp: self.ntp.ntp(now),
            rtp_time: self.sender.timestamp(),
            packets: self.stats.packets_sent as u32,
            octets: self.stats.bytes_sent as u32,
        });
        let block: Option<ReportBlock> = self.rx.as_mut().map(|rx| rx.report_block(now));
        self.sent_since_report = false;
        let to = self.rtcp_destination();
        let ssrc = self.sender.ssrc();
        let d = out.slot();
        let Some(n) = report::write_report(ssrc, &self.cname, sender, block, bye, &mut d.buf)
        else {
            return;
        };
        let mut len = n;
        if let Some(t) = self.transform.as_mut() {
            match t.protect_rtcp(&mut d.buf, n) {
                Ok(m) => len = m,
                Err(e) => {
                    self.stats.transform_errors += 1;
                    tracing::warn!("RTCP packet not sent: the transform failed: {e}");
                    return;
                }
            }
        }
        self.stats.rtcp_sent += 1;
        out.commit(Channel::Rtcp, to, len.min(MAX_DATAGRAM));
    }

    /// The call's last RTCP packet (report and BYE), written into `out`
    /// when media stops.
    pub fn bye(&mut self, now: Instant, out: &mut Outbox) {
        self.rtcp_report(now, true, out);
    }

    fn rtcp_destination(&self) -> SocketAddr {
        self.rtcp_remote.unwrap_or_else(|| {
            SocketAddr::new(self.remote.ip(), self.remote.port().wrapping_add(1))
        })
    }

    fn check_timeout(&mut self, now: Instant) {
        if self.cfg.rtp_timeout_ms == 0 || self.timed_out || !self.direction.receives() {
            return;
        }
        let idle = now.saturating_duration_since(self.last_rx);
        if idle >= Duration::from_millis(u64::from(self.cfg.rtp_timeout_ms)) {
            tracing::warn!(peer = %self.remote, idle_ms = idle.as_millis() as u64, "RTP timeout: no packets from the peer");
            self.timed_out = true;
            self.events.push_back(MediaEvent::RtpTimeout);
        }
    }

    /// The playout level held since the last event that could change it
    /// (a packet, a playout pull, a shed at the pull's time).
    fn hold_level(&mut self, now: Instant) {
        let level = self.queued_samples() as f64;
        self.queued_mean.hold(now, level);
    }

    /// The playback device's fill target came down by `samples` (8 kHz):
    /// drop that much from the playout queue, a quiet sample at a time, so
    /// the latency saved there is not parked here instead.
    pub fn shed_playout(&mut self, samples: usize) {
        self.playout.shed(samples);
    }

    /// Fills a playback buffer of any length with codes of the call's law
    /// at `now` (silence when not receiving). Frames that play as they
    /// arrived are the peer's codes, bit for bit.
    pub fn playout_codes(&mut self, out: &mut [u8], now: Instant) {
        self.hold_level(now);
        if self.direction.receives() {
            let t = self.arrival(now);
            self.playout.fill(&mut self.jb, out, t);
        } else {
            out.fill(self.cfg.codec.law().silence());
        }
    }

    /// [`playout_codes`](Self::playout_codes), decoded to linear samples.
    pub fn playout(&mut self, out: &mut [i16], now: Instant) {
        let mut codes = std::mem::take(&mut self.codes);
        codes.resize(out.len(), 0);
        self.playout_codes(&mut codes, now);
        self.cfg.codec.law().decode(&codes, out);
        self.codes = codes;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A datagram the core asked to send (owned, for the tests).
    #[derive(Debug, Clone, PartialEq)]
    enum Transmit {
        Rtp(SocketAddr, Vec<u8>),
        Rtcp(SocketAddr, Vec<u8>),
    }

    fn drain(o: &mut Outbox) -> Vec<Transmit> {
        let v = o
            .iter()
            .map(|d| match d.channel {
                Channel::Rtp => Transmit::Rtp(d.to, d.data().to_vec()),
                Channel::Rtcp => Transmit::Rtcp(d.to, d.data().to_vec()),
            })
            .collect();
        o.clear();
        v
    }

    fn capture(c: &mut CallCore, pcm: &[i16], now: Instant) -> Vec<Transmit> {
        let mut o = Outbox::new();
        c.on_capture(pcm, now, &mut o);
        drain(&mut o)
    }

    const A: &str = "127.0.0.1:4000";
    const B: &str = "127.0.0.1:5000";

    fn cfg(remote: &str) -> CoreConfig {
        CoreConfig {
            remote: remote.parse().unwrap(),
            codec: Codec::Pcmu,
            payload_type: 0,
            ptime_ms: 20,
            telephone_event_pt: Some(101),
            direction: Direction::SendRecv,
            jitter_min_ms: 40,
            jitter_max_ms: 200,
            rtp_timeout_ms: 1000,
            latch: false,
        }
    }

    fn tone(hz: f64, start: usize, n: usize) -> Vec<i16> {
        (start..start + n)
            .map(|k| (10000.0 * (2.0 * std::f64::consts::PI * hz * k as f64 / 8000.0).sin()) as i16)
            .collect()
    }

    /// Two cores wired back to back in virtual time (a at 127.0.0.1:5000
    /// talking to b at 127.0.0.1:4000), `ms` milliseconds of 20 ms ticks.
    fn run(
        a: &mut CallCore,
        b: &mut CallCore,
        t0: Instant,
        ticks: std::ops::Range<u32>,
    ) -> (Vec<i16>, Vec<Transmit>) {
        let from_a: SocketAddr = B.parse().unwrap();
        let from_b: SocketAddr = A.parse().unwrap();
        let rtcp_from_a: SocketAddr = "127.0.0.1:5001".parse().unwrap();
        let rtcp_from_b: SocketAddr = "127.0.0.1:4001".parse().unwrap();
        let mut heard_by_b = Vec::new();
        let mut rtcp = Vec::new();
        for k in ticks {
            let now = t0 + Duration::from_millis(u64::from(k) * 20);
            let pa = tone(1000.0, k as usize * 160, 160);
            let pb = tone(440.0, k as usize * 160, 160);
            for t in capture(a, &pa, now) {
                match t {
                    Transmit::Rtp(_, d) => b.on_rtp(from_a, &mut d.clone(), now),
                    Transmit::Rtcp(_, ref d) => {
                        b.on_rtcp(rtcp_from_a, &mut d.clone(), now);
                        rtcp.push(t);
                    }
                }
            }
            for t in capture(b, &pb, now) {
                match t {
                    Transmit::Rtp(_, d) => a.on_rtp(from_b, &mut d.clone(), now),
                    Transmit::Rtcp(_, ref d) => {
                        a.on_rtcp(rtcp_from_b, &mut d.clone(), now + Duration::from_millis(30));
                        rtcp.push(t);
                    }
                }
            }
            let mut out = vec![0i16; 160];
            b.playout(&mut out, now);
            heard_by_b.extend(out);
            a.playout(&mut [0i16; 160], now);
        }
        (heard_by_b, rtcp)
    }

    fn pair() -> (CallCore, CallCore, Instant) {
        let t0 = Instant::now();
        let a = CallCore::new(cfg(A), t0, NtpClock::new(t0, 1 << 40), (0xA, 100, 1000));
        let b = CallCore::new(cfg(B), t0, NtpClock::new(t0, 1 << 40), (0xB, 65530, 7));
        (a, b, t0)
    }

    #[test]
    fn audio_flows_with_marker_only_on_the_first_packet() {
        let (mut a, _b, t0) = pair();
        let out = capture(&mut a, &[0; 160], t0);
        let out2 = capture(&mut a, &[0; 160], t0 + Duration::from_millis(20));
        let p1 = match &out[..] {
            [Transmit::Rtp(to, d)] => {
                assert_eq!(*to, A.parse().unwrap());
                rtp::parse(d).unwrap()
            }
            o => panic!("{o:?}"),
        };
        let p2 = match &out2[..] {
            [Transmit::Rtp(_, d)] => rtp::parse(d).unwrap(),
            o => panic!("{o:?}"),
        };
        assert!(p1.marker && !p2.marker);
        assert_eq!((p1.ssrc, p1.seq, p1.timestamp), (0xA, 100, 1000));
        assert_eq!((p2.seq, p2.timestamp), (101, 1160));
        assert_eq!(p1.payload, vec![0xFF; 160]);
        assert_eq!(a.stats().packets_sent, 2);
        assert_eq!(a.stats().bytes_sent, 320);
    }

    #[test]
    fn tone_arrives_through_two_cores() {
        let (mut a, mut b, t0) = pair();
        let (heard, _) = run(&mut a, &mut b, t0, 0..100);
        let tail = &heard[800..];
        let level = |hz: f64| crate::media::analysis::tone_level(tail, hz, 8000.0);
        assert!(level(1000.0) > 5000.0, "{}", level(1000.0));
        assert!(level(440.0) < 100.0);
        let s = b.stats();
        assert_eq!(s.packets_received, 100);
        assert_eq!(s.lost, 0);
        assert_eq!(s.underruns, 0);
    }

    #[test]
    fn peer_packets_of_another_ptime_play_intact() {
        // The peer sends 30 ms packets; we capture and play in 20 ms frames.
        let t0 = Instant::now();
        let mut b = CallCore::new(cfg(B), t0, NtpClock::new(t0, 0), (1, 2, 3));
        let mut peer = Sender::with_bases(9, 100, 0);
        let from: SocketAddr = B.parse().unwrap();
        let x = tone(1000.0, 0, 8000 * 3);
        let mut heard = Vec::new();
        let mut sent = 0usize;
        for k in 0..150u64 {
            let now = t0 + Duration::from_millis(k * 20);
            // A packet leaves (and, on loopback, arrives) as soon as its
            // 30 ms of audio exist.
            while (sent + 240) as u64 <= k * 160 {
                let mut codes = vec![0u8; 240];
                Codec::Pcmu.law().encode(&x[sent..sent + 240], &mut codes);
                let at = t0 + Duration::from_micros((sent as u64 + 240) * 125);
                b.on_rtp(from, &mut peer.packet(0, &codes, 240), at);
                sent += 240;
            }
            let mut out = vec![0i16; 160];
            b.playout(&mut out, now);
            heard.extend(out);
        }
        let s = b.stats();
        assert_eq!((s.concealed, s.underruns, s.late), (0, 0, 0), "{s:?}");
        assert!(s.drift_inserted + s.drift_dropped <= 2, "{s:?}");
        let tail = &heard[4000..];
        let level = crate::media::analysis::tone_level(tail, 1000.0, 8000.0);
        assert!((level - 10000.0).abs() < 300.0, "{level}");
        // Continuous: the audio is the tone itself, delayed (x[0] is 0, so
        // the first non-zero sample heard is x[1]).
        let start = heard.iter().position(|&v| v != 0).unwrap() - 1;
        let played = &heard[start..start + 8000];
        let err = played
            .iter()
            .zip(&x)
            .map(|(a, b)| (i32::from(*a) - i32::from(*b)).abs())
            .max()
            .unwrap();
        assert!(err < 700, "max deviation {err}");
    }

    #[test]
    fn strict_mode_talks_only_to_the_sdp_address() {
        let t0 = Instant::now();
        let mut a = CallCore::new(cfg(A), t0, NtpClock::new(t0, 0), (1, 2, 3));
        let mut peer = Sender::with_bases(9, 0, 0);
        let sdp: SocketAddr = A.parse().unwrap();
        // Another port of the same IP (a NAT, or someone else on the
        // peer's host), another IP: ignored, and nothing latches.
        for from in ["127.0.0.1:4444", "127.0.0.2:4000"] {
            a.on_rtp(
                from.parse().unwrap(),
                &mut peer.packet(0, &[0xFF; 160], 160),
                t0,
            );
        }
        assert_eq!(a.remote(), sdp);
        // From the SDP's address: accepted.
        a.on_rtp(sdp, &mut peer.packet(0, &[0xFF; 160], 160), t0);
        // Wrong payload type and garbage: ignored.
        a.on_rtp(sdp, &mut peer.packet(18, &[0; 20], 160), t0);
        a.on_rtp(sdp, &mut b"hello".to_vec(), t0);
        let s = a.stats();
        assert_eq!((s.packets_received, s.packets_ignored), (1, 4));
        assert!(!s.latch);
        // We send to the SDP's address, RTCP to its port + 1, and an RTCP
        // packet from another port does not redirect our reports.
        match &capture(&mut a, &[0; 160], t0)[..] {
            [Transmit::Rtp(to, _)] => assert_eq!(*to, sdp),
            o => panic!("{o:?}"),
        }
        let rr = report::build_report(9, "x", None, None).unwrap();
        a.on_rtcp("127.0.0.1:7777".parse().unwrap(), &mut rr.clone(), t0);
        a.on_rtcp("127.0.0.9:4001".parse().unwrap(), &mut rr.clone(), t0);
        assert_eq!(a.stats().rtcp_received, 1, "from the SDP's IP only");
        let mut o = Outbox::new();
        a.bye(t0, &mut o);
        assert_eq!(
            o.iter().next().map(|d| d.to),
            Some("127.0.0.1:4001".parse().unwrap())
        );
        // A re-INVITE moves us to the new address.
        let moved: SocketAddr = "127.0.0.3:6000".parse().unwrap();
        a.update(moved, Direction::SendRecv, t0);
        a.on_rtp(moved, &mut peer.packet(0, &[0xFF; 160], 160), t0);
        assert_eq!(a.stats().packets_received, 2);
        assert_eq!(a.remote(), moved);
        // An unspecified SDP address (old-style hold): nothing is accepted.
        let mut h = CallCore::new(cfg("0.0.0.0:4000"), t0, NtpClock::new(t0, 0), (1, 2, 3));
        h.on_rtp(
            "0.0.0.0:4000".parse().unwrap(),
            &mut peer.packet(0, &[0xFF; 160], 160),
            t0,
        );
        h.on_rtp(sdp, &mut peer.packet(0, &[0xFF; 160], 160), t0);
        assert_eq!(h.stats().packets_received, 0);
    }

    #[test]
    fn latch_mode_latches_the_first_source_and_locks_its_ssrc() {
        let t0 = Instant::now();
        let latch = CoreConfig {
            latch: true,
            ..cfg("10.0.0.5:4000")
        };
        let mut a = CallCore::new(latch, t0, NtpClock::new(t0, 0), (1, 2, 3));
        let mut peer = Sender::with_bases(9, 0, 0);
        let mut other = Sender::with_bases(66, 0, 0);
        let nat: SocketAddr = "127.0.0.1:4444".parse().unwrap();
        // Before any packet we send to the SDP's (private) address.
        match &capture(&mut a, &[0; 160], t0)[..] {
            [Transmit::Rtp(to, _)] => assert_eq!(*to, "10.0.0.5:4000".parse().unwrap()),
            o => panic!("{o:?}"),
        }
        // Garbage and a wrong payload type do not latch.
        a.on_rtp("127.0.0.7:1".parse().unwrap(), &mut b"hello".to_vec(), t0);
        a.on_rtp(
            "127.0.0.7:1".parse().unwrap(),
            &mut peer.packet(18, &[0; 20], 160),
            t0,
        );
        // The first valid packet, from anywhere: latched.
        a.on_rtp(nat, &mut peer.packet(0, &[0xFF; 160], 160), t0);
        assert_eq!(a.remote(), nat);
        assert!(a.stats().latch);
        // Another port, another IP: ignored. The latched source with
        // another SSRC (an injected stream): ignored.
        for from in ["127.0.0.1:4000", "127.0.0.2:4444"] {
            a.on_rtp(
                from.parse().unwrap(),
                &mut peer.packet(0, &[0xFF; 160], 160),
                t0,
            );
        }
        a.on_rtp(nat, &mut other.packet(0, &[0xFF; 160], 160), t0);
        // The locked stream goes on.
        a.on_rtp(nat, &mut peer.packet(0, &[0xFF; 160], 160), t0);
        let s = a.stats();
        assert_eq!((s.packets_received, s.packets_ignored), (2, 5));
        // Our packets now go to the latched source, RTCP to its port + 1
        // until RTCP arrives from its IP.
        match &capture(&mut a, &[0; 160], t0)[..] {
            [Transmit::Rtp(to, _)] => assert_eq!(*to, nat),
            o => panic!("{o:?}"),
        }
        let rr = report::build_report(9, "x", None, None).unwrap();
        let mut o = Outbox::new();
        a.bye(t0, &mut o);
        assert_eq!(
            o.iter().next().map(|d| d.to),
            Some("127.0.0.1:4445".parse().unwrap())
        );
        a.on_rtcp("127.0.0.1:5555".parse().unwrap(), &mut rr.clone(), t0);
        o.clear();
        a.bye(t0, &mut o);
        assert_eq!(
            o.iter().next().map(|d| d.to),
            Some("127.0.0.1:5555".parse().unwrap())
        );
        // A re-INVITE with a new address unlatches.
        let moved: SocketAddr = "127.0.0.3:6000".parse().unwrap();
        a.update(moved, Direction::SendRecv, t0);
        a.on_rtp(
            "127.0.0.3:6002".parse().unwrap(),
            &mut other.packet(0, &[0xFF; 160], 160),
            t0,
        );
        assert_eq!(a.remote(), "127.0.0.3:6002".parse().unwrap());
    }

    #[test]
    fn resume_does_not_play_audio_buffered_before_the_hold() {
        let (mut a, mut b, t0) = pair();
        run(&mut a, &mut b, t0, 0..20);
        // b puts the call on hold (sendonly: it stops playing), a's packets
        // in flight still arrive, then b resumes.
        let now = t0 + Duration::from_millis(400);
        b.update(B.parse().unwrap(), Direction::SendOnly, now);
        let mut out = vec![1i16; 160];
        b.playout(&mut out, now);
        assert!(out.iter().all(|&v| v == 0), "on hold: silence");
        b.update(B.parse().unwrap(), Direction::SendRecv, now);
        b.playout(&mut out, now);
        assert!(out.iter().all(|&v| v == 0), "nothing stale after resume");
        let (heard, _) = run(&mut a, &mut b, t0, 21..60);
        let level = crate::media::analysis::tone_level(&heard[800..], 1000.0, 8000.0);
        assert!(level > 5000.0, "audio flows again: {level}");
    }

    /// 20 ms packets pulled 10 ms at a time: the level a snapshot shows
    /// swings by a packet, and `queued_mean_ms` is its time average (here
    /// checked against the level sampled every millisecond), not a phase.
    #[test]
    fn the_queue_mean_is_the_time_average_of_its_sawtooth() {
        let t0 = Instant::now();
        let mut a = CallCore::new(cfg(A), t0, NtpClock::new(t0, 0), (1, 2, 3));
        let mut b = CallCore::new(cfg(B), t0, NtpClock::new(t0, 0), (4, 5, 6));
        let from: SocketAddr = B.parse().unwrap();
        let frame = tone(300.0, 0, 160);
        let mut out = vec![0u8; 80];
        assert_eq!(b.stats().queued_mean_ms, None, "no whole second yet");
        let (mut sum, mut n, mut lo, mut hi) = (0.0f64, 0u32, f64::MAX, 0.0f64);
        for ms in 0..5000u64 {
            let now = t0 + Duration::from_millis(ms);
            if ms % 20 == 3 {
                for t in capture(&mut a, &frame, now - Duration::from_millis(3)) {
                    if let Transmit::Rtp(_, d) = t {
                        b.on_rtp(from, &mut d.clone(), now);
                    }
                }
            }
            if ms % 10 == 7 {
                b.playout_codes(&mut out, now);
            }
            if ms >= 4000 {
                // The last whole second, as the core's window sees it.
                let level = b.queued_samples() as f64 / 8.0;
                sum += level;
                n += 1;
                lo = lo.min(level);
                hi = hi.max(level);
            }
        }
        // Close the window at 5 s (the next event marks its end).
        b.playout_codes(&mut out, t0 + Duration::from_millis(5000));
        let mean = b.stats().queued_mean_ms.unwrap_or(-1.0);
        let sampled = sum / f64::from(n);
        assert!(hi - lo >= 15.0, "a sawtooth of a packet: {lo}..{hi} ms");
        assert!(
            (mean - sampled).abs() < 1.5,
            "mean {mean:.2} ms, sampled every ms {sampled:.2} ({lo}..{hi})"
        );
    }

    /// An hour-long call whose far end's clock runs 100 ppm fast, then one
    /// 100 ppm slow, through the whole core in virtual time: the playback
    /// queue stays bounded and never underruns.
    #[test]
    fn hour_long_call_with_100_ppm_clock_offsets() {
        for ppm in [100.0f64, -100.0] {
            let t0 = Instant::now();
            let mut a = CallCore::new(cfg(A), t0, NtpClock::new(t0, 0), (1, 2, 3));
            let mut b = CallCore::new(cfg(B), t0, NtpClock::new(t0, 0), (4, 5, 6));
            let from: SocketAddr = B.parse().unwrap();
            let a_period = 20_000.0 / (1.0 + ppm * 1e-6); // µs of our time
            let frame = tone(300.0, 0, 160);
            let mut out = vec![0i16; 160];
            let (mut next_a, mut max_queued) = (0u64, 0u32);
            for tick in 0..180_000u64 {
                let now_us = tick * 20_000;
                // Every packet a sent up to now, 3 ms of network delay.
                while (next_a as f64 * a_period) as u64 + 3000 <= now_us {
                    let at = t0 + Duration::from_micros((next_a as f64 * a_period) as u64 + 3000);
                    for t in capture(&mut a, &frame, at) {
                        if let Transmit::Rtp(_, d) = t {
                            b.on_rtp(from, &mut d.clone(), at);
                        }
                    }
                    next_a += 1;
                }
                b.playout(&mut out, t0 + Duration::from_micros(now_us));
                if tick > 1000 {
                    max_queued = max_queued.max(b.stats().queued_ms);
                }
            }
            let s = b.stats();
            assert_eq!(
                (s.underruns, s.concealed, s.late),
                (0, 0, 0),
                "{ppm}: {s:?}"
            );
            // 100 ppm of an hour is 2880 samples to drop or repeat.
            let corrections = if ppm > 0.0 {
                s.drift_dropped
            } else {
                s.drift_inserted
            };
            assert!((2500..4000).contains(&corrections), "{ppm}: {s:?}");
            assert!(max_queued <= 60, "{ppm}: queue reached {max_queued} ms");
        }
    }

    /// Garbage and hostile datagrams on both sockets: counted, never a panic.
    #[test]
    fn random_datagrams_never_panic() {
        let (mut a, _, t0) = pair();
        let from: SocketAddr = A.parse().unwrap();
        let mut rng = 0x9E37_79B9u32;
        let mut next = move || {
            rng ^= rng << 13;
            rng ^= rng >> 17;
            rng ^= rng << 5;
            rng
        };
        let mut peer = Sender::with_bases(5, 0, 0);
        for k in 0..20_000u64 {
            let now = t0 + Duration::from_millis(k);
            let len = (next() % 1500) as usize;
            let mut d: Vec<u8> = (0..len).map(|_| next() as u8).collect();
            match k % 4 {
                // RTP-looking: version 2, our payload types, random sizes.
                0 if len >= 12 => {
                    d[0] = 0x80 | (d[0] & 0x3F);
                    d[1] = [0u8, 101, 0x80, 8][(next() % 4) as usize];
                }
                1 => {
                    let n = (next() % 2000) as usize;
                    let pt = if next() % 2 == 0 { 0 } else { 101 };
                    d = peer.packet(pt, &vec![0x55; n], 160);
                }
                _ => {}
            }
            a.on_rtp(from, &mut d.clone(), now);
            a.on_rtcp(from, &mut d.clone(), now);
            if k % 20 == 0 {
                capture(&mut a, &[0; 160], now);
                a.playout(&mut [0; 160], now);
            }
        }
        let s = a.stats();
        assert!(s.packets_ignored > 10_000, "{s:?}");
    }

    #[test]
    fn bye_ends_with_an_rtcp_goodbye() {
        let (mut a, mut b, t0) = pair();
        run(&mut a, &mut b, t0, 0..5);
        let mut o = Outbox::new();
        a.bye(t0 + Duration::from_millis(100), &mut o);
        match &drain(&mut o)[..] {
            [Transmit::Rtcp(to, d)] => {
                assert_eq!(to.port(), 4001);
                let p = report::parse(d).unwrap();
                assert!(p.bye);
                assert_eq!(p.sender_report.map(|s| s.0), Some(0xA));
                assert_eq!(p.blocks().len(), 1);
            }
            o => panic!("{o:?}"),
        }
    }

    #[test]
    fn hold_stops_sending_and_resume_sets_the_marker() {
        let (mut a, _, t0) = pair();
        capture(&mut a, &[0; 160], t0);
        a.update(A.parse().unwrap(), Direction::RecvOnly, t0);
        assert!(capture(&mut a, &[0; 160], t0).is_empty());
        a.update(A.parse().unwrap(), Direction::SendRecv, t0);
        match &capture(&mut a, &[0; 160], t0)[..] {
            [Transmit::Rtp(_, d)] => {
                let p = rtp::parse(d).unwrap();
                assert!(p.marker);
                assert_eq!(p.timestamp, 1000 + 2 * 160, "time moved on while held");
            }
            o => panic!("{o:?}"),
        }
    }

    #[test]
    fn dtmf_digits_arrive_in_order_once_each() {
        let (mut a, mut b, t0) = pair();
        a.send_dtmf("123#").unwrap();
        assert!(matches!(a.send_dtmf("1x"), Err(MediaError::BadDigit('x'))));
        run(&mut a, &mut b, t0, 0..60);
        let mut got = Vec::new();
        while let Some(e) = b.poll_event() {
            got.push(e);
        }
        let digits: String = got
            .iter()
            .filter_map(|e| match e {
                MediaEvent::DtmfReceived(c) => Some(*c),
                _ => None,
            })
            .collect();
        assert_eq!(digits, "123#");
        assert_eq!(b.stats().dtmf_received, "123#");
        assert_eq!(a.stats().dtmf_sent, 4);
        let mut c = CallCore::new(
            CoreConfig {
                telephone_event_pt: None,
                ..cfg(A)
            },
            t0,
            NtpClock::new(t0, 0),
            (1, 1, 1),
        );
        assert!(matches!(
            c.send_dtmf("1"),
            Err(MediaError::NoTelephoneEvent)
        ));
    }

    #[test]
    fn rtp_timeout_fires_once_and_rearms() {
        let (mut a, mut b, t0) = pair();
        run(&mut a, &mut b, t0, 0..10);
        while a.poll_event().is_some() {}
        // b goes silent: a keeps sending for 1.2 s.
        for k in 10..70u64 {
            capture(&mut a, &[0; 160], t0 + Duration::from_millis(k * 20));
        }
        assert_eq!(a.poll_event(), Some(MediaEvent::RtpTimeout));
        assert_eq!(a.poll_event(), None);
        // On hold (recvonly is ours; the peer sends nothing): no timeout.
        let (mut c, mut d, t0) = pair();
        run(&mut c, &mut d, t0, 0..10);
        c.update(
            A.parse().unwrap(),
            Direction::SendOnly,
            t0 + Duration::from_millis(200),
        );
        for k in 10..200u64 {
            capture(&mut c, &[0; 160], t0 + Duration::from_millis(k * 20));
        }
        assert_eq!(c.poll_event(), None);
    }

    #[test]
    fn rtcp_reports_carry_loss_jitter_and_give_rtt() {
        let (mut a, mut b, t0) = pair();
        let (_, rtcp) = run(&mut a, &mut b, t0, 0..1000);
        // Reports every 2.5–7.5 s from each side over 20 s.
        let n = rtcp.len();
        assert!((4..=18).contains(&n), "{n} reports");
        // a's RTCP reached b at once; b's reached a 30 ms late: the RTT a
        // measures from b's reports is 30 ms (the delay we added).
        let rtt = a.stats().rtt_ms.expect("rtt measured");
        assert!((rtt - 30.0).abs() < 1.0, "rtt {rtt}");
        let sb = b.stats();
        assert_eq!(sb.lost, 0);
        assert!(sb.rtcp_received >= 2 && sb.rtcp_sent >= 2);
        assert_eq!(a.stats().remote_fraction_lost, 0.0);
        // The reports go to port + 1 of the peer.
        for t in rtcp {
            match t {
                Transmit::Rtcp(to, _) => assert!(to.port() == 4001 || to.port() == 5001, "{to}"),
                Transmit::Rtp(..) => unreachable!(),
            }
        }
    }

    /// A toy transform with a 4-byte keyed tag, standing in for SRTP.
    struct Tagged(u32);

    impl Tagged {
        fn tag(&self, data: &[u8]) -> [u8; 4] {
            let sum = data
                .iter()
                .fold(self.0, |a, &b| a.rotate_left(5) ^ u32::from(b));
            sum.to_be_bytes()
        }
        fn protect(&self, buf: &mut [u8], len: usize) -> Result<usize, TransformError> {
            let t = self.tag(buf.get(..len).ok_or(TransformError::Malformed)?);
            buf.get_mut(len..len + 4)
                .ok_or(TransformError::NoRoom)?
                .copy_from_slice(&t);
            Ok(len + 4)
        }
        fn unprotect(&self, buf: &mut [u8], len: usize) -> Result<usize, TransformError> {
            let n = len.checked_sub(4).ok_or(TransformError::Malformed)?;
            if buf.get(n..len) != Some(&self.tag(&buf[..n])[..]) {
                return Err(TransformError::Auth);
            }
            Ok(n)
        }
    }

    use crate::media::hooks::TransformError;

    impl PacketTransform for Tagged {
        fn protect_rtp(&mut self, buf: &mut [u8], len: usize) -> Result<usize, TransformError> {
            self.protect(buf, len)
        }
        fn protect_rtcp(&mut self, buf: &mut [u8], len: usize) -> Result<usize, TransformError> {
            self.protect(buf, len)
        }
        fn unprotect_rtp(&mut self, buf: &mut [u8], len: usize) -> Result<usize, TransformError> {
            self.unprotect(buf, len)
        }
        fn unprotect_rtcp(&mut self, buf: &mut [u8], len: usize) -> Result<usize, TransformError> {
            self.unprotect(buf, len)
        }
        fn describe(&self) -> String {
            format!("tagged {:x}", self.0)
        }
    }

    #[test]
    fn the_packet_transform_protects_both_ways_and_drops_what_fails() {
        let (mut a, mut b, t0) = pair();
        a.set_transform(Box::new(Tagged(7)));
        b.set_transform(Box::new(Tagged(7)));
        let (heard, rtcp) = run(&mut a, &mut b, t0, 0..400);
        // Every packet carries the tag (RTP 12 + 160 + 4), and audio and
        // RTCP flow as without it.
        let out = capture(&mut a, &[0; 160], t0 + Duration::from_secs(9));
        match &out[..] {
            [Transmit::Rtp(_, d), ..] => assert_eq!(d.len(), 176),
            o => panic!("{o:?}"),
        }
        let level = crate::media::analysis::tone_level(&heard[800..], 1000.0, 8000.0);
        assert!(level > 5000.0, "{level}");
        assert!(!rtcp.is_empty());
        let sb = b.stats();
        assert_eq!((sb.lost, sb.transform_dropped), (0, 0), "{sb:?}");
        assert!(sb.rtcp_received > 0 && a.stats().rtt_ms.is_some(), "{sb:?}");
        assert_eq!(sb.transform.as_deref(), Some("tagged 7"));
        // A peer with another key: everything it sends is dropped and counted,
        // nothing plays, nothing latches, no RTCP is believed.
        let (mut c, mut d, t0) = pair();
        c.set_transform(Box::new(Tagged(7)));
        d.set_transform(Box::new(Tagged(8)));
        let (heard, _) = run(&mut c, &mut d, t0, 0..400);
        let sd = d.stats();
        assert_eq!(sd.packets_received, 0, "{sd:?}");
        assert!(sd.transform_dropped >= 400, "{sd:?}");
        assert_eq!(sd.rtcp_received, 0);
        assert!(heard.iter().all(|&v| v == 0));
        // Plain RTP to a call that expects the transform: dropped too.
        let (mut e, _, t0) = pair();
        e.set_transform(Box::new(Tagged(7)));
        let mut peer = Sender::with_bases(9, 0, 0);
        e.on_rtp(
            A.parse().unwrap(),
            &mut peer.packet(0, &[0xFF; 160], 160),
            t0,
        );
        assert_eq!(e.stats().transform_dropped, 1);
    }

    #[test]
    #[cfg(feature = "srtp")]
    fn srtp_protects_rtp_and_rtcp_both_ways_and_drops_forgeries_and_replays() {
        use crate::srtp::{sdes::Negotiated, transform_factory, MasterKey, Suite};
        for suite in Suite::ALL {
            let (ka, kb) = (MasterKey::generate(), MasterKey::generate());
            let fa = transform_factory(Negotiated {
                suite,
                local: ka.clone(),
                remote: kb.clone(),
            });
            let fb = transform_factory(Negotiated {
                suite,
                local: kb.clone(),
                remote: ka.clone(),
            });
            let (mut a, mut b, t0) = pair();
            a.set_transform((fa.0)().unwrap());
            b.set_transform((fb.0)().unwrap());
            let (heard, rtcp) = run(&mut a, &mut b, t0, 0..400);
            let level = crate::media::analysis::tone_level(&heard[800..], 1000.0, 8000.0);
            assert!(level > 5000.0, "{suite}: {level}");
            assert!(!rtcp.is_empty());
            let sb = b.stats();
            assert_eq!((sb.lost, sb.transform_dropped), (0, 0), "{sb:?}");
            assert!(sb.rtcp_received > 0 && a.stats().rtt_ms.is_some(), "{sb:?}");
            assert_eq!(sb.transform, Some(format!("SRTP {suite}")));
            // On the wire: the tag is there and the payload is not the audio.
            let t9 = t0 + Duration::from_secs(9);
            let out = capture(&mut a, &[0x55; 160], t9);
            let Some(Transmit::Rtp(_, wire)) = out.first() else {
                panic!("{out:?}")
            };
            assert_eq!(wire.len(), 12 + 160 + suite.rtp_tag_len());
            assert!(wire[12..172].iter().filter(|&&x| x == 0x55).count() < 20);
            // A replay of a packet b took already: dropped and counted.
            let wire = wire.clone();
            b.on_rtp(B.parse().unwrap(), &mut wire.clone(), t9);
            let before = b.stats();
            b.on_rtp(B.parse().unwrap(), &mut wire.clone(), t9);
            let after = b.stats();
            assert_eq!(after.transform_dropped, before.transform_dropped + 1);
            assert_eq!(after.packets_received, before.packets_received);
            // A flipped payload bit: fails authentication.
            let t10 = t0 + Duration::from_secs(10);
            let out = capture(&mut a, &[0x55; 160], t10);
            let Some(Transmit::Rtp(_, wire)) = out.first() else {
                panic!("{out:?}")
            };
            let mut forged = wire.clone();
            forged[20] ^= 1;
            b.on_rtp(B.parse().unwrap(), &mut forged, t10);
            assert_eq!(b.stats().transform_dropped, before.transform_dropped + 2);
            // Both sides receiving with the wrong key: everything dropped.
            let (mut c, mut d, t0) = pair();
            c.set_transform((fa.0)().unwrap());
            d.set_transform((fa.0)().unwrap());
            let (heard, _) = run(&mut c, &mut d, t0, 0..100);
            assert_eq!(d.stats().packets_received, 0);
            assert!(d.stats().transform_dropped >= 100);
            assert!(heard.iter().all(|&v| v == 0));
        }
    }
}
