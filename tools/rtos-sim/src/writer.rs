//! How the simulated RTOS stores its frame counters.
//!
//! A 64-bit core publishes a counter in one store. A 32-bit core (the
//! Cortex-M/R cores of the boards we serve) writes the 64-bit field as two
//! 32-bit stores: protocol 1.0 asked for the low word, then the high word,
//! and a reader between the two sees a pair that never existed, which at a
//! carry (every 2^32 frames) is 2^32 behind the truth. [`CounterStore::Split32`]
//! plays such a core, with a pause between the two stores so that Linux's
//! readings fall between them often, which is what protocol 1.1's reader
//! must survive (`kmod-snd-voip/logic/counter.rs`).

use std::sync::atomic::Ordering;
use std::time::Duration;

use crate::region::RingIo;

/// The way counters are published.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum CounterStore {
    /// One 64-bit store (a 64-bit core).
    #[default]
    Atomic64,
    /// A 32-bit core: the low word (release: it publishes the data or the
    /// room), then, `gap` later, the high word.
    Split32 {
        /// Time between the two stores.
        gap: Duration,
    },
}

impl CounterStore {
    /// A 32-bit writer with `gap_us` microseconds between its two stores.
    pub fn split32(gap_us: u64) -> Self {
        CounterStore::Split32 {
            gap: Duration::from_micros(gap_us),
        }
    }

    /// Publishes `value` into the 64-bit counter field at header offset
    /// `field` (`off::WRITE_FRAMES` or `off::READ_FRAMES`) of `io`.
    pub fn publish(&self, io: &RingIo<'_>, field: usize, value: u64) {
        match *self {
            CounterStore::Atomic64 => io.u64(field).store(value, Ordering::Release),
            CounterStore::Split32 { gap } => {
                io.u32(field).store(value as u32, Ordering::Release);
                if !gap.is_zero() {
                    std::thread::sleep(gap);
                }
                io.u32(field + 4)
                    .store((value >> 32) as u32, Ordering::Release);
            }
        }
    }
}
