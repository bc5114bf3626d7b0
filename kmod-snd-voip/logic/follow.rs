// SPDX-License-Identifier: GPL-2.0
//! Clock following: the card's stream clock tracks the RTOS clock through
//! the fill level of the shared-memory FIFO.
//!
//! The RTOS core owns the codec, so its sample clock is the master of the
//! microphone and speaker paths; the card's hrtimer clock is a slave. Left
//! alone, a producer 300 ppm fast fills an 8 kHz ring by 2.4 frames a second
//! and overflows it within the hour. Like snd-aloop's "PCM Rate Shift" knob
//! turned automatically (as alsaloop does), the [`Follower`] measures the
//! mean fill over a window and runs a PI controller that shifts the stream
//! clock by a bounded number of parts per million until the fill sits at
//! its target.
//!
//! Pure logic: the kernel module and the host tests compile this file; the
//! host tests drive it with a simulated producer in virtual time.

/// The most the follower shifts a clock by default, in parts per million
/// (module parameter `rtos_max_shift_ppm`). Crystal oscillators are within
/// +-100 ppm; 1000 leaves room and still sounds the same (a 0.1 % pitch
/// change).
pub const MAX_FOLLOW_PPM: i32 = 1000;

/// The largest bound a follower accepts: the most a [`crate::clock::StreamClock`]
/// can be shifted.
pub const MAX_FOLLOW_LIMIT_PPM: i32 = crate::clock::MAX_SHIFT_PPM;

/// Length of a measurement window.
pub const WINDOW_NS: u64 = 1_000_000_000;

/// Proportional time constant, in seconds: a fill error of `e` frames is
/// corrected in about this long. Slow on purpose: the fill seen at a tick
/// is noisy (the RTOS moves whole periods, Linux's timer is a little late
/// at random), and a fast loop turns that noise into a clock that swings by
/// hundreds of ppm (4 s did on the emulated board); 16 s keeps the swing
/// under 100 ppm with 20 ms of timer jitter (tests/follow.rs) and still
/// settles a 300 ppm offset within a minute or two.
const TP_S: i64 = 16;
/// Integral time constant, in seconds (4 x TP_S: critically damped for an
/// integrating plant).
const TI_S: i64 = 64;

/// Which side of the ring Linux is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// Linux reads the ring (microphone): a fill above target means Linux
    /// is slow, so the clock is sped up.
    Consumer,
    /// Linux writes the ring (speaker): a fill above target means Linux is
    /// fast, so the clock is slowed down.
    Producer,
}

/// A PI controller from mean fill error to a clock shift in ppm.
///
/// # Invariants
///
/// `max_ppm` is in `0..=MAX_FOLLOW_LIMIT_PPM`; `ppm` and
/// `integral_mppm / 1000` stay within +-`max_ppm`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Follower {
    rate: u32,
    max_ppm: i32,
    target: u64,
    role: Role,
    window_start: u64,
    sum: u64,
    samples: u64,
    /// Integral term, in thousandths of a ppm.
    integral_mppm: i64,
    ppm: i32,
    last_mean_mframes: u64,
    windows: u64,
}

impl Follower {
    /// A follower for a `rate` Hz ring that keeps `target` frames in it,
    /// starting its first window at `now_ns`, shifting the clock by at most
    /// `max_ppm` either way (clamped to `0..=`[`MAX_FOLLOW_LIMIT_PPM`]; 0
    /// never shifts).
    pub fn new(rate: u32, target: u64, role: Role, now_ns: u64, max_ppm: i32) -> Self {
        Follower {
            rate: rate.max(1),
            max_ppm: max_ppm.clamp(0, MAX_FOLLOW_LIMIT_PPM),
            target,
            role,
            window_start: now_ns,
            sum: 0,
            samples: 0,
            integral_mppm: 0,
            ppm: 0,
            last_mean_mframes: target.saturating_mul(1000),
            windows: 0,
        }
    }

    /// The fill level the follower steers to, in frames.
    pub fn target(&self) -> u64 {
        self.target
    }

    /// The current shift, in ppm.
    pub fn ppm(&self) -> i32 {
        self.ppm
    }

    /// The mean fill of the last complete window, in thousandths of a frame.
    pub fn last_mean_mframes(&self) -> u64 {
        self.last_mean_mframes
    }

    /// Windows completed so far.
    pub fn windows(&self) -> u64 {
        self.windows
    }

