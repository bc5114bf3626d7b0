//! Helpers shared by the integration tests: running the binary, and a
//! small independent tone analyser (zero-crossing frequency, RMS level,
//! Goertzel purity), the same method as tests/audiotest.
#![allow(dead_code)]

use std::f64::consts::PI;
use std::path::Path;
use std::process::{Command, Output};

pub const BIN: &str = env!("CARGO_BIN_EXE_rtos-sim");

/// Runs the binary with `args` on `file` at `offset`; panics with its
/// output if it fails.
pub fn sim(file: &Path, offset: u64, args: &[&str]) -> Output {
    let out = try_sim(file, offset, args);
    assert!(
        out.status.success(),
        "rtos-sim {args:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// Runs the binary, whatever its exit status.
pub fn try_sim(file: &Path, offset: u64, args: &[&str]) -> Output {
    let mut cmd = Command::new(BIN);
    cmd.args(&args[..1])
        .arg("--region")
        .arg(file)
        .arg("--offset")
        .arg(format!("{offset:#x}"))
        .args(&args[1..])
        .env_remove("RUST_BACKTRACE");
    cmd.output().expect("running rtos-sim")
}

/// A file of `offset` + 64 KiB filled with 0xa5 (so an init that forgets a
/// field is visible).
pub fn region_file(dir: &Path, offset: u64) -> std::path::PathBuf {
    let p = dir.join("ram.img");
    std::fs::write(&p, vec![0xa5u8; offset as usize + 0x10000]).unwrap();
    p
}

/// Tone measurements of one channel.
#[derive(Debug)]
pub struct Measure {
    pub first: usize,
    pub last: usize,
    pub freq: f64,
    pub dbfs: f64,
    pub purity: f64,
}

/// Finds the span above -40 dBFS and measures it; samples scaled to ±1.
pub fn measure(x: &[f64], rate: f64) -> Measure {
    let first = x.iter().position(|v| v.abs() > 0.01).expect("no tone");
    let last = x.iter().rposition(|v| v.abs() > 0.01).expect("no tone");
    let tone = &x[first..=last];
    let mut crossings = Vec::new();
    for i in 1..tone.len() {
        if tone[i - 1] < 0.0 && tone[i] >= 0.0 {
            crossings.push((i - 1) as f64 - tone[i - 1] / (tone[i] - tone[i - 1]));
        }
    }
    assert!(crossings.len() > 2, "too few zero crossings");
    let freq =
        (crossings.len() - 1) as f64 * rate / (crossings[crossings.len() - 1] - crossings[0]);
    let power = tone.iter().map(|v| v * v).sum::<f64>() / tone.len() as f64;
    let w = 2.0 * PI * freq / rate;
    let (mut s1, mut s2) = (0.0f64, 0.0f64);
    for &v in tone {
        let s0 = v + 2.0 * w.cos() * s1 - s2;
        s2 = s1;
        s1 = s0;
    }
    let g = s1 * s1 + s2 * s2 - 2.0 * w.cos() * s1 * s2;
    let purity = (2.0 * g / (tone.len() as f64).powi(2)) / power;
    Measure {
        first,
        last,
        freq,
        dbfs: 10.0 * power.log10() + 3.0103,
        purity,
    }
}

/// S16_LE bytes to samples scaled to ±1.
pub fn s16(bytes: &[u8]) -> Vec<f64> {
    bytes
        .chunks_exact(2)
        .map(|c| f64::from(i16::from_le_bytes([c[0], c[1]])) / 32768.0)
        .collect()
}
