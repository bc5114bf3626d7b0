//! Adaptive jitter buffer with packet-loss concealment (sans-IO).
//!
//! Packets go in with their sequence number and arrival time; the playout
//! clock pulls one frame every ptime. The buffer reorders, drops duplicates
//! and late packets, and keeps its depth near a target that follows the
//! measured interarrival jitter (RFC 3550 A.8 estimator) between the
//! configured bounds. A missing frame is concealed in the manner of ITU-T
//! G.711 Appendix I: the pitch period of the recent signal is found by
//! autocorrelation and the last period repeated, at full level for 10 ms
//! then fading by 20 % per 10 ms to silence at 60 ms, with a cross-fade back
//! into the real signal, so single losses are not heard as clicks.

use std::collections::BTreeMap;

/// Packets in a row wanting a smaller target before it shrinks by a frame.
const SHRINK_AFTER: u32 = 100;

/// What the playout clock gets.
#[derive(Debug, Clone, PartialEq)]
pub enum Playout {
    /// A received frame.
    Frame(Vec<i16>),
    /// A concealment frame for a lost packet.
    Concealed(Vec<i16>),
    /// Nothing buffered yet (or underrun): silence.
    Silence,
}

/// Counters.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct JitterStats {
    /// Frames played from packets.
    pub played: u64,
    /// Frames concealed.
    pub concealed: u64,
    /// Packets that arrived after their playout time.
    pub late: u64,
    /// Duplicate packets.
    pub duplicates: u64,
    /// Playouts with an empty buffer after start.
    pub underruns: u64,
    /// Packets dropped to bound the delay.
    pub overflow_drops: u64,
}

/// The jitter buffer; see the module documentation.
#[derive(Debug)]
pub struct JitterBuffer {
    frame: usize,
    min_frames: usize,
    max_frames: usize,
    target: usize,
    packets: BTreeMap<u64, Vec<i16>>,
    next: Option<u64>,
    started: bool,
    plc: Concealer,
    shrink_votes: u32,
    conceal_run: u32,
    highest: Option<u64>,
    /// Interarrival jitter estimate in frame units × 16 (RFC 3550 fixed point).
    jitter16: i64,
    last_transit: Option<i64>,
    stats: JitterStats,
}

impl JitterBuffer {
    /// A buffer of `frame`-sample frames whose depth stays between
    /// `min_frames` and `max_frames`, starting at `start_frames`.
    pub fn new(frame: usize, min_frames: usize, start_frames: usize, max_frames: usize) -> Self {
        let min_frames = min_frames.max(1);
        let max_frames = max_frames.max(min_frames + 1);
        JitterBuffer {
            frame,
            min_frames,
            max_frames,
            target: start_frames.clamp(min_frames, max_frames),
            packets: BTreeMap::new(),
            next: None,
            started: false,
            plc: Concealer::default(),
            shrink_votes: 0,
            conceal_run: 0,
            highest: None,
            jitter16: 0,
            last_transit: None,
            stats: JitterStats::default(),
        }
    }

    /// Extends a 16-bit sequence number to 64 bits near the highest seen.
    fn extend(&self, seq: u16) -> u64 {
        match self.highest {
            None => u64::from(seq) + (1 << 16),
            Some(h) => {
                let base = h & !0xFFFF;
                let cands = [
                    base.wrapping_sub(1 << 16) | u64::from(seq),
                    base | u64::from(seq),
                    (base + (1 << 16)) | u64::from(seq),
                ];
                *cands
                    .iter()
                    .min_by_key(|&&c| c.abs_diff(h))
                    .unwrap_or(&(base | u64::from(seq)))
            }
        }
    }

