//! Session descriptions (RFC 4566): a parser that keeps every media section
//! in order with its own connection and attributes, and a writer.
//! Offer/answer on top of it is [`super::session`] (RFC 3264).
//!
//! A small module because the SDP crates on crates.io are either
//! WebRTC-specific (webrtc-sdp pulls the WebRTC attribute zoo and its
//! own error model) or unmaintained; what a G.711 phone needs from SDP is
//! the section structure, `c=`, `rtpmap`, `ptime` and the direction.

use crate::media::{Codec, Direction};
use std::net::IpAddr;
use thiserror::Error;

/// Why a session description is unusable.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum SdpError {
    /// Syntax error.
    #[error("malformed SDP: {0}")]
    Malformed(String),
    /// No audio stream we can use (answer 488).
    #[error("no acceptable audio stream in the offer")]
    NoCodec,
}

/// At most this many media sections are read (more is refused as malformed).
pub const MAX_SECTIONS: usize = 32;
/// At most this many attributes per section (or at session level).
const MAX_ATTRIBUTES: usize = 128;
/// At most this many formats on one `m=` line.
const MAX_FORMATS: usize = 64;

/// An `a=` line: `a=name` or `a=name:value`. `Debug` blanks SDES keys.
#[derive(Clone, PartialEq, Eq)]
pub struct Attribute {
    /// Attribute name.
    pub name: String,
    /// Its value (after the first `:`).
    pub value: Option<String>,
}

impl std::fmt::Debug for Attribute {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Attribute")
            .field("name", &self.name)
            .field(
                "value",
                &self.value.as_deref().map(crate::srtp::sdes::redact),
            )
            .finish()
    }
}

/// One media section: an `m=` line and what follows it up to the next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MediaSection {
    /// Media type: `audio`, `video`, `application`, ...
    pub kind: String,
    /// Port; 0 for a stream that is declined or disabled.
    pub port: u16,
    /// `port/number` of ports, when given.
    pub port_count: Option<u16>,
    /// Transport protocol: `RTP/AVP`, `RTP/SAVP`, `UDP/TLS/RTP/SAVPF`, ...
    pub proto: String,
    /// Formats (RTP payload types for RTP protocols), in order.
    pub formats: Vec<String>,
    /// Media-level `c=` address.
    pub connection: Option<IpAddr>,
    /// Media-level attributes, in order.
    pub attributes: Vec<Attribute>,
}

/// A parsed session description.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionDescription {
    /// `o=` session id (digits, kept as text).
    pub session_id: String,
    /// `o=` session version.
    pub version: u64,
    /// Session-level `c=` address.
    pub connection: Option<IpAddr>,
    /// Session-level attributes.
    pub attributes: Vec<Attribute>,
    /// Media sections in order.
    pub media: Vec<MediaSection>,
}

fn find<'a>(attrs: &'a [Attribute], name: &str) -> Option<&'a Attribute> {
    attrs.iter().find(|a| a.name.eq_ignore_ascii_case(name))
}

fn direction_of(attrs: &[Attribute]) -> Option<Direction> {
    attrs
        .iter()
        .filter(|a| a.value.is_none())
        .find_map(|a| Direction::from_attr(&a.name))
}

impl MediaSection {
    /// The value of the first media-level attribute `name`.
    pub fn attr(&self, name: &str) -> Option<&str> {
        find(&self.attributes, name).and_then(|a| a.value.as_deref())
    }

    /// Whether the media-level flag attribute `name` is present.
    pub fn has_flag(&self, name: &str) -> bool {
        find(&self.attributes, name).is_some()
    }

    /// The encoding of payload type `pt` (`pcmu/8000`), lower case, from its `rtpmap`.
    pub fn rtpmap(&self, pt: u8) -> Option<String> {
        self.attributes
            .iter()
            .filter(|a| a.name.eq_ignore_ascii_case("rtpmap"))
            .filter_map(|a| a.value.as_deref())
            .find_map(|v| {
                let (p, enc) = v.split_once(char::is_whitespace)?;
                (p.trim().parse::<u8>().ok()? == pt).then(|| enc.trim().to_ascii_lowercase())
            })
    }

