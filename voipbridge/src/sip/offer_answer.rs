//! The offer/answer model (RFC 3264) for one audio stream per call.
//!
//! * Answering (6): the answer has exactly the offer's media sections, in
//!   order. The first audio section we can use (a port, an address, plain
//!   RTP — `RTP/AVP` or `RTP/AVPF` — and a G.711 codec) is accepted; every
//!   other section is declined with port 0 and its own type, protocol and
//!   formats. Attributes are read per section (a video `a=inactive` does not
//!   touch the audio), falling back to session-level ones.
//! * SRTP with SDES keys (RFC 4568, [`crate::srtp::sdes`]) under
//!   `[media] srtp` ([`LocalMedia::srtp`]): `off` declines `RTP/SAVP`
//!   sections and ignores crypto lines; `optional` offers `RTP/AVP` with
//!   crypto lines and takes SRTP whenever the peer offers or answers keys;
//!   `mandatory` offers `RTP/SAVP` and refuses (488) a plain offer or
//!   answer. Keys are only sent or taken when the signalling is secure
//!   ([`LocalMedia::sdes_allowed`]: TLS, or `srtp_over_udp`), fresh for
//!   every offer and answer; [`Negotiated::crypto`] carries them to the
//!   media path. No type here prints a key (`Debug` is redacted).
//! * Directions (6.1): the answer's direction is the offer's reversed,
//!   narrowed by ours (on hold we never receive); an offer with address
//!   `0.0.0.0` (RFC 2543 hold) means we do not send.
//! * Our offer's answer (7) must have the same number of sections; the
//!   codec must be one we offered; its direction, reversed and narrowed by
//!   what we offered, is ours — so a hold answered `inactive` makes us
//!   inactive, not sendonly.
//! * [`SdpVersion`] keeps `o=` right (8): one session id per call, the
//!   version bumped only when the description changes.

use super::sdp::{MediaSection, SessionDescription, WriteSection};
use crate::media::{Codec, Direction};
use crate::srtp::sdes::{self, Offered, SrtpMode};
use std::net::{IpAddr, SocketAddr};
use thiserror::Error;

/// What our side can do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalMedia {
    /// Our RTP address.
    pub ip: IpAddr,
    /// Our RTP port (the call's substream).
    pub port: u16,
    /// Codecs we accept, preferred first.
    pub codecs: Vec<Codec>,
    /// Our packet time (ms).
    pub ptime: u32,
    /// The telephone-event payload type we offer.
    pub telephone_event: u8,
    /// `[media] srtp`.
    pub srtp: SrtpMode,
    /// Whether SDES keys may cross the signalling (TLS, or `srtp_over_udp`).
    pub sdes_allowed: bool,
    /// The call's SRTP keys in use (re-INVITEs): our key is offered again,
    /// and answered again when the peer keeps its own (RFC 4568 7.1.4
    /// allows both), so a hold or a target refresh neither re-keys nor
    /// restarts the media. `None` for a new call: fresh keys.
    pub keep: Option<MediaCrypto>,
}

/// SRTP keying of a negotiated stream (RFC 4568 SDES): the suite, our
/// master key (what we send with) and the peer's (what we receive with).
/// Its `Debug` never shows the keys.
pub type MediaCrypto = sdes::Negotiated;

/// A negotiated audio stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Negotiated {
    /// Index of its media section.
    pub index: usize,
    /// The peer's RTP address (`c=` and `m=`).
    pub remote: SocketAddr,
    /// Codec.
    pub codec: Codec,
    /// Its payload type.
    pub payload_type: u8,
    /// Packet time the peer asked for (ms).
    pub ptime: u32,
    /// telephone-event payload type, when both sides have it.
    pub telephone_event: Option<u8>,
    /// Our direction.
    pub direction: Direction,
    /// SRTP keys; `None`: plain RTP.
    pub crypto: Option<MediaCrypto>,
}

/// Why an offer or answer cannot be used.
#[derive(Debug, Clone, Error, PartialEq, Eq)]
pub enum OaError {
    /// Not a session description (400 for an offer in a request).
    #[error("malformed SDP: {0}")]
    Malformed(String),
    /// Nothing acceptable (488 Not Acceptable Here).
    #[error("{0}")]
    NotAcceptable(String),
}

