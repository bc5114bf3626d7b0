//! SIP signalling, one module per RFC 3261 layer, each sans-IO:
//! messages ([`message`], [`uri`]), transactions ([`transaction`]),
//! dialogs ([`dialog`]), registration ([`registration`]) with digest
//! authentication ([`digest`]), INVITE sessions ([`session`]) with SDP
//! ([`sdp`]) and offer/answer ([`offer_answer`]), the answer policy
//! ([`policy`]), and the user agent that routes between them ([`ua`]).

pub mod dialog;
pub mod digest;
pub mod message;
pub mod offer_answer;
pub mod policy;
mod registration;
pub mod sdp;
mod session;
pub mod stream;
pub mod transaction;
pub mod ua;
pub mod uri;
