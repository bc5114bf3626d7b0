//! The FIFO counter reader (protocol 1.1): extension of the low word, the
//! carry of a 32-bit writer, transients and breaks.

use proptest::prelude::*;
use snd_voip_logic::counter::*;
use snd_voip_logic::fifo::{write_header, Ring};
use snd_voip_logic::format::Format;

const CARRY: u64 = 1 << 32;

fn ring(to_linux: bool, ring_bytes: u32) -> Ring {
    let mut b = vec![0u8; 256 + ring_bytes as usize];
    write_header(&mut b, ring_bytes, 160, Format::S16Le, 8000, 1, to_linux);
    Ring::validate(&b, b.len()).unwrap()
}

/// What a reader sees of a counter `v` that a two-store writer (low word,
/// then high word) is moving from `old` to `v`, when it reads the low word
/// after the writer's low store but the high word before the high store.
fn torn_lo_then_hi(old: u64, v: u64) -> (u32, u32) {
    (v as u32, (old >> 32) as u32)
}

/// Protocol 1.0's reader: re-read the 64-bit value until two reads agree.
/// Both reads can fall between the writer's two stores.
fn old_two_equal_reads(reads: &[(u32, u32)]) -> u64 {
    let v = |p: (u32, u32)| (u64::from(p.1) << 32) | u64::from(p.0);
    let mut last = v(reads[0]);
    for &r in &reads[1..] {
        if v(r) == last {
            break;
        }
        last = v(r);
    }
    last
}

#[test]
fn extension_picks_the_value_in_range() {
    assert_eq!(extend(5, 0, 10), Some(5));
    assert_eq!(extend(11, 0, 10), None);
    // Across the carry: the low word wrapped, the value did not.
    assert_eq!(extend(3, CARRY - 5, CARRY + 100), Some(CARRY + 3));
    assert_eq!(
        extend(u32::MAX - 1, CARRY - 5, CARRY + 100),
        Some(CARRY - 2)
    );
    // Behind the range (a counter that went back) is not in it.
    assert_eq!(extend(u32::MAX - 10, CARRY - 5, CARRY + 100), None);
    // Any 64-bit neighbourhood.
    let base = 7 * CARRY + 123;
    assert_eq!(extend((base + 40) as u32, base, base + 40), Some(base + 40));
    assert_eq!(
        extend(0, u64::MAX - 3, u64::MAX),
        None,
        "no value past u64::MAX"
    );
}

/// The defect of issue 12: at a carry, a lo-then-hi writer's torn pair has
/// the old high word before and after the new low word. Two equal reads
/// (or high-low-high) accept a value 2^32 behind the truth; extending the
/// low word from the last accepted value gives the right one.
#[test]
fn a_torn_carry_is_read_right() {
    let old = CARRY - 80; // the writer's previous value
    let new = CARRY + 80; // one 160-frame period later
    let torn = torn_lo_then_hi(old, new);
    // The high word reads the same before and after the low word.
    let seen_by_old_reader = old_two_equal_reads(&[torn, torn]);
    assert_eq!(
        seen_by_old_reader,
        new - CARRY,
        "the 1.0 reader goes 2^32 back"
    );
    // Linux (a consumer at `old - 100`, ring of 2048 frames) extends the low word.
    let r = ring(true, 4096);
    let linux_read = old - 100;
    let (min, max) = r.peer_bounds(linux_read);
    let mut c = PeerCounter::anchor(old as u32, min, max).unwrap();
    assert_eq!(c.last(), old);
    let (_, max) = r.peer_bounds(linux_read);
    assert_eq!(c.update(torn.0, Some(torn.1), max), Reading::Fresh(new));
    // The stale high word is within the writer's window: not a mismatch.
    assert_eq!(c.high_mismatches(), 0);
    // Once the writer's high store lands, the same value.
    assert_eq!(
        c.update(new as u32, Some((new >> 32) as u32), max),
        Reading::Fresh(new)
    );
    // A hi-then-lo writer: high word already one ahead of a stale low word.
    let mut d = PeerCounter::anchor((CARRY - 10) as u32, CARRY - 20, CARRY + 1000).unwrap();
    assert_eq!(
        d.update((CARRY - 10) as u32, Some(1), CARRY + 1000),
        Reading::Fresh(CARRY - 10)
    );
    assert_eq!(d.high_mismatches(), 0);
}

#[test]
fn a_high_word_far_off_is_counted_not_fatal() {
    let mut c = PeerCounter::anchor(10, 0, 1000).unwrap();
    assert_eq!(c.update(20, Some(7), 1000), Reading::Fresh(20));
    assert_eq!(c.high_mismatches(), 1);
    assert_eq!(
        c.update(30, None, 1000),
        Reading::Fresh(30),
        "1.1 rings: no high word"
    );
    assert_eq!(c.high_mismatches(), 1);
}

#[test]
fn an_implausible_sample_is_a_transient_and_a_run_of_them_a_break() {
    let mut c = PeerCounter::anchor(100, 0, 2048).unwrap();
    // One garbage low word (a counter gone back): the last value stands.
    assert_eq!(c.update(50, None, 2148), Reading::Transient(100));
    assert_eq!(
        c.update(160, None, 2148),
        Reading::Fresh(160),
        "recovers at once"
    );
    assert_eq!(c.transients(), 1);
    // Beyond the bound (more than a ring ahead of Linux).
    assert_eq!(c.update(5000, None, 2148), Reading::Transient(160));
    assert_eq!(c.update(300, None, 2148), Reading::Fresh(300));
    // A run of them: broken at the limit, not before.
    for i in 1..PeerCounter::SUSPECT_LIMIT {
        assert_eq!(
            c.update(0xdead_0000, None, 2348),
            Reading::Transient(300),
            "sample {i}"
        );
    }
    assert_eq!(c.update(0xdead_0000, None, 2348), Reading::Broken);
    assert_eq!(c.update(0xdead_0000, None, 2348), Reading::Broken);
    assert_eq!(Reading::Broken.value(), None);
    // A repaired counter is accepted again (the driver decides whether a
    // broken ring stays silent until the stream restarts).
    assert_eq!(c.update(400, None, 2348), Reading::Fresh(400));
}

