//! pcmcheck: checks of the snd-voip card that need more than aplay/arecord.
//!
//! ```text
//! pcmcheck drift DEVICE RATE PERIOD SECONDS   capture position vs CLOCK_MONOTONIC
//! pcmcheck pause PLAY REC                     pause/resume on PLAY, heard on REC
//! pcmcheck xrun PLAY REC                      underrun detected, recovered, audio resumes
//! pcmcheck wakeups DEVICE RATE PERIOD SECONDS benchmark: wakeup jitter and system CPU
//! ```
//! Each prints its measurements, then PASS or FAIL (exit 1).

use alsa::pcm::{Access, Format, HwParams, State, PCM};
use alsa::{Direction, ValueOr};
use anyhow::{bail, Context, Result};
use std::f64::consts::PI;
use std::thread;
use std::time::{Duration, Instant};

const RATE: u32 = 8000;

fn open(dev: &str, dir: Direction, rate: u32, period: i64, buffer: i64) -> Result<PCM> {
    let pcm = PCM::new(dev, dir, false).with_context(|| format!("open {dev}"))?;
    {
        let hw = HwParams::any(&pcm)?;
        hw.set_access(Access::RWInterleaved)?;
        hw.set_format(Format::s16())?;
        hw.set_channels(1)?;
        hw.set_rate(rate, ValueOr::Nearest)?;
        hw.set_period_size(period, ValueOr::Nearest)?;
        hw.set_buffer_size(buffer)?;
        pcm.hw_params(&hw)
            .with_context(|| format!("hw_params {dev}"))?;
    }
    {
        let sw = pcm.sw_params_current()?;
        sw.set_tstamp_mode(true)?;
        sw.set_tstamp_type(alsa::pcm::TstampType::MonotonicRaw)
            .or_else(|_| sw.set_tstamp_type(alsa::pcm::TstampType::Monotonic))?;
        if dir == Direction::Playback {
            sw.set_start_threshold(period)?;
        }
        pcm.sw_params(&sw)?;
    }
    Ok(pcm)
}

/// Seconds of an alsa-sys `timespec` (a type the alsa crate does not re-export).
macro_rules! secs {
    ($t:expr) => {{
        let t = $t;
        t.tv_sec as f64 + t.tv_nsec as f64 * 1e-9
    }};
}

/// Capture for `seconds`; every 5 s compare the hardware position
/// (frames read + avail) with elapsed time since the trigger.
fn drift(dev: &str, rate: u32, period: i64, seconds: u64) -> Result<bool> {
    // A deep buffer: the emulated guest can stall the reader for a while, and
    // an overrun would restart the stream, which is not what is measured here.
    let pcm = open(dev, Direction::Capture, rate, period, period * 32)?;
    let io = pcm.io_i16()?;
    let mut buf = vec![0i16; period as usize];
    pcm.start()?;
    let start = Instant::now();
    let mut read: i64 = 0;
    let mut worst: f64 = 0.0;
    let mut next_check = Duration::from_secs(1);
    while start.elapsed() < Duration::from_secs(seconds) {
        read += io.readi(&mut buf)? as i64;
        if start.elapsed() >= next_check {
            let st = pcm.status()?;
            let elapsed = secs!(st.get_htstamp()) - secs!(st.get_trigger_htstamp());
            let hw = read + st.get_avail();
            let d = hw as f64 - elapsed * f64::from(rate);
            println!(
                "t={elapsed:7.3} s: position {hw} frames, expected {:.1}, drift {d:+.1} frames",
                elapsed * f64::from(rate)
            );
            worst = worst.max(d.abs());
            next_check += Duration::from_secs(5);
        }
    }
    println!("largest drift {worst:.1} frames, period {period} frames");
    Ok(worst < period as f64)
}

fn tone(frames: usize, offset: usize) -> Vec<i16> {
    (0..frames)
        .map(|i| {
            (0.5 * 32767.0 * (2.0 * PI * 1000.0 * (i + offset) as f64 / f64::from(RATE)).sin())
                as i16
        })
        .collect()
}

/// Records `seconds` on `dev` in a thread.
fn record(dev: String, seconds: f64) -> thread::JoinHandle<Result<Vec<i16>>> {
    thread::spawn(move || {
        let pcm = open(&dev, Direction::Capture, RATE, 160, 1600)?;
        let io = pcm.io_i16()?;
        let total = (seconds * f64::from(RATE)) as usize;
        let mut out = vec![0i16; total];
        let mut got = 0;
        pcm.start()?;
        while got < total {
            let end = (got + 160).min(total);
            got += io.readi(&mut out[got..end])?;
        }
        Ok(out)
    })
}

/// Runs of tone (|x| above -40 dBFS, gaps under 5 ms bridged) as (start, len) in frames.
fn tone_runs(x: &[i16]) -> Vec<(usize, usize)> {
    let mut runs = Vec::new();
    let mut start = None;
    let mut last_loud = 0;
    for (i, v) in x.iter().enumerate() {
        if v.unsigned_abs() > 327 {
            if start.is_none() {
                start = Some(i);
            }
            last_loud = i;
        } else if let Some(s) = start {
            if i - last_loud > 40 {
                runs.push((s, last_loud + 1 - s));
                start = None;
            }
        }
    }
    if let Some(s) = start {
        runs.push((s, last_loud + 1 - s));
    }
    runs
}

fn write_all(pcm: &PCM, data: &[i16]) -> Result<()> {
    let io = pcm.io_i16()?;
    let mut done = 0;
    while done < data.len() {
        done += io.writei(&data[done..])?;
    }
    Ok(())
}

