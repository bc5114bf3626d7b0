//! The rustls side of [`crate::tls`] (cargo feature `tls`): the client and
//! server configurations, server names and the messages for failed
//! handshakes.

use super::{MinVersion, TlsError, TlsSettings};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::{CertificateError, ClientConfig, RootCertStore, ServerConfig};
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

/// What accepts TLS connections on our listener.
pub type Acceptor = tokio_rustls::TlsAcceptor;

/// Client and server configurations built once at start.
#[derive(Clone)]
pub struct TlsContext {
    /// For connections we open.
    pub client: Arc<ClientConfig>,
    /// For connections we accept; `None` without `cert_file`.
    pub server: Option<Arc<ServerConfig>>,
    /// What we trust, for error messages: "ca_file /x/ca.pem" or "the system roots".
    pub trust: String,
}

impl std::fmt::Debug for TlsContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsContext")
            .field("trust", &self.trust)
            .field("server", &self.server.is_some())
            .finish_non_exhaustive()
    }
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn versions(min: MinVersion) -> &'static [&'static rustls::SupportedProtocolVersion] {
    static BOTH: [&rustls::SupportedProtocolVersion; 2] =
        [&rustls::version::TLS13, &rustls::version::TLS12];
    static ONLY13: [&rustls::SupportedProtocolVersion; 1] = [&rustls::version::TLS13];
    match min {
        MinVersion::Tls12 => &BOTH,
        MinVersion::Tls13 => &ONLY13,
    }
}

fn read_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let data = std::fs::read(path).map_err(|e| TlsError::Read(path.to_path_buf(), e))?;
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&data)
        .collect::<Result<_, _>>()
        .map_err(|e| TlsError::Pem(path.to_path_buf(), format!("bad PEM: {e}")))?;
    if certs.is_empty() {
        return Err(TlsError::Pem(
            path.to_path_buf(),
            "no CERTIFICATE in the file".into(),
        ));
    }
    Ok(certs)
}

fn read_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    use std::os::unix::fs::PermissionsExt;
    let meta = std::fs::metadata(path).map_err(|e| TlsError::Read(path.to_path_buf(), e))?;
    if meta.permissions().mode() & 0o077 != 0 {
        return Err(TlsError::KeyMode(path.to_path_buf()));
    }
    let data = std::fs::read(path).map_err(|e| TlsError::Read(path.to_path_buf(), e))?;
    let data = zeroize::Zeroizing::new(data);
    PrivateKeyDer::from_pem_slice(&data).map_err(|e| {
        TlsError::Pem(
            path.to_path_buf(),
            format!("no usable private key (PKCS#8, PKCS#1 or SEC1 PEM): {e}"),
        )
    })
}

impl TlsContext {
    /// What we trust, for messages and `status`.
    pub fn trust(&self) -> &str {
        &self.trust
    }

    /// What accepts connections on our TLS listener; `None` without
    /// `cert_file` (then we do not listen).
    pub fn acceptor(&self) -> Option<Acceptor> {
        self.server.clone().map(Acceptor::from)
    }

