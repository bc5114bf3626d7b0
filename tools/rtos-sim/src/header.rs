//! Ring headers: initialisation (the RTOS side's job before Linux loads
//! the module), decoding for `status`, and the corruptions the kernel must
//! refuse.

use std::fmt;
use std::sync::atomic::{fence, Ordering};

use serde::Serialize;
use snd_voip_logic::fifo::{self, off, FifoError, Ring, HEADER_SIZE, MAGIC, VERSION_MAJOR};
use snd_voip_logic::format::Format;

use crate::region::{Region, Which};
use crate::SimError;

/// Parameters both rings are initialised with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct InitParams {
    /// Frames per second.
    pub rate: u32,
    /// Interleaved channels.
    pub channels: u16,
    /// Sample format.
    pub format: Format,
    /// Data bytes of each ring (a power of two).
    pub ring_bytes: u32,
    /// Frames per period.
    pub period_frames: u32,
    /// Both counters of both rings start here (e.g. just below the 2^32
    /// carry, to stream across it).
    pub start_frames: u64,
    /// Minor protocol version written in both headers (0: a 1.0 RTOS).
    pub minor: u16,
}

impl Default for InitParams {
    fn default() -> Self {
        InitParams {
            rate: 8000,
            channels: 1,
            format: Format::S16Le,
            ring_bytes: 16384,
            period_frames: 160,
            start_frames: 0,
            minor: fifo::VERSION_MINOR,
        }
    }
}

/// The byte that encodes silence in `format`.
pub fn silence_byte(format: Format) -> u8 {
    match format {
        Format::S16Le => 0,
        Format::MuLaw => g711::Law::MuLaw.silence(),
        Format::ALaw => g711::Law::ALaw.silence(),
    }
}

fn header_bytes(p: &InitParams, to_linux: bool) -> [u8; HEADER_SIZE as usize] {
    let mut h = [0u8; HEADER_SIZE as usize];
    fifo::write_header(
        &mut h,
        p.ring_bytes,
        p.period_frames,
        p.format,
        p.rate,
        p.channels,
        to_linux,
    );
    fifo::set_version_minor(&mut h, p.minor);
    for o in [off::WRITE_FRAMES, off::READ_FRAMES] {
        h[o..o + 8].copy_from_slice(&p.start_frames.to_le_bytes());
    }
    h
}

/// Writes both headers (every field, a release fence, then the magic),
/// counters zero, states stopped, and fills both data areas with silence.
/// The parameters are validated first with `Ring::validate`, so nothing is
/// written for a layout Linux would refuse. Returns both rings.
pub fn init(region: &Region, p: &InitParams) -> Result<(Ring, Ring), SimError> {
    let mic_h = header_bytes(p, true);
    let mic =
        Ring::validate(&mic_h, region.len()).map_err(|err| SimError::Ring { ring: "mic", err })?;
    let spk_at = fifo::second_ring_offset(&mic);
    let spk_h = header_bytes(p, false);
    let spk = Ring::validate(&spk_h, region.len().saturating_sub(spk_at)).map_err(|err| {
        SimError::Ring {
            ring: "speaker",
            err,
        }
    })?;
    if !spk_at.is_multiple_of(8) {
        return Err(SimError::Misaligned(spk_at as u64));
    }
    // Withdraw both rings first, so Linux never sees a half-written header
    // behind a valid magic.
    for at in [0, spk_at] {
        region
            .atomic_u32(at + off::MAGIC)
            .store(0, Ordering::Release);
    }
    fence(Ordering::SeqCst);
    // The speaker ring is complete before the microphone ring (through which
    // Linux finds it) becomes valid.
    for (at, h, ring) in [(spk_at, &spk_h, &spk), (0, &mic_h, &mic)] {
        region.write(at + 4, &h[4..]);
        let silence = vec![silence_byte(ring.params.format); ring.ring_bytes];
        region.write(at + ring.data_offset, &silence);
        fence(Ordering::Release);
        region
            .atomic_u32(at + off::MAGIC)
            .store(MAGIC, Ordering::Release);
    }
    Ok((mic, spk))
}

/// A header corruption the kernel must refuse.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Corruption {
    /// Magic overwritten (0xdeadbeef).
    BadMagic,
    /// Major version one higher than supported.
    BadVersion,
    /// ring_bytes (a power of two) larger than the region leaves room for.
    OversizedRing,
    /// read_frames one ahead of write_frames.
    ReadBeyondWrite,
    /// write_frames more than a ring ahead of read_frames (the producer's
    /// counter jumped).
    FillBeyondRing,
    /// A rate the card does not support (12345).
    BadRate,
    /// period_frames of zero.
    BadPeriod,
}

