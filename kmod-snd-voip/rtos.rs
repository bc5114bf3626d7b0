// SPDX-License-Identifier: GPL-2.0
//! The RTOS audio FIFO: the shared-memory region named by the device-tree
//! node `snd-voip,rtos-fifo`, holding the microphone ring (RTOS to Linux)
//! and, right after it, the speaker ring (Linux to RTOS). Layout and rules:
//! `logic/fifo.rs`, `logic/counter.rs`, `include/snd_voip_fifo.h`,
//! ARCHITECTURE.md.
//!
//! This file is the only one that uses the region, and only through
//! `safe::shmem::SharedMem`, whose accesses are bounds-checked: whatever
//! the other core writes, Linux never reads or writes outside the region.
//! A corrupt header refuses the probe; impossible counters at run time are
//! transients, then (after a run of them) silence and a log line.

use crate::counter::{PeerCounter, Reading};
use crate::fifo::{self, off, CaptureSource, FifoError, PlaybackSink, Ring};
use crate::ring::{ring_pieces, Segments};
use crate::route::{RingId, RouteDefaults};
use crate::safe::device::{dev_err, dev_info, dev_warn_ratelimited, Device, DeviceRef};
use crate::safe::shmem::{self, SharedMem};
use crate::safe::sound::pcm::DmaBuffer;
use core::fmt::{self, Write};
use core::sync::atomic::{AtomicBool, AtomicI32, AtomicU32, AtomicU64, Ordering};
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
        // ESTALE: not among the kernel crate's named codes on 6.12.
        FifoError::Changed => Error::from_errno(-116),
    }
}

/// A line of text that explains a ring error.
pub(crate) struct Why(pub(crate) FifoError);

impl fmt::Display for Why {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
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
            FifoError::Changed => write!(
                f,
                "the RTOS re-initialised it with another size or format since the module was loaded (reload the module)"
            ),
        }
    }
}

/// One ring of the region: where it is, its validated layout, and what
/// Linux shows about its use in /proc.
pub(crate) struct Port {
    /// Offset of the header in the region.
    at: usize,
    /// Offset of the data in the region.
    data: usize,
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
    /// Xrun events Linux counted (runs of ticks it could not serve while
    /// the RTOS side streamed).
    pub(crate) xruns: AtomicU32,
    /// Implausible counter readings (transients) Linux survived.
    pub(crate) transients: AtomicU32,
    /// Readings whose high word disagreed (1.0 rings), for /proc.
    pub(crate) high_mismatches: AtomicU32,
    /// Set when the counters stayed impossible; cleared at the next start.
    pub(crate) broken: AtomicBool,
    /// Linux time and the RTOS side's counter when the owner started (or
    /// resumed): the RTOS clock is measured against Linux's from there.
    since_ns: AtomicU64,
    since_frames: AtomicU64,
    /// The RTOS side's counter at the owner's last tick.
    last_peer: AtomicU64,
}

impl Port {
    fn new(at: usize, ring: Ring, name: &'static str) -> Self {
        Port {
            at,
            data: at + ring.data_offset,
            ring,
            name,
            owner: AtomicU32::new(0),
            shift_ppm: AtomicI32::new(0),
            last_fill: AtomicU64::new(0),
            xruns: AtomicU32::new(0),
            transients: AtomicU32::new(0),
            high_mismatches: AtomicU32::new(0),
            broken: AtomicBool::new(false),
            since_ns: AtomicU64::new(0),
            since_frames: AtomicU64::new(0),
            last_peer: AtomicU64::new(0),
        }
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

    /// The header field holding Linux's counter (its own: Linux reads
    /// the microphone ring and writes the speaker ring).
    fn linux_counter(&self) -> usize {
        if self.ring.to_linux {
            off::READ_FRAMES
        } else {
            off::WRITE_FRAMES
        }
    }

    /// The header field holding the RTOS side's counter.
    fn peer_counter(&self) -> usize {
        if self.ring.to_linux {
            off::WRITE_FRAMES
        } else {
            off::READ_FRAMES
        }
    }
}

/// A port with the memory it lives in: everything the owner does to it.
pub(crate) struct PortRef<'a> {
    mem: &'a SharedMem,
    dev: &'a Device,
    /// The port.
    pub(crate) port: &'a Port,
}

