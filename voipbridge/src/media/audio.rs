//! Audio backends: ALSA PCMs (the card's bridge side), WAV files, tones, null.
//! All exchange 8 kHz mono 16-bit frames of the call's ptime with the core.
//!
//! ALSA devices get the first hardware format that works, in this order:
//! the codec's own law (MU_LAW / A_LAW) at 8 kHz, so the card carries
//! G.711 codes untouched (decoding and re-encoding G.711 is lossless);
//! else S16_LE at 8 kHz; else S16_LE at the device's rate (nearest to
//! 48 kHz) through [`Resampler`]. Several channels are mixed down on
//! capture and duplicated on playback. Xruns are recovered and counted,
//! logged once per burst, and never end the call.

use super::resample::Resampler;
use super::{AudioSpec, Codec, MediaError};
use std::f64::consts::PI;
use std::time::{Duration, Instant};

/// Sample rate of the audio path (G.711).
pub const RATE: u32 = 8000;

/// Something that yields frames of audio, paced in real time.
pub trait Source: Send {
    /// Fills `buf` with the next frame; blocks until it is due.
    fn read(&mut self, buf: &mut [i16]) -> Result<(), MediaError>;
    /// ALSA xruns recovered so far.
    fn xruns(&self) -> u64 {
        0
    }
}

/// Something that consumes frames of audio.
pub trait Sink: Send {
    /// Plays or stores one frame.
    fn write(&mut self, buf: &[i16]) -> Result<(), MediaError>;
    /// Flushes and closes (WAV headers are finalised here).
    fn finish(&mut self) -> Result<(), MediaError> {
        Ok(())
    }
    /// ALSA xruns recovered so far.
    fn xruns(&self) -> u64 {
        0
    }
}

/// Paces a non-device source to real time.
struct Pacer {
    next: Option<Instant>,
}

impl Pacer {
    fn wait(&mut self, frames: usize) {
        let now = Instant::now();
        let next = *self.next.get_or_insert(now);
        if next > now {
            std::thread::sleep(next - now);
        }
        self.next = Some(next + Duration::from_micros(frames as u64 * 1_000_000 / u64::from(RATE)));
    }
}

struct Tone {
    hz: f64,
    n: u64,
    pacer: Pacer,
}

impl Source for Tone {
    fn read(&mut self, buf: &mut [i16]) -> Result<(), MediaError> {
        self.pacer.wait(buf.len());
        for s in buf.iter_mut() {
            *s = (0.5 * 32767.0 * (2.0 * PI * self.hz * self.n as f64 / f64::from(RATE)).sin())
                as i16;
            self.n += 1;
        }
        Ok(())
    }
}

struct Silence {
    pacer: Pacer,
}

impl Source for Silence {
    fn read(&mut self, buf: &mut [i16]) -> Result<(), MediaError> {
        self.pacer.wait(buf.len());
        buf.fill(0);
        Ok(())
    }
}

struct WavSource {
    samples: Vec<i16>,
    pos: usize,
    pacer: Pacer,
}

impl Source for WavSource {
    fn read(&mut self, buf: &mut [i16]) -> Result<(), MediaError> {
        self.pacer.wait(buf.len());
        for s in buf.iter_mut() {
            *s = self.samples.get(self.pos).copied().unwrap_or(0);
            self.pos = (self.pos + 1) % self.samples.len().max(1);
        }
        Ok(())
    }
}

struct NullSink;

impl Sink for NullSink {
    fn write(&mut self, _buf: &[i16]) -> Result<(), MediaError> {
        Ok(())
    }
}

struct WavSink {
    path: String,
    writer: Option<hound::WavWriter<std::io::BufWriter<std::fs::File>>>,
}

impl Sink for WavSink {
    fn write(&mut self, buf: &[i16]) -> Result<(), MediaError> {
        if let Some(w) = self.writer.as_mut() {
            for &s in buf {
                w.write_sample(s)
                    .map_err(|e| MediaError::Device(self.path.clone(), e.to_string()))?;
            }
        }
        Ok(())
    }
    fn finish(&mut self) -> Result<(), MediaError> {
        if let Some(w) = self.writer.take() {
            w.finalize()
                .map_err(|e| MediaError::Device(self.path.clone(), e.to_string()))?;
        }
        Ok(())
    }
}

