// SPDX-License-Identifier: GPL-2.0
//! Memory shared with another core ([`SharedMem`]): the RTOS audio FIFO's
//! reserved-memory region, mapped with `memremap()` and accessed only
//! through bounds-checked volatile accesses and copies, plus the barriers
//! the FIFO protocol needs.
//!
//! The other core writes the region whenever it likes, so no Rust
//! reference to its bytes is ever made: every read is a volatile read or a
//! raw copy, at an offset checked against the mapping here, so whatever
//! the other core does, Linux never touches memory outside the region.

use crate::bindings;
use crate::safe::device::Region;
use crate::safe::sound::pcm::DmaBuffer;
use core::ptr::NonNull;
use kernel::error::{code::*, Result};

/// A mapping of a physical region shared with another core.
///
/// # Invariants
///
/// `base` maps `len` bytes (from `memremap`), unmapped on drop; nothing
/// forms a reference to them.
pub(crate) struct SharedMem {
    base: NonNull<u8>,
    len: usize,
}

// SAFETY: the mapping is used only through volatile accesses and raw
// copies, which are sound from any thread (the data is shared with another
// core anyway; the protocol's counters and barriers order it).
unsafe impl Send for SharedMem {}
// SAFETY: as above; no `&self` method hands out a reference into the mapping.
unsafe impl Sync for SharedMem {}

impl SharedMem {
    /// Maps `region`: write-back cached when the other core is coherent
    /// with Linux's caches (`cached`), else write-combining.
    pub(crate) fn map(region: &Region, cached: bool) -> Result<Self> {
        let len = usize::try_from(region.len).map_err(|_| EINVAL)?;
        if len == 0 {
            return Err(EINVAL);
        }
        let flags = if cached {
            bindings::SND_VOIP_MEMREMAP_WB
        } else {
            bindings::SND_VOIP_MEMREMAP_WC
        };
        // SAFETY: maps a physical range the device tree reserved for this
        // device (`no-map`: the kernel does not use it otherwise).
        let base = unsafe { bindings::memremap(region.start as _, len, flags as _) };
        let base = NonNull::new(base.cast::<u8>()).ok_or(ENOMEM)?;
        // INVARIANT: `memremap` mapped `len` bytes at `base`.
        Ok(SharedMem { base, len })
    }

    /// Bytes mapped.
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// The address of `[at, at + n)`, when it lies inside the mapping and
    /// `at` is aligned to `align`.
    fn range(&self, at: usize, n: usize, align: usize) -> Option<*mut u8> {
        let end = at.checked_add(n)?;
        if end > self.len || at % align != 0 {
            return None;
        }
        let p = self.base.as_ptr().wrapping_add(at);
        // The mapping is page aligned, so offset alignment is address alignment.
        (p as usize % align == 0).then_some(p)
    }

    /// The u32 at byte `at` (one volatile, single-copy-atomic read), if
    /// `at` is 4-aligned and inside the mapping.
    pub(crate) fn read_u32(&self, at: usize) -> Option<u32> {
        let p = self.range(at, 4, 4)?;
        // SAFETY: in the mapping and aligned (checked).
        Some(unsafe { core::ptr::read_volatile(p.cast::<u32>()) })
    }

    /// Writes the u32 at byte `at` (one volatile store); false when out of
    /// range or misaligned (nothing written).
    pub(crate) fn write_u32(&self, at: usize, v: u32) -> bool {
        let Some(p) = self.range(at, 4, 4) else {
            return false;
        };
        // SAFETY: in the mapping and aligned (checked).
        unsafe { core::ptr::write_volatile(p.cast::<u32>(), v) };
        true
    }

    /// The u64 at byte `at` (one volatile read), if 8-aligned and inside.
    pub(crate) fn read_u64(&self, at: usize) -> Option<u64> {
        let p = self.range(at, 8, 8)?;
        // SAFETY: in the mapping and aligned (checked).
        Some(unsafe { core::ptr::read_volatile(p.cast::<u64>()) })
    }

