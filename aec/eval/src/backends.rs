//! The contenders, behind one interface: a 10 ms block of reference (what
//! the speaker plays now) and of microphone (read now), cleaned in place.

use std::collections::VecDeque;

use snd_voip_aec::{Config, EchoCanceller};

/// One canceller under test.
pub trait Backend {
    /// Name in the tables.
    fn name(&self) -> String;
    /// One block: `far` what the speaker played meanwhile (a block, one
    /// sample more or less now and then when its clock differs from the
    /// microphone's), `mic` read now and cleaned in place.
    /// `known_delay`: frames of echo path delay the card knows (the
    /// device delays), if the scenario gives it.
    fn process(&mut self, far: &[i16], mic: &mut [i16], known_delay: Option<u64>);
    /// Its metrics, if it has any: (ERLE dB, delay ms).
    fn metrics(&self) -> Option<(f64, f64)> {
        None
    }
}

/// Which backends exist in this build.
pub fn names() -> Vec<&'static str> {
    let mut v = vec!["off", "aec3", "aec3+ns"];
    if cfg!(feature = "speex") {
        v.push("speex");
    }
    if cfg!(feature = "webrtc") {
        v.push("webrtc");
    }
    v
}

/// A backend by name, for 8 kHz audio in `block`-sample blocks.
pub fn make(name: &str, block: usize) -> anyhow::Result<Box<dyn Backend>> {
    let b: Box<dyn Backend> = match name {
        "off" => Box::new(Off),
        "aec3" | "aec3+ns" => {
            let mut c = Config::new(8000);
            c.noise_suppression = name == "aec3+ns";
            Box::new(Aec3 {
                aec: EchoCanceller::new(&c)?,
                ns: c.noise_suppression,
            })
        }
        #[cfg(feature = "speex")]
        "speex" => Box::new(speex::Speex::new(block)?),
        #[cfg(feature = "webrtc")]
        "webrtc" => Box::new(webrtc::WebRtc::new(block)?),
        other => anyhow::bail!(
            "unknown canceller '{other}' (this build has: {})",
            names().join(", ")
        ),
    };
    let _ = block;
    Ok(b)
}

/// No canceller: the baseline.
struct Off;

impl Backend for Off {
    fn name(&self) -> String {
        "off".into()
    }
    fn process(&mut self, _far: &[i16], _mic: &mut [i16], _known: Option<u64>) {}
}

/// snd-voip-aec: AEC3 (Rust port) with the card-delay aligner.
struct Aec3 {
    aec: EchoCanceller,
    ns: bool,
}

impl Backend for Aec3 {
    fn name(&self) -> String {
        if self.ns { "aec3+ns" } else { "aec3" }.into()
    }
    fn process(&mut self, far: &[i16], mic: &mut [i16], known: Option<u64>) {
        self.aec.far_end(far);
        self.aec.near_end(mic, known);
    }
    fn metrics(&self) -> Option<(f64, f64)> {
        let s = self.aec.stats();
        Some((s.erle_db, s.echo_delay_ms))
    }
}

/// A fixed delay line for the reference of backends without our aligner
/// (the same alignment, done by hand).
#[allow(dead_code)]
struct DelayLine {
    q: VecDeque<i16>,
    delay: usize,
}

#[allow(dead_code)]
impl DelayLine {
    fn new() -> DelayLine {
        DelayLine {
            q: VecDeque::new(),
            delay: 0,
        }
    }
    /// `far` in, `n` samples out, `delay` samples late (a reference on
    /// another clock accumulates or runs short by a sample now and then,
    /// as it would in these cancellers' own applications).
    fn run(&mut self, far: &[i16], delay: usize, n: usize, out: &mut Vec<i16>) {
        if delay != self.delay {
            // Grow: insert silence; shrink: drop the oldest.
            if delay > self.delay {
                for _ in 0..delay - self.delay {
                    self.q.push_front(0);
                }
            } else {
                for _ in 0..(self.delay - delay).min(self.q.len()) {
                    self.q.pop_front();
                }
            }
            self.delay = delay;
        }
        self.q.extend(far);
        out.clear();
        for _ in 0..n {
            out.push(self.q.pop_front().unwrap_or(0));
        }
    }
}

#[cfg(feature = "speex")]
mod speex {
    //! Debian's libspeexdsp through speexdsp-sys: the MDF echo canceller
    //! with its preprocessor's residual echo suppressor, as baresip's and
    //! pjsip's speex AEC run it. The `speexdsp` crate's safe wrapper cannot
    //! be used for this: `SpeexEcho` derives `Clone` over its C state, and
    //! `preprocess_ctl(SET_ECHO_STATE)` clones it and drops the clone,
    //! which destroys the state the canceller still uses (a double free).
    use super::{Backend, DelayLine};
    use speexdsp_sys::echo::*;
    use speexdsp_sys::preprocess::*;
    use std::ffi::c_void;

    /// Echo tail: 300 ms covers the 200 ms bulk delay and a 100 ms room.
    pub const TAIL_MS: usize = 300;

    pub struct Speex {
        echo: *mut SpeexEchoState,
        pre: *mut SpeexPreprocessState,
        out: Vec<i16>,
        far: Vec<i16>,
        line: DelayLine,
    }

