//! pcmcheck: checks of the snd-voip card that need more than aplay/arecord.
//!
//! ```text
//! pcmcheck drift DEVICE RATE PERIOD SECONDS   capture position vs CLOCK_MONOTONIC
//! pcmcheck pause PLAY REC                     pause/resume on PLAY, heard on REC
//! pcmcheck xrun PLAY REC                      underrun detected, recovered, audio resumes
//! pcmcheck realtime DEVICE playback|capture SECONDS MAX_LATE_MS
//!                                             an end nobody feeds or reads runs in real time
//! pcmcheck roundtrip PLAY REC SECONDS        benchmark: chirp round trip PLAY -> ... -> REC
//! pcmcheck wakeups DEVICE|idle RATE PERIOD SECONDS
//!                                             benchmark: wakeup jitter, drift, kernel CPU and timer events
//! pcmcheck mmap play|record DEVICE FILE RATE CHANNELS PERIOD BUFFER
//!                                             raw S16_LE through the mmap'd buffer, period by period
//! ```
//! Each prints its measurements, then PASS or FAIL (exit 1).

use alsa::pcm::{Access, Format, HwParams, State, PCM};
use alsa::{Direction, ValueOr};
use anyhow::{bail, Context, Result};
use std::f64::consts::PI;
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

const RATE: u32 = 8000;

/// Opens `dev` with S16_LE `channels` at `rate` (nearest), `period` frames
/// (nearest) and exactly `buffer` frames, in `access`.
fn open_hw(
    dev: &str,
    dir: Direction,
    access: Access,
    channels: u32,
    rate: u32,
    period: i64,
    buffer: i64,
) -> Result<PCM> {
    let pcm = PCM::new(dev, dir, false).with_context(|| format!("open {dev}"))?;
    {
        let hw = HwParams::any(&pcm)?;
        hw.set_access(access)?;
        hw.set_format(Format::s16())?;
        hw.set_channels(channels)?;
        hw.set_rate(rate, ValueOr::Nearest)?;
        hw.set_period_size(period, ValueOr::Nearest)?;
        hw.set_buffer_size(buffer)?;
        pcm.hw_params(&hw)
            .with_context(|| format!("hw_params {dev}"))?;
    }
    Ok(pcm)
}

