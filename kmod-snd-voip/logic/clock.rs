// SPDX-License-Identifier: GPL-2.0
//! Stream clock: the position of a running stream derived from elapsed time.
//!
//! snd-dummy's hrtimer mode computes the position as
//! `(now - base_time) * rate / NSEC_PER_SEC`; this type does the same without
//! overflow for any run time and keeps pause/resume exact: the frames counted
//! before a pause are kept as a base and counting restarts from the resume
//! time, so rounding never accumulates (no drift, whatever the period size).
//!
//! Pure logic: compiled into the kernel module and, on the host, into the
//! `snd-voip-logic` crate whose tests exercise it.

use core::num::{NonZeroU32, NonZeroU64};

/// Nanoseconds per second.
pub const NSEC_PER_SEC: u64 = 1_000_000_000;

/// Frames elapsed after `ns` nanoseconds at `rate` frames per second, rounded down.
///
/// Exact for every `ns` (no intermediate overflow): whole seconds and the
/// remainder are scaled separately.
pub fn frames_in_ns(ns: u64, rate: NonZeroU32) -> u64 {
    let rate = u64::from(rate.get());
    let secs = ns / NSEC_PER_SEC;
    let rem = ns % NSEC_PER_SEC;
    secs.saturating_mul(rate) + rem * rate / NSEC_PER_SEC
}

/// Milliframes elapsed after `ns` nanoseconds at `rate_mhz` millihertz,
/// rounded down. With `rate_mhz = rate * 1000`, `mf / 1000` equals
/// [`frames_in_ns`]. Exact for rates up to 2^32 mHz (no intermediate overflow).
pub fn mframes_in_ns(ns: u64, rate_mhz: NonZeroU64) -> u64 {
    let rate = rate_mhz.get();
    let secs = ns / NSEC_PER_SEC;
    let rem = ns % NSEC_PER_SEC;
    secs.saturating_mul(rate)
        .saturating_add(rem.saturating_mul(rate) / NSEC_PER_SEC)
}

/// The first time (in ns from the start) at which [`mframes_in_ns`] reaches `mframes`.
pub fn ns_for_mframes(mframes: u64, rate_mhz: NonZeroU64) -> u64 {
    let secs = mframes / rate_mhz;
    let rem = mframes % rate_mhz;
    // rem < rate_mhz, so this cannot overflow for any sane rate; dividing by
    // a NonZero type cannot panic (the kernel build must not contain a panic).
    let rem_ns = (rem.saturating_mul(NSEC_PER_SEC) + (rate_mhz.get() - 1)) / rate_mhz;
    secs.saturating_mul(NSEC_PER_SEC).saturating_add(rem_ns)
}

/// Largest rate shift a clock accepts, in parts per million.
pub const MAX_SHIFT_PPM: i32 = 10_000;

/// The rate in millihertz of a `rate` Hz stream shifted by `ppm` parts per
/// million (clamped to +-[`MAX_SHIFT_PPM`]).
pub fn shifted_rate_mhz(rate: NonZeroU32, ppm: i32) -> NonZeroU64 {
    let ppm = i64::from(ppm.clamp(-MAX_SHIFT_PPM, MAX_SHIFT_PPM));
    let r = i64::from(rate.get());
    // r * 1000 * (1 + ppm / 1e6) = r * 1000 + r * ppm / 1000; positive
    // because |ppm| <= 1 %.
    let mhz = (r * 1000 + r * ppm / 1000).max(1) as u64;
    NonZeroU64::new(mhz).unwrap_or(NonZeroU64::MIN)
}

/// The first time (in ns from the start) at which `frames_in_ns` reaches `frames`.
pub fn ns_for_frames(frames: u64, rate: NonZeroU32) -> u64 {
    let rate64 = NonZeroU64::from(rate);
    let secs = frames / rate64;
    let rem = frames % rate64;
    // rem < rate <= u32::MAX, so rem * 1e9 + rate fits in u64; dividing by a
    // NonZero type cannot panic.
    let rem_ns = (rem * NSEC_PER_SEC + (rate64.get() - 1)) / rate64;
    secs.saturating_mul(NSEC_PER_SEC).saturating_add(rem_ns)
}

/// The clock of one running (or paused) stream.
///
/// Two clocks that share an *epoch* tick together: with the same `now` their
/// positions change at exactly the same instants, so the two ends of a cable
/// move by the same number of frames at every update and no frame is ever
/// dropped or doubled by rounding. An end that starts (or resumes) while its
/// peer runs therefore adopts the peer's epoch.
///
/// # Invariants
///
/// When `running`, the position at time `t` is
/// `base_frames + frames_in_ns(t - epoch_ns) - origin`, and
/// `origin == frames_in_ns(start - epoch_ns)` for the start (or resume) time,
/// so the position is `base_frames` at that instant and never decreases.
/// When paused it is `base_frames`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StreamClock {
    rate: NonZeroU32,
    /// The rate the clock ticks at: `rate` shifted by `shift_ppm`, in mHz.
    rate_mhz: NonZeroU64,
    shift_ppm: i32,
    epoch_ns: u64,
    origin: u64,
    base_frames: u64,
    running: bool,
}

impl StreamClock {
    /// A clock that starts counting from frame 0 at `now_ns`.
    pub fn start(rate: NonZeroU32, now_ns: u64) -> Self {
        Self {
            rate,
            rate_mhz: shifted_rate_mhz(rate, 0),
            shift_ppm: 0,
            epoch_ns: now_ns,
            origin: 0,
            base_frames: 0,
            running: true,
        }
    }

