// SPDX-License-Identifier: GPL-2.0
//! PCM substreams: the [`PcmOps`] a card's data implements, the borrowed
//! [`Substream`] its callbacks get, hw-parameter rules ([`HwParams`]), and
//! the [`SubstreamSlot`] through which timers reach an open substream and
//! its buffer ([`DmaBuffer`]) outside any callback.
//!
//! Shape of the experimental `kernel::sound` API (an ops trait, a static
//! ops table, C trampolines), with one addition a loopback driver needs: a
//! timer of one end copies into the *other* end's buffer. The slot makes
//! that sound by construction: the layer attaches a substream to its slot
//! in the open trampoline and detaches it in close, sets the buffer after
//! allocating it in hw_params and withdraws it in hw_free (and before a
//! re-allocation), and each withdrawal waits until no user of the slot is
//! left. A user (an [`Attached`] guard) therefore never sees a closed
//! substream or a freed buffer, whatever the driver's own state says.

use super::card::data_of;
use crate::bindings;
use crate::safe::sync::{IrqSpinLock, LockClass};
use core::ffi::CStr;
use core::marker::PhantomData;
use core::ptr::NonNull;
use kernel::error::{code::*, to_result, Error, Result};
use kernel::ffi::{c_int, c_void};
use kernel::init::PinInit;
use kernel::prelude::pin_data;
use kernel::types::Opaque;

/// Stream direction of a substream.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Stream {
    /// The application writes.
    Playback,
    /// The application reads.
    Capture,
}

/// A PCM trigger command.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Trigger {
    /// Start the stream.
    Start,
    /// Stop it.
    Stop,
    /// Pause.
    PausePush,
    /// Resume from pause.
    PauseRelease,
    /// System suspend of a running stream (the PCM core keeps its state).
    Suspend,
    /// Resume after a system suspend (the stream was running).
    Resume,
}

/// A hardware parameter the driver constrains.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum HwParam {
    /// Sample format (a mask).
    Format,
    /// Rate (an interval).
    Rate,
    /// Channels (an interval).
    Channels,
    /// Period time in µs (an interval).
    PeriodTime,
}

impl HwParam {
    fn to_raw(self) -> c_int {
        match self {
            HwParam::Format => bindings::SND_VOIP_PARAM_FORMAT,
            HwParam::Rate => bindings::SND_VOIP_PARAM_RATE,
            HwParam::Channels => bindings::SND_VOIP_PARAM_CHANNELS,
            HwParam::PeriodTime => bindings::SND_VOIP_PARAM_PERIOD_TIME,
        }
    }

    fn from_raw(v: c_int) -> Option<Self> {
        [
            HwParam::Format,
            HwParam::Rate,
            HwParam::Channels,
            HwParam::PeriodTime,
        ]
        .into_iter()
        .find(|p| p.to_raw() == v)
    }
}

/// `SNDRV_PCM_INFO_*` capability bits for [`Hardware::info`].
pub(crate) mod info {
    use crate::bindings;
    /// mmap access.
    pub(crate) const MMAP: u32 = bindings::SNDRV_PCM_INFO_MMAP;
    /// The mmap'ed buffer is valid at any time.
    pub(crate) const MMAP_VALID: u32 = bindings::SNDRV_PCM_INFO_MMAP_VALID;
    /// Interleaved channels.
    pub(crate) const INTERLEAVED: u32 = bindings::SNDRV_PCM_INFO_INTERLEAVED;
    /// Whole periods transferred.
    pub(crate) const BLOCK_TRANSFER: u32 = bindings::SNDRV_PCM_INFO_BLOCK_TRANSFER;
    /// Pause.
    pub(crate) const PAUSE: u32 = bindings::SNDRV_PCM_INFO_PAUSE;
    /// Resume after a system suspend (TRIGGER_RESUME).
    pub(crate) const RESUME: u32 = bindings::SNDRV_PCM_INFO_RESUME;
}

