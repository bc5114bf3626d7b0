//! rtos-sim: plays the RTOS (M core) side of the snd-voip audio FIFO on a
//! shared-memory region, so the kernel driver can be tested without the
//! board.
//!
//! The region holds two rings laid out as `snd_voip_logic::fifo` defines:
//! the microphone ring (RTOS to Linux) at offset 0 and the speaker ring
//! (Linux to RTOS) right after it. This crate initialises both headers
//! ([`header::init`]), runs the real-time producer and consumer
//! ([`run::run`]), decodes the headers ([`header::status`]) and writes the
//! header corruptions the kernel must refuse ([`header::corrupt`]).

pub mod echo;
pub mod error;
pub mod header;
pub mod pacing;
pub mod region;
pub mod run;
pub mod source;
pub mod wav;
pub mod writer;

pub use error::SimError;
