//! Clock following in virtual time: an RTOS producer (or consumer) whose
//! clock is off by up to +-300 ppm, against the card's stream clock steered
//! by the follower, for an hour. The ring must never overflow or underflow.

use core::num::{NonZeroU32, NonZeroU64};
use snd_voip_logic::clock::{mframes_in_ns, next_period_boundary, shifted_rate_mhz, StreamClock};
use snd_voip_logic::follow::{
    frames_in_us, rate_offset_ppm, rate_offset_tolerance_ppm, target_fill, Follower, Role,
    MAX_FOLLOW_PPM,
};

const SEC: u64 = 1_000_000_000;

struct Outcome {
    underflows: u64,
    overflows: u64,
    min_fill: u64,
    max_fill: u64,
    final_ppm: i32,
    late_mean_ppm: i64,
    /// Standard deviation of the shift over the last half hour, in ppm.
    late_sd_ppm: f64,
    late_mean_fill: u64,
    target: u64,
}

/// Runs `seconds` of virtual time. The RTOS side moves `rtos_period` chunks
/// on its own clock, `ppm` off nominal; Linux moves frames at the ticks of
/// its follower-steered clock, every `linux_period` frames, each tick late
/// by up to `jitter_ns` (a fixed pseudo-random sequence). The follower may
/// shift Linux's clock by at most `max_follow_ppm` (0: never steered).
/// The target's slack is `slack` (`None`: the default, an RTOS period).
#[allow(clippy::too_many_arguments)]
fn simulate(
    role: Role,
    rate: u32,
    ppm: i32,
    rtos_period: u64,
    linux_period: u64,
    capacity: u64,
    seconds: u64,
    jitter_ns: u64,
    max_follow_ppm: i32,
    slack: Option<u64>,
) -> Outcome {
    let rtos_rate = shifted_rate_mhz(NonZeroU32::new(rate).unwrap(), ppm);
    let target =
        target_fill(role, capacity, rtos_period, linux_period, slack).expect("ring big enough");
    // The RTOS started a while ago; Linux starts at t0 and sets up the fill
    // (skips stale microphone frames, primes the speaker ring).
    let t0 = 7 * SEC + 123_457;
    let rtos_frames = |t: u64| (mframes_in_ns(t, rtos_rate) / 1000) / rtos_period * rtos_period;
    let mut rtos_done = rtos_frames(t0);
    let (mut write, mut read) = match role {
        Role::Consumer => (rtos_done, rtos_done - target),
        Role::Producer => (target, 0),
    };
    let mut clock = StreamClock::start(NonZeroU32::new(rate).unwrap(), t0);
    let mut follower = Follower::new(rate, target, role, t0, max_follow_ppm);
    let mut linux_done = 0u64;
    let period = NonZeroU64::new(linux_period).unwrap();
    let mut out = Outcome {
        underflows: 0,
        overflows: 0,
        min_fill: u64::MAX,
        max_fill: 0,
        final_ppm: 0,
        late_mean_ppm: 0,
        late_sd_ppm: 0.0,
        late_mean_fill: 0,
        target,
    };
    let (mut late_sum, mut late_n, mut late_ppm, mut late_ppm_sq) = (0u64, 0u64, 0i64, 0f64);
    let mut lcg = 0x2545_f491_4f6c_dd1du64;
    let mut t = t0;
    let end = t0 + seconds * SEC;
    while t < end {
        // Next Linux tick.
        let next = clock
            .time_of_frame(next_period_boundary(clock.position(t), period))
            .unwrap();
        lcg = lcg
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        let late = if jitter_ns > 0 {
            (lcg >> 33) % jitter_ns
        } else {
            0
        };
        t = (next + late).max(t + 1);
        // The RTOS side catches up to t.
        let due = rtos_frames(t);
        while rtos_done < due {
            match role {
                Role::Consumer => {
                    if write + rtos_period - read > capacity {
                        out.overflows += 1
                    } else {
                        write += rtos_period
                    }
                }
                Role::Producer => {
                    if write - read < rtos_period {
                        out.underflows += 1
                    } else {
                        read += rtos_period
                    }
                }
            }
            rtos_done += rtos_period;
        }
        // Linux's transfer.
        let pos = clock.position(t);
        let want = pos - linux_done;
        linux_done = pos;
        match role {
            Role::Consumer => {
                let fill = write - read;
                if fill < want {
                    out.underflows += 1;
                    read = write
                } else {
                    read += want
                }
            }
            Role::Producer => {
                if write - read + want > capacity {
                    out.overflows += 1;
                    write = read + capacity
                } else {
                    write += want
                }
            }
        }
        let fill = write - read;
        out.min_fill = out.min_fill.min(fill);
        out.max_fill = out.max_fill.max(fill);
        if t > end - 1800 * SEC {
            late_sum += fill;
            late_n += 1;
            late_ppm += i64::from(follower.ppm());
            late_ppm_sq += f64::from(follower.ppm()).powi(2);
        }
        if let Some(p) = follower.sample(t, fill) {
            assert!(p.abs() <= max_follow_ppm.max(0));
            clock.set_shift_ppm(p, t);
        }
    }
    out.final_ppm = follower.ppm();
    out.late_mean_fill = late_sum / late_n.max(1);
    out.late_mean_ppm = late_ppm / late_n.max(1) as i64;
    let n = late_n.max(1) as f64;
    out.late_sd_ppm = (late_ppm_sq / n - (late_ppm as f64 / n).powi(2))
        .max(0.0)
        .sqrt();
    out
}

