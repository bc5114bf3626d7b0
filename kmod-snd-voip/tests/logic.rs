//! Unit and property tests of the kernel module's pure logic.

use core::num::{NonZeroU32, NonZeroU64};
use proptest::prelude::*;
use snd_voip_logic::clock::*;
use snd_voip_logic::format::*;
use snd_voip_logic::ring::*;

fn nz(r: u32) -> NonZeroU32 {
    NonZeroU32::new(r).unwrap()
}

#[test]
fn frames_in_ns_matches_dummy_formula() {
    assert_eq!(frames_in_ns(0, nz(48000)), 0);
    assert_eq!(frames_in_ns(NSEC_PER_SEC, nz(48000)), 48000);
    assert_eq!(frames_in_ns(20_000_000, nz(8000)), 160);
    // 44.1 kHz: 1 frame = 22675.7 ns
    assert_eq!(frames_in_ns(22_675, nz(44100)), 0);
    assert_eq!(frames_in_ns(22_676, nz(44100)), 1);
}

#[test]
fn no_overflow_after_years() {
    let ten_years = 10 * 365 * 24 * 3600 * NSEC_PER_SEC;
    assert_eq!(
        frames_in_ns(ten_years, nz(48000)),
        10 * 365 * 24 * 3600 * 48000
    );
}

#[test]
fn pause_keeps_position_and_resume_continues() {
    let mut c = StreamClock::start(nz(8000), 1_000);
    assert_eq!(c.position(1_000 + NSEC_PER_SEC), 8000);
    c.pause(1_000 + NSEC_PER_SEC);
    assert_eq!(c.position(5 * NSEC_PER_SEC), 8000);
    assert_eq!(c.time_of_frame(9000), None);
    c.resume(10 * NSEC_PER_SEC);
    assert_eq!(c.position(10 * NSEC_PER_SEC), 8000);
    assert_eq!(c.position(10 * NSEC_PER_SEC + NSEC_PER_SEC / 2), 12000);
    assert_eq!(
        c.time_of_frame(12000),
        Some(10 * NSEC_PER_SEC + NSEC_PER_SEC / 2)
    );
}

#[test]
fn period_crossing() {
    let p = NonZeroU64::new(160).unwrap();
    assert!(!crossed_period(0, 159, p));
    assert!(crossed_period(0, 160, p));
    assert!(crossed_period(159, 161, p));
    assert!(!crossed_period(160, 319, p));
    assert!(!crossed_period(200, 200, p));
    assert_eq!(next_period_boundary(0, p), 160);
    assert_eq!(next_period_boundary(160, p), 320);
    assert_eq!(next_period_boundary(319, p), 320);
}

#[test]
fn transfer_rules() {
    assert_eq!(
        plan_transfer(10, 10, true),
        Transfer {
            discard: 0,
            silence: 0,
            copy: 10
        }
    );
    assert_eq!(
        plan_transfer(12, 10, true),
        Transfer {
            discard: 2,
            silence: 0,
            copy: 10
        }
    );
    assert_eq!(
        plan_transfer(8, 10, true),
        Transfer {
            discard: 0,
            silence: 2,
            copy: 8
        }
    );
    assert_eq!(
        plan_transfer(8, 10, false),
        Transfer {
            discard: 8,
            silence: 10,
            copy: 0
        }
    );
}

#[test]
fn segments_split_at_both_wraps() {
    let segs: Vec<_> = Segments::new(6, 8, 1, 4, 5).collect();
    assert_eq!(
        segs,
        vec![
            Segment {
                src: 6,
                dst: 1,
                len: 2
            },
            Segment {
                src: 0,
                dst: 3,
                len: 1
            },
            Segment {
                src: 1,
                dst: 0,
                len: 2
            },
        ]
    );
    assert_eq!(Segments::new(0, 0, 0, 4, 5).count(), 0);
}

