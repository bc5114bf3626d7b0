// SPDX-License-Identifier: GPL-2.0
//! Safe wrappers around the ALSA core: [`Card`], [`Pcm`], [`Substream`],
//! [`Runtime`] and the [`PcmOps`] trait with its C trampolines.
//!
//! The 6.12 kernel crate has no sound abstractions; this is the one place the
//! driver touches the raw ALSA bindings. It follows the shape of the
//! experimental `kernel::sound` API (ops trait, static ops table, trampolines).

use crate::bindings;
use core::ffi::CStr;
use core::marker::PhantomData;
use kernel::error::{to_result, Error, Result};
use kernel::ffi::{c_char, c_int, c_void};
use kernel::prelude::*;

/// Copies `src` into a fixed C char array, truncating, always NUL-terminated.
fn copy_cstr(dst: &mut [c_char], src: &CStr) {
    let bytes = src.to_bytes();
    let n = bytes.len().min(dst.len().saturating_sub(1));
    for (d, s) in dst.iter_mut().zip(bytes.iter().take(n)) {
        *d = *s as c_char;
    }
    if let Some(end) = dst.get_mut(n) {
        *end = 0;
    }
}

/// An ALSA sound card, freed (with everything on it) on drop.
///
/// # Invariants
///
/// `raw` points to a card created by `snd_card_new` and not yet freed.
pub(crate) struct Card {
    raw: *mut bindings::snd_card,
}

// SAFETY: a card may be registered and freed from any process context.
unsafe impl Send for Card {}
// SAFETY: the methods taking `&self` only call ALSA functions that do their own locking.
unsafe impl Sync for Card {}

impl Card {
    /// Creates a card under `parent` (`snd_card_new`). `index` -1 picks the
    /// first free slot.
    ///
    /// # Safety
    ///
    /// `parent` must be a valid device that outlives the card, and `module`
    /// must be this module's `THIS_MODULE`.
    pub(crate) unsafe fn new(
        parent: *mut bindings::device,
        index: c_int,
        id: &CStr,
        module: *mut bindings::module,
    ) -> Result<Card> {
        let mut raw: *mut bindings::snd_card = core::ptr::null_mut();
        // SAFETY: the caller guarantees `parent` and `module`; `id` is a valid C string.
        to_result(unsafe {
            bindings::snd_card_new(parent, index, id.as_ptr().cast(), module, 0, &mut raw)
        })?;
        // INVARIANT: snd_card_new succeeded, so `raw` is a live card.
        Ok(Card { raw })
    }

    /// Sets the driver, short and long names shown in /proc/asound/cards and `aplay -l`.
    pub(crate) fn set_names(&self, driver: &CStr, short: &CStr, long: &CStr) {
        // SAFETY: by the invariant the card is live; the card is not
        // registered yet, so nothing else reads these fields.
        let card = unsafe { &mut *self.raw };
        copy_cstr(&mut card.driver, driver);
        copy_cstr(&mut card.shortname, short);
        copy_cstr(&mut card.longname, long);
    }

    /// The card number ALSA chose.
    pub(crate) fn number(&self) -> c_int {
        // SAFETY: by the invariant the card is live.
        unsafe { (*self.raw).number }
    }

