//! HTTP digest authentication for SIP (RFC 3261 section 22, RFC 2617,
//! RFC 8760 SHA-256). Parses the challenge itself: rsip spells the SHA-256
//! algorithm token `SHA256`, so its typed header would not round-trip it.

use super::message::split_list;
use md5::Md5;
use sha2::{Digest, Sha256};
use thiserror::Error;

/// Why a challenge cannot be answered.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum DigestError {
    /// Not a Digest challenge.
    #[error("not a Digest challenge: {0}")]
    NotDigest(String),
    /// Missing realm or nonce.
    #[error("challenge lacks {0}")]
    Missing(&'static str),
    /// Algorithm we do not implement.
    #[error("unsupported digest algorithm {0}")]
    Algorithm(String),
}

/// Hash algorithm of a challenge.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Algorithm {
    /// MD5 (the default).
    Md5,
    /// SHA-256 (RFC 8760).
    Sha256,
}

impl Algorithm {
    fn hash(self, s: &str) -> String {
        match self {
            Algorithm::Md5 => hex::encode(Md5::digest(s.as_bytes())),
            Algorithm::Sha256 => hex::encode(Sha256::digest(s.as_bytes())),
        }
    }
    fn token(self) -> &'static str {
        match self {
            Algorithm::Md5 => "MD5",
            Algorithm::Sha256 => "SHA-256",
        }
    }
}

/// A parsed WWW-Authenticate / Proxy-Authenticate challenge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Challenge {
    /// Protection realm.
    pub realm: String,
    /// Server nonce.
    pub nonce: String,
    /// Opaque value to echo.
    pub opaque: Option<String>,
    /// Whether qop=auth is offered.
    pub qop_auth: bool,
    /// Hash algorithm.
    pub algorithm: Algorithm,
    /// `stale=true`: the nonce expired, the credentials were right.
    pub stale: bool,
}

impl Challenge {
    /// Parses a header value such as `Digest realm="x", nonce="y", qop="auth"`.
    pub fn parse(v: &str) -> Result<Challenge, DigestError> {
        let v = v.trim();
        let rest = match v.split_once(char::is_whitespace) {
            Some((scheme, rest)) if scheme.eq_ignore_ascii_case("digest") => rest,
            _ => return Err(DigestError::NotDigest(v.to_string())),
        };
        let (mut realm, mut nonce, mut opaque, mut qop, mut alg, mut stale) =
            (None, None, None, false, Algorithm::Md5, false);
        for kv in split_list(rest) {
            let Some((k, val)) = kv.split_once('=') else {
                continue;
            };
            let val = val.trim().trim_matches('"').to_string();
            match k.trim().to_ascii_lowercase().as_str() {
                "realm" => realm = Some(val),
                "nonce" => nonce = Some(val),
                "opaque" => opaque = Some(val),
                "qop" => {
                    qop = val
                        .split(',')
                        .any(|q| q.trim().eq_ignore_ascii_case("auth"))
                }
                "stale" => stale = val.eq_ignore_ascii_case("true"),
                "algorithm" => {
                    alg = match val.to_ascii_uppercase().as_str() {
                        "MD5" => Algorithm::Md5,
                        "SHA-256" | "SHA256" => Algorithm::Sha256,
                        _ => return Err(DigestError::Algorithm(val)),
                    }
                }
                _ => {}
            }
        }
        Ok(Challenge {
            realm: realm.ok_or(DigestError::Missing("realm"))?,
            nonce: nonce.ok_or(DigestError::Missing("nonce"))?,
            opaque,
            qop_auth: qop,
            algorithm: alg,
            stale,
        })
    }

    /// The Authorization value for `method` on `uri`. `nc` counts uses of this nonce (from 1).
    pub fn authorize(
        &self,
        user: &str,
        password: &str,
        method: &str,
        uri: &str,
        nc: u32,
        cnonce: &str,
    ) -> String {
        let a = self.algorithm;
        let ha1 = a.hash(&format!("{user}:{}:{password}", self.realm));
        let ha2 = a.hash(&format!("{method}:{uri}"));
        let mut out = format!(
            "Digest username=\"{user}\", realm=\"{}\", nonce=\"{}\", uri=\"{uri}\", algorithm={}",
            self.realm,
            self.nonce,
            a.token()
        );
        let response = if self.qop_auth {
            let nc = format!("{nc:08x}");
            out.push_str(&format!(", qop=auth, nc={nc}, cnonce=\"{cnonce}\""));
            a.hash(&format!("{ha1}:{}:{nc}:{cnonce}:auth:{ha2}", self.nonce))
        } else {
            a.hash(&format!("{ha1}:{}:{ha2}", self.nonce))
        };
        out.push_str(&format!(", response=\"{response}\""));
        if let Some(o) = &self.opaque {
            out.push_str(&format!(", opaque=\"{o}\""));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc2617_example() {
        // RFC 2617 section 3.5 (HTTP, but the same computation).
        let c = Challenge::parse(
            "Digest realm=\"testrealm@host.com\", qop=\"auth,auth-int\", nonce=\"dcd98b7102dd2f0e8b11d0f600bfb0c093\", opaque=\"5ccc069c403ebaf9f0171e9517f40e41\"",
        )
        .unwrap();
        let a = c.authorize(
            "Mufasa",
            "Circle Of Life",
            "GET",
            "/dir/index.html",
            1,
            "0a4f113b",
        );
        assert!(
            a.contains("response=\"6629fae49393a05397450978507c4ef1\""),
            "{a}"
        );
        assert!(a.contains("nc=00000001"));
        assert!(a.contains("opaque=\"5ccc069c403ebaf9f0171e9517f40e41\""));
    }

    #[test]
    fn sha256_both_spellings_and_stale() {
        for tok in ["SHA-256", "SHA256"] {
            let c = Challenge::parse(&format!(
                "Digest realm=\"r\", nonce=\"n\", algorithm={tok}, stale=TRUE"
            ))
            .unwrap();
            assert_eq!(c.algorithm, Algorithm::Sha256);
            assert!(c.stale);
            let a = c.authorize("u", "p", "REGISTER", "sip:r", 1, "c");
            assert!(a.contains("algorithm=SHA-256"));
            // HA1=sha256(u:r:p), HA2=sha256(REGISTER:sip:r), response=sha256(HA1:n:HA2)
            let ha1 = Algorithm::Sha256.hash("u:r:p");
            let ha2 = Algorithm::Sha256.hash("REGISTER:sip:r");
            let want = Algorithm::Sha256.hash(&format!("{ha1}:n:{ha2}"));
            assert!(a.contains(&want));
        }
    }

    #[test]
    fn rejects_bad_challenges() {
        assert!(matches!(
            Challenge::parse("Basic realm=x"),
            Err(DigestError::NotDigest(_))
        ));
        assert_eq!(
            Challenge::parse("Digest nonce=\"n\""),
            Err(DigestError::Missing("realm"))
        );
        assert!(matches!(
            Challenge::parse("Digest realm=r, nonce=n, algorithm=SHA-512-256"),
            Err(DigestError::Algorithm(_))
        ));
    }
}
