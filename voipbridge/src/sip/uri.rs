//! SIP URI helpers (RFC 3261 19.1): host and port, user part, parameters,
//! and the `sip:`/`sips:` server URIs of the registrar and outbound proxy.
//!
//! rsip parses URIs inside messages; these helpers work on the text we keep
//! (Contact, Route, Request-URI, configuration), which must stay exactly as
//! the peer wrote it.

use super::message::{addr_uri, Builder, Message};
use std::net::{IpAddr, SocketAddr};
use thiserror::Error;

/// Host (IPv6 without brackets) and port of a SIP URI; when the port is
/// absent, 5061 for `sips:` and `;transport=tls`, else 5060 (RFC 3261 19.1.2).
pub fn uri_host_port(uri: &str) -> Option<(String, u16)> {
    let u = uri.trim().trim_start_matches('<').trim_end_matches('>');
    let (u, default_port) = match strip_scheme(u) {
        Some((rest, true)) => (rest, 5061),
        Some((rest, false))
            if uri_param(u, "transport").is_some_and(|t| t.eq_ignore_ascii_case("tls")) =>
        {
            (rest, 5061)
        }
        Some((rest, false)) => (rest, 5060),
        None => return None,
    };
    let hostport = u.split(';').next()?.split('?').next()?;
    let hostport = hostport.rsplit('@').next()?;
    let (host, port) = if let Some(rest) = hostport.strip_prefix('[') {
        let (h, p) = rest.split_once(']')?;
        let port = match p.strip_prefix(':') {
            Some(p) => p.parse().ok()?,
            None if p.is_empty() => default_port,
            None => return None,
        };
        (h.to_string(), port)
    } else {
        match hostport.rsplit_once(':') {
            Some((h, p)) => (h.to_string(), p.parse().ok()?),
            None => (hostport.to_string(), default_port),
        }
    };
    (!host.is_empty()).then_some((host, port))
}

/// `(rest, secure)` of a URI without its `sip:`/`sips:` scheme (any case).
fn strip_scheme(u: &str) -> Option<(&str, bool)> {
    let lower = u.get(..5).unwrap_or(u).to_ascii_lowercase();
    if lower.starts_with("sips:") {
        Some((u.get(5..)?, true))
    } else if lower.starts_with("sip:") {
        Some((u.get(4..)?, false))
    } else {
        None
    }
}

/// Host and port of a SIP URI when the host is an IP literal; names are
/// resolved by the I/O layer.
pub fn uri_addr(uri: &str) -> Option<SocketAddr> {
    let (host, port) = uri_host_port(uri)?;
    let ip: IpAddr = host.parse().ok()?;
    Some(SocketAddr::new(ip, port))
}

/// A URI parameter (`;name=value`, or `;name` as an empty value) of the
/// URI itself, before any header part (`?`).
pub fn uri_param(uri: &str, name: &str) -> Option<String> {
    // A URI, or a name-addr holding one (`<sip:p;lr>`): inside the brackets.
    let u = if uri.contains('<') {
        addr_uri(uri)
    } else {
        uri.trim().to_string()
    };
    let u = u.split('?').next().unwrap_or(&u);
    u.split(';').skip(1).find_map(|p| {
        let (k, v) = p.split_once('=').unwrap_or((p, ""));
        k.trim()
            .eq_ignore_ascii_case(name)
            .then(|| v.trim().to_string())
    })
}

/// Whether a SIP URI carries the `lr` parameter (a loose router, RFC 3261 16.4).
pub fn is_loose_router(uri: &str) -> bool {
    uri_param(uri, "lr").is_some()
}

/// Whether `uri` can be the Request-URI of a request we send: `sip:` or
/// `sips:`, no whitespace, control characters, `<`, `>` or `"`, and a
/// request line with it parses (the parser judges host and port).
pub fn is_dialable(uri: &str) -> bool {
    let lower = uri.get(..5).unwrap_or("").to_ascii_lowercase();
    let shape = (lower.starts_with("sip:") && uri.len() > 4 || lower == "sips:" && uri.len() > 5)
        && !uri
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || matches!(c, '<' | '>' | '"'));
    shape && probe(uri, None)
}

/// Whether a Record-Route value can enter a dialog's route set (RFC 3261
/// 20.30: `rec-route = name-addr *( SEMI rr-param )`): a name-addr whose
/// URI [`is_dialable`] (a strict router's becomes a Request-URI), and a
/// request carrying the value as its Route parses.
pub fn is_route(value: &str) -> bool {
    let name_addr = matches!((value.find('<'), value.find('>')), (Some(a), Some(b)) if a < b);
    name_addr
        && !value.chars().any(|c| c.is_control())
        && is_dialable(&addr_uri(value))
        && probe("sip:check@127.0.0.1", Some(value))
}