fn pause(play: &str, rec: &str) -> Result<bool> {
    let recorder = record(rec.to_string(), 4.0);
    thread::sleep(Duration::from_millis(300));
    let pcm = open(play, Direction::Playback, RATE, 160, 1600)?;
    let second = RATE as usize;
    write_all(&pcm, &tone(second, 0))?;
    pcm.pause(true).context("pause")?;
    let paused_state = pcm.state();
    thread::sleep(Duration::from_secs(1));
    pcm.pause(false).context("resume")?;
    write_all(&pcm, &tone(second, second))?;
    pcm.drain()?;
    let x = recorder
        .join()
        .map_err(|_| anyhow::anyhow!("recorder panicked"))??;
    let runs = tone_runs(&x);
    println!("state while paused: {paused_state:?}; tone runs (start, length) in frames: {runs:?}");
    let r = f64::from(RATE);
    // The first run ends with the buffered audio played out before the pause
    // took effect at most one buffer (1600 frames) early.
    let ok = paused_state == State::Paused
        && runs.len() == 2
        && (runs[0].1 + runs[1].1) as f64 >= 1.98 * r
        && (runs[0].1 + runs[1].1) as f64 <= 2.02 * r
        && {
            let gap = (runs[1].0 - runs[0].0 - runs[0].1) as f64 / r;
            println!("gap {gap:.3} s");
            (0.9..1.3).contains(&gap)
        };
    Ok(ok)
}

fn xrun(play: &str, rec: &str) -> Result<bool> {
    let recorder = record(rec.to_string(), 4.0);
    thread::sleep(Duration::from_millis(300));
    let pcm = open(play, Direction::Playback, RATE, 160, 1600)?;
    let half = RATE as usize / 2;
    write_all(&pcm, &tone(half, 0))?;
    // Stop feeding: the card keeps consuming in real time, so ALSA must see an underrun.
    thread::sleep(Duration::from_secs(1));
    let state = pcm.state();
    println!("state after starving the stream: {state:?}");
    if state != State::XRun {
        return Ok(false);
    }
    let err = pcm.io_i16()?.writei(&tone(160, 0)).err();
    println!("write after the underrun: {err:?}");
    pcm.prepare().context("recover with prepare")?;
    write_all(&pcm, &tone(RATE as usize, half))?;
    pcm.drain()?;
    let x = recorder
        .join()
        .map_err(|_| anyhow::anyhow!("recorder panicked"))??;
    let runs = tone_runs(&x);
    println!("tone runs (start, length) in frames: {runs:?}");
    let r = f64::from(RATE) as usize;
    Ok(err.is_some()
        && runs.len() == 2
        && runs[0].1.abs_diff(r / 2) < r / 50
        && runs[1].1.abs_diff(r) < r / 50)
}

/// Benchmark: read-return intervals of a capture stream (period wakeups)
/// and the system CPU time used meanwhile. Prints numbers; never fails.
fn wakeups(dev: &str, rate: u32, period: i64, seconds: u64) -> Result<bool> {
    let pcm = open(dev, Direction::Capture, rate, period, period * 4)?;
    let io = pcm.io_i16()?;
    let mut buf = vec![0i16; period as usize];
    let cpu0 = system_cpu_ticks();
    pcm.start()?;
    let start = Instant::now();
    let mut last = Instant::now();
    let mut gaps = Vec::new();
    while start.elapsed() < Duration::from_secs(seconds) {
        io.readi(&mut buf)?;
        let now = Instant::now();
        gaps.push(now.duration_since(last).as_secs_f64() * 1e6);
        last = now;
    }
    let cpu1 = system_cpu_ticks();
    let ideal = period as f64 * 1e6 / f64::from(rate);
    let mut dev_us: Vec<f64> = gaps.iter().skip(2).map(|g| (g - ideal).abs()).collect();
    dev_us.sort_by(|a, b| a.total_cmp(b));
    let pct = |p: f64| {
        dev_us
            .get(((dev_us.len() as f64 - 1.0) * p) as usize)
            .copied()
            .unwrap_or(0.0)
    };
    let cpu_s = (cpu1.saturating_sub(cpu0)) as f64 / USER_HZ;
    println!(
        "{dev}: {} wakeups, period {:.0} us, |interval - period| p50 {:.0} us p99 {:.0} us max {:.0} us; system CPU {:.2} % of one core",
        gaps.len(),
        ideal,
        pct(0.5),
        pct(0.99),
        pct(1.0),
        100.0 * cpu_s / start.elapsed().as_secs_f64()
    );
    Ok(true)
}

/// System + softirq + irq ticks of all CPUs from /proc/stat.
fn system_cpu_ticks() -> u64 {
    std::fs::read_to_string("/proc/stat")
        .ok()
        .and_then(|s| {
            let f: Vec<u64> = s
                .lines()
                .next()?
                .split_whitespace()
                .skip(1)
                .filter_map(|x| x.parse().ok())
                .collect();
            Some(f.get(2)? + f.get(5)? + f.get(6)?)
        })
        .unwrap_or(0)
}

/// /proc/stat counts in USER_HZ, which is 100 on every Linux architecture.
const USER_HZ: f64 = 100.0;

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let a = |i: usize| args.get(i).map(String::as_str).unwrap_or("");
    let ok = match a(0) {
        "drift" => drift(a(1), a(2).parse()?, a(3).parse()?, a(4).parse()?)?,
        "pause" => pause(a(1), a(2))?,
        "xrun" => xrun(a(1), a(2))?,
        "wakeups" => wakeups(a(1), a(2).parse()?, a(3).parse()?, a(4).parse()?)?,
        _ => bail!(
            "usage: pcmcheck drift DEVICE RATE PERIOD SECONDS | pause PLAY REC | xrun PLAY REC"
        ),
    };
    println!("{}", if ok { "PASS" } else { "FAIL" });
    std::process::exit(if ok { 0 } else { 1 });
}
