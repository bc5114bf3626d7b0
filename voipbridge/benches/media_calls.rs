//! Media path benchmarks (`cargo bench -p voipbridge --bench media_calls`);
//! prints numbers, asserts nothing.
//!
//! 1. CPU time per call-second with 1, 8 and 100 simultaneous calls on
//!    loopback: each call is two media sessions in this process (tone
//!    capture, WAV playback into a temporary directory), so the figure is for
//!    both ends of a call.
//! 2. Added one-way latency: from a captured frame being handed to the
//!    bridge to its RTP packet leaving the socket (encode, marshal,
//!    `sendto`), p50/p99 over 20 000 frames with a real UDP socket; the
//!    ptime itself (the frame has to be captured before it can be sent) and
//!    device buffering come on top.
//! 3. Send timing of a live session: lateness of each packet relative to
//!    the 20 ms schedule, p50/p99, as a receiver on loopback sees it.

use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};
use voipbridge::media::call::{CallCore, CoreConfig, Transmit};
use voipbridge::media::report::NtpClock;
use voipbridge::media::{self, Codec, Direction, MediaParams};

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
        jitter_min_ms: 40,
        jitter_max_ms: 200,
        rtp_timeout_ms: 0,
    }
}

fn percentile(v: &mut [f64], p: f64) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    let i = ((v.len() as f64 - 1.0) * p).round() as usize;
    v.get(i).copied().unwrap_or(f64::NAN)
}

async fn calls(n: usize, secs: u64) {
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
    let cpu0 = cpu_seconds();
    let t0 = Instant::now();
    tokio::time::sleep(Duration::from_secs(secs)).await;
    let cpu = cpu_seconds() - cpu0;
    let wall = t0.elapsed().as_secs_f64();
    let (mut sent, mut received, mut lost) = (0, 0, 0);
    for h in &handles {
        let s = h.stats();
        sent += s.packets_sent;
        received += s.packets_received;
        lost += s.lost;
    }
    for h in handles {
        h.stop().await;
    }
    let _ = std::fs::remove_dir_all(&dir);
    println!(
        "{n:>3} calls: CPU {:.3} ms per call-second ({:.1} % of one core in all), {sent} packets sent, {received} received, {lost} lost",
        cpu * 1000.0 / (n as f64 * wall),
        cpu * 100.0 / wall
    );
}

fn added_latency() {
    let sock = UdpSocket::bind("127.0.0.1:0").expect("bind");
    let sink = UdpSocket::bind("127.0.0.1:0").expect("bind");
    let t0 = Instant::now();
    let mut core = CallCore::new(
        CoreConfig {
            remote: sink.local_addr().expect("addr"),
            codec: Codec::Pcmu,
            payload_type: 0,
            ptime_ms: 20,
            telephone_event_pt: None,
            direction: Direction::SendRecv,
            jitter_min_ms: 40,
            jitter_max_ms: 200,
            rtp_timeout_ms: 0,
        },
        t0,
        NtpClock::new(t0, 0),
        (1, 2, 3),
    );
    let frame: Vec<i16> = (0..160).map(|k| (k * 200) as i16).collect();
    let mut lat = Vec::with_capacity(20_000);
    let mut buf = [0u8; 2048];
    sink.set_nonblocking(true).expect("nonblocking");
    for k in 0..20_000u64 {
        let start = Instant::now();
        for t in core.on_capture(&frame, t0 + Duration::from_millis(k * 20)) {
            if let Transmit::Rtp(to, d) = t {
                let _ = sock.send_to(&d, to);
            }
        }
        lat.push(start.elapsed().as_secs_f64() * 1e6);
        while sink.recv_from(&mut buf).is_ok() {}
    }
    println!(
        "added one-way latency, frame in -> RTP out: p50 {:.1} us, p99 {:.1} us (plus the 20 ms ptime)",
        percentile(&mut lat, 0.5),
        percentile(&mut lat, 0.99)
    );
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

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    added_latency();
    rt.block_on(async {
        send_timing().await;
        for n in [1, 8, 100] {
            calls(n, 5).await;
        }
    });
}