impl Corruption {
    /// Every kind.
    pub const ALL: [Corruption; 7] = [
        Corruption::BadMagic,
        Corruption::BadVersion,
        Corruption::OversizedRing,
        Corruption::ReadBeyondWrite,
        Corruption::FillBeyondRing,
        Corruption::BadRate,
        Corruption::BadPeriod,
    ];

    /// Whether `err` is the error `Ring::validate` / `Ring::fill` must give
    /// for this corruption.
    pub fn matches(self, err: &FifoError) -> bool {
        matches!(
            (self, err),
            (Corruption::BadMagic, FifoError::BadMagic(_))
                | (Corruption::BadVersion, FifoError::BadVersion(_))
                | (Corruption::OversizedRing, FifoError::BadRingSize(_))
                | (Corruption::ReadBeyondWrite, FifoError::BadIndices)
                | (Corruption::FillBeyondRing, FifoError::BadIndices)
                | (Corruption::BadRate, FifoError::BadFormat)
                | (Corruption::BadPeriod, FifoError::BadPeriod(0))
        )
    }
}

/// Rewrites one field of a ring's header so that it becomes invalid.
pub fn corrupt(region: &Region, which: Which, kind: Corruption) -> Result<(), SimError> {
    let at = region.ring_offset(which)?;
    if at % 8 != 0 || at + HEADER_SIZE as usize > region.len() {
        return Err(SimError::Misaligned(at as u64));
    }
    let field = |o: usize| region.atomic_u32(at + o);
    match kind {
        Corruption::BadMagic => field(off::MAGIC).store(0xdead_beef, Ordering::Release),
        Corruption::BadVersion => {
            // major is the low half of the little-endian version word
            let v = field(off::VERSION).load(Ordering::Acquire);
            let major = u32::from(VERSION_MAJOR + 1);
            field(off::VERSION).store((v & 0xffff_0000) | major, Ordering::Release)
        }
        Corruption::OversizedRing => {
            let room = region.len() - at - HEADER_SIZE as usize;
            let rb = u32::try_from((room + 1).next_power_of_two())
                .map_err(|_| SimError::Params("region too large to oversize the ring".into()))?;
            field(off::RING_BYTES).store(rb, Ordering::Release)
        }
        Corruption::ReadBeyondWrite => {
            let w = region
                .atomic_u64(at + off::WRITE_FRAMES)
                .load(Ordering::Acquire);
            region
                .atomic_u64(at + off::READ_FRAMES)
                .store(w.wrapping_add(1), Ordering::Release)
        }
        Corruption::FillBeyondRing => {
            let ring = region.validate_at(at).map_err(|err| SimError::Ring {
                ring: which.name(),
                err,
            })?;
            let r = region
                .atomic_u64(at + off::READ_FRAMES)
                .load(Ordering::Acquire);
            region
                .atomic_u64(at + off::WRITE_FRAMES)
                .store(r + ring.capacity() + 1, Ordering::Release)
        }
        Corruption::BadRate => field(off::RATE).store(12345, Ordering::Release),
        Corruption::BadPeriod => field(off::PERIOD_FRAMES).store(0, Ordering::Release),
    }
    Ok(())
}

/// One ring's header, decoded field by field, and its validation.
#[derive(Clone, Debug, Serialize)]
pub struct RingStatus {
    /// "mic" or "speaker".
    pub ring: &'static str,
    /// Offset of the header in the region.
    pub offset: usize,
    /// Raw magic.
    pub magic: u32,
    /// Major version.
    pub version_major: u16,
    /// Minor version.
    pub version_minor: u16,
    /// Header size.
    pub header_size: u32,
    /// Ring data bytes.
    pub ring_bytes: u32,
    /// Frames per period.
    pub period_frames: u32,
    /// Frames per second.
    pub rate: u32,
    /// Channels.
    pub channels: u16,
    /// ALSA format code.
    pub format: u16,
    /// Format name, if known.
    pub format_name: Option<&'static str>,
    /// 0 RTOS to Linux, 1 Linux to RTOS.
    pub direction: u32,
    /// Producer's counter.
    pub write_frames: u64,
    /// Consumer's counter.
    pub read_frames: u64,
    /// Producer state (0 stopped, 1 running).
    pub producer_state: u32,
    /// Consumer state.
    pub consumer_state: u32,
    /// Producer's overrun count.
    pub overruns: u32,
    /// Consumer's underrun count.
    pub underruns: u32,
    /// Producer heartbeat.
    pub producer_heartbeat: u32,
    /// Consumer heartbeat.
    pub consumer_heartbeat: u32,
    /// `None` when valid, else the `FifoError` from `Ring::validate` or `Ring::fill`.
    pub error: Option<String>,
    /// Capacity in frames, when valid.
    pub capacity_frames: Option<u64>,
    /// Frames in the ring, when valid.
    pub fill_frames: Option<u64>,
}