impl core::ops::Deref for PortRef<'_> {
    type Target = Port;
    fn deref(&self) -> &Port {
        self.port
    }
}

impl PortRef<'_> {
    fn u32_at(&self, o: usize) -> u32 {
        // Offsets are fields of a header validated to lie in the region;
        // an access the region refuses reads as 0.
        self.mem.read_u32(self.port.at + o).unwrap_or(0)
    }

    fn set_u32(&self, o: usize, v: u32) {
        self.mem.write_u32(self.port.at + o, v);
    }

    /// Linux's own counter as it is in the header (read at a start: Linux
    /// writes it in one 64-bit store; the RTOS only at initialisation).
    pub(crate) fn read_linux_counter(&self) -> u64 {
        self.mem
            .read_u64(self.port.at + self.port.linux_counter())
            .unwrap_or(0)
    }

    /// The RTOS side's counter: its low word, then (on 1.0 rings, whose
    /// writers keep it as the carry) its high word, read after it.
    pub(crate) fn read_peer_words(&self) -> (u32, Option<u32>) {
        let f = self.port.at + self.port.peer_counter();
        let lo = self.mem.read_u32(f).unwrap_or(0);
        let hi = (self.port.ring.minor == 0).then(|| self.mem.read_u32(f + 4).unwrap_or(0));
        (lo, hi)
    }

    /// Reads the RTOS side's counter into `peer` (values beyond `max` are
    /// implausible) and keeps the port's statistics: torn high words and
    /// transient readings counted, the value seen noted for /proc, the ring
    /// latched broken on a reading that cannot be. The counter's value, or
    /// `None` once the ring is broken.
    pub(crate) fn read_peer(&self, peer: &mut PeerCounter, max: u64) -> Option<u64> {
        let (lo, hi) = self.read_peer_words();
        let mismatches = peer.high_mismatches();
        let reading = peer.update(lo, hi, max);
        if peer.high_mismatches() != mismatches {
            self.high_mismatches.fetch_add(1, Ordering::Relaxed);
        }
        if matches!(reading, Reading::Transient(_)) {
            self.transients.fetch_add(1, Ordering::Relaxed);
        }
        match reading.value() {
            Some(v) => {
                self.saw_peer(v);
                Some(v)
            }
            None => {
                self.mark_broken(FifoError::BadIndices);
                None
            }
        }
    }

    /// Starts tracking the RTOS counter given Linux's counter `linux`;
    /// `BadIndices` when the two are impossible together.
    pub(crate) fn anchor(&self, linux: u64) -> Result<PeerCounter, FifoError> {
        let (lo, _) = self.read_peer_words();
        let (min, max) = self.port.ring.peer_bounds(linux);
        PeerCounter::anchor(lo, min, max).ok_or(FifoError::BadIndices)
    }

    /// Publishes Linux's counter: after a full barrier (the frames read
    /// before it are done) on the microphone ring, after a write barrier
    /// (the frames written before it are visible) on the speaker ring.
    pub(crate) fn publish_linux(&self, v: u64) {
        if self.port.ring.to_linux {
            shmem::mb();
        } else {
            shmem::dma_wmb();
        }
        self.mem
            .write_u64(self.port.at + self.port.linux_counter(), v);
    }

    /// Re-reads the header: the RTOS may have re-initialised the ring since
    /// the probe. Anything but the layout validated then is refused.
    pub(crate) fn revalidate(&self, region_left: usize) -> Result<(), FifoError> {
        let mut copy = [0u8; fifo::HEADER_SIZE as usize];
        for (i, w) in copy.chunks_exact_mut(4).enumerate() {
            w.copy_from_slice(&self.u32_at(i * 4).to_le_bytes());
        }
        let ring = Ring::validate(&copy, region_left)?;
        if !ring.same_layout(&self.port.ring) {
            // A new layout needs a new probe: reload the module.
            return Err(FifoError::Changed);
        }
        Ok(())
    }

    /// Whether the RTOS side says it streams (its state word).
    pub(crate) fn peer_running(&self) -> bool {
        let o = if self.port.ring.to_linux {
            off::PRODUCER_STATE
        } else {
            off::CONSUMER_STATE
        };
        self.u32_at(o) == 1
    }

    /// Sets Linux's state word (consumer state on the microphone ring,
    /// producer state on the speaker ring): 1 streaming, 0 stopped,
    /// paused or suspended.
    pub(crate) fn set_linux_state(&self, running: bool) {
        let o = if self.port.ring.to_linux {
            off::CONSUMER_STATE
        } else {
            off::PRODUCER_STATE
        };
        self.set_u32(o, u32::from(running));
    }

    /// Bumps Linux's heartbeat.
    pub(crate) fn heartbeat(&self) {
        let o = if self.port.ring.to_linux {
            off::CONSUMER_HEARTBEAT
        } else {
            off::PRODUCER_HEARTBEAT
        };
        self.set_u32(o, self.u32_at(o).wrapping_add(1));
    }

    /// Counts one xrun event in Linux's header counter (underruns as the
    /// microphone's consumer, overruns as the speaker's producer).
    pub(crate) fn count_xrun(&self) {
        let o = if self.port.ring.to_linux {
            off::UNDERRUNS
        } else {
            off::OVERRUNS
        };
        self.set_u32(o, self.u32_at(o).wrapping_add(1));
        self.port.xruns.fetch_add(1, Ordering::Relaxed);
    }

    /// Copies `count` frames from the ring, starting at frame `read`, into
    /// the ALSA buffer `dst` of `dst_frames` frames at frame `dst_pos`.
    /// The data is read after the write counter that published it.
    pub(crate) fn copy_out(
        &self,
        read: u64,
        dst: &DmaBuffer<'_>,
        dst_frames: usize,
        dst_pos: u64,
        count: u64,
    ) -> Result {
        shmem::dma_rmb();
        let fb = self.port.ring.params.frame_bytes();
        let cap = self.port.ring.capacity() as usize;
        for seg in Segments::new(read, cap, dst_pos, dst_frames, count) {
            self.mem.copy_to(
                self.port.data + seg.src * fb,
                dst,
                seg.dst * fb,
                seg.len * fb,
            )?;
        }
        Ok(())
    }

    /// Copies `count` frames from the ALSA buffer `src` (`src_frames`
    /// frames, from frame `src_pos`) into the ring at frame `write`, or
    /// silence when `src` is `None`. The consumer's read counter was read
    /// before we overwrite what it freed.
    pub(crate) fn copy_in(
        &self,
        write: u64,
        src: Option<(&DmaBuffer<'_>, usize, u64)>,
        count: u64,
    ) -> Result {
        shmem::mb();
        let p = &self.port.ring.params;
        let fb = p.frame_bytes();
        let cap = self.port.ring.capacity() as usize;
        match src {
            None => {
                for seg in ring_pieces(write, cap, count) {
                    self.mem.silence(
                        p.format.to_alsa(),
                        self.port.data + seg.dst * fb,
                        seg.len * p.channels as usize,
                    )?;
                }
            }
            Some((buf, frames, pos)) => {
                for seg in Segments::new(pos, frames, write, cap, count) {
                    self.mem.copy_from(
                        self.port.data + seg.dst * fb,
                        buf,
                        seg.src * fb,
                        seg.len * fb,
                    )?;
                }
            }
        }
        Ok(())
    }

    /// Starts measuring the RTOS clock against Linux's at `now_ns`, from
    /// the RTOS counter `peer`.
    pub(crate) fn measure_from(&self, now_ns: u64, peer: u64) {
        self.port.since_frames.store(peer, Ordering::Relaxed);
        self.port.last_peer.store(peer, Ordering::Relaxed);
        self.port.since_ns.store(now_ns, Ordering::Relaxed);
    }

    /// Records the RTOS counter the owner accepted at a tick.
    pub(crate) fn saw_peer(&self, peer: u64) {
        self.port.last_peer.store(peer, Ordering::Relaxed);
    }

    /// Reports a ring that became unusable at run time, once per start.
    pub(crate) fn mark_broken(&self, e: FifoError) {
        if !self.port.broken.swap(true, Ordering::AcqRel) {
            dev_warn_ratelimited!(
                self.dev,
                "rtos: {} ring: {}; giving silence until the stream restarts\n",
                self.port.name,
                Why(e)
            );
        }
    }

    /// The RTOS clock against Linux's since the owner started, in ppm, how
    /// far off that may be (one RTOS period), and the seconds measured;
    /// `None` in the first second.
    pub(crate) fn rtos_offset(&self, now_ns: u64) -> Option<(i32, u32, u64)> {
        let p = self.port;
        let dt = now_ns.saturating_sub(p.since_ns.load(Ordering::Relaxed));
        let frames = p
            .last_peer
            .load(Ordering::Relaxed)
            .saturating_sub(p.since_frames.load(Ordering::Relaxed));
        let ppm = crate::follow::rate_offset_ppm(frames, dt, p.ring.params.rate.get())?;
        let tol = crate::follow::rate_offset_tolerance_ppm(frames, p.ring.period_frames.into());
        Some((ppm, tol, dt / 1_000_000_000))
    }
}

