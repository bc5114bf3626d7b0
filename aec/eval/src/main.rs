//! aec-eval: the echo cancellers on rtos-sim's acoustic path, in virtual
//! time. Prints numbers (a benchmark, not a test): ERLE after 2 s,
//! convergence, double talk, a 40 ms delay step, ±300 ppm drift and CPU,
//! for each canceller and with none (the baseline).

use aec_eval::{backends, scenario};

use std::io::Write;
use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Parser;

const AFTER_HELP: &str = "\
Scenarios (8 kHz, the far end's artificial voice at -20 dBFS through a room
of RT60 100 ms, ERL 10 dB, noise -70 dBFS; rtos-sim's echo model):
  converge-60ms     60 ms bulk delay, near end silent
  multitone-60ms    the same with 7 tones instead of the voice
  converge-200ms    200 ms: the canceller must find it alone
  aligned-200ms     200 ms of which the card knows 190 (device delays)
  double-talk       near-end 1 kHz at -26 dBFS from 4 s
  delay-step-40ms   60 -> 100 ms at 8 s, unknown to the card
  aligned-step-40ms the same step, seen by the card (device delays 50 -> 90 ms)
  drift+300ppm      the speaker clock 300 ppm fast, 30 s
  drift-300ppm      ... 300 ppm slow

Figures: ERLE = echo power over residual power (output less the near end)
in 250 ms windows where the echo is 20 dB above the noise; erle2s over all
of them from 2 s; converge = first time after which 90 % of the windows are
at 20 dB or more; p10 = 10th percentile of the windows after 2 s; recover =
seconds from the step until 90 % of later windows are at 25 dB or more;
near = near-end tone power in over out (want <= 3 dB); dt-echo = echo
removed outside the tone's band during double talk; cpu = processing time
over audio time on this machine, one core.

Examples:
  aec-eval                                  # every canceller in this build, every scenario
  aec-eval --backend aec3 --scenario double-talk
  cargo run --release -p aec-eval --features speex,webrtc -- --json eval.jsonl";

#[derive(Parser)]
#[command(name = "aec-eval", version, about = "Echo cancellers on rtos-sim's acoustic path: ERLE, double talk, delay step, drift, CPU", after_help = AFTER_HELP)]
struct Cli {
    /// Cancellers to run (repeatable) [default: all in this build: off, aec3, aec3+ns, and speex/webrtc with their features].
    #[arg(long = "backend", value_name = "NAME")]
    backends: Vec<String>,
    /// Scenarios to run (repeatable) [default: all].
    #[arg(long = "scenario", value_name = "NAME")]
    scenarios: Vec<String>,
    /// Level of the double-talk scenario's near-end tone, dBFS RMS [default: -26].
    #[arg(long, value_name = "DBFS", allow_negative_numbers = true)]
    near_dbfs: Option<f64>,
    /// Seed of the far end's voice [default: 11].
    #[arg(long, value_name = "N")]
    seed: Option<u64>,
    /// Write SECONDS of the far end's artificial voice (8 kHz mono 16-bit
    /// WAV, the --seed) to FILE and exit: a speech-like far end for calls
    /// (baresip's aufile) that an echo canceller can be judged on.
    #[arg(long, value_names = ["FILE", "SECONDS"], num_args = 2)]
    voice_wav: Option<Vec<String>>,
    /// Also write one JSON object per result to this file.
    #[arg(long, value_name = "FILE")]
    json: Option<PathBuf>,
}

fn f(v: Option<f64>, prec: usize) -> String {
    match v {
        Some(x) if x.is_finite() => format!("{x:.prec$}"),
        _ => "-".into(),
    }
}

