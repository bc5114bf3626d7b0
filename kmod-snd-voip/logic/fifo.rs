// SPDX-License-Identifier: GPL-2.0
//! The RTOS audio FIFO: layout and validation of the shared-memory ring
//! header, version 1.1 (1.0 accepted), and the ring arithmetic both sides use.
//!
//! One single-producer/single-consumer ring per direction lives in a
//! shared-memory region: a 256-byte little-endian header, then `ring_bytes`
//! of audio. `include/snd_voip_fifo.h` is the same layout for the RTOS side;
//! ARCHITECTURE.md ("RTOS audio FIFO") states the memory-ordering rules.
//!
//! Pure logic: the kernel module and host tools compile this file; nothing
//! here touches memory except through byte slices given to it, so a corrupt
//! header yields an error, never an out-of-bounds access.

use crate::format::{Format, StreamParams};

/// `'S' 'V' 'F' 'Q'` read as a little-endian u32.
pub const MAGIC: u32 = 0x5146_5653;
/// Major version: a different one is refused.
pub const VERSION_MAJOR: u16 = 1;
/// Minor version this layout describes. Newer minors only add fields in
/// reserved space or tighten rules, so any minor of the major is accepted.
///
/// 1.1: the counters are 32-bit wrapping counts in the low word of their
/// 64-bit field (one aligned 32-bit store publishes them); the high word is
/// optional for writers and only cross-checked by readers on 1.0 rings
/// (see [`crate::counter`]). Every 1.0 ring is a valid 1.1 ring.
pub const VERSION_MINOR: u16 = 1;
/// Size of the header this version defines.
pub const HEADER_SIZE: u32 = 256;

/// Byte offsets of the header fields.
pub mod off {
    /// u32 magic, written last by the side that initialises the ring.
    pub const MAGIC: usize = 0;
    /// u16 major, u16 minor.
    pub const VERSION: usize = 4;
    /// u32 header size (>= 256; the data starts there).
    pub const HEADER_SIZE: usize = 8;
    /// u32 ring size in bytes (a power of two).
    pub const RING_BYTES: usize = 12;
    /// u32 frames per period (the consumer's wakeup granularity).
    pub const PERIOD_FRAMES: usize = 16;
    /// u32 frames per second.
    pub const RATE: usize = 20;
    /// u16 channels.
    pub const CHANNELS: usize = 24;
    /// u16 ALSA format code (2 S16_LE, 20 MU_LAW, 21 A_LAW).
    pub const FORMAT: usize = 26;
    /// u32 direction: 0 RTOS to Linux (microphone), 1 Linux to RTOS (speaker).
    pub const DIRECTION: usize = 28;
    /// Producer's cache line: free-running count of frames written; its low
    /// u32 is the counter (v1.1: wraps at 2^32).
    pub const WRITE_FRAMES: usize = 64;
    /// u32 high word of the write counter (1.0: the carry; 1.1: optional).
    pub const WRITE_FRAMES_HI: usize = 68;
    /// u32 producer state (0 stopped, 1 running).
    pub const PRODUCER_STATE: usize = 72;
    /// u32 overruns counted by the producer (ring full, frames dropped).
    pub const OVERRUNS: usize = 76;
    /// u32 heartbeat, incremented by the producer at least once a period.
    pub const PRODUCER_HEARTBEAT: usize = 80;
    /// Consumer's cache line: free-running count of frames read; its low
    /// u32 is the counter (v1.1: wraps at 2^32).
    pub const READ_FRAMES: usize = 128;
    /// u32 high word of the read counter (1.0: the carry; 1.1: optional).
    pub const READ_FRAMES_HI: usize = 132;
    /// u32 consumer state (0 stopped, 1 running).
    pub const CONSUMER_STATE: usize = 136;
    /// u32 underruns counted by the consumer (ring empty, silence used).
    pub const UNDERRUNS: usize = 140;
    /// u32 heartbeat, incremented by the consumer at least once a period.
    pub const CONSUMER_HEARTBEAT: usize = 144;
}

/// Why a ring cannot be used.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FifoError {
    /// The region is smaller than the header.
    RegionTooSmall,
    /// Magic missing: not initialised (yet) or not a ring.
    BadMagic(u32),
    /// Unknown major version.
    BadVersion(u16),
    /// Header size below 256 or beyond the region.
    BadHeaderSize(u32),
    /// Ring size not a power of two, or header + ring beyond the region.
    BadRingSize(u32),
    /// Rate, channels or format the card does not support.
    BadFormat,
    /// Period of zero frames or more than half the ring.
    BadPeriod(u32),
    /// Direction field not 0 or 1.
    BadDirection(u32),
    /// Read counter ahead of write, or more than the ring in between.
    BadIndices,
    /// The header describes another ring than the one validated before
    /// (the RTOS re-initialised it with other sizes or format).
    Changed,
}

