//! SDES: SRTP keys in SDP (RFC 4568), sans-IO.
//!
//! [`CryptoAttr::parse`] reads one `a=crypto` value:
//!
//! ```text
//! a=crypto:<tag> <crypto-suite> inline:<key||salt base64>[|<lifetime>][|<MKI>:<length>] [<session-param> ...]
//! ```
//!
//! and the offer/answer rules of RFC 4568 section 7 with our policy
//! (`[media] srtp = "off" | "optional" | "mandatory"`) are [`offer`],
//! [`answer`] and [`Offered::accept_answer`]. Keys are fresh for every
//! offer and answer ([`MasterKey::generate`]); none is ever written to a log
//! (the types' `Debug` is redacted; [`redact`] blanks them in SDP text).
//!
//! What we accept, and why the rest is declined (RFC 4568 says a receiver
//! must ignore a crypto line it cannot honour and try the next):
//! - the suites AES_CM_128_HMAC_SHA1_80 and _32;
//! - one `inline:` key of exactly 30 bytes (128-bit key, 112-bit salt);
//! - a lifetime of at least 2^31 packets (a call cannot reach it: we do
//!   not re-key mid-call);
//! - no MKI (webrtc-srtp does not implement it), several keys need one;
//! - session parameters: `KDR=0` and `WSH=` (a window hint); every other
//!   (non-zero KDR, UNENCRYPTED_*, UNAUTHENTICATED_SRTP, FEC_*) or unknown
//!   one declines the line: we only ever run fully protected SRTP.

use super::{MasterKey, Suite, KEY_SALT_LEN};
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use thiserror::Error;

/// `[media] srtp`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SrtpMode {
    /// Plain RTP only; SAVP offers are refused (488), crypto lines ignored.
    #[default]
    Off,
    /// Offer RTP/AVP with crypto lines (best effort, as baresip's `srtp`);
    /// take SRTP whenever the peer offers or answers it, plain RTP otherwise.
    Optional,
    /// Offer RTP/SAVP only; a call without SRTP is refused (488) or ended.
    Mandatory,
}

impl std::str::FromStr for SrtpMode {
    type Err = String;
    fn from_str(s: &str) -> Result<SrtpMode, String> {
        match s {
            "off" => Ok(SrtpMode::Off),
            "optional" => Ok(SrtpMode::Optional),
            "mandatory" => Ok(SrtpMode::Mandatory),
            _ => Err(format!("'{s}' is not off, optional or mandatory")),
        }
    }
}

/// Why a crypto attribute was not understood.
#[derive(Debug, Clone, Error, PartialEq, Eq)]
pub enum SdesError {
    /// Tag missing or not 1 to 9 digits.
    #[error("bad tag")]
    Tag,
    /// No crypto suite.
    #[error("no crypto suite")]
    NoSuite,
    /// No key parameter, or not `inline:`.
    #[error("no inline key")]
    NoKey,
    /// The key is not base64, or not 30 bytes for a known suite.
    #[error("bad key")]
    Key,
    /// Lifetime not a number or `2^n`.
    #[error("bad lifetime")]
    Lifetime,
    /// MKI not `value:length` with a length of 1 to 128.
    #[error("bad MKI")]
    Mki,
    /// More than 8 key parameters or session parameters, or a line over 1 KiB.
    #[error("too long")]
    TooLong,
}

/// One `inline:` key parameter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyParam {
    /// Key and salt; `None` for a suite we do not know (length not checked).
    pub key: Option<MasterKey>,
    /// Packets the key may protect (`|2^31` or `|2147483648`).
    pub lifetime: Option<u64>,
    /// Master key identifier value and its length in bytes.
    pub mki: Option<(u64, u8)>,
}

/// One parsed `a=crypto` attribute value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CryptoAttr {
    /// The tag (1 to 9 digits).
    pub tag: u32,
    /// The suite name as written.
    pub suite_name: String,
    /// The suite, when we support it.
    pub suite: Option<Suite>,
    /// Key parameters (at least one).
    pub keys: Vec<KeyParam>,
    /// Session parameters as written.
    pub session_params: Vec<String>,
}

const MAX_LINE: usize = 1024;
const MAX_PARAMS: usize = 8;