/// The mapped region and its two rings.
pub(crate) struct Rtos {
    dev: DeviceRef,
    mem: SharedMem,
    mic: Port,
    spk: Port,
    /// The bound of every follower (module parameter `rtos_max_shift_ppm`).
    pub(crate) max_shift_ppm: i32,
    /// The lateness each ring's target fill covers, in microseconds
    /// (module parameter `rtos_slack_us`; `None`: one RTOS period).
    pub(crate) slack_us: Option<u32>,
    /// The routing controls' defaults (module parameter, else device tree).
    pub(crate) defaults: RouteDefaults,
}

/// Validates the ring at byte `at` of the region.
fn validate_at(mem: &SharedMem, at: usize, to_linux: bool) -> Result<Ring, FifoError> {
    if at % 64 != 0 {
        // The second header must start on a cache line (header_size is a
        // multiple of 64 in every valid layout).
        return Err(FifoError::BadHeaderSize(at as u32));
    }
    if at > mem.len() {
        return Err(FifoError::RegionTooSmall);
    }
    let mut h = [0u8; fifo::HEADER_SIZE as usize];
    mem.read_bytes(at, &mut h);
    let ring = Ring::validate(&h, mem.len() - at)?;
    if ring.to_linux != to_linux {
        return Err(FifoError::BadDirection(u32::from(!to_linux)));
    }
    Ok(ring)
}

