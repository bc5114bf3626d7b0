//! `init` + `run` on a plain file, with the Linux side played by threads
//! of this test following the protocol: one drains the microphone ring and
//! checks the tone, one fills the speaker ring and the test checks the WAV.

mod common;

use std::f64::consts::TAU;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::{fence, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use common::*;
use rtos_sim::region::{Region, Which};
use snd_voip_logic::fifo::off;

const OFFSET: u64 = 0x3000;
const SIZE: usize = 0x10000;
const RATE: f64 = 8000.0;

fn wait_state(r: &Region, which: Which, field: usize, want: u32, timeout: Duration) {
    let t = Instant::now();
    let io = r.ring(which).unwrap();
    while io.u32(field).load(Ordering::Acquire) != want {
        assert!(
            t.elapsed() < timeout,
            "{which:?} field {field} never became {want}"
        );
        thread::sleep(Duration::from_millis(1));
    }
}

/// The test's region, once the simulator has started producing.
fn open_when_running(file: &Path) -> Region {
    let r = Region::open(file, OFFSET, SIZE).unwrap();
    wait_state(
        &r,
        Which::Mic,
        off::PRODUCER_STATE,
        1,
        Duration::from_secs(10),
    );
    r
}

/// Linux's capture side: consume everything, until the producer stops.
fn drain_mic(file: &Path) -> Vec<u8> {
    let r = open_when_running(file);
    let io = r.ring(Which::Mic).unwrap();
    io.u32(off::CONSUMER_STATE).store(1, Ordering::Release);
    let fb = io.ring().params.frame_bytes();
    let mut read = io.read_frames().load(Ordering::Acquire);
    let mut out = Vec::new();
    loop {
        let running = io.u32(off::PRODUCER_STATE).load(Ordering::Acquire) == 1;
        let write = io.write_frames().load(Ordering::Acquire);
        let fill = io
            .ring()
            .fill(write, read)
            .expect("impossible mic counters");
        let start = out.len();
        out.resize(start + fill as usize * fb, 0);
        io.get(read, &mut out[start..]);
        fence(Ordering::SeqCst);
        read += fill;
        io.read_frames().store(read, Ordering::Release);
        io.u32(off::CONSUMER_HEARTBEAT)
            .fetch_add(1, Ordering::Release);
        if !running {
            break;
        }
        thread::sleep(Duration::from_millis(5));
    }
    io.u32(off::CONSUMER_STATE).store(0, Ordering::Release);
    out
}

/// Linux's playback side: `frames` of a sine, paced at the nominal rate,
/// kept `lead` frames ahead.
fn fill_speaker(file: &Path, tone: &[i16], lead: u64) {
    let r = open_when_running(file);
    let io = r.ring(Which::Speaker).unwrap();
    io.u32(off::PRODUCER_STATE).store(1, Ordering::Release);
    let cap = io.ring().capacity();
    let mut write = io.write_frames().load(Ordering::Acquire);
    let base = write;
    let t0 = Instant::now();
    let total = tone.len() as u64;
    while write - base < total {
        let due = (lead + (t0.elapsed().as_secs_f64() * RATE) as u64).min(total);
        let read = io.read_frames().load(Ordering::Acquire);
        let free = cap
            - io.ring()
                .fill(write, read)
                .expect("impossible speaker counters");
        let n = due.saturating_sub(write - base).min(free);
        if n > 0 {
            let i = (write - base) as usize;
            let bytes: Vec<u8> = tone[i..i + n as usize]
                .iter()
                .flat_map(|s| s.to_le_bytes())
                .collect();
            io.put(write, &bytes);
            write += n;
            io.write_frames().store(write, Ordering::Release);
        }
        thread::sleep(Duration::from_millis(5));
    }
    io.u32(off::PRODUCER_STATE).store(0, Ordering::Release);
}

#[test]
fn tone_into_mic_ring_and_speaker_ring_into_wav() {
    let dir = tempfile::tempdir().unwrap();
    let file = region_file(dir.path(), OFFSET);
    let wav = dir.path().join("spk.wav");
    sim(&file, OFFSET, &["init"]);

    // 440 Hz at -12 dBFS, 1.5 s, for the speaker ring.
    let amp = 32767.0 * 10f64.powf(-12.0 / 20.0);
    let tone: Vec<i16> = (0..12000)
        .map(|n| (amp * (TAU * 440.0 * n as f64 / RATE).sin()).round() as i16)
        .collect();

    let child = Command::new(BIN)
        .args(["run", "--region"])
        .arg(&file)
        .args(["--offset", &format!("{OFFSET:#x}")])
        .args([
            "--tone",
            "1000",
            "--level",
            "-6",
            "--ppm",
            "300",
            "--seconds",
            "2",
        ])
        .arg("--out")
        .arg(&wav)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let f1 = file.clone();
    let mic = thread::spawn(move || drain_mic(&f1));
    let f2 = file.clone();
    let t2 = tone.clone();
    let spk = thread::spawn(move || fill_speaker(&f2, &t2, 8 * 160));
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    let mic = mic.join().unwrap();
    spk.join().unwrap();
    let line = String::from_utf8(out.stdout).unwrap();
    let s: serde_json::Value = serde_json::from_str(line.trim()).unwrap();
    eprintln!("{s}");
    let num = |k: &str| {
        s[k].as_f64()
            .unwrap_or_else(|| panic!("{k} missing in {s}"))
    };

    // Microphone: everything produced was read, nothing dropped, at
    // 8000 * (1 + 300e-6) frames/s plus the two-period start fill.
    assert_eq!(num("ppm"), 300.0);
    assert_eq!(num("mic_frames_dropped"), 0.0);
    assert_eq!(num("mic_overruns"), 0.0);
    assert_eq!(s["mic_reader_started"], true);
    assert_eq!(mic.len() as f64 / 2.0, num("mic_frames_produced"));
    let expect = 320.0 + num("seconds") * RATE * 1.0003;
    assert!(
        (mic.len() as f64 / 2.0 - expect).abs() <= 2.0 * 160.0,
        "mic frames {} vs {expect}",
        mic.len() / 2
    );
    // The reader may start after the start fill was taken: at least a period.
    assert!(
        num("mic_fill_max") <= 8192.0 && num("mic_fill_max") >= 160.0,
        "{s}"
    );
    let x = s16(&mic);
    let m = measure(&x, RATE);
    assert!((m.freq - 1000.0).abs() < 2.0, "{m:?}");
    assert!((m.dbfs + 6.0).abs() < 0.2, "{m:?}");
    assert!(m.purity > 0.99, "{m:?}");
    // Continuous: sample n is the sine's sample n, no gap, no repeat.
    let peak = 32767.0 * 10f64.powf(-6.0 / 20.0);
    for (n, v) in x.iter().enumerate() {
        let ideal = (peak * (TAU * 1000.0 * n as f64 / RATE).sin()).round() / 32768.0;
        assert!(
            (v - ideal).abs() < 2.0 / 32768.0,
            "mic sample {n}: {v} vs {ideal}"
        );
    }

    // Speaker: all 12000 frames consumed, the WAV starts with them exactly,
    // then silence; no underrun: the ring ran dry only after the test's
    // producer had stopped (its state word says so).
    assert_eq!(s["speaker_started"], true);
    assert_eq!(num("speaker_frames_consumed"), 12000.0);
    assert_eq!(num("speaker_underruns"), 0.0);
    assert!(num("speaker_silence_frames") >= 800.0, "{s}");
    assert_eq!(
        num("out_wav_frames"),
        12000.0 + num("speaker_silence_frames")
    );
    assert!(num("speaker_fill_max") >= 320.0);
    let a = rtos_sim::wav::read(&wav).unwrap();
    assert_eq!((a.format_tag, a.rate, a.channels), (1, 8000, 1));
    assert_eq!(a.samples.len() as f64, num("out_wav_frames"));
    assert_eq!(&a.samples[..12000], &tone[..], "speaker audio differs");
    assert!(a.samples[12000..].iter().all(|&v| v == 0));
    let y: Vec<f64> = a.samples.iter().map(|&v| f64::from(v) / 32768.0).collect();
    let m = measure(&y, RATE);
    let len = (m.last - m.first + 1) as f64 / RATE;
    assert!((len - 1.5).abs() < 0.03, "speaker tone {len} s");
    assert!((m.freq - 440.0).abs() < 2.0, "{m:?}");
    assert!((m.dbfs + 12.0).abs() < 0.2, "{m:?}");
    // The sim stopped: states back to 0, counters in the header match.
    let r = Region::open(&file, OFFSET, SIZE).unwrap();
    let mic_io = r.ring(Which::Mic).unwrap();
    let spk_io = r.ring(Which::Speaker).unwrap();
    assert_eq!(mic_io.u32(off::PRODUCER_STATE).load(Ordering::Acquire), 0);
    assert_eq!(spk_io.u32(off::CONSUMER_STATE).load(Ordering::Acquire), 0);
    assert_eq!(
        f64::from(spk_io.u32(off::UNDERRUNS).load(Ordering::Acquire)),
        num("speaker_underruns")
    );
    assert!(mic_io.u32(off::PRODUCER_HEARTBEAT).load(Ordering::Acquire) >= 90);
    assert!(spk_io.u32(off::CONSUMER_HEARTBEAT).load(Ordering::Acquire) >= 75);
}

/// A small ring (2048 bytes = 1024 frames, full in ~0.1 s) that Linux never
/// reads, with Linux's consumer state `state`; the run's summary.
fn run_on_unread_mic_ring(file: &Path, state: u32) -> serde_json::Value {
    sim(file, OFFSET, &["init", "--ring-bytes", "2048"]);
    {
        let r = Region::open(file, OFFSET, SIZE).unwrap();
        let io = r.ring(Which::Mic).unwrap();
        io.u32(off::CONSUMER_STATE).store(state, Ordering::Release);
    }
    let out = sim(
        file,
        OFFSET,
        &[
            "run",
            "--tone",
            "500",
            "--ppm",
            "-300",
            "--seconds",
            "0.5",
            "--start-fill",
            "1000",
        ],
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn full_mic_ring_drops_but_counts_no_overrun_while_linux_is_stopped() {
    let dir = tempfile::tempdir().unwrap();
    let file = region_file(dir.path(), OFFSET);
    let s = run_on_unread_mic_ring(&file, 0);
    assert_eq!(s["mic_frames_produced"], 1024);
    assert!(s["mic_frames_dropped"].as_u64().unwrap() > 2000, "{s}");
    assert_eq!(s["mic_overruns"], 0);
    assert_eq!(s["mic_reader_started"], false);
    let st = sim(&file, OFFSET, &["status", "--json"]);
    let st: serde_json::Value = serde_json::from_slice(&st.stdout).unwrap();
    assert_eq!(st["mic"]["overruns"].as_u64(), Some(0));
}

#[test]
fn empty_speaker_ring_counts_underruns_only_while_linux_produces() {
    for (state, want) in [(1u32, true), (0, false)] {
        let dir = tempfile::tempdir().unwrap();
        let file = region_file(dir.path(), OFFSET);
        sim(&file, OFFSET, &["init"]);
        {
            // Linux wrote three periods and then went quiet.
            let r = Region::open(&file, OFFSET, SIZE).unwrap();
            let io = r.ring(Which::Speaker).unwrap();
            io.put(0, &[0x11u8; 960]);
            io.write_frames().store(480, Ordering::Release);
            io.u32(off::PRODUCER_STATE).store(state, Ordering::Release);
        }
        let out = sim(&file, OFFSET, &["run", "--seconds", "0.5"]);
        let s: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(s["speaker_started"], true, "{s}");
        assert_eq!(s["speaker_frames_consumed"], 480, "{s}");
        assert!(s["speaker_silence_frames"].as_u64().unwrap() >= 2000, "{s}");
        let underruns = s["speaker_underruns"].as_u64().unwrap();
        assert_eq!(underruns > 0, want, "producer state {state}: {s}");
    }
}

#[test]
fn full_mic_ring_drops_and_counts_overruns_while_linux_streams() {
    let dir = tempfile::tempdir().unwrap();
    let file = region_file(dir.path(), OFFSET);
    // Linux "started" earlier: its consumer state is 1, but it never reads.
    let s = run_on_unread_mic_ring(&file, 1);
    assert_eq!(s["mic_frames_produced"], 1024);
    let dropped = s["mic_frames_dropped"].as_u64().unwrap();
    // Generated: the start fill, then whole periods for ~0.5 s at 7997.6/s.
    let periods = (1024 + dropped - 1000) as f64 / 160.0;
    assert_eq!(periods.fract(), 0.0, "{s}");
    assert!((22.0..=25.0).contains(&periods), "{s}");
    let overruns = s["mic_overruns"].as_u64().unwrap();
    assert!(overruns >= 15, "{s}");
    assert_eq!(s["mic_fill_max"], 1024);
    assert_eq!(s["speaker_started"], false);
    assert_eq!(s["speaker_underruns"], 0);
    let st = sim(&file, OFFSET, &["status", "--json"]);
    let st: serde_json::Value = serde_json::from_slice(&st.stdout).unwrap();
    assert_eq!(st["mic"]["overruns"].as_u64(), Some(overruns));
    assert_eq!(st["mic"]["fill_frames"], 1024);
    assert_eq!(st["mic"]["error"], serde_json::Value::Null);
}

#[test]
fn sigterm_stops_cleanly_with_a_valid_wav() {
    let dir = tempfile::tempdir().unwrap();
    let file = region_file(dir.path(), OFFSET);
    let wav = dir.path().join("o.wav");
    sim(
        &file,
        OFFSET,
        &[
            "init",
            "--format",
            "MU_LAW",
            "--rate",
            "16000",
            "--channels",
            "2",
        ],
    );
    let child = Command::new(BIN)
        .args(["run", "--region"])
        .arg(&file)
        .args(["--offset", &format!("{OFFSET:#x}"), "--out"])
        .arg(&wav)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    open_when_running(&file);
    thread::sleep(Duration::from_millis(300));
    let pid = child.id().to_string();
    assert!(Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap()
        .success());
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{out:?}");
    let s: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let secs = s["seconds"].as_f64().unwrap();
    assert!(secs > 0.25 && secs < 5.0, "{s}");
    // Nobody played: consumption never started, the WAV is empty but valid.
    assert_eq!(s["speaker_started"], false);
    let a = rtos_sim::wav::parse(&std::fs::read(&wav).unwrap(), &wav);
    let e = a.expect_err("an empty WAV has no frames").to_string();
    assert!(e.contains("no audio frames"), "{e}");
    let raw = std::fs::read(&wav).unwrap();
    assert_eq!(&raw[20..22], &7u16.to_le_bytes()); // mu-law tag
    assert_eq!(
        u32::from_le_bytes([raw[4], raw[5], raw[6], raw[7]]) as usize,
        raw.len() - 8
    );
    let r = Region::open(&file, OFFSET, SIZE).unwrap();
    let io = r.ring(Which::Mic).unwrap();
    assert_eq!(io.u32(off::PRODUCER_STATE).load(Ordering::Acquire), 0);
    // 16 kHz stereo mu-law: at least 0.25 s of frames went in (ring holds 8192).
    assert!(s["mic_frames_produced"].as_u64().unwrap() >= 4000, "{s}");
}
