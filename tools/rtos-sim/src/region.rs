//! The shared-memory window: a `MAP_SHARED` mapping of part of a file (on
//! the emulated board, the guest RAM file qemu shares), and typed access to
//! the two rings in it.
//!
//! The other side of the window is another process (qemu running Linux), so
//! the mapping is only ever touched through raw pointers: the counters as
//! atomics, the audio with byte copies whose ordering the counters'
//! acquire/release publish.

use std::fs::OpenOptions;
use std::path::Path;
use std::ptr;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

use memmap2::{MmapMut, MmapOptions};
use snd_voip_logic::fifo::{self, off, FifoError, Ring, HEADER_SIZE};

use crate::SimError;

/// Default window offset in the guest RAM file: guest physical 0x5f000000,
/// RAM at 0x40000000.
pub const DEFAULT_OFFSET: u64 = 0x1f00_0000;
/// Default window size (the DT reserved-memory node).
pub const DEFAULT_SIZE: usize = 0x1_0000;

/// Which of the two rings.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Which {
    /// Microphone: RTOS to Linux, at region offset 0; the simulator produces.
    Mic,
    /// Speaker: Linux to RTOS, after the microphone ring; the simulator consumes.
    Speaker,
}

impl Which {
    /// "mic" or "speaker".
    pub fn name(self) -> &'static str {
        match self {
            Which::Mic => "mic",
            Which::Speaker => "speaker",
        }
    }
}

/// A mapped window of a file.
pub struct Region {
    /// Keeps the mapping alive; all access goes through `base`.
    _map: MmapMut,
    base: *mut u8,
    len: usize,
}

impl Region {
    /// Maps `size` bytes at `offset` of `path`, shared, read-write. The file
    /// must already be at least `offset + size` bytes long.
    pub fn open(path: &Path, offset: u64, size: usize) -> Result<Region, SimError> {
        if !offset.is_multiple_of(8) {
            return Err(SimError::Misaligned(offset));
        }
        if size < HEADER_SIZE as usize {
            return Err(SimError::Params(format!(
                "region size {size:#x} is smaller than one ring header ({HEADER_SIZE} bytes)"
            )));
        }
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(path)
            .map_err(|e| SimError::io(path, e))?;
        let len = file.metadata().map_err(|e| SimError::io(path, e))?.len();
        if offset.checked_add(size as u64).is_none_or(|end| end > len) {
            return Err(SimError::OutsideFile {
                path: path.to_owned(),
                offset,
                size,
                len,
            });
        }
        // SAFETY: the file is opened read-write and the window lies inside
        // it (checked above). Another process writes the same pages; this
        // crate never forms references to the mapped bytes other than
        // atomics, it copies them through raw pointers.
        let mut map = unsafe { MmapOptions::new().offset(offset).len(size).map_mut(&file) }
            .map_err(|e| SimError::io(path, e))?;
        let base = map.as_mut_ptr();
        Ok(Region {
            _map: map,
            base,
            len: size,
        })
    }

