//! SIP messages: parsing with `rsip`, a validated view the UA works on, and a
//! small text builder for what we send.
//!
//! rsip parses the wire format; it keeps unknown and compact header forms
//! (`i:`, `v:`, ...) as `Header::Other`, so lookups here go by name and accept
//! both forms. Outgoing messages are written as text by [`Builder`]: the tests
//! parse every kind we emit back through rsip.

use rsip::{Header, SipMessage};
use std::fmt::Write;
use thiserror::Error;

/// Why a message was rejected.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum ParseError {
    /// Not a SIP message at all (no response can be sent).
    #[error("unparsable SIP message: {0}")]
    Unparsable(String),
    /// A request missing a mandatory header or with a bad one; answer 400.
    #[error("bad request: {0}")]
    BadRequest(String),
    /// A response we cannot use; drop it.
    #[error("bad response: {0}")]
    BadResponse(String),
}

/// Compact forms of header names (RFC 3261 section 7.3.3).
const COMPACT: [(&str, &str); 9] = [
    ("call-id", "i"),
    ("contact", "m"),
    ("content-encoding", "e"),
    ("content-length", "l"),
    ("content-type", "c"),
    ("from", "f"),
    ("subject", "s"),
    ("to", "t"),
    ("via", "v"),
];

fn names_match(wanted: &str, got: &str) -> bool {
    if wanted.eq_ignore_ascii_case(got) {
        return true;
    }
    COMPACT
        .iter()
        .any(|(long, short)| wanted.eq_ignore_ascii_case(long) && got.eq_ignore_ascii_case(short))
}

/// A parsed, validated SIP message.
#[derive(Debug, Clone)]
pub struct Message {
    /// Request method (upper case), or `None` for a response.
    pub method: Option<String>,
    /// Request-URI of a request.
    pub uri: String,
    /// Status code of a response.
    pub status: Option<u16>,
    /// Reason phrase of a response.
    pub reason: String,
    /// Headers in order, as (name, value).
    pub headers: Vec<(String, String)>,
    /// The body.
    pub body: Vec<u8>,
}

impl Message {
    /// Parses and validates a datagram.
    pub fn parse(data: &[u8]) -> Result<Message, ParseError> {
        let line = rewrite_request_line(data);
        let data = line.as_ref().map_or(data, |l| l.data.as_slice());
        let msg = SipMessage::try_from(data).map_err(|e| ParseError::Unparsable(e.to_string()))?;
        let (method, uri, status, reason, hdrs, body) = match msg {
            SipMessage::Request(r) => {
                let (method, uri) = match line {
                    Some(l) => (
                        l.method.unwrap_or_else(|| r.method.to_string()),
                        l.uri.unwrap_or_else(|| r.uri.to_string()),
                    ),
                    None => (r.method.to_string(), r.uri.to_string()),
                };
                (
                    Some(method.to_ascii_uppercase()),
                    uri,
                    None,
                    String::new(),
                    r.headers,
                    r.body,
                )
            }
            SipMessage::Response(r) => {
                let code = r.status_code.code();
                let reason = r.status_code.to_string();
                let reason = reason
                    .split_once(' ')
                    .map(|(_, s)| s.to_string())
                    .unwrap_or(reason);
                (None, String::new(), Some(code), reason, r.headers, r.body)
            }
        };
        let headers: Vec<(String, String)> = hdrs.iter().map(split_header).collect();
        let m = Message {
            method,
            uri,
            status,
            reason,
            headers,
            body,
        };
        m.validate()?;
        Ok(m)
    }

    fn validate(&self) -> Result<(), ParseError> {
        let bad = |s: String| {
            if self.method.is_some() {
                ParseError::BadRequest(s)
            } else {
                ParseError::BadResponse(s)
            }
        };
        for h in ["via", "call-id", "cseq", "from", "to"] {
            if self.header(h).is_none_or(|v| v.trim().is_empty()) {
                return Err(bad(format!("missing {h} header")));
            }
        }
        let (_, cseq_method) = self.cseq().ok_or_else(|| bad("malformed CSeq".into()))?;
        if let Some(m) = &self.method {
            if &cseq_method != m && m != "ACK" && m != "CANCEL" {
                return Err(bad(format!("CSeq method {cseq_method} does not match {m}")));
            }
        }
        if let Some(cl) = self.header("content-length") {
            let n: usize = cl
                .trim()
                .parse()
                .map_err(|_| bad(format!("bad Content-Length '{cl}'")))?;
            if n != self.body.len() {
                return Err(bad(format!(
                    "Content-Length {n} but body has {} bytes",
                    self.body.len()
                )));
            }
        }
        Ok(())
    }