fn check(role: Role, ppm: i32, rtos_period: u64, linux_period: u64) {
    check_jittered(role, ppm, rtos_period, linux_period, 0);
}

/// [`check`] with Linux's ticks late by up to `jitter_ns`.
fn check_jittered(
    role: Role,
    ppm: i32,
    rtos_period: u64,
    linux_period: u64,
    jitter_ns: u64,
) -> Outcome {
    let o = simulate(
        role,
        8000,
        ppm,
        rtos_period,
        linux_period,
        8192,
        3600,
        jitter_ns,
        MAX_FOLLOW_PPM,
        None,
    );
    eprintln!("{role:?} {ppm:+} ppm periods {rtos_period}/{linux_period} jitter {} ms: shift {:+} ppm (mean {:+}, sd {:.0}), fill {}..{} (target {}), late mean {} u{} o{}", jitter_ns / 1_000_000, o.final_ppm, o.late_mean_ppm, o.late_sd_ppm, o.min_fill, o.max_fill, o.target, o.late_mean_fill, o.underflows, o.overflows);
    assert_eq!(o.underflows, 0, "{role:?} {ppm} ppm: underflow");
    assert_eq!(o.overflows, 0, "{role:?} {ppm} ppm: overflow");
    // The fill is measured in whole chunks, so the shift hunts around the
    // RTOS's offset; over the last half hour it must average to it.
    assert!(
        (o.late_mean_ppm - i64::from(ppm)).abs() <= 25,
        "{role:?}: follower averaged {} ppm for a {ppm} ppm RTOS",
        o.late_mean_ppm
    );
    let dev = o.late_mean_fill.abs_diff(o.target);
    assert!(
        dev <= rtos_period.max(linux_period),
        "{role:?} {ppm} ppm: mean fill {} vs target {}",
        o.late_mean_fill,
        o.target
    );
    o
}

#[test]
fn the_shift_stays_steady_when_linux_ticks_are_late() {
    // Timer lateness makes the fill seen at each tick noisy; the follower
    // must average it out rather than chase it: a shift that swings by
    // hundreds of ppm from window to window would be a controller tuned
    // too hot (the emulated board showed +-1500 ppm swings with TP = 4 s).
    for (role, lp) in [
        (Role::Consumer, 400),
        (Role::Producer, 400),
        (Role::Consumer, 160),
    ] {
        for jitter_ms in [5, 20] {
            let o = check_jittered(role, 300, 160, lp, jitter_ms * 1_000_000);
            assert!(
                o.late_sd_ppm <= 100.0,
                "{role:?} jitter {jitter_ms} ms: shift sd {:.0} ppm",
                o.late_sd_ppm
            );
        }
    }
}

#[test]
fn microphone_ring_follows_a_fast_or_slow_rtos_for_an_hour() {
    for ppm in [-300, -100, 0, 100, 300] {
        check(Role::Consumer, ppm, 160, 160);
    }
    check(Role::Consumer, 300, 160, 1024);
    check(Role::Consumer, -300, 80, 441);
}

#[test]
fn speaker_ring_follows_a_fast_or_slow_rtos_for_an_hour() {
    for ppm in [-300, 0, 300] {
        check(Role::Producer, ppm, 160, 160);
    }
    check(Role::Producer, -300, 160, 1024);
}