fn parse_lifetime(s: &str) -> Result<u64, SdesError> {
    if let Some(exp) = s.strip_prefix("2^") {
        let e: u32 = digits(exp).ok_or(SdesError::Lifetime)?;
        return 1u64
            .checked_shl(e)
            .filter(|_| e < 64)
            .ok_or(SdesError::Lifetime);
    }
    digits(s).ok_or(SdesError::Lifetime)
}

fn digits<T: std::str::FromStr>(s: &str) -> Option<T> {
    if s.is_empty() || s.len() > 20 || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

impl CryptoAttr {
    /// Parses the value of an `a=crypto:` attribute (without `a=crypto:`).
    pub fn parse(value: &str) -> Result<CryptoAttr, SdesError> {
        if value.len() > MAX_LINE {
            return Err(SdesError::TooLong);
        }
        let mut fields = value.split_ascii_whitespace();
        let tag_s = fields.next().ok_or(SdesError::Tag)?;
        if tag_s.len() > 9 {
            return Err(SdesError::Tag);
        }
        let tag: u32 = digits(tag_s).ok_or(SdesError::Tag)?;
        let suite_name = fields.next().ok_or(SdesError::NoSuite)?.to_string();
        let suite = Suite::from_name(&suite_name);
        let key_params = fields.next().ok_or(SdesError::NoKey)?;
        let session_params: Vec<String> = fields.map(str::to_string).collect();
        if session_params.len() > MAX_PARAMS {
            return Err(SdesError::TooLong);
        }
        let mut keys = Vec::new();
        for kp in key_params.split(';') {
            if keys.len() >= MAX_PARAMS {
                return Err(SdesError::TooLong);
            }
            let info = kp.strip_prefix("inline:").ok_or(SdesError::NoKey)?;
            let mut parts = info.split('|');
            let b64 = parts.next().unwrap_or_default();
            let raw = STANDARD.decode(b64).map_err(|_| SdesError::Key)?;
            let key = match suite {
                Some(_) => {
                    if raw.len() != KEY_SALT_LEN {
                        return Err(SdesError::Key);
                    }
                    Some(MasterKey::from_bytes(&raw).ok_or(SdesError::Key)?)
                }
                None => None,
            };
            drop(zeroize::Zeroizing::new(raw));
            let mut lifetime = None;
            let mut mki = None;
            for p in parts {
                if let Some((v, l)) = p.split_once(':') {
                    if mki.is_some() {
                        return Err(SdesError::Mki);
                    }
                    let len: u8 = digits(l).ok_or(SdesError::Mki)?;
                    if !(1..=128).contains(&len) {
                        return Err(SdesError::Mki);
                    }
                    mki = Some((digits(v).ok_or(SdesError::Mki)?, len));
                } else {
                    if lifetime.is_some() || mki.is_some() {
                        return Err(SdesError::Lifetime);
                    }
                    lifetime = Some(parse_lifetime(p)?);
                }
            }
            keys.push(KeyParam { key, lifetime, mki });
        }
        Ok(CryptoAttr {
            tag,
            suite_name,
            suite,
            keys,
            session_params,
        })
    }

    /// The suite and key when we can use this line, `None` when it must be
    /// declined (see the module documentation for what we accept).
    pub fn usable(&self) -> Option<(Suite, &MasterKey)> {
        let suite = self.suite?;
        let [k] = self.keys.as_slice() else {
            return None;
        };
        if k.mki.is_some() || k.lifetime.is_some_and(|l| l < 1 << 31) {
            return None;
        }
        let ok_params = self
            .session_params
            .iter()
            .all(|p| p == "KDR=0" || p.strip_prefix("WSH=").and_then(digits::<u32>).is_some());
        if !ok_params {
            return None;
        }
        Some((suite, k.key.as_ref()?))
    }
}

/// An `a=crypto` attribute value: `<tag> <suite> inline:<base64 key||salt>`.
pub fn format(tag: u32, suite: Suite, key: &MasterKey) -> String {
    format!(
        "{tag} {} inline:{}",
        suite.name(),
        STANDARD.encode(key.bytes())
    )
}

/// `text` (SDP or a whole SIP message) with every `inline:` key replaced by
/// `<redacted>`, for logs.
pub fn redact(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = rest.find("inline:") {
        out.push_str(&rest[..i + 7]);
        rest = &rest[i + 7..];
        let end = rest
            .find(|c: char| c == '|' || c == ';' || c.is_ascii_whitespace())
            .unwrap_or(rest.len());
        out.push_str("<redacted>");
        rest = &rest[end..];
    }
    out.push_str(rest);
    out
}

/// Whether an m-line protocol is SRTP (`RTP/SAVP`, `RTP/SAVPF`).
fn is_savp(proto: &str) -> bool {
    proto.eq_ignore_ascii_case("RTP/SAVP") || proto.eq_ignore_ascii_case("RTP/SAVPF")
}

/// The SRTP parameters a call settled on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Negotiated {
    /// Suite.
    pub suite: Suite,
    /// What we send with.
    pub local: MasterKey,
    /// What the peer sends with.
    pub remote: MasterKey,
}