    /// Records the fill seen at `now_ns`. At the end of each window returns
    /// the new shift when it changed.
    pub fn sample(&mut self, now_ns: u64, fill: u64) -> Option<i32> {
        self.sum = self.sum.saturating_add(fill);
        self.samples += 1;
        if now_ns.saturating_sub(self.window_start) < WINDOW_NS {
            return None;
        }
        let window_ns = now_ns - self.window_start;
        let mean_mf = self
            .sum
            .saturating_mul(1000)
            .checked_div(self.samples)
            .unwrap_or(0);
        self.window_start = now_ns;
        self.sum = 0;
        self.samples = 0;
        self.last_mean_mframes = mean_mf;
        self.windows += 1;
        let err_mf = clamp_i64(mean_mf) - clamp_i64(self.target.saturating_mul(1000));
        let err_mf = match self.role {
            Role::Consumer => err_mf,
            Role::Producer => -err_mf,
        };
        // ppm that corrects err frames in TP_S seconds: err / (rate * TP) * 1e6,
        // with err in mframes: err_mf * 1000 / (rate * TP).
        let rate = i64::from(self.rate);
        let p_ppm = err_mf
            .saturating_mul(1000)
            .checked_div(rate * TP_S)
            .unwrap_or(0);
        // Integral: Kp / TI per second of window, in milli-ppm.
        let window_ms = clamp_i64(window_ns / 1_000_000);
        let di = err_mf
            .saturating_mul(1000)
            .saturating_mul(window_ms)
            .checked_div(rate * TP_S * TI_S)
            .unwrap_or(0);
        let max_m = i64::from(self.max_ppm) * 1000;
        self.integral_mppm = self.integral_mppm.saturating_add(di).clamp(-max_m, max_m);
        let max = i64::from(self.max_ppm);
        let ppm = (p_ppm + self.integral_mppm / 1000).clamp(-max, max) as i32;
        if ppm != self.ppm {
            self.ppm = ppm;
            Some(ppm)
        } else {
            None
        }
    }
}

/// The RTOS clock against Linux's, in ppm: the RTOS moved `frames` frames of
/// a `rate` Hz ring in `elapsed_ns` of Linux time. `None` before a second
/// has passed (too little to say anything) or for a zero rate. The RTOS
/// moves whole periods, so the error is within one RTOS period over the
/// elapsed time (200 ppm after 100 s of 160-frame periods at 8 kHz, 5 ppm
/// after an hour).
pub fn rate_offset_ppm(frames: u64, elapsed_ns: u64, rate: u32) -> Option<i32> {
    let rate = core::num::NonZeroU32::new(rate)?;
    if elapsed_ns < WINDOW_NS {
        return None;
    }
    // Compare with the frames a nominal clock makes in the same time
    // (exact for any uptime: whole seconds and the rest are scaled apart),
    // so nothing is multiplied by the (ever growing) count itself: only the
    // difference, which is a few ppm of it, is scaled to ppm.
    let nominal = crate::clock::frames_in_ns(elapsed_ns, rate);
    let diff = clamp_i64(frames).saturating_sub(clamp_i64(nominal));
    let ppm = diff
        .saturating_mul(1_000_000)
        .checked_div(clamp_i64(nominal))?;
    Some(ppm.clamp(i64::from(i32::MIN), i64::from(i32::MAX)) as i32)
}

/// How far off [`rate_offset_ppm`] may be, in ppm, after the RTOS moved
/// `frames` frames in whole periods of `period` frames: one period over
/// the frames (rounded up; `u32::MAX` before any frame).
pub fn rate_offset_tolerance_ppm(frames: u64, period: u64) -> u32 {
    period
        .saturating_mul(1_000_000)
        .saturating_add(frames.saturating_sub(1))
        .checked_div(frames)
        .map_or(u32::MAX, |t| u32::try_from(t).unwrap_or(u32::MAX))
}

fn clamp_i64(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

/// The fill a follower should steer to, in frames, for a ring of
/// `capacity` frames written or read by the RTOS in `rtos_period` chunks
/// while Linux moves `linux_period` frames per timer tick, measured right
/// after Linux's transfer, with `slack` frames for the lateness of the side
/// that can starve the ring (`None`: one RTOS period). `None` when the ring
/// is too small for the target plus a period of each side (the stream is
/// refused).
///
/// As a consumer (microphone), the fill seen after Linux's reads runs on a
/// sawtooth of one RTOS period (each chunk arrives whole), whose mean is at
/// most half a period above its low: the target is an RTOS period plus the
/// slack, so the low stays half a period and the slack above empty when the
/// RTOS writes late by the slack. As a producer (speaker), the fill after
/// Linux's writes runs from a Linux period to an RTOS period above its low,
/// the RTOS taking a whole chunk: the target is both periods plus the
/// slack, which Linux's ticks may be late by. The half periods left over
/// cover the follower's hunting around the target. The default slack of an
/// RTOS period is what the driver always kept (two RTOS periods as a
/// consumer, a Linux period and two RTOS periods as a producer); a board
/// whose RTOS and Linux keep time can lower it (module parameter
/// `rtos_slack_us`), each frame of it a frame less delay.
pub fn target_fill(
    role: Role,
    capacity: u64,
    rtos_period: u64,
    linux_period: u64,
    slack: Option<u64>,
) -> Option<u64> {
    if rtos_period == 0 {
        return None;
    }
    let slack = slack.unwrap_or(rtos_period);
    let target = match role {
        Role::Consumer => rtos_period.checked_add(slack)?,
        Role::Producer => linux_period.checked_add(rtos_period)?.checked_add(slack)?,
    };
    // Room above the target for one more period of each side.
    let need = target.checked_add(rtos_period)?.checked_add(linux_period)?;
    if need > capacity {
        None
    } else {
        Some(target)
    }
}

/// `us` microseconds at `rate` Hz, in frames, rounded up (saturating).
pub fn frames_in_us(us: u32, rate: u32) -> u64 {
    (u64::from(us) * u64::from(rate)).div_ceil(1_000_000)
}

/// The largest `rtos_slack_us` accepted: a second.
pub const MAX_SLACK_US: i32 = 1_000_000;
