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
//! keeps `ρ` and `p` locked to the target above with a PI loop on the
//! position error averaged over 500 ms: the canceller sees the speaker on
//! the microphone's clock, and a fixed echo path. A target that jumps
//! (a delay step the card sees, a stall) re-synchronises `p` at once.
//!
//! The reference is kept with absolute indices (bounded), so a playback
//! thread that writes in bursts changes nothing: only the positions do.

use std::collections::VecDeque;

use crate::resample::{self, HALF_TAPS};

/// Blocks averaged for the position error (500 ms of 10 ms blocks).
const AVERAGE: usize = 50;
/// PI gains per sample of averaged position error: at 100 blocks/s of 80
/// samples a loop of 0.28 rad/s, damping 0.85 (locks to 300 ppm in about
/// 15 s; a delay measurement jittering by ±40 frames moves the read
/// position by under 0.02 samples a block).
const KP: f64 = 6.0e-5;
const KI: f64 = 1.0e-7;
/// The most the two clocks may differ: 2000 ppm.
const MAX_DRIFT: f64 = 2.0e-3;

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
    integral: f64,
    errors: VecDeque<f64>,
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
            integral: 0.0,
            errors: VecDeque::with_capacity(AVERAGE),
            max_queue: max_queue.max(4 * block + 2 * HALF_TAPS),
            starved: 0,
            dropped: 0,
            resyncs: 0,
            written_before: 0,
            scratch: vec![0.0; 2 * HALF_TAPS],
        }
    }

    /// Reference samples written to the playback device, in order.
    pub fn push(&mut self, reference: &[i16]) {
        self.queue.extend(reference.iter().map(|&v| f32::from(v)));
        self.written += reference.len() as u64;
        while self.queue.len() > self.max_queue {
            self.queue.pop_front();
            self.base += 1;
            self.dropped += 1;
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
        // Nothing written since the last block: the playback side stalled
        // (the speaker plays nothing). The loop then holds still, and a
        // target that fell back must not make it replay old reference: it
        // goes on past the end of what was written, which reads as silence.
        let stalled = self.pos.is_some() && self.written == self.written_before;
        self.written_before = self.written;
        let resync = match self.pos {
            None => true,
            Some(_) if stalled => false,
            Some(p) => {
                let e = target - (p + b * self.ratio);
                if self.errors.len() == AVERAGE {
                    self.errors.pop_front();
                }
                self.errors.push_back(e);
                let avg = self.errors.iter().sum::<f64>() / self.errors.len() as f64;
                if e.abs() > 8.0 * b || avg.abs() > 2.0 * b {
                    true
                } else {
                    // PI on the averaged error, per sample of the block.
                    self.integral += avg;
                    let drift = (KP * avg + KI * self.integral).clamp(-MAX_DRIFT, MAX_DRIFT);
                    // Anti-windup: keep the integral where the clamp bites.
                    if drift.abs() >= MAX_DRIFT {
                        self.integral -= avg;
                    }
                    self.ratio = 1.0 + drift;
                    false
                }
            }
        };
        if resync {
            self.pos = Some(target - b * self.ratio);
            self.errors.clear();
            self.resyncs += 1;
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
        // Forget what no later block can need.
        let keep_from = (p.floor() as i64 - HALF_TAPS as i64 - 1).max(0) as u64;
        while self.base < keep_from && !self.queue.is_empty() {
            self.queue.pop_front();
            self.base += 1;
        }
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

    #[test]
    fn a_delay_step_resynchronises_jitter_does_not() {
        let mut a = Aligner::new(80, 0, 100_000);
        let mut out = Vec::new();
        let r = ramp(40_000);
        let mut w = 0;
        // 80 written per block; the measured delay wobbles +-40 frames.
        for k in 0..200 {
            a.push(&r[w..w + 80]);
            w += 80;
            let jitter = [0, 40, -40, 0][k % 4];
            a.measure(Some((1000 + jitter) as u64));
            a.next_block(0, &mut out);
        }
        assert_eq!(a.counters().2, 1, "only the start");
        // The block is the reference 1000 back, within a sample.
        let want = (w - 1000 - 80) as i16;
        assert!((out[0] - want).abs() <= 1, "{} vs {want}", out[0]);
        // A 40 ms step (320 frames): re-synchronised within 300 ms.
        for _ in 0..30 {
            a.push(&r[w..w + 80]);
            w += 80;
            a.measure(Some(1320));
            a.next_block(0, &mut out);
        }
        assert_eq!(a.counters().2, 2);
        let want = (w - 1320 - 80) as i16;
        assert!((out[0] - want).abs() <= 1, "{} vs {want}", out[0]);
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
        // After the first block the queue held 800 - (768 - 33) = 65.
        assert_eq!(a.counters().1, 65 + 6000 - 1600);
        a.next_block(0, &mut out);
        let end = 6800 - HALF_TAPS as i16;
        assert_eq!(out, (end - 80..end).collect::<Vec<i16>>());
        assert_eq!(a.counters().2, 2);
        assert_eq!(a.counters().0, 0);
    }
}