/// What a substream offers (`struct snd_pcm_hardware`).
#[derive(Clone, Copy)]
pub(crate) struct Hardware {
    /// [`info`] bits.
    pub(crate) info: u32,
    /// ALSA format numbers offered (each below 64).
    pub(crate) formats: &'static [u32],
    /// `SNDRV_PCM_RATE_*` bits.
    pub(crate) rates: u32,
    /// Lowest rate.
    pub(crate) rate_min: u32,
    /// Highest rate.
    pub(crate) rate_max: u32,
    /// Fewest channels.
    pub(crate) channels_min: u32,
    /// Most channels.
    pub(crate) channels_max: u32,
    /// Largest buffer in bytes.
    pub(crate) buffer_bytes_max: usize,
    /// Smallest period in bytes.
    pub(crate) period_bytes_min: usize,
    /// Largest period in bytes.
    pub(crate) period_bytes_max: usize,
    /// Fewest periods.
    pub(crate) periods_min: u32,
    /// Most periods.
    pub(crate) periods_max: u32,
}

impl Hardware {
    fn to_raw(self) -> bindings::snd_pcm_hardware {
        let formats = self
            .formats
            .iter()
            .filter(|&&f| f < 64)
            .fold(0u64, |m, &f| m | (1u64 << f));
        bindings::snd_pcm_hardware {
            info: self.info,
            formats,
            subformats: 0,
            rates: self.rates,
            rate_min: self.rate_min,
            rate_max: self.rate_max,
            channels_min: self.channels_min,
            channels_max: self.channels_max,
            buffer_bytes_max: self.buffer_bytes_max,
            period_bytes_min: self.period_bytes_min,
            period_bytes_max: self.period_bytes_max,
            periods_min: self.periods_min,
            periods_max: self.periods_max,
            fifo_size: 0,
        }
    }
}

/// What `pointer` reports: the position in the buffer, and the frames
/// between the buffer and the outside world (`runtime->delay`).
#[derive(Clone, Copy, Default)]
pub(crate) struct Pointer {
    /// Frames from the start of the buffer, below its size.
    pub(crate) pos: usize,
    /// Extra delay in frames beyond the buffer (a FIFO after it).
    pub(crate) delay: u64,
}

/// The PCM callbacks of a card whose data is `Self`. Each runs in the
/// context ALSA documents: `trigger` and `pointer` atomically under the
/// stream lock, the others in process context. `&Substream` is borrowed
/// for the callback only; a timer reaches the substream through its
/// [`SubstreamSlot`].
pub(crate) trait PcmOps: Sized + Send + Sync {
    /// The slot of `ss` (where it is attached while open).
    fn slot(&self, ss: &Substream<Self>) -> Option<&SubstreamSlot<Self>>;
    /// A substream is opened (already attached to its slot); `setup`
    /// advertises the hardware and adds rules.
    fn open(&self, ss: &Substream<Self>, setup: &mut OpenSetup<'_, Self>) -> Result;
    /// A substream is closed (detached from its slot afterwards).
    fn close(&self, ss: &Substream<Self>);
    /// A rule added by [`OpenSetup::add_rule`] refines `var`; `Ok(true)`
    /// when it changed it.
    fn hw_rule(&self, ss: &Substream<Self>, var: HwParam, params: &mut HwParams) -> Result<bool>;
    /// The buffer is about to be freed (already withdrawn from the slot).
    fn hw_free(&self, ss: &Substream<Self>);
    /// Prepare to start.
    fn prepare(&self, ss: &Substream<Self>) -> Result;
    /// Start, stop, pause, suspend, resume.
    fn trigger(&self, ss: &Substream<Self>, cmd: Trigger) -> Result;
    /// Wait until nothing the stream started still runs.
    fn sync_stop(&self, ss: &Substream<Self>);
    /// The position and delay.
    fn pointer(&self, ss: &Substream<Self>) -> Pointer;
}

/// An open PCM substream of a card whose data is `D`.
///
/// # Invariants
///
/// A `&Substream<D>` is only made by this layer, for an open substream of
/// a PCM created by `Card<D>::new_pcm` (so its `private_data` is the card's
/// `D`), for a borrow that ends before the substream is closed: the
/// duration of a callback, or the life of an [`Attached`] guard.
#[repr(transparent)]
pub(crate) struct Substream<D>(Opaque<bindings::snd_pcm_substream>, PhantomData<D>);

impl<D: PcmOps> Substream<D> {
    /// # Safety
    ///
    /// `raw` must be an open substream of a `Card<D>` PCM, open for `'a`.
    unsafe fn from_raw<'a>(raw: *mut bindings::snd_pcm_substream) -> &'a Self {
        // SAFETY: transparent over the C struct; the caller guarantees the rest.
        unsafe { &*raw.cast::<Self>() }
    }

