//! [`crate::tls`] in a voipbridge built without the `tls` feature: the
//! types exist so the transport compiles unchanged, but none can be made
//! (configuration refuses `transport = "tls"` with
//! [`super::TlsError::NotBuilt`]), so the TLS paths are unreachable and
//! the compiler knows it.

use super::{TlsError, TlsSettings};

/// No TLS configuration can exist in this build.
#[derive(Debug, Clone)]
pub enum TlsContext {}

impl TlsContext {
    /// Always [`TlsError::NotBuilt`].
    pub fn new(_: &TlsSettings) -> Result<TlsContext, TlsError> {
        Err(TlsError::NotBuilt)
    }

    /// Unreachable: no value exists.
    pub fn acceptor(&self) -> Option<Acceptor> {
        match *self {}
    }

    /// Unreachable: no value exists.
    pub fn trust(&self) -> &str {
        match *self {}
    }
}

/// No TLS listener can exist in this build.
#[derive(Debug, Clone)]
pub enum Acceptor {}

/// No TLS alert can end a connection in this build.
pub fn describe_alert(_: &std::io::Error) -> Option<String> {
    None
}