/// Our offer's media security: the transport protocol of the m-line and
/// the `a=crypto` values, with the keys kept to read the answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Offered {
    /// `RTP/AVP` or `RTP/SAVP`.
    pub proto: &'static str,
    /// `a=crypto` values (without `a=crypto:`), in our order of preference.
    pub crypto: Vec<String>,
    mode: SrtpMode,
    keys: Vec<(u32, Suite, MasterKey)>,
}

/// What to do with an answer or offer we cannot take.
#[derive(Debug, Clone, Error, PartialEq, Eq)]
pub enum Refusal {
    /// SRTP is mandatory and the peer offered or answered plain RTP.
    #[error("SRTP is mandatory and the peer offered plain RTP")]
    PlainRefused,
    /// The peer requires SRTP (RTP/SAVP) and we have it off (or signalling is not secure).
    #[error("the peer requires SRTP (RTP/SAVP), which is {0}")]
    SavpRefused(&'static str),
    /// No crypto line we can use (suites, MKI, lifetime, session parameters).
    #[error("no usable crypto attribute (we support AES_CM_128_HMAC_SHA1_80 and _32, one inline key, no MKI)")]
    NoUsableCrypto,
    /// The answer's crypto line does not match one we offered.
    #[error("the answer's crypto attribute does not match our offer")]
    AnswerMismatch,
}

impl Refusal {
    /// The SIP status for refusing an offer: 488 Not Acceptable Here.
    pub fn status(&self) -> u16 {
        488
    }
}

/// The media security of a new offer. `secure` says whether keys may be
/// sent: the signalling runs over TLS, or `srtp_over_udp` allows it.
/// Without it nothing is offered but plain RTP (`mandatory` without it is
/// refused when the configuration is read).
pub fn offer(mode: SrtpMode, secure: bool) -> Offered {
    let srtp = mode != SrtpMode::Off && secure;
    let keys: Vec<(u32, Suite, MasterKey)> = if srtp {
        Suite::ALL
            .iter()
            .enumerate()
            .map(|(i, s)| (i as u32 + 1, *s, MasterKey::generate()))
            .collect()
    } else {
        Vec::new()
    };
    Offered {
        proto: if srtp && mode == SrtpMode::Mandatory {
            "RTP/SAVP"
        } else {
            "RTP/AVP"
        },
        crypto: keys.iter().map(|(t, s, k)| format(*t, *s, k)).collect(),
        mode,
        keys,
    }
}

impl Offered {
    /// Our offer read back from what we sent: its m-line protocol and our
    /// own `a=crypto` values (the keys live only in the offer we keep).
    /// `RTP/SAVP` means SRTP was mandatory; crypto lines on `RTP/AVP`, that
    /// it was optional; no crypto lines, plain RTP.
    pub fn from_sent(proto: &str, crypto: &[&str]) -> Offered {
        let keys: Vec<(u32, Suite, MasterKey)> = crypto
            .iter()
            .filter_map(|v| CryptoAttr::parse(v).ok())
            .filter_map(|a| a.usable().map(|(s, k)| (a.tag, s, k.clone())))
            .collect();
        let savp = is_savp(proto);
        Offered {
            proto: if savp { "RTP/SAVP" } else { "RTP/AVP" },
            crypto: crypto.iter().map(|c| c.to_string()).collect(),
            mode: if savp {
                SrtpMode::Mandatory
            } else if keys.is_empty() {
                SrtpMode::Off
            } else {
                SrtpMode::Optional
            },
            keys,
        }
    }