    fn raw(&self) -> *mut bindings::snd_pcm_substream {
        self.0.get()
    }

    fn runtime(&self) -> *mut bindings::snd_pcm_runtime {
        // SAFETY: open substreams have a runtime until close (invariant).
        unsafe { (*self.raw()).runtime }
    }

    /// The card's data.
    pub(crate) fn data(&self) -> &D {
        // SAFETY: by the invariant `private_data` is the card's `D`, which
        // outlives every open substream of the card.
        unsafe { data_of::<D>((*self.raw()).private_data) }
    }

    /// The PCM device number.
    pub(crate) fn device(&self) -> u32 {
        // SAFETY: the substream and its PCM are live.
        unsafe { (*(*self.raw()).pcm).device as u32 }
    }

    /// The substream number within its direction.
    pub(crate) fn number(&self) -> u32 {
        // SAFETY: the substream is live.
        unsafe { (*self.raw()).number as u32 }
    }

    /// Playback or capture.
    pub(crate) fn stream(&self) -> Stream {
        // SAFETY: the substream is live.
        if unsafe { (*self.raw()).stream } == bindings::SNDRV_PCM_STREAM_PLAYBACK as c_int {
            Stream::Playback
        } else {
            Stream::Capture
        }
    }

    /// ALSA format number (valid after hw_params).
    pub(crate) fn format(&self) -> u32 {
        // SAFETY: the runtime is live; hw_params fields are plain values.
        unsafe { (*self.runtime()).format as u32 }
    }

    /// Frames per second.
    pub(crate) fn rate(&self) -> u32 {
        // SAFETY: as above.
        unsafe { (*self.runtime()).rate }
    }

    /// Channels.
    pub(crate) fn channels(&self) -> u32 {
        // SAFETY: as above.
        unsafe { (*self.runtime()).channels }
    }

    /// Buffer size in frames.
    pub(crate) fn buffer_size(&self) -> usize {
        // SAFETY: as above.
        unsafe { (*self.runtime()).buffer_size as usize }
    }

    /// Period size in frames.
    pub(crate) fn period_size(&self) -> usize {
        // SAFETY: as above.
        unsafe { (*self.runtime()).period_size as usize }
    }

    /// Bytes of the buffer (0 without one).
    pub(crate) fn dma_bytes(&self) -> usize {
        // SAFETY: as above.
        unsafe { (*self.runtime()).dma_bytes }
    }

    /// Whether a playback is draining.
    pub(crate) fn is_draining(&self) -> bool {
        // SAFETY: the substream is open.
        unsafe { bindings::snd_voip_pcm_state(self.raw()) == bindings::SND_VOIP_STATE_DRAINING }
    }

    /// The application pointer: frames written (playback) or read
    /// (capture) since prepare, modulo the runtime's boundary.
    pub(crate) fn appl_ptr(&self) -> u64 {
        // SAFETY: the substream is open (a READ_ONCE of the control page).
        unsafe { bindings::snd_voip_pcm_appl_ptr(self.runtime()) as u64 }
    }