/// A 16-bit mono WAV at the scenarios' rate.
fn write_wav(path: &std::path::Path, x: &[i16]) -> Result<()> {
    let data = (x.len() * 2) as u32;
    let mut b = Vec::with_capacity(44 + x.len() * 2);
    b.extend_from_slice(b"RIFF");
    b.extend_from_slice(&(36 + data).to_le_bytes());
    b.extend_from_slice(b"WAVEfmt ");
    b.extend_from_slice(&16u32.to_le_bytes());
    b.extend_from_slice(&1u16.to_le_bytes());
    b.extend_from_slice(&1u16.to_le_bytes());
    b.extend_from_slice(&scenario::RATE.to_le_bytes());
    b.extend_from_slice(&(scenario::RATE * 2).to_le_bytes());
    b.extend_from_slice(&2u16.to_le_bytes());
    b.extend_from_slice(&16u16.to_le_bytes());
    b.extend_from_slice(b"data");
    b.extend_from_slice(&data.to_le_bytes());
    for v in x {
        b.extend_from_slice(&v.to_le_bytes());
    }
    std::fs::write(path, b).with_context(|| format!("writing {}", path.display()))
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    if let Some(v) = &cli.voice_wav {
        let secs: f64 = v[1].parse().context("--voice-wav SECONDS")?;
        anyhow::ensure!(
            secs > 0.0 && secs <= 3600.0,
            "--voice-wav SECONDS must be in (0, 3600]"
        );
        let x = snd_voip_aec::signal::voice(cli.seed.unwrap_or(11), scenario::RATE, secs, -20.0);
        write_wav(std::path::Path::new(&v[0]), &x)?;
        return Ok(());
    }
    let names: Vec<String> = if cli.backends.is_empty() {
        backends::names().iter().map(|s| s.to_string()).collect()
    } else {
        cli.backends.clone()
    };
    let mut all = scenario::all();
    for s in &mut all {
        if let (Some(n), Some(d)) = (&mut s.near, cli.near_dbfs) {
            n.1 = d;
        }
        if let Some(seed) = cli.seed {
            s.seed = seed;
        }
    }
    for s in &cli.scenarios {
        if !all.iter().any(|x| x.name == s) {
            anyhow::bail!(
                "unknown scenario '{s}' (one of: {})",
                all.iter().map(|x| x.name).collect::<Vec<_>>().join(", ")
            );
        }
    }
    let mut json = match &cli.json {
        Some(p) => {
            Some(std::fs::File::create(p).with_context(|| format!("creating {}", p.display()))?)
        }
        None => None,
    };
    // Each backend's latency, to line its output up with its input.
    let mut lat = Vec::new();
    for n in &names {
        backends::make(n, scenario::BLOCK)?;
        let name = n.clone();
        let l = scenario::latency(&|| {
            backends::make(&name, scenario::BLOCK).expect("made once already")
        });
        lat.push(l);
    }
    println!(
        "{:<18} {:<8} {:>7} {:>9} {:>6} {:>7} {:>8} {:>9} {:>6} {:>8} {:>7} {:>9} {:>8} {:>8}",
        "scenario",
        "aec",
        "erle2s",
        "converge",
        "p10",
        "<25dB",
        "recover",
        "erle>step",
        "near",
        "dt-echo",
        "cpu%",
        "us/10ms",
        "own-erle",
        "own-dly"
    );
    for sc in all
        .iter()
        .filter(|s| cli.scenarios.is_empty() || cli.scenarios.iter().any(|n| n == s.name))
    {
        for (n, &l) in names.iter().zip(&lat) {
            let mut b = backends::make(n, scenario::BLOCK)?;
            let r = scenario::run(sc, b.as_mut(), l)?;
            println!(
                "{:<18} {:<8} {:>7} {:>9} {:>6} {:>7} {:>8} {:>9} {:>6} {:>8} {:>7.2} {:>9.1} {:>8} {:>8}",
                r.scenario,
                r.backend,
                f(r.erle_2s_db, 1),
                f(r.converge_s, 2),
                f(r.erle_p10_db, 1),
                r.below_25db.map_or("-".into(), |x| format!("{:.0}%", 100.0 * x)),
                f(r.recover_s, 2),
                f(r.erle_after_step_db, 1),
                f(r.near_atten_db, 1),
                f(r.dt_echo_db, 1),
                r.cpu_percent,
                r.us_per_block,
                f(r.own_erle_db, 1),
                f(r.own_delay_ms, 0),
            );
            std::io::stdout().flush().ok();
            if let Some(j) = &mut json {
                let mut v = serde_json::to_value(&r)?;
                v["latency_samples"] = l.into();
                v["path"] = serde_json::json!({
                    "delay_ms": sc.path.delay_ms, "erl_db": sc.path.erl_db,
                    "drift_ppm": sc.path.drift_ppm, "step": sc.path.step,
                    "known_delay_ms": sc.known_delay_ms, "far": sc.far, "near": sc.near,
                });
                writeln!(j, "{v}")?;
            }
        }
    }
    Ok(())
}
