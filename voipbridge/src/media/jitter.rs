//! Adaptive jitter buffer with packet-loss concealment (sans-IO).
//!
//! Packets go in with their sequence number and arrival time; the playout
//! clock pulls one frame every packet time. The buffer reorders, drops
//! duplicates and late packets, and keeps its depth near a target that
//! follows the measured interarrival jitter (RFC 3550 A.8 estimator) between
//! the configured bounds. A missing frame is concealed in the manner of
//! ITU-T G.711 Appendix I: the pitch period of the recent signal is found by
//! autocorrelation and the last period repeated, at full level for 10 ms
//! then fading by 20 % per 10 ms to silence at 60 ms, with a cross-fade back
//! into the real signal, so single losses are not heard as clicks.
//!
//! Frames are kept as the G.711 codes they arrived in, in a ring of
//! fixed slots allocated once: a packet costs no allocation, and a frame
//! that plays as received leaves bit-exact (the card can take the codes
//! as they are). Concealment works on the decoded signal and is encoded
//! back to the call's law.

/// Packets in a row wanting a smaller target before it shrinks by a frame.
const SHRINK_AFTER: u32 = 100;

/// What one playout pull produced (the frame itself is in the caller's buffer).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Playout {
    /// A received frame.
    Frame,
    /// A concealment frame for a lost packet.
    Concealed,
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
    /// Restarts after a jump of the sequence numbers.
    pub restarts: u64,
}

/// The jitter buffer; see the module documentation.
#[derive(Debug)]
pub struct JitterBuffer {
    law: g711::Law,
    frame: usize,
    min_frames: usize,
    max_frames: usize,
    target: usize,
    /// Ring of `cap` slots of `frame` codes each, slot `ext % cap`.
    data: Vec<u8>,
    /// Extended sequence number held by each slot, `None` when empty.
    held: Vec<Option<u64>>,
    cap: u64,
    count: usize,
    next: Option<u64>,
    started: bool,
    plc: Concealer,
    shrink_votes: u32,
    conceal_run: u32,
    highest: Option<u64>,
    /// Interarrival jitter estimate in samples × 16 (RFC 3550 fixed point).
    jitter16: i64,
    last_transit: Option<i64>,
    stats: JitterStats,
}

impl JitterBuffer {
    /// A buffer of `frame`-sample frames of `law` codes whose depth stays
    /// between `min_frames` and `max_frames`, starting at `start_frames`.
    pub fn new(
        law: g711::Law,
        frame: usize,
        min_frames: usize,
        start_frames: usize,
        max_frames: usize,
    ) -> Self {
        let frame = frame.max(1);
        let min_frames = min_frames.max(1);
        let max_frames = max_frames.max(min_frames + 1);
        // Room for the deepest buffer plus as many gaps again.
        let cap = 2 * max_frames + 4;
        JitterBuffer {
            law,
            frame,
            min_frames,
            max_frames,
            target: start_frames.clamp(min_frames, max_frames),
            data: vec![law.silence(); cap * frame],
            held: vec![None; cap],
            cap: cap as u64,
            count: 0,
            next: None,
            started: false,
            plc: Concealer::new(law),
            shrink_votes: 0,
            conceal_run: 0,
            highest: None,
            jitter16: 0,
            last_transit: None,
            stats: JitterStats::default(),
        }
    }

    /// Samples per frame.
    pub fn frame(&self) -> usize {
        self.frame
    }