    /// The formats as RTP payload types with the G.711 codec each maps to.
    pub fn codecs(&self) -> Vec<(u8, Option<Codec>)> {
        self.formats
            .iter()
            .filter_map(|f| f.parse::<u8>().ok().filter(|pt| *pt < 128))
            .map(|pt| {
                let codec = match (pt, self.rtpmap(pt).as_deref()) {
                    (_, Some(e)) if e == "pcmu/8000" || e.starts_with("pcmu/8000/") => {
                        Some(Codec::Pcmu)
                    }
                    (_, Some(e)) if e == "pcma/8000" || e.starts_with("pcma/8000/") => {
                        Some(Codec::Pcma)
                    }
                    (0, None) => Some(Codec::Pcmu),
                    (8, None) => Some(Codec::Pcma),
                    _ => None,
                };
                (pt, codec)
            })
            .collect()
    }

    /// The telephone-event (RFC 4733) payload type at 8 kHz, if offered.
    pub fn telephone_event(&self) -> Option<u8> {
        self.formats
            .iter()
            .filter_map(|f| f.parse::<u8>().ok())
            .find(|&pt| {
                self.rtpmap(pt)
                    .is_some_and(|e| e.starts_with("telephone-event/8000"))
            })
    }

    /// `a=ptime` in ms (media level).
    pub fn ptime(&self) -> Option<u32> {
        self.attr("ptime")?.trim().split('.').next()?.parse().ok()
    }

    /// The section's direction: its own attribute, else the session's,
    /// else sendrecv (RFC 4566 6, RFC 3264 5.1).
    pub fn direction(&self, sd: &SessionDescription) -> Direction {
        direction_of(&self.attributes)
            .or_else(|| direction_of(&sd.attributes))
            .unwrap_or(Direction::SendRecv)
    }

    /// The section's address: its own `c=`, else the session's.
    pub fn address(&self, sd: &SessionDescription) -> Option<IpAddr> {
        self.connection.or(sd.connection)
    }

    /// Whether the protocol is RTP with the AVP or AVPF profile (plain RTP).
    pub fn is_plain_rtp(&self) -> bool {
        self.proto.eq_ignore_ascii_case("RTP/AVP") || self.proto.eq_ignore_ascii_case("RTP/AVPF")
    }

    /// Whether the protocol is SRTP with SDES keying (RFC 3711, RFC 4568).
    pub fn is_savp(&self) -> bool {
        self.proto.eq_ignore_ascii_case("RTP/SAVP") || self.proto.eq_ignore_ascii_case("RTP/SAVPF")
    }
}

fn parse_connection(v: &str) -> Result<IpAddr, SdpError> {
    let mut it = v.split_whitespace();
    let (net, fam, addr) = (it.next(), it.next(), it.next());
    let bad = || SdpError::Malformed(format!("bad c= line '{v}'"));
    if net != Some("IN") || !matches!(fam, Some("IP4") | Some("IP6")) {
        return Err(bad());
    }
    let addr = addr.ok_or_else(bad)?;
    let ip: IpAddr = addr
        .split('/')
        .next()
        .unwrap_or(addr)
        .parse()
        .map_err(|_| SdpError::Malformed(format!("bad address {addr}")))?;
    if ip.is_ipv4() != (fam == Some("IP4")) {
        return Err(bad());
    }
    Ok(ip)
}

