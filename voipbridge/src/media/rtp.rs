//! RTP packets (RFC 3550), parsed and written in place with the zero-copy
//! `rtp-types` crate, the sender's sequence/timestamp state, and RFC 4733
//! telephone-events.
//!
//! Nothing here allocates per packet: [`parse`] borrows the datagram and
//! [`Sender::write`] writes into the caller's buffer.

use rtp_types::{RtpPacket, RtpPacketBuilder};

/// Size of the fixed RTP header we write (no CSRCs, no extension).
pub const HEADER_LEN: usize = 12;

/// A received RTP packet, borrowing the datagram.
#[derive(Debug, Clone, PartialEq)]
pub struct Received<'a> {
    /// Payload type.
    pub payload_type: u8,
    /// Sequence number.
    pub seq: u16,
    /// Timestamp.
    pub timestamp: u32,
    /// SSRC.
    pub ssrc: u32,
    /// Marker bit.
    pub marker: bool,
    /// Payload (padding removed; CSRCs and header extension skipped).
    pub payload: &'a [u8],
}

/// Parses an RTP packet; `None` for anything that is not well-formed RTP
/// version 2 (truncated header, CSRC list or extension, bad padding).
pub fn parse(data: &[u8]) -> Option<Received<'_>> {
    let p = RtpPacket::parse(data).ok()?;
    if p.version() != 2 {
        return None;
    }
    let start = p.payload_offset();
    let payload = data.get(start..start + p.payload_len())?;
    Some(Received {
        payload_type: p.payload_type(),
        seq: p.sequence_number(),
        timestamp: p.timestamp(),
        ssrc: p.ssrc(),
        marker: p.marker_bit(),
        payload,
    })
}

/// The sending side of one RTP stream.
#[derive(Debug, Clone)]
pub struct Sender {
    ssrc: u32,
    seq: u16,
    timestamp: u32,
    talkspurt: bool,
    /// Packets sent.
    pub packets: u64,
    /// Payload bytes sent.
    pub bytes: u64,
}

impl Sender {
    /// A sender with random SSRC, sequence and timestamp bases (RFC 3550 5.1).
    pub fn new() -> Sender {
        Sender::with_bases(rand::random(), rand::random(), rand::random())
    }

    /// A sender with given SSRC, sequence and timestamp bases (tests).
    pub fn with_bases(ssrc: u32, seq: u16, timestamp: u32) -> Sender {
        Sender {
            ssrc,
            seq,
            timestamp,
            talkspurt: true,
            packets: 0,
            bytes: 0,
        }
    }

    /// SSRC.
    pub fn ssrc(&self) -> u32 {
        self.ssrc
    }

    /// Marks the next packet as the start of a talk-spurt (marker bit).
    pub fn new_talkspurt(&mut self) {
        self.talkspurt = true;
    }

    /// Skips `samples` of time without sending (direction without send).
    pub fn skip(&mut self, samples: u32) {
        self.timestamp = self.timestamp.wrapping_add(samples);
    }

    /// The timestamp the next packet will carry.
    pub fn timestamp(&self) -> u32 {
        self.timestamp
    }

    /// Writes into `out` a packet of `samples` samples' worth of payload,
    /// advancing the timestamp; returns its length (0 when `out` is too
    /// small: nothing is sent and nothing advances).
    pub fn write(
        &mut self,
        payload_type: u8,
        payload: &[u8],
        samples: u32,
        out: &mut [u8],
    ) -> usize {
        let n = self.write_at(payload_type, self.talkspurt, self.timestamp, payload, out);
        if n > 0 {
            self.talkspurt = false;
            self.timestamp = self.timestamp.wrapping_add(samples);
        }
        n
    }

    /// Writes a packet with an explicit marker and timestamp (telephone
    /// events carry their start timestamp); the audio timestamp is unchanged.
    pub fn write_at(
        &mut self,
        payload_type: u8,
        marker: bool,
        timestamp: u32,
        payload: &[u8],
        out: &mut [u8],
    ) -> usize {
        let written = RtpPacketBuilder::new()
            .payload_type(payload_type & 0x7F)
            .marker_bit(marker)
            .sequence_number(self.seq)
            .timestamp(timestamp)
            .ssrc(self.ssrc)
            .payload(payload)
            .write_into(out);
        match written {
            Ok(n) => {
                self.seq = self.seq.wrapping_add(1);
                self.packets += 1;
                self.bytes += payload.len() as u64;
                n
            }
            Err(e) => {
                tracing::warn!("RTP packet not written: {e}");
                0
            }
        }
    }

    /// [`write`](Self::write) into a new vector (tests and tools; the media
    /// engine writes into its own buffers).
    pub fn packet(&mut self, payload_type: u8, payload: &[u8], samples: u32) -> Vec<u8> {
        let mut out = vec![0u8; HEADER_LEN + payload.len()];
        let n = self.write(payload_type, payload, samples, &mut out);
        out.truncate(n);
        out
    }