    /// Reads the answer's m-line protocol and `a=crypto` values:
    /// `Ok(Some)` SRTP with these keys, `Ok(None)` plain RTP, `Err` the call
    /// cannot go on (mandatory SRTP answered without it, or a bad answer).
    pub fn accept_answer(
        &self,
        proto: &str,
        crypto: &[&str],
    ) -> Result<Option<Negotiated>, Refusal> {
        if self.keys.is_empty() {
            return Ok(None); // we offered plain RTP; an answer's keys mean nothing
        }
        let Some(value) = crypto.first() else {
            return if self.mode == SrtpMode::Mandatory || is_savp(proto) {
                Err(Refusal::PlainRefused)
            } else {
                Ok(None)
            };
        };
        if crypto.len() != 1 {
            return Err(Refusal::AnswerMismatch);
        }
        let a = CryptoAttr::parse(value).map_err(|_| Refusal::AnswerMismatch)?;
        let (suite, remote) = a.usable().ok_or(Refusal::AnswerMismatch)?;
        let (_, _, local) = self
            .keys
            .iter()
            .find(|(t, s, _)| *t == a.tag && *s == suite)
            .ok_or(Refusal::AnswerMismatch)?;
        Ok(Some(Negotiated {
            suite,
            local: local.clone(),
            remote: remote.clone(),
        }))
    }
}

/// Our answer to an offer's media security.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answered {
    /// The m-line protocol of the answer (always the offer's, RFC 3264 6).
    pub proto: String,
    /// The `a=crypto` value to put in the answer, when SRTP was taken.
    pub crypto: Option<String>,
    /// The keys, when SRTP was taken.
    pub srtp: Option<Negotiated>,
}

