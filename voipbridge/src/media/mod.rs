//! Media: G.711 over RTP between an audio device (the card's bridge side, a
//! WAV file, a tone) and the far end.
//!
//! The protocol logic is sans-IO ([`jitter::JitterBuffer`], [`rtp`]); the
//! I/O runs on two dedicated threads per call ([`session`]): the *pump*
//! paces itself on the capture device (ALSA blocks on the card's hrtimer
//! clock; files and tones sleep to a 20 ms schedule) and the *receiver*
//! feeds the jitter buffer. Threads, not tokio tasks, because ALSA I/O is
//! blocking and must not stall the signalling runtime.

pub mod audio;
pub mod jitter;
pub mod rtp;
pub mod session;

use serde::Serialize;
use std::fmt;
use std::str::FromStr;
use thiserror::Error;

pub use session::{start, MediaHandle, MediaParams, MediaStats};

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
    /// A WAV file: played in a loop (capture) or recorded (playback).
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
    }

    #[test]
    fn direction_answers() {
        assert_eq!(Direction::SendOnly.answer(), Direction::RecvOnly);
        assert_eq!(Direction::Inactive.answer(), Direction::Inactive);
        assert!(!Direction::RecvOnly.sends());
    }
}