    /// Tells the core a period has elapsed. Takes the stream lock: not to
    /// be called from a PCM callback or with a lock a callback takes.
    pub(crate) fn period_elapsed(&self) {
        // SAFETY: the substream is open.
        unsafe { bindings::snd_pcm_period_elapsed(self.raw()) };
    }

    /// Stops a running stream with an xrun (the application sees EPIPE).
    /// Takes the stream lock, like [`Self::period_elapsed`].
    pub(crate) fn stop_xrun(&self) {
        // SAFETY: the substream is open.
        unsafe { bindings::snd_pcm_stop_xrun(self.raw()) };
    }
}

/// What `open` may set up: only there does the driver own the new runtime.
///
/// # Invariants
///
/// `runtime` is the runtime of the substream being opened; nothing else
/// uses it until `open` returns.
pub(crate) struct OpenSetup<'a, D> {
    ss: &'a Substream<D>,
    runtime: *mut bindings::snd_pcm_runtime,
}

impl<D: PcmOps> OpenSetup<'_, D> {
    /// Advertises the hardware capabilities.
    pub(crate) fn set_hw(&mut self, hw: &Hardware) {
        // SAFETY: the runtime is ours during open (invariant).
        unsafe { (*self.runtime).hw = hw.to_raw() };
    }

    /// Adds a rule refining `var` when `dep` changes; ALSA calls
    /// [`PcmOps::hw_rule`] for it while the substream is open.
    pub(crate) fn add_rule(&mut self, var: HwParam, dep: HwParam) -> Result {
        // SAFETY: the runtime is ours; the rule's private pointer is the
        // substream, which the rule never outlives (rules are freed with
        // the runtime at close).
        to_result(unsafe {
            bindings::snd_pcm_hw_rule_add(
                self.runtime,
                0,
                var.to_raw(),
                Some(rule_cb::<D>),
                self.ss.raw().cast::<c_void>(),
                dep.to_raw(),
                -1i32,
            )
        })
    }

    /// Limits `var` to `min..=max`.
    pub(crate) fn constrain_minmax(&mut self, var: HwParam, min: u32, max: u32) -> Result {
        // SAFETY: the runtime is ours.
        let ret = unsafe {
            bindings::snd_pcm_hw_constraint_minmax(self.runtime, var.to_raw() as _, min, max)
        };
        if ret < 0 {
            Err(Error::from_errno(ret))
        } else {
            Ok(())
        }
    }
}

/// Hardware parameters being refined by a rule.
#[repr(transparent)]
pub(crate) struct HwParams(Opaque<bindings::snd_pcm_hw_params>);

impl HwParams {
    /// The format mask as 32-bit words (bit `n`: format `n`).
    pub(crate) fn format_mask(&mut self) -> &mut [u32] {
        // SAFETY: `&mut self` is the params of the running rule (made only
        // by `rule_cb`); the mask is a plain array inside them.
        unsafe {
            let m = bindings::snd_voip_hw_param_mask(self.0.get(), HwParam::Format.to_raw() as _);
            let bits = &mut (*m).bits;
            &mut bits[..]
        }
    }

    /// Narrows interval `var` to exactly `value`; `Ok(true)` when it
    /// changed, `EINVAL` when that leaves nothing.
    pub(crate) fn fix(&mut self, var: HwParam, value: u32) -> Result<bool> {
        let mut iv = bindings::snd_interval::default();
        iv.min = value;
        iv.max = value;
        iv.set_integer(1);
        // SAFETY: as in `format_mask`; `iv` is a local.
        let ret = unsafe {
            bindings::snd_interval_refine(
                bindings::snd_voip_hw_param_interval(self.0.get(), var.to_raw() as _),
                &iv,
            )
        };
        if ret < 0 {
            Err(EINVAL)
        } else {
            Ok(ret > 0)
        }
    }
}

