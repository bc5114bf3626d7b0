//! Model check of the RTOS FIFO protocol (1.1) with loom: every
//! interleaving of the two sides of each ring, under the C11 memory model
//! (loom explores the weak orderings acquire/release permit), across the
//! 2^32 carry of the counters.
//!
//! Both rings are modelled with the protocol's roles:
//!
//! - microphone: the RTOS produces and publishes its write counter as a
//!   32-bit core does, the low word then the high word (two stores, the low
//!   one with release); Linux consumes, reads the low word with acquire and
//!   the high word after it, extends it with [`PeerCounter`] and publishes
//!   its read counter in one 64-bit store with release, after the data;
//! - speaker: Linux produces (data, then its 64-bit write counter with
//!   release); the RTOS consumes with 32-bit arithmetic on the low words
//!   (`write - read` wrapping) and publishes its read counter low word
//!   then high word; Linux reads it with [`PeerCounter`] to know the room.
//!
//! Each frame carries its own frame number, so the checks are exact: the
//! consumer gets every frame once, in order, never a slot the producer has
//! not finished or has already reused, and Linux's reading of the other
//! side is always plausible (never a transient or a break).

use loom::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use loom::sync::Arc;
use loom::thread;
use snd_voip_logic::counter::{PeerCounter, Reading};

/// Frames in the modelled ring: small, so a short run wraps it often.
const CAP: u64 = 2;
/// Frames moved per run.
const FRAMES: u64 = 3;

struct Ring {
    data: [AtomicU32; CAP as usize],
    /// The counter a 32-bit RTOS writes as two words.
    rtos_lo: AtomicU32,
    rtos_hi: AtomicU32,
    /// The counter Linux (64-bit) writes in one store.
    linux: AtomicU64,
}

impl Ring {
    fn new(start: u64) -> Self {
        Ring {
            // No frame number a run uses.
            data: [AtomicU32::new(0xdead_beef), AtomicU32::new(0xdead_beef)],
            rtos_lo: AtomicU32::new(start as u32),
            rtos_hi: AtomicU32::new((start >> 32) as u32),
            linux: AtomicU64::new(start),
        }
    }

    fn slot(&self, frame: u64) -> &AtomicU32 {
        &self.data[(frame % CAP) as usize]
    }

    /// The RTOS publishes its counter: low word (release: the data or the
    /// consumption before it is visible to whoever sees it), then high word.
    fn rtos_publish(&self, v: u64) {
        self.rtos_lo.store(v as u32, Ordering::Release);
        self.rtos_hi.store((v >> 32) as u32, Ordering::Release);
    }

    /// Linux reads the RTOS counter: low word with acquire, high word after.
    fn linux_read_peer(&self, c: &mut PeerCounter, max: u64) -> u64 {
        let lo = self.rtos_lo.load(Ordering::Acquire);
        let hi = self.rtos_hi.load(Ordering::Relaxed);
        match c.update(lo, Some(hi), max) {
            Reading::Fresh(v) => v,
            other => panic!("implausible reading of an honest RTOS: {other:?}"),
        }
    }
}

fn model(start: u64, f: fn(u64)) {
    let mut b = loom::model::Builder::new();
    b.preemption_bound = Some(3);
    b.check(move || f(start));
}

/// Microphone ring: RTOS producer, Linux consumer.
fn microphone(start: u64) {
    let ring = Arc::new(Ring::new(start));
    let rtos = {
        let ring = Arc::clone(&ring);
        thread::spawn(move || {
            let mut w = start;
            while w < start + FRAMES {
                // A 32-bit core: the low word of Linux's read counter.
                let r = ring.linux.load(Ordering::Acquire) as u32;
                let fill = (w as u32).wrapping_sub(r);
                assert!(u64::from(fill) <= CAP, "the RTOS sees fill {fill}");
                if u64::from(fill) == CAP {
                    thread::yield_now();
                    continue;
                }
                ring.slot(w).store(w as u32, Ordering::Relaxed);
                w += 1;
                ring.rtos_publish(w);
            }
        })
    };
    // Linux: anchored at the start as the driver does at a stream's start.
    let mut r = start;
    let mut c = PeerCounter::anchor(ring.rtos_lo.load(Ordering::Acquire), r, r + CAP).unwrap();
    while r < start + FRAMES {
        let w = ring.linux_read_peer(&mut c, r + CAP);
        assert!(w >= r && w - r <= CAP);
        if w == r {
            thread::yield_now();
            continue;
        }
        for f in r..w {
            assert_eq!(ring.slot(f).load(Ordering::Relaxed), f as u32, "frame {f}");
        }
        r = w;
        // Data read before the slots are handed back (release).
        ring.linux.store(r, Ordering::Release);
    }
    rtos.join().unwrap();
}

/// Speaker ring: Linux producer, RTOS consumer.
fn speaker(start: u64) {
    let ring = Arc::new(Ring::new(start));
    let rtos = {
        let ring = Arc::clone(&ring);
        thread::spawn(move || {
            let mut r = start;
            while r < start + FRAMES {
                let w = ring.linux.load(Ordering::Acquire) as u32;
                let fill = w.wrapping_sub(r as u32);
                assert!(u64::from(fill) <= CAP, "the RTOS sees fill {fill}");
                if fill == 0 {
                    thread::yield_now();
                    continue;
                }
                assert_eq!(ring.slot(r).load(Ordering::Relaxed), r as u32, "frame {r}");
                r += 1;
                ring.rtos_publish(r);
            }
        })
    };
    let mut w = start;
    let (min, max) = (w.saturating_sub(CAP), w);
    let mut c = PeerCounter::anchor(ring.rtos_lo.load(Ordering::Acquire), min, max).unwrap();
    while w < start + FRAMES {
        let r = ring.linux_read_peer(&mut c, w);
        assert!(r <= w && w - r <= CAP);
        if w - r == CAP {
            thread::yield_now();
            continue;
        }
        ring.slot(w).store(w as u32, Ordering::Relaxed);
        w += 1;
        // Data before the counter that publishes it (release).
        ring.linux.store(w, Ordering::Release);
    }
    rtos.join().unwrap();
}

#[test]
fn microphone_ring_across_the_carry() {
    model((1 << 32) - 2, microphone);
}

#[test]
fn speaker_ring_across_the_carry() {
    model((1 << 32) - 2, speaker);
}

#[test]
fn speaker_ring_at_an_arbitrary_count() {
    model(7 << 32, speaker);
}

/// The model checks something: a producer that publishes its counter
/// before the data (no release ordering of the data) is caught.
#[test]
#[should_panic]
fn a_producer_that_publishes_before_the_data_is_caught() {
    model((1 << 32) - 1, |start| {
        let ring = Arc::new(Ring::new(start));
        let rtos = {
            let ring = Arc::clone(&ring);
            thread::spawn(move || {
                let w = start;
                ring.rtos_publish(w + 1);
                ring.slot(w).store(w as u32, Ordering::Relaxed);
            })
        };
        let r = start;
        let mut c = PeerCounter::anchor(start as u32, r, r + CAP).unwrap();
        let w = ring.linux_read_peer(&mut c, r + CAP);
        for f in r..w {
            assert_eq!(ring.slot(f).load(Ordering::Relaxed), f as u32);
        }
        rtos.join().unwrap();
    });
}
