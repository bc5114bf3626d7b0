//! The scenarios of issue 18, run in virtual time through rtos-sim's
//! acoustic path (`rtos_sim::echo::EchoPath`, the same model as `rtos-sim
//! run --echo`), and their figures.

use std::time::Instant;

use rtos_sim::echo::{EchoConfig, EchoPath, RirSpec};
use rustfft::{num_complex::Complex, FftPlanner};
use serde::Serialize;
use snd_voip_aec::signal;

use crate::backends::Backend;

/// Sample rate of every scenario (the board's G.711 rings).
pub const RATE: u32 = 8000;
/// Samples per block (10 ms).
pub const BLOCK: usize = 80;
/// ERLE windows, samples (250 ms).
const WIN: usize = 2000;

/// What the far end sends.
#[derive(Clone, Copy, Debug, Serialize)]
pub enum Far {
    /// The artificial voice at −20 dBFS active RMS.
    Voice,
    /// 7 tones from 300 to 3300 Hz at −20 dBFS RMS.
    Multitone,
}

/// One scenario.
#[derive(Clone, Debug, Serialize)]
pub struct Scenario {
    /// Its name in the tables.
    pub name: &'static str,
    /// Audio time, s.
    pub seconds: f64,
    /// The far end's signal.
    pub far: Far,
    /// The acoustic path (delay, ERL, room, noise, drift, step).
    #[serde(skip)]
    pub path: EchoConfig,
    /// Echo path delay the card knows (device delays), ms; `None`: the
    /// canceller finds the whole delay itself. With a delay step the card
    /// sees (`step_known`), the known delay changes with it.
    pub known_delay_ms: Option<f64>,
    /// Whether the card sees the path's delay step (an xrun that re-primed
    /// a ring does; a change inside the RTOS codec does not).
    pub step_known: bool,
    /// Near-end tone (Hz, dBFS RMS, from seconds) for double talk.
    pub near: Option<(f64, f64, f64)>,
    /// Seed of the far end's voice.
    pub seed: u64,
}

/// The default room: 60 ms bulk delay, ERL 10 dB, RT60 100 ms, −70 dBFS noise.
pub fn room(delay_ms: f64) -> EchoConfig {
    EchoConfig {
        delay_ms,
        erl_db: 10.0,
        rir: RirSpec::Generated {
            rt60_ms: 100.0,
            len_ms: 100.0,
        },
        noise_dbfs: Some(-70.0),
        drift_ppm: 0.0,
        step: None,
        seed: 7,
    }
}

/// The scenarios: (name, what they show).
pub fn all() -> Vec<Scenario> {
    let s = |name, seconds, path: EchoConfig| Scenario {
        name,
        seconds,
        far: Far::Voice,
        path,
        known_delay_ms: None,
        step_known: false,
        near: None,
        seed: 11,
    };
    vec![
        s("converge-60ms", 12.0, room(60.0)),
        Scenario {
            far: Far::Multitone,
            ..s("multitone-60ms", 12.0, room(60.0))
        },
        s("converge-200ms", 12.0, room(200.0)),
        Scenario {
            known_delay_ms: Some(190.0),
            ..s("aligned-200ms", 12.0, room(200.0))
        },
        Scenario {
            near: Some((1000.0, -26.0, 4.0)),
            ..s("double-talk", 12.0, room(60.0))
        },
        s(
            "delay-step-40ms",
            20.0,
            EchoConfig {
                step: Some((40.0, 8.0)),
                ..room(60.0)
            },
        ),
        Scenario {
            known_delay_ms: Some(50.0),
            step_known: true,
            ..s(
                "aligned-step-40ms",
                20.0,
                EchoConfig {
                    step: Some((40.0, 8.0)),
                    ..room(60.0)
                },
            )
        },
        s(
            "drift+300ppm",
            30.0,
            EchoConfig {
                drift_ppm: 300.0,
                ..room(60.0)
            },
        ),
        s(
            "drift-300ppm",
            30.0,
            EchoConfig {
                drift_ppm: -300.0,
                ..room(60.0)
            },
        ),
    ]
}

