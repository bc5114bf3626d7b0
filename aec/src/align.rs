//! Which reference the canceller gets with each microphone block.
//!
//! The reference is what was written to the playback device, in order;
//! the microphone is read some time later. A reference sample written when
//! `W` samples had been written in all leaves the speaker `Dp` frames later
//! (the playback device's `snd_pcm_delay`, which on snd-voip includes the
//! RTOS speaker ring), and the microphone sample captured at that instant
//! is read `Dc` frames later (the capture device's `snd_pcm_delay`, which
//! includes the RTOS microphone ring). So when the newest microphone sample
//! has just been read, the reference sample that was playing when it was
//! captured is `W − Dp − Dc`: the card knows that to the frame. The
//! [`Aligner`] hands the canceller, with each microphone block, the
//! reference up to that position plus a small lead (the canceller must see
//! a reference sample before its echo), so the only delay the canceller's
//! own estimator still has to find is what no device counts: the codec's
//! buffers and the air, a few milliseconds on a real board. Without device
//! delays (files, tones, another card) the estimator finds all of it, as
//! in every other phone.
//!
//! **Drift.** When the speaker's and the microphone's codecs run on
//! different clocks, the reference advances `ρ = f_spk / f_mic` samples
//! per microphone sample and the echo path seems to slide through the
//! canceller's filter (0.3 ms a second at 300 ppm), which no adaptive
//! filter tracks well. The aligner instead reads the reference at
//! fractional positions `p, p + ρ, p + 2ρ, …` ([`crate::resample`]), and
//! steers `ρ` and `p` towards a line fitted to the targets above: the
//! canceller sees the speaker on the microphone's clock, and a fixed echo
//! path.
//!
//! **Which line.** The devices' delays are read at whole transfers, and
//! an RTOS moves its rings in bursts (its DMA periods): the microphone
//! ring's newest frame is up to a burst older than "now", and the speaker
//! ring has up to a burst more in flight than its fill says. Both errors
//! make the measured target too *new*, never too old, by up to a burst,
//! and which of the two values a read sees depends on the phase between
//! the card's clock and the RTOS's, which drifts over seconds (measured on
//! the emulated board: targets in two states a 20 ms period apart, in
//! proportions that changed over ten seconds). A mean follows those
//! proportions; a phase-locked loop fast enough to track a drift within
//! seconds chases them (its ratio swung between −2000 and +2000 ppm there,
//! sliding the echo path through the canceller). So the line goes through
//! the *lower envelope*: the smallest target of each second, least
//! squares over the last [`MINIMA`] seconds. Its slope is the drift
//! (taken only once known to [`SLOPE_SE`]); the read position glides onto
//! it over [`GLIDE_BLOCKS`] blocks, at most [`MAX_GLIDE`] beyond the
//! slope, so it moves by a fraction of a sample per block.
//!
//! **Not even the envelope is exact** on the emulated board: a board call
//! traced block by block (`VB_LOG=voipbridge::dsp=trace`) showed the
//! seconds' minima flipping between states 10 ms apart and single
//! targets 10-20 ms below them, and every jump of the read after them
//! was followed by 0.1-0.5 s of echo while the canceller re-converged.
//! So the read holds within [`MOVE_BLOCKS`] of the line (an offset the
//! canceller's own estimator absorbs) and the line moves only for a
//! whole second [`RISE_BLOCKS`] or [`FALL_BLOCKS`] off it.
//!
//! **Discontinuities.** A playback underrun plays silence the reference
//! does not have; an overrun drops microphone frames: the echo path jumps.
//! The media engine knows when ([`Aligner::discontinuity`]): the line
//! starts again from the lowest target of the next [`RESTART_BLOCKS`]
//! blocks (slope kept), the canceller getting a silent reference
//! meanwhile. Unannounced, a target more than [`JUMP_BLOCKS`] blocks newer
//! than the read starts a new line; a lower one shows at once in the
//! envelope (when [`FALL_BLOCKS`] below) and a higher one after a whole
//! second, and the read jumps onto the line when it is more than
//! [`MOVE_BLOCKS`] off, else glides.
//!
//! The reference is kept with absolute indices (bounded), so a playback
//! thread that writes in bursts changes nothing: only the positions do.

use std::collections::VecDeque;

use crate::resample::{self, HALF_TAPS};

