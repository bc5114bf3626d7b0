// SPDX-License-Identifier: GPL-2.0
//! The RTOS audio FIFO: the shared-memory region named by the device-tree
//! node `snd-voip,rtos-fifo`, holding the microphone ring (RTOS to Linux)
//! and, right after it, the speaker ring (Linux to RTOS). Layout and rules:
//! `logic/fifo.rs`, `include/snd_voip_fifo.h`, ARCHITECTURE.md.
//!
//! This file is the only one that touches the shared memory. Every access is
//! a volatile access at an offset checked against the validated layout, so
//! whatever the other core writes, Linux never reads or writes outside the
//! region: a corrupt header refuses the probe, corrupt counters at run time
//! give silence and a log line.

use crate::bindings;
use crate::fifo::{self, off, CaptureSource, FifoError, PlaybackSink, Ring};
use crate::format::MAX_SUBSTREAMS;
use crate::ring::Segments;
use core::ffi::CStr;
use core::fmt::Write;
use core::sync::atomic::{AtomicBool, AtomicI32, AtomicU32, AtomicU64, AtomicU8, Ordering};
use kernel::ffi::c_void;
use kernel::prelude::*;

/// The errno a ring error is reported with (README, "RTOS FIFO errors").
pub(crate) fn errno(e: FifoError) -> Error {
    match e {
        FifoError::RegionTooSmall => ENOSPC,
        FifoError::BadMagic(_) => ENODEV,
        // EPROTO: not among the kernel crate's named codes on 6.12.
        FifoError::BadVersion(_) => Error::from_errno(-71),
        FifoError::BadHeaderSize(_) | FifoError::BadRingSize(_) => EFBIG,
        FifoError::BadFormat | FifoError::BadPeriod(_) | FifoError::BadDirection(_) => EINVAL,
        FifoError::BadIndices => ERANGE,
    }
}

/// A line of text that explains a ring error.
struct Why(FifoError);

impl core::fmt::Display for Why {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self.0 {
            FifoError::RegionTooSmall => write!(f, "region smaller than a ring header"),
            FifoError::BadMagic(m) => write!(
                f,
                "bad magic {:#010x} (expected {:#010x}): ring not initialised by the RTOS",
                m,
                fifo::MAGIC
            ),
            FifoError::BadVersion(v) => write!(
                f,
                "protocol version {} not supported (this driver speaks {})",
                v,
                fifo::VERSION_MAJOR
            ),
            FifoError::BadHeaderSize(s) => write!(f, "header size {} does not fit the region", s),
            FifoError::BadRingSize(s) => write!(
                f,
                "ring of {} bytes is not a power of two or does not fit the region",
                s
            ),
            FifoError::BadFormat => write!(f, "format, rate or channels not supported"),
            FifoError::BadPeriod(p) => write!(f, "period of {} frames out of range", p),
            FifoError::BadDirection(d) => write!(f, "wrong direction {}", d),
            FifoError::BadIndices => {
                write!(f, "read counter ahead of write, or fill beyond the ring")
            }
        }
    }
}

/// One ring of the region.
///
/// # Invariants
///
/// `hdr` points to a 256-byte header and `data` to `ring.ring_bytes` bytes,
/// both inside a mapping that stays valid while the `Port` lives (the
/// driver's devm mapping, released after `remove`). `hdr` is 64-byte aligned
/// relative to the region start, which the mapping aligns to a page.
pub(crate) struct Port {
    hdr: *mut u8,
    data: *mut u8,
    /// The layout validated at probe.
    pub(crate) ring: Ring,
    /// "microphone" or "speaker", for log lines.
    pub(crate) name: &'static str,
    /// 0 when free, else 1 + the index of the cable that uses the ring.
    owner: AtomicU32,
    /// The shift the owner's clock runs with, for /proc.
    pub(crate) shift_ppm: AtomicI32,
    /// Fill seen by the owner at its last tick, for /proc.
    pub(crate) last_fill: AtomicU64,
    /// Frames Linux could not move (underruns as consumer, overruns as producer).
    pub(crate) xruns: AtomicU32,
    /// Set when the counters became impossible; cleared at the next start.
    pub(crate) broken: AtomicBool,
    /// Linux time and the RTOS side's counter (write for the microphone,
    /// read for the speaker) when the owner started: the RTOS clock is
    /// measured against Linux's from there.
    since_ns: AtomicU64,
    since_frames: AtomicU64,
}

