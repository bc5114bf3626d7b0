//! What the simulated microphone hears: a sine tone or a looped WAV file,
//! encoded in the ring's format.

use std::f64::consts::TAU;
use std::path::Path;

use g711::Law;
use snd_voip_logic::format::{Format, StreamParams};

use crate::{wav, SimError};

/// Where the microphone samples come from.
#[derive(Clone, Debug, PartialEq)]
pub enum SourceSpec {
    /// A sine of `hz` at peak level `dbfs` (relative to full scale), on
    /// every channel.
    Tone {
        /// Frequency in Hz.
        hz: f64,
        /// Peak level in dBFS (0 is full scale).
        dbfs: f64,
    },
    /// A WAV file played in a loop.
    Wav(std::path::PathBuf),
    /// Nothing: a silent room (the microphone then hears only the echo
    /// path, if any).
    Silence,
}

/// A running source: yields interleaved frames in the ring's format.
pub struct Source {
    params: StreamParams,
    kind: Kind,
    pcm: Vec<i16>,
}

enum Kind {
    Tone { step: f64, phase: f64, amp: f64 },
    Loop { samples: Vec<i16>, pos: usize },
    Silence,
}

impl Source {
    /// Prepares `spec` for a ring with `params`. A WAV file must have the
    /// ring's rate; mono is duplicated to stereo, stereo mixed to mono.
    pub fn new(spec: &SourceSpec, params: StreamParams) -> Result<Source, SimError> {
        let rate = params.rate.get();
        let kind = match spec {
            SourceSpec::Tone { hz, dbfs } => {
                if !(hz.is_finite() && *hz > 0.0 && *hz < f64::from(rate) / 2.0) {
                    return Err(SimError::Params(format!(
                        "tone {hz} Hz must be between 0 and half the rate ({rate} Hz)"
                    )));
                }
                if !(dbfs.is_finite() && *dbfs <= 0.0) {
                    return Err(SimError::Params(format!("level {dbfs} dBFS must be <= 0")));
                }
                Kind::Tone {
                    step: hz / f64::from(rate),
                    phase: 0.0,
                    amp: 32767.0 * 10f64.powf(dbfs / 20.0),
                }
            }
            SourceSpec::Wav(path) => Kind::Loop {
                samples: load_wav(path, params)?,
                pos: 0,
            },
            SourceSpec::Silence => Kind::Silence,
        };
        Ok(Source {
            params,
            kind,
            pcm: Vec::new(),
        })
    }

    /// Appends `frames` frames, encoded in the ring's format, to `out`.
    pub fn next_frames(&mut self, frames: usize, out: &mut Vec<u8>) {
        let ch = self.params.channels as usize;
        self.pcm.clear();
        match &mut self.kind {
            Kind::Tone { step, phase, amp } => {
                for _ in 0..frames {
                    let s = (*amp * (TAU * *phase).sin()).round() as i16;
                    self.pcm.extend(std::iter::repeat_n(s, ch));
                    *phase += *step;
                    if *phase >= 1.0 {
                        *phase -= 1.0;
                    }
                }
            }
            Kind::Loop { samples, pos } => {
                for _ in 0..frames * ch {
                    self.pcm.push(samples[*pos]);
                    *pos = (*pos + 1) % samples.len();
                }
            }
            Kind::Silence => self.pcm.resize(frames * ch, 0),
        }
        encode(self.params.format, &self.pcm, out);
    }
}

/// Encodes linear samples into `format`, appending to `out`.
pub fn encode(format: Format, pcm: &[i16], out: &mut Vec<u8>) {
    match format {
        Format::S16Le => out.extend(pcm.iter().flat_map(|s| s.to_le_bytes())),
        Format::MuLaw | Format::ALaw => {
            let law = if format == Format::MuLaw {
                Law::MuLaw
            } else {
                Law::ALaw
            };
            let start = out.len();
            out.resize(start + pcm.len(), 0);
            law.encode(pcm, &mut out[start..]);
        }
    }
}