fn parse_media(v: &str) -> Result<MediaSection, SdpError> {
    let mut it = v.split_whitespace();
    let bad = || SdpError::Malformed(format!("bad m= line '{v}'"));
    let kind = it.next().ok_or_else(bad)?.to_ascii_lowercase();
    let ports = it.next().ok_or_else(bad)?;
    let (port, count) = match ports.split_once('/') {
        Some((p, c)) => (p, Some(c.parse::<u16>().map_err(|_| bad())?)),
        None => (ports, None),
    };
    let port = port.parse::<u16>().map_err(|_| bad())?;
    let proto = it.next().ok_or_else(bad)?.to_string();
    let formats: Vec<String> = it.map(str::to_string).collect();
    if formats.is_empty() || formats.len() > MAX_FORMATS {
        return Err(bad());
    }
    Ok(MediaSection {
        kind,
        port,
        port_count: count,
        proto,
        formats,
        connection: None,
        attributes: Vec::new(),
    })
}

impl SessionDescription {
    /// Parses a session description; every media section is kept.
    pub fn parse(body: &[u8]) -> Result<SessionDescription, SdpError> {
        let text =
            std::str::from_utf8(body).map_err(|_| SdpError::Malformed("not UTF-8".into()))?;
        let mut sd = SessionDescription {
            session_id: String::new(),
            version: 0,
            connection: None,
            attributes: Vec::new(),
            media: Vec::new(),
        };
        let mut seen_v = false;
        for line in text.lines() {
            let line = line.trim_end();
            if line.is_empty() {
                continue;
            }
            let Some((k, v)) = line.split_once('=') else {
                return Err(SdpError::Malformed(format!(
                    "bad line '{}'",
                    line.chars().take(40).collect::<String>()
                )));
            };
            if k.len() != 1 {
                return Err(SdpError::Malformed(format!("bad line type '{k}'")));
            }
            match k {
                "v" => {
                    if v.trim() != "0" {
                        return Err(SdpError::Malformed(format!("version {v}")));
                    }
                    seen_v = true;
                }
                "o" if sd.media.is_empty() => {
                    let f: Vec<&str> = v.split_whitespace().collect();
                    let (Some(id), Some(version), 6) = (f.get(1), f.get(2), f.len()) else {
                        return Err(SdpError::Malformed("bad o= line".into()));
                    };
                    sd.session_id = id.to_string();
                    sd.version = version.parse().unwrap_or(0);
                }
                "c" => {
                    let ip = parse_connection(v)?;
                    match sd.media.last_mut() {
                        Some(m) => m.connection = Some(ip),
                        None => sd.connection = Some(ip),
                    }
                }
                "m" => {
                    if sd.media.len() >= MAX_SECTIONS {
                        return Err(SdpError::Malformed("too many media sections".into()));
                    }
                    sd.media.push(parse_media(v)?);
                }
                "a" => {
                    let (name, value) = match v.split_once(':') {
                        Some((n, val)) => (n.trim(), Some(val.to_string())),
                        None => (v.trim(), None),
                    };
                    let attrs = match sd.media.last_mut() {
                        Some(m) => &mut m.attributes,
                        None => &mut sd.attributes,
                    };
                    if attrs.len() >= MAX_ATTRIBUTES {
                        return Err(SdpError::Malformed("too many attributes".into()));
                    }
                    attrs.push(Attribute {
                        name: name.to_string(),
                        value,
                    });
                }
                _ => {}
            }
        }
        if !seen_v {
            return Err(SdpError::Malformed("no v= line".into()));
        }
        // No media section is a valid description (RFC 3264 5: a session
        // without streams); offer/answer refuses it (488), not the parser.
        Ok(sd)
    }
}

/// One media section to write. `Debug` blanks SDES keys in `extra`.
#[derive(Clone, PartialEq, Eq)]
pub enum WriteSection {
    /// Our audio stream.
    Audio {
        /// RTP port.
        port: u16,
        /// Protocol (`RTP/AVP`, or the offer's `RTP/AVPF`).
        proto: String,
        /// Codecs with their payload types, preferred first.
        codecs: Vec<(Codec, u8)>,
        /// telephone-event payload type.
        telephone_event: Option<u8>,
        /// Packet time.
        ptime: u32,
        /// Our direction.
        direction: Direction,
        /// Extra attribute lines (without `a=`), e.g. from the SRTP hook.
        extra: Vec<String>,
    },
    /// A declined (or disabled) stream: port 0, the offer's type, protocol and formats.
    Declined {
        /// Media type.
        kind: String,
        /// Protocol.
        proto: String,
        /// Formats.
        formats: Vec<String>,
    },
}