/// A validated ring description.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ring {
    /// Where the data starts in the region.
    pub data_offset: usize,
    /// Data size in bytes (a power of two).
    pub ring_bytes: usize,
    /// Audio parameters.
    pub params: StreamParams,
    /// Frames per period.
    pub period_frames: u32,
    /// True for RTOS to Linux (microphone).
    pub to_linux: bool,
    /// The minor version the RTOS wrote (0: the counters' high words are
    /// the carry and readers may cross-check them; 1 or more: low words only).
    pub minor: u16,
}

fn u16_at(b: &[u8], o: usize) -> Option<u16> {
    Some(u16::from_le_bytes([*b.get(o)?, *b.get(o + 1)?]))
}

fn u32_at(b: &[u8], o: usize) -> Option<u32> {
    Some(u32::from_le_bytes([
        *b.get(o)?,
        *b.get(o + 1)?,
        *b.get(o + 2)?,
        *b.get(o + 3)?,
    ]))
}

impl Ring {
    /// Validates the header at the start of a region of `region_len` bytes
    /// (`header` holds at least the first 256 bytes of it).
    pub fn validate(header: &[u8], region_len: usize) -> Result<Ring, FifoError> {
        if region_len < HEADER_SIZE as usize || header.len() < HEADER_SIZE as usize {
            return Err(FifoError::RegionTooSmall);
        }
        let g32 = |o| u32_at(header, o).ok_or(FifoError::RegionTooSmall);
        let g16 = |o| u16_at(header, o).ok_or(FifoError::RegionTooSmall);
        let magic = g32(off::MAGIC)?;
        if magic != MAGIC {
            return Err(FifoError::BadMagic(magic));
        }
        let major = g16(off::VERSION)?;
        if major != VERSION_MAJOR {
            return Err(FifoError::BadVersion(major));
        }
        let minor = g16(off::VERSION + 2)?;
        let hs = g32(off::HEADER_SIZE)?;
        if hs < HEADER_SIZE || hs as usize > region_len {
            return Err(FifoError::BadHeaderSize(hs));
        }
        let rb = g32(off::RING_BYTES)?;
        if !rb.is_power_of_two()
            || (hs as usize)
                .checked_add(rb as usize)
                .is_none_or(|end| end > region_len)
        {
            return Err(FifoError::BadRingSize(rb));
        }
        let params = StreamParams::new(
            u32::from(g16(off::FORMAT)?),
            g32(off::RATE)?,
            u32::from(g16(off::CHANNELS)?),
        )
        .ok_or(FifoError::BadFormat)?;
        // Frames never straddle the wrap: the ring holds a whole number of
        // frames. (checked_* because the kernel build may not contain a
        // division that can panic.)
        let fb = params.frame_bytes();
        if (rb as usize).checked_rem(fb) != Some(0) {
            return Err(FifoError::BadFormat);
        }
        let period = g32(off::PERIOD_FRAMES)?;
        let capacity = (rb as usize).checked_div(fb).unwrap_or(0);
        if period == 0 || period as usize > capacity / 2 {
            return Err(FifoError::BadPeriod(period));
        }
        let to_linux = match g32(off::DIRECTION)? {
            0 => true,
            1 => false,
            d => return Err(FifoError::BadDirection(d)),
        };
        Ok(Ring {
            data_offset: hs as usize,
            ring_bytes: rb as usize,
            params,
            period_frames: period,
            to_linux,
            minor,
        })
    }

    /// Capacity in frames.
    pub fn capacity(&self) -> u64 {
        self.ring_bytes
            .checked_div(self.params.frame_bytes())
            .unwrap_or(0) as u64
    }

    /// Frames readable given the two counters, compared by their low 32
    /// bits as protocol 1.1 defines them (wrapping, so a counter that
    /// crossed 2^32 and one that did not yet still give the right fill);
    /// an error for counters no honest producer/consumer pair can produce
    /// (the reader ahead of the writer, or more than the ring between them).
    pub fn fill(&self, write_frames: u64, read_frames: u64) -> Result<u64, FifoError> {
        let fill = u64::from((write_frames as u32).wrapping_sub(read_frames as u32));
        if fill > self.capacity() {
            return Err(FifoError::BadIndices);
        }
        Ok(fill)
    }

    /// The range the other side's counter must lie in, given Linux's own
    /// counter `linux` (the read counter of a microphone ring, the write
    /// counter of a speaker ring): the RTOS producer is at most a ring ahead
    /// of Linux's read counter; the RTOS consumer is at most a ring behind
    /// Linux's write counter and never ahead of it.
    pub fn peer_bounds(&self, linux: u64) -> (u64, u64) {
        let cap = self.capacity();
        if self.to_linux {
            (linux, linux.saturating_add(cap))
        } else {
            (linux.saturating_sub(cap), linux)
        }
    }

    /// The fill given Linux's counter and the other side's (extended) one.
    pub fn fill_from(&self, linux: u64, peer: u64) -> u64 {
        if self.to_linux {
            peer.saturating_sub(linux)
        } else {
            linux.saturating_sub(peer)
        }
    }