    /// Reads the files and builds both configurations.
    pub fn new(s: &TlsSettings) -> Result<TlsContext, TlsError> {
        let mut roots = RootCertStore::empty();
        let trust = match &s.ca_file {
            Some(f) => {
                for c in read_certs(f)? {
                    roots.add(c).map_err(|e| {
                        TlsError::Pem(f.clone(), format!("not a usable CA certificate: {e}"))
                    })?;
                }
                format!("ca_file {}", f.display())
            }
            None => {
                let found = rustls_native_certs::load_native_certs();
                let (added, _) = roots.add_parsable_certificates(found.certs);
                if added == 0 {
                    let why = found
                        .errors
                        .first()
                        .map_or("none installed".to_string(), |e| e.to_string());
                    return Err(TlsError::NoRoots(why));
                }
                "the system roots".to_string()
            }
        };
        let own = match (&s.cert_file, &s.key_file) {
            (Some(c), Some(k)) => Some((read_certs(c)?, read_key(k)?)),
            (None, None) => None,
            (Some(_), None) | (None, Some(_)) => {
                return Err(TlsError::Config(
                    "[tls] cert_file and key_file go together".into(),
                ))
            }
        };
        let cfg_err = |e: rustls::Error| TlsError::Config(format!("[tls]: {e}"));
        let builder = ClientConfig::builder_with_provider(provider())
            .with_protocol_versions(versions(s.min_version))
            .map_err(cfg_err)?
            .with_root_certificates(roots);
        let client = match &own {
            Some((chain, key)) => builder
                .with_client_auth_cert(chain.clone(), key.clone_key())
                .map_err(|e| {
                    TlsError::Config(format!(
                        "[tls] cert_file/key_file: {e} (does the key belong to the certificate?)"
                    ))
                })?,
            None => builder.with_no_client_auth(),
        };
        let server = match own {
            Some((chain, key)) => Some(Arc::new(
                ServerConfig::builder_with_provider(provider())
                    .with_protocol_versions(versions(s.min_version))
                    .map_err(cfg_err)?
                    .with_no_client_auth()
                    .with_single_cert(chain, key)
                    .map_err(|e| {
                        TlsError::Config(format!(
                            "[tls] cert_file/key_file: {e} (does the key belong to the certificate?)"
                        ))
                    })?,
            )),
            None => None,
        };
        Ok(TlsContext {
            client: Arc::new(client),
            server,
            trust,
        })
    }
}

/// The name a connection to a host is verified against (and sent as SNI):
/// a DNS name, or an IP address (then the certificate needs it as an IP SAN).
pub fn server_name(host: &str) -> Result<ServerName<'static>, TlsError> {
    let h = host.trim_start_matches('[').trim_end_matches(']');
    ServerName::try_from(h.to_string()).map_err(|_| TlsError::Name(host.to_string()))
}

/// YYYY-MM-DD HH:MM:SS UTC of a Unix time (no date crate for one message).
fn utc(secs: u64) -> String {
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02} UTC",
        rem / 3600,
        rem / 60 % 60,
        rem % 60
    )
}

/// A name rustls presents as `DnsName("x")` or `IpAddress(V4(Ipv4Addr([127, 0, 0, 1])))`, readable.
fn presented_name(p: &str) -> String {
    if let Some(n) = p
        .strip_prefix("DnsName(\"")
        .and_then(|r| r.strip_suffix("\")"))
    {
        return n.to_string();
    }
    if let Some(ip) = p
        .strip_prefix("IpAddress(")
        .and_then(|r| r.strip_suffix(')'))
    {
        if ip.parse::<std::net::IpAddr>().is_ok() {
            return ip.to_string();
        }
    }
    if p.contains("V4(") {
        let nums: Vec<&str> = p
            .split(|c: char| !c.is_ascii_digit())
            .filter(|s| !s.is_empty())
            .collect();
        if let [_, a, b, c, d] | [a, b, c, d] = nums.as_slice() {
            return format!("{a}.{b}.{c}.{d}");
        }
    }
    p.to_string()
}

fn cert_problem(e: &CertificateError, trust: &str) -> String {
    match e {
        CertificateError::UnknownIssuer => {
            format!("it is not issued by a CA in {trust} (unknown issuer)")
        }
        CertificateError::ExpiredContext { time, not_after } => format!(
            "it expired on {} (now {})",
            utc(not_after.as_secs()),
            utc(time.as_secs())
        ),
        CertificateError::Expired => "it has expired".into(),
        CertificateError::NotValidYetContext { time, not_before } => format!(
            "it is not valid before {} (now {}: check the clock)",
            utc(not_before.as_secs()),
            utc(time.as_secs())
        ),
        CertificateError::NotValidYet => "it is not valid yet (check the clock)".into(),
        CertificateError::NotValidForNameContext { presented, .. } => {
            if presented.is_empty() {
                "it is not valid for this name (it names none)".into()
            } else {
                let names: Vec<String> = presented.iter().map(|p| presented_name(p)).collect();
                format!(
                    "it is not valid for this name (it is for {})",
                    names.join(", ")
                )
            }
        }
        CertificateError::NotValidForName => "it is not valid for this name".into(),
        CertificateError::BadSignature => "its signature does not verify".into(),
        CertificateError::Revoked => "it has been revoked".into(),
        CertificateError::BadEncoding => "it is not a well-formed X.509 certificate".into(),
        CertificateError::InvalidPurpose | CertificateError::InvalidPurposeContext { .. } => {
            "it is not valid for TLS server authentication (extended key usage)".into()
        }
        other => format!("{other:?}"),
    }
}