#[test]
fn without_following_the_ring_fails_within_the_hour() {
    // The tests above would pass trivially if the ring could absorb the
    // drift: run the very same hour with the follower's bound at 0 (the
    // clock never steered) and the ring must overflow or run dry, on the
    // side the RTOS clock's sign predicts, and end far from its target.
    for (role, ppm) in [
        (Role::Consumer, 300),
        (Role::Consumer, -300),
        (Role::Producer, 300),
        (Role::Producer, -300),
    ] {
        let o = simulate(role, 8000, ppm, 160, 160, 8192, 3600, 0, 0, None);
        eprintln!(
            "unsteered {role:?} {ppm:+} ppm: shift {} ppm, fill {}..{} (target {}), u{} o{}",
            o.final_ppm, o.min_fill, o.max_fill, o.target, o.underflows, o.overflows
        );
        assert_eq!(o.final_ppm, 0, "a bound of 0 must never steer");
        // Consumer (microphone ring): a fast RTOS fills it, a slow one
        // drains it. Producer (speaker ring): a fast RTOS drains it.
        let (fills, drains) = (o.overflows, o.underflows);
        match (role, ppm > 0) {
            (Role::Consumer, true) | (Role::Producer, false) => {
                assert!(
                    fills > 0,
                    "{role:?} {ppm:+} ppm unsteered: no overflow in an hour"
                );
                assert_eq!(drains, 0, "{role:?} {ppm:+} ppm unsteered: ran dry instead");
            }
            _ => {
                assert!(
                    drains > 0,
                    "{role:?} {ppm:+} ppm unsteered: never ran dry in an hour"
                );
                assert_eq!(
                    fills, 0,
                    "{role:?} {ppm:+} ppm unsteered: overflowed instead"
                );
            }
        }
    }
}

#[test]
fn target_needs_room_for_both_periods() {
    // The default slack (an RTOS period): what the driver always kept.
    assert_eq!(target_fill(Role::Consumer, 8192, 160, 160, None), Some(320));
    assert_eq!(
        target_fill(Role::Producer, 8192, 160, 1024, None),
        Some(1344)
    );
    assert_eq!(target_fill(Role::Producer, 8192, 160, 80, None), Some(400));
    assert_eq!(target_fill(Role::Consumer, 512, 160, 160, None), None);
    assert_eq!(target_fill(Role::Consumer, 8192, 0, 160, None), None);
    // A slack given: the periods plus it.
    assert_eq!(
        target_fill(Role::Consumer, 8192, 160, 80, Some(40)),
        Some(200)
    );
    assert_eq!(
        target_fill(Role::Producer, 8192, 160, 80, Some(40)),
        Some(280)
    );
    assert_eq!(
        target_fill(Role::Consumer, 8192, 160, 80, Some(0)),
        Some(160)
    );
    // Too big for the ring, or absurd: refused, never wrapped.
    assert_eq!(target_fill(Role::Consumer, 8192, 160, 80, Some(8000)), None);
    assert_eq!(
        target_fill(Role::Producer, 8192, 160, 80, Some(u64::MAX)),
        None
    );
    assert_eq!(frames_in_us(5000, 8000), 40);
    assert_eq!(frames_in_us(1, 8000), 1, "rounded up");
    assert_eq!(frames_in_us(0, 48000), 0);
    assert_eq!(frames_in_us(u32::MAX, u32::MAX), 18_446_744_065_120);
}

/// The slack is what covers lateness, and the periods around it are
/// enough: with no slack at all and punctual sides, an hour at +-300 ppm
/// neither underflows nor overflows; Linux ticks late by up to 8 ms are
/// covered by 10 ms of slack; the same lateness against no slack starves
/// the speaker ring (so the slack is not decoration).
#[test]
fn the_slack_covers_lateness_and_no_more_is_needed() {
    let run = |role, ppm, lp, jitter_ms: u64, slack| {
        let o = simulate(
            role,
            8000,
            ppm,
            160,
            lp,
            8192,
            3600,
            jitter_ms * 1_000_000,
            MAX_FOLLOW_PPM,
            Some(slack),
        );
        eprintln!(
            "{role:?} {ppm:+} ppm periods 160/{lp} jitter {jitter_ms} ms slack {slack}: fill {}..{} (target {}), u{} o{}",
            o.min_fill, o.max_fill, o.target, o.underflows, o.overflows
        );
        o
    };
    for role in [Role::Consumer, Role::Producer] {
        for ppm in [-300, 0, 300] {
            for lp in [80, 160, 441] {
                let o = run(role, ppm, lp, 0, 0);
                assert_eq!((o.underflows, o.overflows), (0, 0), "{role:?} {ppm} {lp}");
            }
        }
        let o = run(role, 300, 80, 8, frames_in_us(10_000, 8000));
        assert_eq!(
            (o.underflows, o.overflows),
            (0, 0),
            "{role:?} 8 ms late, 10 ms slack"
        );
    }
    let o = run(Role::Producer, 300, 80, 20, 0);
    assert!(
        o.underflows > 0,
        "20 ms late ticks against no slack must starve the speaker ring"
    );
}