impl Drop for WavSink {
    fn drop(&mut self) {
        let _ = self.finish();
    }
}

/// The hardware format an ALSA device was opened with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeviceFormat {
    /// G.711 law samples (MU_LAW / A_LAW), or `None` for S16_LE.
    pub law: Option<g711::Law>,
    /// Sample rate.
    pub rate: u32,
    /// Channels.
    pub channels: u32,
}

fn dev_err(name: &str) -> impl Fn(alsa::Error) -> MediaError + '_ {
    move |e| MediaError::Device(name.to_string(), e.to_string())
}

/// Tries one hardware configuration; `rate` `None` takes the rate nearest 48 kHz.
fn try_hw(
    pcm: &alsa::PCM,
    format: alsa::pcm::Format,
    rate: Option<u32>,
    ptime_ms: u32,
) -> Result<DeviceFormat, alsa::Error> {
    use alsa::pcm::{Access, HwParams};
    let hw = HwParams::any(pcm)?;
    hw.set_access(Access::RWInterleaved)?;
    hw.set_format(format)?;
    let channels = match hw.set_channels(1) {
        Ok(()) => 1,
        Err(_) => hw.set_channels_near(1)?,
    };
    let rate = match rate {
        Some(r) => {
            hw.set_rate_resample(false)?;
            hw.set_rate(r, alsa::ValueOr::Nearest)?;
            r
        }
        None => hw.set_rate_near(48000, alsa::ValueOr::Nearest)?,
    };
    let period = i64::from(rate * ptime_ms / 1000).max(1);
    hw.set_period_size_near(period, alsa::ValueOr::Nearest)?;
    hw.set_buffer_size_near(period * 16)?;
    pcm.hw_params(&hw)?;
    let law = match format {
        alsa::pcm::Format::MuLaw => Some(g711::Law::MuLaw),
        alsa::pcm::Format::ALaw => Some(g711::Law::ALaw),
        _ => None,
    };
    Ok(DeviceFormat {
        law,
        rate: pcm.hw_params_current()?.get_rate()?,
        channels,
    })
}

/// Opens an ALSA PCM with the format order of the module documentation.
fn open_alsa(
    name: &str,
    dir: alsa::Direction,
    codec: Codec,
    frame: usize,
) -> Result<(alsa::PCM, DeviceFormat), MediaError> {
    use alsa::pcm::Format;
    let pcm = alsa::PCM::new(name, dir, false).map_err(dev_err(name))?;
    let law_format = match codec {
        Codec::Pcmu => Format::MuLaw,
        Codec::Pcma => Format::ALaw,
    };
    let ptime_ms = (frame as u32 * 1000 / RATE).max(1);
    let mut last_err = None;
    let mut chosen = None;
    for (format, rate) in [
        (law_format, Some(RATE)),
        (Format::s16(), Some(RATE)),
        (Format::s16(), None),
    ] {
        match try_hw(&pcm, format, rate, ptime_ms) {
            Ok(f) => {
                chosen = Some(f);
                break;
            }
            Err(e) => {
                tracing::debug!(device = name, %format, ?rate, "format refused: {e}");
                last_err = Some(e);
            }
        }
    }
    let Some(fmt) = chosen else {
        return Err(MediaError::Device(
            name.to_string(),
            format!(
                "no usable format (tried {law_format} and S16_LE at 8 kHz, S16_LE at any rate): {}",
                last_err.map(|e| e.to_string()).unwrap_or_default()
            ),
        ));
    };
    if dir == alsa::Direction::Playback {
        let sw = pcm.sw_params_current().map_err(dev_err(name))?;
        // Start once three ptimes are queued (60 ms at 20 ms ptime): less
        // and a scheduling hiccup of the pump thread (seen in emulated
        // boards) underruns the device at every stall.
        let start = i64::from(fmt.rate) * i64::from(ptime_ms) * 3 / 1000;
        sw.set_start_threshold(start).map_err(dev_err(name))?;
        pcm.sw_params(&sw).map_err(dev_err(name))?;
    }
    pcm.prepare().map_err(dev_err(name))?;
    tracing::info!(device = name, ?dir, law = ?fmt.law, rate = fmt.rate, channels = fmt.channels, "ALSA device opened");
    Ok((pcm, fmt))
}