/// The figures of one backend on one scenario (dB, s; `None`: not reached
/// or not applicable).
#[derive(Clone, Debug, Default, Serialize)]
pub struct Figures {
    /// Scenario.
    pub scenario: String,
    /// Backend.
    pub backend: String,
    /// ERLE from 2 s to the end (to the step for the step scenario), dB.
    pub erle_2s_db: Option<f64>,
    /// First time after which ≥ 90 % of the 250 ms windows have ERLE ≥ 20 dB.
    pub converge_s: Option<f64>,
    /// 10th percentile of the windowed ERLE after 2 s, dB.
    pub erle_p10_db: Option<f64>,
    /// Share of windows after 2 s below 25 dB.
    pub below_25db: Option<f64>,
    /// Delay step: seconds from the step until ≥ 90 % of the later windows
    /// have ERLE ≥ 25 dB.
    pub recover_s: Option<f64>,
    /// Delay step: ERLE from 2 s after the step to the end, dB.
    pub erle_after_step_db: Option<f64>,
    /// Double talk: near-end tone power in over out, dB (≤ 3 wanted).
    pub near_atten_db: Option<f64>,
    /// Double talk: echo outside the near-end tone's band, in over out, dB.
    pub dt_echo_db: Option<f64>,
    /// Processing time over audio time, % of one core.
    pub cpu_percent: f64,
    /// Microseconds per 10 ms block.
    pub us_per_block: f64,
    /// The backend's own ERLE estimate and delay at the end.
    pub own_erle_db: Option<f64>,
    /// The backend's own estimate of the echo path delay at the end, ms.
    pub own_delay_ms: Option<f64>,
}

fn power(x: &[i16]) -> f64 {
    x.iter().map(|&v| f64::from(v).powi(2)).sum::<f64>() / x.len().max(1) as f64
}

fn db(num: f64, den: f64) -> f64 {
    10.0 * (num / den.max(1e-9)).log10()
}

/// Finds the backend's latency: the lag at which its output best matches
/// a microphone of noise with the far end silent.
pub fn latency(make: &dyn Fn() -> Box<dyn Backend>) -> usize {
    let mut b = make();
    let x = signal::voice(99, RATE, 4.0, -20.0);
    let mut out = Vec::with_capacity(x.len());
    let zeros = [0i16; BLOCK];
    for c in x.chunks_exact(BLOCK) {
        let mut m = c.to_vec();
        b.process(&zeros, &mut m, None);
        out.extend(m);
    }
    let r = 8000..x.len() - 1000;
    (0..400)
        .max_by(|&a, &bb| {
            let c = |l: usize| -> f64 {
                r.clone()
                    .map(|i| f64::from(out[i + l]) * f64::from(x[i]))
                    .sum()
            };
            c(a).total_cmp(&c(bb))
        })
        .unwrap_or(0)
}