// SAFETY: the pointers are into a shared mapping only accessed with volatile
// operations and atomics; the `Port` is shared between the timer callbacks
// and process context by design.
unsafe impl Send for Port {}
// SAFETY: as above.
unsafe impl Sync for Port {}

impl Port {
    fn u32_at(&self, o: usize) -> u32 {
        debug_assert!(o + 4 <= fifo::HEADER_SIZE as usize && o % 4 == 0);
        // SAFETY: by the invariant `hdr` has 256 bytes; `o` is a field offset
        // below 256 and 4-aligned, and the header is 64-byte aligned.
        unsafe { core::ptr::read_volatile(self.hdr.add(o & 0xfc).cast::<u32>()) }
    }

    fn set_u32(&self, o: usize, v: u32) {
        // SAFETY: as in `u32_at`.
        unsafe { core::ptr::write_volatile(self.hdr.add(o & 0xfc).cast::<u32>(), v) }
    }

    fn u64_once(&self, o: usize) -> u64 {
        // SAFETY: as in `u32_at`; the counters are 8-aligned (offsets 64, 128).
        unsafe { core::ptr::read_volatile(self.hdr.add(o & 0xf8).cast::<u64>()) }
    }

    /// Reads a 64-bit counter the other side may write as two 32-bit halves:
    /// re-read until two reads agree.
    fn u64_at(&self, o: usize) -> u64 {
        let mut v = self.u64_once(o);
        for _ in 0..4 {
            let again = self.u64_once(o);
            if again == v {
                break;
            }
            v = again;
        }
        v
    }

    fn set_u64(&self, o: usize, v: u64) {
        // SAFETY: as in `u64_once`.
        unsafe { core::ptr::write_volatile(self.hdr.add(o & 0xf8).cast::<u64>(), v) }
    }

    /// The two counters and the fill they imply; an error for counters no
    /// honest pair of sides can produce.
    pub(crate) fn counters(&self) -> Result<(u64, u64, u64), FifoError> {
        let write = self.u64_at(off::WRITE_FRAMES);
        let read = self.u64_at(off::READ_FRAMES);
        let fill = self.ring.fill(write, read)?;
        Ok((write, read, fill))
    }

    /// Re-reads the header: the RTOS may have re-initialised the ring since
    /// the probe. Anything but the layout validated then is refused.
    pub(crate) fn revalidate(&self, region_left: usize) -> Result<(), FifoError> {
        let mut copy = [0u8; fifo::HEADER_SIZE as usize];
        for (i, w) in copy.chunks_exact_mut(4).enumerate() {
            w.copy_from_slice(&self.u32_at(i * 4).to_le_bytes());
        }
        let ring = Ring::validate(&copy, region_left)?;
        if ring != self.ring {
            // A new layout needs a new probe: reload the module.
            return Err(FifoError::BadRingSize(ring.ring_bytes as u32));
        }
        self.counters().map(|_| ())
    }

