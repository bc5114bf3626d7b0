//! Host build of the snd-voip kernel module's pure logic.
//!
//! The kernel module includes the same files (`logic/*.rs`) with `#[path]`;
//! this crate compiles them for the host so they are unit- and
//! property-tested with `cargo test`.
#![no_std]

#[path = "logic/clock.rs"]
pub mod clock;
#[path = "logic/counter.rs"]
pub mod counter;
#[path = "logic/fifo.rs"]
pub mod fifo;
#[path = "logic/follow.rs"]
pub mod follow;
#[path = "logic/format.rs"]
pub mod format;
#[path = "logic/ring.rs"]
pub mod ring;
