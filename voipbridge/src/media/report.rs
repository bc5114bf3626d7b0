//! RTCP (RFC 3550) statistics, sans-IO: sequence and loss accounting
//! (appendix A.1/A.3), interarrival jitter (A.8), round-trip time from
//! LSR/DLSR (section 6.4.1), and SR/RR + SDES compound packets marshalled with
//! the webrtc-rs `rtcp` crate.

use ::rtcp::packet::Packet;
use ::rtcp::receiver_report::ReceiverReport;
use ::rtcp::reception_report::ReceptionReport;
use ::rtcp::sender_report::SenderReport;
use ::rtcp::source_description::{
    SdesType, SourceDescription, SourceDescriptionChunk, SourceDescriptionItem,
};
use bytes::Bytes;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Seconds between 1900 (NTP era 0) and 1970 (Unix epoch).
const NTP_UNIX_OFFSET: u64 = 2_208_988_800;
/// RFC 3550 A.1: a jump forward of up to this many is accepted as loss.
const MAX_DROPOUT: u16 = 3000;
/// RFC 3550 A.1: a jump backward of up to this many is a reordered packet.
const MAX_MISORDER: u16 = 100;

/// Maps the monotonic clock to 64-bit NTP time (32.32 fixed point).
#[derive(Debug, Clone, Copy)]
pub struct NtpClock {
    epoch: Instant,
    ntp_at_epoch: u64,
}

impl NtpClock {
    /// A clock that reads `ntp_at_epoch` at `epoch` (tests use any value).
    pub fn new(epoch: Instant, ntp_at_epoch: u64) -> NtpClock {
        NtpClock {
            epoch,
            ntp_at_epoch,
        }
    }

    /// A clock anchored to the system's wall clock now.
    pub fn system() -> NtpClock {
        let since = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or(Duration::ZERO);
        let ntp = to_ntp(since) + ((NTP_UNIX_OFFSET) << 32);
        NtpClock::new(Instant::now(), ntp)
    }

    /// NTP time at `now`.
    pub fn ntp(&self, now: Instant) -> u64 {
        self.ntp_at_epoch
            .wrapping_add(to_ntp(now.saturating_duration_since(self.epoch)))
    }
}

fn to_ntp(d: Duration) -> u64 {
    (d.as_secs() << 32) + ((u64::from(d.subsec_nanos()) << 32) / 1_000_000_000)
}

/// The middle 32 bits of an NTP timestamp (16.16 seconds), as in LSR.
pub fn ntp_middle(ntp: u64) -> u32 {
    (ntp >> 16) as u32
}

/// Reception statistics of one source (RFC 3550 appendix A).
#[derive(Debug, Clone)]
pub struct ReceiveStats {
    ssrc: u32,
    base_seq: u32,
    max_seq: u16,
    cycles: u32,
    received: u64,
    expected_prior: u64,
    received_prior: u64,
    transit: Option<i64>,
    jitter: f64,
    last_sr: Option<(u32, Instant)>,
}

impl ReceiveStats {
    /// Starts counting at the first packet of `ssrc`, sequence `seq`.
    pub fn new(ssrc: u32, seq: u16) -> ReceiveStats {
        ReceiveStats {
            ssrc,
            base_seq: u32::from(seq),
            max_seq: seq.wrapping_sub(1),
            cycles: 0,
            received: 0,
            expected_prior: 0,
            received_prior: 0,
            transit: None,
            jitter: 0.0,
            last_sr: None,
        }
    }

    /// The source.
    pub fn ssrc(&self) -> u32 {
        self.ssrc
    }

    /// Accounts one packet. `arrival` is the local arrival time in RTP
    /// timestamp units (any origin).
    pub fn on_packet(&mut self, seq: u16, rtp_ts: u32, arrival: u32) {
        self.count(seq);
        // A.8: J += (|D| - J) / 16, D the difference of relative transit times.
        let transit = i64::from(arrival.wrapping_sub(rtp_ts) as i32);
        if let Some(prev) = self.transit {
            let d = (transit - prev).abs() as f64;
            self.jitter += (d - self.jitter) / 16.0;
        }
        self.transit = Some(transit);
    }

    /// Accounts a packet in sequence and loss only: RFC 4733 events repeat
    /// their start timestamp, so they would read as jitter.
    pub fn on_event_packet(&mut self, seq: u16) {
        self.count(seq);
    }

