//! Media: G.711 over RTP between an audio device (the card's bridge side, a
//! WAV file, a tone) and the far end.
//!
//! The protocol logic is sans-IO and tested in virtual time:
//! [`call::CallCore`] (RTP send/receive, symmetric RTP latching, DTMF,
//! RTCP scheduling, RTP timeout) built from [`rtp`] (packets, RFC 4733),
//! [`report`] (RFC 3550 statistics, SR/RR), [`jitter`] (adaptive jitter
//! buffer and G.711 Appendix I style concealment) and [`drift`] (clock-drift
//! control of the playout queue).
//!
//! [`engine`] runs every call's core with real I/O on one thread (poll on
//! the PCM descriptors and sockets; see its documentation), [`audio`] has
//! the non-blocking devices, [`session`] the API ([`start`],
//! [`MediaHandle`]), [`hooks`] the extension points for SRTP and echo
//! cancellation, and [`sim`] virtual devices and a virtual network that
//! drive the engine in virtual time for tests and benchmarks.

pub mod analysis;
pub mod audio;
pub mod call;
pub mod drift;
pub mod engine;
pub mod hooks;
pub mod jitter;
pub mod mean;
pub mod report;
pub mod resample;
pub mod rtp;
pub mod rxtime;
pub mod sched;
pub mod session;
pub mod sim;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;
use std::str::FromStr;
use thiserror::Error;

pub use session::{start, start_std, MediaHandle, MediaParams};

/// Errors of the media path.
#[derive(Debug, Error)]
pub enum MediaError {
    /// Bad audio device specification.
    #[error("bad audio spec '{0}': expected alsa:<pcm>, wav:<path>, tone:<hz> or null")]
    BadSpec(String),
    /// A device or file could not be opened or used.
    #[error("audio device {0}: {1}")]
    Device(String, String),
    /// Socket error.
    #[error("RTP socket: {0}")]
    Io(#[from] std::io::Error),
    /// DTMF digit not in 0-9 * # A-D.
    #[error("bad DTMF digit '{0}'")]
    BadDigit(char),
    /// DTMF requested but the peer did not negotiate telephone-event.
    #[error("the peer did not negotiate telephone-event: cannot send DTMF")]
    NoTelephoneEvent,
    /// The media engine is gone, or the call's audio has failed.
    #[error("media stopped")]
    Stopped,
    /// The packet transform (SRTP) could not be set up.
    #[error("packet transform: {0}")]
    Transform(String),
}

/// Events a call's media reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MediaEvent {
    /// A DTMF digit arrived (RFC 4733).
    DtmfReceived(char),
    /// No RTP for the configured timeout (reported once until packets resume).
    RtpTimeout,
    /// The audio device failed; the call's audio has stopped.
    DeviceError(String),
}