    /// Window size in bytes.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Always false: a region holds at least one header.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    fn base(&self) -> *mut u8 {
        self.base
    }

    /// Copies `out.len()` bytes from region offset `at`. Panics only if
    /// the range is outside the window (a bug in this crate).
    pub fn read(&self, at: usize, out: &mut [u8]) {
        let end = at.checked_add(out.len()).expect("region offset overflow");
        assert!(end <= self.len, "read {at:#x}..{end:#x} outside the region");
        // SAFETY: in bounds (checked); plain bytes, no reference formed.
        unsafe { ptr::copy_nonoverlapping(self.base().add(at), out.as_mut_ptr(), out.len()) }
    }

    /// Copies `data` to region offset `at`. Panics only if the range is
    /// outside the window (a bug in this crate).
    pub fn write(&self, at: usize, data: &[u8]) {
        let end = at.checked_add(data.len()).expect("region offset overflow");
        assert!(
            end <= self.len,
            "write {at:#x}..{end:#x} outside the region"
        );
        // SAFETY: in bounds (checked); the mapping is writable.
        unsafe { ptr::copy_nonoverlapping(data.as_ptr(), self.base().add(at), data.len()) }
    }

    /// The u64 at `at` as an atomic. Panics if out of bounds or misaligned.
    pub fn atomic_u64(&self, at: usize) -> &AtomicU64 {
        assert!(at + 8 <= self.len && (self.base() as usize + at).is_multiple_of(8));
        // SAFETY: in bounds and aligned (checked); accessed only atomically.
        unsafe { &*(self.base().add(at) as *const AtomicU64) }
    }

    /// The u32 at `at` as an atomic. Panics if out of bounds or misaligned.
    pub fn atomic_u32(&self, at: usize) -> &AtomicU32 {
        assert!(at + 4 <= self.len && (self.base() as usize + at).is_multiple_of(4));
        // SAFETY: in bounds and aligned (checked); accessed only atomically.
        unsafe { &*(self.base().add(at) as *const AtomicU32) }
    }

    /// Offset of the speaker ring: after the microphone ring, which must be
    /// valid for it to be known.
    pub fn speaker_offset(&self) -> Result<usize, SimError> {
        let mic = self
            .validate_at(0)
            .map_err(|err| SimError::Ring { ring: "mic", err })?;
        Ok(fifo::second_ring_offset(&mic))
    }

    /// Offset of a ring in the region.
    pub fn ring_offset(&self, which: Which) -> Result<usize, SimError> {
        match which {
            Which::Mic => Ok(0),
            Which::Speaker => self.speaker_offset(),
        }
    }

    /// The 256 header bytes at `at` (zeros beyond the window).
    pub fn header_at(&self, at: usize) -> [u8; HEADER_SIZE as usize] {
        let mut h = [0u8; HEADER_SIZE as usize];
        let n = self.len.saturating_sub(at).min(h.len());
        if n > 0 {
            self.read(at, &mut h[..n]);
        }
        h
    }

    /// Validates the ring whose header is at `at`, against the rest of the
    /// window from there.
    pub fn validate_at(&self, at: usize) -> Result<Ring, FifoError> {
        if at >= self.len {
            return Err(FifoError::RegionTooSmall);
        }
        Ring::validate(&self.header_at(at), self.len - at)
    }

    /// A validated ring, ready for I/O.
    pub fn ring(&self, which: Which) -> Result<RingIo<'_>, SimError> {
        let at = self.ring_offset(which)?;
        let ring = self.validate_at(at).map_err(|err| SimError::Ring {
            ring: which.name(),
            err,
        })?;
        if at % 8 != 0 {
            return Err(SimError::Misaligned(at as u64));
        }
        Ok(RingIo {
            region: self,
            at,
            ring,
        })
    }
}

/// One validated ring in a region: counters and data access.
pub struct RingIo<'a> {
    region: &'a Region,
    at: usize,
    ring: Ring,
}

impl RingIo<'_> {
    /// The validated description.
    pub fn ring(&self) -> &Ring {
        &self.ring
    }

    /// Offset of the header in the region.
    pub fn offset(&self) -> usize {
        self.at
    }

    /// A u32 header field.
    pub fn u32(&self, field: usize) -> &AtomicU32 {
        self.region.atomic_u32(self.at + field)
    }

    /// A u64 header field (the counters).
    pub fn u64(&self, field: usize) -> &AtomicU64 {
        self.region.atomic_u64(self.at + field)
    }

    /// The producer's free-running frame counter.
    pub fn write_frames(&self) -> &AtomicU64 {
        self.region.atomic_u64(self.at + off::WRITE_FRAMES)
    }

    /// The consumer's free-running frame counter.
    pub fn read_frames(&self) -> &AtomicU64 {
        self.region.atomic_u64(self.at + off::READ_FRAMES)
    }

    /// Fill from the two counters (acquire loads), or why they are impossible.
    pub fn fill(&self) -> Result<u64, FifoError> {
        let w = self.write_frames().load(Ordering::Acquire);
        let r = self.read_frames().load(Ordering::Acquire);
        self.ring.fill(w, r)
    }

    /// Copies whole frames starting at frame number `frame` into the ring's
    /// data area, wrapping at its end. `data` is at most the ring size.
    pub fn put(&self, frame: u64, data: &[u8]) {
        let rb = self.ring.ring_bytes;
        assert!(data.len() <= rb);
        let pos = self.ring.byte_offset(frame);
        let first = data.len().min(rb - pos);
        let base = self.at + self.ring.data_offset;
        self.region.write(base + pos, &data[..first]);
        self.region.write(base, &data[first..]);
    }

    /// Copies whole frames starting at frame number `frame` out of the ring.
    pub fn get(&self, frame: u64, out: &mut [u8]) {
        let rb = self.ring.ring_bytes;
        assert!(out.len() <= rb);
        let pos = self.ring.byte_offset(frame);
        let first = out.len().min(rb - pos);
        let base = self.at + self.ring.data_offset;
        let (a, b) = out.split_at_mut(first);
        self.region.read(base + pos, a);
        self.region.read(base, b);
    }
}