    fn count(&mut self, seq: u16) {
        let udelta = seq.wrapping_sub(self.max_seq);
        if udelta < MAX_DROPOUT {
            if seq < self.max_seq {
                self.cycles = self.cycles.wrapping_add(1 << 16);
            }
            self.max_seq = seq;
        } else if udelta <= u16::MAX - MAX_MISORDER {
            // A very large jump: the source restarted its numbering.
            self.base_seq = u32::from(seq);
            self.max_seq = seq;
            self.cycles = 0;
            self.received = 0;
            self.expected_prior = 0;
            self.received_prior = 0;
        }
        // else: duplicate or reordered, counted as received.
        self.received += 1;
    }

    /// Extended highest sequence number received.
    pub fn extended_max(&self) -> u32 {
        self.cycles.wrapping_add(u32::from(self.max_seq))
    }

    /// Packets expected so far.
    pub fn expected(&self) -> u64 {
        u64::from(
            self.extended_max()
                .wrapping_sub(self.base_seq)
                .wrapping_add(1),
        )
    }

    /// Packets received (duplicates included, as RFC 3550 counts them).
    pub fn received(&self) -> u64 {
        self.received
    }

    /// Cumulative packets lost (negative with duplicates).
    pub fn lost(&self) -> i64 {
        self.expected() as i64 - self.received as i64
    }

    /// Interarrival jitter in timestamp units.
    pub fn jitter(&self) -> u32 {
        self.jitter as u32
    }

    /// Notes an SR from this source, for LSR/DLSR in our next report.
    pub fn on_sender_report(&mut self, ntp: u64, now: Instant) {
        self.last_sr = Some((ntp_middle(ntp), now));
    }

    /// The reception report block for our next SR/RR; starts a new interval.
    pub fn report_block(&mut self, now: Instant) -> ReceptionReport {
        let expected = self.expected();
        let expected_interval = expected.saturating_sub(self.expected_prior);
        let received_interval = self.received.saturating_sub(self.received_prior);
        self.expected_prior = expected;
        self.received_prior = self.received;
        let lost_interval = expected_interval as i64 - received_interval as i64;
        let fraction_lost = if expected_interval == 0 || lost_interval <= 0 {
            0
        } else {
            ((lost_interval << 8) / expected_interval as i64).min(255) as u8
        };
        // Cumulative loss is a signed 24-bit field.
        let total_lost = (self.lost().clamp(-0x80_0000, 0x7F_FFFF) as i32 as u32) & 0xFF_FFFF;
        let (last_sender_report, delay) = match self.last_sr {
            Some((lsr, at)) => (
                lsr,
                (to_ntp(now.saturating_duration_since(at)) >> 16) as u32,
            ),
            None => (0, 0),
        };
        ReceptionReport {
            ssrc: self.ssrc,
            fraction_lost,
            total_lost,
            last_sequence_number: self.extended_max(),
            jitter: self.jitter(),
            last_sender_report,
            delay,
        }
    }
}

/// Round-trip time from a report block about us (RFC 3550 6.4.1):
/// `A - LSR - DLSR`, `None` when the peer has not seen an SR of ours yet.
pub fn round_trip(block: &ReceptionReport, arrival_ntp: u64) -> Option<Duration> {
    if block.last_sender_report == 0 {
        return None;
    }
    let rtt = ntp_middle(arrival_ntp)
        .wrapping_sub(block.last_sender_report)
        .wrapping_sub(block.delay);
    if rtt > 1 << 31 {
        return None; // negative: clocks or report are inconsistent
    }
    Some(Duration::from_nanos(u64::from(rtt) * 1_000_000_000 / 65536))
}

/// What we sent, for the sender-info part of an SR.
#[derive(Debug, Clone, Copy)]
pub struct SenderInfo {
    /// NTP time of the report.
    pub ntp: u64,
    /// RTP timestamp corresponding to `ntp`.
    pub rtp_time: u32,
    /// Packets sent since the start.
    pub packets: u32,
    /// Payload octets sent since the start.
    pub octets: u32,
}

/// Marshals a compound RTCP packet: an SR when `sender` is given (we sent
/// RTP since the last report), else an RR, followed by SDES CNAME.
pub fn build_report(
    ssrc: u32,
    cname: &str,
    sender: Option<SenderInfo>,
    blocks: Vec<ReceptionReport>,
) -> Option<Vec<u8>> {
    build(ssrc, cname, sender, blocks, false)
}

