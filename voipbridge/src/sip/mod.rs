//! SIP signalling: message layer (rsip), digest authentication, SDP, and the
//! sans-IO user agent (transactions, registration, dialogs, call table).

pub mod digest;
pub mod message;
pub mod sdp;
pub mod stream;
pub mod ua;
