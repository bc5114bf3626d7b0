//! HTTP digest authentication for SIP (RFC 3261 22, RFC 2617, RFC 7616,
//! RFC 8760): MD5, SHA-256 and SHA-512/256, their `-sess` forms, qop
//! `auth` and `auth-int`, `userhash`. Parses the challenge itself: rsip spells
//! the SHA-256 algorithm token `SHA256`, so its typed header would not
//! round-trip it.
//!
//! [`Authenticator`] keeps what a client needs across requests: every
//! challenge of a 401/407 is read (one per realm and per header kind, the
//! strongest algorithm the server offers for that realm, RFC 7616 3.7 and
//! RFC 8760 2.4), and the nonce count of each nonce in use.

use super::message::{split_list, Message};
use md5::Md5;
use sha2::{Digest, Sha256, Sha512_256};
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
    /// A qop we do not implement (only `auth` and `auth-int` exist).
    #[error("unsupported qop {0}")]
    Qop(String),
    /// A 401/407 without any challenge we can answer.
    #[error("no usable challenge in the {0} response")]
    NoChallenge(u16),
}

/// Hash algorithm of a challenge (RFC 7616 3.3, RFC 8760).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Algorithm {
    /// MD5 (the default when a challenge names none).
    Md5,
    /// MD5-sess.
    Md5Sess,
    /// SHA-256 (RFC 8760).
    Sha256,
    /// SHA-256-sess.
    Sha256Sess,
    /// SHA-512-256 (SHA-512/256).
    Sha512_256,
    /// SHA-512-256-sess.
    Sha512_256Sess,
}

impl Algorithm {
    /// Parses an `algorithm=` token; rsip's `SHA256` spelling is accepted.
    pub fn from_token(t: &str) -> Option<Algorithm> {
        Some(match t.trim().to_ascii_uppercase().as_str() {
            "MD5" => Algorithm::Md5,
            "MD5-SESS" => Algorithm::Md5Sess,
            "SHA-256" | "SHA256" => Algorithm::Sha256,
            "SHA-256-SESS" | "SHA256-SESS" => Algorithm::Sha256Sess,
            "SHA-512-256" | "SHA512-256" => Algorithm::Sha512_256,
            "SHA-512-256-SESS" | "SHA512-256-SESS" => Algorithm::Sha512_256Sess,
            _ => return None,
        })
    }

    /// The token as RFC 7616 spells it.
    pub fn token(self) -> &'static str {
        match self {
            Algorithm::Md5 => "MD5",
            Algorithm::Md5Sess => "MD5-sess",
            Algorithm::Sha256 => "SHA-256",
            Algorithm::Sha256Sess => "SHA-256-sess",
            Algorithm::Sha512_256 => "SHA-512-256",
            Algorithm::Sha512_256Sess => "SHA-512-256-sess",
        }
    }

    /// Preference among algorithms a server offers: the stronger hash first.
    pub fn strength(self) -> u8 {
        match self {
            Algorithm::Md5 | Algorithm::Md5Sess => 1,
            Algorithm::Sha256 | Algorithm::Sha256Sess => 2,
            Algorithm::Sha512_256 | Algorithm::Sha512_256Sess => 3,
        }
    }

    fn sess(self) -> bool {
        matches!(
            self,
            Algorithm::Md5Sess | Algorithm::Sha256Sess | Algorithm::Sha512_256Sess
        )
    }

    fn hash(self, s: &[u8]) -> String {
        match self {
            Algorithm::Md5 | Algorithm::Md5Sess => hex::encode(Md5::digest(s)),
            Algorithm::Sha256 | Algorithm::Sha256Sess => hex::encode(Sha256::digest(s)),
            Algorithm::Sha512_256 | Algorithm::Sha512_256Sess => hex::encode(Sha512_256::digest(s)),
        }
    }
}

/// Quality of protection a challenge offers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Qop {
    /// `auth`.
    pub auth: bool,
    /// `auth-int` (the body is hashed too).
    pub auth_int: bool,
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
    /// qop values offered (none: RFC 2069 compatibility).
    pub qop: Qop,
    /// Hash algorithm.
    pub algorithm: Algorithm,
    /// `stale=true`: the nonce expired, the credentials were right.
    pub stale: bool,
    /// `userhash=true` (RFC 7616 3.4.4): send H(user:realm) as the user name.
    pub userhash: bool,
}