/// Whether an OPTIONS to `uri`, with `route` as its Route when given, parses.
fn probe(uri: &str, route: Option<&str>) -> bool {
    let mut b = Builder::request("OPTIONS", uri)
        .header("Via", "SIP/2.0/UDP 127.0.0.1;branch=z9hG4bKcheck")
        .header("From", "<sip:a@127.0.0.1>;tag=a")
        .header("To", "<sip:b@127.0.0.1>")
        .header("Call-ID", "check")
        .header("CSeq", "1 OPTIONS");
    if let Some(r) = route {
        b = b.header("Route", r);
    }
    Message::parse(&b.build()).is_ok()
}

/// `user@host` of a header value's URI (name-addr or addr-spec, as in From) for exact comparison (RFC 3261 19.1.4: the user
/// part is case-sensitive, the host is not); no port, parameters or
/// headers. `None` for a URI without a user or host.
pub fn user_at_host(uri: &str) -> Option<String> {
    let u = addr_uri(uri);
    let (rest, _) = strip_scheme(&u)?;
    let rest = rest.split(['?']).next()?;
    let (user, hostpart) = rest.rsplit_once('@')?;
    let user = user.split(':').next()?.split(';').next()?;
    let (host, _) = uri_host_port(&format!("sip:{hostpart}"))?;
    if user.is_empty() || host.is_empty() {
        return None;
    }
    Some(format!("{}@{}", user, host.to_ascii_lowercase()))
}

/// Why a server URI (registrar, outbound proxy) in the configuration is refused.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum ServerUriError {
    /// Not a URI or `host[:port]` we understand.
    #[error("'{0}' is not a sip:/sips: URI, IP:port or host[:port]")]
    Syntax(String),
    /// A user part in a server URI.
    #[error("'{0}' names a user; a server URI is sip:host[:port][;transport=...]")]
    User(String),
}

/// A server we send requests to: the registrar or the outbound proxy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerUri {
    /// `sip:host[:port]` (or `sips:`), for the REGISTER Request-URI and Route.
    pub uri: String,
    /// Host name or IP literal (IPv6 without brackets).
    pub host: String,
    /// Port (5060 / 5061 for `sips:` when absent).
    pub port: u16,
    /// The `;transport=` parameter, lower case, when given.
    pub transport: Option<String>,
    /// `sips:` (TLS required).
    pub secure: bool,
    /// Written as a URI (`sip:...`) rather than the older `host[:port]` form.
    pub is_uri: bool,
    /// The address: the literal, or what the resolver found.
    pub addr: Option<SocketAddr>,
}

impl ServerUri {
    /// Parses `sip:host[:port][;transport=x]`, `sips:...`, `IP:port`,
    /// `[IPv6]:port` or `host[:port]`.
    pub fn parse(s: &str) -> Result<ServerUri, ServerUriError> {
        let s = s.trim();
        let bad = || ServerUriError::Syntax(s.to_string());
        if let Some((rest, secure)) = strip_scheme(s) {
            let hostpart = rest.split(['?', ';']).next().unwrap_or("");
            if hostpart.contains('@') {
                return Err(ServerUriError::User(s.to_string()));
            }
            let (host, port) = uri_host_port(s).ok_or_else(bad)?;
            if !valid_host(&host) {
                return Err(bad());
            }
            let transport = uri_param(s, "transport").map(|t| t.to_ascii_lowercase());
            if transport.as_deref() == Some("") {
                return Err(bad());
            }
            let scheme = if secure { "sips" } else { "sip" };
            let literal = fmt_host_port(&host, port, hostpart.contains(':'));
            return Ok(ServerUri {
                uri: format!("{scheme}:{literal}"),
                addr: host
                    .parse::<IpAddr>()
                    .ok()
                    .map(|ip| SocketAddr::new(ip, port)),
                host,
                port,
                transport,
                secure,
                is_uri: true,
            });
        }
        if let Ok(a) = s.parse::<SocketAddr>() {
            return Ok(ServerUri {
                uri: format!("sip:{}", fmt_addr(&a)),
                host: a.ip().to_string(),
                port: a.port(),
                transport: None,
                secure: false,
                is_uri: false,
                addr: Some(a),
            });
        }
        let (host, port) = match s.rsplit_once(':') {
            Some((h, p)) => (h, p.parse().map_err(|_| bad())?),
            None => (s, 5060),
        };
        if !valid_host(host) || host.parse::<IpAddr>().is_ok() && host.contains(':') {
            return Err(bad());
        }
        Ok(ServerUri {
            uri: format!("sip:{host}:{port}"),
            host: host.to_string(),
            port,
            transport: None,
            secure: false,
            is_uri: false,
            addr: host
                .parse::<IpAddr>()
                .ok()
                .map(|ip| SocketAddr::new(ip, port)),
        })
    }

