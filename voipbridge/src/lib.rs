//! voipbridge: a SIP user agent for headless boards that bridges the snd-voip
//! card's bridge side (or WAV files and tones) to RTP calls.
//!
//! The protocol cores are sans-IO state machines ([`sip::ua`],
//! [`media::jitter`], [`media::rtp`]) driven by a thin I/O layer
//! ([`agent`] for signalling on tokio, the one [`media::engine`] thread for
//! every call's audio),
//! so they are tested deterministically with virtual time.

pub mod agent;
pub mod ban;
pub mod config;
pub mod control;
pub mod dsp;
pub mod fuzzing;
pub mod media;
pub mod sip;
pub mod srtp;
pub mod tls;
pub mod transport;