    /// Adds a decoded packet. `arrival` and `timestamp` are in samples
    /// (arrival on the local clock, timestamp from RTP).
    pub fn push(&mut self, seq: u16, timestamp: u32, arrival: u64, samples: Vec<i16>) {
        let ext = self.extend(seq);
        // RFC 3550 A.8 interarrival jitter, in samples, scaled by 16.
        let transit = arrival as i64 - i64::from(timestamp);
        if let Some(prev) = self.last_transit {
            let d = (transit - prev).abs();
            self.jitter16 += d - ((self.jitter16 + 8) >> 4);
        }
        self.last_transit = Some(transit);
        if self.next.is_some_and(|n| ext < n) {
            self.stats.late += 1;
            return;
        }
        if self.packets.contains_key(&ext) {
            self.stats.duplicates += 1;
            return;
        }
        self.highest = Some(self.highest.map_or(ext, |h| h.max(ext)));
        let mut s = samples;
        s.resize(self.frame, 0);
        self.packets.insert(ext, s);
        // Bound the delay: drop the oldest beyond the maximum depth.
        while self.packets.len() > self.max_frames {
            if let Some((&k, _)) = self.packets.iter().next() {
                self.packets.remove(&k);
                self.stats.overflow_drops += 1;
                self.next = Some(k + 1);
            }
        }
        self.adapt();
    }

    fn adapt(&mut self) {
        // Target: enough frames to cover about 3 times the jitter. It grows
        // at once, and shrinks one frame at a time after SHRINK_AFTER
        // packets that all wanted less (the playout queue then drops the
        // surplus a sample at a time, in the quietest places).
        let jitter_samples = (self.jitter16 >> 4) as usize;
        let want = (1 + (3 * jitter_samples).div_ceil(self.frame.max(1)))
            .clamp(self.min_frames, self.max_frames);
        if want >= self.target {
            self.target = want;
            self.shrink_votes = 0;
        } else {
            self.shrink_votes += 1;
            if self.shrink_votes >= SHRINK_AFTER {
                self.target -= 1;
                self.shrink_votes = 0;
            }
        }
    }

    /// The current interarrival jitter in samples (RFC 3550).
    pub fn jitter_samples(&self) -> u32 {
        (self.jitter16 >> 4) as u32
    }

    /// Current target depth in frames.
    pub fn target_frames(&self) -> usize {
        self.target
    }

    /// Buffered frames.
    pub fn depth(&self) -> usize {
        self.packets.len()
    }

    /// Counters.
    pub fn stats(&self) -> &JitterStats {
        &self.stats
    }

    /// The next frame for playout (call once per frame time).
    pub fn pop(&mut self) -> Playout {
        if !self.started {
            if self.packets.len() < self.target {
                // Buffering; a loss in progress keeps fading out meanwhile.
                return if self.conceal_run > 0 {
                    self.conceal_or_silence()
                } else {
                    Playout::Silence
                };
            }
            self.started = true;
            self.next = self.packets.keys().next().copied();
        }
        let Some(next) = self.next else {
            return Playout::Silence;
        };
        // Shrink: when well above target, skip one frame (done in silence-like
        // low-level frames would be nicer; this keeps latency bounded).
        if self.packets.len() > self.target + 2 {
            if let Some((&k, _)) = self.packets.iter().next() {
                self.packets.remove(&k);
                self.stats.overflow_drops += 1;
                self.next = Some(k + 1);
                return self.pop();
            }
        }
        if let Some(mut f) = self.packets.remove(&next) {
            self.next = Some(next + 1);
            if self.conceal_run > 0 {
                self.plc.merge(&mut f);
            }
            self.plc.remember(&f);
            self.conceal_run = 0;
            self.stats.played += 1;
            return Playout::Frame(f);
        }
        if self.packets.is_empty() {
            // Nothing at all: underrun, restart buffering.
            self.stats.underruns += 1;
            self.started = false;
            return self.conceal_or_silence();
        }
        // A gap: conceal this frame and move on.
        self.next = Some(next + 1);
        self.conceal_or_silence()
    }