    /// Adds a PCM device with `substreams` playback and capture substreams.
    pub(crate) fn new_pcm(&self, name: &CStr, device: c_int, substreams: c_int) -> Result<Pcm<'_>> {
        let mut raw: *mut bindings::snd_pcm = core::ptr::null_mut();
        // SAFETY: by the invariant the card is live; `name` is a valid C string.
        to_result(unsafe {
            bindings::snd_pcm_new(
                self.raw,
                name.as_ptr().cast(),
                device,
                substreams,
                substreams,
                &mut raw,
            )
        })?;
        // INVARIANT: snd_pcm_new succeeded; the PCM belongs to the card.
        Ok(Pcm {
            raw,
            _card: PhantomData,
        })
    }

    /// Adds a read-only text file /proc/asound/cardN/`name`.
    ///
    /// # Safety
    ///
    /// `private` must stay valid for as long as the card exists; `read` is
    /// called with it in the entry's `private_data`.
    pub(crate) unsafe fn add_proc(
        &self,
        name: &CStr,
        private: *mut c_void,
        read: unsafe extern "C" fn(*mut bindings::snd_info_entry, *mut bindings::snd_info_buffer),
    ) -> Result {
        // SAFETY: by the invariant the card is live; the caller guarantees `private`.
        to_result(unsafe {
            bindings::snd_card_rw_proc_new(
                self.raw,
                name.as_ptr().cast(),
                private,
                Some(read),
                None,
            )
        })
    }

    /// Adds an enumerated mixer control `name`, index `index`, whose
    /// callbacks receive `private` and `value_index` (see [`EnumControl`]).
    ///
    /// # Safety
    ///
    /// `private` must stay valid, as `T` expects, until the card is freed.
    pub(crate) unsafe fn add_enum_control<T: EnumControl>(
        &self,
        name: &CStr,
        index: u32,
        private: *mut c_void,
        value_index: usize,
    ) -> Result {
        let knew = bindings::snd_kcontrol_new {
            iface: bindings::SND_VOIP_CTL_IFACE_MIXER as _,
            name: name.as_ptr().cast(),
            index,
            access: bindings::SND_VOIP_CTL_ACCESS_READWRITE,
            info: Some(enum_info_cb::<T>),
            get: Some(enum_get_cb::<T>),
            put: Some(enum_put_cb::<T>),
            private_value: value_index as _,
            ..Default::default()
        };
        // SAFETY: `knew` is a valid template (copied by snd_ctl_new1); the
        // caller guarantees `private`.
        let kctl = unsafe { bindings::snd_ctl_new1(&knew, private) };
        if kctl.is_null() {
            return Err(ENOMEM);
        }
        // SAFETY: by the invariant the card is live; snd_ctl_add takes
        // `kctl` (and frees it itself on error).
        to_result(unsafe { bindings::snd_ctl_add(self.raw, kctl) })
    }

    /// Registers the card: its devices appear in userspace.
    pub(crate) fn register(&self) -> Result {
        // SAFETY: by the invariant the card is live.
        to_result(unsafe { bindings::snd_card_register(self.raw) })
    }
}

impl Drop for Card {
    fn drop(&mut self) {
        // SAFETY: by the invariant the card is live; it is freed exactly once here.
        // snd_card_free disconnects the card and waits until every file on it is closed.
        unsafe { bindings::snd_card_free(self.raw) };
    }
}

/// A PCM device of a [`Card`]; freed with the card.
pub(crate) struct Pcm<'a> {
    raw: *mut bindings::snd_pcm,
    _card: PhantomData<&'a Card>,
}

impl Pcm<'_> {
    /// Installs the ops of `T` for both directions, stores `private` where every
    /// substream finds it, names the device and lets the core manage vmalloc
    /// buffers (so mmap works).
    ///
    /// # Safety
    ///
    /// `private` must stay valid for as long as the card exists.
    pub(crate) unsafe fn setup<T: PcmOps>(&self, name: &CStr, private: *mut c_void) {
        let ops: &'static bindings::snd_pcm_ops = &OpsTable::<T>::OPS;
        // SAFETY: the PCM is live (it belongs to the borrowed card); the ops
        // table is static; the caller guarantees `private`.
        unsafe {
            bindings::snd_pcm_set_ops(self.raw, bindings::SNDRV_PCM_STREAM_PLAYBACK as c_int, ops);
            bindings::snd_pcm_set_ops(self.raw, bindings::SNDRV_PCM_STREAM_CAPTURE as c_int, ops);
            (*self.raw).private_data = private;
            copy_cstr(&mut (*self.raw).name, name);
            bindings::snd_pcm_set_managed_buffer_all(
                self.raw,
                bindings::SNDRV_DMA_TYPE_VMALLOC as c_int,
                core::ptr::null_mut(),
                0,
                0,
            );
        }
    }
}

/// Stream direction of a substream.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Stream {
    /// Playback: the application writes.
    Playback,
    /// Capture: the application reads.
    Capture,
}

/// A PCM trigger command.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Trigger {
    /// Start the stream.
    Start,
    /// Stop the stream (also suspend).
    Stop,
    /// Pause.
    PausePush,
    /// Resume from pause.
    PauseRelease,
}

/// A PCM substream, borrowed for the duration of an ops callback.
///
/// # Invariants
///
/// `raw` points to a live substream, open for the duration of the callback
/// (or of the open..close span when kept by the driver).
#[derive(Clone, Copy)]
pub(crate) struct Substream {
    raw: *mut bindings::snd_pcm_substream,
}

impl Substream {
    /// # Safety
    ///
    /// `raw` must be a live substream for as long as the value is used.
    pub(crate) unsafe fn from_raw(raw: *mut bindings::snd_pcm_substream) -> Self {
        Substream { raw }
    }