fn open(dev: &str, dir: Direction, rate: u32, period: i64, buffer: i64) -> Result<PCM> {
    let pcm = open_hw(dev, dir, Access::RWInterleaved, 1, rate, period, buffer)?;
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

/// Records `seconds` on `dev` in a thread; returns once the capture runs
/// (so the caller's playback is recorded from its first frame), or the
/// recorder's error.
fn record(dev: String, seconds: f64) -> Result<thread::JoinHandle<Result<Vec<i16>>>> {
    let (started_tx, started_rx) = mpsc::channel();
    let h = thread::spawn(move || {
        let pcm = open(&dev, Direction::Capture, RATE, 160, 1600)?;
        let io = pcm.io_i16()?;
        let total = (seconds * f64::from(RATE)) as usize;
        let mut out = vec![0i16; total];
        let mut got = 0;
        pcm.start()?;
        let _ = started_tx.send(());
        while got < total {
            let end = (got + 160).min(total);
            got += io.readi(&mut out[got..end])?;
        }
        Ok(out)
    });
    // A starved emulated guest may take seconds to open and start a stream.
    match started_rx.recv_timeout(Duration::from_secs(30)) {
        Ok(()) => Ok(h),
        Err(_) => match h.join() {
            Ok(Err(e)) => Err(e.context("recorder")),
            _ => bail!("the recorder did not start within 30 s"),
        },
    }
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
    let recorder = record(rec.to_string(), 4.0)?;
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
    let recorder = record(rec.to_string(), 4.0)?;
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

/// An end whose peer is idle runs in real time: a capture reads `seconds`
/// of silence, or a playback of `seconds` is consumed, in `seconds` of
/// CLOCK_MONOTONIC from the trigger, not faster, and later only by the
/// wake-up of the last period plus scheduling (`max_late_ms`: the card's
/// bound is one period, 20 ms here; the rest is the emulated guest's slack,
/// README, "Tests"). A capture must read nothing but silence.
fn realtime(dev: &str, dir: &str, seconds: f64, max_late_ms: f64) -> Result<bool> {
    let period = 160i64;
    let frames = (seconds * f64::from(RATE)) as usize;
    let (elapsed, nonzero) = match dir {
        "capture" => {
            let pcm = open(dev, Direction::Capture, RATE, period, period * 10)?;
            let io = pcm.io_i16()?;
            let mut buf = vec![0i16; frames];
            let mut got = 0;
            pcm.start()?;
            while got < frames {
                let end = (got + period as usize).min(frames);
                got += io.readi(&mut buf[got..end])?;
            }
            let t = pcm.status()?;
            let elapsed = secs!(t.get_htstamp()) - secs!(t.get_trigger_htstamp());
            let nonzero = buf.iter().filter(|v| **v != 0).count();
            (elapsed, nonzero)
        }
        "playback" => {
            let pcm = open(dev, Direction::Playback, RATE, period, period * 10)?;
            write_all(&pcm, &tone(frames, 0))?;
            // The trigger stamp of the start, read while it runs (it starts
            // at the first period); the drain's stop stamps it again, in
            // the timer callback that found the last frame consumed.
            let start = secs!(pcm.status()?.get_trigger_htstamp());
            pcm.drain()?;
            let stop = secs!(pcm.status()?.get_trigger_htstamp());
            (stop - start, 0)
        }
        _ => bail!("realtime: direction must be playback or capture"),
    };
    let late_ms = (elapsed - seconds) * 1000.0;
    println!(
        "{dev} {dir}: {frames} frames took {elapsed:.4} s from the trigger ({late_ms:+.1} ms; bound 0 .. +{max_late_ms} ms){}",
        if dir == "capture" { format!(", {nonzero} non-zero samples") } else { String::new() }
    );
    // 1 frame of rounding below: the stream cannot run faster than its clock.
    Ok(late_ms >= -1000.0 / f64::from(RATE) && late_ms <= max_late_ms && nonzero == 0)
}

/// Benchmark: read-return intervals of a capture stream (period wakeups),
/// the stream's drift against CLOCK_MONOTONIC, and what the kernel spent
/// meanwhile: system, softirq and hardirq time of all CPUs (/proc/stat, and
/// the busiest CPU's softirq share), softirqs raised (HRTIMER, TIMER from
/// /proc/softirqs) and local timer interrupts (LOC, /proc/interrupts) per
/// period. Counts include everything else the guest did in the window: the
/// caller subtracts an idle window measured the same way (`idle`). Prints
/// one `key=value` line; never fails.
fn wakeups(dev: &str, rate: u32, period: i64, seconds: u64) -> Result<bool> {
    let idle = dev == "idle";
    let pcm = if idle {
        None
    } else {
        Some(open(dev, Direction::Capture, rate, period, period * 4)?)
    };
    let mut buf = vec![0i16; period as usize];
    let k0 = KernelCounters::read();
    let start = Instant::now();
    let mut gaps = Vec::new();
    let mut frames: u64 = 0;
    // Drift: the stream's position (frames read + avail) at the status
    // timestamps ALSA takes when it reads the driver's pointer, from the
    // first wake-up to the last: independent of how late either wake-up
    // was (a late wake-up only moves both along the same clock).
    let mut first: Option<(f64, u64)> = None;
    let mut lastpos: Option<(f64, u64)> = None;
    let mut last = Instant::now();
    if let Some(pcm) = &pcm {
        let io = pcm.io_i16()?;
        pcm.start()?;
        let mut woke = false;
        while start.elapsed() < Duration::from_secs(seconds) {
            frames += io.readi(&mut buf)? as u64;
            let now = Instant::now();
            let st = pcm.status()?;
            let pos = (
                secs!(st.get_htstamp()),
                frames + st.get_avail().max(0) as u64,
            );
            if first.is_none() {
                first = Some(pos);
            }
            lastpos = Some(pos);
            if woke {
                gaps.push(now.duration_since(last).as_secs_f64() * 1e6);
            }
            woke = true;
            last = now;
        }
    } else {
        thread::sleep(Duration::from_secs(seconds));
    }
    let elapsed = start.elapsed().as_secs_f64();
    let k1 = KernelCounters::read();
    let ideal = period as f64 * 1e6 / f64::from(rate);
    let mut dev_us: Vec<f64> = gaps.iter().skip(1).map(|g| (g - ideal).abs()).collect();
    dev_us.sort_by(|a, b| a.total_cmp(b));
    let pct = |p: f64| {
        dev_us
            .get(((dev_us.len() as f64 - 1.0) * p) as usize)
            .copied()
            .unwrap_or(0.0)
    };
    let drift_ppm = match (first, lastpos) {
        (Some((t0, f0)), Some((t1, f1))) if f1 > f0 && t1 > t0 => {
            ((f1 - f0) as f64 / f64::from(rate) / (t1 - t0) - 1.0) * 1e6
        }
        _ => 0.0,
    };
    // Periods the window would hold at the nominal rate (the idle window
    // too, so its counts per period are a baseline to subtract).
    let periods = elapsed * 1e6 / ideal;
    let pct_of_core = |ticks: u64| 100.0 * ticks as f64 / USER_HZ / elapsed;
    let d = |a: u64, b: u64| b.saturating_sub(a);
    let max_cpu_softirq = k0
        .cpu_softirq
        .iter()
        .zip(&k1.cpu_softirq)
        .map(|(a, b)| d(*a, *b))
        .max()
        .unwrap_or(0);
    println!(
        "wakeups, dev={dev} rate={rate} period={period} seconds={elapsed:.2} n={} p50_us={:.0} p99_us={:.0} max_us={:.0} \
         drift_ppm={drift_ppm:.1} sys_pct={:.2} softirq_pct={:.2} irq_pct={:.2} softirq_max_cpu_pct={:.2} \
         hrtimer_per_period={:.3} timer_per_period={:.3} loc_per_period={:.3}",
        gaps.len(),
        pct(0.5),
        pct(0.99),
        pct(1.0),
        pct_of_core(d(k0.sys, k1.sys)),
        pct_of_core(d(k0.softirq, k1.softirq)),
        pct_of_core(d(k0.irq, k1.irq)),
        pct_of_core(max_cpu_softirq),
        d(k0.hrtimer, k1.hrtimer) as f64 / periods,
        d(k0.timer, k1.timer) as f64 / periods,
        d(k0.loc, k1.loc) as f64 / periods,
    );
    Ok(true)
}

/// Benchmark: the round trip from an application's playback end back to
/// its capture end (e.g. hw:VoIP,0,0 through the bridge and a far end that
/// echoes RTP). Both streams are linked (snd_pcm_link: one trigger starts
/// them), so playback frame k and capture frame k leave and arrive at the
/// same instant of the card's clock: the lag of each chirp in the capture,
/// found by normalised cross-correlation, is the round trip in frames,
/// whatever the application's own buffering. Where the card cannot link
/// them (snd-aloop), each stream's clock on the wall clock (fitted from
/// its positions) adds the difference of their starts. Prints
/// `roundtrip-clock` with both clocks for tests/bench/rtpwire.py. A 50 ms linear chirp (300 to
/// 3400 Hz, the G.711 band) every 1.5 s; prints each lag, then
/// `roundtrip, ...` with the median, min and max. Fails when fewer than
/// half the chirps are found (correlation below 0.5).
fn roundtrip(play: &str, rec: &str, seconds: u64) -> Result<bool> {
    const PERIOD: i64 = 80;
    const SPACING: usize = 12_000;
    const CHIRP: usize = 400;
    let r = f64::from(RATE);
    let chirp: Vec<f64> = (0..CHIRP)
        .map(|i| {
            let t = i as f64 / r;
            let (f0, f1, d) = (300.0, 3400.0, CHIRP as f64 / r);
            let w = 0.5 - 0.5 * (2.0 * PI * i as f64 / CHIRP as f64).cos();
            w * (2.0 * PI * (f0 * t + (f1 - f0) * t * t / (2.0 * d))).sin()
        })
        .collect();
    let total = (seconds as usize * RATE as usize).max(2 * SPACING);
    let mut played = vec![0i16; total];
    let mut k = SPACING / 4;
    while k + CHIRP < total {
        for (i, c) in chirp.iter().enumerate() {
            played[k + i] = (c * 16_000.0) as i16;
        }
        k += SPACING;
    }
    let pp = open(play, Direction::Playback, RATE, PERIOD, PERIOD * 32)?;
    let pc = open(rec, Direction::Capture, RATE, PERIOD, PERIOD * 32)?;
    // Linked, frame k of both streams is at the same instant of the card's
    // clock. A card that cannot link them (snd-aloop) runs them unlinked:
    // each stream's own clock (below) places its frames.
    let linked = match pp.link(&pc) {
        Ok(()) => true,
        Err(e) => {
            println!("streams not linked ({e}): each stream's clock places its frames");
            false
        }
    };
    let (po, co) = (pp.io_i16()?, pc.io_i16()?);
    // Sixteen periods queued ahead (TCG stalls the guest for up to 100 ms
    // when a process starts); the first write starts both streams.
    let prefill = vec![0i16; 16 * PERIOD as usize];
    let mut w = 0;
    while w < prefill.len() {
        w += po.writei(&prefill[w..])?;
    }
    let mut out = played.clone();
    out.splice(0..0, prefill.iter().copied());
    let mut got = Vec::with_capacity(total + 8000);
    let mut buf = vec![0i16; PERIOD as usize];
    // The card's clock on the wall clock (CLOCK_REALTIME, which
    // tests/bench/rtpwire.py's packet times share): capture frame j
    // arrived at `t0 + j / RATE`. At a wall time `t` taken after a look
    // that found `pos` frames captured, the tick that brought them came
    // before `t`: `t0 <= t - pos / RATE` for every look, and the looks
    // that came right after a tick make the smallest bound tight. The
    // same for the playback (frame k left at `play_t0 + k / RATE`), whose
    // position is what was written less what is still queued.
    let mut t0_ns = i128::MAX;
    let mut play_t0_ns = i128::MAX;
    let ring = pp.hw_params_current()?.get_buffer_size()?;
    let ns = |pos: i128| pos * 1_000_000_000 / i128::from(RATE);
    while got.len() < total {
        let n = co.readi(&mut buf)?;
        got.extend_from_slice(&buf[..n]);
        if let Ok(avail) = pc.avail() {
            let pos = got.len() as i128 + i128::from(avail);
            t0_ns = t0_ns.min(wall_ns() - ns(pos));
        }
        if let Ok(avail) = pp.avail() {
            let pos = w as i128 - i128::from(ring - avail);
            play_t0_ns = play_t0_ns.min(wall_ns() - ns(pos));
        }
        let end = (w + n).min(out.len());
        let mut d = w;
        while d < end {
            d += po.writei(&out[d..end])?;
        }
        w = end;
    }
    let _ = pp.drop();
    let _ = pc.drop();
    // Unlinked, capture frame j is (t0 - play_t0) later than playback
    // frame j: that goes on every lag.
    if linked || t0_ns == i128::MAX || play_t0_ns == i128::MAX {
        play_t0_ns = t0_ns;
    }
    let offset_ms = (t0_ns - play_t0_ns) as f64 / 1e6;
    let energy: f64 = chirp.iter().map(|c| c * c).sum::<f64>().sqrt();
    let mut lags = Vec::new();
    let mut k = prefill.len() + SPACING / 4;
    while k + SPACING <= got.len() {
        let mut best = (0.0, 0usize);
        for lag in 0..SPACING - CHIRP {
            let seg = &got[k + lag..k + lag + CHIRP];
            let (mut dot, mut e) = (0.0, 0.0);
            for (x, c) in seg.iter().zip(&chirp) {
                let x = f64::from(*x);
                dot += x * c;
                e += x * x;
            }
            let ncc = if e > 0.0 {
                dot / (e.sqrt() * energy)
            } else {
                0.0
            };
            if ncc > best.0 {
                best = (ncc, lag);
            }
        }
        let ms = best.1 as f64 * 1000.0 / r + offset_ms;
        println!(
            "chirp at frame {k}: lag {} frames ({ms:.1} ms), correlation {:.2}",
            best.1, best.0
        );
        if best.0 >= 0.5 {
            lags.push(ms);
        }
        k += SPACING;
    }
    let chirps = (got.len() - prefill.len() - SPACING / 4) / SPACING;
    if t0_ns != i128::MAX {
        // Capture frame j at t0 + j / RATE, playback frame k at play_t0 +
        // k / RATE (the same clock when linked): what rtpwire.py needs to
        // split the round trip at the wire.
        println!(
            "roundtrip-clock t0_ns={t0_ns} play_t0_ns={play_t0_ns} rate={RATE} chirp_frames={CHIRP} linked={linked}"
        );
    }
    lags.sort_by(|a, b| a.total_cmp(b));
    let med = lags.get(lags.len() / 2).copied().unwrap_or(0.0);
    println!(
        "roundtrip, play={play} rec={rec} found={} of={chirps} median_ms={med:.1} min_ms={:.1} max_ms={:.1}",
        lags.len(),
        lags.first().copied().unwrap_or(0.0),
        lags.last().copied().unwrap_or(0.0)
    );
    Ok(chirps > 0 && lags.len() * 2 >= chirps)
}

/// Nanoseconds since the epoch (CLOCK_REALTIME: packet sockets' receive
/// timestamps use it too).
fn wall_ns() -> i128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as i128)
}