#[test]
fn format_table() {
    for f in Format::ALL {
        assert_eq!(Format::from_alsa(f.to_alsa()), Some(f));
    }
    assert_eq!(Format::from_alsa(3), None);
    assert_eq!(StreamParams::new(2, 48000, 2).unwrap().frame_bytes(), 4);
    assert_eq!(StreamParams::new(20, 8000, 1).unwrap().frame_bytes(), 1);
    assert!(StreamParams::new(2, 11025, 1).is_none());
    assert!(StreamParams::new(2, 8000, 3).is_none());
    assert!(StreamParams::new(2, 8000, 0).is_none());
    for r in RATES {
        // each supported rate has its SNDRV_PCM_RATE bit set
        let bit = match r {
            8000 => 1 << 1,
            16000 => 1 << 3,
            32000 => 1 << 5,
            44100 => 1 << 6,
            48000 => 1 << 7,
            _ => unreachable!(),
        };
        assert_ne!(RATE_BITS & bit, 0);
    }
}

#[test]
fn constraint_refines_format_mask() {
    let peer = StreamParams::new(ALSA_FORMAT_MU_LAW, 8000, 1);
    let c = Constraint::from_peer(peer);
    let mut mask = [0u32; 8];
    mask[0] = (1 << 2) | (1 << 20) | (1 << 21);
    assert_eq!(c.refine_format_mask(&mut mask), Ok(true));
    assert_eq!(mask[0], 1 << 20);
    assert_eq!(c.refine_format_mask(&mut mask), Ok(false));
    let mut only_s16 = [0u32; 8];
    only_s16[0] = 1 << 2;
    assert_eq!(c.refine_format_mask(&mut only_s16), Err(EmptyMask));
    let free = Constraint::from_peer(None);
    let mut m = [0xffu32; 8];
    assert_eq!(free.refine_format_mask(&mut m), Ok(false));
}

proptest! {
    #[test]
    fn position_is_exact_and_drift_free(rate_i in 0usize..5, start in 0u64..1u64<<50, steps in proptest::collection::vec(1u64..50_000_000, 1..200)) {
        let rate = nz(RATES[rate_i]);
        let c = StreamClock::start(rate, start);
        let mut t = start;
        let mut last = 0;
        for s in steps {
            t += s;
            let p = c.position(t);
            prop_assert!(p >= last);
            last = p;
        }
        // The position never differs from the ideal real value by a frame or more.
        let ideal = (t - start) as u128 * rate.get() as u128 / 1_000_000_000u128;
        prop_assert_eq!(last as u128, ideal);
    }

    #[test]
    fn time_of_frame_is_the_first_instant(rate_i in 0usize..5, frames in 0u64..1u64<<40, start in 0u64..1u64<<50) {
        let rate = nz(RATES[rate_i]);
        let c = StreamClock::start(rate, start);
        let t = c.time_of_frame(frames).unwrap();
        prop_assert!(c.position(t) >= frames);
        if t > start {
            prop_assert!(c.position(t - 1) < frames);
        }
    }

    #[test]
    fn segments_cover_exactly_in_bounds(src_pos in 0u64..1u64<<40, src_size in 1usize..5000, dst_pos in 0u64..1u64<<40, dst_size in 1usize..5000, count in 0u64..20000) {
        let mut total = 0u64;
        let mut s = (src_pos % src_size as u64) as usize;
        let mut d = (dst_pos % dst_size as u64) as usize;
        for seg in Segments::new(src_pos, src_size, dst_pos, dst_size, count) {
            prop_assert!(seg.len > 0);
            prop_assert!(seg.src + seg.len <= src_size);
            prop_assert!(seg.dst + seg.len <= dst_size);
            prop_assert_eq!(seg.src, s);
            prop_assert_eq!(seg.dst, d);
            s = (s + seg.len) % src_size;
            d = (d + seg.len) % dst_size;
            total += seg.len as u64;
        }
        prop_assert_eq!(total, count);
    }

    #[test]
    fn transfer_conserves_frames(play in 0u64..1u64<<40, capt in 0u64..1u64<<40, connected: bool) {
        let t = plan_transfer(play, capt, connected);
        prop_assert_eq!(t.copy + t.discard, play);
        prop_assert_eq!(t.copy + t.silence, capt);
    }
}