    /// The first value of header `name` (long or compact form).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| names_match(name, n))
            .map(|(_, v)| v.as_str())
    }

    /// Every value of header `name`, comma-separated values split (outside quotes and <>).
    pub fn header_values(&self, name: &str) -> Vec<String> {
        self.headers
            .iter()
            .filter(|(n, _)| names_match(name, n))
            .flat_map(|(_, v)| split_list(v))
            .collect()
    }

    /// Call-ID.
    pub fn call_id(&self) -> &str {
        self.header("call-id").unwrap_or("").trim()
    }

    /// CSeq number and method.
    pub fn cseq(&self) -> Option<(u32, String)> {
        let v = self.header("cseq")?;
        let mut it = v.split_whitespace();
        let n = it.next()?.parse().ok()?;
        let m = it.next()?.to_ascii_uppercase();
        Some((n, m))
    }

    /// The `branch` parameter of the top Via.
    pub fn via_branch(&self) -> Option<String> {
        param(self.header_values("via").first()?, "branch")
    }

    /// The `tag` parameter of From.
    pub fn from_tag(&self) -> Option<String> {
        param(self.header("from")?, "tag")
    }

    /// The `tag` parameter of To.
    pub fn to_tag(&self) -> Option<String> {
        param(self.header("to")?, "tag")
    }

    /// The URI inside a name-addr or addr-spec header value (Contact, From, To).
    pub fn header_uri(&self, name: &str) -> Option<String> {
        Some(addr_uri(self.header(name)?))
    }

    /// The method of a request (upper case), `""` for a response.
    pub fn method(&self) -> &str {
        self.method.as_deref().unwrap_or("")
    }

    /// Whether this is a request.
    pub fn is_request(&self) -> bool {
        self.method.is_some()
    }

    /// The top Via value (the first of the first Via header).
    pub fn top_via(&self) -> Option<String> {
        self.header_values("via").into_iter().next()
    }

    /// The sent-by of the top Via, lower case (`host[:port]`): with the
    /// branch and method, the key of a server transaction (RFC 3261 17.2.3).
    pub fn via_sent_by(&self) -> Option<String> {
        let v = parse_via(&self.top_via()?)?;
        Some(match v.port {
            Some(p) => format!("{}:{p}", v.host.to_ascii_lowercase()),
            None => v.host.to_ascii_lowercase(),
        })
    }

    /// The `Expires` header as seconds, when present and numeric.
    pub fn expires(&self) -> Option<u32> {
        self.header("expires")?.trim().parse().ok()
    }

    /// The Request-URI's user part (before `@`), `None` when it has none.
    pub fn ruri_user(&self) -> Option<String> {
        uri_user(&self.uri)
    }
}

/// A Via header value (RFC 3261 20.42): `SIP/2.0/UDP host:port;params`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Via {
    /// Transport token (`UDP`, `TCP`, ...), upper case.
    pub transport: String,
    /// sent-by host (an IPv6 reference keeps its brackets).
    pub host: String,
    /// sent-by port.
    pub port: Option<u16>,
}

/// Parses the protocol and sent-by of a Via value; `None` when malformed.
pub fn parse_via(v: &str) -> Option<Via> {
    let v = v.trim();
    let (proto, rest) = v.split_once(char::is_whitespace)?;
    let mut p = proto.split('/');
    let (name, _version, transport) = (p.next()?, p.next()?, p.next()?);
    if !name.trim().eq_ignore_ascii_case("SIP") || p.next().is_some() {
        return None;
    }
    let sent_by = rest.trim().split(';').next()?.trim();
    let (host, port) = if sent_by.starts_with('[') {
        let (h, after) = sent_by.split_once(']')?;
        let port = match after.strip_prefix(':') {
            Some(p) => Some(p.trim().parse().ok()?),
            None if after.is_empty() => None,
            None => return None,
        };
        (format!("{h}]"), port)
    } else {
        match sent_by.rsplit_once(':') {
            Some((h, p)) => (h.to_string(), Some(p.trim().parse().ok()?)),
            None => (sent_by.to_string(), None),
        }
    };
    if host.is_empty() {
        return None;
    }
    Some(Via {
        transport: transport.trim().to_ascii_uppercase(),
        host,
        port,
    })
}