fn alert_hint(a: &rustls::AlertDescription) -> &'static str {
    match a {
        rustls::AlertDescription::CertificateRequired
        | rustls::AlertDescription::BadCertificate
        | rustls::AlertDescription::UnknownCA
        | rustls::AlertDescription::CertificateUnknown
        | rustls::AlertDescription::DecryptError => {
            " (it refused our client certificate, or needs one: [tls] cert_file/key_file)"
        }
        rustls::AlertDescription::ProtocolVersion | rustls::AlertDescription::HandshakeFailure => {
            " (no TLS version or cipher suite in common; we speak TLS 1.2+)"
        }
        _ => "",
    }
}

/// Why an established TLS connection ended, when the peer said so with an
/// alert (in TLS 1.3 a server refuses a client certificate only after the
/// handshake looks complete to the client): `None` for other errors.
pub fn describe_alert(err: &std::io::Error) -> Option<String> {
    match err.get_ref()?.downcast_ref::<rustls::Error>()? {
        rustls::Error::AlertReceived(a) => Some(format!("alert {a:?}{}", alert_hint(a))),
        _ => None,
    }
}

/// One line saying why a TLS connection to `name` at `peer` failed: which
/// check, for which name, against what trust.
pub fn describe_connect_error(
    err: &std::io::Error,
    peer: SocketAddr,
    name: &str,
    trust: &str,
) -> String {
    let tls = err
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>());
    let why = match tls {
        Some(rustls::Error::InvalidCertificate(c)) => {
            format!("certificate of {name} rejected: {}", cert_problem(c, trust))
        }
        Some(rustls::Error::AlertReceived(a)) => {
            format!(
                "{name} ended the handshake with alert {a:?}{}",
                alert_hint(a)
            )
        }
        Some(rustls::Error::PeerIncompatible(p)) => {
            format!("{name} is incompatible: {p:?} (we speak TLS 1.2+)")
        }
        Some(other) => format!("TLS with {name}: {other}"),
        None => format!("TLS with {name}: {err}"),
    };
    format!("TLS to {peer} failed: {why}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use rcgen::{CertificateParams, DnType, IsCa, KeyPair};
    use std::path::PathBuf;
    use std::time::Duration;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio_rustls::{TlsAcceptor, TlsConnector};

    struct Pki {
        dir: PathBuf,
        ca: rcgen::Certificate,
        ca_key: KeyPair,
    }

    impl Pki {
        fn new(tag: &str) -> Pki {
            let dir = std::env::temp_dir().join(format!("vb-tls-{tag}-{}", std::process::id()));
            let _ = std::fs::remove_dir_all(&dir);
            std::fs::create_dir_all(&dir).unwrap();
            let ca_key = KeyPair::generate().unwrap();
            let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
            p.is_ca = IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
            p.distinguished_name
                .push(DnType::CommonName, format!("test CA {tag}"));
            let ca = p.self_signed(&ca_key).unwrap();
            std::fs::write(dir.join("ca.pem"), ca.pem()).unwrap();
            Pki { dir, ca, ca_key }
        }

        /// A leaf for `names`, valid from `from` to `to` days from now.
        fn leaf(&self, file: &str, names: &[&str], from: i64, to: i64) -> (PathBuf, PathBuf) {
            let key = KeyPair::generate().unwrap();
            let mut p =
                CertificateParams::new(names.iter().map(|s| s.to_string()).collect::<Vec<_>>())
                    .unwrap();
            let now = time::OffsetDateTime::now_utc();
            p.not_before = now + time::Duration::days(from);
            p.not_after = now + time::Duration::days(to);
            let c = p.signed_by(&key, &self.ca, &self.ca_key).unwrap();
            let (cf, kf) = (
                self.dir.join(format!("{file}.pem")),
                self.dir.join(format!("{file}.key")),
            );
            std::fs::write(&cf, c.pem()).unwrap();
            std::fs::write(&kf, key.serialize_pem()).unwrap();
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&kf, std::fs::Permissions::from_mode(0o600)).unwrap();
            (cf, kf)
        }

        fn ca_file(&self) -> PathBuf {
            self.dir.join("ca.pem")
        }
    }

    impl Drop for Pki {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }

    /// Connects a client with `client` settings to a server with `server`
    /// settings over loopback, verifying `name`; the client's error text.
    async fn handshake(
        client: &TlsSettings,
        server: &TlsSettings,
        name: &str,
    ) -> Result<(), String> {
        let c = TlsContext::new(client).map_err(|e| e.to_string())?;
        let s = TlsContext::new(server).map_err(|e| e.to_string())?;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let acceptor = TlsAcceptor::from(s.server.clone().expect("server cert"));
        let srv = tokio::spawn(async move {
            let (tcp, _) = listener.accept().await.unwrap();
            if let Ok(mut t) = acceptor.accept(tcp).await {
                let mut b = [0u8; 4];
                if t.read_exact(&mut b).await.is_ok() {
                    let _ = t.write_all(&b).await;
                }
            }
        });
        let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
        let sn = server_name(name).unwrap();
        let r = match TlsConnector::from(c.client.clone()).connect(sn, tcp).await {
            Ok(mut t) => {
                t.write_all(b"ping").await.unwrap();
                let mut b = [0u8; 4];
                t.read_exact(&mut b).await.map_err(|e| e.to_string())?;
                assert_eq!(&b, b"ping");
                Ok(())
            }
            Err(e) => Err(describe_connect_error(&e, addr, name, &c.trust)),
        };
        let _ = tokio::time::timeout(Duration::from_secs(5), srv).await;
        r
    }

    fn trusting(ca: &Path) -> TlsSettings {
        TlsSettings {
            ca_file: Some(ca.to_path_buf()),
            ..TlsSettings::default()
        }
    }

    fn serving(cert: (PathBuf, PathBuf)) -> TlsSettings {
        TlsSettings {
            cert_file: Some(cert.0),
            key_file: Some(cert.1),
            ..TlsSettings::default()
        }
    }

    #[tokio::test]
    async fn a_good_certificate_is_accepted_by_name_and_by_ip() {
        let pki = Pki::new("good");
        let srv = serving(pki.leaf("srv", &["registrar.test", "127.0.0.1"], -1, 30));
        handshake(&trusting(&pki.ca_file()), &srv, "registrar.test")
            .await
            .unwrap();
        handshake(&trusting(&pki.ca_file()), &srv, "127.0.0.1")
            .await
            .unwrap();
        let e = handshake(&trusting(&pki.ca_file()), &srv, "127.0.0.2")
            .await
            .unwrap_err();
        assert!(e.contains("it is for registrar.test, 127.0.0.1"), "{e}");
    }

    #[tokio::test]
    async fn bad_certificates_are_refused_with_the_reason_and_the_name() {
        let pki = Pki::new("bad");
        let other = Pki::new("other");
        let good = serving(pki.leaf("srv", &["registrar.test"], -1, 30));
        let e = handshake(&trusting(&other.ca_file()), &good, "registrar.test")
            .await
            .unwrap_err();
        assert!(
            e.contains("certificate of registrar.test rejected")
                && e.contains("unknown issuer")
                && e.contains("ca_file"),
            "{e}"
        );
        let e = handshake(&trusting(&pki.ca_file()), &good, "proxy.test")
            .await
            .unwrap_err();
        assert!(
            e.contains("certificate of proxy.test rejected")
                && e.contains("it is for registrar.test"),
            "{e}"
        );
        let expired = serving(pki.leaf("old", &["registrar.test"], -30, -1));
        let e = handshake(&trusting(&pki.ca_file()), &expired, "registrar.test")
            .await
            .unwrap_err();
        assert!(e.contains("it expired on 20"), "{e}");
        let future = serving(pki.leaf("new", &["registrar.test"], 2, 30));
        let e = handshake(&trusting(&pki.ca_file()), &future, "registrar.test")
            .await
            .unwrap_err();
        assert!(e.contains("not valid before"), "{e}");
    }

    #[tokio::test]
    async fn tls13_only_refuses_a_tls12_server() {
        let pki = Pki::new("v13");
        let mut srv = serving(pki.leaf("srv", &["registrar.test"], -1, 30));
        let s12 = TlsContext::new(&srv).unwrap();
        // Make the server 1.2-only by hand.
        let only12 = ServerConfig::builder_with_provider(provider())
            .with_protocol_versions(&[&rustls::version::TLS12])
            .unwrap()
            .with_no_client_auth()
            .with_cert_resolver(s12.server.as_ref().unwrap().cert_resolver.clone());
        let mut client = trusting(&pki.ca_file());
        client.min_version = MinVersion::Tls13;
        let c = TlsContext::new(&client).unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let acc = TlsAcceptor::from(Arc::new(only12));
        tokio::spawn(async move {
            let (tcp, _) = listener.accept().await.unwrap();
            let _ = acc.accept(tcp).await;
        });
        let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
        let e = TlsConnector::from(c.client.clone())
            .connect(server_name("registrar.test").unwrap(), tcp)
            .await
            .unwrap_err();
        let msg = describe_connect_error(&e, addr, "registrar.test", &c.trust);
        assert!(
            msg.contains("TLS to 127.0.0.1:") && msg.contains("registrar.test"),
            "{msg}"
        );
        srv.min_version = MinVersion::Tls12;
        handshake(&trusting(&pki.ca_file()), &srv, "registrar.test")
            .await
            .unwrap();
    }

    #[test]
    fn configuration_errors_are_clear() {
        let pki = Pki::new("cfg");
        let (cert, key) = pki.leaf("me", &["me.test"], -1, 30);
        let mut s = serving((cert.clone(), key.clone()));
        s.ca_file = Some(pki.ca_file());
        assert!(TlsContext::new(&s).unwrap().server.is_some());
        // Key readable by others.
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
        let e = TlsContext::new(&s).unwrap_err().to_string();
        assert!(e.contains("must not be readable by group or others"), "{e}");
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
        // A key that is not the certificate's.
        let (_, other_key) = pki.leaf("other", &["x.test"], -1, 30);
        s.key_file = Some(other_key);
        let e = TlsContext::new(&s).unwrap_err().to_string();
        assert!(e.contains("does the key belong to the certificate?"), "{e}");
        // Missing and empty files, half a pair.
        s.key_file = Some(pki.dir.join("nope.key"));
        assert!(TlsContext::new(&s)
            .unwrap_err()
            .to_string()
            .contains("nope.key"));
        std::fs::write(pki.dir.join("empty.pem"), "").unwrap();
        let e = TlsContext::new(&trusting(&pki.dir.join("empty.pem")))
            .unwrap_err()
            .to_string();
        assert!(e.contains("no CERTIFICATE"), "{e}");
        let half = TlsSettings {
            cert_file: Some(cert),
            ..trusting(&pki.ca_file())
        };
        assert!(TlsContext::new(&half)
            .unwrap_err()
            .to_string()
            .contains("go together"));
        assert!(server_name("bad name!").is_err());
        assert!(server_name("[::1]").is_ok());
    }

    #[test]
    fn dates_are_printed_in_utc() {
        assert_eq!(utc(0), "1970-01-01 00:00:00 UTC");
        assert_eq!(utc(951_782_400), "2000-02-29 00:00:00 UTC");
        assert_eq!(utc(4_102_444_799), "2099-12-31 23:59:59 UTC");
    }
}