    /// Writes the u64 at byte `at` (one volatile store: both words at once
    /// on a 64-bit Linux); false when out of range or misaligned.
    pub(crate) fn write_u64(&self, at: usize, v: u64) -> bool {
        let Some(p) = self.range(at, 8, 8) else {
            return false;
        };
        // SAFETY: in the mapping and aligned (checked).
        unsafe { core::ptr::write_volatile(p.cast::<u64>(), v) };
        true
    }

    /// Copies the bytes at `at` into `out` (volatile byte reads); the part
    /// beyond the mapping is left as it is. Returns the bytes copied.
    pub(crate) fn read_bytes(&self, at: usize, out: &mut [u8]) -> usize {
        let n = self.len.saturating_sub(at).min(out.len());
        let Some(p) = self.range(at, n, 1) else {
            return 0;
        };
        for (i, b) in out.iter_mut().take(n).enumerate() {
            // SAFETY: `i < n`, inside the mapping (checked).
            *b = unsafe { core::ptr::read_volatile(p.wrapping_add(i)) };
        }
        n
    }

    /// Copies `len` bytes from byte `at` of the mapping into `dst` at byte
    /// `to`; `ERANGE` (nothing copied) when either range leaves its memory.
    pub(crate) fn copy_to(&self, at: usize, dst: &DmaBuffer<'_>, to: usize, len: usize) -> Result {
        let (Some(s), Some(d)) = (self.range(at, len, 1), dst.range(to, len)) else {
            return Err(ERANGE);
        };
        // SAFETY: both ranges checked; shared memory and an ALSA buffer
        // never overlap.
        unsafe { core::ptr::copy_nonoverlapping(s, d, len) };
        Ok(())
    }

    /// Copies `len` bytes from `src` at byte `from` into the mapping at
    /// byte `at`; `ERANGE` (nothing copied) when either range leaves its memory.
    pub(crate) fn copy_from(
        &self,
        at: usize,
        src: &DmaBuffer<'_>,
        from: usize,
        len: usize,
    ) -> Result {
        let (Some(d), Some(s)) = (self.range(at, len, 1), src.range(from, len)) else {
            return Err(ERANGE);
        };
        // SAFETY: as in `copy_to`.
        unsafe { core::ptr::copy_nonoverlapping(s, d, len) };
        Ok(())
    }

    /// Writes silence of ALSA `format` for `samples` samples at byte `at`.
    pub(crate) fn silence(&self, format: u32, at: usize, samples: usize) -> Result {
        let bytes = crate::safe::sound::pcm::sample_bytes(format)?
            .checked_mul(samples)
            .ok_or(ERANGE)?;
        let d = self.range(at, bytes, 1).ok_or(ERANGE)?;
        // SAFETY: the range holds `samples` samples of `format` (checked).
        unsafe { bindings::snd_pcm_format_set_silence(format as _, d.cast(), samples as _) };
        Ok(())
    }
}

impl Drop for SharedMem {
    fn drop(&mut self) {
        // SAFETY: `base` is the mapping made in `map`, unmapped once.
        unsafe { bindings::memunmap(self.base.as_ptr().cast()) };
    }
}

/// Orders earlier reads of shared memory before later ones (`dma_rmb()`).
pub(crate) fn dma_rmb() {
    // SAFETY: a barrier has no preconditions.
    unsafe { bindings::snd_voip_dma_rmb() };
}

/// Orders earlier writes to shared memory before later ones (`dma_wmb()`).
pub(crate) fn dma_wmb() {
    // SAFETY: a barrier has no preconditions.
    unsafe { bindings::snd_voip_dma_wmb() };
}

/// A full barrier (`mb()`).
pub(crate) fn mb() {
    // SAFETY: a barrier has no preconditions.
    unsafe { bindings::snd_voip_mb() };
}
