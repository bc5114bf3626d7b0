//! The evaluation bench of the echo cancellers (the `aec-eval` binary
//! prints its tables; `tests/thresholds.rs` holds snd-voip-aec to the
//! issue's figures).

pub mod backends;
pub mod scenario;