    /// The PCM device number (0 for applications, 1 for the bridge).
    pub(crate) fn device(&self) -> u32 {
        // SAFETY: by the invariant the substream and its PCM are live.
        let dev = unsafe { (*(*self.raw).pcm).device };
        dev as u32
    }

    /// The substream number within its direction.
    pub(crate) fn number(&self) -> u32 {
        // SAFETY: by the invariant the substream is live.
        let n = unsafe { (*self.raw).number };
        n as u32
    }

    /// Playback or capture.
    pub(crate) fn stream(&self) -> Stream {
        // SAFETY: by the invariant the substream is live.
        if unsafe { (*self.raw).stream } == bindings::SNDRV_PCM_STREAM_PLAYBACK as c_int {
            Stream::Playback
        } else {
            Stream::Capture
        }
    }

    /// The PCM's private data (set by [`Pcm::setup`]).
    pub(crate) fn private(&self) -> *mut c_void {
        // SAFETY: by the invariant the substream is live.
        unsafe { (*self.raw).private_data }
    }

    /// The runtime of the open substream.
    pub(crate) fn runtime(&self) -> Runtime {
        // SAFETY: by the invariant the substream is open, so it has a runtime.
        Runtime {
            raw: unsafe { (*self.raw).runtime },
        }
    }

    /// Whether the stream is draining (playback only).
    pub(crate) fn is_draining(&self) -> bool {
        // SAFETY: by the invariant the substream is open.
        unsafe { bindings::snd_voip_pcm_state(self.raw) == bindings::SND_VOIP_STATE_DRAINING }
    }

    /// The application pointer: frames written (playback) or read (capture)
    /// since prepare, modulo the runtime's boundary (2^63 or more on 64-bit).
    pub(crate) fn appl_ptr(&self) -> u64 {
        // SAFETY: by the invariant the substream is open.
        let v = unsafe { bindings::snd_voip_pcm_appl_ptr((*self.raw).runtime) };
        v as u64
    }

    /// Tells the core a period has elapsed. Must not be called with a lock
    /// held that the PCM callbacks take.
    pub(crate) fn period_elapsed(&self) {
        // SAFETY: by the invariant the substream is open.
        unsafe { bindings::snd_pcm_period_elapsed(self.raw) };
    }
}

/// The runtime of an open substream (negotiated parameters, buffer).
#[derive(Clone, Copy)]
pub(crate) struct Runtime {
    raw: *mut bindings::snd_pcm_runtime,
}

/// Signature of an ALSA hw-params refinement rule.
pub(crate) type RuleFn =
    unsafe extern "C" fn(*mut bindings::snd_pcm_hw_params, *mut bindings::snd_pcm_hw_rule) -> c_int;

impl Runtime {
    /// Advertises the hardware capabilities (in `open`).
    pub(crate) fn set_hw(&self, hw: &bindings::snd_pcm_hardware) {
        // SAFETY: the runtime is live while its substream is open; `open` runs
        // before any other user of `hw`.
        unsafe { (*self.raw).hw = *hw };
    }

    /// Adds a refinement rule on `var` that depends on `dep` (in `open`).
    ///
    /// # Safety
    ///
    /// `private` must stay valid until the substream is closed.
    pub(crate) unsafe fn add_rule(
        &self,
        var: c_int,
        func: RuleFn,
        private: *mut c_void,
        dep: c_int,
    ) -> Result {
        // SAFETY: the runtime is live; the caller guarantees `private`.
        to_result(unsafe {
            bindings::snd_pcm_hw_rule_add(self.raw, 0, var, Some(func), private, dep, -1i32)
        })
    }

    /// Limits `var` to `min..=max` (in `open`).
    pub(crate) fn constrain_minmax(&self, var: c_int, min: u32, max: u32) -> Result {
        // SAFETY: the runtime is live.
        let ret = unsafe { bindings::snd_pcm_hw_constraint_minmax(self.raw, var as _, min, max) };
        // The function returns a positive value when it changed the space.
        if ret < 0 {
            Err(Error::from_errno(ret))
        } else {
            Ok(())
        }
    }

    /// ALSA format number (valid after hw_params).
    pub(crate) fn format(&self) -> u32 {
        // SAFETY: the runtime is live.
        let f = unsafe { (*self.raw).format };
        f as u32
    }

    /// Frames per second.
    pub(crate) fn rate(&self) -> u32 {
        // SAFETY: the runtime is live.
        unsafe { (*self.raw).rate }
    }

    /// Channels.
    pub(crate) fn channels(&self) -> u32 {
        // SAFETY: the runtime is live.
        unsafe { (*self.raw).channels }
    }