    /// A clock that starts from frame 0 at `now_ns` but ticks with a peer
    /// whose epoch is `epoch_ns` (see the type documentation). An epoch in
    /// the future is treated as `now_ns`.
    pub fn start_aligned(rate: NonZeroU32, epoch_ns: u64, now_ns: u64) -> Self {
        let mut c = Self::start(rate, now_ns);
        c.running = false;
        c.resume_aligned(epoch_ns, now_ns);
        c
    }

    /// A clock that starts from frame 0 at `now_ns` and ticks with `peer`
    /// (a running clock of the same nominal rate): same epoch, same rate
    /// shift, so the two positions change at the same instants for as long
    /// as they are shifted together (see [`StreamClock::set_shift_ppm`]).
    pub fn start_with(peer: &StreamClock, now_ns: u64) -> Self {
        let mut c = *peer;
        c.base_frames = 0;
        c.running = false;
        c.resume_with(peer, now_ns);
        c
    }

    /// Resumes a paused clock from its kept position at `now_ns`, ticking
    /// with `peer` (its epoch and its rate shift).
    pub fn resume_with(&mut self, peer: &StreamClock, now_ns: u64) {
        if !self.running {
            self.rate = peer.rate;
            self.rate_mhz = peer.rate_mhz;
            self.shift_ppm = peer.shift_ppm;
            self.resume_aligned(peer.epoch_ns, now_ns);
        }
    }

    /// The instant this clock's frame boundaries are counted from.
    pub fn epoch(&self) -> u64 {
        self.epoch_ns
    }

    /// Frames elapsed since the start, excluding paused time.
    ///
    /// A `now_ns` earlier than the last start or resume (impossible with a
    /// monotonic clock) counts as no time elapsed.
    pub fn position(&self, now_ns: u64) -> u64 {
        if !self.running {
            return self.base_frames;
        }
        self.base_frames
            + self
                .ticks(now_ns.saturating_sub(self.epoch_ns))
                .saturating_sub(self.origin)
    }

    /// Whole frames of this clock's rate in `ns` from the epoch.
    fn ticks(&self, ns: u64) -> u64 {
        mframes_in_ns(ns, self.rate_mhz) / 1000
    }

    /// The rate shift in parts per million (0: nominal rate).
    pub fn shift_ppm(&self) -> i32 {
        self.shift_ppm
    }

    /// Makes the clock tick `ppm` parts per million faster (or slower, when
    /// negative) from `now_ns` on, as snd-aloop's "PCM Rate Shift" does;
    /// clamped to +-[`MAX_SHIFT_PPM`]. The position is continuous: the clock
    /// is re-anchored at the instant its current frame began, so no fraction
    /// of a frame is lost (a clock re-anchored every period would otherwise
    /// run measurably slow). A re-anchored clock no longer ticks with a peer
    /// unless the peer is shifted the same way at the same `now_ns`: two
    /// clocks that tick together re-anchor at the same instant (the last
    /// tick before `now_ns`) and so keep ticking together.
    pub fn set_shift_ppm(&mut self, ppm: i32, now_ns: u64) {
        let ppm = ppm.clamp(-MAX_SHIFT_PPM, MAX_SHIFT_PPM);
        if ppm == self.shift_ppm {
            return;
        }
        if self.running {
            let pos = self.position(now_ns);
            let began = self.time_of_frame(pos).unwrap_or(now_ns).min(now_ns);
            self.base_frames = pos;
            self.epoch_ns = began;
            self.origin = 0;
        }
        self.shift_ppm = ppm;
        self.rate_mhz = shifted_rate_mhz(self.rate, ppm);
    }

    /// Whether the clock is counting.
    pub fn is_running(&self) -> bool {
        self.running
    }

    /// The stream rate in frames per second.
    pub fn rate(&self) -> NonZeroU32 {
        self.rate
    }

    /// Stops counting at `now_ns`, keeping the position reached.
    pub fn pause(&mut self, now_ns: u64) {
        if self.running {
            self.base_frames = self.position(now_ns);
            self.running = false;
        }
    }

    /// Resumes counting from the kept position at `now_ns`.
    pub fn resume(&mut self, now_ns: u64) {
        self.resume_aligned(now_ns, now_ns);
    }

    /// Resumes counting from the kept position at `now_ns`, ticking with a
    /// peer whose epoch is `epoch_ns`.
    pub fn resume_aligned(&mut self, epoch_ns: u64, now_ns: u64) {
        if !self.running {
            self.epoch_ns = epoch_ns.min(now_ns);
            self.origin = self.ticks(now_ns - self.epoch_ns);
            self.running = true;
        }
    }

    /// The absolute time (ns, same clock as `now_ns`) at which the position
    /// reaches `frames`; `None` when paused. A target already reached gives a
    /// time at or before `now`.
    pub fn time_of_frame(&self, frames: u64) -> Option<u64> {
        if !self.running {
            return None;
        }
        let ticks = frames
            .saturating_sub(self.base_frames)
            .saturating_add(self.origin);
        Some(
            self.epoch_ns
                .saturating_add(ns_for_mframes(ticks.saturating_mul(1000), self.rate_mhz)),
        )
    }
}

/// The next period boundary strictly after `position`, in frames.
pub fn next_period_boundary(position: u64, period: NonZeroU64) -> u64 {
    (position / period + 1).saturating_mul(period.get())
}

/// Whether a period boundary lies in `(from, to]`, i.e. a stream that moved
/// from `from` to `to` frames has completed at least one more period.
pub fn crossed_period(from: u64, to: u64, period: NonZeroU64) -> bool {
    to > from && to / period != from / period
}