/// Blocks (10 ms) per second of the lower envelope: the smallest target
/// of each is one point of the line.
const BUCKET_BLOCKS: u32 = 100;
/// Seconds of minima the line is fitted to.
const MINIMA: usize = 20;
/// A slope is taken only once its standard error is under this (50 ppm;
/// before, the previous one stays, at first none). A forced fit was worse
/// than none: the board's minima flip between states 80 frames apart, and
/// ten of them leave ±550 ppm, which the read then slid along; a board
/// whose speaker and microphone share the RTOS's clock has no drift.
const SLOPE_SE: f64 = 50e-6;
/// Minima that come a quarter second apart at a line's start, and the
/// fewest a slope is fitted from.
const EARLY_MINIMA: usize = 5;
/// The read position closes its distance to the line over this many
/// blocks (1 s), at most [`MAX_GLIDE`] faster or slower than the line.
const GLIDE_BLOCKS: f64 = 100.0;
/// The fastest glide beyond the line's slope: 100 ppm, a drift the
/// canceller follows (a board's measured lines wander by a burst within
/// seconds; gliding after them at 2000 ppm slid the echo path through the
/// canceller's filter).
const MAX_GLIDE: f64 = 1.0e-4;
/// The most the two clocks may differ: 2000 ppm.
const MAX_DRIFT: f64 = 2.0e-3;
/// Blocks looked at after a discontinuity before the new line starts at
/// their smallest target (60 ms: three 20 ms transfers).
const RESTART_BLOCKS: u32 = 6;
/// A target this many blocks newer than the read position starts a new
/// line at once (80 ms: a capture overrun nobody announced).
const JUMP_BLOCKS: f64 = 8.0;
/// The read position jumps onto the line when more than this many blocks
/// off it (20 ms), and glides when closer: each jump costs the canceller
/// a re-convergence (the far end hears its echo meanwhile), while an
/// offset this small is inside its own delay search. On the emulated
/// board the seconds' minima flip between states a burst apart (10 ms)
/// and single targets fall 10-20 ms below them.
const MOVE_BLOCKS: f64 = 2.0;
/// A whole second whose smallest target is this many blocks above the
/// line (25 ms: beyond the minima's states and outliers) moves the line
/// up to it.
const RISE_BLOCKS: f64 = 2.5;
/// The same below the line; also a single target this far below moves
/// the line at once.
const FALL_BLOCKS: f64 = 2.5;

/// The lower envelope of the targets as a line: `y = a + s·k`, `y` the
/// target less the nominal position (a block per block), `k` the block
/// count since the line started.
#[derive(Debug, Clone)]
struct Envelope {
    minima: VecDeque<(f64, f64)>,
    bucket_min: f64,
    bucket_k: f64,
    bucket_n: u32,
    k: f64,
    slope: f64,
    /// `slope` was fitted to these minima (not carried over).
    fitted: bool,
    /// Samples per block (the thresholds are in blocks).
    block: f64,
}

impl Envelope {
    /// For blocks of `b` samples, starting with `slope` (samples per block).
    fn new(slope: f64, b: f64) -> Envelope {
        Envelope {
            minima: VecDeque::with_capacity(MINIMA),
            bucket_min: f64::INFINITY,
            bucket_k: 0.0,
            bucket_n: 0,
            k: 0.0,
            slope,
            fitted: false,
            block: b,
        }
    }

