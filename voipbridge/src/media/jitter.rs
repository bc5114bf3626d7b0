//! Adaptive jitter buffer with packet-loss concealment (sans-IO).
//!
//! Packets go in with their sequence number and arrival time; the playout
//! clock pulls one frame every ptime. The buffer reorders, drops duplicates
//! and late packets, and keeps its depth near a target that follows the
//! measured interarrival jitter (RFC 3550 A.8 estimator) between the
//! configured bounds. A missing frame is concealed by repeating the last one
//! at half the level (then silence), as in G.711 Appendix I's simplest form,
//! so single losses are not heard as clicks.

use std::collections::BTreeMap;

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
    last: Vec<i16>,
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
            last: vec![0; frame],
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
        // Target: enough frames to cover about 3 times the jitter.
        let jitter_samples = (self.jitter16 >> 4) as usize;
        let want = 1 + (3 * jitter_samples).div_ceil(self.frame.max(1));
        self.target = want.clamp(self.min_frames, self.max_frames);
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
                return Playout::Silence;
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
        if let Some(f) = self.packets.remove(&next) {
            self.next = Some(next + 1);
            self.last.clone_from(&f);
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
        if self.conceal_run > 3 {
            return Playout::Silence;
        }
        for s in self.last.iter_mut() {
            *s /= 2;
        }
        self.stats.concealed += 1;
        Playout::Concealed(self.last.clone())
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

    #[test]
    fn conceals_a_single_loss_at_half_level() {
        let mut jb = JitterBuffer::new(160, 1, 1, 10);
        jb.push(1, 0, 0, frame(1000));
        jb.push(3, 320, 320, frame(3000));
        assert_eq!(value(&jb.pop()), Some(1000));
        assert_eq!(jb.pop(), Playout::Concealed(frame(500)));
        assert_eq!(value(&jb.pop()), Some(3000));
        assert_eq!(jb.stats().concealed, 1);
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
    fn survives_loss_reorder_and_jitter() {
        let mut jb = JitterBuffer::new(160, 2, 2, 25);
        let mut rng = 12345u32;
        let mut rand = move || {
            rng = rng.wrapping_mul(1_103_515_245).wrapping_add(12345);
            (rng >> 16) & 0x7fff
        };
        // (arrival time in samples, seq)
        let mut arrivals: Vec<(u64, u16)> = Vec::new();
        let n = 2000u16;
        for seq in 0..n {
            if rand() % 100 < 5 {
                continue; // lost
            }
            let delay = u64::from(rand() % 480); // 0..60 ms
            arrivals.push((u64::from(seq) * 160 + delay, seq));
        }
        arrivals.sort();
        let mut played = 0u64;
        let mut ai = 0;
        // Playout every 160 samples, starting after the first arrival.
        for tick in 0..(u64::from(n) + 50) {
            let now = tick * 160;
            while ai < arrivals.len() && arrivals[ai].0 <= now {
                let (t, seq) = arrivals[ai];
                jb.push(seq, u32::from(seq) * 160, t, frame(seq as i16));
                ai += 1;
            }
            if let Playout::Frame(_) = jb.pop() {
                played += 1;
            }
        }
        let s = jb.stats().clone();
        let received = arrivals.len() as u64;
        // Nearly everything received is played; the rest is late or dropped, and is counted.
        assert_eq!(
            played + s.late + s.overflow_drops + jb.depth() as u64,
            received,
            "{s:?}"
        );
        assert!(
            played as f64 >= 0.9 * received as f64,
            "played {played} of {received}: {s:?}"
        );
        assert!(
            jb.jitter_samples() > 50,
            "jitter estimate {}",
            jb.jitter_samples()
        );
        assert!(jb.target_frames() >= 2);
    }
}