impl Rtos {
    /// Maps the region of the device's `memory-region` and validates both
    /// rings. Every refusal is logged with its reason and errno.
    pub(crate) fn probe(dev: &Device) -> Result<Rtos> {
        let max_shift_ppm = crate::safe::params::rtos_max_shift_ppm();
        if !(0..=crate::follow::MAX_FOLLOW_LIMIT_PPM).contains(&max_shift_ppm) {
            dev_err!(
                dev,
                "rtos_max_shift_ppm={} is out of range 0..{}\n",
                max_shift_ppm,
                crate::follow::MAX_FOLLOW_LIMIT_PPM
            );
            return Err(EINVAL);
        }
        let slack_us = match crate::safe::params::rtos_slack_us() {
            -1 => None,
            us @ 0..=crate::follow::MAX_SLACK_US => u32::try_from(us).ok(),
            us => {
                dev_err!(
                    dev,
                    "rtos_slack_us={} is out of range 0..{} (or -1: one RTOS period)\n",
                    us,
                    crate::follow::MAX_SLACK_US
                );
                return Err(EINVAL);
            }
        };
        let defaults = Self::defaults(dev)?;
        let region = dev.memory_region().map_err(|e| {
            dev_err!(
                dev,
                "rtos: no usable memory-region in the device tree node (error {})\n",
                e.to_errno()
            );
            e
        })?;
        let cached = dev.property_bool(c"snd-voip,cached");
        let mem = SharedMem::map(&region, cached).map_err(|e| {
            dev_err!(
                dev,
                "rtos: cannot map the {:#x}-byte memory-region (error {})\n",
                region.len,
                e.to_errno()
            );
            e
        })?;
        let len = mem.len();
        // The region's address goes to the kernel log (root-readable, like
        // the reserved-memory lines the kernel prints at boot), never to
        // /proc/asound, which every user can read.
        let check = |what: &str, r: Result<Ring, FifoError>| -> Result<Ring> {
            r.map_err(|e| {
                dev_err!(
                    dev,
                    "rtos: {} ring at {:#x} (region of {} bytes): {}: error {}\n",
                    what,
                    region.start,
                    len,
                    Why(e),
                    errno(e).to_errno()
                );
                errno(e)
            })
        };
        let mic = check("microphone", validate_at(&mem, 0, true))?;
        let at = fifo::second_ring_offset(&mic);
        let spk = check("speaker", validate_at(&mem, at, false))?;
        let rtos = Rtos {
            dev: dev.get(),
            mem,
            mic: Port::new(0, mic, "microphone"),
            spk: Port::new(at, spk, "speaker"),
            max_shift_ppm,
            slack_us,
            defaults,
        };
        for id in [RingId::Mic, RingId::Speaker] {
            let p = rtos.port(id);
            let linux = p.read_linux_counter();
            if let Err(e) = p.anchor(linux) {
                return Err(check(p.name, Err(e)).err().unwrap_or(EINVAL));
            }
        }
        dev_info!(
            dev,
            "rtos: FIFO of {} bytes: microphone {} Hz {} ch {}, {} frames; speaker {} Hz {} ch {}, {} frames; protocol {}.{}\n",
            len,
            mic.params.rate.get(),
            mic.params.channels,
            mic.params.format.name(),
            mic.capacity(),
            spk.params.rate.get(),
            spk.params.channels,
            spk.params.format.name(),
            spk.capacity(),
            fifo::VERSION_MAJOR,
            mic.minor.min(spk.minor)
        );
        Ok(rtos)
    }