/// The user part of a SIP URI (`sip:alice@host` → `alice`), `None` without one.
pub fn uri_user(uri: &str) -> Option<String> {
    let u = addr_uri(uri);
    let rest = u
        .strip_prefix("sip:")
        .or_else(|| u.strip_prefix("sips:"))
        .or_else(|| u.strip_prefix("SIP:"))
        .or_else(|| u.strip_prefix("SIPS:"))?;
    let userinfo = rest.split(['?']).next()?;
    let (user, _) = userinfo.split_once('@')?;
    let user = user.split(':').next()?; // no password
    let user = user.split(';').next()?; // user parameters (RFC 3261 19.1.1)
    (!user.is_empty()).then(|| user.to_string())
}

fn split_header(h: &Header) -> (String, String) {
    let s = h.to_string();
    match s.split_once(':') {
        Some((n, v)) => (n.trim().to_string(), v.trim().to_string()),
        None => (s.trim().to_string(), String::new()),
    }
}

/// Placeholder Request-URI handed to rsip in place of one it cannot parse.
const V6_PLACEHOLDER: &str = "sip:ipv6-request-uri.invalid";
/// Placeholder method handed to rsip in place of an extension method.
const METHOD_PLACEHOLDER: &str = "OPTIONS";

/// Methods rsip 0.4 knows (its `Method` enum); any other token is an
/// extension method (RFC 3261 7.1, 25.1 `extension-method = token`).
const RSIP_METHODS: [&str; 14] = [
    "ACK",
    "BYE",
    "CANCEL",
    "INFO",
    "INVITE",
    "MESSAGE",
    "NOTIFY",
    "OPTIONS",
    "PRACK",
    "PUBLISH",
    "REFER",
    "REGISTER",
    "SUBSCRIBE",
    "UPDATE",
];

/// Whether `s` is an RFC 3261 `token` (25.1): the grammar of a method name.
pub fn is_token(s: &str) -> bool {
    !s.is_empty()
        && s.bytes().all(|b| {
            b.is_ascii_alphanumeric()
                || matches!(
                    b,
                    b'-' | b'.' | b'!' | b'%' | b'*' | b'_' | b'+' | b'`' | b'\'' | b'~'
                )
        })
}

/// A request line rsip cannot parse although it is valid SIP, rewritten.
struct RewrittenLine {
    /// The datagram with placeholders in the request line.
    data: Vec<u8>,
    /// The real method, when an extension method was replaced.
    method: Option<String>,
    /// The real Request-URI, when an IPv6 reference was replaced.
    uri: Option<String>,
}

/// rsip 0.4 refuses three things in a request line that RFC 3261 allows:
/// an extension method (its `Method` is a fixed enum, so `FOOBAR` would be
/// a parse error and get 400 where RFC 3261 8.2.1 wants 501), an IPv6
/// reference in the Request-URI (`sip:bob@[::1]:5070`: it splits host and
/// port at the first `:`), and another scheme's URI (`tel:+1555`, which
/// wants 416), although it keeps headers as text. For such a
/// line this returns the datagram with placeholders rsip accepts
/// ([`METHOD_PLACEHOLDER`], [`V6_PLACEHOLDER`]) and the real method and
/// URI, checked here instead: the method must be a token, the URI
/// `sip:`/`sips:` with one `[IPv6]` reference and an optional numeric port,
/// or `scheme:rest` of another scheme.
/// `None` for anything else (rsip judges it).
fn rewrite_request_line(data: &[u8]) -> Option<RewrittenLine> {
    let mut end = data.iter().position(|&b| b == b'\n')?;
    if end > 0 && data.get(end - 1) == Some(&b'\r') {
        end -= 1; // keep the CR with the rest
    }
    let line = std::str::from_utf8(data.get(..end)?).ok()?;
    let mut parts = line.split(' ');
    let (method, uri, version) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() || !version.starts_with("SIP/") || !is_token(method) {
        return None;
    }
    let extension = !RSIP_METHODS.iter().any(|m| m.eq_ignore_ascii_case(method));
    // An IPv6 reference, or another scheme's absoluteURI (`tel:`, `urn:`:
    // RFC 3261 25.1 allows them; the UA answers 416), which rsip refuses.
    let v6 = ipv6_uri(uri) || other_scheme_uri(uri);
    if !extension && !v6 {
        return None;
    }
    let out_method = if extension {
        METHOD_PLACEHOLDER
    } else {
        method
    };
    let out_uri = if v6 { V6_PLACEHOLDER } else { uri };
    let mut out = format!("{out_method} {out_uri} {version}").into_bytes();
    out.extend_from_slice(data.get(end..)?);
    Some(RewrittenLine {
        data: out,
        method: extension.then(|| method.to_string()),
        uri: v6.then(|| uri.to_string()),
    })
}