    /// Takes the ring for cable `cable`; false when another cable has it.
    pub(crate) fn claim(&self, cable: u32) -> bool {
        self.owner
            .compare_exchange(0, cable + 1, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
    }

    /// Gives the ring back if cable `cable` holds it.
    pub(crate) fn release(&self, cable: u32) {
        let _ = self
            .owner
            .compare_exchange(cable + 1, 0, Ordering::AcqRel, Ordering::Acquire);
    }

    /// The cable that holds the ring, if any.
    pub(crate) fn owner(&self) -> Option<u32> {
        self.owner.load(Ordering::Acquire).checked_sub(1)
    }

    /// Sets Linux's state word (consumer state on the microphone ring,
    /// producer state on the speaker ring).
    pub(crate) fn set_linux_state(&self, running: bool) {
        let o = if self.ring.to_linux {
            off::CONSUMER_STATE
        } else {
            off::PRODUCER_STATE
        };
        self.set_u32(o, u32::from(running));
    }

    /// Bumps Linux's heartbeat.
    pub(crate) fn heartbeat(&self) {
        let o = if self.ring.to_linux {
            off::CONSUMER_HEARTBEAT
        } else {
            off::PRODUCER_HEARTBEAT
        };
        self.set_u32(o, self.u32_at(o).wrapping_add(1));
    }

    /// Adds `n` to Linux's xrun counter in the header (underruns as the
    /// microphone's consumer, overruns as the speaker's producer).
    pub(crate) fn count_xrun(&self, n: u32) {
        let o = if self.ring.to_linux {
            off::UNDERRUNS
        } else {
            off::OVERRUNS
        };
        self.set_u32(o, self.u32_at(o).wrapping_add(n));
        self.xruns.fetch_add(n, Ordering::Relaxed);
    }

    /// Consumer side: publishes the new read counter once the frames before
    /// it have been copied out.
    pub(crate) fn publish_read(&self, read: u64) {
        // Our reads of the data complete before the producer may reuse it.
        // SAFETY: a barrier has no preconditions.
        unsafe { bindings::snd_voip_mb() };
        self.set_u64(off::READ_FRAMES, read);
    }

    /// Producer side: publishes the new write counter once the frames
    /// before it are in the ring.
    pub(crate) fn publish_write(&self, write: u64) {
        // SAFETY: a barrier has no preconditions.
        unsafe { bindings::snd_voip_dma_wmb() };
        self.set_u64(off::WRITE_FRAMES, write);
    }

    /// Copies `count` frames from the ring, starting at frame `read`, into
    /// the ALSA ring buffer `dst` of `dst_frames` frames at frame `dst_pos`.
    ///
    /// # Safety
    ///
    /// `dst` must be valid for writes of `dst_frames` frames of this ring's
    /// frame size; `count` must not exceed the fill seen by `counters`
    /// (checked there), and the caller must have read the write counter
    /// (which `counters` does) before calling this.
    pub(crate) unsafe fn copy_out(
        &self,
        read: u64,
        dst: *mut u8,
        dst_frames: usize,
        dst_pos: u64,
        count: u64,
    ) {
        // The data is read after the write counter that published it.
        // SAFETY: a barrier has no preconditions.
        unsafe { bindings::snd_voip_dma_rmb() };
        let fb = self.ring.params.frame_bytes();
        let cap = self.ring.capacity() as usize;
        for seg in Segments::new(read, cap, dst_pos, dst_frames, count) {
            // SAFETY: `Segments` keeps `src + len <= cap` (so inside the data
            // area by the invariant) and `dst + len <= dst_frames` (inside
            // the caller's buffer); the two never overlap (shared memory vs
            // an ALSA buffer).
            unsafe {
                core::ptr::copy_nonoverlapping(
                    self.data.add(seg.src * fb),
                    dst.add(seg.dst * fb),
                    seg.len * fb,
                )
            };
        }
    }

    /// Copies `count` frames from the ALSA ring buffer `src` (`src_frames`
    /// frames, from frame `src_pos`) into the ring at frame `write`, or
    /// silence when `src` is null.
    ///
    /// # Safety
    ///
    /// `src`, when not null, must be valid for reads of `src_frames` frames
    /// of this ring's frame size; `count` must not exceed the room seen by
    /// `counters`.
    pub(crate) unsafe fn copy_in(
        &self,
        write: u64,
        src: *const u8,
        src_frames: usize,
        src_pos: u64,
        count: u64,
    ) {
        // The consumer's read counter was read before we overwrite what it freed.
        // SAFETY: a barrier has no preconditions.
        unsafe { bindings::snd_voip_mb() };
        let fb = self.ring.params.frame_bytes();
        let cap = self.ring.capacity() as usize;
        if src.is_null() {
            for seg in crate::ring::ring_pieces(write, cap, count) {
                // SAFETY: the piece lies in the data area (see `ring_pieces`).
                unsafe {
                    crate::sound::write_silence(
                        self.ring.params.format.to_alsa(),
                        self.data.add(seg.dst * fb),
                        seg.len * self.ring.params.channels as usize,
                    )
                };
            }
            return;
        }
        for seg in Segments::new(src_pos, src_frames, write, cap, count) {
            // SAFETY: as in `copy_out`, with the roles swapped.
            unsafe {
                core::ptr::copy_nonoverlapping(
                    src.add(seg.src * fb),
                    self.data.add(seg.dst * fb),
                    seg.len * fb,
                )
            };
        }
    }

    /// The RTOS side's counter: frames the RTOS produced (microphone) or
    /// consumed (speaker).
    fn rtos_frames(&self) -> u64 {
        if self.ring.to_linux {
            self.u64_at(off::WRITE_FRAMES)
        } else {
            self.u64_at(off::READ_FRAMES)
        }
    }

    /// Starts measuring the RTOS clock against Linux's at `now_ns`.
    pub(crate) fn measure_from(&self, now_ns: u64) {
        self.since_frames
            .store(self.rtos_frames(), Ordering::Relaxed);
        self.since_ns.store(now_ns, Ordering::Relaxed);
    }

    /// The RTOS clock against Linux's since the owner started, in ppm, how
    /// far off that may be (one RTOS period), and the seconds measured;
    /// `None` in the first second.
    pub(crate) fn rtos_offset(&self, now_ns: u64) -> Option<(i32, u32, u64)> {
        let dt = now_ns.saturating_sub(self.since_ns.load(Ordering::Relaxed));
        let frames = self
            .rtos_frames()
            .saturating_sub(self.since_frames.load(Ordering::Relaxed));
        let ppm = crate::follow::rate_offset_ppm(frames, dt, self.ring.params.rate.get())?;
        let tol = crate::follow::rate_offset_tolerance_ppm(frames, self.ring.period_frames.into());
        Some((ppm, tol, dt / 1_000_000_000))
    }

    /// Reports a ring that became unusable at run time, once per start.
    pub(crate) fn mark_broken(&self, e: FifoError) {
        if !self.broken.swap(true, Ordering::AcqRel) {
            pr_err!(
                "rtos: {} ring: {}; giving silence until the stream restarts\n",
                self.name,
                Why(e)
            );
        }
    }
}

/// The mapped region and its two rings, plus the routing controls.
pub(crate) struct Rtos {
    /// Physical address and size of the region, for /proc.
    phys: u64,
    len: usize,
    /// The microphone ring (RTOS to Linux).
    pub(crate) mic: Port,
    /// The speaker ring (Linux to RTOS).
    pub(crate) spk: Port,
    capture_source: [AtomicU8; MAX_SUBSTREAMS as usize],
    playback_sink: [AtomicU8; MAX_SUBSTREAMS as usize],
    /// The bound of every follower (module parameter `rtos_max_shift_ppm`).
    pub(crate) max_shift_ppm: i32,
}

/// Copies the first bytes of a ring header out of the region (zero-padded
/// when the region ends first).
///
/// # Safety
///
/// `base` must be valid for reads of `len` bytes.
unsafe fn read_header(base: *const u8, len: usize) -> [u8; fifo::HEADER_SIZE as usize] {
    let mut h = [0u8; fifo::HEADER_SIZE as usize];
    for (i, b) in h.iter_mut().enumerate().take(len) {
        // SAFETY: `i < len`, guaranteed readable by the caller.
        *b = unsafe { core::ptr::read_volatile(base.add(i)) };
    }
    h
}

/// Validates the ring at byte `at` of the region `[base, base + len)`.
///
/// # Safety
///
/// `base` must be valid for reads of `len` bytes.
unsafe fn validate_at(
    base: *mut u8,
    len: usize,
    at: usize,
    to_linux: bool,
) -> Result<Ring, FifoError> {
    if at % 64 != 0 {
        // The second header must start on a cache line (header_size is a
        // multiple of 64 in every valid layout).
        return Err(FifoError::BadHeaderSize(at as u32));
    }
    if at > len {
        return Err(FifoError::RegionTooSmall);
    }
    let left = len - at;
    // SAFETY: `at <= len`, so `[base + at, base + len)` is readable.
    let h = unsafe { read_header(base.add(at), left.min(fifo::HEADER_SIZE as usize)) };
    let ring = Ring::validate(&h, left)?;
    if ring.to_linux != to_linux {
        return Err(FifoError::BadDirection(u32::from(!to_linux)));
    }
    Ok(ring)
}

impl Rtos {
    /// Maps the region of the device's `memory-region` and validates both
    /// rings. Every refusal is logged with its reason.
    ///
    /// # Safety
    ///
    /// `dev` must be the live device being probed.
    pub(crate) unsafe fn probe(dev: *mut bindings::device) -> Result<Rtos> {
        // SAFETY: reads a module parameter, read-only after load.
        let max_shift_ppm = unsafe { bindings::snd_voip_param_rtos_max_shift_ppm() };
        if !(0..=crate::follow::MAX_FOLLOW_LIMIT_PPM).contains(&max_shift_ppm) {
            pr_err!(
                "rtos_max_shift_ppm={} is out of range 0..{}\n",
                max_shift_ppm,
                crate::follow::MAX_FOLLOW_LIMIT_PPM
            );
            return Err(EINVAL);
        }
        let mut res = bindings::resource::default();
        // SAFETY: `dev` is live (caller); `res` is a local.
        let ret = unsafe { bindings::snd_voip_of_memory_region(dev, &mut res) };
        if ret < 0 {
            pr_err!(
                "rtos: no usable memory-region in the device tree node (error {})\n",
                ret
            );
            return Err(Error::from_errno(ret));
        }
        let phys = res.start;
        let len = res
            .end
            .checked_sub(res.start)
            .and_then(|l| l.checked_add(1));
        let len = match len.and_then(|l| usize::try_from(l).ok()) {
            Some(l) if l > 0 => l,
            _ => {
                pr_err!("rtos: memory-region has an empty or invalid size\n");
                return Err(EINVAL);
            }
        };
        // SAFETY: `dev` is live; the property name is a C string.
        let cached = unsafe { bindings::snd_voip_of_bool(dev, c"snd-voip,cached".as_ptr().cast()) };
        let flags = if cached {
            bindings::SND_VOIP_MEMREMAP_WB
        } else {
            bindings::SND_VOIP_MEMREMAP_WC
        };
        // SAFETY: `dev` is live; the mapping is released by devres after
        // the driver unbinds (after `remove`, which drops this `Rtos`).
        let base = unsafe { bindings::devm_memremap(dev, phys, len, flags) }.cast::<u8>();
        if base.is_null() || crate::is_err_ptr(base) {
            let err = if base.is_null() {
                -12
            } else {
                base as isize as i32
            };
            pr_err!("rtos: cannot map {:#x}+{:#x} (error {})\n", phys, len, err);
            return Err(Error::from_errno(err));
        }
        let check = |what: &str, r: Result<Ring, FifoError>| -> Result<Ring> {
            r.map_err(|e| {
                pr_err!(
                    "rtos: {} ring at {:#x} (region of {} bytes): {}: error {}\n",
                    what,
                    phys,
                    len,
                    Why(e),
                    errno(e).to_errno()
                );
                errno(e)
            })
        };
        // SAFETY: `base` maps `len` bytes.
        let mic = check("microphone", unsafe { validate_at(base, len, 0, true) })?;
        let at = fifo::second_ring_offset(&mic);
        // SAFETY: as above.
        let spk = check("speaker", unsafe { validate_at(base, len, at, false) })?;
        let port = |at: usize, ring: Ring, name: &'static str| Port {
            // SAFETY: validation checked header and data fit in `len` bytes from `at`.
            hdr: unsafe { base.add(at) },
            // SAFETY: as above.
            data: unsafe { base.add(at + ring.data_offset) },
            ring,
            name,
            owner: AtomicU32::new(0),
            shift_ppm: AtomicI32::new(0),
            last_fill: AtomicU64::new(0),
            xruns: AtomicU32::new(0),
            broken: AtomicBool::new(false),
            since_ns: AtomicU64::new(0),
            since_frames: AtomicU64::new(0),
        };
        // INVARIANT: both rings were validated against the mapped length.
        let rtos = Rtos {
            phys,
            len,
            mic: port(0, mic, "microphone"),
            spk: port(at, spk, "speaker"),
            capture_source: [const { AtomicU8::new(CaptureSource::Rtos as u8) };
                MAX_SUBSTREAMS as usize],
            playback_sink: [const { AtomicU8::new(PlaybackSink::Rtos as u8) };
                MAX_SUBSTREAMS as usize],
            max_shift_ppm,
        };
        for p in [&rtos.mic, &rtos.spk] {
            if let Err(e) = p.counters() {
                return Err(check(p.name, Err(e)).err().unwrap_or(EINVAL));
            }
        }
        rtos.set_defaults(dev)?;
        pr_info!(
            "rtos: FIFO at {:#x}+{:#x}: microphone {} Hz {} ch {}, {} frames; speaker {} Hz {} ch {}, {} frames\n",
            phys,
            len,
            mic.params.rate.get(),
            mic.params.channels,
            mic.params.format.name(),
            mic.capacity(),
            spk.params.rate.get(),
            spk.params.channels,
            spk.params.format.name(),
            spk.capacity()
        );
        Ok(rtos)
    }