    /// Whether `other` describes the same ring: the same layout and
    /// format (a different minor version of the same major is the same
    /// ring; only what readers cross-check differs).
    pub fn same_layout(&self, other: &Ring) -> bool {
        Ring {
            minor: self.minor,
            ..*other
        } == *self
    }

    /// Byte offset in the data area of frame number `frame`.
    pub fn byte_offset(&self, frame: u64) -> usize {
        // capacity is a power of two divided by the frame size, so use the
        // byte position modulo the (power-of-two) ring size.
        let fb = self.params.frame_bytes() as u64;
        (frame.wrapping_mul(fb) & (self.ring_bytes as u64 - 1)) as usize
    }
}

/// Writes a version 1.[`VERSION_MINOR`] header (host tools and tests; the
/// RTOS side does the same in C). The magic goes in last.
pub fn write_header(
    buf: &mut [u8],
    ring_bytes: u32,
    period_frames: u32,
    format: Format,
    rate: u32,
    channels: u16,
    to_linux: bool,
) -> bool {
    if buf.len() < HEADER_SIZE as usize {
        return false;
    }
    buf[..HEADER_SIZE as usize].fill(0);
    let mut put32 = |o: usize, v: u32| buf[o..o + 4].copy_from_slice(&v.to_le_bytes());
    put32(off::HEADER_SIZE, HEADER_SIZE);
    put32(off::RING_BYTES, ring_bytes);
    put32(off::PERIOD_FRAMES, period_frames);
    put32(off::RATE, rate);
    put32(off::DIRECTION, if to_linux { 0 } else { 1 });
    buf[off::VERSION..off::VERSION + 2].copy_from_slice(&VERSION_MAJOR.to_le_bytes());
    buf[off::VERSION + 2..off::VERSION + 4].copy_from_slice(&VERSION_MINOR.to_le_bytes());
    buf[off::CHANNELS..off::CHANNELS + 2].copy_from_slice(&channels.to_le_bytes());
    buf[off::FORMAT..off::FORMAT + 2].copy_from_slice(&(format.to_alsa() as u16).to_le_bytes());
    buf[off::MAGIC..off::MAGIC + 4].copy_from_slice(&MAGIC.to_le_bytes());
    true
}

/// Rewrites the minor version of a header written by [`write_header`]
/// (before its magic is published): tools that play a 1.0 RTOS use it.
pub fn set_version_minor(buf: &mut [u8], minor: u16) -> bool {
    match buf.get_mut(off::VERSION + 2..off::VERSION + 4) {
        Some(b) => {
            b.copy_from_slice(&minor.to_le_bytes());
            true
        }
        None => false,
    }
}

/// What feeds an application-side capture substream (ALSA control
/// "Capture Source", item order as in the control).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CaptureSource {
    /// The bridge's playback on the same substream (the plain cable).
    Bridge = 0,
    /// The RTOS microphone ring.
    Rtos = 1,
}

/// Where an application-side playback substream goes (ALSA control
/// "Playback Sink", item order as in the control).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PlaybackSink {
    /// The bridge's capture on the same substream (the plain cable).
    Bridge = 0,
    /// The RTOS speaker ring.
    Rtos = 1,
    /// Both: the speaker ring, and a copy to the bridge's capture.
    Both = 2,
}

impl CaptureSource {
    /// The source for a control item index.
    pub fn from_index(i: u32) -> Option<Self> {
        match i {
            0 => Some(Self::Bridge),
            1 => Some(Self::Rtos),
            _ => None,
        }
    }

    /// The source named by a device-tree property or module parameter
    /// (`bridge` or `rtos`, any case).
    pub fn parse(s: &[u8]) -> Option<Self> {
        if s.eq_ignore_ascii_case(b"bridge") {
            Some(Self::Bridge)
        } else if s.eq_ignore_ascii_case(b"rtos") {
            Some(Self::Rtos)
        } else {
            None
        }
    }
}

impl PlaybackSink {
    /// The sink for a control item index.
    pub fn from_index(i: u32) -> Option<Self> {
        match i {
            0 => Some(Self::Bridge),
            1 => Some(Self::Rtos),
            2 => Some(Self::Both),
            _ => None,
        }
    }

    /// The sink named by a device-tree property or module parameter
    /// (`bridge`, `rtos` or `both`, any case).
    pub fn parse(s: &[u8]) -> Option<Self> {
        if s.eq_ignore_ascii_case(b"both") {
            return Some(Self::Both);
        }
        CaptureSource::parse(s).map(|c| match c {
            CaptureSource::Bridge => Self::Bridge,
            CaptureSource::Rtos => Self::Rtos,
        })
    }
}

/// Where the second ring starts in a region: right after the first.
pub fn second_ring_offset(first: &Ring) -> usize {
    first.data_offset.saturating_add(first.ring_bytes)
}