#[test]
fn follower_output_is_bounded_for_absurd_fills() {
    let mut f = Follower::new(8000, 320, Role::Consumer, 0, MAX_FOLLOW_PPM);
    let mut t = 0;
    for fill in [u64::MAX, 0, u64::MAX / 2, 1 << 40] {
        for _ in 0..100 {
            t += 20_000_000;
            if let Some(p) = f.sample(t, fill) {
                assert!(p.abs() <= MAX_FOLLOW_PPM);
            }
        }
    }
}

#[test]
fn follower_bound_is_the_configured_one() {
    for (max, want) in [
        (0, 0),
        (250, 250),
        (5000, 5000),
        (1_000_000, 10_000),
        (-7, 0),
    ] {
        let mut f = Follower::new(8000, 320, Role::Consumer, 0, max);
        let mut seen = 0;
        let mut t = 0;
        // A ring far above target for a minute: the shift runs to the bound.
        for _ in 0..3000 {
            t += 20_000_000;
            if let Some(p) = f.sample(t, 8000) {
                seen = p;
            }
        }
        assert_eq!(seen, want, "max {max}");
        assert_eq!(f.ppm(), want);
    }
}

#[test]
fn measured_rate_offset() {
    // 8000 Hz +300 ppm for 100 s: 800240 frames.
    assert_eq!(rate_offset_ppm(800_240, 100 * SEC, 8000), Some(300));
    assert_eq!(rate_offset_ppm(799_760, 100 * SEC, 8000), Some(-300));
    assert_eq!(rate_offset_ppm(48_000 * 3600, 3600 * SEC, 48_000), Some(0));
    // Under a second: nothing to say; absurd inputs never panic.
    assert_eq!(rate_offset_ppm(8000, SEC - 1, 8000), None);
    assert_eq!(rate_offset_ppm(1, SEC, 0), None);
    assert!(rate_offset_ppm(u64::MAX, SEC, 8000).is_some());
    assert!(rate_offset_ppm(0, u64::MAX, 8000).is_some());
    // Days-long uptimes (a board runs for months): the measure does not
    // saturate. 300 ppm fast at 48 kHz for 5 h, 4.5 days (where the old
    // frames * 1e9 product overflowed), 30 days and 10 years.
    for secs in [5 * 3600, 389_000, 30 * 86_400, 10 * 365 * 86_400u64] {
        for (rate, ppm) in [
            (48_000u64, 300i64),
            (48_000, -300),
            (8_000, 300),
            (44_100, -120),
        ] {
            let frames = (rate * secs) as i64 + (rate * secs) as i64 * ppm / 1_000_000;
            assert_eq!(
                rate_offset_ppm(frames as u64, secs * SEC, rate as u32),
                Some(ppm as i32),
                "{secs} s at {rate} Hz, {ppm:+} ppm"
            );
        }
    }
    // One 160-frame period over 100 s at 8 kHz: 200 ppm; over an hour: 6.
    assert_eq!(rate_offset_tolerance_ppm(800_000, 160), 200);
    assert_eq!(rate_offset_tolerance_ppm(8000 * 3600, 160), 6);
    assert_eq!(rate_offset_tolerance_ppm(0, 160), u32::MAX);
    assert!(rate_offset_tolerance_ppm(u64::MAX, u64::MAX) <= 1_000_000);
}

proptest::proptest! {
    /// Any uptime up to ten years: the measure is the shifted clock's offset
    /// to within one frame over the run (never saturated).
    #[test]
    fn measured_rate_offset_holds_for_any_uptime(ppm in -5000i32..5000, secs in 3600u64..10 * 365 * 86_400, rate in proptest::sample::select(vec![8000u32, 16000, 44100, 48000])) {
        let mhz = shifted_rate_mhz(NonZeroU32::new(rate).unwrap(), ppm);
        let frames = mframes_in_ns(secs * SEC, mhz) / 1000;
        let got = rate_offset_ppm(frames, secs * SEC, rate).unwrap();
        proptest::prop_assert!((got - ppm).abs() <= 1, "{} vs {} after {} s", got, ppm, secs);
    }

    #[test]
    fn measured_rate_offset_matches_a_shifted_clock(ppm in -5000i32..5000, secs in 2u64..3600, rate in proptest::sample::select(vec![8000u32, 16000, 44100, 48000])) {
        let mhz = shifted_rate_mhz(NonZeroU32::new(rate).unwrap(), ppm);
        let frames = mframes_in_ns(secs * SEC, mhz) / 1000;
        let got = rate_offset_ppm(frames, secs * SEC, rate).unwrap();
        // One frame of rounding over the run, plus the integer ppm rounding.
        let tol = 1 + (1_000_000 / (u64::from(rate) * secs)) as i32;
        proptest::prop_assert!((got - ppm).abs() <= tol, "{} vs {}", got, ppm);
    }
}