    /// Sets the controls' defaults: module parameter, else device tree, else RTOS.
    fn set_defaults(&self, dev: *mut bindings::device) -> Result {
        // SAFETY: the getters read module parameters (read-only after load);
        // `dev` is live during probe; the property names are C strings.
        let (pc, pp, dc, dp) = unsafe {
            (
                bindings::snd_voip_param_capture_source(),
                bindings::snd_voip_param_playback_sink(),
                bindings::snd_voip_of_string(dev, c"snd-voip,capture-source".as_ptr().cast()),
                bindings::snd_voip_of_string(dev, c"snd-voip,playback-sink".as_ptr().cast()),
            )
        };
        let text = |p: *const kernel::ffi::c_char| -> Option<&[u8]> {
            if p.is_null() {
                None
            } else {
                // SAFETY: module parameters and DT strings are NUL-terminated
                // and live as long as the module and the device.
                Some(unsafe { CStr::from_ptr(p.cast()) }.to_bytes())
            }
        };
        let src = match text(pc).or(text(dc)) {
            None => CaptureSource::Rtos,
            Some(s) => CaptureSource::parse(s).ok_or_else(|| {
                pr_err!("rtos: capture source must be bridge or rtos\n");
                EINVAL
            })?,
        };
        let sink = match text(pp).or(text(dp)) {
            None => PlaybackSink::Rtos,
            Some(s) => PlaybackSink::parse(s).ok_or_else(|| {
                pr_err!("rtos: playback sink must be bridge, rtos or both\n");
                EINVAL
            })?,
        };
        for i in 0..MAX_SUBSTREAMS as usize {
            self.capture_source[i].store(src as u8, Ordering::Relaxed);
            self.playback_sink[i].store(sink as u8, Ordering::Relaxed);
        }
        Ok(())
    }