#[test]
fn anchors_refuse_impossible_counters() {
    let mic = ring(true, 4096); // 2048 frames
                                // Producer one behind Linux's read counter (read beyond write).
    let (min, max) = mic.peer_bounds(1000);
    assert_eq!(PeerCounter::anchor(999, min, max), None);
    // More than a ring ahead.
    assert_eq!(PeerCounter::anchor(1000 + 2049, min, max), None);
    assert_eq!(
        PeerCounter::anchor(1000 + 2048, min, max).map(|c| c.last()),
        Some(3048)
    );
    let spk = ring(false, 4096);
    // Consumer ahead of Linux's write counter, or more than a ring behind.
    let (min, max) = spk.peer_bounds(5000);
    assert_eq!(PeerCounter::anchor(5001, min, max), None);
    assert_eq!(PeerCounter::anchor(5000 - 2049, min, max), None);
    assert_eq!(
        PeerCounter::anchor(5000 - 2048, min, max).map(|c| c.last()),
        Some(2952)
    );
    // Early on (Linux wrote less than a ring) the range starts at 0.
    assert_eq!(spk.peer_bounds(100), (0, 100));
    assert_eq!(spk.fill_from(100, 40), 60);
    assert_eq!(mic.fill_from(100, 140), 40);
}

#[test]
fn fill_compares_low_words() {
    let r = ring(true, 4096);
    assert_eq!(r.fill(CARRY + 10, CARRY - 10), Ok(20), "across the carry");
    // A 1.1 writer that leaves its high word at zero.
    assert_eq!(r.fill(10, CARRY - 10), Ok(20));
    assert!(r.fill(CARRY - 11, CARRY - 10).is_err(), "read beyond write");
    assert!(
        r.fill(CARRY + 2039, CARRY - 10).is_err(),
        "more than a ring"
    );
}

proptest! {
    /// An honest producer and consumer, each side's counter written as two
    /// 32-bit stores (either order) and read by Linux at arbitrary moments
    /// (also between the two stores), from any start including just below
    /// a carry: Linux's reading is always the true value, never a
    /// transient, and never a high-word mismatch.
    #[test]
    fn honest_sides_always_read_exactly(
        start in prop_oneof![0u64..1 << 40, (CARRY - 5000)..(CARRY + 10), (7 * CARRY - 3000)..(7 * CARRY)],
        mic: bool,
        lo_first: bool,
        steps in proptest::collection::vec((0u64..=2048, 0u64..=2048, 0u8..3), 1..300),
    ) {
        let r = ring(mic, 4096);
        let cap = r.capacity();
        // Producer and consumer counters; Linux owns one of them.
        let (mut w, mut rd) = (start + cap / 2, start);
        let linux_own = |w: u64, rd: u64| if mic { rd } else { w };
        let peer_of = |w: u64, rd: u64| if mic { w } else { rd };
        let (min, max) = r.peer_bounds(linux_own(w, rd));
        let mut c = PeerCounter::anchor(peer_of(w, rd) as u32, min, max).unwrap();
        prop_assert_eq!(c.last(), peer_of(w, rd));
        for (produce, consume, phase) in steps {
            let old_peer = peer_of(w, rd);
            w += produce.min(cap - (w - rd));
            rd += consume.min(w - rd);
            let peer = peer_of(w, rd);
            // What Linux reads of the peer's counter: after both stores, or
            // between them (the torn pair of the store order in use).
            let (lo, hi) = match phase {
                0 => (peer as u32, (peer >> 32) as u32),
                _ if lo_first => (peer as u32, (old_peer >> 32) as u32),
                _ => (old_peer as u32, (peer >> 32) as u32),
            };
            let torn_stale = phase != 0 && !lo_first;
            let (_, max) = r.peer_bounds(linux_own(w, rd));
            let got = c.update(lo, Some(hi), max);
            let want = if torn_stale { old_peer } else { peer };
            prop_assert_eq!(got, Reading::Fresh(want));
            prop_assert_eq!(r.fill_from(linux_own(w, rd), want), if mic { want.saturating_sub(rd) } else { w - want });
        }
        prop_assert_eq!(c.high_mismatches(), 0);
        prop_assert_eq!(c.transients(), 0);
    }

    /// Whatever the other core writes, the reader's value stays within the
    /// bounds Linux's counter sets and never goes back.
    #[test]
    fn arbitrary_words_stay_in_bounds(
        start in any::<u32>(),
        words in proptest::collection::vec((any::<u32>(), any::<u32>(), 0u64..4096), 1..200),
    ) {
        let mut linux = u64::from(start);
        let mut c = PeerCounter::anchor(start, linux, linux + 2048).unwrap();
        for (lo, hi, advance) in words {
            // Linux reads no further than the producer wrote.
            linux += advance.min(c.last() - linux);
            let last = c.last();
            let max = linux + 2048;
            match c.update(lo, Some(hi), max) {
                Reading::Fresh(v) => prop_assert!(v >= last && v <= max),
                Reading::Transient(v) => prop_assert_eq!(v, last),
                Reading::Broken => prop_assert_eq!(c.last(), last),
            }
        }
    }
}