/// A substream's buffer, valid for `'a` (see [`SubstreamSlot`]).
///
/// # Invariants
///
/// `ptr` is valid for reads and writes of `len` bytes for `'a`. Other
/// writers (the application through mmap) may change it at any time, so it
/// is only ever accessed through raw copies, never through references.
#[derive(Clone, Copy)]
pub(crate) struct DmaBuffer<'a> {
    ptr: NonNull<u8>,
    len: usize,
    _life: PhantomData<&'a ()>,
}

impl DmaBuffer<'_> {
    /// The address of `[at, at + len)`, when that lies inside the buffer.
    pub(crate) fn range(&self, at: usize, len: usize) -> Option<*mut u8> {
        let end = at.checked_add(len)?;
        if end > self.len {
            return None;
        }
        // `at <= len`, inside the allocation (or one past its end).
        Some(self.ptr.as_ptr().wrapping_add(at))
    }

    /// Copies `len` bytes from `src` at `from` to this buffer at `at`.
    /// `ERANGE` (and nothing copied) when either range leaves its buffer.
    pub(crate) fn copy_from(
        &self,
        at: usize,
        src: &DmaBuffer<'_>,
        from: usize,
        len: usize,
    ) -> Result {
        let (Some(d), Some(s)) = (self.range(at, len), src.range(from, len)) else {
            return Err(ERANGE);
        };
        // SAFETY: both ranges are inside their buffers (checked), valid for
        // `len` bytes (invariant); `copy` allows them to overlap.
        unsafe { core::ptr::copy(s, d, len) };
        Ok(())
    }

    /// Writes silence of ALSA `format` for `samples` samples at byte `at`.
    pub(crate) fn silence(&self, format: u32, at: usize, samples: usize) -> Result {
        let bytes = sample_bytes(format)?.checked_mul(samples).ok_or(ERANGE)?;
        let d = self.range(at, bytes).ok_or(ERANGE)?;
        // SAFETY: the range holds `samples` samples of `format` (checked).
        unsafe { bindings::snd_pcm_format_set_silence(format as _, d.cast(), samples as _) };
        Ok(())
    }
}

/// Bytes per sample of ALSA `format`.
pub(crate) fn sample_bytes(format: u32) -> Result<usize> {
    // SAFETY: a table lookup; any value is accepted (an error for unknown ones).
    let bits = unsafe { bindings::snd_pcm_format_physical_width(format as _) };
    match bits {
        b if b > 0 && b % 8 == 0 => Ok(b as usize / 8),
        _ => Err(EINVAL),
    }
}

struct SlotState {
    ss: *mut bindings::snd_pcm_substream,
    buf: Option<(NonNull<u8>, usize)>,
    users: u32,
}

// SAFETY: the pointers are only used through the slot's protocol (see
// `SubstreamSlot`), from any CPU.
unsafe impl Send for SlotState {}

/// Where an open substream of a `Card<D>` PCM is kept for code that runs
/// outside its callbacks (timers).
///
/// # Invariants
///
/// `ss` is non-null only from the open trampoline (attach) to the close
/// trampoline (detach) of that substream; `buf` is set only between the
/// allocation in the hw_params trampoline and its withdrawal in the
/// hw_free or hw_params trampoline. Detach and withdrawal wait until
/// `users` is zero after clearing, and `users` counts the live
/// [`Attached`] guards, so a value a guard holds stays valid until it drops.
#[pin_data]
pub(crate) struct SubstreamSlot<D> {
    #[pin]
    state: IrqSpinLock<SlotState>,
    _data: PhantomData<D>,
}

impl<D: PcmOps> SubstreamSlot<D> {
    /// An empty slot.
    pub(crate) fn new() -> impl PinInit<Self> {
        kernel::pin_init!(SubstreamSlot {
            state <- IrqSpinLock::new(
                SlotState {
                    ss: core::ptr::null_mut(),
                    buf: None,
                    users: 0,
                },
                LockClass::Slot
            ),
            _data: PhantomData,
        })
    }