/// Whether `uri` is an RFC 3986 absolute URI of a scheme other than
/// `sip`/`sips` (`scheme ":" rest`, no whitespace or control characters).
fn other_scheme_uri(uri: &str) -> bool {
    let Some((scheme, rest)) = uri.split_once(':') else {
        return false;
    };
    let mut chars = scheme.chars();
    let valid_scheme = chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'));
    valid_scheme
        && !scheme.eq_ignore_ascii_case("sip")
        && !scheme.eq_ignore_ascii_case("sips")
        && !rest.is_empty()
        && !uri.chars().any(|c| c.is_whitespace() || c.is_control())
}

/// Whether `uri` is a `sip:`/`sips:` URI whose host is a valid `[IPv6]`
/// reference with an optional numeric port.
fn ipv6_uri(uri: &str) -> bool {
    let check = || -> Option<()> {
        if !uri.contains('[') {
            return None;
        }
        let rest = uri
            .strip_prefix("sip:")
            .or_else(|| uri.strip_prefix("sips:"))?;
        let hostport = rest.split([';', '?']).next()?;
        let hostport = hostport.rsplit('@').next()?;
        let (host, after) = hostport.strip_prefix('[')?.split_once(']')?;
        host.parse::<std::net::Ipv6Addr>().ok()?;
        (after.is_empty() || after.strip_prefix(':')?.parse::<u16>().is_ok()).then_some(())
    };
    check().is_some()
}

/// Splits a header value at commas outside quotes and angle brackets.
pub fn split_list(v: &str) -> Vec<String> {
    let mut out = Vec::new();
    let (mut quoted, mut angle, mut cur) = (false, false, String::new());
    for c in v.chars() {
        match c {
            '"' => quoted = !quoted,
            '<' if !quoted => angle = true,
            '>' if !quoted => angle = false,
            ',' if !quoted && !angle => {
                out.push(cur.trim().to_string());
                cur.clear();
                continue;
            }
            _ => {}
        }
        cur.push(c);
    }
    if !cur.trim().is_empty() {
        out.push(cur.trim().to_string());
    }
    out
}

/// A `;name=value` parameter of a header value (outside the <uri>).
pub fn param(v: &str, name: &str) -> Option<String> {
    let after = match v.rfind('>') {
        Some(i) => &v[i + 1..],
        None => v,
    };
    after.split(';').skip(1).find_map(|p| {
        let (k, val) = p.split_once('=').unwrap_or((p, ""));
        k.trim()
            .eq_ignore_ascii_case(name)
            .then(|| val.trim().trim_matches('"').to_string())
    })
}

/// The URI of a name-addr (`"Bob" <sip:bob@host>;tag=1`) or addr-spec (`sip:bob@host;tag=1`).
pub fn addr_uri(v: &str) -> String {
    if let (Some(a), Some(b)) = (v.find('<'), v.find('>')) {
        if a < b {
            return v[a + 1..b].trim().to_string();
        }
    }
    v.split(';').next().unwrap_or(v).trim().to_string()
}

/// Builds the text of an outgoing message.
#[derive(Debug, Clone)]
pub struct Builder {
    start: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
    content_type: Option<String>,
}

impl Builder {
    /// A request line.
    pub fn request(method: &str, uri: &str) -> Builder {
        Builder {
            start: format!("{method} {uri} SIP/2.0"),
            headers: Vec::new(),
            body: Vec::new(),
            content_type: None,
        }
    }

    /// A status line.
    pub fn response(code: u16, reason: &str) -> Builder {
        Builder {
            start: format!("SIP/2.0 {code} {reason}"),
            headers: Vec::new(),
            body: Vec::new(),
            content_type: None,
        }
    }