/// Media counters, shown by `voipbridge status`.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct MediaStats {
    /// Codec name (PCMU, PCMA).
    pub codec: String,
    /// Where RTP goes (after latching, the peer's real source).
    pub remote: String,
    /// Our direction (sendrecv, sendonly, recvonly, inactive).
    pub direction: String,
    /// RTP packets sent (audio and telephone-event).
    pub packets_sent: u64,
    /// RTP payload bytes sent.
    pub bytes_sent: u64,
    /// RTP packets received and accepted.
    pub packets_received: u64,
    /// RTP payload bytes received.
    pub bytes_received: u64,
    /// Packets from unexpected sources, with unknown payload types, or not RTP.
    pub packets_ignored: u64,
    /// Packets lost (RFC 3550 cumulative loss).
    pub lost: u64,
    /// Interarrival jitter (RFC 3550 A.8) in ms.
    pub jitter_ms: f64,
    /// Round-trip time from RTCP (RFC 3550 6.4.1) in ms, once measured.
    pub rtt_ms: Option<f64>,
    /// Loss fraction the peer reports about our stream (0–1).
    pub remote_fraction_lost: f64,
    /// Jitter the peer reports about our stream, ms.
    pub remote_jitter_ms: f64,
    /// Frames concealed (lost or late packets).
    pub concealed: u64,
    /// Packets that arrived too late to be played.
    pub late: u64,
    /// Duplicate packets.
    pub duplicates: u64,
    /// Jitter buffer underruns.
    pub underruns: u64,
    /// Current jitter buffer target delay, ms.
    pub jitter_buffer_ms: u32,
    /// Audio queued for playback right now (jitter buffer and playout queue), ms.
    pub queued_ms: u32,
    /// The same, averaged over the last second (`None` until a second of
    /// the call has passed): the time a received sample waits here.
    pub queued_mean_ms: Option<f64>,
    /// Samples repeated by clock-drift control.
    pub drift_inserted: u64,
    /// Samples dropped by clock-drift control.
    pub drift_dropped: u64,
    /// ALSA xruns recovered (capture and playback).
    pub xruns: u64,
    /// DTMF digits sent.
    pub dtmf_sent: u64,
    /// DTMF digits received, in order.
    pub dtmf_received: String,
    /// RTCP reports sent.
    pub rtcp_sent: u64,
    /// RTCP packets received.
    pub rtcp_received: u64,
    /// Latch mode (RTP peer learnt from the first packet) rather than strict.
    pub latch: bool,
    /// The packet transform (e.g. `SRTP AES_CM_128_HMAC_SHA1_80`), `None`: plain RTP.
    pub transform: Option<String>,
    /// Datagrams the transform refused on receipt (failed authentication,
    /// replays): dropped.
    pub transform_dropped: u64,
    /// Outgoing packets the transform failed on: not sent.
    pub transform_errors: u64,
    /// Capture device format, e.g. `MU_LAW 8000 Hz 1 ch` (empty: not a device).
    pub capture_format: String,
    /// Playback device format.
    pub playback_format: String,
    /// Captured codes go into RTP untouched (the device runs the call's law).
    pub capture_passthrough: bool,
    /// Received codes reach the device untouched (the device runs the call's law).
    pub playback_passthrough: bool,
    /// Device period, ms (0: not a device).
    pub device_period_ms: f64,
    /// Audio the bridge keeps queued in the playback device now, ms (its
    /// fill target: `[audio] buffer_ms` once settled; 0: not a device).
    pub device_buffer_ms: f64,
    /// Capture device delay (`snd_pcm_delay`) at the last read, ms: audio
    /// captured but not yet read by us.
    pub capture_delay_ms: f64,
    /// Playback device delay (`snd_pcm_delay`) at the last write, ms: audio
    /// written but not yet played.
    pub playback_delay_ms: f64,
    /// The capture device's delay averaged over the last second, ms
    /// (`None`: not a device, or not a second yet): what a captured sample
    /// waits in the device before the bridge reads it.
    pub capture_delay_mean_ms: Option<f64>,
    /// The playback device's delay averaged over the last second, ms: what
    /// a sample written waits in the device before it plays (the delay
    /// falls between two top-ups, so this is below `playback_delay_ms`).
    pub playback_delay_mean_ms: Option<f64>,
    /// Capture stages (echo cancellation, noise suppression), in order.
    pub processing: Vec<String>,
    /// Their figures (name.figure: value), e.g. `aec3.erle_db`; in JSON an
    /// object (`{"aec3.erle_db": 31.5, ...}`).
    #[serde(serialize_with = "figures_as_object")]
    pub processing_stats: Vec<(String, f64)>,
}

/// (name, value) pairs as a JSON object, in their order.
fn figures_as_object<S: serde::Serializer>(v: &[(String, f64)], s: S) -> Result<S::Ok, S::Error> {
    use serde::ser::SerializeMap;
    let mut m = s.serialize_map(Some(v.len()))?;
    for (k, x) in v {
        m.serialize_entry(k, x)?;
    }
    m.end()
}

/// G.711 codecs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub enum Codec {
    /// mu-law, payload type 0.
    Pcmu,
    /// A-law, payload type 8.
    Pcma,
}

impl Codec {
    /// Static RTP payload type.
    pub fn payload_type(self) -> u8 {
        match self {
            Codec::Pcmu => 0,
            Codec::Pcma => 8,
        }
    }
    /// Encoding name in SDP.
    pub fn name(self) -> &'static str {
        match self {
            Codec::Pcmu => "PCMU",
            Codec::Pcma => "PCMA",
        }
    }
    /// The G.711 law.
    pub fn law(self) -> g711::Law {
        match self {
            Codec::Pcmu => g711::Law::MuLaw,
            Codec::Pcma => g711::Law::ALaw,
        }
    }
}

impl FromStr for Codec {
    type Err = String;
    fn from_str(s: &str) -> Result<Codec, String> {
        match s.to_ascii_uppercase().as_str() {
            "PCMU" => Ok(Codec::Pcmu),
            "PCMA" => Ok(Codec::Pcma),
            _ => Err(format!("unknown codec '{s}' (PCMU or PCMA)")),
        }
    }
}

/// SDP media direction (RFC 3264).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Direction {
    /// Both ways.
    SendRecv,
    /// We only send.
    SendOnly,
    /// We only receive.
    RecvOnly,
    /// Neither (hold).
    Inactive,
}