    /// The attached substream and its buffer (if one is allocated), or
    /// `None` when no substream is attached; they stay valid while the
    /// returned guard lives. Any context; no lock is held meanwhile.
    pub(crate) fn get(&self) -> Option<Attached<'_, D>> {
        let mut st = self.state.lock();
        if st.ss.is_null() {
            return None;
        }
        st.users += 1;
        // INVARIANT: counted in `users` until the guard drops.
        Some(Attached {
            slot: self,
            ss: st.ss,
            buf: st.buf,
        })
    }

    fn attach(&self, raw: *mut bindings::snd_pcm_substream) -> Result {
        let mut st = self.state.lock();
        if !st.ss.is_null() {
            return Err(EBUSY);
        }
        st.ss = raw;
        st.buf = None;
        Ok(())
    }

    /// Waits until no `with` is in progress (process context).
    fn wait_idle(&self) {
        while self.state.lock().users != 0 {
            // SAFETY: a sleep; the callers run in process context.
            unsafe { bindings::snd_voip_fsleep(20) };
        }
    }

    fn detach(&self, raw: *mut bindings::snd_pcm_substream) {
        {
            let mut st = self.state.lock();
            if st.ss == raw {
                st.ss = core::ptr::null_mut();
                st.buf = None;
            }
        }
        self.wait_idle();
    }

    fn withdraw_buffer(&self) {
        self.state.lock().buf = None;
        self.wait_idle();
    }

    fn set_buffer(&self, raw: *mut bindings::snd_pcm_substream, ptr: *mut u8, len: usize) {
        let mut st = self.state.lock();
        if st.ss == raw {
            st.buf = NonNull::new(ptr).map(|p| (p, len));
        }
    }
}

/// A use of a [`SubstreamSlot`]: the substream and buffer it held when
/// taken, valid until the guard drops.
///
/// # Invariants
///
/// The guard is counted in its slot's `users`, so `ss` stays open and
/// `buf` allocated until it drops (the slot's invariant).
pub(crate) struct Attached<'a, D: PcmOps> {
    slot: &'a SubstreamSlot<D>,
    ss: *mut bindings::snd_pcm_substream,
    buf: Option<(NonNull<u8>, usize)>,
}

impl<D: PcmOps> Attached<'_, D> {
    /// The substream, borrowed from the guard.
    pub(crate) fn substream(&self) -> &Substream<D> {
        // SAFETY: by the invariant the substream is open while `self` lives.
        unsafe { Substream::<D>::from_raw(self.ss) }
    }

    /// Its buffer, if allocated, borrowed from the guard.
    pub(crate) fn buffer(&self) -> Option<DmaBuffer<'_>> {
        // INVARIANT: allocated while `self` lives (the guard's invariant).
        self.buf.map(|(ptr, len)| DmaBuffer {
            ptr,
            len,
            _life: PhantomData,
        })
    }
}

impl<D: PcmOps> Drop for Attached<'_, D> {
    fn drop(&mut self) {
        self.slot.state.lock().users -= 1;
    }
}

/// The slot the open trampoline attached the substream to.
///
/// # Safety
///
/// `raw` must be an open substream of a `Card<D>` PCM.
unsafe fn slot_of<'a, D: PcmOps>(
    raw: *mut bindings::snd_pcm_substream,
) -> Option<&'a SubstreamSlot<D>> {
    // SAFETY: open substreams have a runtime; its `private_data` is null
    // or the slot (in the card's `D`, which outlives the substream) set by
    // `open_cb`.
    unsafe { ((*(*raw).runtime).private_data as *const SubstreamSlot<D>).as_ref() }
}

fn to_c(r: Result) -> c_int {
    match r {
        Ok(()) => 0,
        Err(e) => e.to_errno(),
    }
}