    /// A response to `req` copying Via, From, To (adding `to_tag` if To has none), Call-ID and CSeq;
    /// for 101–299 responses to INVITE also Record-Route, in order (RFC 3261 12.1.1).
    pub fn response_to(req: &Message, code: u16, reason: &str, to_tag: Option<&str>) -> Builder {
        let mut b = Builder::response(code, reason);
        for (n, v) in &req.headers {
            if names_match("via", n) {
                b = b.header("Via", v);
            }
        }
        if req.method.as_deref() == Some("INVITE") && (101..300).contains(&code) {
            for (n, v) in &req.headers {
                if n.eq_ignore_ascii_case("record-route") {
                    b = b.header("Record-Route", v);
                }
            }
        }
        b = b.header("From", req.header("from").unwrap_or(""));
        let to = req.header("to").unwrap_or("").to_string();
        let to = match (to_tag, param(&to, "tag")) {
            (Some(t), None) if code > 100 => format!("{to};tag={t}"),
            _ => to,
        };
        b.header("To", &to)
            .header("Call-ID", req.call_id())
            .header("CSeq", req.header("cseq").unwrap_or(""))
    }

    /// Adds a header.
    pub fn header(mut self, name: &str, value: &str) -> Builder {
        self.headers.push((name.to_string(), value.to_string()));
        self
    }

    /// Sets the body and its Content-Type.
    pub fn body(mut self, content_type: &str, body: Vec<u8>) -> Builder {
        self.content_type = Some(content_type.to_string());
        self.body = body;
        self
    }

    /// The message bytes (Content-Length added).
    pub fn build(&self) -> Vec<u8> {
        let mut s = String::with_capacity(512 + self.body.len());
        let _ = write!(s, "{}\r\n", self.start);
        for (n, v) in &self.headers {
            let _ = write!(s, "{n}: {v}\r\n");
        }
        if let Some(ct) = &self.content_type {
            let _ = write!(s, "Content-Type: {ct}\r\n");
        }
        let _ = write!(s, "Content-Length: {}\r\n\r\n", self.body.len());
        let mut out = s.into_bytes();
        out.extend_from_slice(&self.body);
        out
    }
}

/// Best-effort extraction of the headers a 400 response needs from a message
/// rsip could not parse. `None` when it is not a request or lacks them.
pub fn salvage_request(data: &[u8]) -> Option<Message> {
    let text = std::str::from_utf8(data).ok()?;
    let mut lines = text.split("\r\n");
    let first = lines.next()?;
    let mut parts = first.split_whitespace();
    let method = parts.next()?.to_string();
    if method.starts_with("SIP/") {
        return None;
    }
    let uri = parts.next().unwrap_or("").to_string();
    let mut headers = Vec::new();
    for l in lines {
        if l.is_empty() {
            break;
        }
        if let Some((n, v)) = l.split_once(':') {
            headers.push((n.trim().to_string(), v.trim().to_string()));
        }
    }
    let m = Message {
        method: Some(method),
        uri,
        status: None,
        reason: String::new(),
        headers,
        body: Vec::new(),
    };
    for h in ["via", "call-id", "cseq", "from", "to"] {
        m.header(h)?;
    }
    Some(m)
}

#[cfg(test)]
mod tests {
    use super::*;

    const INVITE: &str = "INVITE sip:bob@127.0.0.1:5070 SIP/2.0\r\n\
v: SIP/2.0/UDP 127.0.0.1:5080;branch=z9hG4bK776asdhds;rport\r\n\
Max-Forwards: 70\r\n\
t: Bob <sip:bob@127.0.0.1>\r\n\
f: Alice <sip:alice@127.0.0.1>;tag=1928301774\r\n\
i: a84b4c76e66710@pc33\r\n\
CSeq: 314159 INVITE\r\n\
m: <sip:alice@127.0.0.1:5080>\r\n\
Content-Length: 4\r\n\r\nabcd";

    #[test]
    fn parses_compact_forms() {
        let m = Message::parse(INVITE.as_bytes()).unwrap();
        assert_eq!(m.method.as_deref(), Some("INVITE"));
        assert_eq!(m.call_id(), "a84b4c76e66710@pc33");
        assert_eq!(m.cseq(), Some((314159, "INVITE".into())));
        assert_eq!(m.via_branch().as_deref(), Some("z9hG4bK776asdhds"));
        assert_eq!(m.from_tag().as_deref(), Some("1928301774"));
        assert_eq!(m.to_tag(), None);
        assert_eq!(
            m.header_uri("contact").as_deref(),
            Some("sip:alice@127.0.0.1:5080")
        );
        assert_eq!(m.body, b"abcd");
    }

