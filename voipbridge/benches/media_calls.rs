//! Media path benchmarks (`cargo bench -p voipbridge --bench media_calls`,
//! or `make bench-media`); prints numbers, asserts nothing.
//!
//! 1. CPU per call-second with 1, 8 and 100 simultaneous calls on the one
//!    media engine thread, on loopback UDP: each call is both of its ends
//!    in this process (tone capture, WAV recording), so the figure covers
//!    two ends; per end it is half. Measured for the event-driven engine
//!    (poll on descriptors, the default) and for a timer-driven one (every
//!    call serviced every 10 ms), each in a child process of its own since
//!    the engine is one per process.
//! 2. The engine's own work without sockets or devices: 100 calls in
//!    virtual time on one thread (sim), CPU per call-second.
//! 3. Allocations per RTP packet in the steady state, counted by a
//!    counting global allocator: in virtual time (exact, one thread) and in
//!    the live engine (whole process: the tokio runtime included).
//! 4. Resampler cost per call (ns per output sample, % of this core for
//!    both directions of one call), against the previous sinc resampler
//!    that evaluated a sine and two cosines per tap.
//! 5. Mouth-to-ear latency in virtual time with the default devices
//!    (period 10 ms, ring 20 ms), and send timing of a live session.

use std::alloc::{GlobalAlloc, Layout, System};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};
use voipbridge::media::engine::{self, Mode};
use voipbridge::media::resample::Resampler;
use voipbridge::media::sim::{EndSpec, Signal, Sim};
use voipbridge::media::{self, Codec, Direction, MediaParams};

struct Counting;

static ALLOCS: AtomicU64 = AtomicU64::new(0);

// SAFETY: every call is forwarded unchanged to the system allocator; the
// counter is an atomic.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: the caller's layout contract holds for System too.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` came from System.alloc with this layout.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: `ptr` came from System with `layout`.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn cpu_seconds() -> f64 {
    // utime + stime of this process, in clock ticks (USER_HZ = 100 on Linux).
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let after = stat.rsplit_once(')').map(|x| x.1).unwrap_or("");
    let f: Vec<&str> = after.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    (ticks(11) + ticks(12)) / 100.0
}

fn params(remote: SocketAddr, capture: &str, playback: String) -> MediaParams {
    MediaParams {
        remote,
        codec: Codec::Pcmu,
        payload_type: 0,
        ptime_ms: 20,
        telephone_event_pt: Some(101),
        direction: Direction::SendRecv,
        capture: capture.parse().expect("spec"),
        playback: playback.parse().expect("spec"),
        rtp_timeout_ms: 0,
        ..MediaParams::default()
    }
}

fn percentile(v: &mut [f64], p: f64) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    let i = ((v.len() as f64 - 1.0) * p).round() as usize;
    v.get(i).copied().unwrap_or(f64::NAN)
}