/// The `a=crypto` values of a section.
fn crypto_values(m: &MediaSection) -> Vec<&str> {
    m.attributes
        .iter()
        .filter(|a| a.name.eq_ignore_ascii_case("crypto"))
        .filter_map(|a| a.value.as_deref())
        .collect()
}

/// Our answer's SRTP for an offered RTP or SRTP section (RFC 4568 7.1.2
/// with our policy): the keys and the `a=crypto` line to answer with, or
/// why the section cannot be taken.
fn sdes_answer(
    section: &MediaSection,
    local: &LocalMedia,
) -> Result<(Option<MediaCrypto>, Vec<String>), String> {
    let a = sdes::answer(
        local.srtp,
        local.sdes_allowed,
        &section.proto,
        &crypto_values(section),
    )
    .map_err(|e| e.to_string())?;
    let tag = a
        .crypto
        .as_deref()
        .and_then(|c| c.split(' ').next()?.parse::<u32>().ok());
    match (a.srtp, &local.keep, tag) {
        // The peer kept its key and suite: so do we.
        (Some(n), Some(k), Some(tag)) if n.suite == k.suite && n.remote == k.remote => Ok((
            Some(k.clone()),
            vec![format!("crypto:{}", sdes::format(tag, k.suite, &k.local))],
        )),
        (srtp, _, _) => Ok((
            srtp,
            a.crypto
                .map(|c| format!("crypto:{c}"))
                .into_iter()
                .collect(),
        )),
    }
}

/// The direction both `a` and `b` allow.
pub fn intersect(a: Direction, b: Direction) -> Direction {
    match (a.sends() && b.sends(), a.receives() && b.receives()) {
        (true, true) => Direction::SendRecv,
        (true, false) => Direction::SendOnly,
        (false, true) => Direction::RecvOnly,
        (false, false) => Direction::Inactive,
    }
}

fn declined(m: &MediaSection) -> WriteSection {
    WriteSection::Declined {
        kind: m.kind.clone(),
        proto: m.proto.clone(),
        formats: m.formats.clone(),
    }
}

/// Why one offered section cannot be our audio stream; `Ok` with the
/// accepted stream and its answer section otherwise.
fn try_audio(
    index: usize,
    m: &MediaSection,
    sd: &SessionDescription,
    local: &LocalMedia,
    want: Direction,
) -> Result<(Negotiated, WriteSection), String> {
    if m.kind != "audio" {
        return Err(format!("{} is not audio", m.kind));
    }
    if m.port == 0 {
        return Err("audio stream disabled (port 0)".into());
    }
    if !m.is_plain_rtp() && !m.is_savp() {
        return Err(format!("profile {} is not supported", m.proto));
    }
    let (crypto, extra) = sdes_answer(m, local)?;
    let ip = m
        .address(sd)
        .ok_or_else(|| "audio stream without an address (c=)".to_string())?;
    let (codec, pt) = m
        .codecs()
        .into_iter()
        .find_map(|(pt, c)| c.filter(|c| local.codecs.contains(c)).map(|c| (c, pt)))
        .ok_or_else(|| "no codec in common (PCMU, PCMA)".to_string())?;
    let te = m.telephone_event();
    let mut offered = m.direction(sd);
    if ip.is_unspecified() {
        // RFC 2543 hold (RFC 3264 8.4): the offerer does not want media.
        offered = intersect(offered, Direction::SendOnly);
    }
    let direction = intersect(offered.answer(), want);
    let ptime = m
        .ptime()
        .filter(|p| (10..=60).contains(p))
        .unwrap_or(local.ptime);
    let neg = Negotiated {
        index,
        remote: SocketAddr::new(ip, m.port),
        codec,
        payload_type: pt,
        ptime,
        telephone_event: te,
        direction,
        crypto,
    };
    let section = WriteSection::Audio {
        port: local.port,
        proto: m.proto.clone(),
        codecs: vec![(codec, pt)],
        telephone_event: te,
        ptime: local.ptime,
        direction,
        extra,
    };
    Ok((neg, section))
}