proptest! {
    /// Two aligned clocks (a cable's ends) always advance by the same number
    /// of frames between any two instants, so the cable never drops or
    /// doubles a frame by rounding.
    #[test]
    fn aligned_clocks_tick_together(rate_i in 0usize..5, epoch in 0u64..1u64<<50, later in 0u64..10_000_000_000u64,
                                    steps in proptest::collection::vec(1u64..30_000_000, 1..200)) {
        let rate = nz(RATES[rate_i]);
        let a = StreamClock::start(rate, epoch);
        let start_b = epoch + later;
        let b = StreamClock::start_aligned(rate, a.epoch(), start_b);
        prop_assert_eq!(b.position(start_b), 0);
        let (mut pa, mut pb) = (a.position(start_b), 0);
        let mut t = start_b;
        for s in steps {
            t += s;
            let (na, nb) = (a.position(t), b.position(t));
            prop_assert_eq!(na - pa, nb - pb);
            pa = na;
            pb = nb;
        }
    }

    /// Playback Sink = Both: the application's playback follows the RTOS
    /// clock (its shift changes every second or so) while the bridge's
    /// capture reads the same cable. A capture started with the playback
    /// (`start_with`) and shifted with it at the same instants advances by
    /// exactly as many frames as the playback at every update, whatever the
    /// shifts: nothing to drop or insert on the bridge path.
    #[test]
    fn clocks_shifted_together_tick_together(rate_i in 0usize..5, epoch in 0u64..1u64<<50, later in 0u64..10_000_000_000u64,
                                             steps in proptest::collection::vec((1u64..30_000_000, proptest::option::of(-10_000i32..10_000)), 1..300)) {
        let rate = nz(RATES[rate_i]);
        let mut play = StreamClock::start(rate, epoch);
        let start = epoch + later;
        play.set_shift_ppm(-700, start);
        let mut capt = StreamClock::start_with(&play, start);
        prop_assert_eq!(capt.position(start), 0);
        let (mut pp, mut pc) = (play.position(start), 0);
        let mut t = start;
        for (dt, shift) in steps {
            t += dt;
            let (np, nc) = (play.position(t), capt.position(t));
            prop_assert_eq!(np - pp, nc - pc, "at {} ns", t);
            pp = np;
            pc = nc;
            if let Some(ppm) = shift {
                play.set_shift_ppm(ppm, t);
                capt.set_shift_ppm(ppm, t);
                // Re-anchoring may step both by the same frame, never apart.
                prop_assert_eq!(play.position(t) - pp, capt.position(t) - pc, "at the shift");
            }
        }
        // Paused and resumed with the playback: still together.
        capt.pause(t);
        t += 12_345_678;
        capt.resume_with(&play, t);
        let (mut pp, mut pc) = (play.position(t), capt.position(t));
        for dt in [1u64, 125_000, 999_999, 20_000_000] {
            t += dt;
            let (np, nc) = (play.position(t), capt.position(t));
            prop_assert_eq!(np - pp, nc - pc);
            pp = np;
            pc = nc;
        }
    }

    #[test]
    fn aligned_resume_keeps_position(rate_i in 0usize..5, epoch in 0u64..1u64<<40, run in 0u64..5_000_000_000u64, gap in 0u64..5_000_000_000u64) {
        let rate = nz(RATES[rate_i]);
        let peer = StreamClock::start(rate, epoch);
        let mut c = StreamClock::start(rate, epoch);
        c.pause(epoch + run);
        let kept = c.position(epoch + run);
        c.resume_aligned(peer.epoch(), epoch + run + gap);
        prop_assert_eq!(c.position(epoch + run + gap), kept);
        let t = epoch + run + gap + 123_456_789;
        prop_assert_eq!(c.position(t) - kept, peer.position(t) - peer.position(epoch + run + gap));
        let f = kept + 1000;
        let at = c.time_of_frame(f).unwrap();
        prop_assert!(c.position(at) >= f && c.position(at - 1) < f);
    }
}