    /// The next block; `y`: its target less the nominal position (`None`:
    /// no usable target).
    fn block(&mut self, y: Option<f64>) {
        self.k += 1.0;
        if let Some(y) = y {
            if y < self.bucket_min {
                self.bucket_min = y;
                self.bucket_k = self.k;
            }
        }
        self.bucket_n += 1;
        // The first minima come four times as often, so that a steady
        // drift shows (and is fitted) within a second or two.
        let len = if self.minima.len() < EARLY_MINIMA && !self.fitted {
            BUCKET_BLOCKS / 4
        } else {
            BUCKET_BLOCKS
        };
        if self.bucket_n < len {
            return;
        }
        if self.bucket_min.is_finite() {
            // A whole bucket (a second; a quarter at first) off the line by
            // more than the minima scatter (above: by more than a burst
            // explains): the echo path moved. Start from this bucket.
            if self.line_at(self.bucket_k).is_some_and(|l| {
                self.bucket_min > l + RISE_BLOCKS * self.block
                    || self.bucket_min < l - FALL_BLOCKS * self.block
            }) {
                self.minima.clear();
            }
            if self.minima.len() == MINIMA {
                self.minima.pop_front();
            }
            self.minima.push_back((self.bucket_k, self.bucket_min));
        }
        self.bucket_min = f64::INFINITY;
        self.bucket_n = 0;
        if self.minima.len() >= EARLY_MINIMA {
            let n = self.minima.len() as f64;
            let mk = self.minima.iter().map(|m| m.0).sum::<f64>() / n;
            let my = self.minima.iter().map(|m| m.1).sum::<f64>() / n;
            let (sxx, sxy) = self.minima.iter().fold((0.0, 0.0), |(xx, xy), m| {
                (xx + (m.0 - mk) * (m.0 - mk), xy + (m.0 - mk) * (m.1 - my))
            });
            if sxx > 0.0 {
                let slope = sxy / sxx;
                // Known once its standard error (from the minima's scatter
                // about it) is under SLOPE_SE: a steady drift, or none, on
                // a quiet path within two seconds; on a bursty one after
                // tens of seconds, or never.
                let ss = self.minima.iter().map(|m| {
                    let r = m.1 - my - slope * (m.0 - mk);
                    r * r
                });
                let se = (ss.sum::<f64>() / (n - 2.0) / sxx).sqrt();
                if se < SLOPE_SE * self.block {
                    let max = MAX_DRIFT * self.block;
                    self.slope = slope.clamp(-max, max);
                    self.fitted = true;
                }
            }
        }
    }

    /// The fitted line at block `k` (`None` before the first second).
    fn line_at(&self, k: f64) -> Option<f64> {
        let n = self.minima.len() as f64;
        let a = self
            .minima
            .iter()
            .map(|m| m.1 - self.slope * m.0)
            .sum::<f64>()
            / n;
        (!self.minima.is_empty()).then_some(a + self.slope * k)
    }

    /// The line at the current block (`None` before any target): the
    /// fitted one, or the running second's smallest target where that is
    /// far enough below it for the read to jump (a fall shows at once;
    /// smaller ones wait for the second's end, or the line would flip
    /// with the minima's scatter and the read slide after it).
    fn now(&self) -> Option<f64> {
        let running = self
            .bucket_min
            .is_finite()
            .then_some(self.bucket_min + self.slope * (self.k - self.bucket_k));
        match (self.line_at(self.k), running) {
            // Far enough below for the read to jump.
            (Some(l), Some(r)) if r < l - FALL_BLOCKS * self.block => Some(r),
            (l, r) => l.or(r),
        }
    }
}

/// Hands out reference blocks aligned to microphone blocks.
#[derive(Debug)]
pub struct Aligner {
    block: usize,
    lead: f64,
    /// Reference samples (as f32, what the interpolator reads); `queue[0]`
    /// has absolute index `base`.
    queue: VecDeque<f32>,
    base: u64,
    /// Reference samples written in all.
    written: u64,
    /// The last device delay measured (`Dp + Dc`), frames.
    delay: u64,
    /// Position of the next reference sample to hand out.
    pos: Option<f64>,
    /// Reference samples per microphone sample.
    ratio: f64,
    /// The line the read position is steered to, over `target − nominal`,
    /// `nominal` advancing a block per block from where the line started.
    line: Envelope,
    nominal: f64,
    /// After [`Aligner::discontinuity`]: blocks still to look at before
    /// the new line starts, and the smallest `target − nominal` seen.
    restart_pending: Option<(u32, f64)>,
    max_queue: usize,
    /// Blocks that needed reference not yet written (given as silence).
    starved: u64,
    /// Reference samples dropped unread (the queue was full).
    dropped: u64,
    /// Re-synchronisations (start, steps, stalls).
    resyncs: u64,
    scratch: Vec<f32>,
    /// `written` when the previous block was handed out.
    written_before: u64,
    /// Blocks handed out since the reference last grew.
    unwritten: u32,
}