/// Counts xruns and logs the first of each burst (xruns less than a second apart).
#[derive(Debug, Default)]
struct XrunLog {
    count: u64,
    last: Option<Instant>,
}

impl XrunLog {
    fn note(&mut self, name: &str, what: &str, e: &alsa::Error) {
        self.count += 1;
        let now = Instant::now();
        if self
            .last
            .is_none_or(|t| now.duration_since(t) > Duration::from_secs(1))
        {
            tracing::warn!(device = name, xruns = self.count, "{what}: {e}; recovering");
        }
        self.last = Some(now);
    }
}

/// Converts between device frames (law or S16_LE, n channels, device rate)
/// and 8 kHz mono i16.
struct Converter {
    fmt: DeviceFormat,
    resampler: Option<Resampler>,
}

impl Converter {
    fn new(fmt: DeviceFormat, capture: bool) -> Converter {
        let resampler = (fmt.rate != RATE).then(|| {
            if capture {
                Resampler::new(fmt.rate, RATE)
            } else {
                Resampler::new(RATE, fmt.rate)
            }
        });
        Converter { fmt, resampler }
    }

    fn bytes_per_frame(&self) -> usize {
        let b = if self.fmt.law.is_some() { 1 } else { 2 };
        b * self.fmt.channels.max(1) as usize
    }

    /// Device bytes to 8 kHz mono samples appended to `out`.
    fn decode_device(&mut self, raw: &[u8], out: &mut Vec<i16>) {
        let ch = self.fmt.channels.max(1) as usize;
        let mono: Vec<i16> = match self.fmt.law {
            Some(law) => raw
                .chunks_exact(ch)
                .map(|f| {
                    let sum: i32 = f.iter().map(|&c| i32::from(decode(law, c))).sum();
                    (sum / ch as i32) as i16
                })
                .collect(),
            None => raw
                .chunks_exact(2 * ch)
                .map(|f| {
                    let sum: i32 = f
                        .chunks_exact(2)
                        .map(|b| i32::from(i16::from_le_bytes([b[0], b[1]])))
                        .sum();
                    (sum / ch as i32) as i16
                })
                .collect(),
        };
        match &mut self.resampler {
            Some(r) => r.process(&mono, out),
            None => out.extend_from_slice(&mono),
        }
    }

    /// 8 kHz mono samples to device bytes.
    fn encode_device(&mut self, pcm: &[i16]) -> Vec<u8> {
        let mut at_rate = Vec::new();
        let samples: &[i16] = match &mut self.resampler {
            Some(r) => {
                r.process(pcm, &mut at_rate);
                &at_rate
            }
            None => pcm,
        };
        let ch = self.fmt.channels.max(1) as usize;
        let mut raw = Vec::with_capacity(samples.len() * self.bytes_per_frame());
        for &s in samples {
            for _ in 0..ch {
                match self.fmt.law {
                    Some(g711::Law::MuLaw) => raw.push(g711::ulaw_encode(s)),
                    Some(g711::Law::ALaw) => raw.push(g711::alaw_encode(s)),
                    None => raw.extend_from_slice(&s.to_le_bytes()),
                }
            }
        }
        raw
    }
}

fn decode(law: g711::Law, c: u8) -> i16 {
    match law {
        g711::Law::MuLaw => g711::ulaw_decode(c),
        g711::Law::ALaw => g711::alaw_decode(c),
    }
}