    /// Buffer size in frames.
    pub(crate) fn buffer_size(&self) -> usize {
        // SAFETY: the runtime is live.
        let v = unsafe { (*self.raw).buffer_size };
        v as usize
    }

    /// Period size in frames.
    pub(crate) fn period_size(&self) -> usize {
        // SAFETY: the runtime is live.
        let v = unsafe { (*self.raw).period_size };
        v as usize
    }

    /// The buffer and its length in bytes.
    pub(crate) fn dma_area(&self) -> (*mut u8, usize) {
        // SAFETY: the runtime is live.
        unsafe { ((*self.raw).dma_area.cast::<u8>(), (*self.raw).dma_bytes) }
    }
}

/// Writes silence of `format` (ALSA value) for `samples` samples at `buf`.
///
/// # Safety
///
/// `buf` must be valid for writes of `samples` samples of `format`.
pub(crate) unsafe fn write_silence(format: u32, buf: *mut u8, samples: usize) {
    // SAFETY: guaranteed by the caller.
    unsafe { bindings::snd_pcm_format_set_silence(format as _, buf.cast(), samples as _) };
}

/// An enumerated mixer control whose value the driver keeps.
pub(crate) trait EnumControl {
    /// The item names, in value order (at most 8).
    const ITEMS: &'static [&'static CStr];
    /// The current value of instance `index`.
    fn get(private: *mut c_void, index: usize) -> u32;
    /// Sets instance `index` to `value`; `Ok(true)` when it changed.
    fn put(private: *mut c_void, index: usize, value: u32) -> Result<bool>;
}

unsafe extern "C" fn enum_info_cb<T: EnumControl>(
    _kctl: *mut bindings::snd_kcontrol,
    info: *mut bindings::snd_ctl_elem_info,
) -> c_int {
    let mut names: [*const c_char; 8] = [core::ptr::null(); 8];
    let n = T::ITEMS.len().min(names.len());
    for (d, s) in names.iter_mut().zip(T::ITEMS.iter()) {
        *d = s.as_ptr().cast();
    }
    // SAFETY: ALSA passes a live info; `names` holds `n` C strings that
    // snd_ctl_enum_info copies before returning.
    unsafe { bindings::snd_ctl_enum_info(info, 1, n as _, names.as_ptr()) }
}

unsafe extern "C" fn enum_get_cb<T: EnumControl>(
    kctl: *mut bindings::snd_kcontrol,
    value: *mut bindings::snd_ctl_elem_value,
) -> c_int {
    // SAFETY: ALSA passes a live control made by `add_enum_control`.
    let (private, index) = unsafe { ((*kctl).private_data, (*kctl).private_value as usize) };
    let v = T::get(private, index);
    // SAFETY: `value` is live; an enumerated control's value is `enumerated`.
    unsafe { (*value).value.enumerated.item[0] = v };
    0
}

unsafe extern "C" fn enum_put_cb<T: EnumControl>(
    kctl: *mut bindings::snd_kcontrol,
    value: *mut bindings::snd_ctl_elem_value,
) -> c_int {
    // SAFETY: as in `enum_get_cb`.
    let (private, index, v) = unsafe {
        (
            (*kctl).private_data,
            (*kctl).private_value as usize,
            (*value).value.enumerated.item[0],
        )
    };
    if v as usize >= T::ITEMS.len() {
        return EINVAL.to_errno();
    }
    match T::put(private, index, v) {
        Ok(changed) => c_int::from(changed),
        Err(e) => e.to_errno(),
    }
}

/// The PCM callbacks of a driver. Each runs in the context ALSA documents
/// for it: `trigger` and `pointer` atomically under the stream lock, the
/// others in process context.
pub(crate) trait PcmOps {
    /// A substream is opened.
    fn open(ss: Substream) -> Result;
    /// A substream is closed.
    fn close(ss: Substream) -> Result;
    /// Buffers are released.
    fn hw_free(ss: Substream) -> Result;
    /// Prepare to start.
    fn prepare(ss: Substream) -> Result;
    /// Start, stop, pause.
    fn trigger(ss: Substream, cmd: Trigger) -> Result;
    /// Wait until nothing started by the stream is still running.
    fn sync_stop(ss: Substream) -> Result;
    /// Current position in the buffer, in frames.
    fn pointer(ss: Substream) -> usize;
}

fn to_c(r: Result) -> c_int {
    match r {
        Ok(()) => 0,
        Err(e) => e.to_errno(),
    }
}