impl Aligner {
    /// Blocks of `block` samples; the reference leads its echo by `lead`
    /// samples; at most `max_queue` reference samples are kept.
    pub fn new(block: usize, lead: usize, max_queue: usize) -> Aligner {
        Aligner {
            block,
            lead: lead as f64,
            queue: VecDeque::new(),
            base: 0,
            written: 0,
            delay: 0,
            pos: None,
            ratio: 1.0,
            line: Envelope::new(0.0, block as f64),
            nominal: 0.0,
            restart_pending: None,
            max_queue: max_queue.max(4 * block + 2 * HALF_TAPS),
            starved: 0,
            dropped: 0,
            resyncs: 0,
            written_before: 0,
            unwritten: 0,
            scratch: vec![0.0; 2 * HALF_TAPS],
        }
    }

    /// Reference samples written to the playback device, in order.
    pub fn push(&mut self, reference: &[i16]) {
        self.queue.extend(reference.iter().map(|&v| f32::from(v)));
        self.written += reference.len() as u64;
        let read = self.pos.map_or(0, |p| p.floor().max(0.0) as u64);
        while self.queue.len() > self.max_queue {
            self.queue.pop_front();
            if self.base >= read {
                self.dropped += 1;
            }
            self.base += 1;
        }
    }

    /// The device delay `Dp + Dc` measured with this read, frames (`None`:
    /// not known, taken as 0).
    pub fn measure(&mut self, delay: Option<u64>) {
        self.delay = delay.unwrap_or(0);
    }

    /// The last device delay measured, frames.
    pub fn delay(&self) -> u64 {
        self.delay
    }

    /// Reference samples per microphone sample (1 + drift).
    pub fn ratio(&self) -> f64 {
        self.ratio
    }

    /// Where the reference for a microphone block should end, as a
    /// position: `W − D + lead − newer`, and never closer to `W` than the
    /// interpolator's half-width.
    fn target(&self, newer: usize) -> f64 {
        let w = self.written as f64;
        (w - self.delay as f64 + self.lead - newer as f64).min(w - HALF_TAPS as f64)
    }

    /// The reference for the microphone block whose last sample is `newer`
    /// samples older than the newest one just read: `block` samples into
    /// `out` (replacing its contents).
    pub fn next_block(&mut self, newer: usize, out: &mut Vec<i16>) {
        let b = self.block as f64;
        let target = self.target(newer);
        // The targets count only while the reference is being written (a
        // block or two without a write is the usual rhythm: 20 ms writes,
        // 10 ms blocks). When the playback side stalls, the speaker soon
        // plays nothing and the target falls back: that is not an older
        // echo path, and the read must not replay old reference. It reads
        // on along the line, past the end of what was written: silence.
        if self.written == self.written_before {
            self.unwritten = self.unwritten.saturating_add(1);
        } else {
            self.unwritten = 0;
        }
        let fresh = self.unwritten <= 1;
        self.written_before = self.written;
        match (self.pos, self.restart_pending) {
            (Some(p), Some((left, low))) => {
                // The path jumped: wait for the new one's lower envelope
                // to show (one target may be a burst too new), then start
                // there. Meanwhile the canceller gets silence: the old
                // line's reference is the wrong one, and adapting to it
                // would spoil the filter the new line can keep.
                self.nominal += b;
                let low = if fresh {
                    low.min(target - self.nominal)
                } else {
                    low
                };
                if left <= 1 && low.is_finite() {
                    self.restart_pending = None;
                    self.restart(self.nominal + low, b);
                } else {
                    self.restart_pending = Some((left.saturating_sub(1), low));
                    self.pos = Some(p + b * self.ratio);
                    out.clear();
                    out.resize(self.block, 0);
                    return;
                }
            }
            (Some(p), None) => {
                self.nominal += b;
                let y = fresh.then_some(target - self.nominal);
                self.line.block(y);
                let end = p + b * self.ratio;
                let line = self.line.now().map(|y| self.nominal + y);
                if fresh && target - end > JUMP_BLOCKS * b {
                    self.restart(target, b);
                } else if let Some(l) = line {
                    let slope = self.line.slope / b;
                    if fresh && (l - end).abs() > MOVE_BLOCKS * b {
                        // Jump onto the line (an older path shows at once
                        // as a lower target; a later one after a second).
                        self.ratio = 1.0 + slope;
                        self.pos = Some(l - b * self.ratio);
                        self.resyncs += 1;
                    } else {
                        // Glide onto it: its slope, plus the distance left
                        // spread over GLIDE_BLOCKS blocks.
                        let gap = (l - end) / (GLIDE_BLOCKS * b);
                        self.ratio = 1.0 + slope + gap.clamp(-MAX_GLIDE, MAX_GLIDE);
                    }
                }
            }
            _ => self.restart(target, b),
        }
        let mut p = self.pos.unwrap_or(0.0);
        out.clear();
        let mut starved = false;
        let base = self.base as i64;
        let q = self.queue.make_contiguous();
        let taps = 2 * HALF_TAPS;
        for _ in 0..self.block {
            let i = p.floor();
            let f = p - i;
            let first = i as i64 - HALF_TAPS as i64 + 1;
            let at = first - base;
            let v = if at >= 0 && (at as usize) + taps <= q.len() {
                // The usual case: every tap is in the queue.
                let w = &q[at as usize..at as usize + taps];
                if f < 1e-9 {
                    w[HALF_TAPS - 1]
                } else {
                    resample::at(w, f)
                }
            } else {
                // At the queue's edges: silence before it, and after it
                // (reference not written yet: counted).
                for (t, s) in self.scratch.iter_mut().enumerate() {
                    let k = at + t as i64;
                    *s = if k < 0 {
                        0.0
                    } else {
                        match q.get(k as usize) {
                            Some(&v) => v,
                            None => {
                                starved = true;
                                0.0
                            }
                        }
                    };
                }
                resample::at(&self.scratch, f)
            };
            out.push(v.round().clamp(-32768.0, 32767.0) as i16);
            p += self.ratio;
        }
        if starved {
            self.starved += 1;
        }
        self.pos = Some(p);
        // Forget what no later block can need: up to half the queue's
        // bound behind the read position stays (a discontinuity moves the
        // read back by the underrun's gap, onto samples already read).
        let keep_from =
            (p.floor() as i64 - HALF_TAPS as i64 - 1 - (self.max_queue / 2) as i64).max(0) as u64;
        while self.base < keep_from && !self.queue.is_empty() {
            self.queue.pop_front();
            self.base += 1;
        }
    }

