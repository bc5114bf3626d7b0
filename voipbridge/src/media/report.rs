//! RTCP (RFC 3550) statistics, sans-IO: sequence and loss accounting
//! (appendix A.1/A.3), interarrival jitter (A.8), round-trip time from
//! LSR/DLSR (section 6.4.1), and SR/RR + SDES (+ BYE) compound packets,
//! parsed zero-copy and written into the caller's buffer with the
//! `rtcp-types` crate.

use rtcp_types::{
    Bye, Compound, ReceiverReport, ReportBlock as RtcpBlock, RtcpPacketParser, SenderReport,
};
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
    pub fn report_block(&mut self, now: Instant) -> ReportBlock {
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
        ReportBlock {
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
pub fn round_trip(block: &ReportBlock, arrival_ntp: u64) -> Option<Duration> {
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

/// A reception report block (RFC 3550 6.4.1), ours or the peer's.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReportBlock {
    /// The source reported about.
    pub ssrc: u32,
    /// Fraction lost since the previous report, in 1/256.
    pub fraction_lost: u8,
    /// Cumulative packets lost (signed 24-bit, as sent).
    pub total_lost: u32,
    /// Extended highest sequence number received.
    pub last_sequence_number: u32,
    /// Interarrival jitter in timestamp units.
    pub jitter: u32,
    /// LSR: middle 32 bits of the last SR's NTP time (0: none yet).
    pub last_sender_report: u32,
    /// DLSR: delay since that SR, in 1/65536 s.
    pub delay: u32,
}

impl ReportBlock {
    fn from_wire(b: &RtcpBlock<'_>) -> ReportBlock {
        ReportBlock {
            ssrc: b.ssrc(),
            fraction_lost: b.fraction_lost(),
            total_lost: b.cumulative_lost(),
            last_sequence_number: b.extended_sequence_number(),
            jitter: b.interarrival_jitter(),
            last_sender_report: b.last_sender_report_timestamp(),
            delay: b.delay_since_last_sender_report_timestamp(),
        }
    }

    /// The 24 bytes of the block (RFC 3550 6.4.1).
    fn write(&self, out: &mut [u8]) {
        put32(out, 0, self.ssrc);
        put32(
            out,
            4,
            (u32::from(self.fraction_lost) << 24) | (self.total_lost & 0xFF_FFFF),
        );
        put32(out, 8, self.last_sequence_number);
        put32(out, 12, self.jitter);
        put32(out, 16, self.last_sender_report);
        put32(out, 20, self.delay);
    }
}

fn put32(out: &mut [u8], at: usize, v: u32) {
    if let Some(d) = out.get_mut(at..at + 4) {
        d.copy_from_slice(&v.to_be_bytes());
    }
}

/// An RTCP header (RFC 3550 6.4.1): version 2, no padding, `count`, `pt`,
/// length in 32-bit words minus one for a packet of `len` bytes.
fn header(out: &mut [u8], count: u8, pt: u8, len: usize) {
    if let Some(h) = out.get_mut(..4) {
        h[0] = 0x80 | (count & 0x1F);
        h[1] = pt;
        h[2..4].copy_from_slice(&((len / 4 - 1) as u16).to_be_bytes());
    }
}

/// The largest compound packet we write: SR with one block (52 bytes),
/// SDES with a CNAME of up to 255 bytes (at most 268), BYE (8).
pub const MAX_REPORT_LEN: usize = 52 + 268 + 8;

/// Writes a compound RTCP packet into `out`: an SR when `sender` is given
/// (we sent RTP since the last report), else an RR, with the reception
/// report `block` if any, followed by SDES CNAME, and a BYE (RFC 3550 6.6)
/// when `bye`. Returns its length, `None` when it does not fit.
///
/// Written by hand, without allocating (the `rtcp-types` builders keep
/// their packets, blocks and items in vectors); the tests check every
/// field against `rtcp-types`' parser.
pub fn write_report(
    ssrc: u32,
    cname: &str,
    sender: Option<SenderInfo>,
    block: Option<ReportBlock>,
    bye: bool,
    out: &mut [u8],
) -> Option<usize> {
    let cname = cname.as_bytes().get(..cname.len().min(255))?;
    let blocks = usize::from(block.is_some());
    let report_len = if sender.is_some() { 28 } else { 8 } + 24 * blocks;
    // SDES: header, SSRC, CNAME item (type, length, text), null
    // terminator, padded to 32 bits.
    let sdes_len = (8 + 2 + cname.len() + 1).div_ceil(4) * 4;
    let bye_len = if bye { 8 } else { 0 };
    let total = report_len + sdes_len + bye_len;
    let out = out.get_mut(..total)?;
    out.fill(0);
    match sender {
        Some(si) => {
            header(out, blocks as u8, 200, report_len);
            put32(out, 4, ssrc);
            put32(out, 8, (si.ntp >> 32) as u32);
            put32(out, 12, si.ntp as u32);
            put32(out, 16, si.rtp_time);
            put32(out, 20, si.packets);
            put32(out, 24, si.octets);
        }
        None => {
            header(out, blocks as u8, 201, report_len);
            put32(out, 4, ssrc);
        }
    }
    if let Some(b) = block {
        b.write(out.get_mut(report_len - 24..report_len)?);
    }
    let sdes = out.get_mut(report_len..report_len + sdes_len)?;
    header(sdes, 1, 202, sdes_len);
    put32(sdes, 4, ssrc);
    sdes[8] = 1; // CNAME
    sdes[9] = cname.len() as u8;
    sdes.get_mut(10..10 + cname.len())?.copy_from_slice(cname);
    if bye {
        let b = out.get_mut(report_len + sdes_len..)?;
        header(b, 1, 203, 8);
        put32(b, 4, ssrc);
    }
    Some(total)
}

/// [`write_report`] into a new vector (tests and tools).
pub fn build_report(
    ssrc: u32,
    cname: &str,
    sender: Option<SenderInfo>,
    block: Option<ReportBlock>,
) -> Option<Vec<u8>> {
    let mut out = vec![0u8; MAX_REPORT_LEN];
    let n = write_report(ssrc, cname, sender, block, false, &mut out)?;
    out.truncate(n);
    Some(out)
}

/// [`build_report`] ending with a BYE.
pub fn build_bye(
    ssrc: u32,
    cname: &str,
    sender: Option<SenderInfo>,
    block: Option<ReportBlock>,
) -> Option<Vec<u8>> {
    let mut out = vec![0u8; MAX_REPORT_LEN];
    let n = write_report(ssrc, cname, sender, block, true, &mut out)?;
    out.truncate(n);
    Some(out)
}

/// Report blocks kept from one compound packet (a two-party call has one
/// about us; more are ignored).
pub const MAX_BLOCKS: usize = 4;

/// What a received compound RTCP packet told us.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Parsed {
    /// Sender SSRC and NTP time of an SR in it.
    pub sender_report: Option<(u32, u64)>,
    blocks: [ReportBlock; MAX_BLOCKS],
    n_blocks: usize,
    /// A BYE was in it.
    pub bye: bool,
}

impl Parsed {
    /// Report blocks (from SRs and RRs), at most [`MAX_BLOCKS`].
    pub fn blocks(&self) -> &[ReportBlock] {
        self.blocks.get(..self.n_blocks).unwrap_or_default()
    }

    fn push(&mut self, b: ReportBlock) {
        if let Some(slot) = self.blocks.get_mut(self.n_blocks) {
            *slot = b;
            self.n_blocks += 1;
        }
    }
}

/// Parses a compound RTCP packet; `None` when it is not RTCP (RFC 3550
/// 6.1: version 2, lengths consistent, padding only in the last packet).
/// Only SR, RR and BYE are looked into (rtcp-types' SDES parser collects
/// chunks and items into vectors; we have no use for the peer's CNAME), so
/// nothing is allocated.
pub fn parse(data: &[u8]) -> Option<Parsed> {
    Compound::parse(data).ok()?;
    let mut out = Parsed::default();
    let mut off = 0;
    while let Some(h) = data.get(off..off + 4) {
        let len = (usize::from(u16::from_be_bytes([h[2], h[3]])) + 1) * 4;
        let p = data.get(off..off + len)?;
        match h[1] {
            200 => {
                let sr = SenderReport::parse(p).ok()?;
                out.sender_report = Some((sr.ssrc(), sr.ntp_timestamp()));
                for b in sr.report_blocks() {
                    out.push(ReportBlock::from_wire(&b));
                }
            }
            201 => {
                for b in ReceiverReport::parse(p).ok()?.report_blocks() {
                    out.push(ReportBlock::from_wire(&b));
                }
            }
            203 => {
                Bye::parse(p).ok()?;
                out.bye = true;
            }
            _ => {}
        }
        off += len;
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
        let ours = ReportBlock {
            last_sender_report: ntp_middle(50 << 32),
            delay: 65536,
            ..Default::default()
        };
        let arrival = (51u64 << 32) + (0.12 * 4_294_967_296.0) as u64;
        let rtt = round_trip(&ours, arrival).unwrap();
        assert!((rtt.as_secs_f64() - 0.120).abs() < 0.001, "{rtt:?}");
        assert_eq!(round_trip(&ReportBlock::default(), arrival), None);
    }

    #[test]
    fn compound_packets_round_trip() {
        let block = ReportBlock {
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
        let sr = build_report(0xABCD, "me@host", Some(info), Some(block)).unwrap();
        let p = parse(&sr).unwrap();
        assert_eq!(p.sender_report, Some((0xABCD, 123 << 32)));
        assert_eq!(p.blocks(), &[block]);
        let rr = build_report(0xABCD, "me@host", None, Some(block)).unwrap();
        let p = parse(&rr).unwrap();
        assert_eq!(p.sender_report, None);
        assert_eq!(p.blocks(), &[block]);
        assert!(!p.bye);
        let bye = build_bye(0xABCD, "me@host", None, Some(block)).unwrap();
        assert!(parse(&bye).unwrap().bye);
        assert!(parse(b"\x80\x00").is_none());
        // The wire format, field by field (RFC 3550 6.4.1): SR header,
        // sender info, the block, then SDES with the CNAME.
        assert_eq!(&sr[..4], &[0x81, 200, 0, 12]);
        assert_eq!(&sr[4..8], &0xABCDu32.to_be_bytes());
        assert_eq!(&sr[8..16], &(123u64 << 32).to_be_bytes());
        assert_eq!(&sr[28..32], &5u32.to_be_bytes());
        assert_eq!(sr[32], 10);
        assert_eq!(&sr[33..36], &[0, 0, 3]);
        assert_eq!(sr[52] & 0xC0, 0x80);
        assert_eq!(sr[53], 202);
        assert_eq!(&sr[60..62], &[1, 7]);
        assert_eq!(&sr[62..69], b"me@host");
        // rtcp-types reads back every field we wrote.
        let mut seen = 0;
        for p in rtcp_types::Compound::parse(&bye).unwrap() {
            match p.unwrap() {
                rtcp_types::Packet::Rr(rr) => {
                    assert_eq!(rr.ssrc(), 0xABCD);
                    let b = rr.report_blocks().next().unwrap();
                    assert_eq!(ReportBlock::from_wire(&b), block);
                    seen |= 1;
                }
                rtcp_types::Packet::Sdes(sdes) => {
                    let chunk = sdes.chunks().next().unwrap();
                    assert_eq!(chunk.ssrc(), 0xABCD);
                    let item = chunk.items().next().unwrap();
                    assert_eq!(item.type_(), rtcp_types::SdesItem::CNAME);
                    assert_eq!(item.value(), b"me@host");
                    seen |= 2;
                }
                rtcp_types::Packet::Bye(b) => {
                    assert_eq!(b.ssrcs().collect::<Vec<_>>(), vec![0xABCD]);
                    seen |= 4;
                }
                p => panic!("{p:?}"),
            }
        }
        assert_eq!(seen, 7);
        for n in 0..40 {
            let name = "x".repeat(n);
            let p = build_report(1, &name, Some(info), None).unwrap();
            assert_eq!(p.len() % 4, 0);
            assert!(
                rtcp_types::Compound::parse(&p).unwrap().all(|x| x.is_ok()),
                "{n}"
            );
        }
        // Without a block: RC 0; an RR is 8 bytes.
        let rr = build_report(7, "x", None, None).unwrap();
        assert_eq!(&rr[..4], &[0x80, 201, 0, 1]);
        // Too small a buffer: nothing.
        assert!(write_report(7, "x", None, Some(block), false, &mut [0u8; 20]).is_none());
        // A negative cumulative loss travels as signed 24 bits.
        let neg = ReportBlock {
            total_lost: (-2i32 as u32) & 0xFF_FFFF,
            ..block
        };
        let p = parse(&build_report(7, "x", None, Some(neg)).unwrap()).unwrap();
        assert_eq!(p.blocks()[0].total_lost, 0xFF_FFFE);
        // Garbage after a valid packet, a bad version, a length past the end: not RTCP.
        let mut bad = rr.clone();
        bad[0] = 0x40;
        assert!(parse(&bad).is_none());
        let mut long = rr.clone();
        long[3] = 9;
        assert!(parse(&long).is_none());
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