    /// The Route header value naming this server as a loose router (RFC 3261 16.4).
    pub fn route(&self) -> String {
        format!("<{};lr>", self.uri)
    }
}

/// A DNS host name (letters, digits, `-`, `.`) or an IP literal.
fn valid_host(host: &str) -> bool {
    if host.parse::<IpAddr>().is_ok() {
        return true;
    }
    !host.is_empty()
        && host.len() <= 253
        && host.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        })
}

/// `host:port` (IPv6 in brackets); the port only when it was written.
fn fmt_host_port(host: &str, port: u16, with_port: bool) -> String {
    let h = if host.contains(':') {
        format!("[{host}]")
    } else {
        host.to_string()
    };
    if with_port {
        format!("{h}:{port}")
    } else {
        h
    }
}

/// A socket address as it appears in a URI or Via: `1.2.3.4:5`, `[::1]:5`.
pub fn fmt_addr(a: &SocketAddr) -> String {
    match a {
        SocketAddr::V4(v) => v.to_string(),
        SocketAddr::V6(v) => format!("[{}]:{}", v.ip(), v.port()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_port_and_defaults() {
        assert_eq!(
            uri_host_port("sip:bob@[::1]:5070;transport=udp"),
            Some(("::1".into(), 5070))
        );
        assert_eq!(
            uri_host_port("<sips:pbx.example.com>"),
            Some(("pbx.example.com".into(), 5061))
        );
        assert_eq!(uri_host_port("tel:+123"), None);
        assert_eq!(
            uri_addr("sip:a@127.0.0.1"),
            Some("127.0.0.1:5060".parse().unwrap())
        );
        assert!(is_loose_router("<sip:p.example;lr>"));
        assert!(is_loose_router("sip:p.example;transport=udp;lr"));
        assert!(!is_loose_router("sip:p.example;transport=udp"));
        assert!(!is_loose_router("sip:p.example?lr=1"));
    }

    #[test]
    fn exact_user_at_host() {
        assert_eq!(
            user_at_host("\"A\" <sip:alice@Example.COM:5060;transport=udp>;tag=1").as_deref(),
            Some("alice@example.com")
        );
        assert_eq!(
            user_at_host("<sip:alice;x=y@[::1]:5>").as_deref(),
            Some("alice@::1")
        );
        assert_eq!(user_at_host("sip:example.com"), None);
        assert_eq!(user_at_host("mailto:a@b"), None);
    }

    #[test]
    fn server_uris_in_every_form() {
        let s = ServerUri::parse("sip:pbx.example.com").unwrap();
        assert_eq!(s.uri, "sip:pbx.example.com");
        assert_eq!(
            (s.host.as_str(), s.port, s.addr),
            ("pbx.example.com", 5060, None)
        );
        assert!(s.is_uri && !s.secure);
        let s = ServerUri::parse("sips:pbx.example.com:5071;transport=TLS").unwrap();
        assert_eq!(s.uri, "sips:pbx.example.com:5071");
        assert_eq!(s.transport.as_deref(), Some("tls"));
        assert!(s.secure);
        let s = ServerUri::parse("sip:[::1]:5062;transport=udp").unwrap();
        assert_eq!(s.addr, Some("[::1]:5062".parse().unwrap()));
        assert_eq!(s.uri, "sip:[::1]:5062");
        assert_eq!(s.route(), "<sip:[::1]:5062;lr>");
        let s = ServerUri::parse("127.0.0.1:5060").unwrap();
        assert!(!s.is_uri);
        assert_eq!(s.addr, Some("127.0.0.1:5060".parse().unwrap()));
        let s = ServerUri::parse("sip.example.org").unwrap();
        assert_eq!((s.port, s.addr), (5060, None));
        let s = ServerUri::parse("[::1]:5060").unwrap();
        assert_eq!(s.addr, Some("[::1]:5060".parse().unwrap()));
        for bad in [
            "kamailio:port",
            "bad host:5060",
            "-x.example:5060",
            "a..b",
            "sip:",
            "sip:a b",
            "http://x",
            "sip:h;transport=",
        ] {
            assert!(
                matches!(ServerUri::parse(bad), Err(ServerUriError::Syntax(_))),
                "{bad}"
            );
        }
        assert!(matches!(
            ServerUri::parse("sip:alice@pbx.example.com"),
            Err(ServerUriError::User(_))
        ));
    }
}
