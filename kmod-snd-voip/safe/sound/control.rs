// SPDX-License-Identifier: GPL-2.0
//! Card controls ([`Controls`], [`CtlDesc`]) and their change events
//! ([`CtlNotify`]).
//!
//! A control's callbacks get the card's data `D` and the `key` the driver
//! gave it; the layer checks every value userspace writes against the
//! control's kind before the driver sees it.

use super::card::data_of;
use crate::bindings;
use core::ffi::CStr;
use core::sync::atomic::{AtomicPtr, AtomicU8, Ordering};
use kernel::error::{code::*, Result};
use kernel::ffi::{c_char, c_int};
use kernel::types::Opaque;

/// The interface a control belongs to.
#[derive(Clone, Copy)]
pub(crate) enum Iface {
    /// A mixer control (amixer's default).
    Mixer,
    /// A PCM control (addressed with a device and subdevice, as snd-aloop's).
    Pcm,
}

impl Iface {
    pub(super) fn to_raw(self) -> c_int {
        match self {
            Iface::Mixer => bindings::SND_VOIP_CTL_IFACE_MIXER,
            Iface::Pcm => bindings::SND_VOIP_CTL_IFACE_PCM,
        }
    }
}

/// What a control holds (one value each).
#[derive(Clone, Copy)]
pub(crate) enum CtlKind {
    /// 0 or 1.
    Boolean,
    /// An integer in `min..=max`.
    Integer {
        /// Lowest value.
        min: i64,
        /// Highest value.
        max: i64,
    },
    /// An index into these item names (at most 8).
    Enumerated(&'static [&'static CStr]),
}

impl CtlKind {
    /// Whether `v` is a value of this kind.
    fn admits(self, v: i64) -> bool {
        match self {
            CtlKind::Boolean => v == 0 || v == 1,
            CtlKind::Integer { min, max } => (min..=max).contains(&v),
            CtlKind::Enumerated(items) => usize::try_from(v).is_ok_and(|i| i < items.len()),
        }
    }
}

/// A control to add (see `Card::add_control`).
pub(crate) struct CtlDesc {
    /// Interface.
    pub(crate) iface: Iface,
    /// Name.
    pub(crate) name: &'static CStr,
    /// Index (mixer controls with the same name).
    pub(crate) index: u32,
    /// PCM device (PCM controls).
    pub(crate) device: u32,
    /// PCM subdevice (PCM controls).
    pub(crate) subdevice: u32,
    /// Read-only for userspace.
    pub(crate) read_only: bool,
    /// The driver's key, given back to its callbacks.
    pub(crate) key: usize,
}

/// The callbacks of a card's controls, implemented by its data.
pub(crate) trait Controls: Sized + Send + Sync {
    /// The kind of control `key`.
    fn ctl_kind(&self, key: usize) -> CtlKind;
    /// Its value.
    fn ctl_get(&self, key: usize) -> i64;
    /// Sets it to `value` (already checked against the kind); `Ok(true)`
    /// when it changed.
    fn ctl_put(&self, key: usize, value: i64) -> Result<bool>;
}

/// The change-event handle of one control: kept in the card's data, set
/// once when the control is added, used to tell listeners (`alsactl
/// monitor`, an ALSA client's poll on the control device) that its value
/// changed.
///
/// # Invariants
///
/// `state` goes from `EMPTY` to `SETTING` (one writer, which then writes
/// `card` and `id`) to `READY`; `card` and `id` are only read in `READY`,
/// after an acquire load that pairs with the release store of `READY`.
pub(crate) struct CtlNotify {
    state: AtomicU8,
    card: AtomicPtr<bindings::snd_card>,
    id: Opaque<bindings::snd_ctl_elem_id>,
}

// SAFETY: `id` is written once before `READY` is published and only read
// afterwards (the invariant), so sharing between threads is sound.
unsafe impl Sync for CtlNotify {}
// SAFETY: as above.
unsafe impl Send for CtlNotify {}

impl CtlNotify {
    const EMPTY: u8 = 0;
    const SETTING: u8 = 1;
    const READY: u8 = 2;

    /// A handle not yet bound to a control (events are dropped).
    pub(crate) const fn new() -> Self {
        CtlNotify {
            state: AtomicU8::new(Self::EMPTY),
            card: AtomicPtr::new(core::ptr::null_mut()),
            id: Opaque::uninit(),
        }
    }

    /// Binds the handle to the control `id` of `card` (once; later calls
    /// are ignored).
    ///
    /// # Safety
    ///
    /// `card` must outlive the handle and `id` must be a live control id.
    pub(super) unsafe fn set(
        &self,
        card: *mut bindings::snd_card,
        id: *mut bindings::snd_ctl_elem_id,
    ) {
        if self
            .state
            .compare_exchange(
                Self::EMPTY,
                Self::SETTING,
                Ordering::Acquire,
                Ordering::Relaxed,
            )
            .is_err()
        {
            return;
        }
        // SAFETY: only this (single) writer reaches here; readers wait for `READY`.
        unsafe { core::ptr::write(self.id.get(), core::ptr::read(id)) };
        self.card.store(card, Ordering::Relaxed);
        self.state.store(Self::READY, Ordering::Release);
    }