/// An ALSA capture device.
pub struct AlsaSource {
    name: String,
    pcm: alsa::PCM,
    conv: Converter,
    pending: Vec<i16>,
    raw: Vec<u8>,
    xruns: XrunLog,
}

impl AlsaSource {
    /// The negotiated hardware format.
    pub fn format(&self) -> DeviceFormat {
        self.conv.fmt
    }
}

impl Source for AlsaSource {
    fn read(&mut self, buf: &mut [i16]) -> Result<(), MediaError> {
        let bpf = self.conv.bytes_per_frame();
        while self.pending.len() < buf.len() {
            // Read about what is still missing, in device frames.
            let missing = buf.len() - self.pending.len();
            let frames = (missing as u64 * u64::from(self.conv.fmt.rate))
                .div_ceil(u64::from(RATE))
                .max(1) as usize;
            self.raw.resize(frames * bpf, 0);
            let io = self.pcm.io_bytes();
            match io.readi(&mut self.raw) {
                Ok(n) => {
                    let got = self.raw.get(..n * bpf).unwrap_or_default();
                    self.conv.decode_device(got, &mut self.pending);
                }
                Err(e) => {
                    self.xruns.note(&self.name, "capture overrun", &e);
                    self.pcm
                        .recover(e.errno(), true)
                        .map_err(dev_err(&self.name))?;
                }
            }
        }
        let n = buf.len();
        for (o, s) in buf.iter_mut().zip(self.pending.drain(..n)) {
            *o = s;
        }
        Ok(())
    }

    fn xruns(&self) -> u64 {
        self.xruns.count
    }
}

/// An ALSA playback device.
pub struct AlsaSink {
    name: String,
    pcm: alsa::PCM,
    conv: Converter,
    xruns: XrunLog,
}

impl AlsaSink {
    /// The negotiated hardware format.
    pub fn format(&self) -> DeviceFormat {
        self.conv.fmt
    }
}

impl Sink for AlsaSink {
    fn write(&mut self, buf: &[i16]) -> Result<(), MediaError> {
        let raw = self.conv.encode_device(buf);
        let bpf = self.conv.bytes_per_frame();
        let mut done = 0;
        while done < raw.len() {
            let io = self.pcm.io_bytes();
            match io.writei(raw.get(done..).unwrap_or_default()) {
                Ok(n) => done += n * bpf,
                Err(e) => {
                    self.xruns.note(&self.name, "playback underrun", &e);
                    self.pcm
                        .recover(e.errno(), true)
                        .map_err(dev_err(&self.name))?;
                }
            }
        }
        Ok(())
    }

    fn finish(&mut self) -> Result<(), MediaError> {
        let _ = self.pcm.drain();
        Ok(())
    }

    fn xruns(&self) -> u64 {
        self.xruns.count
    }
}

/// Opens an ALSA capture device (public for tests and tools).
pub fn open_alsa_source(name: &str, codec: Codec, frame: usize) -> Result<AlsaSource, MediaError> {
    let (pcm, fmt) = open_alsa(name, alsa::Direction::Capture, codec, frame)?;
    pcm.start().map_err(dev_err(name))?;
    Ok(AlsaSource {
        name: name.to_string(),
        pcm,
        conv: Converter::new(fmt, true),
        pending: Vec::new(),
        raw: Vec::new(),
        xruns: XrunLog::default(),
    })
}

/// Opens an ALSA playback device (public for tests and tools).
pub fn open_alsa_sink(name: &str, codec: Codec, frame: usize) -> Result<AlsaSink, MediaError> {
    let (pcm, fmt) = open_alsa(name, alsa::Direction::Playback, codec, frame)?;
    Ok(AlsaSink {
        name: name.to_string(),
        pcm,
        conv: Converter::new(fmt, false),
        xruns: XrunLog::default(),
    })
}

