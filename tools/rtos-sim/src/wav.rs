//! WAV files: a streaming writer for the speaker ring's output (PCM,
//! A-law, mu-law; sizes patched in on [`WavWriter::finish`]) and a reader
//! for `--wav` input (16-bit or 8-bit PCM, A-law, mu-law).

use std::fs::File;
use std::io::{BufWriter, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use g711::Law;
use snd_voip_logic::format::Format;

use crate::SimError;

/// WAVE format tag for a ring format.
pub fn format_tag(format: Format) -> u16 {
    match format {
        Format::S16Le => 1,
        Format::ALaw => 6,
        Format::MuLaw => 7,
    }
}

/// Writes a WAV file as data arrives; the RIFF and data sizes are written
/// by [`WavWriter::finish`].
pub struct WavWriter {
    out: BufWriter<File>,
    path: PathBuf,
    data_bytes: u64,
    header_len: u64,
}

impl WavWriter {
    /// Creates `path` for audio in `format`, `channels`, `rate`.
    pub fn create(path: &Path, format: Format, channels: u16, rate: u32) -> Result<Self, SimError> {
        let file = File::create(path).map_err(|e| SimError::io(path, e))?;
        let mut out = BufWriter::new(file);
        let bits = (format.sample_bytes() * 8) as u16;
        let block = channels * (bits / 8);
        let pcm = format == Format::S16Le;
        let fmt_len: u32 = if pcm { 16 } else { 18 };
        let mut h = Vec::with_capacity(64);
        h.extend_from_slice(b"RIFF");
        h.extend_from_slice(&0u32.to_le_bytes());
        h.extend_from_slice(b"WAVEfmt ");
        h.extend_from_slice(&fmt_len.to_le_bytes());
        h.extend_from_slice(&format_tag(format).to_le_bytes());
        h.extend_from_slice(&channels.to_le_bytes());
        h.extend_from_slice(&rate.to_le_bytes());
        h.extend_from_slice(&(rate * u32::from(block)).to_le_bytes());
        h.extend_from_slice(&block.to_le_bytes());
        h.extend_from_slice(&bits.to_le_bytes());
        if !pcm {
            h.extend_from_slice(&0u16.to_le_bytes()); // cbSize
        }
        h.extend_from_slice(b"data");
        h.extend_from_slice(&0u32.to_le_bytes());
        out.write_all(&h).map_err(|e| SimError::io(path, e))?;
        Ok(WavWriter {
            out,
            path: path.to_owned(),
            data_bytes: 0,
            header_len: h.len() as u64,
        })
    }

    /// Appends interleaved samples, already in the file's format.
    pub fn write(&mut self, data: &[u8]) -> Result<(), SimError> {
        self.out
            .write_all(data)
            .map_err(|e| SimError::io(&self.path, e))?;
        self.data_bytes += data.len() as u64;
        Ok(())
    }

    /// Bytes of audio written so far.
    pub fn data_bytes(&self) -> u64 {
        self.data_bytes
    }

    /// Pads the data chunk to an even length, writes the sizes and flushes.
    pub fn finish(mut self) -> Result<u64, SimError> {
        let path = self.path.clone();
        let io = |e| SimError::io(&path, e);
        if self.data_bytes & 1 == 1 {
            self.out.write_all(&[0]).map_err(io)?;
        }
        let data = u32::try_from(self.data_bytes)
            .map_err(|_| SimError::Params(format!("{}: WAV data over 4 GiB", path.display())))?;
        let riff = (self.header_len - 8) as u32 + data + (data & 1);
        self.out.seek(SeekFrom::Start(4)).map_err(io)?;
        self.out.write_all(&riff.to_le_bytes()).map_err(io)?;
        self.out
            .seek(SeekFrom::Start(self.header_len - 4))
            .map_err(io)?;
        self.out.write_all(&data.to_le_bytes()).map_err(io)?;
        self.out.flush().map_err(io)?;
        self.out.get_ref().sync_all().map_err(io)?;
        Ok(self.data_bytes)
    }
}

/// Decoded audio from a WAV file.
#[derive(Clone, Debug, PartialEq)]
pub struct Audio {
    /// Frames per second.
    pub rate: u32,
    /// Interleaved channels.
    pub channels: u16,
    /// Interleaved linear samples.
    pub samples: Vec<i16>,
    /// WAVE format tag of the file.
    pub format_tag: u16,
}

fn u16_at(b: &[u8], i: usize) -> Option<u16> {
    Some(u16::from_le_bytes([*b.get(i)?, *b.get(i + 1)?]))
}

fn u32_at(b: &[u8], i: usize) -> Option<u32> {
    Some(u32::from_le_bytes([
        *b.get(i)?,
        *b.get(i + 1)?,
        *b.get(i + 2)?,
        *b.get(i + 3)?,
    ]))
}

/// Parses a WAV file's bytes; `path` only names it in errors.
pub fn parse(b: &[u8], path: &Path) -> Result<Audio, SimError> {
    let bad = |msg: &str| SimError::Wav {
        path: path.to_owned(),
        msg: msg.to_owned(),
    };
    if b.get(0..4) != Some(b"RIFF") || b.get(8..12) != Some(b"WAVE") {
        return Err(bad("not a RIFF/WAVE file"));
    }
    let mut i = 12usize;
    let mut fmt = None;
    while let Some(id) = i.checked_add(4).and_then(|end| b.get(i..end)) {
        let Some(len) = u32_at(b, i + 4) else { break };
        let len = len as usize;
        let body = i + 8;
        if id == b"fmt " {
            let f = (|| {
                Some((
                    u16_at(b, body)?,
                    u16_at(b, body + 2)?,
                    u32_at(b, body + 4)?,
                    u16_at(b, body + 14)?,
                ))
            })()
            .ok_or_else(|| bad("short fmt chunk"))?;
            fmt = Some(f);
        } else if id == b"data" {
            let (tag, channels, rate, bits) = fmt.ok_or_else(|| bad("data chunk before fmt"))?;
            if channels == 0 || rate == 0 {
                return Err(bad("zero channels or rate"));
            }
            let end = body.saturating_add(len).min(b.len());
            let data = b
                .get(body..end)
                .ok_or_else(|| bad("truncated data chunk"))?;
            let samples: Vec<i16> = match (tag, bits) {
                (1, 16) => data
                    .chunks_exact(2)
                    .map(|c| i16::from_le_bytes([c[0], c[1]]))
                    .collect(),
                (1, 8) => data.iter().map(|&v| (i16::from(v) - 128) << 8).collect(),
                (6, 8) | (7, 8) => {
                    let law = if tag == 6 { Law::ALaw } else { Law::MuLaw };
                    let mut s = vec![0i16; data.len()];
                    law.decode(data, &mut s);
                    s
                }
                _ => {
                    return Err(bad(&format!(
                        "unsupported encoding (format tag {tag}, {bits} bits); \
                         use 16-bit or 8-bit PCM, A-law or mu-law"
                    )))
                }
            };
            let whole = samples.len() - samples.len() % usize::from(channels);
            let mut samples = samples;
            samples.truncate(whole);
            if samples.is_empty() {
                return Err(bad("no audio frames"));
            }
            return Ok(Audio {
                rate,
                channels,
                samples,
                format_tag: tag,
            });
        }
        i = body.saturating_add(len).saturating_add(len & 1);
    }
    Err(bad("no data chunk"))
}

/// Reads and parses a WAV file.
pub fn read(path: &Path) -> Result<Audio, SimError> {
    let b = std::fs::read(path).map_err(|e| SimError::io(path, e))?;
    parse(&b, path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writer_patches_sizes_and_reads_back() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a.wav");
        let mut w = WavWriter::create(&p, Format::S16Le, 2, 16000).unwrap();
        let samples: Vec<i16> = (0..300).map(|i| (i * 97 - 10000) as i16).collect();
        let bytes: Vec<u8> = samples.iter().flat_map(|s| s.to_le_bytes()).collect();
        w.write(&bytes[..200]).unwrap();
        w.write(&bytes[200..]).unwrap();
        assert_eq!(w.finish().unwrap(), 600);
        let raw = std::fs::read(&p).unwrap();
        assert_eq!(raw.len(), 44 + 600);
        assert_eq!(u32_at(&raw, 4), Some(36 + 600));
        assert_eq!(u32_at(&raw, 40), Some(600));
        assert_eq!(u32_at(&raw, 28), Some(16000 * 4)); // byte rate
        assert_eq!(u16_at(&raw, 32), Some(4)); // block align
        let a = parse(&raw, &p).unwrap();
        assert_eq!((a.rate, a.channels, a.format_tag), (16000, 2, 1));
        assert_eq!(a.samples, samples);
    }

    #[test]
    fn g711_writer_pads_odd_data_and_reads_back() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("u.wav");
        let mut w = WavWriter::create(&p, Format::MuLaw, 1, 8000).unwrap();
        let pcm = [0i16, 1000, -1000, 8000, -32000];
        let mut codes = [0u8; 5];
        Law::MuLaw.encode(&pcm, &mut codes);
        w.write(&codes).unwrap();
        assert_eq!(w.finish().unwrap(), 5);
        let raw = std::fs::read(&p).unwrap();
        // 12 RIFF + 26 fmt (18-byte body) + 8 data header + 5 data + 1 pad
        assert_eq!(raw.len(), 12 + 26 + 8 + 6);
        assert_eq!(u32_at(&raw, 4), Some(raw.len() as u32 - 8));
        let a = parse(&raw, &p).unwrap();
        assert_eq!((a.rate, a.channels, a.format_tag), (8000, 1, 7));
        let mut expect = [0i16; 5];
        Law::MuLaw.decode(&codes, &mut expect);
        assert_eq!(a.samples, expect);
    }

    #[test]
    fn parse_rejects_garbage() {
        let p = Path::new("x.wav");
        assert!(parse(b"", p).is_err());
        assert!(parse(b"RIFF\0\0\0\0WAVE", p).is_err());
        let mut float = Vec::new();
        float.extend_from_slice(b"RIFF\0\0\0\0WAVEfmt ");
        float.extend_from_slice(&16u32.to_le_bytes());
        float.extend_from_slice(&3u16.to_le_bytes());
        float.extend_from_slice(&1u16.to_le_bytes());
        float.extend_from_slice(&8000u32.to_le_bytes());
        float.extend_from_slice(&32000u32.to_le_bytes());
        float.extend_from_slice(&4u16.to_le_bytes());
        float.extend_from_slice(&32u16.to_le_bytes());
        float.extend_from_slice(b"data");
        float.extend_from_slice(&4u32.to_le_bytes());
        float.extend_from_slice(&[0, 0, 0, 0]);
        let e = parse(&float, p).unwrap_err().to_string();
        assert!(e.contains("unsupported"), "{e}");
        // A chunk length that runs past the end must not panic.
        let mut huge = float.clone();
        huge[16..20].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(parse(&huge, p).is_err());
    }
}