/// Runs `b` (output `lat` samples late) on `sc`.
pub fn run(sc: &Scenario, b: &mut dyn Backend, lat: usize) -> anyhow::Result<Figures> {
    let n = (sc.seconds * f64::from(RATE)) as usize / BLOCK * BLOCK;
    // The far end's audio as the speaker plays it, on the speaker's clock
    // (a little more or less than the microphone's samples under drift).
    let far_seconds = sc.seconds * 1.01 + 1.0;
    let far = match sc.far {
        Far::Voice => signal::voice(sc.seed, RATE, far_seconds, -20.0),
        Far::Multitone => signal::multitone(
            11,
            RATE,
            // Not harmonics of one fundamental: a periodic signal would
            // make the delay ambiguous.
            &[313.0, 727.0, 1171.0, 1693.0, 2281.0, 2917.0, 3331.0],
            far_seconds,
            -20.0,
        ),
    };
    let near: Vec<i16> = match sc.near {
        Some((hz, dbfs, from)) => {
            let t = signal::tone(RATE, hz, sc.seconds, dbfs);
            let k = (from * f64::from(RATE)) as usize;
            (0..n).map(|i| if i >= k { t[i] } else { 0 }).collect()
        }
        None => vec![0; n],
    };
    let mut path = EchoPath::new(
        &sc.path,
        f64::from(RATE),
        sc.path.speaker_rate(f64::from(RATE)),
        0,
    )?;
    path.speaker_started(0.0);
    let mut echo = Vec::with_capacity(n);
    let mut out = Vec::with_capacity(n + lat);
    let mut spent = 0.0f64;
    let rho = path.speaker_rate() / f64::from(RATE);
    let mut spk_pos = 0.0f64;
    let mut played = 0usize;
    let mut f32buf = Vec::with_capacity(2 * BLOCK);
    for i in (0..n).step_by(BLOCK) {
        // What the speaker played during this block, on its own clock.
        spk_pos += BLOCK as f64 * rho;
        let upto = spk_pos as usize;
        let f = &far[played..upto];
        f32buf.clear();
        f32buf.extend(f.iter().map(|&s| f32::from(s)));
        path.played(played as u64, &f32buf);
        played = upto;
        let e: Vec<i16> = path
            .echo(i as u64, BLOCK)
            .iter()
            .map(|&v| v.round().clamp(-32768.0, 32767.0) as i16)
            .collect();
        let mut mic: Vec<i16> = e
            .iter()
            .zip(&near[i..i + BLOCK])
            .map(|(&a, &b)| a.saturating_add(b))
            .collect();
        echo.extend_from_slice(&e);
        let t_now = i as f64 / f64::from(RATE);
        let step_ms = match sc.path.step {
            Some((ms, at)) if sc.step_known && t_now >= at => ms,
            _ => 0.0,
        };
        let known = sc
            .known_delay_ms
            .map(|ms| ((ms + step_ms) * f64::from(RATE) / 1000.0) as u64);
        let t = Instant::now();
        b.process(f, &mut mic, known);
        spent += t.elapsed().as_secs_f64();
        out.extend(mic);
    }
    // Line the output up with its input.
    let out: Vec<i16> = out[lat.min(out.len())..].to_vec();
    let m = out.len();
    let echo = &echo[..m];
    let near = &near[..m];
    // Windowed ERLE where the echo is 20 dB above the noise.
    let noise = sc
        .path
        .noise_dbfs
        .map_or(0.0, |d| (32768.0 * 10f64.powf(d / 20.0)).powi(2));
    let wins: Vec<(f64, f64)> = (0..m / WIN)
        .filter_map(|w| {
            let r = w * WIN..(w + 1) * WIN;
            let pe = power(&echo[r.clone()]);
            if pe < 100.0 * noise.max(1.0) {
                return None;
            }
            let t = (w + 1) as f64 * WIN as f64 / f64::from(RATE);
            // Residual: the output less the near end (which the canceller
            // should pass; for scenarios without one it is zero).
            let res: Vec<i16> = out[r.clone()]
                .iter()
                .zip(&near[r])
                .map(|(&o, &n)| o.saturating_sub(n))
                .collect();
            Some((t, db(pe, power(&res))))
        })
        .collect();
    if std::env::var_os("AEC_EVAL_WINDOWS").is_some() {
        for (t, e) in &wins {
            eprintln!("{} {} {t:.2} {e:.1}", sc.name, b.name());
        }
    }
    let step_at = sc.path.step.map(|(_, at)| at);
    let end_of_first = step_at.unwrap_or(f64::MAX);
    let mut fig = Figures {
        scenario: sc.name.into(),
        backend: b.name(),
        cpu_percent: 100.0 * spent / sc.seconds,
        us_per_block: 1e6 * spent / (n / BLOCK) as f64,
        ..Figures::default()
    };
    if let Some((e, d)) = b.metrics() {
        fig.own_erle_db = Some(e);
        fig.own_delay_ms = Some(d);
    }
    if sc.near.is_none() {
        let sel: Vec<f64> = wins
            .iter()
            .filter(|(t, _)| *t > 2.0 + 0.25 && *t <= end_of_first)
            .map(|w| w.1)
            .collect();
        fig.erle_2s_db = range_erle(echo, &out, 2.0, end_of_first.min(sc.seconds));
        fig.converge_s = settle(&wins, 0.0, end_of_first, 20.0);
        fig.erle_p10_db = percentile(&sel, 0.1);
        fig.below_25db = (!sel.is_empty())
            .then(|| sel.iter().filter(|&&e| e < 25.0).count() as f64 / sel.len() as f64);
        if let Some(at) = step_at {
            fig.recover_s = settle(&wins, at, f64::MAX, 25.0).map(|t| t - at);
            fig.erle_after_step_db = range_erle(echo, &out, at + 2.0, sc.seconds);
        }
    } else if let Some((hz, _, from)) = sc.near {
        // Double talk from 2 s after the near end started.
        let a = ((from + 2.0) * f64::from(RATE)) as usize;
        let (tone_in, rest_in) = band(&near[a..], hz, 25.0);
        let (tone_out, rest_out) = band(&out[a..], hz, 25.0);
        let (_, echo_rest) = band(&echo[a..], hz, 300.0);
        let (_, out_rest) = band(&out[a..], hz, 300.0);
        let _ = (rest_in, rest_out);
        fig.near_atten_db = Some(db(tone_in, tone_out));
        fig.dt_echo_db = Some(db(echo_rest, out_rest));
        fig.erle_2s_db = range_erle(echo, &out, 2.0, from);
        fig.converge_s = settle(&wins, 0.0, from, 20.0);
    }
    Ok(fig)
}