    fn conceal_or_silence(&mut self) -> Playout {
        self.conceal_run += 1;
        let mut out = vec![0i16; self.frame];
        if !self.plc.conceal(&mut out) {
            return Playout::Silence;
        }
        self.stats.concealed += 1;
        Playout::Concealed(out)
    }

    /// Whether playout is running (not buffering before start or after an underrun).
    pub fn is_playing(&self) -> bool {
        self.started
    }
}

/// Samples of history kept for concealment: three of the longest pitch periods.
const HISTORY: usize = 3 * MAX_PITCH;
/// Pitch search range at 8 kHz (66–200 Hz), as in G.711 Appendix I.
const MIN_PITCH: usize = 40;
const MAX_PITCH: usize = 120;
/// Correlation window for the pitch search.
const WINDOW: usize = 80;
/// Full level for the first 10 ms, then -20 % per 10 ms: silent after 60 ms.
const FADE_START: usize = 80;
const FADE_LEN: usize = 400;
/// Cross-fade from the concealment back into the signal.
const MERGE: usize = 32;

/// G.711 Appendix I style packet-loss concealment (pitch repetition with fade).
#[derive(Debug, Clone, Default)]
pub struct Concealer {
    history: Vec<i16>,
    pitch: usize,
    /// Samples concealed in the current loss (0: none).
    pos: usize,
}

impl Concealer {
    /// Records a received frame as history.
    pub fn remember(&mut self, frame: &[i16]) {
        self.history.extend_from_slice(frame);
        if self.history.len() > HISTORY {
            let cut = self.history.len() - HISTORY;
            self.history.drain(..cut);
        }
        self.pos = 0;
    }

    /// Fills `out` with concealment; `false` once the fade has reached silence
    /// (or there is no history).
    pub fn conceal(&mut self, out: &mut [i16]) -> bool {
        if self.history.len() < MAX_PITCH + WINDOW {
            return false;
        }
        if self.pos == 0 {
            self.pitch = self.find_pitch();
        }
        if self.pos >= FADE_START + FADE_LEN {
            return false;
        }
        for o in out.iter_mut() {
            *o = self.next_sample();
        }
        true
    }

    /// Cross-fades the start of the first real frame after a loss with the
    /// continuing concealment.
    pub fn merge(&mut self, frame: &mut [i16]) {
        if self.pos == 0 || self.history.len() < MAX_PITCH + WINDOW {
            return;
        }
        let n = MERGE.min(frame.len());
        for (k, s) in frame.iter_mut().take(n).enumerate() {
            let c = f32::from(self.next_sample());
            let w = (k as f32 + 0.5) / n as f32;
            *s = (c * (1.0 - w) + f32::from(*s) * w) as i16;
        }
    }

    fn next_sample(&mut self) -> i16 {
        let len = self.history.len();
        let p = self.pitch.max(1);
        // The last pitch period, repeated with its phase continuing.
        let idx = len - p + self.pos % p;
        let v = f32::from(self.history.get(idx).copied().unwrap_or(0));
        let gain = if self.pos < FADE_START {
            1.0
        } else {
            1.0 - (self.pos - FADE_START) as f32 / FADE_LEN as f32
        };
        self.pos += 1;
        (v * gain.max(0.0)) as i16
    }