    /// The law of the codes.
    pub fn law(&self) -> g711::Law {
        self.law
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

    fn slot(&self, ext: u64) -> usize {
        (ext % self.cap) as usize
    }

    fn holds(&self, ext: u64) -> bool {
        self.held.get(self.slot(ext)).copied().flatten() == Some(ext)
    }

    /// The oldest buffered frame.
    fn oldest(&self) -> Option<u64> {
        self.held.iter().flatten().copied().min()
    }

    fn remove(&mut self, ext: u64) {
        let i = self.slot(ext);
        if let Some(h) = self.held.get_mut(i) {
            if *h == Some(ext) {
                *h = None;
                self.count -= 1;
            }
        }
    }

    fn drop_oldest(&mut self) {
        if let Some(k) = self.oldest() {
            self.remove(k);
            self.stats.overflow_drops += 1;
            self.next = Some(k + 1);
        }
    }

    /// Adds a packet's codes. `arrival` and `timestamp` are in samples
    /// (arrival on the local clock, timestamp from RTP). A payload shorter
    /// than a frame is padded with silence, a longer one cut.
    pub fn push(&mut self, seq: u16, timestamp: u32, arrival: u64, codes: &[u8]) {
        let ext = self.extend(seq);
        if let Some(n) = self.next {
            if ext >= n + self.cap || ext + self.cap < n {
                // Far outside anything reordering explains: the peer
                // restarted its numbering (RFC 3550 A.1). Start afresh.
                self.restart(ext);
            }
        }
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
        if self.holds(ext) {
            self.stats.duplicates += 1;
            return;
        }
        self.highest = Some(self.highest.map_or(ext, |h| h.max(ext)));
        // Bound the delay: drop the oldest beyond the maximum depth, and
        // whatever is too old to share the ring with this packet (a jump
        // of the sequence numbers empties it).
        while self.count > 0
            && (self.count >= self.max_frames || self.oldest().is_some_and(|o| ext >= o + self.cap))
        {
            self.drop_oldest();
        }
        let i = self.slot(ext);
        let f = self.frame;
        let silence = self.law.silence();
        if let (Some(dst), Some(h)) = (self.data.get_mut(i * f..(i + 1) * f), self.held.get_mut(i))
        {
            let n = codes.len().min(f);
            dst[..n].copy_from_slice(&codes[..n]);
            dst[n..].fill(silence);
            *h = Some(ext);
            self.count += 1;
        }
        self.adapt();
    }

    fn restart(&mut self, ext: u64) {
        self.stats.overflow_drops += self.count as u64;
        self.stats.restarts += 1;
        self.held.fill(None);
        self.count = 0;
        self.next = None;
        self.started = false;
        self.highest = Some(ext);
        // Its timestamps restart too: no jitter across the jump.
        self.last_transit = None;
    }

    fn adapt(&mut self) {
        // Target: enough frames to cover about 3 times the jitter. It grows
        // at once, and shrinks one frame at a time after SHRINK_AFTER
        // packets that all wanted less (the playout queue then drops the
        // surplus a sample at a time, in the quietest places).
        let jitter_samples = (self.jitter16 >> 4) as usize;
        let want =
            (1 + (3 * jitter_samples).div_ceil(self.frame)).clamp(self.min_frames, self.max_frames);
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
        self.count
    }

    /// Counters.
    pub fn stats(&self) -> &JitterStats {
        &self.stats
    }

    /// The next frame for playout (call once per frame time): writes
    /// [`frame`](Self::frame) codes into `out` (which must hold that many).
    pub fn pop(&mut self, out: &mut [u8]) -> Playout {
        let Some(out) = out.get_mut(..self.frame) else {
            return Playout::Silence;
        };
        if !self.started {
            if self.count < self.target {
                // Buffering; a loss in progress keeps fading out meanwhile.
                return if self.conceal_run > 0 {
                    self.conceal_or_silence(out)
                } else {
                    out.fill(self.law.silence());
                    Playout::Silence
                };
            }
            self.started = true;
            self.next = self.oldest();
        }
        let Some(mut next) = self.next else {
            out.fill(self.law.silence());
            return Playout::Silence;
        };
        // Shrink: when well above target, skip the oldest frames (keeps
        // the latency bounded after a burst).
        while self.count > self.target + 2 {
            self.drop_oldest();
            next = self.next.unwrap_or(next);
        }
        if self.holds(next) {
            let i = self.slot(next);
            let f = self.frame;
            if let Some(src) = self.data.get(i * f..(i + 1) * f) {
                out.copy_from_slice(src);
            }
            self.remove(next);
            self.next = Some(next + 1);
            if self.conceal_run > 0 {
                self.plc.merge(out);
            }
            self.plc.remember(out);
            self.conceal_run = 0;
            self.stats.played += 1;
            return Playout::Frame;
        }
        if self.count == 0 {
            // Nothing at all: underrun, restart buffering.
            self.stats.underruns += 1;
            self.started = false;
            return self.conceal_or_silence(out);
        }
        // A gap: conceal this frame and move on.
        self.next = Some(next + 1);
        self.conceal_or_silence(out)
    }

    fn conceal_or_silence(&mut self, out: &mut [u8]) -> Playout {
        self.conceal_run += 1;
        if !self.plc.conceal(out) {
            out.fill(self.law.silence());
            return Playout::Silence;
        }
        self.stats.concealed += 1;
        Playout::Concealed
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
///
/// It keeps the decoded history of what played (at most [`HISTORY`]
/// samples, in a buffer allocated once) and writes codes of its law.
#[derive(Debug, Clone)]
pub struct Concealer {
    law: g711::Law,
    history: Vec<i16>,
    pitch: usize,
    /// Samples concealed in the current loss (0: none).
    pos: usize,
}

impl Concealer {
    /// A concealer for codes of `law`.
    pub fn new(law: g711::Law) -> Concealer {
        Concealer {
            law,
            history: Vec::with_capacity(2 * HISTORY),
            pitch: MIN_PITCH,
            pos: 0,
        }
    }

    /// Records a received frame (codes) as history.
    pub fn remember(&mut self, frame: &[u8]) {
        let keep = HISTORY.saturating_sub(frame.len()).min(self.history.len());
        let cut = self.history.len() - keep;
        self.history.drain(..cut);
        let law = self.law;
        let tail = frame
            .get(frame.len().saturating_sub(HISTORY)..)
            .unwrap_or_default();
        self.history.extend(tail.iter().map(|&c| law.decode_one(c)));
        self.pos = 0;
    }

    /// Fills `out` with concealment codes; `false` once the fade has reached
    /// silence (or there is no history).
    pub fn conceal(&mut self, out: &mut [u8]) -> bool {
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
            *o = self.law.encode_one(self.next_sample());
        }
        true
    }

    /// Cross-fades the start of the first real frame (codes) after a loss
    /// with the continuing concealment.
    pub fn merge(&mut self, frame: &mut [u8]) {
        if self.pos == 0 || self.history.len() < MAX_PITCH + WINDOW {
            return;
        }
        let n = MERGE.min(frame.len());
        let law = self.law;
        for (k, s) in frame.iter_mut().take(n).enumerate() {
            let c = f32::from(self.next_sample());
            let w = (k as f32 + 0.5) / n as f32;
            let v = (c * (1.0 - w) + f32::from(law.decode_one(*s)) * w) as i16;
            *s = law.encode_one(v);
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
    use g711::Law;

    const MU: Law = Law::MuLaw;

    /// A frame whose last two codes carry `v` (the first 32 may be
    /// cross-faded after a loss; the rest arrive untouched).
    fn frame(v: u16) -> Vec<u8> {
        let mut f = vec![0x55u8; 160];
        f[158..].copy_from_slice(&v.to_be_bytes());
        f
    }

    fn tag(f: &[u8]) -> u16 {
        u16::from_be_bytes([f[158], f[159]])
    }

    fn pop(jb: &mut JitterBuffer) -> (Playout, Vec<u8>) {
        let mut out = vec![0u8; jb.frame()];
        let p = jb.pop(&mut out);
        (p, out)
    }

    fn value(jb: &mut JitterBuffer) -> Option<u16> {
        match pop(jb) {
            (Playout::Frame, f) => Some(tag(&f)),
            _ => None,
        }
    }

    #[test]
    fn reorders_and_drops_duplicates() {
        let mut jb = JitterBuffer::new(MU, 160, 2, 2, 10);
        jb.push(11, 160, 100, &frame(2));
        jb.push(10, 0, 110, &frame(1));
        jb.push(10, 0, 120, &frame(1));
        jb.push(12, 320, 330, &frame(3));
        assert_eq!(jb.stats().duplicates, 1);
        let got: Vec<_> = (0..3).map(|_| value(&mut jb)).collect();
        assert_eq!(got, vec![Some(1), Some(2), Some(3)]);
        // A packet older than what was played is late.
        jb.push(9, 0, 500, &frame(9));
        assert_eq!(jb.stats().late, 1);
    }

    #[test]
    fn frames_play_bit_exact_and_short_payloads_are_padded_with_silence() {
        let mut jb = JitterBuffer::new(Law::ALaw, 160, 1, 1, 10);
        let codes: Vec<u8> = (0..160).map(|k| (k * 7 + 3) as u8).collect();
        jb.push(1, 0, 0, &codes);
        assert_eq!(pop(&mut jb), (Playout::Frame, codes.clone()));
        jb.push(2, 160, 160, &codes[..100]);
        let (p, f) = pop(&mut jb);
        assert_eq!(p, Playout::Frame);
        assert_eq!(&f[..100], &codes[..100]);
        assert!(f[100..].iter().all(|&c| c == Law::ALaw.silence()));
    }

    #[test]
    fn a_sequence_jump_restarts_instead_of_concealing_the_gap() {
        let mut jb = JitterBuffer::new(MU, 160, 1, 1, 10);
        for k in 0..5u16 {
            jb.push(k, u32::from(k) * 160, u64::from(k) * 160, &frame(k));
            assert_eq!(value(&mut jb), Some(k));
        }
        // The peer restarts its numbering 20 000 ahead without a new SSRC.
        jb.push(20_000, 0, 800, &frame(7));
        jb.push(20_001, 160, 960, &frame(8));
        let got: Vec<_> = (0..4).map(|_| value(&mut jb)).collect();
        assert!(got.contains(&Some(7)) && got.contains(&Some(8)), "{got:?}");
        assert!(jb.stats().concealed <= 3, "{:?}", jb.stats());
        assert_eq!(jb.stats().restarts, 1);
        // And back 19 000: not late forever, a restart again.
        jb.push(1_000, 0, 1600, &frame(9));
        let got: Vec<_> = (0..3).map(|_| value(&mut jb)).collect();
        assert!(got.contains(&Some(9)), "{got:?}");
        assert_eq!(jb.stats().restarts, 2);
    }

    fn tone(hz: f64, start: usize, n: usize) -> Vec<i16> {
        (start..start + n)
            .map(|k| (8000.0 * (2.0 * std::f64::consts::PI * hz * k as f64 / 8000.0).sin()) as i16)
            .collect()
    }

    fn codes(x: &[i16]) -> Vec<u8> {
        let mut c = vec![0u8; x.len()];
        MU.encode(x, &mut c);
        c
    }

    fn linear(c: &[u8]) -> Vec<i16> {
        let mut x = vec![0i16; c.len()];
        MU.decode(c, &mut x);
        x
    }

    fn rms(x: &[i16]) -> f64 {
        (x.iter().map(|&v| f64::from(v).powi(2)).sum::<f64>() / x.len() as f64).sqrt()
    }

    #[test]
    fn conceals_a_single_loss_of_a_voiced_signal_by_pitch_repetition() {
        // 200 Hz (pitch period 40 samples): frame 5 of 8 is lost.
        let mut jb = JitterBuffer::new(MU, 160, 1, 1, 10);
        let mut out = Vec::new();
        for k in 0..8u16 {
            if k != 5 {
                let ts = u32::from(k) * 160;
                jb.push(
                    k,
                    ts,
                    u64::from(ts),
                    &codes(&tone(200.0, usize::from(k) * 160, 160)),
                );
            }
            match pop(&mut jb) {
                (Playout::Frame, f) => {
                    assert_ne!(k, 5);
                    out.extend(linear(&f))
                }
                (Playout::Concealed, f) => {
                    assert_eq!(k, 5);
                    out.extend(linear(&f))
                }
                (Playout::Silence, _) => panic!("silence at {k}"),
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
        let mut jb = JitterBuffer::new(MU, 160, 1, 1, 10);
        for k in 0..3u16 {
            let ts = u32::from(k) * 160;
            jb.push(
                k,
                ts,
                u64::from(ts),
                &codes(&tone(150.0, usize::from(k) * 160, 160)),
            );
            assert_eq!(pop(&mut jb).0, Playout::Frame);
        }
        let mut levels = Vec::new();
        for _ in 3..20 {
            levels.push(match pop(&mut jb) {
                (Playout::Concealed, f) => rms(&linear(&f)),
                (Playout::Silence, f) => {
                    assert!(f.iter().all(|&c| c == MU.silence()));
                    0.0
                }
                (Playout::Frame, _) => panic!("nothing was received for this frame"),
            });
        }
        assert!(levels[0] > 3000.0, "{levels:?}");
        assert!(levels.windows(2).all(|w| w[1] <= w[0] + 1.0), "{levels:?}");
        assert_eq!(levels[3], 0.0, "silent after 60 ms: {levels:?}");
        jb.push(20, 20 * 160, 3200, &codes(&tone(150.0, 3200, 160)));
        assert_eq!(pop(&mut jb).0, Playout::Frame);
    }

    #[test]
    fn sequence_wrap() {
        let mut jb = JitterBuffer::new(MU, 160, 1, 1, 10);
        jb.push(65535, 0, 0, &frame(1));
        jb.push(0, 160, 160, &frame(2));
        assert_eq!(value(&mut jb), Some(1));
        assert_eq!(value(&mut jb), Some(2));
    }

    /// Deterministic network: 5 % loss, reordering and up to 60 ms jitter.
    #[test]
    fn survives_loss_reorder_duplicates_and_jitter() {
        let mut jb = JitterBuffer::new(MU, 160, 2, 2, 25);
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
                jb.push(seq, u32::from(seq) * 160, t, &frame(seq));
                ai += 1;
            }
            match pop(&mut jb) {
                // (The start of a frame after a loss is cross-faded; its end is not.)
                (Playout::Frame, f) => played.push(tag(&f)),
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
