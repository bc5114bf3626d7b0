//! Pacing: how many frames a clock running `ppm` off its nominal rate has
//! produced after a given time. Computed from the elapsed time since start
//! (never by adding up fixed sleeps), in exact integer arithmetic, so the
//! count does not drift however long the run.

use std::time::Duration;

use crate::SimError;

const NS_PER_S: u128 = 1_000_000_000;
const PPB_PER_UNIT: i128 = 1_000_000_000;

/// Largest accepted offset, in parts per million.
pub const MAX_PPM: f64 = 100_000.0;

/// A sample clock: nominal rate plus an offset in parts per billion.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Pace {
    rate: u32,
    ppb: i64,
}

impl Pace {
    /// A clock at `rate` frames per second, `ppm` parts per million fast
    /// (negative: slow). The offset is kept to a part per billion.
    pub fn new(rate: u32, ppm: f64) -> Result<Pace, SimError> {
        if rate == 0 {
            return Err(SimError::Params("rate must be positive".into()));
        }
        if !ppm.is_finite() || ppm.abs() > MAX_PPM {
            return Err(SimError::Params(format!(
                "ppm {ppm} out of range (at most ±{MAX_PPM})"
            )));
        }
        Ok(Pace {
            rate,
            ppb: (ppm * 1000.0).round() as i64,
        })
    }

    /// Effective rate times 1e9 (frames per second, scaled).
    fn scaled_rate(&self) -> u128 {
        // ppb is bounded by MAX_PPM so the sum is positive.
        let factor = (PPB_PER_UNIT + i128::from(self.ppb)).max(0) as u128;
        u128::from(self.rate) * factor
    }

    /// The effective rate in frames per second.
    pub fn effective_rate(&self) -> f64 {
        self.scaled_rate() as f64 / PPB_PER_UNIT as f64
    }

    /// The offset in parts per million, as stored (to a part per billion).
    pub fn ppm(&self) -> f64 {
        self.ppb as f64 / 1000.0
    }

    /// Whole frames the clock has produced `elapsed` after its start.
    pub fn frames_due(&self, elapsed: Duration) -> u64 {
        let frames = elapsed.as_nanos() * self.scaled_rate() / (NS_PER_S * PPB_PER_UNIT as u128);
        u64::try_from(frames).unwrap_or(u64::MAX)
    }

    /// The earliest time after start at which `frames` are due.
    pub fn time_of(&self, frames: u64) -> Duration {
        let num = u128::from(frames) * NS_PER_S * PPB_PER_UNIT as u128;
        let ns = num.div_ceil(self.scaled_rate());
        Duration::from_nanos(u64::try_from(ns).unwrap_or(u64::MAX))
    }

    /// Frames due at `elapsed`, rounded down to whole periods.
    pub fn periods_due(&self, elapsed: Duration, period: u64) -> u64 {
        let p = period.max(1);
        self.frames_due(elapsed) / p * p
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nominal_rate_is_exact() {
        let p = Pace::new(8000, 0.0).unwrap();
        assert_eq!(p.frames_due(Duration::from_secs(1)), 8000);
        assert_eq!(p.frames_due(Duration::from_millis(20)), 160);
        assert_eq!(p.frames_due(Duration::from_nanos(124_999)), 0);
        assert_eq!(p.frames_due(Duration::from_nanos(125_000)), 1);
    }

    #[test]
    fn ppm_offset_over_an_hour() {
        for (ppm, expect) in [
            (300.0, 8000 * 3600 + 8640),
            (-300.0, 8000 * 3600 - 8640),
            (0.0, 8000 * 3600),
        ] {
            let p = Pace::new(8000, ppm).unwrap();
            assert_eq!(p.frames_due(Duration::from_secs(3600)), expect, "ppm {ppm}");
        }
        let p = Pace::new(44100, 12.5).unwrap();
        // 44100 * 3600 * 12.5e-6 = 1984.5 -> floor
        assert_eq!(p.frames_due(Duration::from_secs(3600)), 44100 * 3600 + 1984);
    }

    #[test]
    fn no_drift_with_jittered_wakeups() {
        // Virtual hour: wake at irregular times (late by up to 7 ms), take
        // whole periods due each time; the total must equal the closed form
        // at the end, whatever the wakeup pattern.
        let p = Pace::new(48000, 300.0).unwrap();
        let period = 480;
        let mut taken = 0u64;
        let mut t = Duration::ZERO;
        let mut jitter = 12345u64;
        let end = Duration::from_secs(3600);
        while t < end {
            let due = p.periods_due(t, period);
            assert!(due >= taken);
            taken = due;
            let next = p.time_of(taken + period);
            jitter = jitter
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            t = (next + Duration::from_micros((jitter >> 33) % 7000)).min(end);
        }
        taken = p.periods_due(end, period);
        let exact = 48000.0 * 3600.0 * (1.0 + 300e-6);
        assert!(
            (taken as f64 - exact).abs() < period as f64,
            "{taken} vs {exact}"
        );
        assert_eq!(taken, p.frames_due(end) / period * period);
    }

    #[test]
    fn time_of_is_inverse_of_frames_due() {
        for ppm in [-300.0, 0.0, 300.0, 0.001] {
            let p = Pace::new(16000, ppm).unwrap();
            for f in [1u64, 160, 16000, 57_600_000, 123_456_789] {
                let t = p.time_of(f);
                assert_eq!(p.frames_due(t), f, "ppm {ppm} frames {f}");
                assert_eq!(p.frames_due(t - Duration::from_nanos(1)), f - 1);
            }
        }
    }

    #[test]
    fn rejects_bad_parameters() {
        assert!(Pace::new(0, 0.0).is_err());
        assert!(Pace::new(8000, f64::NAN).is_err());
        assert!(Pace::new(8000, 1e6).is_err());
        assert_eq!(Pace::new(8000, -300.0).unwrap().ppm(), -300.0);
    }
}
