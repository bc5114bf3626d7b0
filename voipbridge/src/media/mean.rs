//! Time-averaged levels for `status`'s latency figures (sans-IO).
//!
//! What a listener hears as delay is the mean time a sample spends in a
//! buffer, and by Little's law that is the buffer's *time-averaged* level
//! divided by its rate. A snapshot taken by `status` lands anywhere on the
//! buffer's sawtooth: a playback device read right after a top-up shows its
//! fill target, half a period above its mean; a playout queue read right
//! after a 20 ms packet arrived shows 20 ms more than one read just before.
//! [`WindowMean`] integrates a level over time, one segment at a time, and
//! publishes the mean of each completed window (a second in the engine), so
//! the figure is the level over the last whole second, not a phase of it.
//!
//! The level may move linearly over a segment (a device drains or fills at
//! its clock between two looks: the trapezoid of the two ends is exact) or
//! stay flat (a queue between two events). No allocation, no clock of its
//! own: the caller passes the times.

use std::time::{Duration, Instant};

/// The window of the latency means `status` shows.
pub const MEAN_WINDOW: Duration = Duration::from_secs(1);

/// The mean of a level over the last completed window of time.
#[derive(Debug, Clone)]
pub struct WindowMean {
    window: Duration,
    /// The end of the last segment.
    last: Option<Instant>,
    /// This window's integral (level × seconds) and length (seconds).
    sum: f64,
    span: f64,
    mean: Option<f64>,
}

impl WindowMean {
    /// Means over windows of `window` (at least a millisecond).
    pub fn new(window: Duration) -> WindowMean {
        WindowMean {
            window: window.max(Duration::from_millis(1)),
            last: None,
            sum: 0.0,
            span: 0.0,
            mean: None,
        }
    }

    /// The level went linearly from `from` (at the end of the last segment)
    /// to `to` at `now`. The first call only marks the start; a `now` that
    /// does not move forward adds nothing. A segment longer than the window
    /// (a stall) counts whole: the window it closes is that long.
    pub fn segment(&mut self, now: Instant, from: f64, to: f64) {
        let Some(last) = self.last else {
            self.last = Some(now);
            return;
        };
        if now <= last {
            return;
        }
        self.last = Some(now);
        let dt = now.duration_since(last).as_secs_f64();
        self.sum += (from + to) / 2.0 * dt;
        self.span += dt;
        if self.span >= self.window.as_secs_f64() {
            self.mean = Some(self.sum / self.span);
            self.sum = 0.0;
            self.span = 0.0;
        }
    }

    /// The level stayed at `level` since the end of the last segment.
    pub fn hold(&mut self, now: Instant, level: f64) {
        self.segment(now, level, level);
    }

    /// The mean of the last completed window (`None` until one completed).
    pub fn mean(&self) -> Option<f64> {
        self.mean
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn nothing_until_a_window_completes() {
        let t0 = Instant::now();
        let mut m = WindowMean::new(ms(1000));
        m.hold(t0, 5.0);
        assert_eq!(m.mean(), None);
        m.hold(t0 + ms(999), 5.0);
        assert_eq!(m.mean(), None);
        m.hold(t0 + ms(1000), 5.0);
        assert_eq!(m.mean(), Some(5.0));
    }

    #[test]
    fn a_sawtooth_averages_to_its_middle_not_its_top() {
        // A device topped up to 160 frames every 80 frames' time (10 ms at
        // 8 kHz), draining linearly to 80 in between: a snapshot after a
        // top-up says 160, the level a sample waits behind is 120.
        let t0 = Instant::now();
        let mut m = WindowMean::new(ms(1000));
        m.segment(t0, 0.0, 160.0);
        for k in 1..=100u64 {
            m.segment(t0 + ms(10 * k), 160.0, 80.0);
        }
        let mean = m.mean().unwrap_or(0.0);
        assert!((mean - 120.0).abs() < 1e-6, "{mean}");
    }

    #[test]
    fn a_queue_is_weighted_by_how_long_each_level_lasted() {
        // 40 for 900 ms, 240 for 100 ms: 60 on average, 240 at the end.
        let t0 = Instant::now();
        let mut m = WindowMean::new(ms(1000));
        m.hold(t0, 0.0);
        m.hold(t0 + ms(900), 40.0);
        m.hold(t0 + ms(1000), 240.0);
        let mean = m.mean().unwrap_or(0.0);
        assert!((mean - 60.0).abs() < 1e-6, "{mean}");
    }

    #[test]
    fn each_window_stands_alone_and_the_last_complete_one_is_shown() {
        let t0 = Instant::now();
        let mut m = WindowMean::new(ms(1000));
        m.hold(t0, 0.0);
        m.hold(t0 + ms(1000), 100.0);
        assert_eq!(m.mean(), Some(100.0));
        // Half of the next window at 10: still the last complete one.
        m.hold(t0 + ms(1500), 10.0);
        assert_eq!(m.mean(), Some(100.0));
        m.hold(t0 + ms(2000), 10.0);
        assert_eq!(m.mean(), Some(10.0));
    }

    #[test]
    fn time_that_does_not_move_adds_nothing() {
        let t0 = Instant::now();
        let mut m = WindowMean::new(ms(1000));
        m.hold(t0, 0.0);
        m.hold(t0, 1e9);
        m.hold(t0 + ms(1000), 7.0);
        assert_eq!(m.mean(), Some(7.0));
        // Nor does time going back.
        m.hold(t0 + ms(500), 1e9);
        m.hold(t0 + ms(2000), 3.0);
        assert_eq!(m.mean(), Some(3.0));
    }

    #[test]
    fn a_stall_longer_than_the_window_closes_it_whole() {
        let t0 = Instant::now();
        let mut m = WindowMean::new(ms(1000));
        m.hold(t0, 0.0);
        m.hold(t0 + ms(3000), 50.0);
        assert_eq!(m.mean(), Some(50.0));
    }
}