/// ERLE over [a, b) seconds: echo power over output power.
fn range_erle(echo: &[i16], out: &[i16], a: f64, b: f64) -> Option<f64> {
    let i = (a * f64::from(RATE)) as usize;
    let j = ((b * f64::from(RATE)) as usize).min(out.len());
    (j > i + WIN).then(|| db(power(&echo[i..j]), power(&out[i..j])))
}

/// The first window end `t` in [from, to) at which windows reach `min_db`
/// and ≥ 90 % of the windows from there to `to` stay at or above it.
fn settle(wins: &[(f64, f64)], from: f64, to: f64, min_db: f64) -> Option<f64> {
    let w: Vec<&(f64, f64)> = wins.iter().filter(|(t, _)| *t > from && *t <= to).collect();
    (0..w.len()).find_map(|i| {
        let rest = &w[i..];
        let ok = rest.iter().filter(|x| x.1 >= min_db).count();
        (w[i].1 >= min_db && ok as f64 >= 0.9 * rest.len() as f64).then(|| w[i].0)
    })
}

fn percentile(v: &[f64], q: f64) -> Option<f64> {
    if v.is_empty() {
        return None;
    }
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    Some(s[((s.len() - 1) as f64 * q).round() as usize])
}

/// Power within `half` Hz of `hz`, and outside it (Parseval over one FFT).
fn band(x: &[i16], hz: f64, half: f64) -> (f64, f64) {
    let n = x.len();
    let mut buf: Vec<Complex<f64>> = x.iter().map(|&v| Complex::new(f64::from(v), 0.0)).collect();
    FftPlanner::new().plan_fft_forward(n).process(&mut buf);
    let (mut inb, mut out) = (0.0, 0.0);
    for (k, c) in buf.iter().enumerate().take(n / 2 + 1) {
        let f = k as f64 * f64::from(RATE) / n as f64;
        let p = c.norm_sqr();
        if (f - hz).abs() <= half {
            inb += p;
        } else {
            out += p;
        }
    }
    (inb, out)
}
