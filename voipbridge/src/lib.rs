//! voipbridge: a SIP user agent for headless boards that bridges the snd-voip
//! card's bridge side (or WAV files and tones) to RTP calls.
//!
//! The protocol cores are sans-IO state machines ([`sip`], [`media`]) driven
//! by a thin tokio layer, so they are tested deterministically with virtual time.

pub mod media;
pub mod sip;