    /// The "Capture Source" of substream `n`.
    pub(crate) fn capture_source(&self, n: usize) -> CaptureSource {
        let v = self
            .capture_source
            .get(n)
            .map_or(0, |a| a.load(Ordering::Acquire));
        CaptureSource::from_index(u32::from(v)).unwrap_or(CaptureSource::Bridge)
    }

    /// The "Playback Sink" of substream `n`.
    pub(crate) fn playback_sink(&self, n: usize) -> PlaybackSink {
        let v = self
            .playback_sink
            .get(n)
            .map_or(0, |a| a.load(Ordering::Acquire));
        PlaybackSink::from_index(u32::from(v)).unwrap_or(PlaybackSink::Bridge)
    }

    /// Bytes of the region from the start of `port`'s header to the end.
    pub(crate) fn left_from(&self, port: &Port) -> usize {
        let at = if core::ptr::eq(port, &self.mic) {
            0
        } else {
            fifo::second_ring_offset(&self.mic.ring)
        };
        self.len.saturating_sub(at)
    }
}

/// A routing choice with one value per substream, kept in the `Rtos`:
/// "Capture Source" ([`CaptureSource`]) and "Playback Sink" ([`PlaybackSink`]).
pub(crate) trait Route: Sized {
    /// The control's item names, in value order.
    const ITEMS: &'static [&'static CStr];
    /// The choice for an item index, if there is one.
    fn from_index(i: u32) -> Option<Self>;
    /// Where the per-substream values live.
    fn slots(rtos: &Rtos) -> &[AtomicU8; MAX_SUBSTREAMS as usize];
}