/// Like [`build_report`], ending with a BYE (RFC 3550 6.6): the call's last report.
pub fn build_bye(
    ssrc: u32,
    cname: &str,
    sender: Option<SenderInfo>,
    blocks: Vec<ReceptionReport>,
) -> Option<Vec<u8>> {
    build(ssrc, cname, sender, blocks, true)
}

fn build(
    ssrc: u32,
    cname: &str,
    sender: Option<SenderInfo>,
    blocks: Vec<ReceptionReport>,
    bye: bool,
) -> Option<Vec<u8>> {
    let first: Box<dyn Packet + Send + Sync> = match sender {
        Some(s) => Box::new(SenderReport {
            ssrc,
            ntp_time: s.ntp,
            rtp_time: s.rtp_time,
            packet_count: s.packets,
            octet_count: s.octets,
            reports: blocks,
            profile_extensions: Bytes::new(),
        }),
        None => Box::new(ReceiverReport {
            ssrc,
            reports: blocks,
            profile_extensions: Bytes::new(),
        }),
    };
    let sdes: Box<dyn Packet + Send + Sync> = Box::new(SourceDescription {
        chunks: vec![SourceDescriptionChunk {
            source: ssrc,
            items: vec![SourceDescriptionItem {
                sdes_type: SdesType::SdesCname,
                text: Bytes::copy_from_slice(cname.as_bytes()),
            }],
        }],
    });
    let mut packets = vec![first, sdes];
    if bye {
        packets.push(Box::new(::rtcp::goodbye::Goodbye {
            sources: vec![ssrc],
            reason: Bytes::new(),
        }));
    }
    ::rtcp::packet::marshal(&packets).ok().map(|b| b.to_vec())
}

/// What a received compound RTCP packet told us.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Parsed {
    /// Sender SSRC and NTP time of an SR in it.
    pub sender_report: Option<(u32, u64)>,
    /// Report blocks (from SRs and RRs).
    pub blocks: Vec<ReceptionReport>,
    /// A BYE was in it.
    pub bye: bool,
}

/// Parses a compound RTCP packet; `None` when it is not RTCP.
pub fn parse(data: &[u8]) -> Option<Parsed> {
    let mut buf = data;
    let packets = ::rtcp::packet::unmarshal(&mut buf).ok()?;
    let mut out = Parsed::default();
    for p in &packets {
        let any = p.as_any();
        if let Some(sr) = any.downcast_ref::<SenderReport>() {
            out.sender_report = Some((sr.ssrc, sr.ntp_time));
            out.blocks.extend(sr.reports.iter().cloned());
        } else if let Some(rr) = any.downcast_ref::<ReceiverReport>() {
            out.blocks.extend(rr.reports.iter().cloned());
        } else if any.is::<::rtcp::goodbye::Goodbye>() {
            out.bye = true;
        }
    }
    Some(out)
}