fn load_wav(path: &Path, params: StreamParams) -> Result<Vec<i16>, SimError> {
    let a = wav::read(path)?;
    let rate = params.rate.get();
    if a.rate != rate {
        return Err(SimError::Wav {
            path: path.to_owned(),
            msg: format!("rate {} Hz, the ring runs at {rate} Hz (resample it first, e.g. sox in.wav -r {rate} out.wav)", a.rate),
        });
    }
    let want = params.channels as usize;
    let have = usize::from(a.channels);
    let mut out = Vec::with_capacity(a.samples.len() / have * want);
    for frame in a.samples.chunks_exact(have) {
        match (have, want) {
            (h, w) if h == w => out.extend_from_slice(frame),
            (1, w) => out.extend(std::iter::repeat_n(frame[0], w)),
            (h, 1) => {
                let sum: i32 = frame.iter().map(|&s| i32::from(s)).sum();
                out.push((sum / h as i32) as i16)
            }
            (h, w) => {
                return Err(SimError::Wav {
                    path: path.to_owned(),
                    msg: format!("{h} channels cannot be mapped to {w}"),
                })
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(format: u32, rate: u32, ch: u32) -> StreamParams {
        StreamParams::new(format, rate, ch).unwrap()
    }

    #[test]
    fn tone_level_and_period() {
        let mut s = Source::new(
            &SourceSpec::Tone {
                hz: 1000.0,
                dbfs: -6.0,
            },
            params(2, 8000, 2),
        )
        .unwrap();
        let mut out = Vec::new();
        s.next_frames(8000, &mut out);
        assert_eq!(out.len(), 8000 * 4);
        let l: Vec<i16> = out
            .chunks_exact(4)
            .map(|c| i16::from_le_bytes([c[0], c[1]]))
            .collect();
        let r: Vec<i16> = out
            .chunks_exact(4)
            .map(|c| i16::from_le_bytes([c[2], c[3]]))
            .collect();
        assert_eq!(l, r);
        // 1 kHz at 8 kHz: period of 8 samples, peak at sample 2.
        let peak = (32767.0 * 10f64.powf(-6.0 / 20.0)).round() as i16;
        assert_eq!(l[2], peak);
        assert_eq!(l[6], -peak);
        assert_eq!(l[7994], l[2]);
        assert_eq!(*l.iter().max().unwrap(), peak);
    }

    #[test]
    fn tone_is_continuous_across_calls() {
        let spec = SourceSpec::Tone {
            hz: 440.0,
            dbfs: -3.0,
        };
        let mut a = Source::new(&spec, params(2, 16000, 1)).unwrap();
        let mut b = Source::new(&spec, params(2, 16000, 1)).unwrap();
        let (mut x, mut y) = (Vec::new(), Vec::new());
        a.next_frames(1000, &mut x);
        for _ in 0..10 {
            b.next_frames(100, &mut y);
        }
        assert_eq!(x, y);
    }

    #[test]
    fn rejects_bad_tones() {
        let p = params(2, 8000, 1);
        assert!(Source::new(
            &SourceSpec::Tone {
                hz: 4000.0,
                dbfs: -6.0
            },
            p
        )
        .is_err());
        assert!(Source::new(
            &SourceSpec::Tone {
                hz: 1000.0,
                dbfs: 1.0
            },
            p
        )
        .is_err());
        assert!(Source::new(
            &SourceSpec::Tone {
                hz: f64::NAN,
                dbfs: -6.0
            },
            p
        )
        .is_err());
    }

    #[test]
    fn wav_loops_and_maps_channels() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("in.wav");
        let mut w = wav::WavWriter::create(&path, Format::S16Le, 1, 8000).unwrap();
        let pcm = [100i16, -200, 300];
        let mut bytes = Vec::new();
        encode(Format::S16Le, &pcm, &mut bytes);
        w.write(&bytes).unwrap();
        w.finish().unwrap();
        let mut s = Source::new(&SourceSpec::Wav(path.clone()), params(20, 8000, 2)).unwrap();
        let mut out = Vec::new();
        s.next_frames(4, &mut out);
        let mut expect = Vec::new();
        encode(
            Format::MuLaw,
            &[100, 100, -200, -200, 300, 300, 100, 100],
            &mut expect,
        );
        assert_eq!(out, expect);
        let e = Source::new(&SourceSpec::Wav(path), params(2, 16000, 1))
            .err()
            .unwrap();
        assert!(e.to_string().contains("rate 8000"), "{e}");
    }
}
