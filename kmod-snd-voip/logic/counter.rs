// SPDX-License-Identifier: GPL-2.0
//! Reading the other side's frame counter so that it cannot tear (FIFO
//! protocol 1.1).
//!
//! Each ring has two free-running frame counters in 64-bit fields, one per
//! side. A 32-bit RTOS core writes its counter as two 32-bit stores; in
//! protocol 1.0 that was the low word then the high word. A reader that
//! takes the two halves at different times can see a pair that never
//! existed, and at a carry (every 2^32 frames: 24.9 h at 48 kHz, 6.2 days
//! at 8 kHz) re-reading does not help: a torn pair read around the carry
//! has the old high word before *and* after the new low word, so "two equal
//! reads" or "high, low, high" both accept a value 2^32 behind the truth.
//!
//! Protocol 1.1 makes the low word the counter: one aligned 32-bit store
//! publishes it (atomic on every core), it wraps at 2^32, and the high word
//! is optional for writers. A reader keeps the 64-bit value it last accepted
//! and extends the new low word by the forward distance from it, which the
//! protocol bounds (never more than a ring: the producer cannot get further
//! ahead of the consumer, nor the consumer of the producer); the high word,
//! where a 1.0 writer maintains it, is only cross-checked. A low word that
//! gives no plausible value is a *transient* (the last accepted value
//! stands); only [`PeerCounter::SUSPECT_LIMIT`] in a row make the ring
//! broken.
//!
//! Linux never reads back its own counter while it streams: it is the
//! counter's only writer and keeps it. So every value Linux uses is either
//! its own or an extension of the other side's low word inside bounds that
//! its own counter sets ([`crate::fifo::Ring::peer_bounds`]).
//!
//! Pure logic: compiled into the kernel module and the host tests (unit,
//! property and loom model tests in `tests/`).

/// The value in `min..=max` whose low 32 bits are `lo`, if there is one.
/// `max - min` must be below 2^32 for the answer to be unique (a ring is
/// far smaller); a wider range gives the lowest candidate.
pub fn extend(lo: u32, min: u64, max: u64) -> Option<u64> {
    let d = u64::from(lo.wrapping_sub(min as u32));
    let v = min.checked_add(d)?;
    (v <= max).then_some(v)
}

/// Whether a high word read right after the low word agrees with the
/// extended value `v`. A two-store writer may be between its stores at a
/// carry: low first, the high word is still one behind; high first, it is
/// already one ahead. Anything else is a high word that does not count.
pub fn high_word_agrees(v: u64, hi: u32) -> bool {
    let h = (v >> 32) as u32;
    hi == h || hi == h.wrapping_sub(1) || hi == h.wrapping_add(1)
}

/// One reading of the other side's counter.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reading {
    /// A plausible value (at or beyond the last one accepted).
    Fresh(u64),
    /// The low word gave no plausible value; the last accepted one stands.
    Transient(u64),
    /// [`PeerCounter::SUSPECT_LIMIT`] implausible readings in a row: the
    /// ring is broken (or was re-initialised under Linux's feet).
    Broken,
}

impl Reading {
    /// The value to use now, unless the ring is broken.
    pub fn value(self) -> Option<u64> {
        match self {
            Reading::Fresh(v) | Reading::Transient(v) => Some(v),
            Reading::Broken => None,
        }
    }
}

/// The other side's counter as Linux tracks it.
///
/// # Invariants
///
/// `last` never decreases; `suspect` counts the implausible readings since
/// the last plausible one and stays below [`Self::SUSPECT_LIMIT`] while the
/// counter is not broken.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PeerCounter {
    last: u64,
    suspect: u32,
    high_mismatches: u32,
    transients: u32,
}

impl PeerCounter {
    /// Implausible readings in a row that make the ring broken. Linux reads
    /// at every period of the stream, so this is eight periods (8 ms at the
    /// shortest): far longer than a writer stays between two stores.
    pub const SUSPECT_LIMIT: u32 = 8;

    /// Starts tracking at the low word `lo` read at the start of a stream,
    /// whose value must lie in `min..=max` (the ring's
    /// [`crate::fifo::Ring::peer_bounds`] for Linux's counter). `None`
    /// when it does not: counters no honest pair of sides can produce.
    pub fn anchor(lo: u32, min: u64, max: u64) -> Option<Self> {
        extend(lo, min, max).map(|last| PeerCounter {
            last,
            suspect: 0,
            high_mismatches: 0,
            transients: 0,
        })
    }

    /// The last value accepted.
    pub fn last(&self) -> u64 {
        self.last
    }

    /// Readings whose high word disagreed with the value (1.0 rings only).
    pub fn high_mismatches(&self) -> u32 {
        self.high_mismatches
    }

    /// Implausible readings seen (each one a transient, or the last of a
    /// run that broke the ring).
    pub fn transients(&self) -> u32 {
        self.transients
    }

    /// Takes a new reading: the low word `lo`, the high word read after it
    /// when the writer maintains one (`None` on 1.1 rings, whose high word
    /// means nothing), and the most the counter can be now (`max`, from
    /// Linux's own counter). Monotonic: a value below the last one is
    /// implausible too.
    pub fn update(&mut self, lo: u32, hi: Option<u32>, max: u64) -> Reading {
        match extend(lo, self.last, max) {
            Some(v) => {
                self.suspect = 0;
                if hi.is_some_and(|h| !high_word_agrees(v, h)) {
                    self.high_mismatches = self.high_mismatches.wrapping_add(1);
                }
                self.last = v;
                Reading::Fresh(v)
            }
            None => {
                self.transients = self.transients.wrapping_add(1);
                self.suspect = self.suspect.saturating_add(1);
                if self.suspect >= Self::SUSPECT_LIMIT {
                    Reading::Broken
                } else {
                    Reading::Transient(self.last)
                }
            }
        }
    }
}