/// The kernel's time and event counters the wakeups benchmark compares.
struct KernelCounters {
    /// All CPUs' system, softirq and hardirq ticks (/proc/stat, USER_HZ).
    sys: u64,
    softirq: u64,
    irq: u64,
    /// Each CPU's softirq ticks.
    cpu_softirq: Vec<u64>,
    /// HRTIMER and TIMER softirqs raised, all CPUs (/proc/softirqs).
    hrtimer: u64,
    timer: u64,
    /// Local APIC timer interrupts, all CPUs (/proc/interrupts "LOC:";
    /// arch_timer on arm64).
    loc: u64,
}

impl KernelCounters {
    fn read() -> Self {
        let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
        let fields = |l: &str| -> Vec<u64> {
            l.split_whitespace()
                .skip(1)
                .filter_map(|x| x.parse().ok())
                .collect()
        };
        let all = stat.lines().next().map(fields).unwrap_or_default();
        let at = |f: &[u64], i: usize| f.get(i).copied().unwrap_or(0);
        let cpu_softirq = stat
            .lines()
            .skip(1)
            .take_while(|l| l.starts_with("cpu"))
            .map(|l| at(&fields(l), 6))
            .collect();
        let row_sum = |text: &str, name: &str| -> u64 {
            text.lines()
                .find(|l| l.trim_start().starts_with(name) || l.ends_with(name))
                .map(|l| {
                    l.split_whitespace()
                        .skip(1)
                        .map_while(|x| x.parse::<u64>().ok())
                        .sum()
                })
                .unwrap_or(0)
        };
        let softirqs = std::fs::read_to_string("/proc/softirqs").unwrap_or_default();
        let interrupts = std::fs::read_to_string("/proc/interrupts").unwrap_or_default();
        let loc = match row_sum(&interrupts, "LOC:") {
            0 => row_sum(&interrupts, "arch_timer"),
            n => n,
        };
        KernelCounters {
            sys: at(&all, 2),
            softirq: at(&all, 6),
            irq: at(&all, 5),
            cpu_softirq,
            hrtimer: row_sum(&softirqs, "HRTIMER:"),
            timer: row_sum(&softirqs, "TIMER:"),
            loc,
        }
    }
}

