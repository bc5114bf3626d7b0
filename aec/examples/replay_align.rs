//! Dev tool: replays "t written d" lines (one per 20 ms microphone frame,
//! two 10 ms blocks each) through the Aligner with a ramp as reference and
//! prints, every 0.5 s, the ratio, the resyncs and where the last block
//! ends against the newest target (W − d − 1, clamped like the aligner).
use snd_voip_aec::align::Aligner;
use std::io::BufRead;
fn main() {
    let mut a = Aligner::new(80, 0, 8000);
    let mut out = Vec::new();
    let mut pushed = 0u64;
    let mut last_print = 0.0;
    // GAPS="t1,t2": discontinuities (the engine's xruns) at these times.
    let mut gaps: Vec<f64> = std::env::var("GAPS")
        .unwrap_or_default()
        .split(',')
        .filter_map(|x| x.parse().ok())
        .collect();
    gaps.reverse();
    for line in std::io::stdin().lock().lines() {
        let line = line.expect("line");
        let v: Vec<f64> = line
            .split_whitespace()
            .filter_map(|x| x.parse().ok())
            .collect();
        let (t, w, d) = (v[0], v[1] as u64, v[2] as u64);
        if w > pushed {
            let ramp: Vec<i16> = (pushed..w).map(|i| (i % 30000) as i16).collect();
            a.push(&ramp);
            pushed = w;
        }
        if gaps.last().is_some_and(|&g| t >= g) {
            gaps.pop();
            a.discontinuity();
        }
        a.measure(Some(d));
        a.next_block(80, &mut out);
        a.next_block(0, &mut out);
        let want = (w.saturating_sub(d).min(w - 32) as i64 - 1).rem_euclid(30000);
        let mut off = i64::from(out[79]) - want;
        if off > 15000 {
            off -= 30000
        } else if off < -15000 {
            off += 30000
        }
        if t - last_print >= 0.5 {
            last_print = t;
            println!(
                "{t:6.2} ratio {:+7.0} ppm resyncs {} end-target {off}",
                (a.ratio() - 1.0) * 1e6,
                a.counters().2
            );
        }
    }
}