fn le16(h: &[u8], o: usize) -> u16 {
    u16::from_le_bytes([h[o], h[o + 1]])
}
fn le32(h: &[u8], o: usize) -> u32 {
    u32::from_le_bytes([h[o], h[o + 1], h[o + 2], h[o + 3]])
}
fn le64(h: &[u8], o: usize) -> u64 {
    u64::from(le32(h, o)) | (u64::from(le32(h, o + 4)) << 32)
}

/// Decodes and validates the header at region offset `at`.
pub fn ring_status(region: &Region, which: Which, at: usize) -> RingStatus {
    // A plain snapshot of the header (diagnostics; the counters may move).
    let h = region.header_at(at);
    let format = le16(&h, off::FORMAT);
    let mut s = RingStatus {
        ring: which.name(),
        offset: at,
        magic: le32(&h, off::MAGIC),
        version_major: le16(&h, off::VERSION),
        version_minor: le16(&h, off::VERSION + 2),
        header_size: le32(&h, off::HEADER_SIZE),
        ring_bytes: le32(&h, off::RING_BYTES),
        period_frames: le32(&h, off::PERIOD_FRAMES),
        rate: le32(&h, off::RATE),
        channels: le16(&h, off::CHANNELS),
        format,
        format_name: Format::from_alsa(u32::from(format)).map(Format::name),
        direction: le32(&h, off::DIRECTION),
        write_frames: le64(&h, off::WRITE_FRAMES),
        read_frames: le64(&h, off::READ_FRAMES),
        producer_state: le32(&h, off::PRODUCER_STATE),
        consumer_state: le32(&h, off::CONSUMER_STATE),
        overruns: le32(&h, off::OVERRUNS),
        underruns: le32(&h, off::UNDERRUNS),
        producer_heartbeat: le32(&h, off::PRODUCER_HEARTBEAT),
        consumer_heartbeat: le32(&h, off::CONSUMER_HEARTBEAT),
        error: None,
        capacity_frames: None,
        fill_frames: None,
    };
    match region.validate_at(at) {
        Err(e) => s.error = Some(format!("{e:?}")),
        Ok(ring) => {
            s.capacity_frames = Some(ring.capacity());
            match ring.fill(s.write_frames, s.read_frames) {
                Ok(f) => s.fill_frames = Some(f),
                Err(e) => s.error = Some(format!("{e:?}")),
            }
        }
    }
    s
}

/// Both rings' status; the speaker ring's is `None` when the microphone
/// ring is invalid (its offset is then unknown).
#[derive(Clone, Debug, Serialize)]
pub struct Status {
    /// Region size.
    pub region_bytes: usize,
    /// Microphone ring.
    pub mic: RingStatus,
    /// Speaker ring.
    pub speaker: Option<RingStatus>,
}

/// Decodes both headers.
pub fn status(region: &Region) -> Status {
    let mic = ring_status(region, Which::Mic, 0);
    let speaker = region
        .speaker_offset()
        .ok()
        .map(|at| ring_status(region, Which::Speaker, at));
    Status {
        region_bytes: region.len(),
        mic,
        speaker,
    }
}

impl fmt::Display for RingStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let dir = match self.direction {
            0 => "RTOS->Linux",
            1 => "Linux->RTOS",
            _ => "?",
        };
        writeln!(
            f,
            "{} ring at {:#x}: {}",
            self.ring,
            self.offset,
            match &self.error {
                None => "valid".to_string(),
                Some(e) => format!("INVALID: {e}"),
            }
        )?;
        writeln!(
            f,
            "  magic {:#010x}  version {}.{}  header {} B  ring {} B  direction {} ({dir})",
            self.magic,
            self.version_major,
            self.version_minor,
            self.header_size,
            self.ring_bytes,
            self.direction
        )?;
        writeln!(
            f,
            "  {} Hz  {} ch  format {} ({})  period {} frames",
            self.rate,
            self.channels,
            self.format,
            self.format_name.unwrap_or("unknown"),
            self.period_frames
        )?;
        let opt = |v: Option<u64>| v.map_or("-".to_string(), |v| v.to_string());
        writeln!(
            f,
            "  write_frames {}  read_frames {}  fill {} / {} frames",
            self.write_frames,
            self.read_frames,
            opt(self.fill_frames),
            opt(self.capacity_frames)
        )?;
        writeln!(
            f,
            "  producer: state {}  heartbeat {}  overruns {}",
            self.producer_state, self.producer_heartbeat, self.overruns
        )?;
        write!(
            f,
            "  consumer: state {}  heartbeat {}  underruns {}",
            self.consumer_state, self.consumer_heartbeat, self.underruns
        )
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "region: {:#x} bytes", self.region_bytes)?;
        writeln!(f, "{}", self.mic)?;
        match &self.speaker {
            Some(s) => write!(f, "{s}"),
            None => write!(
                f,
                "speaker ring: unknown (its offset follows from a valid mic ring)"
            ),
        }
    }
}
