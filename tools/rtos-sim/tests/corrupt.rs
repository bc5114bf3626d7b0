//! `init`, `status` and `corrupt` through the binary, checked against the
//! file's bytes with `snd_voip_logic::fifo` directly.

mod common;

use std::path::Path;

use common::*;
use rtos_sim::header::Corruption;
use snd_voip_logic::fifo::{self, off, FifoError, Ring, MAGIC};

const OFFSET: u64 = 0x2000;
const SIZE: usize = 0x10000;

fn window(file: &Path) -> Vec<u8> {
    let all = std::fs::read(file).unwrap();
    all[OFFSET as usize..OFFSET as usize + SIZE].to_vec()
}

fn u64_at(b: &[u8], o: usize) -> u64 {
    u64::from_le_bytes(b[o..o + 8].try_into().unwrap())
}

/// Validates both rings as the kernel would: the header, then the counters.
fn check(w: &[u8]) -> (Result<u64, FifoError>, Option<Result<u64, FifoError>>) {
    let ring_fill = |at: usize| {
        let ring = Ring::validate(&w[at..], SIZE - at)?;
        ring.fill(
            u64_at(w, at + off::WRITE_FRAMES),
            u64_at(w, at + off::READ_FRAMES),
        )
    };
    let spk = Ring::validate(w, SIZE)
        .ok()
        .map(|mic| ring_fill(fifo::second_ring_offset(&mic)));
    (ring_fill(0), spk)
}

#[test]
fn init_writes_both_headers_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let file = region_file(dir.path(), OFFSET);
    sim(
        &file,
        OFFSET,
        &[
            "init",
            "--rate",
            "16000",
            "--channels",
            "2",
            "--format",
            "A_LAW",
            "--ring-bytes",
            "8192",
            "--period-frames",
            "320",
        ],
    );
    let all = std::fs::read(&file).unwrap();
    // Nothing outside the window was touched.
    assert!(all[..OFFSET as usize].iter().all(|&b| b == 0xa5));
    let w = &all[OFFSET as usize..];
    let mic = Ring::validate(w, SIZE).unwrap();
    assert!(mic.to_linux);
    assert_eq!(
        (
            mic.ring_bytes,
            mic.period_frames,
            mic.params.rate.get(),
            mic.params.channels
        ),
        (8192, 320, 16000, 2)
    );
    assert_eq!(mic.params.format.name(), "A_LAW");
    let at = fifo::second_ring_offset(&mic);
    assert_eq!(at, 256 + 8192);
    let spk = Ring::validate(&w[at..], SIZE - at).unwrap();
    assert!(!spk.to_linux);
    assert_eq!((spk.ring_bytes, spk.period_frames), (8192, 320));
    // Reference header from fifo::write_header; data is A-law silence.
    for (base, to_linux) in [(0usize, true), (at, false)] {
        let mut h = [0u8; 256];
        assert!(fifo::write_header(
            &mut h,
            8192,
            320,
            mic.params.format,
            16000,
            2,
            to_linux
        ));
        assert_eq!(&w[base..base + 256], &h[..], "header at {base:#x}");
        assert!(w[base + 256..base + 256 + 8192].iter().all(|&b| b == 0xd5));
    }
    // The rest of the window after the speaker ring is left alone.
    assert!(w[at + 256 + 8192..SIZE].iter().all(|&b| b == 0xa5));
    assert_eq!(u32::from_le_bytes(w[0..4].try_into().unwrap()), MAGIC);
    let st = sim(&file, OFFSET, &["status"]);
    let text = String::from_utf8(st.stdout).unwrap();
    assert!(text.contains("mic ring at 0x0: valid"), "{text}");
    assert!(text.contains("speaker ring at 0x2100: valid"), "{text}");
}