/// Credentials for digest authentication.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credentials<'a> {
    /// User name.
    pub user: &'a str,
    /// Password.
    pub password: &'a str,
}

impl Challenge {
    /// Parses a header value such as `Digest realm="x", nonce="y", qop="auth"`.
    pub fn parse(v: &str) -> Result<Challenge, DigestError> {
        let v = v.trim();
        let rest = match v.split_once(char::is_whitespace) {
            Some((scheme, rest)) if scheme.eq_ignore_ascii_case("digest") => rest,
            _ => return Err(DigestError::NotDigest(v.chars().take(80).collect())),
        };
        let (mut realm, mut nonce, mut opaque, mut alg) = (None, None, None, Algorithm::Md5);
        let (mut qop, mut qop_seen, mut stale, mut userhash) = (Qop::default(), None, false, false);
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
                    for q in val.split(',').map(str::trim) {
                        if q.eq_ignore_ascii_case("auth") {
                            qop.auth = true;
                        } else if q.eq_ignore_ascii_case("auth-int") {
                            qop.auth_int = true;
                        }
                    }
                    qop_seen = Some(val);
                }
                "stale" => stale = val.eq_ignore_ascii_case("true"),
                "userhash" => userhash = val.eq_ignore_ascii_case("true"),
                "algorithm" => {
                    alg = Algorithm::from_token(&val).ok_or(DigestError::Algorithm(val))?
                }
                _ => {}
            }
        }
        if let Some(q) = qop_seen {
            if !qop.auth && !qop.auth_int {
                return Err(DigestError::Qop(q));
            }
        }
        Ok(Challenge {
            realm: realm.ok_or(DigestError::Missing("realm"))?,
            nonce: nonce.ok_or(DigestError::Missing("nonce"))?,
            opaque,
            qop,
            algorithm: alg,
            stale,
            userhash,
        })
    }

    /// The Authorization value for `method` on `uri` with `body` (hashed
    /// only for qop=auth-int, used when the server offers no `auth`). `nc`
    /// counts uses of this nonce (from 1).
    pub fn authorize(
        &self,
        creds: &Credentials<'_>,
        method: &str,
        uri: &str,
        body: &[u8],
        nc: u32,
        cnonce: &str,
    ) -> String {
        let a = self.algorithm;
        let h = |s: &str| a.hash(s.as_bytes());
        let mut ha1 = h(&format!("{}:{}:{}", creds.user, self.realm, creds.password));
        if a.sess() {
            ha1 = h(&format!("{ha1}:{}:{cnonce}", self.nonce));
        }
        let qop = if self.qop.auth {
            Some("auth")
        } else if self.qop.auth_int {
            Some("auth-int")
        } else {
            None
        };
        let ha2 = if qop == Some("auth-int") {
            h(&format!("{method}:{uri}:{}", a.hash(body)))
        } else {
            h(&format!("{method}:{uri}"))
        };
        let user = if self.userhash {
            h(&format!("{}:{}", creds.user, self.realm))
        } else {
            quote_safe(creds.user)
        };
        let mut out = format!(
            "Digest username=\"{user}\", realm=\"{}\", nonce=\"{}\", uri=\"{uri}\", algorithm={}",
            quote_safe(&self.realm),
            quote_safe(&self.nonce),
            a.token()
        );
        let response = match qop {
            Some(q) => {
                let nc = format!("{nc:08x}");
                out.push_str(&format!(", qop={q}, nc={nc}, cnonce=\"{cnonce}\""));
                h(&format!("{ha1}:{}:{nc}:{cnonce}:{q}:{ha2}", self.nonce))
            }
            None => h(&format!("{ha1}:{}:{ha2}", self.nonce)),
        };
        out.push_str(&format!(", response=\"{response}\""));
        if let Some(o) = &self.opaque {
            out.push_str(&format!(", opaque=\"{}\"", quote_safe(o)));
        }
        if self.userhash {
            out.push_str(", userhash=true");
        }
        out
    }
}