unsafe extern "C" fn open_cb<D: PcmOps>(raw: *mut bindings::snd_pcm_substream) -> c_int {
    // SAFETY: ALSA passes a substream being opened, of a `Card<D>` PCM (its
    // ops table is only installed by `new_pcm`); it has a runtime.
    let ss = unsafe { Substream::<D>::from_raw(raw) };
    let d = ss.data();
    let Some(slot) = d.slot(ss) else {
        return ENODEV.to_errno();
    };
    if let Err(e) = slot.attach(raw) {
        return e.to_errno();
    }
    let runtime = ss.runtime();
    // SAFETY: the runtime is new and ours during open; its `private_data`
    // belongs to the driver (this layer).
    unsafe { (*runtime).private_data = core::ptr::from_ref(slot).cast_mut().cast() };
    // INVARIANT: nothing else uses the runtime until open returns.
    let mut setup = OpenSetup { ss, runtime };
    match d.open(ss, &mut setup) {
        Ok(()) => 0,
        Err(e) => {
            slot.detach(raw);
            // SAFETY: as above.
            unsafe { (*runtime).private_data = core::ptr::null_mut() };
            e.to_errno()
        }
    }
}

unsafe extern "C" fn close_cb<D: PcmOps>(raw: *mut bindings::snd_pcm_substream) -> c_int {
    // SAFETY: ALSA passes an open substream of a `Card<D>` PCM.
    let ss = unsafe { Substream::<D>::from_raw(raw) };
    ss.data().close(ss);
    // SAFETY: as above.
    if let Some(slot) = unsafe { slot_of::<D>(raw) } {
        slot.detach(raw);
    }
    0
}

unsafe extern "C" fn hw_params_cb<D: PcmOps>(
    raw: *mut bindings::snd_pcm_substream,
    params: *mut bindings::snd_pcm_hw_params,
) -> c_int {
    // SAFETY: ALSA passes an open substream and its new params.
    let slot = unsafe { slot_of::<D>(raw) };
    if let Some(s) = slot {
        // A re-run of hw_params may re-allocate: nobody may hold the old one.
        s.withdraw_buffer();
    }
    // SAFETY: as above; the buffer functions allocate the runtime's buffer
    // (freeing an older, smaller one), from the VMALLOC preallocation
    // `new_pcm` set up.
    let ret = unsafe {
        bindings::snd_pcm_lib_malloc_pages(raw, bindings::snd_voip_params_buffer_bytes(params))
    };
    if ret < 0 {
        return ret;
    }
    if let Some(s) = slot {
        // SAFETY: the runtime now holds the buffer just allocated.
        let (ptr, len) = unsafe { ((*(*raw).runtime).dma_area, (*(*raw).runtime).dma_bytes) };
        s.set_buffer(raw, ptr.cast(), len);
    }
    0
}

unsafe extern "C" fn hw_free_cb<D: PcmOps>(raw: *mut bindings::snd_pcm_substream) -> c_int {
    // SAFETY: ALSA passes an open substream of a `Card<D>` PCM.
    let ss = unsafe { Substream::<D>::from_raw(raw) };
    // SAFETY: as above.
    if let Some(s) = unsafe { slot_of::<D>(raw) } {
        s.withdraw_buffer();
    }
    ss.data().hw_free(ss);
    // SAFETY: frees the buffer `hw_params_cb` allocated (a no-op without one).
    unsafe { bindings::snd_pcm_lib_free_pages(raw) }
}

unsafe extern "C" fn prepare_cb<D: PcmOps>(raw: *mut bindings::snd_pcm_substream) -> c_int {
    // SAFETY: ALSA passes an open substream of a `Card<D>` PCM.
    let ss = unsafe { Substream::<D>::from_raw(raw) };
    to_c(ss.data().prepare(ss))
}

unsafe extern "C" fn sync_stop_cb<D: PcmOps>(raw: *mut bindings::snd_pcm_substream) -> c_int {
    // SAFETY: ALSA passes an open substream of a `Card<D>` PCM.
    let ss = unsafe { Substream::<D>::from_raw(raw) };
    ss.data().sync_stop(ss);
    0
}

