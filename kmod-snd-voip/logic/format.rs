// SPDX-License-Identifier: GPL-2.0
//! The card's formats, rates and channel counts, and the cable constraint:
//! once one end of a cable is configured, the other end must use the same
//! format, rate and channels (snd-aloop's rule_format/rule_rate/rule_channels).
//!
//! Pure logic shared by the kernel module and the host tests.

use core::num::NonZeroU32;

/// ALSA's `SNDRV_PCM_FORMAT_S16_LE`.
pub const ALSA_FORMAT_S16_LE: u32 = 2;
/// ALSA's `SNDRV_PCM_FORMAT_MU_LAW`.
pub const ALSA_FORMAT_MU_LAW: u32 = 20;
/// ALSA's `SNDRV_PCM_FORMAT_A_LAW`.
pub const ALSA_FORMAT_A_LAW: u32 = 21;

/// A sample format the card supports.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// Signed 16-bit little-endian linear PCM.
    S16Le,
    /// G.711 mu-law, one byte per sample.
    MuLaw,
    /// G.711 A-law, one byte per sample.
    ALaw,
}

impl Format {
    /// Every supported format.
    pub const ALL: [Format; 3] = [Format::S16Le, Format::MuLaw, Format::ALaw];

    /// The format for an ALSA `snd_pcm_format_t` value, if supported.
    pub fn from_alsa(value: u32) -> Option<Format> {
        match value {
            ALSA_FORMAT_S16_LE => Some(Format::S16Le),
            ALSA_FORMAT_MU_LAW => Some(Format::MuLaw),
            ALSA_FORMAT_A_LAW => Some(Format::ALaw),
            _ => None,
        }
    }

    /// The ALSA `snd_pcm_format_t` value.
    pub fn to_alsa(self) -> u32 {
        match self {
            Format::S16Le => ALSA_FORMAT_S16_LE,
            Format::MuLaw => ALSA_FORMAT_MU_LAW,
            Format::ALaw => ALSA_FORMAT_A_LAW,
        }
    }

    /// Bytes per sample.
    pub fn sample_bytes(self) -> usize {
        match self {
            Format::S16Le => 2,
            Format::MuLaw | Format::ALaw => 1,
        }
    }

    /// The name ALSA prints for it.
    pub fn name(self) -> &'static str {
        match self {
            Format::S16Le => "S16_LE",
            Format::MuLaw => "MU_LAW",
            Format::ALaw => "A_LAW",
        }
    }
}

/// Supported rates, in frames per second.
pub const RATES: [u32; 5] = [8000, 16000, 32000, 44100, 48000];
/// Lowest supported rate.
pub const RATE_MIN: u32 = 8000;
/// Highest supported rate.
pub const RATE_MAX: u32 = 48000;
/// Fewest channels.
pub const CHANNELS_MIN: u32 = 1;
/// Most channels.
pub const CHANNELS_MAX: u32 = 2;
/// Most substreams (cables) per PCM device.
pub const MAX_SUBSTREAMS: u32 = 8;

/// ALSA `SNDRV_PCM_RATE_*` bits for [`RATES`].
pub const RATE_BITS: u32 = (1 << 1) | (1 << 3) | (1 << 5) | (1 << 6) | (1 << 7);

/// Whether `rate` is one the card supports.
pub fn rate_supported(rate: u32) -> bool {
    RATES.contains(&rate)
}

/// Format, rate and channels of one configured stream.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StreamParams {
    /// Sample format.
    pub format: Format,
    /// Frames per second.
    pub rate: NonZeroU32,
    /// Interleaved channels.
    pub channels: u32,
}

impl StreamParams {
    /// Validates raw values from ALSA's hw_params; `None` for anything the
    /// card does not offer (the core should have refused it already).
    pub fn new(format: u32, rate: u32, channels: u32) -> Option<Self> {
        let format = Format::from_alsa(format)?;
        if !rate_supported(rate) || !(CHANNELS_MIN..=CHANNELS_MAX).contains(&channels) {
            return None;
        }
        Some(StreamParams {
            format,
            rate: NonZeroU32::new(rate)?,
            channels,
        })
    }

    /// Bytes per frame.
    pub fn frame_bytes(&self) -> usize {
        self.format.sample_bytes() * self.channels as usize
    }
}

/// A refinement left no format to choose.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EmptyMask;

/// What one end of a cable may still choose, given the other end.
///
/// Each field is `None` when free, or the value the peer imposes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Constraint {
    /// Format imposed by the peer (ALSA value).
    pub format: Option<u32>,
    /// Rate imposed by the peer.
    pub rate: Option<u32>,
    /// Channels imposed by the peer.
    pub channels: Option<u32>,
}

impl Constraint {
    /// The constraint a configured peer imposes; a free one when the peer is unconfigured.
    pub fn from_peer(peer: Option<StreamParams>) -> Self {
        match peer {
            Some(p) => Constraint {
                format: Some(p.format.to_alsa()),
                rate: Some(p.rate.get()),
                channels: Some(p.channels),
            },
            None => Constraint::default(),
        }
    }

    /// Refines an ALSA format mask (bit `n` = format `n`, as 32-bit words)
    /// in place. Returns `Ok(true)` when it changed, `Err(EmptyMask)` when
    /// nothing is left.
    pub fn refine_format_mask(&self, bits: &mut [u32]) -> Result<bool, EmptyMask> {
        let Some(format) = self.format else {
            return Ok(false);
        };
        let word = (format / 32) as usize;
        let bit = 1u32 << (format % 32);
        let mut changed = false;
        let mut left = false;
        for (i, w) in bits.iter_mut().enumerate() {
            let keep = if i == word { *w & bit } else { 0 };
            if keep != *w {
                changed = true;
            }
            *w = keep;
            left |= keep != 0;
        }
        if left {
            Ok(changed)
        } else {
            Err(EmptyMask)
        }
    }

    /// Whether two configured ends can exchange data.
    pub fn compatible(a: &StreamParams, b: &StreamParams) -> bool {
        a == b
    }
}