/// Answers an offer (RFC 3264 6): the sections of the answer, in the
/// offer's order, and the accepted audio stream. `Ok((sections, None))`
/// when the offerer disabled every audio stream (port 0: a valid answer,
/// the call stays up without media); `Err(NotAcceptable)` when audio was
/// offered but none can be used.
pub fn answer(
    offer: &SessionDescription,
    local: &LocalMedia,
    want: Direction,
) -> Result<(Vec<WriteSection>, Option<Negotiated>), OaError> {
    let mut sections = Vec::with_capacity(offer.media.len());
    let mut chosen = None;
    let mut why = None;
    for (i, m) in offer.media.iter().enumerate() {
        if chosen.is_some() {
            sections.push(declined(m));
            continue;
        }
        match try_audio(i, m, offer, local, want) {
            Ok((neg, sec)) => {
                chosen = Some(neg);
                sections.push(sec);
            }
            Err(e) => {
                if m.kind == "audio" && m.port != 0 {
                    why.get_or_insert(e);
                }
                sections.push(declined(m));
            }
        }
    }
    if chosen.is_none() {
        if let Some(e) = why {
            return Err(OaError::NotAcceptable(e));
        }
        if !offer.media.iter().any(|m| m.kind == "audio") {
            return Err(OaError::NotAcceptable("no audio stream offered".into()));
        }
    }
    Ok((sections, chosen))
}

/// Our offer: one audio section with every codec and telephone-event;
/// with SRTP, fresh keys for each suite (`RTP/SAVP` when mandatory,
/// `RTP/AVP` with crypto lines when optional).
pub fn offer(local: &LocalMedia, direction: Direction) -> Vec<WriteSection> {
    let o = sdes::offer(local.srtp, local.sdes_allowed);
    let proto = o.proto;
    let extra = match &local.keep {
        // A re-offer in an SRTP call: the key in use, alone.
        Some(k) if !o.crypto.is_empty() => {
            vec![format!("crypto:{}", sdes::format(1, k.suite, &k.local))]
        }
        _ => o.crypto.iter().map(|c| format!("crypto:{c}")).collect(),
    };
    vec![WriteSection::Audio {
        port: local.port,
        proto: proto.into(),
        codecs: local
            .codecs
            .iter()
            .map(|c| (*c, c.payload_type()))
            .collect(),
        telephone_event: Some(local.telephone_event),
        ptime: local.ptime,
        direction,
        extra,
    }]
}

/// Reads the answer to our offer (RFC 3264 7). `offered` is what we sent.
/// `Ok(None)`: the peer declined the audio stream (port 0).
pub fn accept_answer(
    answer: &SessionDescription,
    offered: &[WriteSection],
) -> Result<Option<Negotiated>, OaError> {
    if answer.media.len() != offered.len() {
        return Err(OaError::NotAcceptable(format!(
            "the answer has {} media sections for the {} offered",
            answer.media.len(),
            offered.len()
        )));
    }
    for (i, (m, ours)) in answer.media.iter().zip(offered).enumerate() {
        let WriteSection::Audio {
            codecs,
            direction: our_dir,
            telephone_event,
            ptime,
            proto,
            extra,
            ..
        } = ours
        else {
            continue;
        };
        if m.port == 0 {
            return Ok(None);
        }
        if !m.proto.eq_ignore_ascii_case(proto) {
            return Err(OaError::NotAcceptable(format!(
                "answered {} to an {proto} offer",
                m.proto
            )));
        }
        let sent: Vec<&str> = extra
            .iter()
            .filter_map(|e| e.strip_prefix("crypto:"))
            .collect();
        let crypto = Offered::from_sent(proto, &sent)
            .accept_answer(&m.proto, &crypto_values(m))
            .map_err(|e| OaError::NotAcceptable(e.to_string()))?;
        let ip = m
            .address(answer)
            .ok_or_else(|| OaError::Malformed("audio stream without an address (c=)".into()))?;
        let (codec, pt) = m
            .codecs()
            .into_iter()
            .find_map(|(pt, c)| {
                c.filter(|c| codecs.iter().any(|(o, _)| o == c))
                    .map(|c| (c, pt))
            })
            .ok_or_else(|| OaError::NotAcceptable("no codec we offered in the answer".into()))?;
        let mut theirs = m.direction(answer);
        if ip.is_unspecified() {
            theirs = intersect(theirs, Direction::SendOnly);
        }
        return Ok(Some(Negotiated {
            index: i,
            remote: SocketAddr::new(ip, m.port),
            codec,
            payload_type: pt,
            ptime: m
                .ptime()
                .filter(|p| (10..=60).contains(p))
                .unwrap_or(*ptime),
            telephone_event: telephone_event.and(m.telephone_event()),
            direction: intersect(theirs.answer(), *our_dir),
            crypto,
        }));
    }
    Err(OaError::NotAcceptable(
        "no audio stream in our offer".into(),
    ))
}