    /// Sends a value-change event for the control (any context; not to be
    /// called with a lock held that the control callbacks take).
    pub(crate) fn notify(&self) {
        if self.state.load(Ordering::Acquire) != Self::READY {
            return;
        }
        // SAFETY: in `READY`, `card` outlives the handle and `id` is the
        // control's id (the invariant and `set`'s contract); the function
        // copies the id into the events it queues.
        unsafe {
            bindings::snd_ctl_notify(
                self.card.load(Ordering::Relaxed),
                bindings::SND_VOIP_CTL_EVENT_MASK_VALUE,
                self.id.get(),
            )
        };
    }
}

type InfoFn =
    unsafe extern "C" fn(*mut bindings::snd_kcontrol, *mut bindings::snd_ctl_elem_info) -> c_int;
type ValueFn =
    unsafe extern "C" fn(*mut bindings::snd_kcontrol, *mut bindings::snd_ctl_elem_value) -> c_int;

/// The C callbacks for `D`'s controls.
pub(super) fn ctl_trampolines<D: Controls>() -> (InfoFn, ValueFn, ValueFn) {
    (info_cb::<D>, get_cb::<D>, put_cb::<D>)
}

/// `D` and the key of a control made by `Card<D>::add_control`.
///
/// # Safety
///
/// `kctl` must be such a control, live.
unsafe fn control<'a, D>(kctl: *mut bindings::snd_kcontrol) -> (&'a D, usize) {
    // SAFETY: guaranteed by the caller: private data is the card's `D`.
    unsafe {
        (
            data_of::<D>((*kctl).private_data),
            (*kctl).private_value as usize,
        )
    }
}

unsafe extern "C" fn info_cb<D: Controls>(
    kctl: *mut bindings::snd_kcontrol,
    info: *mut bindings::snd_ctl_elem_info,
) -> c_int {
    // SAFETY: ALSA passes one of our live controls.
    let (d, key) = unsafe { control::<D>(kctl) };
    // SAFETY: ALSA passes a live info to fill.
    let info = unsafe { &mut *info };
    match d.ctl_kind(key) {
        CtlKind::Boolean => {
            info.type_ = bindings::SND_VOIP_CTL_TYPE_BOOLEAN as _;
            info.count = 1;
            // The integer member is the one for boolean controls.
            info.value.integer.min = 0;
            info.value.integer.max = 1;
            info.value.integer.step = 1;
            0
        }
        CtlKind::Integer { min, max } => {
            info.type_ = bindings::SND_VOIP_CTL_TYPE_INTEGER as _;
            info.count = 1;
            info.value.integer.min = min as _;
            info.value.integer.max = max as _;
            info.value.integer.step = 1;
            0
        }
        CtlKind::Enumerated(items) => {
            let mut names: [*const c_char; 8] = [core::ptr::null(); 8];
            let n = items.len().min(names.len());
            for (p, s) in names.iter_mut().zip(items.iter()) {
                *p = s.as_ptr().cast();
            }
            // SAFETY: `info` is live; `names` holds `n` C strings that
            // snd_ctl_enum_info copies before returning.
            unsafe { bindings::snd_ctl_enum_info(info, 1, n as _, names.as_ptr()) }
        }
    }
}

unsafe extern "C" fn get_cb<D: Controls>(
    kctl: *mut bindings::snd_kcontrol,
    value: *mut bindings::snd_ctl_elem_value,
) -> c_int {
    // SAFETY: ALSA passes one of our live controls and a value to fill.
    let ((d, key), value) = unsafe { (control::<D>(kctl), &mut *value) };
    let v = d.ctl_get(key);
    match d.ctl_kind(key) {
        // SAFETY: enumerated controls use the `enumerated` member.
        CtlKind::Enumerated(_) => unsafe { value.value.enumerated.item[0] = v as u32 },
        // SAFETY: boolean and integer controls use the `integer` member.
        _ => unsafe { value.value.integer.value[0] = v as _ },
    }
    0
}

unsafe extern "C" fn put_cb<D: Controls>(
    kctl: *mut bindings::snd_kcontrol,
    value: *mut bindings::snd_ctl_elem_value,
) -> c_int {
    // SAFETY: ALSA passes one of our live controls and the value written.
    let ((d, key), value) = unsafe { (control::<D>(kctl), &*value) };
    let kind = d.ctl_kind(key);
    let v = match kind {
        // SAFETY: as in `get_cb`.
        CtlKind::Enumerated(_) => i64::from(unsafe { value.value.enumerated.item[0] }),
        // SAFETY: as in `get_cb`.
        _ => (unsafe { value.value.integer.value[0] }) as i64,
    };
    if !kind.admits(v) {
        return EINVAL.to_errno();
    }
    match d.ctl_put(key, v) {
        Ok(changed) => c_int::from(changed),
        Err(e) => e.to_errno(),
    }
}