/// A value that goes between double quotes in a header we send: quotes,
/// backslashes and control characters from the server are dropped, so a
/// hostile challenge cannot inject a header or break ours.
fn quote_safe(s: &str) -> String {
    s.chars()
        .filter(|c| !c.is_control() && *c != '"' && *c != '\\')
        .take(256)
        .collect()
}

/// At most this many realms are answered for one request.
const MAX_REALMS: usize = 4;

/// One realm's challenge in use and its nonce count.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Entry {
    challenge: Challenge,
    /// From Proxy-Authenticate (answered with Proxy-Authorization).
    proxy: bool,
    /// Uses of `challenge.nonce` so far.
    nc: u32,
}

/// What a 401/407 told us about the credentials we had sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChallengeOutcome {
    /// Every challenge for a realm we had answered says `stale=true`.
    pub stale: bool,
    /// A realm we had answered came back with a different nonce.
    pub new_nonce: bool,
    /// A realm we had not answered before (or nothing answered yet).
    pub new_realm: bool,
}

/// The digest state of one client (a registration, a call): the current
/// challenge per realm and its nonce count.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Authenticator {
    entries: Vec<Entry>,
}

impl Authenticator {
    /// Whether any challenge is held (requests then carry credentials).
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Forgets every challenge.
    pub fn clear(&mut self) {
        self.entries.clear();
    }

    /// Reads every `WWW-Authenticate` and `Proxy-Authenticate` of a 401/407
    /// response. For each (realm, header kind) the strongest algorithm we
    /// implement wins; challenges we cannot answer (unknown algorithm,
    /// Basic) are skipped. Fails when nothing is left.
    pub fn on_challenge(&mut self, resp: &Message) -> Result<ChallengeOutcome, DigestError> {
        let mut fresh: Vec<Entry> = Vec::new();
        let mut last_err = None;
        for (hdr, proxy) in [("www-authenticate", false), ("proxy-authenticate", true)] {
            // Each header value is one challenge: Digest params are comma
            // separated, so split_list cannot be used to split challenges.
            for (_, v) in resp
                .headers
                .iter()
                .filter(|(n, _)| n.eq_ignore_ascii_case(hdr))
            {
                match Challenge::parse(v) {
                    Ok(ch) => {
                        let same = fresh
                            .iter()
                            .position(|e| e.proxy == proxy && e.challenge.realm == ch.realm);
                        match same {
                            Some(i) => {
                                if let Some(e) = fresh.get_mut(i) {
                                    if ch.algorithm.strength() > e.challenge.algorithm.strength() {
                                        e.challenge = ch;
                                    }
                                }
                            }
                            None if fresh.len() < MAX_REALMS => fresh.push(Entry {
                                challenge: ch,
                                proxy,
                                nc: 0,
                            }),
                            None => {}
                        }
                    }
                    Err(e) => last_err = Some(e),
                }
            }
        }
        if fresh.is_empty() {
            return Err(last_err.unwrap_or(DigestError::NoChallenge(resp.status.unwrap_or(0))));
        }
        let mut outcome = ChallengeOutcome {
            stale: true,
            new_nonce: false,
            new_realm: self.entries.is_empty(),
        };
        for f in &fresh {
            match self
                .entries
                .iter()
                .find(|e| e.proxy == f.proxy && e.challenge.realm == f.challenge.realm)
            {
                Some(old) => {
                    outcome.new_nonce |= old.challenge.nonce != f.challenge.nonce;
                    outcome.stale &= f.challenge.stale;
                }
                None => {
                    outcome.new_realm = true;
                    outcome.stale = false;
                }
            }
        }
        // A challenge for realms we keep: replace those, keep the others
        // (a proxy and the registrar may each challenge in turn).
        self.entries.retain(|e| {
            !fresh
                .iter()
                .any(|f| f.proxy == e.proxy && f.challenge.realm == e.challenge.realm)
        });
        self.entries.extend(fresh);
        self.entries.truncate(MAX_REALMS);
        Ok(outcome)
    }