#[test]
fn init_refuses_layouts_linux_would_refuse() {
    let dir = tempfile::tempdir().unwrap();
    let file = region_file(dir.path(), OFFSET);
    for args in [
        &["init", "--rate", "12345"][..],
        &["init", "--ring-bytes", "32768"], // two rings + headers exceed 64 KiB
        &["init", "--ring-bytes", "10000"],
        &["init", "--period-frames", "0"],
        &["init", "--channels", "3"],
    ] {
        let out = try_sim(&file, OFFSET, args);
        assert!(!out.status.success(), "{args:?} accepted");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("ring"), "{args:?}: {err}");
    }
    // Nothing was written.
    assert!(window(&file).iter().all(|&b| b == 0xa5));
    // A window outside the file, or a misaligned one, is refused.
    assert!(!try_sim(&file, 0x100000, &["init"]).status.success());
    assert!(!try_sim(&file, 0x2004, &["init"]).status.success());
}

#[test]
fn every_corruption_gives_its_fifo_error() {
    let dir = tempfile::tempdir().unwrap();
    let file = region_file(dir.path(), OFFSET);
    let names = [
        (Corruption::BadMagic, "bad-magic"),
        (Corruption::BadVersion, "bad-version"),
        (Corruption::OversizedRing, "oversized-ring"),
        (Corruption::ReadBeyondWrite, "read-beyond-write"),
        (Corruption::FillBeyondRing, "fill-beyond-ring"),
        (Corruption::BadRate, "bad-rate"),
        (Corruption::BadPeriod, "bad-period"),
    ];
    assert_eq!(names.len(), Corruption::ALL.len());
    for (kind, name) in names {
        for ring in ["mic", "speaker"] {
            sim(&file, OFFSET, &["init"]);
            // Some traffic first, so the counters are not trivially zero.
            let out = sim(&file, OFFSET, &["run", "--seconds", "0.1"]);
            assert!(out.status.success());
            let (mic, spk) = check(&window(&file));
            assert_eq!(mic, Ok(u64_at(&window(&file), off::WRITE_FRAMES)));
            assert_eq!(spk, Some(Ok(0)));

            let out = sim(&file, OFFSET, &["corrupt", "--what", name, "--ring", ring]);
            let text = String::from_utf8_lossy(&out.stdout);
            assert!(text.contains("corrupted"), "{text}");
            let (mic, spk) = check(&window(&file));
            let (bad, good) = if ring == "mic" {
                (mic, spk)
            } else {
                (spk.unwrap(), Some(mic))
            };
            let err = bad.expect_err(&format!("{name} on {ring} still valid"));
            assert!(kind.matches(&err), "{name} on {ring}: {err:?}");
            let expected = match kind {
                Corruption::BadMagic => FifoError::BadMagic(0xdead_beef),
                Corruption::BadVersion => FifoError::BadVersion(2),
                // the next power of two above the room left in the region
                Corruption::OversizedRing => FifoError::BadRingSize(0x10000),
                Corruption::ReadBeyondWrite | Corruption::FillBeyondRing => FifoError::BadIndices,
                Corruption::BadRate => FifoError::BadFormat,
                Corruption::BadPeriod => FifoError::BadPeriod(0),
            };
            assert_eq!(err, expected, "{name} on {ring}");
            // The other ring is untouched (when it can still be located).
            if let Some(g) = good {
                assert!(g.is_ok(), "{name} on {ring} broke the other ring: {g:?}");
            }
            // status reports the error instead of failing.
            let st = sim(&file, OFFSET, &["status", "--json"]);
            let v: serde_json::Value = serde_json::from_slice(&st.stdout).unwrap();
            let r = if ring == "mic" {
                &v["mic"]
            } else {
                &v["speaker"]
            };
            assert_eq!(
                r["error"].as_str(),
                Some(format!("{expected:?}").as_str()),
                "{v}"
            );
            // run refuses a corrupted header; impossible counters make it
            // leave the ring alone and count index errors.
            let out = try_sim(&file, OFFSET, &["run", "--seconds", "0.1"]);
            if matches!(
                kind,
                Corruption::ReadBeyondWrite | Corruption::FillBeyondRing
            ) {
                assert!(out.status.success());
                let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
                assert!(v["index_errors"].as_u64().unwrap() >= 1, "{v}");
            } else {
                assert!(!out.status.success(), "run accepted {name} on {ring}");
            }
        }
    }
}