unsafe extern "C" fn open_cb<T: PcmOps>(ss: *mut bindings::snd_pcm_substream) -> c_int {
    // SAFETY: ALSA passes a live substream.
    to_c(T::open(unsafe { Substream::from_raw(ss) }))
}
unsafe extern "C" fn close_cb<T: PcmOps>(ss: *mut bindings::snd_pcm_substream) -> c_int {
    // SAFETY: ALSA passes a live substream.
    to_c(T::close(unsafe { Substream::from_raw(ss) }))
}
unsafe extern "C" fn hw_free_cb<T: PcmOps>(ss: *mut bindings::snd_pcm_substream) -> c_int {
    // SAFETY: ALSA passes a live substream.
    to_c(T::hw_free(unsafe { Substream::from_raw(ss) }))
}
unsafe extern "C" fn prepare_cb<T: PcmOps>(ss: *mut bindings::snd_pcm_substream) -> c_int {
    // SAFETY: ALSA passes a live substream.
    to_c(T::prepare(unsafe { Substream::from_raw(ss) }))
}
unsafe extern "C" fn sync_stop_cb<T: PcmOps>(ss: *mut bindings::snd_pcm_substream) -> c_int {
    // SAFETY: ALSA passes a live substream.
    to_c(T::sync_stop(unsafe { Substream::from_raw(ss) }))
}
unsafe extern "C" fn trigger_cb<T: PcmOps>(
    ss: *mut bindings::snd_pcm_substream,
    cmd: c_int,
) -> c_int {
    let cmd = match cmd as u32 {
        bindings::SNDRV_PCM_TRIGGER_START => Trigger::Start,
        bindings::SNDRV_PCM_TRIGGER_STOP | bindings::SNDRV_PCM_TRIGGER_SUSPEND => Trigger::Stop,
        bindings::SNDRV_PCM_TRIGGER_PAUSE_PUSH => Trigger::PausePush,
        bindings::SNDRV_PCM_TRIGGER_PAUSE_RELEASE => Trigger::PauseRelease,
        _ => return EINVAL.to_errno(),
    };
    // SAFETY: ALSA passes a live substream.
    to_c(T::trigger(unsafe { Substream::from_raw(ss) }, cmd))
}
unsafe extern "C" fn pointer_cb<T: PcmOps>(
    ss: *mut bindings::snd_pcm_substream,
) -> bindings::snd_pcm_uframes_t {
    // SAFETY: ALSA passes a live substream.
    T::pointer(unsafe { Substream::from_raw(ss) }) as _
}

/// The static `snd_pcm_ops` table of a [`PcmOps`] implementation.
struct OpsTable<T>(PhantomData<T>);

impl<T: PcmOps> OpsTable<T> {
    const OPS: bindings::snd_pcm_ops = bindings::snd_pcm_ops {
        open: Some(open_cb::<T>),
        close: Some(close_cb::<T>),
        ioctl: None,
        hw_params: None,
        hw_free: Some(hw_free_cb::<T>),
        prepare: Some(prepare_cb::<T>),
        trigger: Some(trigger_cb::<T>),
        sync_stop: Some(sync_stop_cb::<T>),
        pointer: Some(pointer_cb::<T>),
        get_time_info: None,
        fill_silence: None,
        copy: None,
        page: None,
        mmap: None,
        ack: None,
    };
}

/// Reads the format mask of hw params being refined, as 32-bit words.
///
/// # Safety
///
/// `params` must be the live params passed to a rule callback.
pub(crate) unsafe fn params_mask<'a>(
    params: *mut bindings::snd_pcm_hw_params,
    var: c_int,
) -> &'a mut [u32] {
    // SAFETY: guaranteed by the caller; the mask is a plain array of u32.
    unsafe {
        let mask = bindings::snd_voip_hw_param_mask(params, var as _);
        (&mut (*mask).bits)[..].as_mut()
    }
}

/// Narrows the interval `var` of hw params being refined to exactly `value`.
/// Returns what `snd_interval_refine` returns (1 changed, 0 not, <0 empty).
///
/// # Safety
///
/// `params` must be the live params passed to a rule callback.
pub(crate) unsafe fn params_fix_interval(
    params: *mut bindings::snd_pcm_hw_params,
    var: c_int,
    value: u32,
) -> c_int {
    let mut iv = bindings::snd_interval::default();
    iv.min = value;
    iv.max = value;
    iv.set_integer(1);
    // SAFETY: guaranteed by the caller.
    unsafe {
        bindings::snd_interval_refine(bindings::snd_voip_hw_param_interval(params, var as _), &iv)
    }
}
