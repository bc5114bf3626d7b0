//! Clock following in virtual time: an RTOS producer (or consumer) whose
//! clock is off by up to +-300 ppm, against the card's stream clock steered
//! by the follower, for an hour. The ring must never overflow or underflow.

use core::num::{NonZeroU32, NonZeroU64};
use snd_voip_logic::clock::{mframes_in_ns, next_period_boundary, shifted_rate_mhz, StreamClock};
use snd_voip_logic::follow::{target_fill, Follower, Role, MAX_FOLLOW_PPM};

const SEC: u64 = 1_000_000_000;

struct Outcome {
    underflows: u64,
    overflows: u64,
    min_fill: u64,
    max_fill: u64,
    final_ppm: i32,
    late_mean_ppm: i64,
    late_mean_fill: u64,
    target: u64,
}

/// Runs `seconds` of virtual time. The RTOS side moves `rtos_period` chunks
/// on its own clock, `ppm` off nominal; Linux moves frames at the ticks of
/// its follower-steered clock, every `linux_period` frames.
fn simulate(
    role: Role,
    rate: u32,
    ppm: i32,
    rtos_period: u64,
    linux_period: u64,
    capacity: u64,
    seconds: u64,
) -> Outcome {
    let rtos_rate = shifted_rate_mhz(NonZeroU32::new(rate).unwrap(), ppm);
    let target = target_fill(role, capacity, rtos_period, linux_period).expect("ring big enough");
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
    let mut follower = Follower::new(rate, target, role, t0);
    let mut linux_done = 0u64;
    let period = NonZeroU64::new(linux_period).unwrap();
    let mut out = Outcome {
        underflows: 0,
        overflows: 0,
        min_fill: u64::MAX,
        max_fill: 0,
        final_ppm: 0,
        late_mean_ppm: 0,
        late_mean_fill: 0,
        target,
    };
    let (mut late_sum, mut late_n, mut late_ppm) = (0u64, 0u64, 0i64);
    let mut t = t0;
    let end = t0 + seconds * SEC;
    while t < end {
        // Next Linux tick.
        let next = clock
            .time_of_frame(next_period_boundary(clock.position(t), period))
            .unwrap();
        t = next.max(t + 1);
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
            late_ppm += i64::from(follower.ppm())
        }
        if let Some(p) = follower.sample(t, fill) {
            assert!(p.abs() <= MAX_FOLLOW_PPM);
            clock.set_shift_ppm(p, t);
        }
    }
    out.final_ppm = follower.ppm();
    out.late_mean_fill = late_sum / late_n.max(1);
    out.late_mean_ppm = late_ppm / late_n.max(1) as i64;
    out
}

fn check(role: Role, ppm: i32, rtos_period: u64, linux_period: u64) {
    let o = simulate(role, 8000, ppm, rtos_period, linux_period, 8192, 3600);
    eprintln!("{role:?} {ppm:+} ppm periods {rtos_period}/{linux_period}: shift {:+} ppm (mean {:+}), fill {}..{} (target {}), late mean {} u{} o{}", o.final_ppm, o.late_mean_ppm, o.min_fill, o.max_fill, o.target, o.late_mean_fill, o.underflows, o.overflows);
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
    // The test above would pass trivially if the ring could absorb the drift:
    // show that 300 ppm overflows it when the clock is not steered.
    let drift_frames = 8000.0 * 300e-6 * 3600.0;
    assert!(drift_frames > 8192.0 - 320.0);
}

#[test]
fn target_needs_room_for_both_periods() {
    assert_eq!(target_fill(Role::Consumer, 8192, 160, 160), Some(320));
    assert_eq!(target_fill(Role::Producer, 8192, 160, 1024), Some(1344));
    assert_eq!(target_fill(Role::Consumer, 512, 160, 160), None);
    assert_eq!(target_fill(Role::Consumer, 8192, 0, 160), None);
}

#[test]
fn follower_output_is_bounded_for_absurd_fills() {
    let mut f = Follower::new(8000, 320, Role::Consumer, 0);
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