/// Answers an offer's m-line protocol and `a=crypto` values under `mode`;
/// `secure` as for [`offer`]. `Err`: refuse the offer with 488.
pub fn answer(
    mode: SrtpMode,
    secure: bool,
    proto: &str,
    crypto: &[&str],
) -> Result<Answered, Refusal> {
    let savp = is_savp(proto);
    let plain = || Answered {
        proto: proto.to_string(),
        crypto: None,
        srtp: None,
    };
    if mode == SrtpMode::Off || !secure {
        if savp {
            return Err(Refusal::SavpRefused(if mode == SrtpMode::Off {
                "off here"
            } else {
                "refused over unencrypted signalling (srtp_over_udp = false)"
            }));
        }
        return Ok(plain());
    }
    let chosen = crypto
        .iter()
        .filter_map(|v| CryptoAttr::parse(v).ok())
        .find_map(|a| a.usable().map(|(s, k)| (a.tag, s, k.clone())));
    match chosen {
        Some((tag, suite, remote)) => {
            let local = MasterKey::generate();
            Ok(Answered {
                proto: proto.to_string(),
                crypto: Some(format(tag, suite, &local)),
                srtp: Some(Negotiated {
                    suite,
                    local,
                    remote,
                }),
            })
        }
        None if savp || (!crypto.is_empty() && mode == SrtpMode::Mandatory) => {
            Err(Refusal::NoUsableCrypto)
        }
        None if mode == SrtpMode::Mandatory => Err(Refusal::PlainRefused),
        None => Ok(plain()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const KEY: &str = "WVNfX19zZW1jdGwgKCkgewkyMjA7fQp9CnVubGVz";

    #[test]
    fn parses_rfc4568_examples() {
        // RFC 4568 section 4 example (key of 30 bytes, lifetime, MKI).
        let a = CryptoAttr::parse(&format!(
            "1 AES_CM_128_HMAC_SHA1_80 inline:{KEY}|2^20|1:4 KDR=0"
        ))
        .unwrap();
        assert_eq!(a.tag, 1);
        assert_eq!(a.suite, Some(Suite::AesCm128HmacSha1_80));
        assert_eq!(a.keys[0].lifetime, Some(1 << 20));
        assert_eq!(a.keys[0].mki, Some((1, 4)));
        assert_eq!(a.session_params, vec!["KDR=0"]);
        assert!(
            a.usable().is_none(),
            "MKI and a short lifetime are declined"
        );
        let a = CryptoAttr::parse(&format!("2 AES_CM_128_HMAC_SHA1_32 inline:{KEY}|2^31")).unwrap();
        let (s, k) = a.usable().unwrap();
        assert_eq!(s, Suite::AesCm128HmacSha1_32);
        assert_eq!(&k.bytes()[..4], b"YS__");
        // Unknown suites parse (to be skipped), their key is not checked.
        let a = CryptoAttr::parse("3 F8_128_HMAC_SHA1_80 inline:AAAA").unwrap();
        assert_eq!(a.suite, None);
        assert!(a.usable().is_none());
    }

    #[test]
    fn refuses_malformed_values() {
        for (v, e) in [
            ("", SdesError::Tag),
            ("x AES_CM_128_HMAC_SHA1_80 inline:AAAA", SdesError::Tag),
            (
                "1234567890 AES_CM_128_HMAC_SHA1_80 inline:AAAA",
                SdesError::Tag,
            ),
            ("1", SdesError::NoSuite),
            ("1 AES_CM_128_HMAC_SHA1_80", SdesError::NoKey),
            ("1 AES_CM_128_HMAC_SHA1_80 uri:http://x", SdesError::NoKey),
            ("1 AES_CM_128_HMAC_SHA1_80 inline:!!!", SdesError::Key),
            ("1 AES_CM_128_HMAC_SHA1_80 inline:AAAA", SdesError::Key),
        ] {
            assert_eq!(CryptoAttr::parse(v), Err(e), "{v}");
        }
        let bad = [
            format!("1 AES_CM_128_HMAC_SHA1_80 inline:{KEY}|2^x"),
            format!("1 AES_CM_128_HMAC_SHA1_80 inline:{KEY}|2^99"),
            format!("1 AES_CM_128_HMAC_SHA1_80 inline:{KEY}|1:0"),
            format!("1 AES_CM_128_HMAC_SHA1_80 inline:{KEY}|1:200"),
            format!("1 AES_CM_128_HMAC_SHA1_80 inline:{KEY}|1:4|2^20"),
            format!(
                "1 AES_CM_128_HMAC_SHA1_80 inline:{KEY} {}",
                "A ".repeat(600)
            ),
        ];
        for v in bad {
            assert!(CryptoAttr::parse(&v).is_err(), "{v}");
        }
    }

    #[test]
    fn session_params_decline_unless_harmless() {
        for (p, ok) in [
            ("KDR=0", true),
            ("WSH=128", true),
            ("KDR=1", false),
            ("UNENCRYPTED_SRTP", false),
            ("UNENCRYPTED_SRTCP", false),
            ("UNAUTHENTICATED_SRTP", false),
            ("FEC_ORDER=FEC_SRTP", false),
            ("X-FOO", false),
        ] {
            let a =
                CryptoAttr::parse(&format!("1 AES_CM_128_HMAC_SHA1_80 inline:{KEY} {p}")).unwrap();
            assert_eq!(a.usable().is_some(), ok, "{p}");
        }
        // Two keys (they would need MKIs) are declined.
        let a = CryptoAttr::parse(&format!(
            "1 AES_CM_128_HMAC_SHA1_80 inline:{KEY}|2^31|1:1;inline:{KEY}|2^31|2:1"
        ))
        .unwrap();
        assert_eq!(a.keys.len(), 2);
        assert!(a.usable().is_none());
    }

    #[test]
    fn format_round_trips_and_redact_hides_keys() {
        let k = MasterKey::generate();
        let v = format(7, Suite::AesCm128HmacSha1_80, &k);
        let a = CryptoAttr::parse(&v).unwrap();
        assert_eq!(a.tag, 7);
        assert_eq!(a.usable().unwrap().1, &k);
        let b64 = STANDARD.encode(k.bytes());
        let sdp = format!("v=0\r\na=crypto:{v}|2^31\r\na=crypto:2 X inline:{b64};inline:{b64}\r\n");
        let r = redact(&sdp);
        assert!(!r.contains(&b64), "{r}");
        assert_eq!(r.matches("inline:<redacted>").count(), 3);
        assert!(r.contains("|2^31\r\n"));
        assert_eq!(redact("no keys here"), "no keys here");
    }

    #[test]
    fn offers_follow_the_mode() {
        let o = offer(SrtpMode::Off, true);
        assert_eq!((o.proto, o.crypto.len()), ("RTP/AVP", 0));
        let o = offer(SrtpMode::Optional, false);
        assert_eq!(
            (o.proto, o.crypto.len()),
            ("RTP/AVP", 0),
            "no keys over plain signalling"
        );
        let o = offer(SrtpMode::Optional, true);
        assert_eq!((o.proto, o.crypto.len()), ("RTP/AVP", 2));
        let m = offer(SrtpMode::Mandatory, true);
        assert_eq!((m.proto, m.crypto.len()), ("RTP/SAVP", 2));
        assert!(m.crypto[0].starts_with("1 AES_CM_128_HMAC_SHA1_80 inline:"));
        assert!(m.crypto[1].starts_with("2 AES_CM_128_HMAC_SHA1_32 inline:"));
        // Fresh keys every time.
        assert_ne!(offer(SrtpMode::Mandatory, true).crypto, m.crypto);
    }

    #[test]
    fn offer_then_answer_agree_on_keys() {
        for mode in [SrtpMode::Optional, SrtpMode::Mandatory] {
            let o = offer(mode, true);
            let refs: Vec<&str> = o.crypto.iter().map(String::as_str).collect();
            let a = answer(SrtpMode::Optional, true, o.proto, &refs).unwrap();
            assert_eq!(a.proto, o.proto);
            let ours = a.srtp.clone().unwrap();
            assert_eq!(
                ours.suite,
                Suite::AesCm128HmacSha1_80,
                "the offerer's first choice"
            );
            let theirs = o
                .accept_answer(&a.proto, &[a.crypto.as_deref().unwrap()])
                .unwrap()
                .unwrap();
            assert_eq!(theirs.suite, ours.suite);
            assert_eq!(theirs.local, ours.remote);
            assert_eq!(theirs.remote, ours.local);
        }
    }

    #[test]
    fn answers_follow_the_mode() {
        let k80 = format!("1 AES_CM_128_HMAC_SHA1_80 inline:{KEY}");
        let k32 = format!("5 AES_CM_128_HMAC_SHA1_32 inline:{KEY}");
        let mki = format!("1 AES_CM_128_HMAC_SHA1_80 inline:{KEY}|2^31|1:4");
        // Plain offers.
        assert!(answer(SrtpMode::Off, true, "RTP/AVP", &[])
            .unwrap()
            .srtp
            .is_none());
        assert!(answer(SrtpMode::Optional, true, "RTP/AVP", &[])
            .unwrap()
            .srtp
            .is_none());
        assert_eq!(
            answer(SrtpMode::Mandatory, true, "RTP/AVP", &[]),
            Err(Refusal::PlainRefused)
        );
        // SAVP offers.
        assert!(matches!(
            answer(SrtpMode::Off, true, "RTP/SAVP", &[&k80]),
            Err(Refusal::SavpRefused(_))
        ));
        assert!(matches!(
            answer(SrtpMode::Optional, false, "RTP/SAVP", &[&k80]),
            Err(Refusal::SavpRefused(_))
        ));
        let a = answer(SrtpMode::Mandatory, true, "RTP/SAVP", &[&mki, &k32]).unwrap();
        assert_eq!(a.proto, "RTP/SAVP");
        assert!(
            a.crypto
                .as_deref()
                .unwrap()
                .starts_with("5 AES_CM_128_HMAC_SHA1_32 inline:"),
            "MKI line skipped, tag echoed"
        );
        assert_eq!(
            answer(SrtpMode::Optional, true, "RTP/SAVP", &[&mki]),
            Err(Refusal::NoUsableCrypto)
        );
        // Best-effort SRTP (AVP with crypto) is taken when we can.
        let a = answer(SrtpMode::Optional, true, "RTP/AVP", &[&k80]).unwrap();
        assert_eq!((a.proto.as_str(), a.srtp.is_some()), ("RTP/AVP", true));
        assert!(answer(SrtpMode::Off, true, "RTP/AVP", &[&k80])
            .unwrap()
            .srtp
            .is_none());
        assert!(answer(SrtpMode::Optional, true, "RTP/AVP", &[&mki])
            .unwrap()
            .srtp
            .is_none());
        assert_eq!(
            answer(SrtpMode::Mandatory, true, "RTP/AVP", &[&mki]),
            Err(Refusal::NoUsableCrypto)
        );
        assert_eq!(Refusal::PlainRefused.status(), 488);
    }

    #[test]
    fn answers_we_cannot_take() {
        let m = offer(SrtpMode::Mandatory, true);
        assert_eq!(m.accept_answer("RTP/SAVP", &[]), Err(Refusal::PlainRefused));
        assert_eq!(m.accept_answer("RTP/AVP", &[]), Err(Refusal::PlainRefused));
        let o = offer(SrtpMode::Optional, true);
        assert_eq!(o.accept_answer("RTP/AVP", &[]), Ok(None));
        // A tag we did not offer, a suite that does not match its tag.
        let other = format!("9 AES_CM_128_HMAC_SHA1_80 inline:{KEY}");
        assert_eq!(
            o.accept_answer("RTP/AVP", &[&other]),
            Err(Refusal::AnswerMismatch)
        );
        let swapped = format!("1 AES_CM_128_HMAC_SHA1_32 inline:{KEY}");
        assert_eq!(
            o.accept_answer("RTP/AVP", &[&swapped]),
            Err(Refusal::AnswerMismatch)
        );
        let two = format!("1 AES_CM_128_HMAC_SHA1_80 inline:{KEY}");
        assert_eq!(
            o.accept_answer("RTP/AVP", &[&two, &two]),
            Err(Refusal::AnswerMismatch)
        );
        assert_eq!(
            o.accept_answer("RTP/AVP", &[&two]).unwrap().unwrap().suite,
            Suite::AesCm128HmacSha1_80
        );
        // Plain offer: the answer's keys are ignored.
        assert_eq!(
            offer(SrtpMode::Off, true).accept_answer("RTP/AVP", &[&two]),
            Ok(None)
        );
    }

    #[test]
    fn baresip_offers_are_answered() {
        // What Debian's baresip 1.0 offers with mediaenc=srtp-mand (RTP/SAVP)
        // and mediaenc=srtp (best effort: RTP/AVP with the key), captured.
        let line = "1 AES_CM_128_HMAC_SHA1_80 inline:yKB/wRP1g4G19oouk16IndNUKdyLNWCeo65h2ypW";
        for (mode, proto) in [
            (SrtpMode::Mandatory, "RTP/SAVP"),
            (SrtpMode::Optional, "RTP/SAVP"),
            (SrtpMode::Mandatory, "RTP/AVP"),
            (SrtpMode::Optional, "RTP/AVP"),
        ] {
            let a = answer(mode, true, proto, &[line]).unwrap();
            assert_eq!(a.proto, proto);
            let n = a.srtp.unwrap();
            assert_eq!(n.suite, Suite::AesCm128HmacSha1_80);
            assert!(a
                .crypto
                .unwrap()
                .starts_with("1 AES_CM_128_HMAC_SHA1_80 inline:"));
            assert_eq!(
                STANDARD.encode(n.remote.bytes()),
                "yKB/wRP1g4G19oouk16IndNUKdyLNWCeo65h2ypW"
            );
        }
        assert!(answer(SrtpMode::Off, true, "RTP/AVP", &[line])
            .unwrap()
            .srtp
            .is_none());
    }

    proptest! {
        #[test]
        fn arbitrary_values_never_panic(v in "\\PC{0,200}") {
            if let Ok(a) = CryptoAttr::parse(&v) {
                prop_assert!(!a.keys.is_empty());
                let _ = a.usable();
            }
            let _ = answer(SrtpMode::Mandatory, true, "RTP/SAVP", &[&v]);
            let _ = redact(&v);
        }

        #[test]
        fn formatted_values_parse_back(tag in 0u32..1_000_000_000, bytes in proptest::array::uniform30(any::<u8>()), which in 0usize..2) {
            let k = MasterKey::from_bytes(&bytes).unwrap();
            let a = CryptoAttr::parse(&format(tag, Suite::ALL[which], &k)).unwrap();
            prop_assert_eq!(a.tag, tag);
            prop_assert_eq!(a.usable().map(|(s, k)| (s, k.clone())), Some((Suite::ALL[which], k)));
        }
    }
}