/// `n` calls (2n ends) on loopback for `secs`: CPU per call-second and
/// allocations per packet.
async fn calls(n: usize, secs: u64, mode: &str) {
    let dir = std::env::temp_dir().join(format!("voipbridge-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let mut handles = Vec::new();
    for k in 0..n {
        let sa = tokio::net::UdpSocket::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let sb = tokio::net::UdpSocket::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let (aa, ab) = (
            sa.local_addr().expect("addr"),
            sb.local_addr().expect("addr"),
        );
        let wa = format!("wav:{}/a{k}.wav", dir.display());
        let wb = format!("wav:{}/b{k}.wav", dir.display());
        handles.push(
            media::start(params(ab, "tone:1000", wa), sa)
                .await
                .expect("start"),
        );
        handles.push(
            media::start(params(aa, "tone:440", wb), sb)
                .await
                .expect("start"),
        );
    }
    // Warm-up: jitter buffers start, buffers reach their size.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let sent0: u64 = handles.iter().map(|h| h.stats().packets_sent).sum();
    let allocs0 = ALLOCS.load(Ordering::Relaxed);
    let cpu0 = cpu_seconds();
    let t0 = Instant::now();
    tokio::time::sleep(Duration::from_secs(secs)).await;
    let cpu = cpu_seconds() - cpu0;
    let allocs = ALLOCS.load(Ordering::Relaxed) - allocs0;
    let wall = t0.elapsed().as_secs_f64();
    let (mut sent, mut received, mut lost, mut xruns) = (0, 0, 0, 0);
    for h in &handles {
        let s = h.stats();
        sent += s.packets_sent;
        received += s.packets_received;
        lost += s.lost;
        xruns += s.xruns;
    }
    for h in handles {
        h.stop().await;
    }
    let _ = std::fs::remove_dir_all(&dir);
    println!(
        "{mode:>13} {n:>3} calls: CPU {:.3} ms per call-second ({:.1} % of one core in all); {} allocations per RTP packet (whole process); {sent} sent, {received} received, {lost} lost, {xruns} late frames",
        cpu * 1000.0 / (n as f64 * wall),
        cpu * 100.0 / wall,
        fmt_ratio(allocs, sent - sent0),
    );
}

fn fmt_ratio(a: u64, b: u64) -> String {
    if b == 0 {
        "n/a".into()
    } else {
        format!("{:.3}", a as f64 / b as f64)
    }
}

fn sim_addr(i: usize) -> SocketAddr {
    SocketAddr::from(([127, 1, (i / 250) as u8, 1], 10000 + 2 * (i % 250) as u16))
}

/// The engine's own work: `n` calls in virtual time on this thread.
fn sim_cost(n: usize, secs: u64) {
    let t0 = Instant::now();
    let mut sim = Sim::new(t0, Duration::from_millis(5));
    let mut ends = Vec::new();
    for k in 0..n {
        let spec = EndSpec {
            signal: Signal::Sine(300.0 + 10.0 * k as f64),
            seconds: secs as usize + 3,
            ..EndSpec::default()
        };
        ends.push(sim.add_end(sim_addr(2 * k), sim_addr(2 * k + 1), &spec, k as u32 + 1));
        ends.push(sim.add_end(sim_addr(2 * k + 1), sim_addr(2 * k), &spec, k as u32 + 1000));
    }
    sim.run_until(t0 + Duration::from_secs(2));
    let sent0: u64 = ends.iter().map(|e| e.shared.stats().packets_sent).sum();
    let a0 = ALLOCS.load(Ordering::Relaxed);
    let wall = Instant::now();
    sim.run_until(t0 + Duration::from_secs(2 + secs));
    let used = wall.elapsed().as_secs_f64();
    let allocs = ALLOCS.load(Ordering::Relaxed) - a0;
    let sent: u64 = ends
        .iter()
        .map(|e| e.shared.stats().packets_sent)
        .sum::<u64>()
        - sent0;
    println!(
        "virtual time {n:>3} calls: engine work {:.3} ms per call-second (passthrough, no syscalls), {} services per end-second, {} allocations per RTP packet",
        used * 1000.0 / (n as f64 * secs as f64),
        sim.sched.services / (2 * n as u64 * (secs + 2)),
        fmt_ratio(allocs, sent)
    );
}

/// The previous resampler's inner loop (a sine and two cosines per tap).
fn old_resample(from: u32, to: u32, input: &[i16]) -> Vec<i16> {
    use std::f64::consts::PI;
    let (from, to) = (f64::from(from), f64::from(to));
    let ratio = (to / from).min(1.0);
    let half = (16.0 / ratio).ceil() as usize;
    let cutoff = ratio * 0.95;
    let step = from / to;
    let x: Vec<f64> = input.iter().map(|&s| f64::from(s)).collect();
    let mut out = Vec::new();
    let mut pos = half as f64;
    while pos + (half as f64) < x.len() as f64 {
        let centre = pos.floor() as usize;
        let mut acc = 0.0;
        for k in (centre + 1 - half)..=centre + half {
            let t = pos - k as f64;
            let xx = t * cutoff;
            let sinc = if xx.abs() < 1e-9 {
                1.0
            } else {
                (PI * xx).sin() / (PI * xx)
            };
            let w = (t / half as f64 + 1.0) / 2.0;
            let win = 0.42 - 0.5 * (2.0 * PI * w).cos() + 0.08 * (4.0 * PI * w).cos();
            acc += x.get(k).copied().unwrap_or(0.0) * cutoff * sinc * win;
        }
        out.push(acc as i16);
        pos += step;
    }
    out
}

fn resampler_cost() {
    for rate in [48000u32, 44100, 16000] {
        let secs = 2usize;
        let x8: Vec<i16> = (0..8000 * secs).map(|k| ((k * 37) % 2000) as i16).collect();
        let xr: Vec<i16> = (0..rate as usize * secs)
            .map(|k| ((k * 37) % 2000) as i16)
            .collect();
        let (mut up, mut down) = (Resampler::new(8000, rate), Resampler::new(rate, 8000));
        let mut out = Vec::with_capacity(rate as usize * secs + 100);
        let t = Instant::now();
        for c in x8.chunks(80) {
            up.process(c, &mut out);
        }
        let t_up = t.elapsed().as_secs_f64();
        let n_up = out.len();
        out.clear();
        let t = Instant::now();
        for c in xr.chunks(rate as usize / 100) {
            down.process(c, &mut out);
        }
        let t_down = t.elapsed().as_secs_f64();
        let n_down = out.len();
        let t = Instant::now();
        let old = old_resample(8000, rate, &x8[..8000]).len()
            + old_resample(rate, 8000, &xr[..rate as usize]).len();
        let t_old = t.elapsed().as_secs_f64();
        println!(
            "resampler 8 kHz <-> {} Hz: {:.1} ns per output sample up ({} taps), {:.1} ns down ({} taps); one call both ways {:.2} % of this core (previous sinc resampler: {:.1} %, {old} samples)",
            rate,
            t_up * 1e9 / n_up as f64,
            up.taps(),
            t_down * 1e9 / n_down as f64,
            down.taps(),
            (t_up + t_down) * 100.0 / secs as f64,
            t_old * 100.0,
        );
    }
}

fn sim_latency() {
    let t0 = Instant::now();
    let mut sim = Sim::new(t0, Duration::from_millis(0));
    let spec = EndSpec {
        signal: Signal::Clicks(4000),
        seconds: 5,
        ..EndSpec::default()
    };
    let _a = sim.add_end(sim_addr(0), sim_addr(1), &spec, 1);
    let b = sim.add_end(
        sim_addr(1),
        sim_addr(0),
        &EndSpec {
            signal: Signal::Sine(0.0),
            ..spec.clone()
        },
        2,
    );
    sim.run_until(t0 + Duration::from_secs(4));
    let tape = b.played.lock().expect("tape");
    let clicks: Vec<usize> = tape
        .samples
        .iter()
        .enumerate()
        .filter(|(_, &v)| v > 8000)
        .map(|(i, _)| i)
        .collect();
    let s = b.shared.stats();
    if let Some(&c) = clicks.get(1) {
        println!(
            "virtual time, period 10 ms, ring 20 ms, ptime 20 ms, jitter target {} ms, no network delay: mouth to ear {:.1} ms through both bridges (capture, packetisation, jitter buffer, playback ring)",
            s.jitter_buffer_ms,
            (c as f64 - 4000.0) / 8.0
        );
    }
}

async fn send_timing() {
    let rx = tokio::net::UdpSocket::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let s = tokio::net::UdpSocket::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let h = media::start(
        params(rx.local_addr().expect("addr"), "tone:1000", "null".into()),
        s,
    )
    .await
    .expect("start");
    let mut buf = [0u8; 2048];
    let mut arrivals = Vec::new();
    while arrivals.len() < 250 {
        if rx.recv_from(&mut buf).await.is_ok() {
            arrivals.push(Instant::now());
        }
    }
    h.stop().await;
    let first = arrivals[0];
    let mut late: Vec<f64> = arrivals
        .iter()
        .enumerate()
        .map(|(k, t)| {
            let due = first + Duration::from_millis(20 * k as u64);
            (t.saturating_duration_since(due).as_secs_f64()
                - due.saturating_duration_since(*t).as_secs_f64())
                * 1e6
        })
        .collect();
    println!(
        "live session send timing vs the 20 ms schedule: p50 {:.0} us, p99 {:.0} us",
        percentile(&mut late, 0.5),
        percentile(&mut late, 0.99)
    );
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime")
}

fn main() {
    let secs: u64 = std::env::var("MEDIA_BENCH_SECONDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5);
    // A child measuring one engine mode (the engine is one per process).
    if let Ok(mode) = std::env::var("MEDIA_BENCH_MODE") {
        let (m, name) = match mode.as_str() {
            "tick10" => (Mode::Tick(Duration::from_millis(10)), "timer 10 ms"),
            _ => (Mode::Events, "event-driven"),
        };
        engine::set_mode(m);
        let rt = runtime();
        rt.block_on(async {
            if mode == "events" {
                send_timing().await;
            }
            for n in [1, 8, 100] {
                calls(n, secs, name).await;
            }
        });
        return;
    }
    println!(
        "voipbridge media benchmark ({} logical CPUs, {}-second windows after 2 s of warm-up)",
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1),
        secs
    );
    resampler_cost();
    sim_latency();
    for n in [1, 8, 100] {
        sim_cost(n, secs.min(10));
    }
    let exe = std::env::current_exe().expect("own path");
    for mode in ["events", "tick10"] {
        let status = std::process::Command::new(&exe)
            .env("MEDIA_BENCH_MODE", mode)
            .status();
        if !status.as_ref().is_ok_and(|s| s.success()) {
            println!("{mode}: the measuring process failed: {status:?}");
        }
    }
}