impl Direction {
    /// From an SDP attribute name.
    pub fn from_attr(a: &str) -> Option<Direction> {
        match a.trim() {
            "sendrecv" => Some(Direction::SendRecv),
            "sendonly" => Some(Direction::SendOnly),
            "recvonly" => Some(Direction::RecvOnly),
            "inactive" => Some(Direction::Inactive),
            _ => None,
        }
    }
    /// The SDP attribute name.
    pub fn attr(self) -> &'static str {
        match self {
            Direction::SendRecv => "sendrecv",
            Direction::SendOnly => "sendonly",
            Direction::RecvOnly => "recvonly",
            Direction::Inactive => "inactive",
        }
    }
    /// Our direction in answer to the peer's offered one.
    pub fn answer(self) -> Direction {
        match self {
            Direction::SendOnly => Direction::RecvOnly,
            Direction::RecvOnly => Direction::SendOnly,
            d => d,
        }
    }
    /// Whether we send audio.
    pub fn sends(self) -> bool {
        matches!(self, Direction::SendRecv | Direction::SendOnly)
    }
    /// Whether we play what we receive.
    pub fn receives(self) -> bool {
        matches!(self, Direction::SendRecv | Direction::RecvOnly)
    }
}

/// Where a call's audio comes from or goes to.
#[derive(Debug, Clone, PartialEq)]
pub enum AudioSpec {
    /// An ALSA PCM, e.g. `hw:VoIP,1,0`.
    Alsa(String),
    /// A WAV file: played in a loop (capture; any rate, channels and sample
    /// format, converted to 8 kHz mono) or recorded (playback; 8 kHz mono
    /// 16-bit, header finalised when media stops).
    Wav(String),
    /// A sine of this frequency at -6 dBFS (capture only).
    Tone(f64),
    /// Silence / discard.
    Null,
}

impl FromStr for AudioSpec {
    type Err = MediaError;
    fn from_str(s: &str) -> Result<AudioSpec, MediaError> {
        let bad = || MediaError::BadSpec(s.to_string());
        if s == "null" {
            return Ok(AudioSpec::Null);
        }
        let (kind, arg) = s.split_once(':').ok_or_else(bad)?;
        match kind {
            "alsa" if !arg.is_empty() => Ok(AudioSpec::Alsa(arg.to_string())),
            "wav" if !arg.is_empty() => Ok(AudioSpec::Wav(arg.to_string())),
            "tone" => match arg.parse::<f64>() {
                Ok(hz) if hz > 0.0 && hz < 4000.0 => Ok(AudioSpec::Tone(hz)),
                _ => Err(bad()),
            },
            _ => Err(bad()),
        }
    }
}

impl Serialize for AudioSpec {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for AudioSpec {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<AudioSpec, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

impl fmt::Display for AudioSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AudioSpec::Alsa(p) => write!(f, "alsa:{p}"),
            AudioSpec::Wav(p) => write!(f, "wav:{p}"),
            AudioSpec::Tone(hz) => write!(f, "tone:{hz}"),
            AudioSpec::Null => write!(f, "null"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn audio_specs() {
        assert_eq!(
            "alsa:hw:VoIP,1,0".parse::<AudioSpec>().unwrap(),
            AudioSpec::Alsa("hw:VoIP,1,0".into())
        );
        assert_eq!(
            "tone:440".parse::<AudioSpec>().unwrap(),
            AudioSpec::Tone(440.0)
        );
        assert_eq!("null".parse::<AudioSpec>().unwrap(), AudioSpec::Null);
        assert!("tone:9000".parse::<AudioSpec>().is_err());
        assert!("pulse:x".parse::<AudioSpec>().is_err());
        assert_eq!(
            AudioSpec::Wav("/tmp/a.wav".into()).to_string(),
            "wav:/tmp/a.wav"
        );
        for s in ["alsa:plughw:0,0", "wav:/x y.wav", "tone:1000", "null"] {
            let spec: AudioSpec = s.parse().unwrap();
            assert_eq!(spec.to_string(), s);
            let json = serde_json::to_string(&spec).unwrap();
            assert_eq!(json, format!("\"{s}\""));
            assert_eq!(serde_json::from_str::<AudioSpec>(&json).unwrap(), spec);
        }
        assert!(serde_json::from_str::<AudioSpec>("\"tone:x\"").is_err());
    }

    #[test]
    fn direction_answers() {
        assert_eq!(Direction::SendOnly.answer(), Direction::RecvOnly);
        assert_eq!(Direction::Inactive.answer(), Direction::Inactive);
        assert!(!Direction::RecvOnly.sends());
    }
}