/// Reads a WAV file for capture as 8 kHz mono: any integer or float
/// sample format, channels mixed down, other rates resampled.
pub fn load_wav(path: &str) -> Result<Vec<i16>, MediaError> {
    let err = |e: hound::Error| MediaError::Device(path.to_string(), e.to_string());
    let mut r = hound::WavReader::open(path).map_err(err)?;
    let spec = r.spec();
    let scaled: Vec<f64> = match spec.sample_format {
        hound::SampleFormat::Float => r
            .samples::<f32>()
            .map(|s| s.map(|v| f64::from(v) * 32767.0))
            .collect::<Result<_, _>>()
            .map_err(err)?,
        hound::SampleFormat::Int => {
            let scale = 2f64.powi(16 - i32::from(spec.bits_per_sample));
            r.samples::<i32>()
                .map(|s| s.map(|v| f64::from(v) * scale))
                .collect::<Result<_, _>>()
                .map_err(err)?
        }
    };
    let ch = usize::from(spec.channels.max(1));
    let mono: Vec<i16> = scaled
        .chunks_exact(ch)
        .map(|f| {
            (f.iter().sum::<f64>() / ch as f64)
                .round()
                .clamp(-32768.0, 32767.0) as i16
        })
        .collect();
    if spec.sample_rate == RATE {
        return Ok(mono);
    }
    let mut out =
        Vec::with_capacity(mono.len() * RATE as usize / spec.sample_rate.max(1) as usize + 1);
    Resampler::new(spec.sample_rate, RATE).process(&mono, &mut out);
    Ok(out)
}

/// Opens a capture source.
pub fn open_source(
    spec: &AudioSpec,
    codec: Codec,
    frame: usize,
) -> Result<Box<dyn Source>, MediaError> {
    Ok(match spec {
        AudioSpec::Tone(hz) => Box::new(Tone {
            hz: *hz,
            n: 0,
            pacer: Pacer { next: None },
        }),
        AudioSpec::Null => Box::new(Silence {
            pacer: Pacer { next: None },
        }),
        AudioSpec::Wav(path) => {
            let samples = load_wav(path)?;
            Box::new(WavSource {
                samples,
                pos: 0,
                pacer: Pacer { next: None },
            })
        }
        AudioSpec::Alsa(name) => Box::new(open_alsa_source(name, codec, frame)?),
    })
}