/// RFC 3550 6.3.1 for a two-party session: a report about every `base`,
/// randomised to 0.5–1.5 × `base` so reports do not synchronise.
pub fn next_interval(base: Duration, random: u32) -> Duration {
    let factor = 0.5 + f64::from(random % 1000) / 1000.0;
    base.mul_f64(factor)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loss_and_extended_sequence_by_hand() {
        // seq 65534, 65535, (0 lost), 1, 2, duplicate 2, (3, 4 lost), 5
        let mut s = ReceiveStats::new(7, 65534);
        for seq in [65534u16, 65535, 1, 2, 2, 5] {
            s.on_packet(seq, 0, 0);
        }
        assert_eq!(s.extended_max(), 65536 + 5);
        assert_eq!(s.expected(), 8); // 65534 ..= 65541
        assert_eq!(s.received(), 6);
        assert_eq!(s.lost(), 2);
        let now = Instant::now();
        let b = s.report_block(now);
        assert_eq!(b.ssrc, 7);
        assert_eq!(b.total_lost, 2);
        assert_eq!(b.fraction_lost, (2 * 256 / 8) as u8); // 64
        assert_eq!(b.last_sequence_number, 0x1_0005);
        assert_eq!((b.last_sender_report, b.delay), (0, 0));
        // Next interval: 6, 7 received, 8 lost, 9 received: 1 of 4 lost.
        for seq in [6u16, 7, 9] {
            s.on_packet(seq, 0, 0);
        }
        let b = s.report_block(now);
        assert_eq!(b.fraction_lost, 64);
        assert_eq!(b.total_lost, 3);
    }

    #[test]
    fn a8_jitter_by_hand() {
        // Packets every 160 ticks; transit alternates 0, 80, 0, 80 ...:
        // |D| is 80 each time after the first: J = 80 (1 - (15/16)^n).
        let mut s = ReceiveStats::new(1, 0);
        let mut expect = 0.0f64;
        for k in 0..40u32 {
            let ts = k * 160;
            let arrival = ts + if k % 2 == 1 { 80 } else { 0 } + 1000;
            s.on_packet(k as u16, ts, arrival);
            if k > 0 {
                expect += (80.0 - expect) / 16.0;
            }
        }
        assert_eq!(s.jitter(), expect as u32);
        assert!(s.jitter() > 70 && s.jitter() < 80, "{}", s.jitter());
        // No jitter at all for a perfectly paced stream.
        let mut s = ReceiveStats::new(1, 0);
        for k in 0..10u32 {
            s.on_packet(k as u16, k * 160, k * 160 + 12345);
        }
        assert_eq!(s.jitter(), 0);
    }

    #[test]
    fn round_trip_from_lsr_and_dlsr() {
        let t0 = Instant::now();
        // Peer's clock: its SR carries NTP 1000.5 s; we receive it at t0.
        let peer_sr_ntp: u64 = (1000 << 32) | (1 << 31);
        let mut s = ReceiveStats::new(9, 0);
        s.on_packet(0, 0, 0);
        s.on_sender_report(peer_sr_ntp, t0);
        // We report 250 ms later: DLSR = 0.25 s = 16384 / 65536.
        let b = s.report_block(t0 + Duration::from_millis(250));
        assert_eq!(b.last_sender_report, ntp_middle(peer_sr_ntp));
        assert_eq!(b.delay, 16384);
        // Our SR left at NTP 50 s; the peer's RR about it says LSR = 50 s,
        // DLSR = 1 s, and arrives at 51.12 s: RTT 120 ms.
        let ours = ReceptionReport {
            last_sender_report: ntp_middle(50 << 32),
            delay: 65536,
            ..Default::default()
        };
        let arrival = (51u64 << 32) + (0.12 * 4_294_967_296.0) as u64;
        let rtt = round_trip(&ours, arrival).unwrap();
        assert!((rtt.as_secs_f64() - 0.120).abs() < 0.001, "{rtt:?}");
        assert_eq!(round_trip(&ReceptionReport::default(), arrival), None);
    }

    #[test]
    fn compound_packets_round_trip() {
        let block = ReceptionReport {
            ssrc: 5,
            fraction_lost: 10,
            total_lost: 3,
            last_sequence_number: 99,
            jitter: 42,
            last_sender_report: 7,
            delay: 8,
        };
        let info = SenderInfo {
            ntp: 123 << 32,
            rtp_time: 1600,
            packets: 10,
            octets: 1600,
        };
        let sr = build_report(0xABCD, "me@host", Some(info), vec![block.clone()]).unwrap();
        let p = parse(&sr).unwrap();
        assert_eq!(p.sender_report, Some((0xABCD, 123 << 32)));
        assert_eq!(p.blocks, vec![block.clone()]);
        let rr = build_report(0xABCD, "me@host", None, vec![block.clone()]).unwrap();
        let p = parse(&rr).unwrap();
        assert_eq!(p.sender_report, None);
        assert_eq!(p.blocks, vec![block.clone()]);
        assert!(!p.bye);
        let bye = build_bye(0xABCD, "me@host", None, vec![block]).unwrap();
        assert!(parse(&bye).unwrap().bye);
        assert!(parse(b"\x80\x00").is_none());
    }

    #[test]
    fn ntp_clock_advances_with_the_monotonic_clock() {
        let t0 = Instant::now();
        let c = NtpClock::new(t0, 10 << 32);
        assert_eq!(
            c.ntp(t0 + Duration::from_millis(1500)),
            (11 << 32) | (1 << 31)
        );
        let d = next_interval(Duration::from_secs(5), 999);
        assert!(d >= Duration::from_millis(2500) && d <= Duration::from_millis(7500));
    }
}