    /// [`write_at`](Self::write_at) into a new vector (tests and tools).
    pub fn packet_at(
        &mut self,
        payload_type: u8,
        marker: bool,
        timestamp: u32,
        payload: &[u8],
    ) -> Vec<u8> {
        let mut out = vec![0u8; HEADER_LEN + payload.len()];
        let n = self.write_at(payload_type, marker, timestamp, payload, &mut out);
        out.truncate(n);
        out
    }
}

impl Default for Sender {
    fn default() -> Self {
        Sender::new()
    }
}

/// The RFC 4733 event code of a DTMF digit.
pub fn dtmf_event(c: char) -> Option<u8> {
    match c {
        '0'..='9' => Some(c as u8 - b'0'),
        '*' => Some(10),
        '#' => Some(11),
        'A'..='D' => Some(12 + (c as u8 - b'A')),
        _ => None,
    }
}

/// The digit of an RFC 4733 event code.
pub fn dtmf_digit(e: u8) -> Option<char> {
    match e {
        0..=9 => Some((b'0' + e) as char),
        10 => Some('*'),
        11 => Some('#'),
        12..=15 => Some((b'A' + e - 12) as char),
        _ => None,
    }
}

/// One RFC 4733 telephone-event packet to send.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EventPacket {
    /// Marker bit: set on the first packet of an event.
    pub marker: bool,
    /// The event's start timestamp (the same in all its packets).
    pub timestamp: u32,
    /// Event payload: event, E bit and volume, 16-bit duration.
    pub payload: [u8; 4],
}

/// Volume of the events we send (-10 dBm0, a usual value).
const EVENT_VOLUME: u8 = 10;

#[derive(Debug, Clone)]
struct Tone {
    event: u8,
    start: u32,
    elapsed: u32,
    ends: u8,
}

/// RFC 4733 event sender (sans-IO): one digit at a time, one packet per
/// packet interval: updates with the growing duration while the tone
/// lasts, then the end packet three times (RFC 4733 2.5.1.4), then a pause
/// before the next digit. While [`busy`](DtmfSender::busy), audio packets are
/// not sent (the timestamp still advances).
#[derive(Debug, Clone)]
pub struct DtmfSender {
    queue: std::collections::VecDeque<u8>,
    current: Option<Tone>,
    gap_left: u32,
    duration: u32,
    gap: u32,
}

impl DtmfSender {
    /// Tones of `duration` samples separated by `gap` samples.
    pub fn new(duration: u32, gap: u32) -> DtmfSender {
        DtmfSender {
            queue: Default::default(),
            current: None,
            gap_left: 0,
            duration: duration.clamp(1, 0xFFFF),
            gap,
        }
    }

    /// Queues an event code.
    pub fn queue(&mut self, event: u8) {
        self.queue.push_back(event);
    }

    /// An event is being sent.
    pub fn busy(&self) -> bool {
        self.current.is_some()
    }

    /// Events waiting (not counting the one being sent).
    pub fn queued(&self) -> usize {
        self.queue.len()
    }

    /// One packet interval of `frame` samples starting at audio timestamp `ts`:
    /// the event packet to send in it, if any.
    pub fn tick(&mut self, ts: u32, frame: u32) -> Option<EventPacket> {
        if self.current.is_none() {
            if self.gap_left > 0 {
                self.gap_left = self.gap_left.saturating_sub(frame);
                return None;
            }
            let event = self.queue.pop_front()?;
            self.current = Some(Tone {
                event,
                start: ts,
                elapsed: 0,
                ends: 0,
            });
        }
        let t = self.current.as_mut()?;
        let first = t.elapsed == 0;
        if t.ends == 0 {
            t.elapsed = (t.elapsed + frame).min(0xFFFF);
        }
        let end = t.elapsed >= self.duration;
        if end {
            t.ends += 1;
        }
        let d = t.elapsed as u16;
        let pkt = EventPacket {
            marker: first,
            timestamp: t.start,
            payload: [
                t.event,
                if end { 0x80 } else { 0 } | EVENT_VOLUME,
                (d >> 8) as u8,
                d as u8,
            ],
        };
        if t.ends >= 3 {
            self.current = None;
            self.gap_left = self.gap;
        }
        Some(pkt)
    }
}

/// Receives RFC 4733 events, reporting each digit once, at the first packet
/// of its event (so a lost end packet does not lose the digit); packets of
/// an event already reported (same timestamp) are ignored.
#[derive(Debug, Default)]
pub struct DtmfReceiver {
    last_ts: Option<u32>,
}

