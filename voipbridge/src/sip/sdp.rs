//! SDP offer/answer for one audio stream (RFC 4566, RFC 3264): G.711 PCMU/PCMA,
//! telephone-event (RFC 4733), ptime and direction. A small module because
//! the SDP crates on crates.io are either WebRTC-specific or unmaintained.

use crate::media::{Codec, Direction};
use std::net::{IpAddr, SocketAddr};
use thiserror::Error;

/// Why a session description is unusable.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum SdpError {
    /// Syntax error.
    #[error("malformed SDP: {0}")]
    Malformed(String),
    /// No audio stream we can use (answer 488).
    #[error("no acceptable audio codec in the offer")]
    NoCodec,
}

/// The parts of a session description the bridge uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    /// Media address (c= and m= port).
    pub addr: SocketAddr,
    /// Offered payload types in order, with their codec when known.
    pub formats: Vec<(u8, Option<Codec>)>,
    /// telephone-event payload type.
    pub telephone_event: Option<u8>,
    /// a=ptime in ms.
    pub ptime: Option<u32>,
    /// Direction attribute (session or media level).
    pub direction: Direction,
}

impl Session {
    /// Parses the first audio stream of an SDP body.
    pub fn parse(body: &[u8]) -> Result<Session, SdpError> {
        let text =
            std::str::from_utf8(body).map_err(|_| SdpError::Malformed("not UTF-8".into()))?;
        let mut conn: Option<IpAddr> = None;
        let mut port: Option<u16> = None;
        let mut pts: Vec<u8> = Vec::new();
        let mut maps: Vec<(u8, String)> = Vec::new();
        let (mut ptime, mut direction, mut in_audio, mut seen_v) =
            (None, Direction::SendRecv, false, false);
        for line in text.lines() {
            let line = line.trim_end();
            let Some((k, v)) = line.split_once('=') else {
                if line.is_empty() {
                    continue;
                }
                return Err(SdpError::Malformed(format!("bad line '{line}'")));
            };
            match k {
                "v" => seen_v = true,
                "c" => {
                    let addr = v
                        .split_whitespace()
                        .nth(2)
                        .ok_or_else(|| SdpError::Malformed("bad c= line".into()))?;
                    let ip: IpAddr = addr
                        .split('/')
                        .next()
                        .unwrap_or(addr)
                        .parse()
                        .map_err(|_| SdpError::Malformed(format!("bad address {addr}")))?;
                    if conn.is_none() || in_audio {
                        conn = Some(ip);
                    }
                }
                "m" => {
                    let mut it = v.split_whitespace();
                    let media = it.next().unwrap_or("");
                    if media == "audio" && port.is_none() {
                        in_audio = true;
                        port = Some(
                            it.next()
                                .and_then(|p| p.split('/').next()?.parse().ok())
                                .ok_or_else(|| SdpError::Malformed("bad m= port".into()))?,
                        );
                        let _proto = it.next();
                        pts = it.filter_map(|p| p.parse().ok()).collect();
                    } else {
                        in_audio = false;
                    }
                }
                "a" => {
                    if let Some(rest) = v.strip_prefix("rtpmap:") {
                        if let Some((pt, enc)) = rest.split_once(' ') {
                            if let Ok(pt) = pt.parse() {
                                maps.push((pt, enc.to_ascii_lowercase()));
                            }
                        }
                    } else if let Some(p) = v.strip_prefix("ptime:") {
                        ptime = p.trim().parse().ok();
                    } else if let Some(d) = Direction::from_attr(v) {
                        direction = d;
                    }
                }
                _ => {}
            }
        }
        if !seen_v {
            return Err(SdpError::Malformed("no v= line".into()));
        }
        let (Some(ip), Some(port)) = (conn, port) else {
            return Err(SdpError::Malformed(
                "no audio stream with an address".into(),
            ));
        };
        let map_of = |pt: u8| maps.iter().find(|(p, _)| *p == pt).map(|(_, e)| e.clone());
        let formats = pts
            .iter()
            .map(|&pt| {
                let codec = match (pt, map_of(pt).as_deref()) {
                    (_, Some(e)) if e.starts_with("pcmu/8000") => Some(Codec::Pcmu),
                    (_, Some(e)) if e.starts_with("pcma/8000") => Some(Codec::Pcma),
                    (0, None) => Some(Codec::Pcmu),
                    (8, None) => Some(Codec::Pcma),
                    _ => None,
                };
                (pt, codec)
            })
            .collect();
        let telephone_event = pts
            .iter()
            .copied()
            .find(|&pt| map_of(pt).is_some_and(|e| e.starts_with("telephone-event/8000")));
        Ok(Session {
            addr: SocketAddr::new(ip, port),
            formats,
            telephone_event,
            ptime,
            direction,
        })
    }