    /// Authorization / Proxy-Authorization headers for a request.
    pub fn headers(
        &mut self,
        creds: &Credentials<'_>,
        method: &str,
        uri: &str,
        body: &[u8],
        cnonce: &str,
    ) -> Vec<(&'static str, String)> {
        self.entries
            .iter_mut()
            .map(|e| {
                e.nc = e.nc.wrapping_add(1).max(1);
                let name = if e.proxy {
                    "Proxy-Authorization"
                } else {
                    "Authorization"
                };
                (
                    name,
                    e.challenge
                        .authorize(creds, method, uri, body, e.nc, cnonce),
                )
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MUFASA: Credentials<'static> = Credentials {
        user: "Mufasa",
        password: "Circle Of Life",
    };

    #[test]
    fn rfc2617_example() {
        // RFC 2617 section 3.5 (HTTP, but the same computation).
        let c = Challenge::parse(
            "Digest realm=\"testrealm@host.com\", qop=\"auth,auth-int\", nonce=\"dcd98b7102dd2f0e8b11d0f600bfb0c093\", opaque=\"5ccc069c403ebaf9f0171e9517f40e41\"",
        )
        .unwrap();
        let a = c.authorize(&MUFASA, "GET", "/dir/index.html", b"", 1, "0a4f113b");
        assert!(
            a.contains("response=\"6629fae49393a05397450978507c4ef1\""),
            "{a}"
        );
        assert!(a.contains("qop=auth,") && a.contains("nc=00000001"));
        assert!(a.contains("opaque=\"5ccc069c403ebaf9f0171e9517f40e41\""));
    }

    #[test]
    fn rfc7616_sha256_example() {
        // RFC 7616 section 3.9.1: SHA-256, qop=auth, user Mufasa.
        let c = Challenge::parse(
            "Digest realm=\"http-auth@example.org\", qop=\"auth, auth-int\", algorithm=SHA-256, nonce=\"7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v\", opaque=\"FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS\"",
        )
        .unwrap();
        // (RFC 7616 spells the password "Circle of Life", RFC 2617 "Circle Of Life".)
        let mufasa = Credentials {
            user: "Mufasa",
            password: "Circle of Life",
        };
        let a = c.authorize(
            &mufasa,
            "GET",
            "/dir/index.html",
            b"",
            1,
            "f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ",
        );
        assert!(
            a.contains(
                "response=\"753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1\""
            ),
            "{a}"
        );
        // The same with MD5: RFC 7616 3.9.1's MD5 answer.
        let md5 = Challenge {
            algorithm: Algorithm::Md5,
            ..c
        };
        let a = md5.authorize(
            &mufasa,
            "GET",
            "/dir/index.html",
            b"",
            1,
            "f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ",
        );
        assert!(
            a.contains("response=\"8ca523f5e9506fed4657c9700eebdbec\""),
            "{a}"
        );
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
            let creds = Credentials {
                user: "u",
                password: "p",
            };
            let a = c.authorize(&creds, "REGISTER", "sip:r", b"", 1, "c");
            assert!(a.contains("algorithm=SHA-256"));
            // HA1=sha256(u:r:p), HA2=sha256(REGISTER:sip:r), response=sha256(HA1:n:HA2)
            let ha1 = Algorithm::Sha256.hash(b"u:r:p");
            let ha2 = Algorithm::Sha256.hash(b"REGISTER:sip:r");
            let want = Algorithm::Sha256.hash(format!("{ha1}:n:{ha2}").as_bytes());
            assert!(a.contains(&want));
        }
    }

    #[test]
    fn sess_auth_int_and_userhash() {
        let creds = Credentials {
            user: "u",
            password: "p",
        };
        let c = Challenge::parse(
            "Digest realm=\"r\", nonce=\"n\", qop=\"auth-int\", algorithm=MD5-sess, userhash=true",
        )
        .unwrap();
        let a = c.authorize(&creds, "INVITE", "sip:b@r", b"body", 2, "cn");
        let h = |s: String| Algorithm::Md5.hash(s.as_bytes());
        let ha1 = h(format!("{}:n:cn", h("u:r:p".into())));
        let ha2 = h(format!("INVITE:sip:b@r:{}", h("body".into())));
        let want = h(format!("{ha1}:n:00000002:cn:auth-int:{ha2}"));
        assert!(a.contains(&format!("response=\"{want}\"")), "{a}");
        assert!(
            a.contains(&format!("username=\"{}\"", h("u:r".into()))),
            "{a}"
        );
        assert!(a.contains("qop=auth-int") && a.contains("userhash=true"));
        let s = Challenge::parse("Digest realm=r, nonce=n, algorithm=SHA-512-256-sess").unwrap();
        assert_eq!(s.algorithm, Algorithm::Sha512_256Sess);
        assert_eq!(s.algorithm.token(), "SHA-512-256-sess");
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
            Challenge::parse("Digest realm=r, nonce=n, algorithm=SHA-3"),
            Err(DigestError::Algorithm(_))
        ));
        assert!(matches!(
            Challenge::parse("Digest realm=r, nonce=n, qop=\"auth-conf\""),
            Err(DigestError::Qop(_))
        ));
    }

    fn challenge(headers: &str) -> Message {
        Message::parse(
            format!(
                "SIP/2.0 401 Unauthorized\r\nVia: SIP/2.0/UDP 127.0.0.1;branch=z9hG4bK1\r\nFrom: <sip:a@b>;tag=1\r\nTo: <sip:a@b>;tag=2\r\nCall-ID: c\r\nCSeq: 1 REGISTER\r\n{headers}Content-Length: 0\r\n\r\n"
            )
            .as_bytes(),
        )
        .unwrap()
    }

    #[test]
    fn authenticator_takes_the_strongest_per_realm_and_tracks_nonces() {
        let mut a = Authenticator::default();
        let r = challenge(
            "WWW-Authenticate: Digest realm=\"r\", nonce=\"n1\", algorithm=MD5, qop=\"auth\"\r\n\
             WWW-Authenticate: Digest realm=\"r\", nonce=\"n1\", algorithm=SHA-256, qop=\"auth\"\r\n\
             WWW-Authenticate: Digest realm=\"r\", nonce=\"n1\", algorithm=SHA-3\r\n\
             WWW-Authenticate: Basic realm=\"r\"\r\n\
             Proxy-Authenticate: Digest realm=\"p\", nonce=\"pn\"\r\n",
        );
        let o = a.on_challenge(&r).unwrap();
        assert!(o.new_realm && !o.stale);
        let creds = Credentials {
            user: "u",
            password: "p",
        };
        let h = a.headers(&creds, "REGISTER", "sip:r", b"", "c");
        assert_eq!(h.len(), 2);
        assert_eq!(h[0].0, "Authorization");
        assert!(h[0].1.contains("algorithm=SHA-256") && h[0].1.contains("nc=00000001"));
        assert_eq!(h[1].0, "Proxy-Authorization");
        assert!(h[1].1.contains("algorithm=MD5"));
        let h = a.headers(&creds, "REGISTER", "sip:r", b"", "c");
        assert!(h[0].1.contains("nc=00000002"));
        // The same realm with a new nonce, stale: counted from 1 again.
        let o = a
            .on_challenge(&challenge(
                "WWW-Authenticate: Digest realm=\"r\", nonce=\"n2\", algorithm=SHA-256, qop=auth, stale=true\r\n",
            ))
            .unwrap();
        assert!(o.stale && o.new_nonce && !o.new_realm);
        let h = a.headers(&creds, "REGISTER", "sip:r", b"", "c");
        assert_eq!(h.len(), 2, "the proxy realm is kept");
        assert!(h[0].1.contains("nonce=\"pn\"") || h[1].1.contains("nonce=\"pn\""));
        let r_hdr = h.iter().find(|x| x.1.contains("nonce=\"n2\"")).unwrap();
        assert!(r_hdr.1.contains("nc=00000001"));
        // Nothing usable.
        assert!(matches!(
            a.on_challenge(&challenge("WWW-Authenticate: Basic realm=x\r\n")),
            Err(DigestError::NotDigest(_))
        ));
        assert_eq!(
            Authenticator::default().on_challenge(&challenge("")),
            Err(DigestError::NoChallenge(401))
        );
    }

    #[test]
    fn hostile_challenge_values_cannot_break_our_header() {
        let c = Challenge::parse("Digest realm=\"a\r\nX: y\", nonce=\"n\"").unwrap();
        let a = c.authorize(
            &Credentials {
                user: "u",
                password: "p",
            },
            "BYE",
            "sip:x",
            b"",
            1,
            "c",
        );
        assert!(!a.contains('\r') && !a.contains('\n'), "{a}");
    }
}