/// /proc/stat counts in USER_HZ, which is 100 on every Linux architecture.
const USER_HZ: f64 = 100.0;

/// Set by SIGINT: `mmap record` stops, writes its file and exits.
static INTERRUPTED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

extern "C" fn on_sigint(_: libc::c_int) {
    INTERRUPTED.store(true, std::sync::atomic::Ordering::Relaxed);
}

/// Plays FILE to, or records FILE from (until SIGINT), DEVICE through its
/// mmap'd buffer the way mmap clients such as PulseAudio and JACK do: wait
/// until a period is there (`snd_pcm_wait`, i.e. poll on avail_min), then
/// map, copy and commit what is available.
///
/// Why not `aplay -M`/`arecord -M`: they emulate read/write on the mapping
/// (alsa-lib's `snd_pcm_read_areas`/`write_areas`), which re-reads the
/// hardware position until a whole chunk is done and waits only when
/// nothing at all is available. On a card whose position moves by the
/// frame between period interrupts (snd-voip's clock, snd-dummy's hrtimer,
/// DMA residue), that is a busy loop: measured on the emulated arm64 board,
/// `arecord -M` on snd-voip and on snd-dummy alike took a whole vCPU
/// (snd-aloop, whose position moves by the jiffy, did not); at SCHED_FIFO
/// sixteen such clients starved the guest. Prints "underrun"/"overrun" on
/// an xrun (the card matrix greps for them) and fails.
fn mmap(
    dir: &str,
    dev: &str,
    file: &str,
    rate: u32,
    channels: u32,
    period: i64,
    buffer: i64,
) -> Result<bool> {
    let direction = match dir {
        "play" => Direction::Playback,
        "record" => Direction::Capture,
        _ => bail!("mmap: play or record, not {dir:?}"),
    };
    let pcm = open_hw(
        dev,
        direction,
        Access::MMapInterleaved,
        channels,
        rate,
        period,
        buffer,
    )?;
    {
        let sw = pcm.sw_params_current()?;
        sw.set_avail_min(period)?;
        // Playback starts once the buffer is full (the loop below fills it).
        sw.set_start_threshold(buffer)?;
        pcm.sw_params(&sw)?;
    }
    let io = pcm.io_i16()?;
    let ch = channels as usize;
    let xrun = |what: &str| -> Result<bool> {
        eprintln!("pcmcheck mmap: {what}!!! on {dev} ({:?})", pcm.state());
        Ok(false)
    };
    if direction == Direction::Playback {
        let bytes = std::fs::read(file).with_context(|| format!("read {file}"))?;
        let mut data: Vec<i16> = bytes
            .chunks_exact(2)
            .map(|b| i16::from_le_bytes([b[0], b[1]]))
            .collect();
        data.truncate(data.len() / ch * ch);
        let mut done = 0;
        while done < data.len() {
            match pcm.avail_update() {
                Ok(0) => {}
                Ok(_) => {
                    done += ch
                        * io.mmap(data.len() - done, |buf| {
                            let n = buf.len().min(data.len() - done) / ch * ch;
                            buf[..n].copy_from_slice(&data[done..done + n]);
                            n / ch
                        })?;
                    continue;
                }
                Err(e) if e.errno() == libc::EPIPE => return xrun("underrun"),
                Err(e) => return Err(e.into()),
            }
            // The buffer is full: start it (mmap commits never do), or
            // wait for a period's room.
            if pcm.state() == State::Prepared {
                pcm.start()?;
            }
            pcm.wait(Some(1000))?;
        }
        if pcm.state() == State::Prepared {
            pcm.start()?;
        }
        if pcm.state() == State::XRun {
            return xrun("underrun");
        }
        pcm.drain()?;
        return Ok(true);
    }
    // SAFETY: the handler only stores to an atomic (async-signal-safe).
    unsafe { libc::signal(libc::SIGINT, on_sigint as *const () as libc::sighandler_t) };
    let mut out: Vec<u8> = Vec::new();
    pcm.start()?;
    while !INTERRUPTED.load(std::sync::atomic::Ordering::Relaxed) {
        match pcm.wait(Some(100)) {
            Ok(_) => {}
            Err(e) if e.errno() == libc::EINTR => continue,
            Err(e) if e.errno() == libc::EPIPE => return xrun("overrun"),
            Err(e) => return Err(e.into()),
        }
        match pcm.avail_update() {
            Ok(0) => continue,
            Ok(_) => {}
            Err(e) if e.errno() == libc::EPIPE => return xrun("overrun"),
            Err(e) => return Err(e.into()),
        }
        io.mmap(buffer as usize * ch, |buf| {
            let n = buf.len() / ch * ch;
            out.extend(buf[..n].iter().flat_map(|v| v.to_le_bytes()));
            n / ch
        })?;
    }
    std::fs::write(file, &out).with_context(|| format!("write {file}"))?;
    Ok(true)
}

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let a = |i: usize| args.get(i).map(String::as_str).unwrap_or("");
    let ok = match a(0) {
        "drift" => drift(a(1), a(2).parse()?, a(3).parse()?, a(4).parse()?)?,
        "pause" => pause(a(1), a(2))?,
        "xrun" => xrun(a(1), a(2))?,
        "wakeups" => wakeups(a(1), a(2).parse()?, a(3).parse()?, a(4).parse()?)?,
        "realtime" => realtime(a(1), a(2), a(3).parse()?, a(4).parse()?)?,
        "roundtrip" => roundtrip(a(1), a(2), a(3).parse()?)?,
        "mmap" => mmap(
            a(1),
            a(2),
            a(3),
            a(4).parse()?,
            a(5).parse()?,
            a(6).parse()?,
            a(7).parse()?,
        )?,
        _ => bail!(
            "usage: pcmcheck drift DEVICE RATE PERIOD SECONDS | pause PLAY REC | xrun PLAY REC | realtime DEVICE playback|capture SECONDS MAX_LATE_MS | roundtrip PLAY REC SECONDS | wakeups DEVICE|idle RATE PERIOD SECONDS | mmap play|record DEVICE FILE RATE CHANNELS PERIOD BUFFER"
        ),
    };
    println!("{}", if ok { "PASS" } else { "FAIL" });
    std::process::exit(if ok { 0 } else { 1 });
}