/// Opens a playback sink.
pub fn open_sink(
    spec: &AudioSpec,
    codec: Codec,
    frame: usize,
) -> Result<Box<dyn Sink>, MediaError> {
    Ok(match spec {
        AudioSpec::Null => Box::new(NullSink),
        AudioSpec::Tone(_) => {
            return Err(MediaError::BadSpec(format!(
                "{spec} cannot be a playback device"
            )))
        }
        AudioSpec::Wav(path) => {
            let spec = hound::WavSpec {
                channels: 1,
                sample_rate: RATE,
                bits_per_sample: 16,
                sample_format: hound::SampleFormat::Int,
            };
            let w = hound::WavWriter::create(path, spec)
                .map_err(|e| MediaError::Device(path.clone(), e.to_string()))?;
            Box::new(WavSink {
                path: path.clone(),
                writer: Some(w),
            })
        }
        AudioSpec::Alsa(name) => Box::new(open_alsa_sink(name, codec, frame)?),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::analysis::{dominant_frequency, tone_level};
    use std::path::PathBuf;
    use std::sync::Once;

    fn tone(hz: f64, n: usize, amp: f64) -> Vec<i16> {
        (0..n)
            .map(|k| (amp * (2.0 * PI * hz * k as f64 / 8000.0).sin()) as i16)
            .collect()
    }

    /// A directory with an ALSA configuration defining test PCMs on
    /// alsa-lib's own `file`, `linear` and `null` plugins, loaded after the
    /// system's through ALSA_CONFIG_PATH (the same value for every test).
    fn alsa_dir() -> PathBuf {
        static INIT: Once = Once::new();
        let dir = std::env::temp_dir().join(format!("voipbridge-alsa-{}", std::process::id()));
        INIT.call_once(|| {
            std::fs::create_dir_all(&dir).unwrap();
            let d = dir.display();
            let conf = format!(
                r#"
pcm.vb_law_out {{ type file slave.pcm "null" file "{d}/law_out.raw" format "raw" }}
pcm.vb_s16_out {{ type linear slave {{ pcm "vb_s16_file" format S16_LE }} }}
pcm.vb_s16_file {{ type file slave.pcm "null" file "{d}/s16_out.raw" format "raw" }}
pcm.vb_law_in {{ type file slave.pcm "null" file "/dev/null" infile "{d}/law_in.raw" format "raw" }}
"#
            );
            std::fs::write(dir.join("asound.conf"), conf).unwrap();
            let path = format!(
                "/usr/share/alsa/alsa.conf:{}",
                dir.join("asound.conf").display()
            );
            std::env::set_var("ALSA_CONFIG_PATH", path);
        });
        dir
    }

    #[test]
    fn alsa_playback_uses_the_law_format_and_carries_the_tone() {
        let dir = alsa_dir();
        for codec in [Codec::Pcmu, Codec::Pcma] {
            let mut sink = open_alsa_sink("vb_law_out", codec, 160).unwrap();
            assert_eq!(
                sink.format(),
                DeviceFormat {
                    law: Some(codec.law()),
                    rate: 8000,
                    channels: 1
                }
            );
            let x = tone(1000.0, 8000, 12000.0);
            for f in x.chunks(160) {
                sink.write(f).unwrap();
            }
            sink.finish().unwrap();
            drop(sink);
            let raw = std::fs::read(dir.join("law_out.raw")).unwrap();
            assert!(raw.len() >= 8000, "{}", raw.len());
            let pcm: Vec<i16> = raw[..8000]
                .iter()
                .map(|&c| decode(codec.law(), c))
                .collect();
            assert_eq!(dominant_frequency(&pcm, 8000.0), 1000.0);
            let l = tone_level(&pcm, 1000.0, 8000.0);
            assert!((l - 12000.0).abs() < 300.0, "{codec:?} {l}");
            // The codes are G.711 of the samples: nothing else in between.
            let mut codes = vec![0u8; 8000];
            codec.law().encode(&x, &mut codes);
            assert_eq!(&raw[..8000], &codes[..]);
        }
    }

    #[test]
    fn alsa_falls_back_to_s16_at_8k_when_the_law_is_refused() {
        let dir = alsa_dir();
        let mut sink = open_alsa_sink("vb_s16_out", Codec::Pcmu, 160).unwrap();
        assert_eq!(
            sink.format(),
            DeviceFormat {
                law: None,
                rate: 8000,
                channels: 1
            }
        );
        let x = tone(440.0, 8000, 9000.0);
        for f in x.chunks(160) {
            sink.write(f).unwrap();
        }
        sink.finish().unwrap();
        drop(sink);
        let raw = std::fs::read(dir.join("s16_out.raw")).unwrap();
        let pcm: Vec<i16> = raw
            .chunks_exact(2)
            .map(|b| i16::from_le_bytes([b[0], b[1]]))
            .take(8000)
            .collect();
        assert_eq!(pcm, x);
    }

    #[test]
    fn alsa_capture_reads_frames_from_the_device() {
        let dir = alsa_dir();
        let x = tone(440.0, 8000, 10000.0);
        let mut codes = vec![0u8; x.len()];
        g711::Law::MuLaw.encode(&x, &mut codes);
        std::fs::write(dir.join("law_in.raw"), &codes).unwrap();
        let mut src = open_alsa_source("vb_law_in", Codec::Pcmu, 160).unwrap();
        assert_eq!(src.format().law, Some(g711::Law::MuLaw));
        let mut got = Vec::new();
        let mut frame = vec![0i16; 160];
        for _ in 0..40 {
            src.read(&mut frame).unwrap();
            got.extend_from_slice(&frame);
        }
        assert_eq!(dominant_frequency(&got, 8000.0), 440.0);
        let l = tone_level(&got, 440.0, 8000.0);
        assert!((l - 10000.0).abs() < 300.0, "{l}");
        assert_eq!(src.xruns(), 0);
    }

    #[test]
    fn converter_resamples_and_maps_channels_at_48k_stereo() {
        let fmt = DeviceFormat {
            law: None,
            rate: 48000,
            channels: 2,
        };
        let mut play = Converter::new(fmt, false);
        let x = tone(1000.0, 8000, 10000.0);
        let mut raw = Vec::new();
        for f in x.chunks(160) {
            raw.extend(play.encode_device(f));
        }
        let frames: Vec<(i16, i16)> = raw
            .chunks_exact(4)
            .map(|b| {
                (
                    i16::from_le_bytes([b[0], b[1]]),
                    i16::from_le_bytes([b[2], b[3]]),
                )
            })
            .collect();
        assert!(frames.len().abs_diff(48000) < 200, "{}", frames.len());
        assert!(frames.iter().all(|(l, r)| l == r));
        let left: Vec<i16> = frames.iter().map(|f| f.0).collect();
        let mid = &left[6000..42000];
        assert!((tone_level(mid, 1000.0, 48000.0) - 10000.0).abs() < 300.0);
        // And back: 48 kHz stereo capture to 8 kHz mono.
        let mut cap = Converter::new(fmt, true);
        let mut back = Vec::new();
        for b in raw.chunks(48 * 4 * 20) {
            cap.decode_device(b, &mut back);
        }
        assert!(back.len().abs_diff(8000) < 100, "{}", back.len());
        let mid = &back[1000..7000];
        assert_eq!(dominant_frequency(mid, 8000.0), 1000.0);
        assert!((tone_level(mid, 1000.0, 8000.0) - 10000.0).abs() < 400.0);
    }

    #[test]
    fn wav_capture_accepts_other_rates_channels_and_formats() {
        let dir = std::env::temp_dir().join(format!("voipbridge-wav-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        // 16 kHz stereo 16-bit, and 44.1 kHz mono float: 1 kHz tones at half scale.
        let cases = [
            (16000u32, 2u16, hound::SampleFormat::Int, 16u16),
            (44100, 1, hound::SampleFormat::Float, 32),
            (8000, 1, hound::SampleFormat::Int, 24),
        ];
        for (rate, channels, format, bits) in cases {
            let path = dir.join(format!("t{rate}.wav"));
            let spec = hound::WavSpec {
                channels,
                sample_rate: rate,
                bits_per_sample: bits,
                sample_format: format,
            };
            let mut w = hound::WavWriter::create(&path, spec).unwrap();
            for k in 0..rate {
                let v = 0.5 * (2.0 * PI * 1000.0 * f64::from(k) / f64::from(rate)).sin();
                for _ in 0..channels {
                    match format {
                        hound::SampleFormat::Float => w.write_sample(v as f32).unwrap(),
                        hound::SampleFormat::Int => {
                            let full = f64::from((1i32 << (bits - 1)) - 1);
                            w.write_sample((v * full) as i32).unwrap()
                        }
                    }
                }
            }
            w.finalize().unwrap();
            let x = load_wav(path.to_str().unwrap()).unwrap();
            assert!(x.len().abs_diff(8000) < 100, "{rate}: {}", x.len());
            let mid = &x[1000..7000];
            assert_eq!(dominant_frequency(mid, 8000.0), 1000.0, "{rate}");
            let l = tone_level(mid, 1000.0, 8000.0);
            assert!((l - 16383.0).abs() < 400.0, "{rate}: {l}");
        }
        assert!(matches!(
            load_wav("/nonexistent.wav"),
            Err(MediaError::Device(..))
        ));
    }

    #[test]
    fn missing_device_is_a_clear_error() {
        alsa_dir();
        match open_alsa_sink("vb_no_such_pcm", Codec::Pcmu, 160) {
            Err(MediaError::Device(name, _)) => assert_eq!(name, "vb_no_such_pcm"),
            Err(e) => panic!("{e}"),
            Ok(_) => panic!("opened a PCM that does not exist"),
        }
    }
}