impl std::fmt::Debug for WriteSection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            WriteSection::Audio {
                port,
                proto,
                codecs,
                telephone_event,
                ptime,
                direction,
                extra,
            } => f
                .debug_struct("Audio")
                .field("port", port)
                .field("proto", proto)
                .field("codecs", codecs)
                .field("telephone_event", telephone_event)
                .field("ptime", ptime)
                .field("direction", direction)
                .field(
                    "extra",
                    &extra
                        .iter()
                        .map(|e| crate::srtp::sdes::redact(e))
                        .collect::<Vec<_>>(),
                )
                .finish(),
            WriteSection::Declined {
                kind,
                proto,
                formats,
            } => f
                .debug_struct("Declined")
                .field("kind", kind)
                .field("proto", proto)
                .field("formats", formats)
                .finish(),
        }
    }
}

/// Writes a session description with `o=voipbridge <id> <version>`.
pub fn write(session_id: u64, version: u64, ip: IpAddr, sections: &[WriteSection]) -> Vec<u8> {
    let fam = if ip.is_ipv4() { "IP4" } else { "IP6" };
    let mut s = format!(
        "v=0\r\no=voipbridge {session_id} {version} IN {fam} {ip}\r\ns=voipbridge\r\nc=IN {fam} {ip}\r\nt=0 0\r\n"
    );
    for sec in sections {
        match sec {
            WriteSection::Audio {
                port,
                proto,
                codecs,
                telephone_event,
                ptime,
                direction,
                extra,
            } => {
                let mut pts: Vec<String> = codecs.iter().map(|(_, pt)| pt.to_string()).collect();
                if let Some(te) = telephone_event {
                    pts.push(te.to_string());
                }
                s.push_str(&format!("m=audio {port} {proto} {}\r\n", pts.join(" ")));
                for (c, pt) in codecs {
                    s.push_str(&format!("a=rtpmap:{pt} {}/8000\r\n", c.name()));
                }
                if let Some(te) = telephone_event {
                    s.push_str(&format!(
                        "a=rtpmap:{te} telephone-event/8000\r\na=fmtp:{te} 0-15\r\n"
                    ));
                }
                s.push_str(&format!("a=ptime:{ptime}\r\n"));
                for e in extra {
                    s.push_str(&format!("a={e}\r\n"));
                }
                s.push_str(&format!("a={}\r\n", direction.attr()));
            }
            WriteSection::Declined {
                kind,
                proto,
                formats,
            } => {
                s.push_str(&format!("m={kind} 0 {proto} {}\r\n", formats.join(" ")));
            }
        }
    }
    s.into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    const OFFER: &str = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 4000 RTP/AVP 8 0 101\r\na=rtpmap:8 PCMA/8000\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:101 telephone-event/8000\r\na=ptime:30\r\na=sendonly\r\n";

    #[test]
    fn parses_one_audio_section() {
        let s = SessionDescription::parse(OFFER.as_bytes()).unwrap();
        assert_eq!(s.media.len(), 1);
        let a = &s.media[0];
        assert_eq!(
            (a.kind.as_str(), a.port, a.proto.as_str()),
            ("audio", 4000, "RTP/AVP")
        );
        assert_eq!(a.address(&s), Some("127.0.0.1".parse().unwrap()));
        assert_eq!(a.telephone_event(), Some(101));
        assert_eq!(a.ptime(), Some(30));
        assert_eq!(a.direction(&s), Direction::SendOnly);
        assert_eq!(
            a.codecs(),
            vec![(8, Some(Codec::Pcma)), (0, Some(Codec::Pcmu)), (101, None)]
        );
        assert_eq!((s.session_id.as_str(), s.version), ("1", 1));
    }

    #[test]
    fn attributes_and_connections_are_scoped_per_section() {
        let sdp =
            "v=0\r\no=- 5 7 IN IP4 10.0.0.1\r\ns=-\r\nc=IN IP4 10.0.0.1\r\nt=0 0\r\na=recvonly\r\n\
m=audio 4000 RTP/AVP 0\r\n\
m=video 5000 RTP/AVP 96\r\nc=IN IP6 ::1\r\na=rtpmap:96 H264/90000\r\na=inactive\r\n";
        let s = SessionDescription::parse(sdp.as_bytes()).unwrap();
        assert_eq!(s.media.len(), 2);
        // The video's inactive does not touch the audio; the session's recvonly does.
        assert_eq!(s.media[0].direction(&s), Direction::RecvOnly);
        assert_eq!(s.media[1].direction(&s), Direction::Inactive);
        assert_eq!(s.media[0].address(&s), Some("10.0.0.1".parse().unwrap()));
        assert_eq!(s.media[1].address(&s), Some("::1".parse().unwrap()));
        assert_eq!(s.media[0].rtpmap(96), None);
        assert_eq!(s.media[1].rtpmap(96).as_deref(), Some("h264/90000"));
        assert_eq!(s.media[0].codecs(), vec![(0, Some(Codec::Pcmu))]);
    }

    #[test]
    fn malformed() {
        for bad in [
            "garbage",
            "v=0\r\nm=audio x RTP/AVP 0\r\nc=IN IP4 1.2.3.4\r\n",
            "v=0\r\nc=IN IP4 ::1\r\nm=audio 5 RTP/AVP 0\r\n",
            "v=0\r\nm=audio 5 RTP/AVP\r\n",
            "v=1\r\nm=audio 5 RTP/AVP 0\r\n",
            "v=0\r\nxy=1\r\nm=audio 5 RTP/AVP 0\r\n",
        ] {
            assert!(SessionDescription::parse(bad.as_bytes()).is_err(), "{bad}");
        }
        let many = format!(
            "v=0\r\n{}",
            "m=audio 5 RTP/AVP 0\r\n".repeat(MAX_SECTIONS + 1)
        );
        assert!(SessionDescription::parse(many.as_bytes()).is_err());
        // A section without any address, or no section at all, parses;
        // offer/answer judges them.
        assert!(SessionDescription::parse(b"v=0\r\nm=audio 5 RTP/AVP 0\r\n").is_ok());
        assert!(SessionDescription::parse(b"v=0\r\nc=IN IP4 1.2.3.4\r\n").is_ok());
    }

    #[test]
    fn written_sections_parse_back_in_order() {
        let b = write(
            1,
            2,
            "127.0.0.1".parse().unwrap(),
            &[
                WriteSection::Audio {
                    port: 40000,
                    proto: "RTP/AVP".into(),
                    codecs: vec![(Codec::Pcmu, 0)],
                    telephone_event: Some(101),
                    ptime: 20,
                    direction: Direction::RecvOnly,
                    extra: vec![],
                },
                WriteSection::Declined {
                    kind: "video".into(),
                    proto: "RTP/AVP".into(),
                    formats: vec!["96".into()],
                },
            ],
        );
        let s = SessionDescription::parse(&b).unwrap();
        assert_eq!(s.version, 2);
        assert_eq!(s.media.len(), 2);
        assert_eq!(s.media[0].port, 40000);
        assert_eq!(s.media[0].direction(&s), Direction::RecvOnly);
        assert_eq!(s.media[0].telephone_event(), Some(101));
        assert_eq!((s.media[1].kind.as_str(), s.media[1].port), ("video", 0));
    }
}