    impl Speex {
        pub fn new(block: usize) -> anyhow::Result<Speex> {
            // SAFETY: plain C constructors; null is checked below.
            let echo = unsafe { speex_echo_state_init(block as i32, (TAIL_MS * 8) as i32) };
            // SAFETY: as above.
            let pre = unsafe { speex_preprocess_state_init(block as i32, 8000) };
            if echo.is_null() || pre.is_null() {
                anyhow::bail!("speex_echo_state_init / speex_preprocess_state_init failed");
            }
            let mut rate: i32 = 8000;
            // SAFETY: both states are valid; the ctl reads an int / keeps
            // the echo state's pointer, which lives as long as `pre` (both
            // are destroyed together in Drop, preprocessor first).
            unsafe {
                speex_echo_ctl(
                    echo,
                    SPEEX_ECHO_SET_SAMPLING_RATE as i32,
                    &mut rate as *mut i32 as *mut c_void,
                );
                speex_preprocess_ctl(
                    pre,
                    SPEEX_PREPROCESS_SET_ECHO_STATE as i32,
                    echo as *mut c_void,
                );
            }
            Ok(Speex {
                echo,
                pre,
                out: vec![0; block],
                far: Vec::new(),
                line: DelayLine::new(),
            })
        }
    }

    impl Backend for Speex {
        fn name(&self) -> String {
            "speex".into()
        }
        fn process(&mut self, far: &[i16], mic: &mut [i16], known: Option<u64>) {
            let mut f = std::mem::take(&mut self.far);
            self.line
                .run(far, known.unwrap_or(0) as usize, mic.len(), &mut f);
            // SAFETY: the states are valid; all three buffers hold one
            // frame (the block size the states were made for).
            unsafe {
                speex_echo_cancellation(self.echo, mic.as_ptr(), f.as_ptr(), self.out.as_mut_ptr());
                speex_preprocess_run(self.pre, self.out.as_mut_ptr());
            }
            mic.copy_from_slice(&self.out);
            self.far = f;
        }
    }

    impl Drop for Speex {
        fn drop(&mut self) {
            // SAFETY: made in new, destroyed once; the preprocessor refers
            // to the echo state, so it goes first.
            unsafe {
                speex_preprocess_state_destroy(self.pre);
                speex_echo_state_destroy(self.echo);
            }
        }
    }
}

#[cfg(feature = "webrtc")]
mod webrtc {
    //! webrtc-audio-processing 0.5 on Debian bookworm's
    //! libwebrtc-audio-processing 0.3 (PulseAudio's copy of WebRTC's APM
    //! of 2016: the AEC2 canceller, extended filter and delay-agnostic
    //! mode; AEC3 came with the library's 1.x, which bookworm lacks). Its
    //! wrapper runs at 48 kHz only: 8 kHz is resampled with aec3's
    //! PushSincResampler both ways.
    use super::{Backend, DelayLine};
    use aec3::audio_processing::resampler::push_sinc_resampler::PushSincResampler;
    use webrtc_audio_processing::*;

    pub struct WebRtc {
        p: Processor,
        up_far: PushSincResampler,
        up_mic: PushSincResampler,
        down: PushSincResampler,
        line: DelayLine,
        far: Vec<i16>,
        block: usize,
    }

    impl WebRtc {
        pub fn new(block: usize) -> anyhow::Result<WebRtc> {
            let mut p = Processor::new(&InitializationConfig {
                num_capture_channels: 1,
                num_render_channels: 1,
                ..InitializationConfig::default()
            })
            .map_err(|e| anyhow::anyhow!("webrtc Processor::new: {e:?}"))?;
            p.set_config(Config {
                echo_cancellation: Some(EchoCancellation {
                    suppression_level: EchoCancellationSuppressionLevel::High,
                    enable_extended_filter: true,
                    enable_delay_agnostic: true,
                    stream_delay_ms: None,
                }),
                enable_high_pass_filter: true,
                ..Config::default()
            });
            let n = NUM_SAMPLES_PER_FRAME as usize;
            Ok(WebRtc {
                p,
                up_far: PushSincResampler::new(block, n),
                up_mic: PushSincResampler::new(block, n),
                down: PushSincResampler::new(n, block),
                line: DelayLine::new(),
                far: Vec::new(),
                block,
            })
        }
    }

    impl Backend for WebRtc {
        fn name(&self) -> String {
            "webrtc".into()
        }
        fn process(&mut self, far: &[i16], mic: &mut [i16], known: Option<u64>) {
            let n = NUM_SAMPLES_PER_FRAME as usize;
            let mut f = std::mem::take(&mut self.far);
            self.line
                .run(far, known.unwrap_or(0) as usize, mic.len(), &mut f);
            let ff: Vec<f32> = f.iter().map(|&v| f32::from(v) / 32768.0).collect();
            let mf: Vec<f32> = mic.iter().map(|&v| f32::from(v) / 32768.0).collect();
            let mut r = vec![0f32; n];
            let mut c = vec![0f32; n];
            self.up_far.resample_f32(&ff, &mut r);
            self.up_mic.resample_f32(&mf, &mut c);
            let _ = self.p.process_render_frame(&mut r);
            let _ = self.p.process_capture_frame(&mut c);
            let mut o = vec![0f32; self.block];
            self.down.resample_f32(&c, &mut o);
            for (m, v) in mic.iter_mut().zip(o) {
                *m = (v * 32768.0).round().clamp(-32768.0, 32767.0) as i16;
            }
            self.far = f;
        }
        fn metrics(&self) -> Option<(f64, f64)> {
            let s = self.p.get_stats();
            Some((
                s.echo_return_loss_enhancement.unwrap_or(f64::NAN),
                s.delay_median_ms.map_or(f64::NAN, f64::from),
            ))
        }
    }
}