/// The `o=` line of our descriptions in one call (RFC 3264 8): a fixed
/// session id, a version bumped only when the description changes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SdpVersion {
    /// Session id.
    pub session_id: u64,
    /// Version of the last description sent.
    pub version: u64,
    last: Option<Vec<u8>>,
}

impl SdpVersion {
    /// A new origin.
    pub fn new(session_id: u64) -> SdpVersion {
        SdpVersion {
            session_id,
            version: 0,
            last: None,
        }
    }

    /// The body for `sections`: the last version again when nothing
    /// changed, the next version otherwise.
    pub fn body(&mut self, ip: IpAddr, sections: &[WriteSection]) -> Vec<u8> {
        if self.last.is_some() {
            let same = super::sdp::write(self.session_id, self.version, ip, sections);
            if self.last.as_ref() == Some(&same) {
                return same;
            }
        }
        self.version += 1;
        let body = super::sdp::write(self.session_id, self.version, ip, sections);
        self.last = Some(body.clone());
        body
    }

    /// The last body sent (the offer of an offerless re-INVITE's 2xx).
    pub fn last(&self) -> Option<&[u8]> {
        self.last.as_deref()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn local() -> LocalMedia {
        LocalMedia {
            ip: "127.0.0.1".parse().unwrap(),
            port: 40000,
            codecs: vec![Codec::Pcmu, Codec::Pcma],
            ptime: 20,
            telephone_event: 101,
            srtp: SrtpMode::Off,
            sdes_allowed: false,
            keep: None,
        }
    }

    fn srtp_local(mode: SrtpMode) -> LocalMedia {
        LocalMedia {
            srtp: mode,
            sdes_allowed: true,
            ..local()
        }
    }

    const KEY: &str = "WVNfX19zZW1jdGwgKCkgewkyMjA7fQp9CnVubGVz";

    fn crypto_of(secs: &[WriteSection]) -> Vec<String> {
        secs.iter()
            .flat_map(|s| match s {
                WriteSection::Audio { extra, .. } => extra.clone(),
                _ => Vec::new(),
            })
            .collect()
    }

    #[test]
    fn savp_offer_is_answered_with_fresh_keys_when_srtp_is_on() {
        let o = sd(&format!(
            "{HEAD}m=audio 4000 RTP/SAVP 0\r\na=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:{KEY}|2^20|1:4\r\na=crypto:2 AES_CM_128_HMAC_SHA1_32 inline:{KEY}\r\n"
        ));
        for mode in [SrtpMode::Optional, SrtpMode::Mandatory] {
            let (secs, neg) = answer(&o, &srtp_local(mode), Direction::SendRecv).unwrap();
            let neg = neg.unwrap();
            let c = neg.crypto.clone().expect("SRTP negotiated");
            // The MKI line is skipped, tag 2 taken.
            assert_eq!(c.suite, crate::srtp::Suite::AesCm128HmacSha1_32);
            assert_eq!(&c.remote.bytes()[..4], b"YS__");
            assert_ne!(c.local, c.remote);
            let lines = crypto_of(&secs);
            assert_eq!(lines.len(), 1);
            assert!(lines[0].starts_with("crypto:2 AES_CM_128_HMAC_SHA1_32 inline:"));
            let body = String::from_utf8(crate::sip::sdp::write(1, 1, local().ip, &secs)).unwrap();
            assert!(body.contains("m=audio 40000 RTP/SAVP 0\r\n"), "{body}");
            // Keys never in Debug output.
            let dbg = format!("{secs:?} {neg:?} {o:?}");
            assert!(
                !dbg.contains(KEY) && !dbg.contains(&lines[0][40..]),
                "{dbg}"
            );
            // A second answer has other keys (fresh per answer).
            let (_, n2) = answer(&o, &srtp_local(mode), Direction::SendRecv).unwrap();
            assert_ne!(n2.unwrap().crypto.unwrap().local, c.local);
        }
        // Off, or signalling not secure: 488 (no section we can take).
        let insecure = LocalMedia {
            sdes_allowed: false,
            ..srtp_local(SrtpMode::Optional)
        };
        for l in [local(), insecure] {
            assert!(matches!(
                answer(&o, &l, Direction::SendRecv),
                Err(OaError::NotAcceptable(e)) if e.contains("SRTP")
            ));
        }
        // Only unusable crypto lines: 488 even in optional mode.
        let mki = sd(&format!(
            "{HEAD}m=audio 4000 RTP/SAVP 0\r\na=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:{KEY}|2^20|1:4\r\n"
        ));
        assert!(answer(&mki, &srtp_local(SrtpMode::Optional), Direction::SendRecv).is_err());
    }

    #[test]
    fn plain_offers_under_each_mode() {
        let plain = sd(&format!("{HEAD}m=audio 4000 RTP/AVP 0\r\n"));
        // Mandatory refuses a plain offer with 488.
        assert!(matches!(
            answer(&plain, &srtp_local(SrtpMode::Mandatory), Direction::SendRecv),
            Err(OaError::NotAcceptable(e)) if e.contains("mandatory")
        ));
        // Optional takes it plain.
        let (secs, neg) =
            answer(&plain, &srtp_local(SrtpMode::Optional), Direction::SendRecv).unwrap();
        assert!(neg.unwrap().crypto.is_none());
        assert!(crypto_of(&secs).is_empty());
        // RTP/AVP with crypto lines (baresip's best-effort `srtp`): optional
        // takes SRTP and answers RTP/AVP with a crypto line; off ignores them.
        let best_effort = sd(&format!(
            "{HEAD}m=audio 4000 RTP/AVP 0\r\na=crypto:7 AES_CM_128_HMAC_SHA1_80 inline:{KEY}\r\n"
        ));
        let (secs, neg) = answer(
            &best_effort,
            &srtp_local(SrtpMode::Optional),
            Direction::SendRecv,
        )
        .unwrap();
        assert!(neg.unwrap().crypto.is_some());
        assert!(crypto_of(&secs)[0].starts_with("crypto:7 AES_CM_128_HMAC_SHA1_80 inline:"));
        let (secs, neg) = answer(&best_effort, &local(), Direction::SendRecv).unwrap();
        assert!(neg.unwrap().crypto.is_none());
        assert!(crypto_of(&secs).is_empty());
    }

    #[test]
    fn our_srtp_offers_and_their_answers() {
        // Mandatory: RTP/SAVP with both suites, fresh keys each time.
        let ours = offer(&srtp_local(SrtpMode::Mandatory), Direction::SendRecv);
        let WriteSection::Audio { proto, extra, .. } = &ours[0] else {
            panic!()
        };
        assert_eq!(proto, "RTP/SAVP");
        assert_eq!(extra.len(), 2);
        assert!(extra[0].starts_with("crypto:1 AES_CM_128_HMAC_SHA1_80 inline:"));
        assert!(extra[1].starts_with("crypto:2 AES_CM_128_HMAC_SHA1_32 inline:"));
        assert_ne!(
            crypto_of(&offer(
                &srtp_local(SrtpMode::Mandatory),
                Direction::SendRecv
            )),
            *extra
        );
        assert!(!format!("{ours:?}").contains(&extra[0][40..]));
        // Answered with tag 1: our key of tag 1 sends, theirs receives.
        let a = sd(&format!(
            "{HEAD}m=audio 4000 RTP/SAVP 0\r\na=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:{KEY}\r\n"
        ));
        let n = accept_answer(&a, &ours).unwrap().unwrap();
        let c = n.crypto.unwrap();
        assert_eq!(c.suite, crate::srtp::Suite::AesCm128HmacSha1_80);
        assert_eq!(
            sdes::format(1, c.suite, &c.local),
            extra[0]["crypto:".len()..]
        );
        assert_eq!(&c.remote.bytes()[..4], b"YS__");
        // A tag we did not offer, or a suite other than the tag's: refused.
        for bad in [
            format!("a=crypto:3 AES_CM_128_HMAC_SHA1_80 inline:{KEY}\r\n"),
            format!("a=crypto:1 AES_CM_128_HMAC_SHA1_32 inline:{KEY}\r\n"),
            String::new(),
        ] {
            let a = sd(&format!("{HEAD}m=audio 4000 RTP/SAVP 0\r\n{bad}"));
            assert!(accept_answer(&a, &ours).is_err(), "{bad}");
        }
        // A plain answer to our SAVP offer: refused.
        let plain = sd(&format!("{HEAD}m=audio 4000 RTP/AVP 0\r\n"));
        assert!(accept_answer(&plain, &ours).is_err());
        // Optional: RTP/AVP with keys; a plain answer is fine, a keyed one SRTP.
        let opt = offer(&srtp_local(SrtpMode::Optional), Direction::SendRecv);
        assert!(matches!(&opt[0], WriteSection::Audio { proto, .. } if proto == "RTP/AVP"));
        assert_eq!(crypto_of(&opt).len(), 2);
        assert!(accept_answer(&plain, &opt)
            .unwrap()
            .unwrap()
            .crypto
            .is_none());
        let keyed = sd(&format!(
            "{HEAD}m=audio 4000 RTP/AVP 0\r\na=crypto:2 AES_CM_128_HMAC_SHA1_32 inline:{KEY}\r\n"
        ));
        let c = accept_answer(&keyed, &opt)
            .unwrap()
            .unwrap()
            .crypto
            .unwrap();
        assert_eq!(c.suite, crate::srtp::Suite::AesCm128HmacSha1_32);
        // Not secure signalling: no keys offered whatever the mode.
        let insecure = LocalMedia {
            sdes_allowed: false,
            ..srtp_local(SrtpMode::Optional)
        };
        assert!(crypto_of(&offer(&insecure, Direction::SendRecv)).is_empty());
    }

    fn sd(s: &str) -> SessionDescription {
        SessionDescription::parse(s.as_bytes()).unwrap()
    }

    const HEAD: &str = "v=0\r\no=- 1 1 IN IP4 10.0.0.1\r\ns=-\r\nc=IN IP4 10.0.0.1\r\nt=0 0\r\n";

    #[test]
    fn audio_and_video_answer_keeps_both_lines_in_order() {
        let o = sd(&format!(
            "{HEAD}m=video 5000 RTP/AVP 96\r\na=rtpmap:96 H264/90000\r\na=inactive\r\nm=audio 4000 RTP/AVP 8 0 101\r\na=rtpmap:101 telephone-event/8000\r\nm=audio 4100 RTP/AVP 0\r\n"
        ));
        let (secs, neg) = answer(&o, &local(), Direction::SendRecv).unwrap();
        let neg = neg.unwrap();
        assert_eq!(neg.index, 1);
        assert_eq!((neg.codec, neg.payload_type), (Codec::Pcma, 8));
        // The video's inactive stays in the video.
        assert_eq!(neg.direction, Direction::SendRecv);
        assert_eq!(neg.remote, "10.0.0.1:4000".parse().unwrap());
        assert_eq!(neg.telephone_event, Some(101));
        let body = crate::sip::sdp::write(1, 1, local().ip, &secs);
        let a = SessionDescription::parse(&body).unwrap();
        let ports: Vec<(String, u16)> = a.media.iter().map(|m| (m.kind.clone(), m.port)).collect();
        assert_eq!(
            ports,
            vec![
                ("video".into(), 0),
                ("audio".into(), 40000),
                ("audio".into(), 0)
            ]
        );
        assert_eq!(a.media[0].formats, vec!["96"]);
        assert_eq!(
            a.media[1].codecs(),
            vec![(8, Some(Codec::Pcma)), (101, None)]
        );
    }

    #[test]
    fn savp_and_unknown_profiles_are_declined_and_the_next_audio_taken() {
        let o = sd(&format!(
            "{HEAD}m=audio 4000 RTP/SAVP 0\r\na=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:WVNfX19zZW1jdGwgKCkgewkyMjA7fQp9CnVubGVz\r\nm=audio 4200 RTP/AVP 0\r\n"
        ));
        let (secs, neg) = answer(&o, &local(), Direction::SendRecv).unwrap();
        assert_eq!(neg.unwrap().index, 1);
        assert!(matches!(&secs[0], WriteSection::Declined { proto, .. } if proto == "RTP/SAVP"));
        let only_savp = sd(&format!("{HEAD}m=audio 4000 RTP/SAVP 0\r\n"));
        assert!(matches!(
            answer(&only_savp, &local(), Direction::SendRecv),
            Err(OaError::NotAcceptable(e)) if e.contains("SRTP")
        ));
        let tcp = sd(&format!("{HEAD}m=audio 4000 TCP/RTP/AVP 0\r\n"));
        assert!(answer(&tcp, &local(), Direction::SendRecv).is_err());
        let g729 = sd(&format!("{HEAD}m=audio 4000 RTP/AVP 18\r\n"));
        assert!(matches!(
            answer(&g729, &local(), Direction::SendRecv),
            Err(OaError::NotAcceptable(_))
        ));
        let video_only = sd(&format!("{HEAD}m=video 5000 RTP/AVP 96\r\n"));
        assert!(answer(&video_only, &local(), Direction::SendRecv).is_err());
        let no_media = sd(HEAD);
        assert!(matches!(
            answer(&no_media, &local(), Direction::SendRecv),
            Err(OaError::NotAcceptable(_))
        ));
        // Audio disabled by the offerer (a re-INVITE): a valid answer without media.
        let disabled = sd(&format!("{HEAD}m=audio 0 RTP/AVP 0\r\n"));
        let (secs, neg) = answer(&disabled, &local(), Direction::SendRecv).unwrap();
        assert!(neg.is_none());
        assert!(matches!(&secs[0], WriteSection::Declined { .. }));
    }

    #[test]
    fn directions() {
        for (offered, want, ours) in [
            ("sendrecv", Direction::SendRecv, Direction::SendRecv),
            ("sendonly", Direction::SendRecv, Direction::RecvOnly),
            ("recvonly", Direction::SendRecv, Direction::SendOnly),
            ("inactive", Direction::SendRecv, Direction::Inactive),
            ("sendrecv", Direction::SendOnly, Direction::SendOnly),
            ("sendonly", Direction::SendOnly, Direction::Inactive),
        ] {
            let o = sd(&format!("{HEAD}m=audio 4000 RTP/AVP 0\r\na={offered}\r\n"));
            let (_, neg) = answer(&o, &local(), want).unwrap();
            assert_eq!(neg.unwrap().direction, ours, "{offered} {want:?}");
        }
        let hold2543 = sd("v=0\r\nc=IN IP4 0.0.0.0\r\nm=audio 4000 RTP/AVP 0\r\n");
        let (_, neg) = answer(&hold2543, &local(), Direction::SendRecv).unwrap();
        assert_eq!(neg.unwrap().direction, Direction::RecvOnly);
    }

    #[test]
    fn answers_to_our_offer() {
        let ours = offer(&local(), Direction::SendOnly);
        for (answered, dir) in [
            ("recvonly", Direction::SendOnly),
            ("inactive", Direction::Inactive),
            ("sendrecv", Direction::SendOnly),
        ] {
            let a = sd(&format!("{HEAD}m=audio 4000 RTP/AVP 8\r\na={answered}\r\n"));
            let n = accept_answer(&a, &ours).unwrap().unwrap();
            assert_eq!((n.codec, n.direction), (Codec::Pcma, dir), "{answered}");
            assert_eq!(n.telephone_event, None);
        }
        let two = sd(&format!(
            "{HEAD}m=audio 4000 RTP/AVP 0\r\nm=video 0 RTP/AVP 96\r\n"
        ));
        assert!(accept_answer(&two, &ours).is_err());
        let declined = sd(&format!("{HEAD}m=audio 0 RTP/AVP 0\r\n"));
        assert_eq!(accept_answer(&declined, &ours), Ok(None));
        let other_codec = sd(&format!("{HEAD}m=audio 4000 RTP/AVP 9\r\n"));
        assert!(accept_answer(&other_codec, &ours).is_err());
    }

    #[test]
    fn sdp_version_moves_only_on_change() {
        let mut v = SdpVersion::new(77);
        let ip: IpAddr = "127.0.0.1".parse().unwrap();
        let a = offer(&local(), Direction::SendRecv);
        let b1 = v.body(ip, &a);
        assert_eq!(v.version, 1);
        assert_eq!(v.body(ip, &a), b1);
        assert_eq!(v.version, 1);
        let h = offer(&local(), Direction::SendOnly);
        v.body(ip, &h);
        assert_eq!(v.version, 2);
        let s = SessionDescription::parse(v.last().unwrap()).unwrap();
        assert_eq!((s.session_id.as_str(), s.version), ("77", 2));
    }
}