unsafe extern "C" fn trigger_cb<D: PcmOps>(
    raw: *mut bindings::snd_pcm_substream,
    cmd: c_int,
) -> c_int {
    let cmd = match cmd as u32 {
        bindings::SNDRV_PCM_TRIGGER_START => Trigger::Start,
        bindings::SNDRV_PCM_TRIGGER_STOP => Trigger::Stop,
        bindings::SNDRV_PCM_TRIGGER_PAUSE_PUSH => Trigger::PausePush,
        bindings::SNDRV_PCM_TRIGGER_PAUSE_RELEASE => Trigger::PauseRelease,
        bindings::SNDRV_PCM_TRIGGER_SUSPEND => Trigger::Suspend,
        bindings::SNDRV_PCM_TRIGGER_RESUME => Trigger::Resume,
        _ => return EINVAL.to_errno(),
    };
    // SAFETY: ALSA passes an open substream of a `Card<D>` PCM.
    let ss = unsafe { Substream::<D>::from_raw(raw) };
    to_c(ss.data().trigger(ss, cmd))
}

unsafe extern "C" fn pointer_cb<D: PcmOps>(
    raw: *mut bindings::snd_pcm_substream,
) -> bindings::snd_pcm_uframes_t {
    // SAFETY: ALSA passes an open substream of a `Card<D>` PCM.
    let ss = unsafe { Substream::<D>::from_raw(raw) };
    let p = ss.data().pointer(ss);
    // The pointer callback runs under the stream lock, which is what
    // guards `runtime->delay` (the core reads it there too).
    // SAFETY: the runtime is live.
    unsafe { (*ss.runtime()).delay = p.delay as _ };
    p.pos as _
}

unsafe extern "C" fn rule_cb<D: PcmOps>(
    params: *mut bindings::snd_pcm_hw_params,
    rule: *mut bindings::snd_pcm_hw_rule,
) -> c_int {
    // SAFETY: ALSA calls a rule of `OpenSetup::add_rule` with live params
    // and the rule, whose private pointer is its (open) substream.
    let (ss, var) = unsafe {
        (
            Substream::<D>::from_raw((*rule).private.cast()),
            (*rule).var,
        )
    };
    let Some(var) = HwParam::from_raw(var as c_int) else {
        return 0;
    };
    // SAFETY: the params are being refined, exclusively, during this call.
    let params = unsafe { &mut *params.cast::<HwParams>() };
    match ss.data().hw_rule(ss, var, params) {
        Ok(changed) => c_int::from(changed),
        Err(e) => e.to_errno(),
    }
}

/// The static `snd_pcm_ops` table of a card data type.
pub(super) struct OpsTable<D>(PhantomData<D>);

impl<D: PcmOps> OpsTable<D> {
    pub(super) const OPS: bindings::snd_pcm_ops = bindings::snd_pcm_ops {
        open: Some(open_cb::<D>),
        close: Some(close_cb::<D>),
        ioctl: None,
        hw_params: Some(hw_params_cb::<D>),
        hw_free: Some(hw_free_cb::<D>),
        prepare: Some(prepare_cb::<D>),
        trigger: Some(trigger_cb::<D>),
        sync_stop: Some(sync_stop_cb::<D>),
        pointer: Some(pointer_cb::<D>),
        get_time_info: None,
        fill_silence: None,
        copy: None,
        page: None,
        mmap: None,
        ack: None,
    };
}

/// Copies `name` into a fixed C char array, truncating, NUL-terminated.
pub(super) fn copy_cstr(dst: &mut [kernel::ffi::c_char], src: &CStr) {
    let bytes = src.to_bytes();
    let n = bytes.len().min(dst.len().saturating_sub(1));
    for (d, s) in dst.iter_mut().zip(bytes.iter().take(n)) {
        *d = *s as kernel::ffi::c_char;
    }
    if let Some(end) = dst.get_mut(n) {
        *end = 0;
    }
}