impl DtmfReceiver {
    /// Feeds a telephone-event payload; returns the digit when a new event starts.
    pub fn feed(&mut self, timestamp: u32, payload: &[u8]) -> Option<char> {
        let (&event, _flags) = (payload.first()?, payload.get(1)?);
        if payload.len() < 4 || self.last_ts == Some(timestamp) {
            return None;
        }
        let digit = dtmf_digit(event)?;
        self.last_ts = Some(timestamp);
        Some(digit)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packets_round_trip_and_advance() {
        let mut s = Sender::new();
        let ts0 = s.timestamp();
        let (pa, pb) = (
            s.packet(0, &[0xFF; 160], 160),
            s.packet(0, &[0xFF; 160], 160),
        );
        let (a, b) = (parse(&pa).unwrap(), parse(&pb).unwrap());
        assert!(a.marker && !b.marker);
        assert_eq!(b.seq, a.seq.wrapping_add(1));
        assert_eq!(a.timestamp, ts0);
        assert_eq!(b.timestamp, ts0.wrapping_add(160));
        assert_eq!(a.payload.len(), 160);
        assert_eq!(s.packets, 2);
        assert!(parse(b"\x00\x01").is_none());
        // Version 1, a truncated CSRC list, padding longer than the packet: not RTP.
        let mut v1 = s.packet(0, &[1, 2, 3], 3);
        v1[0] = 0x40;
        assert!(parse(&v1).is_none());
        let mut csrc = s.packet(0, &[1, 2, 3], 3);
        csrc[0] = 0x8F;
        assert!(parse(&csrc).is_none());
        let mut pad = s.packet(0, &[1, 2, 3, 200], 4);
        pad[0] |= 0x20;
        assert!(parse(&pad).is_none());
        // Padding is removed from the payload.
        let mut padded = s.packet(0, &[9, 9, 0, 2], 4);
        padded[0] |= 0x20;
        assert_eq!(parse(&padded).unwrap().payload, &[9, 9]);
        // A buffer too small writes nothing and changes nothing.
        let seq = parse(&s.packet(0, &[], 0)).unwrap().seq;
        assert_eq!(s.write(0, &[0; 160], 160, &mut [0u8; 100]), 0);
        assert_eq!(
            parse(&s.packet(0, &[], 0)).unwrap().seq,
            seq.wrapping_add(1)
        );
    }

    #[test]
    fn dtmf_sender_timing_and_receiver() {
        let mut s = DtmfSender::new(800, 480);
        s.queue(dtmf_event('#').unwrap());
        s.queue(dtmf_event('1').unwrap());
        let mut ts = 1000u32;
        let mut pkts = Vec::new();
        for _ in 0..30 {
            if let Some(p) = s.tick(ts, 160) {
                pkts.push((ts, p));
            }
            ts += 160;
        }
        // '#': updates at 160..640, end (800) three times; 3 frames of pause; '1'.
        let hash: Vec<_> = pkts.iter().filter(|(_, p)| p.payload[0] == 11).collect();
        assert_eq!(hash.len(), 7);
        assert!(hash.iter().all(|(_, p)| p.timestamp == 1000));
        assert!(hash[0].1.marker && hash.iter().skip(1).all(|(_, p)| !p.marker));
        let durs: Vec<u16> = hash
            .iter()
            .map(|(_, p)| u16::from_be_bytes([p.payload[2], p.payload[3]]))
            .collect();
        assert_eq!(durs, vec![160, 320, 480, 640, 800, 800, 800]);
        let ends: Vec<bool> = hash.iter().map(|(_, p)| p.payload[1] & 0x80 != 0).collect();
        assert_eq!(ends, vec![false, false, false, false, true, true, true]);
        assert!(hash.iter().all(|(_, p)| p.payload[1] & 0x3F == 10));
        let one: Vec<_> = pkts.iter().filter(|(_, p)| p.payload[0] == 1).collect();
        assert_eq!(one.len(), 7);
        // Started after the 7 packets of '#' and a 60 ms pause.
        assert_eq!(one[0].1.timestamp, 1000 + (7 + 3) * 160);
        assert!(!s.busy() && s.queued() == 0);

        // The receiver reports each digit once, even when its first packets are lost.
        let mut r = DtmfReceiver::default();
        let mut sender = Sender::with_bases(1, 2, 3);
        let got: Vec<char> = pkts
            .iter()
            .skip(2)
            .map(|(_, p)| sender.packet_at(101, p.marker, p.timestamp, &p.payload))
            .filter_map(|b| {
                let p = parse(&b)?;
                r.feed(p.timestamp, p.payload)
            })
            .collect();
        assert_eq!(got, vec!['#', '1']);
        for (c, e) in [('0', 0), ('9', 9), ('*', 10), ('D', 15)] {
            assert_eq!(dtmf_event(c), Some(e));
            assert_eq!(dtmf_digit(e), Some(c));
        }
        assert_eq!(dtmf_event('x'), None);
        assert_eq!(r.feed(5, &[1]), None);
        assert_eq!(r.feed(5, &[200, 0, 0, 160]), None);
    }
}