    #[test]
    fn rejects_missing_headers_and_bad_length() {
        let no_callid = INVITE.replace("i: a84b4c76e66710@pc33\r\n", "");
        assert!(matches!(
            Message::parse(no_callid.as_bytes()),
            Err(ParseError::BadRequest(_))
        ));
        let bad_len = INVITE.replace("Content-Length: 4", "Content-Length: 9");
        assert!(matches!(
            Message::parse(bad_len.as_bytes()),
            Err(ParseError::BadRequest(_))
        ));
        let bad_cseq = INVITE.replace("CSeq: 314159 INVITE", "CSeq: x INVITE");
        assert!(matches!(
            Message::parse(bad_cseq.as_bytes()),
            Err(ParseError::BadRequest(_))
        ));
        assert!(Message::parse(b"\x00\x01garbage").is_err());
        assert!(salvage_request(no_callid.as_bytes()).is_none());
        assert!(salvage_request(bad_len.as_bytes()).is_some());
    }

    #[test]
    fn built_responses_parse_back() {
        let req = Message::parse(INVITE.as_bytes()).unwrap();
        let resp = Builder::response_to(&req, 200, "OK", Some("abc"))
            .header("Contact", "<sip:bob@127.0.0.1:5070>")
            .body("application/sdp", b"v=0\r\n".to_vec())
            .build();
        let r = Message::parse(&resp).unwrap();
        assert_eq!(r.status, Some(200));
        assert_eq!(r.reason, "OK");
        assert_eq!(r.to_tag().as_deref(), Some("abc"));
        assert_eq!(r.via_branch().as_deref(), Some("z9hG4bK776asdhds"));
        assert_eq!(r.body, b"v=0\r\n");
    }

    #[test]
    fn torture_inputs_never_panic() {
        let cases: Vec<Vec<u8>> = vec![
            b"".to_vec(),
            b"INVITE".to_vec(),
            b"INVITE sip:x SIP/2.0\r\n\r\n".to_vec(),
            INVITE
                .replace("CSeq: 314159 INVITE", "CSeq: 99999999999999999999 INVITE")
                .into_bytes(),
            INVITE
                .replace(
                    "Max-Forwards: 70",
                    &format!("Subject: {}", "x".repeat(70000)),
                )
                .into_bytes(),
            INVITE.replace("\r\n", "\n").into_bytes(),
            vec![0xff; 300],
        ];
        for c in cases {
            let _ = Message::parse(&c);
            let _ = salvage_request(&c);
        }
    }

    #[test]
    fn ipv6_request_uris_parse() {
        let v6 = INVITE.replace("sip:bob@127.0.0.1:5070", "sip:bob@[::1]:5070;transport=udp");
        let m = Message::parse(v6.as_bytes()).unwrap();
        assert_eq!(m.uri, "sip:bob@[::1]:5070;transport=udp");
        assert_eq!(m.method.as_deref(), Some("INVITE"));
        assert_eq!(m.body, b"abcd");
        let no_port = INVITE.replace("sip:bob@127.0.0.1:5070", "sip:[::1]");
        assert_eq!(Message::parse(no_port.as_bytes()).unwrap().uri, "sip:[::1]");
        // Not an IPv6 address, or a bad port: still refused.
        for bad in ["sip:bob@[::g]:5070", "sip:bob@[::1]:99999", "sip:bob@[::1"] {
            let m = INVITE.replace("sip:bob@127.0.0.1:5070", bad);
            assert!(Message::parse(m.as_bytes()).is_err(), "{bad}");
        }
    }

    #[test]
    fn list_and_params() {
        assert_eq!(
            split_list("a, \"x,y\" <sip:b>, <sip:c,d>"),
            vec!["a", "\"x,y\" <sip:b>", "<sip:c,d>"]
        );
        assert_eq!(
            param("<sip:a@b;lr>;tag=x;expires=60", "expires").as_deref(),
            Some("60")
        );
        assert_eq!(addr_uri("sip:bob@host;tag=1"), "sip:bob@host");
    }
}
