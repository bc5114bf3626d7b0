//! RTP packets (marshalled with the webrtc-rs `rtp` crate) and the sender's
//! sequence/timestamp state (RFC 3550), plus RFC 4733 telephone-events.

use bytes::Bytes;
use rtp::header::Header;
use rtp::packet::Packet;
use webrtc_util::marshal::{Marshal, Unmarshal};

/// A received RTP packet.
#[derive(Debug, Clone, PartialEq)]
pub struct Received {
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
    /// Payload.
    pub payload: Vec<u8>,
}

/// Parses an RTP packet; `None` for anything that is not RTP version 2.
pub fn parse(data: &[u8]) -> Option<Received> {
    let mut buf = data;
    let p = Packet::unmarshal(&mut buf).ok()?;
    if p.header.version != 2 {
        return None;
    }
    Some(Received {
        payload_type: p.header.payload_type,
        seq: p.header.sequence_number,
        timestamp: p.header.timestamp,
        ssrc: p.header.ssrc,
        marker: p.header.marker,
        payload: p.payload.to_vec(),
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
        Sender {
            ssrc: rand::random(),
            seq: rand::random(),
            timestamp: rand::random(),
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

    /// Builds a packet of `samples` samples' worth of payload, advancing the timestamp.
    pub fn packet(&mut self, payload_type: u8, payload: &[u8], samples: u32) -> Vec<u8> {
        let pkt = self.build(payload_type, self.talkspurt, self.timestamp, payload);
        self.talkspurt = false;
        self.timestamp = self.timestamp.wrapping_add(samples);
        pkt
    }

    /// Skips `samples` of time without sending (direction without send).
    pub fn skip(&mut self, samples: u32) {
        self.timestamp = self.timestamp.wrapping_add(samples);
    }

    /// The timestamp the next packet will carry.
    pub fn timestamp(&self) -> u32 {
        self.timestamp
    }

    fn build(&mut self, payload_type: u8, marker: bool, timestamp: u32, payload: &[u8]) -> Vec<u8> {
        let p = Packet {
            header: Header {
                version: 2,
                marker,
                payload_type,
                sequence_number: self.seq,
                timestamp,
                ssrc: self.ssrc,
                ..Default::default()
            },
            payload: Bytes::copy_from_slice(payload),
        };
        self.seq = self.seq.wrapping_add(1);
        self.packets += 1;
        self.bytes += payload.len() as u64;
        p.marshal().map(|b| b.to_vec()).unwrap_or_default()
    }

    /// RFC 4733 packets for one digit starting at the current timestamp:
    /// updates every 50 ms while the tone lasts `duration` samples, then the
    /// end packet three times. The caller sends them 50 ms apart (the three
    /// end packets together) and the audio timestamp moves on by `duration`.
    pub fn dtmf(&mut self, payload_type: u8, event: u8, duration: u16) -> Vec<Vec<u8>> {
        let ts = self.timestamp;
        let mut out = Vec::new();
        let step = 400u16; // 50 ms at 8 kHz
        let mut d = step;
        let mut first = true;
        while d < duration {
            out.push(self.build(
                payload_type,
                first,
                ts,
                &[event, 10, (d >> 8) as u8, d as u8],
            ));
            first = false;
            d += step;
        }
        for _ in 0..3 {
            out.push(self.build(
                payload_type,
                false,
                ts,
                &[event, 0x80 | 10, (duration >> 8) as u8, duration as u8],
            ));
        }
        self.timestamp = self.timestamp.wrapping_add(u32::from(duration));
        self.talkspurt = true;
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

/// Receives RFC 4733 events, reporting each digit once (at its end packet).
#[derive(Debug, Default)]
pub struct DtmfReceiver {
    last_end_ts: Option<u32>,
}

impl DtmfReceiver {
    /// Feeds a telephone-event payload; returns the digit when it ends.
    pub fn feed(&mut self, timestamp: u32, payload: &[u8]) -> Option<char> {
        let (&event, &flags) = (payload.first()?, payload.get(1)?);
        if flags & 0x80 == 0 || self.last_end_ts == Some(timestamp) {
            return None;
        }
        self.last_end_ts = Some(timestamp);
        dtmf_digit(event)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packets_round_trip_and_advance() {
        let mut s = Sender::new();
        let ts0 = s.timestamp();
        let a = parse(&s.packet(0, &[0xFF; 160], 160)).unwrap();
        let b = parse(&s.packet(0, &[0xFF; 160], 160)).unwrap();
        assert!(a.marker && !b.marker);
        assert_eq!(b.seq, a.seq.wrapping_add(1));
        assert_eq!(a.timestamp, ts0);
        assert_eq!(b.timestamp, ts0.wrapping_add(160));
        assert_eq!(a.payload.len(), 160);
        assert_eq!(s.packets, 2);
        assert!(parse(b"\x00\x01").is_none());
    }

    #[test]
    fn dtmf_packets_and_receiver() {
        let mut s = Sender::new();
        let pkts = s.dtmf(101, dtmf_event('#').unwrap(), 800);
        assert_eq!(pkts.len(), 4); // one update at 50 ms, three ends
        let mut r = DtmfReceiver::default();
        let got: Vec<_> = pkts
            .iter()
            .filter_map(|p| parse(p))
            .filter_map(|p| r.feed(p.timestamp, &p.payload))
            .collect();
        assert_eq!(got, vec!['#']);
        for (c, e) in [('0', 0), ('9', 9), ('*', 10), ('D', 15)] {
            assert_eq!(dtmf_event(c), Some(e));
            assert_eq!(dtmf_digit(e), Some(c));
        }
        assert_eq!(dtmf_event('x'), None);
    }
}