    /// Chooses the offer's most preferred format among the codecs we
    /// accept (`ours`): (codec, payload type). RFC 3264 leaves the choice to
    /// the answerer; honouring the offerer's order makes the caller's codec
    /// preference decide, as most phones do.
    pub fn choose(&self, ours: &[Codec]) -> Result<(Codec, u8), SdpError> {
        self.formats
            .iter()
            .find_map(|(pt, c)| c.filter(|c| ours.contains(c)).map(|c| (c, *pt)))
            .ok_or(SdpError::NoCodec)
    }
}

/// Writes a session description for one audio stream.
pub fn write(
    session_id: u64,
    version: u64,
    addr: SocketAddr,
    codecs: &[(Codec, u8)],
    te: Option<u8>,
    ptime: u32,
    direction: Direction,
) -> Vec<u8> {
    let ip = addr.ip();
    let fam = if ip.is_ipv4() { "IP4" } else { "IP6" };
    let mut pts: Vec<String> = codecs.iter().map(|(_, pt)| pt.to_string()).collect();
    if let Some(te) = te {
        pts.push(te.to_string());
    }
    let mut s = format!(
        "v=0\r\no=voipbridge {session_id} {version} IN {fam} {ip}\r\ns=voipbridge\r\nc=IN {fam} {ip}\r\nt=0 0\r\nm=audio {} RTP/AVP {}\r\n",
        addr.port(),
        pts.join(" ")
    );
    for (c, pt) in codecs {
        s.push_str(&format!("a=rtpmap:{pt} {}/8000\r\n", c.name()));
    }
    if let Some(te) = te {
        s.push_str(&format!(
            "a=rtpmap:{te} telephone-event/8000\r\na=fmtp:{te} 0-15\r\n"
        ));
    }
    s.push_str(&format!("a=ptime:{ptime}\r\na={}\r\n", direction.attr()));
    s.into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    const OFFER: &str = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 4000 RTP/AVP 8 0 101\r\na=rtpmap:8 PCMA/8000\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:101 telephone-event/8000\r\na=ptime:30\r\na=sendonly\r\n";

    #[test]
    fn parses_and_chooses_by_preference() {
        let s = Session::parse(OFFER.as_bytes()).unwrap();
        assert_eq!(s.addr, "127.0.0.1:4000".parse().unwrap());
        assert_eq!(s.telephone_event, Some(101));
        assert_eq!(s.ptime, Some(30));
        assert_eq!(s.direction, Direction::SendOnly);
        // The offer lists PCMA first: it wins whatever our own order.
        assert_eq!(s.choose(&[Codec::Pcmu, Codec::Pcma]), Ok((Codec::Pcma, 8)));
        assert_eq!(s.choose(&[Codec::Pcmu]), Ok((Codec::Pcmu, 0)));
    }

    #[test]
    fn static_payload_types_without_rtpmap_and_ipv6() {
        let s = Session::parse(b"v=0\r\nc=IN IP6 ::1\r\nm=audio 5000 RTP/AVP 0\r\n").unwrap();
        assert_eq!(s.addr, "[::1]:5000".parse().unwrap());
        assert_eq!(s.choose(&[Codec::Pcma, Codec::Pcmu]), Ok((Codec::Pcmu, 0)));
        let g722 =
            Session::parse(b"v=0\r\nc=IN IP4 127.0.0.1\r\nm=audio 5000 RTP/AVP 9\r\n").unwrap();
        assert_eq!(g722.choose(&[Codec::Pcmu]), Err(SdpError::NoCodec));
    }

    #[test]
    fn malformed() {
        assert!(Session::parse(b"garbage").is_err());
        assert!(Session::parse(b"v=0\r\nm=audio x RTP/AVP 0\r\nc=IN IP4 1.2.3.4\r\n").is_err());
        assert!(Session::parse(b"v=0\r\nm=audio 5 RTP/AVP 0\r\n").is_err());
    }

    #[test]
    fn written_answer_parses_back() {
        let b = write(
            1,
            2,
            "127.0.0.1:40000".parse().unwrap(),
            &[(Codec::Pcmu, 0)],
            Some(101),
            20,
            Direction::RecvOnly,
        );
        let s = Session::parse(&b).unwrap();
        assert_eq!(s.addr.port(), 40000);
        assert_eq!(s.direction, Direction::RecvOnly);
        assert_eq!(s.telephone_event, Some(101));
    }
}