impl Route for CaptureSource {
    const ITEMS: &'static [&'static CStr] = &[c"Bridge", c"RTOS"];
    fn from_index(i: u32) -> Option<Self> {
        CaptureSource::from_index(i)
    }
    fn slots(rtos: &Rtos) -> &[AtomicU8; MAX_SUBSTREAMS as usize] {
        &rtos.capture_source
    }
}

impl Route for PlaybackSink {
    const ITEMS: &'static [&'static CStr] = &[c"Bridge", c"RTOS", c"Both"];
    fn from_index(i: u32) -> Option<Self> {
        PlaybackSink::from_index(i)
    }
    fn slots(rtos: &Rtos) -> &[AtomicU8; MAX_SUBSTREAMS as usize] {
        &rtos.playback_sink
    }
}

/// The enum control of a [`Route`]: `private` is the `Rtos`, the value index
/// the substream.
pub(crate) struct RouteCtl<R>(core::marker::PhantomData<R>);

impl<R: Route> crate::sound::EnumControl for RouteCtl<R> {
    const ITEMS: &'static [&'static CStr] = R::ITEMS;

    fn get(private: *mut c_void, index: usize) -> u32 {
        // SAFETY: the control's private data is the card's `Rtos`, which outlives the card.
        let rtos = unsafe { &*private.cast::<Rtos>() };
        R::slots(rtos)
            .get(index)
            .map_or(0, |a| u32::from(a.load(Ordering::Acquire)))
    }

    fn put(private: *mut c_void, index: usize, value: u32) -> Result<bool> {
        // SAFETY: as in `get`.
        let rtos = unsafe { &*private.cast::<Rtos>() };
        // Only an item index passes, so the value fits a u8.
        R::from_index(value).ok_or(EINVAL)?;
        let v = u8::try_from(value).map_err(|_| EINVAL)?;
        let slot = R::slots(rtos).get(index).ok_or(EINVAL)?;
        Ok(slot.swap(v, Ordering::AcqRel) != v)
    }
}