    /// The controls' defaults: module parameter, else device tree, else RTOS.
    fn defaults(dev: &Device) -> Result<RouteDefaults> {
        let pc =
            crate::safe::params::capture_source().or(dev.property_str(c"snd-voip,capture-source"));
        let pp =
            crate::safe::params::playback_sink().or(dev.property_str(c"snd-voip,playback-sink"));
        let capture = match pc {
            None => CaptureSource::Rtos,
            Some(s) => CaptureSource::parse(s.to_bytes()).ok_or_else(|| {
                dev_err!(
                    dev,
                    "rtos: capture source must be bridge or rtos, not {:?}\n",
                    s
                );
                EINVAL
            })?,
        };
        let playback = match pp {
            None => PlaybackSink::Rtos,
            Some(s) => PlaybackSink::parse(s.to_bytes()).ok_or_else(|| {
                dev_err!(
                    dev,
                    "rtos: playback sink must be bridge, rtos or both, not {:?}\n",
                    s
                );
                EINVAL
            })?,
        };
        Ok(RouteDefaults { capture, playback })
    }

    /// One of the two rings.
    pub(crate) fn port(&self, id: RingId) -> PortRef<'_> {
        PortRef {
            mem: &self.mem,
            dev: &self.dev,
            port: match id {
                RingId::Mic => &self.mic,
                RingId::Speaker => &self.spk,
            },
        }
    }

    /// Bytes of the region from the start of ring `id`'s header to the end.
    pub(crate) fn left_from(&self, id: RingId) -> usize {
        let at = match id {
            RingId::Mic => 0,
            RingId::Speaker => self.spk.at,
        };
        self.mem.len().saturating_sub(at)
    }

    /// Writes /proc/asound/VoIP/rtos: both rings' headers and counters,
    /// who uses them, and the clock shift that follows the RTOS. No
    /// address: the file is readable by every user.
    pub(crate) fn proc_read(&self, out: &mut impl Write, now_ns: u64) {
        let _ = writeln!(
            out,
            "region: {} bytes (the node's memory-region), protocol {}.{}",
            self.mem.len(),
            fifo::VERSION_MAJOR,
            self.mic.ring.minor.min(self.spk.ring.minor)
        );
        for id in [RingId::Mic, RingId::Speaker] {
            let p = self.port(id);
            let r = &p.ring;
            let w = self.mem.read_u64(p.at + off::WRITE_FRAMES).unwrap_or(0);
            let rd = self.mem.read_u64(p.at + off::READ_FRAMES).unwrap_or(0);
            let _ = write!(
                out,
                "{}: {} {} Hz {} ch, {} frames, period {}, write {} read {}",
                p.name,
                r.params.format.name(),
                r.params.rate.get(),
                r.params.channels,
                r.capacity(),
                r.period_frames,
                w as u32,
                rd as u32
            );
            match r.fill(w, rd) {
                Ok(fill) => {
                    let _ = writeln!(out, " fill {}", fill);
                }
                Err(e) => {
                    let _ = writeln!(out, ", counters invalid: {}", Why(e));
                }
            }
            let _ = writeln!(
                out,
                "  producer state {} heartbeat {} overruns {}; consumer state {} heartbeat {} underruns {}",
                p.u32_at(off::PRODUCER_STATE),
                p.u32_at(off::PRODUCER_HEARTBEAT),
                p.u32_at(off::OVERRUNS),
                p.u32_at(off::CONSUMER_STATE),
                p.u32_at(off::CONSUMER_HEARTBEAT),
                p.u32_at(off::UNDERRUNS)
            );
            match p.owner() {
                Some(c) => {
                    let _ = write!(
                        out,
                        "  used by cable {}: rate shift {:+} ppm (at most {}), ",
                        c,
                        p.shift_ppm.load(Ordering::Relaxed),
                        self.max_shift_ppm
                    );
                    match p.rtos_offset(now_ns) {
                        Some((ppm, tol, secs)) => {
                            let _ =
                                write!(out, "rtos clock {:+} ±{} ppm over {} s, ", ppm, tol, secs);
                        }
                        None => {
                            let _ = write!(out, "rtos clock not measured yet, ");
                        }
                    }
                    let _ = write!(
                        out,
                        "fill {}, linux xruns {}",
                        p.last_fill.load(Ordering::Relaxed),
                        p.xruns.load(Ordering::Relaxed)
                    );
                }
                None => {
                    let _ = write!(
                        out,
                        "  idle, linux xruns {}",
                        p.xruns.load(Ordering::Relaxed)
                    );
                }
            }
            let _ = writeln!(
                out,
                ", counter transients {}, high-word mismatches {}{}",
                p.transients.load(Ordering::Relaxed),
                p.high_mismatches.load(Ordering::Relaxed),
                if p.broken.load(Ordering::Relaxed) {
                    ", BROKEN"
                } else {
                    ""
                }
            );
        }
    }
}