    /// A new line whose current block ends at `end` (the drift kept):
    /// the read position goes there at once.
    fn restart(&mut self, end: f64, b: f64) {
        let (slope, fitted) = (self.line.slope, self.line.fitted);
        self.line = Envelope::new(slope, b);
        // A fitted drift stays fitted: the clocks did not change.
        self.line.fitted = fitted;
        self.nominal = end;
        self.line.block(Some(0.0));
        self.ratio = 1.0 + slope / b;
        self.pos = Some(end - b * self.ratio);
        self.resyncs += 1;
    }

    /// The echo path jumped (a playback underrun played silence the
    /// reference does not have, microphone frames were lost): the line
    /// starts again at the next block.
    pub fn discontinuity(&mut self) {
        self.restart_pending = Some((RESTART_BLOCKS, f64::INFINITY));
    }

    /// (blocks starved, samples dropped unread, re-synchronisations).
    pub fn counters(&self) -> (u64, u64, u64) {
        (self.starved, self.dropped, self.resyncs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ramp(n: usize) -> Vec<i16> {
        (0..n).map(|i| (i % 30000) as i16).collect()
    }

    #[test]
    fn hands_out_the_reference_played_when_the_mic_block_was_captured() {
        let mut a = Aligner::new(80, 0, 100_000);
        // Playback 400 frames ahead of the speaker, capture 160 behind.
        a.measure(Some(560));
        a.push(&ramp(1000));
        let mut out = Vec::new();
        // Mic block ending 80 samples before the newest: reference ending
        // at 1000 - 560 - 80 = 360, so 280..360.
        a.next_block(80, &mut out);
        assert_eq!(out, (280..360).collect::<Vec<i16>>());
        a.next_block(0, &mut out);
        assert_eq!(out, (360..440).collect::<Vec<i16>>());
        // Bursty writes do not move it: 160 more written, two blocks.
        a.push(&ramp(1160)[1000..]);
        a.next_block(80, &mut out);
        assert_eq!(out, (440..520).collect::<Vec<i16>>());
        a.next_block(0, &mut out);
        assert_eq!(out, (520..600).collect::<Vec<i16>>());
        assert_eq!(a.counters(), (0, 0, 1));
        assert_eq!(a.ratio(), 1.0);
    }

    #[test]
    fn lead_and_unknown_delay() {
        // Unknown delay: the newest reference, less the interpolator's
        // look-ahead.
        let mut a = Aligner::new(80, 80, 100_000);
        a.measure(None);
        a.push(&ramp(400));
        let mut out = Vec::new();
        a.next_block(0, &mut out);
        let end = 400 - HALF_TAPS as i16;
        assert_eq!(out, (end - 80..end).collect::<Vec<i16>>());
        // Known delay with a lead: 800 - 400 + 80 = 480.
        let mut a = Aligner::new(80, 80, 100_000);
        a.measure(Some(400));
        a.push(&ramp(800));
        a.next_block(0, &mut out);
        assert_eq!(out, (400..480).collect::<Vec<i16>>());
    }

    /// Delays as an RTOS with 20 ms bursts shows them: the true delay, or
    /// up to a burst less (the target too new), in runs whose proportions
    /// change.
    fn bursty(k: usize, truth: i64) -> u64 {
        let less = match (k / 37) % 3 {
            0 => [0, 160, 0, 160][k % 4],
            1 => [160, 160, 150, 0][k % 4],
            _ => [0, 0, 10, 0][k % 4],
        };
        (truth - less) as u64
    }

    #[test]
    fn bursts_hold_the_line_a_fall_resynchronises() {
        let mut a = Aligner::new(80, 0, 100_000);
        let mut out = Vec::new();
        let r = ramp(60_000);
        let mut w = 0;
        for k in 0..400 {
            a.push(&r[w..w + 80]);
            w += 80;
            a.measure(Some(bursty(k, 1000)));
            a.next_block(0, &mut out);
            if k >= 100 {
                // The reference 1000 back (the true delay), within a
                // sample, all along: the bursts never move it.
                let want = ((w - 1000 - 80) % 30000) as i16;
                assert!(
                    (out[0] - want).abs() <= 1,
                    "block {k}: {} vs {want}",
                    out[0]
                );
                assert!((a.ratio() - 1.0).abs() < 1e-5, "ratio {}", a.ratio());
            }
        }
        assert_eq!(a.counters().2, 1, "only the start");
        // The echo path 40 ms later (320 frames): re-synchronised within
        // three blocks.
        for k in 0..30 {
            a.push(&r[w..w + 80]);
            w += 80;
            a.measure(Some(bursty(k, 1320)));
            a.next_block(0, &mut out);
        }
        assert_eq!(a.counters().2, 2);
        let want = ((w - 1320 - 80) % 30000) as i16;
        assert!((out[0] - want).abs() <= 1, "{} vs {want}", out[0]);
    }

    /// `blocks` blocks with the true delay `truth`: how far the last
    /// block's first sample is from the reference `truth` back.
    fn run(a: &mut Aligner, r: &[i16], w: &mut usize, blocks: usize, truth: i64) -> i64 {
        let mut out = Vec::new();
        for k in 0..blocks {
            a.push(&r[*w..*w + 80]);
            *w += 80;
            a.measure(Some(bursty(k, truth)));
            a.next_block(0, &mut out);
        }
        // The ramp wraps at 30000.
        let d = (i64::from(out[0]) - (*w as i64 - truth - 80)).rem_euclid(30_000);
        if d > 15_000 {
            d - 30_000
        } else {
            d
        }
    }

    #[test]
    fn a_discontinuity_restarts_at_once_a_small_fall_holds() {
        let mut a = Aligner::new(80, 0, 100_000);
        let r = ramp(60_000);
        let mut w = 0;
        assert_eq!(run(&mut a, &r, &mut w, 200, 1000), 0);
        // A playback underrun played 15 ms (120 frames) of silence: the
        // engine says so, and within 60 ms the read is on the new path
        // (the lowest of those targets: the bursts make some too new).
        a.discontinuity();
        assert_eq!(run(&mut a, &r, &mut w, 6, 1120), 0);
        assert_eq!(a.counters().2, 2);
        assert_eq!(run(&mut a, &r, &mut w, 100, 1120), 0, "and stays there");
        // A 30 ms fall (240 frames) unannounced: the first lower target
        // drops the line, and the read jumps onto it.
        assert_eq!(run(&mut a, &r, &mut w, 2, 1360), 0);
        assert_eq!(a.counters().2, 3);
        // A 15 ms fall (120 frames) unannounced, inside the band: no jump;
        // the read glides at most 100 ppm beyond the line's slope (0.008
        // frames a block), never a whole sample per block.
        let off: Vec<i64> = (0..40).map(|_| run(&mut a, &r, &mut w, 10, 1480)).collect();
        assert_eq!(a.counters().2, 3, "{off:?}");
        assert!(off[0] >= 110, "{off:?}");
        assert!(off[0] - off[39] <= 4, "{off:?}");
        for p in off.windows(2) {
            assert!((0..=1).contains(&(p[0] - p[1])), "{off:?}");
        }
    }

    #[test]
    fn locks_to_drift_and_reads_between_samples() {
        // The speaker runs 300 ppm fast: 80.024 reference samples per
        // microphone block. After 40 s the ratio is within 20 ppm.
        let mut a = Aligner::new(80, 0, 100_000);
        let sine: Vec<i16> = (0..400_000)
            .map(|i| (10000.0 * (i as f64 * 0.05).sin()) as i16)
            .collect();
        let mut w = 0usize;
        let mut spk = 0.0f64;
        let mut out = Vec::new();
        for _ in 0..4000 {
            spk += 80.0 * 1.0003;
            let to = spk as usize;
            a.push(&sine[w..to]);
            w = to;
            a.measure(Some(800));
            a.next_block(0, &mut out);
        }
        assert!((a.ratio() - 1.0003).abs() < 20e-6, "ratio {}", a.ratio());
        assert_eq!(a.counters(), (0, 0, 1));
        // The block follows the sine at the target, within a quarter of a
        // sample (0.25 * 0.05 rad * 10000).
        // W is the whole samples played: on average half a sample behind
        // the speaker's continuous position, which the loop follows.
        let end = spk - 0.5 - 800.0;
        for (k, &v) in out.iter().enumerate() {
            let p = end - (80 - k) as f64 * a.ratio();
            let want = 10000.0 * (p * 0.05).sin();
            assert!((f64::from(v) - want).abs() < 125.0, "{k}: {v} vs {want}");
        }
    }

    #[test]
    fn a_playback_stall_gives_silence_not_old_reference() {
        let mut a = Aligner::new(80, 0, 100_000);
        let r: Vec<i16> = (0..40_000).map(|i| 100 + (i % 1000) as i16).collect();
        let mut out = Vec::new();
        let mut w = 0;
        for _ in 0..100 {
            a.push(&r[w..w + 80]);
            w += 80;
            a.measure(Some(400));
            a.next_block(0, &mut out);
        }
        assert!(out.iter().all(|&v| v >= 100));
        // Nothing written for 50 blocks: silence once the written
        // reference is used up, never a block of it again.
        let mut silent = 0;
        for _ in 0..50 {
            a.measure(Some(400));
            a.next_block(0, &mut out);
            if out.iter().all(|&v| v == 0) {
                silent += 1;
            }
        }
        assert!(silent >= 44, "{silent} silent blocks");
        assert!(a.counters().0 >= 44);
        // Writing resumes: re-synchronised to the new reference.
        for _ in 0..30 {
            a.push(&r[w..w + 80]);
            w += 80;
            a.measure(Some(400));
            a.next_block(0, &mut out);
        }
        let want = r[w - 400 - 80];
        assert!((out[0] - want).abs() <= 1, "{} vs {want}", out[0]);
    }

    #[test]
    fn the_queue_is_bounded_and_a_stall_resynchronises() {
        let mut a = Aligner::new(80, 0, 1600);
        let mut out = Vec::new();
        a.push(&ramp(800));
        a.next_block(0, &mut out);
        // Nobody reads for a while: at most 1600 samples kept.
        a.push(&ramp(6800)[800..]);
        // The first block read up to 768: of the 6800 - 1600 samples
        // dropped, those 768 had been read.
        assert_eq!(a.counters().1, 6800 - 1600 - 768);
        a.next_block(0, &mut out);
        let end = 6800 - HALF_TAPS as i16;
        assert_eq!(out, (end - 80..end).collect::<Vec<i16>>());
        assert_eq!(a.counters().2, 2);
        assert_eq!(a.counters().0, 0);
    }
}