/// Writes /proc/asound/VoIP/rtos: the region, both rings' headers and
/// counters, who uses them, and the clock shift that follows the RTOS.
pub(crate) unsafe extern "C" fn proc_read(
    entry: *mut bindings::snd_info_entry,
    buffer: *mut bindings::snd_info_buffer,
) {
    // SAFETY: the entry's private data is the card's `Rtos`, live as long as the card.
    let rtos = unsafe { &*(*entry).private_data.cast::<Rtos>() };
    let mut l = crate::cable::Line::new();
    let _ = writeln!(l, "region: {:#x} size {:#x}", rtos.phys, rtos.len);
    l.emit(buffer);
    for p in [&rtos.mic, &rtos.spk] {
        let r = &p.ring;
        let mut l = crate::cable::Line::new();
        let _ = write!(
            l,
            "{}: {} {} Hz {} ch, {} frames, period {}",
            p.name,
            r.params.format.name(),
            r.params.rate.get(),
            r.params.channels,
            r.capacity(),
            r.period_frames
        );
        match p.counters() {
            Ok((w, rd, fill)) => {
                let _ = write!(l, ", write {} read {} fill {}", w, rd, fill);
            }
            Err(e) => {
                let _ = write!(l, ", counters invalid: {}", Why(e));
            }
        }
        let _ = writeln!(l);
        l.emit(buffer);
        let mut l = crate::cable::Line::new();
        let _ = write!(
            l,
            "  producer state {} heartbeat {} overruns {}; consumer state {} heartbeat {} underruns {}",
            p.u32_at(off::PRODUCER_STATE),
            p.u32_at(off::PRODUCER_HEARTBEAT),
            p.u32_at(off::OVERRUNS),
            p.u32_at(off::CONSUMER_STATE),
            p.u32_at(off::CONSUMER_HEARTBEAT),
            p.u32_at(off::UNDERRUNS)
        );
        let _ = writeln!(l);
        l.emit(buffer);
        let mut l = crate::cable::Line::new();
        match p.owner() {
            Some(c) => {
                let _ = write!(
                    l,
                    "  used by cable {}: rate shift {:+} ppm (at most {}), ",
                    c,
                    p.shift_ppm.load(Ordering::Relaxed),
                    rtos.max_shift_ppm
                );
                match p.rtos_offset(crate::hrtimer::now_ns()) {
                    Some((ppm, tol, secs)) => {
                        let _ = write!(l, "rtos clock {:+} ±{} ppm over {} s, ", ppm, tol, secs);
                    }
                    None => {
                        let _ = write!(l, "rtos clock not measured yet, ");
                    }
                }
                let _ = write!(
                    l,
                    "fill {}, linux xruns {}{}",
                    p.last_fill.load(Ordering::Relaxed),
                    p.xruns.load(Ordering::Relaxed),
                    if p.broken.load(Ordering::Relaxed) {
                        ", BROKEN"
                    } else {
                        ""
                    }
                );
            }
            None => {
                let _ = write!(l, "  idle, linux xruns {}", p.xruns.load(Ordering::Relaxed));
            }
        }
        let _ = writeln!(l);
        l.emit(buffer);
    }
}
