//! Audio backends: ALSA PCMs (the card's bridge side), WAV files, tones, null.
//! All work in 8 kHz mono 16-bit frames of the call's ptime.

use super::{AudioSpec, MediaError};
use std::f64::consts::PI;
use std::time::{Duration, Instant};

/// Sample rate of the audio path (G.711).
pub const RATE: u32 = 8000;

/// Something that yields frames of audio, paced in real time.
pub trait Source: Send {
    /// Fills `buf` with the next frame; blocks until it is due.
    fn read(&mut self, buf: &mut [i16]) -> Result<(), MediaError>;
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

fn dev_err(name: &str) -> impl Fn(alsa::Error) -> MediaError + '_ {
    move |e| MediaError::Device(name.to_string(), e.to_string())
}

/// Opens an ALSA PCM for 8 kHz mono S16_LE with periods of `frame` samples.
fn open_alsa(name: &str, dir: alsa::Direction, frame: usize) -> Result<alsa::PCM, MediaError> {
    use alsa::pcm::{Access, Format, HwParams};
    let pcm = alsa::PCM::new(name, dir, false).map_err(dev_err(name))?;
    {
        let hw = HwParams::any(&pcm).map_err(dev_err(name))?;
        hw.set_access(Access::RWInterleaved)
            .map_err(dev_err(name))?;
        hw.set_format(Format::s16()).map_err(dev_err(name))?;
        hw.set_channels(1).map_err(dev_err(name))?;
        hw.set_rate(RATE, alsa::ValueOr::Nearest)
            .map_err(dev_err(name))?;
        hw.set_period_size(frame as i64, alsa::ValueOr::Nearest)
            .map_err(dev_err(name))?;
        hw.set_buffer_size(frame as i64 * 8)
            .map_err(dev_err(name))?;
        pcm.hw_params(&hw).map_err(dev_err(name))?;
    }
    if dir == alsa::Direction::Playback {
        let sw = pcm.sw_params_current().map_err(dev_err(name))?;
        // Start once two frames are queued: 40 ms of playout latency at 20 ms ptime.
        sw.set_start_threshold(frame as i64 * 2)
            .map_err(dev_err(name))?;
        pcm.sw_params(&sw).map_err(dev_err(name))?;
    }
    pcm.prepare().map_err(dev_err(name))?;
    Ok(pcm)
}

struct AlsaSource {
    name: String,
    pcm: alsa::PCM,
    xruns: u64,
}

impl Source for AlsaSource {
    fn read(&mut self, buf: &mut [i16]) -> Result<(), MediaError> {
        let io = self.pcm.io_i16().map_err(dev_err(&self.name))?;
        let mut got = 0;
        while got < buf.len() {
            match io.readi(&mut buf[got..]) {
                Ok(n) => got += n,
                Err(e) => {
                    self.xruns += 1;
                    if self.xruns == 1 || self.xruns.is_power_of_two() {
                        tracing::warn!(device = %self.name, xruns = self.xruns, "capture overrun: {e}; recovering");
                    }
                    self.pcm
                        .recover(e.errno(), true)
                        .map_err(dev_err(&self.name))?;
                }
            }
        }
        Ok(())
    }
}

struct AlsaSink {
    name: String,
    pcm: alsa::PCM,
    xruns: u64,
}

impl Sink for AlsaSink {
    fn write(&mut self, buf: &[i16]) -> Result<(), MediaError> {
        let io = self.pcm.io_i16().map_err(dev_err(&self.name))?;
        let mut done = 0;
        while done < buf.len() {
            match io.writei(&buf[done..]) {
                Ok(n) => done += n,
                Err(e) => {
                    self.xruns += 1;
                    if self.xruns == 1 || self.xruns.is_power_of_two() {
                        tracing::warn!(device = %self.name, xruns = self.xruns, "playback underrun: {e}; recovering");
                    }
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
        self.xruns
    }
}

/// Opens a capture source.
pub fn open_source(spec: &AudioSpec, frame: usize) -> Result<Box<dyn Source>, MediaError> {
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
            let mut r = hound::WavReader::open(path)
                .map_err(|e| MediaError::Device(path.clone(), e.to_string()))?;
            let spec = r.spec();
            if spec.sample_rate != RATE || spec.channels != 1 || spec.bits_per_sample != 16 {
                return Err(MediaError::Device(
                    path.clone(),
                    format!(
                        "need 8000 Hz mono 16-bit, file is {} Hz {} ch {} bit",
                        spec.sample_rate, spec.channels, spec.bits_per_sample
                    ),
                ));
            }
            let samples = r
                .samples::<i16>()
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| MediaError::Device(path.clone(), e.to_string()))?;
            Box::new(WavSource {
                samples,
                pos: 0,
                pacer: Pacer { next: None },
            })
        }
        AudioSpec::Alsa(name) => {
            let pcm = open_alsa(name, alsa::Direction::Capture, frame)?;
            pcm.start().map_err(dev_err(name))?;
            Box::new(AlsaSource {
                name: name.clone(),
                pcm,
                xruns: 0,
            })
        }
    })
}

/// Opens a playback sink.
pub fn open_sink(spec: &AudioSpec, frame: usize) -> Result<Box<dyn Sink>, MediaError> {
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
        AudioSpec::Alsa(name) => Box::new(AlsaSink {
            name: name.clone(),
            pcm: open_alsa(name, alsa::Direction::Playback, frame)?,
            xruns: 0,
        }),
    })
}
