//! TLS for SIP (RFC 3261 section 26, RFC 5630): rustls client and server
//! configurations from `[tls]`, and errors that say which check failed for
//! which name.
//!
//! rustls with the `ring` provider: no OpenSSL on the board. ring builds
//! its C and assembly with the clang the arm64 cross build already uses
//! (`scripts/xbuild-arm64.sh`); aws-lc-rs would add a cmake build of
//! AWS-LC for arm64 and was not chosen (its size was not measured). In the
//! x86_64 release binary rustls is about 0.6 MiB and ring 0.4 MiB of code
//! (symbol sizes; the stripped binary is 6.4 MiB). TLS 1.2 and 1.3 only
//! (rustls has nothing older), `[tls] min_version = "1.3"` to refuse 1.2.
//!
//! Server certificates are verified against `[tls] ca_file` (PEM), or the
//! system's roots (`/etc/ssl/certs`, via rustls-native-certs) when it is
//! absent, and checked against the name we meant to reach: the registrar's
//! host (or IP address) as configured, or the host of the URI we call. SNI
//! carries that name. `cert_file`/`key_file` give our own certificate: the
//! client certificate when a server asks for one, and the server
//! certificate of our TLS listener (without one we do not listen: requests
//! can then only come over connections we open, e.g. the registrar's).

use std::path::PathBuf;
use thiserror::Error;

#[cfg(feature = "tls")]
mod context;
#[cfg(feature = "tls")]
pub use context::{describe_alert, describe_connect_error, server_name, Acceptor, TlsContext};

#[cfg(not(feature = "tls"))]
mod absent;
#[cfg(not(feature = "tls"))]
pub use absent::{describe_alert, Acceptor, TlsContext};

/// Whether this binary has TLS (cargo feature `tls`).
pub const TLS_BUILT: bool = cfg!(feature = "tls");

/// The lowest TLS version accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum MinVersion {
    /// TLS 1.2 and 1.3.
    #[default]
    Tls12,
    /// TLS 1.3 only.
    Tls13,
}

impl std::str::FromStr for MinVersion {
    type Err = String;
    fn from_str(s: &str) -> Result<MinVersion, String> {
        match s {
            "1.2" => Ok(MinVersion::Tls12),
            "1.3" => Ok(MinVersion::Tls13),
            _ => Err(format!("'{s}' is not \"1.2\" or \"1.3\"")),
        }
    }
}

/// `[tls]`, validated.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TlsSettings {
    /// CA certificates (PEM) to trust; the system roots when `None`.
    pub ca_file: Option<PathBuf>,
    /// Our certificate chain (PEM), leaf first.
    pub cert_file: Option<PathBuf>,
    /// Its private key (PEM: PKCS#8, PKCS#1 or SEC1); must not be readable
    /// by group or others.
    pub key_file: Option<PathBuf>,
    /// Lowest version accepted.
    pub min_version: MinVersion,
}

/// Why the TLS set-up failed (at start, before anything is sent).
#[derive(Debug, Error)]
pub enum TlsError {
    /// A file could not be read.
    #[error("{0}: {1}")]
    Read(PathBuf, std::io::Error),
    /// A file holds no usable PEM item of the kind needed.
    #[error("{0}: {1}")]
    Pem(PathBuf, String),
    /// The key file is readable by group or others.
    #[error("{0} must not be readable by group or others (chmod 600)")]
    KeyMode(PathBuf),
    /// The system has no usable root certificate.
    #[error("no [tls] ca_file and no system root certificates found ({0})")]
    NoRoots(String),
    /// rustls refused the configuration (e.g. the key does not match the certificate).
    #[error("{0}")]
    Config(String),
    /// A name that is neither a DNS name nor an IP address.
    #[error("'{0}' is not a valid TLS server name")]
    Name(String),
    /// This voipbridge was built without TLS.
    #[error("this voipbridge was built without TLS (cargo feature \"tls\"): use transport \"udp\" or \"tcp\"")]
    NotBuilt,
}