    /// The lag in MIN_PITCH..=MAX_PITCH whose window best matches the latest one.
    fn find_pitch(&self) -> usize {
        let h = &self.history;
        let len = h.len();
        let tail = &h[len - WINDOW..];
        let mut best = (f64::MIN, MIN_PITCH);
        for lag in MIN_PITCH..=MAX_PITCH {
            let Some(past) = h.get(len - WINDOW - lag..len - lag) else {
                continue;
            };
            let (mut xy, mut yy) = (0f64, 0f64);
            for (&a, &b) in tail.iter().zip(past) {
                xy += f64::from(a) * f64::from(b);
                yy += f64::from(b) * f64::from(b);
            }
            let score = if yy > 0.0 { xy / yy.sqrt() } else { 0.0 };
            if score > best.0 {
                best = (score, lag);
            }
        }
        best.1
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(v: i16) -> Vec<i16> {
        vec![v; 160]
    }

    fn value(p: &Playout) -> Option<i16> {
        match p {
            Playout::Frame(f) => f.first().copied(),
            _ => None,
        }
    }

    #[test]
    fn reorders_and_drops_duplicates() {
        let mut jb = JitterBuffer::new(160, 2, 2, 10);
        jb.push(11, 160, 100, frame(2));
        jb.push(10, 0, 110, frame(1));
        jb.push(10, 0, 120, frame(1));
        jb.push(12, 320, 330, frame(3));
        assert_eq!(jb.stats().duplicates, 1);
        let got: Vec<_> = (0..3).map(|_| value(&jb.pop())).collect();
        assert_eq!(got, vec![Some(1), Some(2), Some(3)]);
        // A packet older than what was played is late.
        jb.push(9, 0, 500, frame(9));
        assert_eq!(jb.stats().late, 1);
    }

    fn tone(hz: f64, start: usize, n: usize) -> Vec<i16> {
        (start..start + n)
            .map(|k| (8000.0 * (2.0 * std::f64::consts::PI * hz * k as f64 / 8000.0).sin()) as i16)
            .collect()
    }

    fn rms(x: &[i16]) -> f64 {
        (x.iter().map(|&v| f64::from(v).powi(2)).sum::<f64>() / x.len() as f64).sqrt()
    }

    #[test]
    fn conceals_a_single_loss_of_a_voiced_signal_by_pitch_repetition() {
        // 200 Hz (pitch period 40 samples): frame 5 of 8 is lost.
        let mut jb = JitterBuffer::new(160, 1, 1, 10);
        let mut out = Vec::new();
        for k in 0..8u16 {
            if k != 5 {
                let ts = u32::from(k) * 160;
                jb.push(k, ts, u64::from(ts), tone(200.0, usize::from(k) * 160, 160));
            }
            match jb.pop() {
                Playout::Frame(f) => {
                    assert_ne!(k, 5);
                    out.extend(f)
                }
                Playout::Concealed(f) => {
                    assert_eq!(k, 5);
                    out.extend(f)
                }
                Playout::Silence => panic!("silence at {k}"),
            }
        }
        assert_eq!(jb.stats().concealed, 1);
        let truth = tone(200.0, 0, 8 * 160);
        // The concealed frame: first 10 ms at full level, close to the truth.
        let lost = &out[800..960];
        let err: Vec<i16> = lost
            .iter()
            .zip(&truth[800..960])
            .map(|(a, b)| a - b)
            .collect();
        assert!(
            rms(&err[..80]) < 0.05 * rms(&truth[800..880]),
            "{}",
            rms(&err[..80])
        );
        // Overall level kept within the fade (more than half the energy).
        assert!(rms(lost) > 0.6 * rms(&truth[800..960]), "{}", rms(lost));
        // No click: no sample-to-sample step larger than the signal's own.
        let max_step = |x: &[i16]| x.windows(2).map(|w| (w[1] - w[0]).abs()).max().unwrap_or(0);
        assert!(max_step(&out[700..1100]) <= max_step(&truth[700..1100]) + 400);
    }

    #[test]
    fn long_loss_fades_to_silence() {
        let mut jb = JitterBuffer::new(160, 1, 1, 10);
        for k in 0..3u16 {
            let ts = u32::from(k) * 160;
            jb.push(k, ts, u64::from(ts), tone(150.0, usize::from(k) * 160, 160));
            assert!(matches!(jb.pop(), Playout::Frame(_)));
        }
        let mut levels = Vec::new();
        for _ in 3..20 {
            levels.push(match jb.pop() {
                Playout::Concealed(f) => rms(&f),
                Playout::Silence => 0.0,
                Playout::Frame(_) => panic!("nothing was received for this frame"),
            });
        }
        assert!(levels[0] > 3000.0, "{levels:?}");
        assert!(levels.windows(2).all(|w| w[1] <= w[0] + 1.0), "{levels:?}");
        assert_eq!(levels[3], 0.0, "silent after 60 ms: {levels:?}");
        jb.push(20, 20 * 160, 3200, tone(150.0, 3200, 160));
        assert!(matches!(jb.pop(), Playout::Frame(_)));
    }

    #[test]
    fn sequence_wrap() {
        let mut jb = JitterBuffer::new(160, 1, 1, 10);
        jb.push(65535, 0, 0, frame(1));
        jb.push(0, 160, 160, frame(2));
        assert_eq!(value(&jb.pop()), Some(1));
        assert_eq!(value(&jb.pop()), Some(2));
    }

    /// Deterministic network: 5 % loss, reordering and up to 60 ms jitter.
    #[test]
    fn survives_loss_reorder_duplicates_and_jitter() {
        let mut jb = JitterBuffer::new(160, 2, 2, 25);
        let mut rng = 12345u32;
        let mut rand = move || {
            rng = rng.wrapping_mul(1_103_515_245).wrapping_add(12345);
            (rng >> 16) & 0x7fff
        };
        // (arrival time in samples, seq): 5 % lost, 3 % duplicated, each
        // copy delayed by 0-60 ms independently (so also reordered).
        let mut arrivals: Vec<(u64, u16)> = Vec::new();
        let n = 3000u16;
        let mut lost = 0;
        for seq in 0..n {
            if rand() % 100 < 5 {
                lost += 1;
                continue;
            }
            let copies = if rand() % 100 < 3 { 2 } else { 1 };
            for _ in 0..copies {
                let delay = u64::from(rand() % 480);
                arrivals.push((u64::from(seq) * 160 + delay, seq));
            }
        }
        arrivals.sort();
        let reordered = arrivals.windows(2).filter(|w| w[1].1 < w[0].1).count();
        assert!(reordered > 100, "the network reorders: {reordered}");
        let mut played = Vec::new();
        let mut concealed_or_silent = 0u64;
        let mut ai = 0;
        for tick in 0..(u64::from(n) + 50) {
            let now = tick * 160;
            while ai < arrivals.len() && arrivals[ai].0 <= now {
                let (t, seq) = arrivals[ai];
                jb.push(seq, u32::from(seq) * 160, t, frame(seq as i16));
                ai += 1;
            }
            match jb.pop() {
                // (The start of a frame after a loss is cross-faded; its end is not.)
                Playout::Frame(f) => played.push(f[159]),
                _ if !played.is_empty() => concealed_or_silent += 1,
                _ => {}
            }
        }
        let s = jb.stats().clone();
        // Frames come out in order, each at most once.
        assert!(played.windows(2).all(|w| w[1] > w[0]), "out of order");
        // Every arrival is accounted for: played, duplicate, late, dropped or still queued.
        assert_eq!(
            played.len() as u64 + s.duplicates + s.late + s.overflow_drops + jb.depth() as u64,
            arrivals.len() as u64,
            "{s:?}"
        );
        assert!(s.duplicates > 30, "{s:?}");
        // The target grew to cover 60 ms of jitter, so few packets were late
        // and almost everything that was sent got played.
        assert!(jb.target_frames() >= 3, "target {}", jb.target_frames());
        assert!(jb.jitter_samples() > 100, "jitter {}", jb.jitter_samples());
        assert!(s.late < 60, "{s:?}");
        assert!(
            played.len() as f64 >= 0.92 * f64::from(n),
            "played {} {s:?}",
            played.len()
        );
        // The gaps were concealed (or silent after an underrun), never skipped.
        assert!(
            concealed_or_silent >= lost,
            "{concealed_or_silent} < {lost}"
        );
    }
}
