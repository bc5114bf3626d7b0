// SPDX-License-Identifier: GPL-2.0
//! An ALSA card that owns the driver's data ([`Card`]).
//!
//! The data `D` is pin-initialised in the card's own allocation (the
//! `extra_size` of `snd_card_new()`, where C drivers keep their chip
//! struct): it never moves, and it is dropped by the card's
//! `private_free` during `snd_card_free()`, after every file on the card
//! is closed and every PCM, control and proc entry is gone. So every
//! pointer to `D` that PCM, control and proc callbacks get is valid for as
//! long as any of them can run.

use super::control::{ctl_trampolines, Controls, CtlDesc, CtlNotify};
use super::info::{proc_read_cb, ProcFiles};
use super::pcm::{copy_cstr, OpsTable, PcmOps};
use crate::bindings;
use crate::safe::device::Device;
use core::ffi::CStr;
use core::marker::PhantomData;
use core::ptr::NonNull;
use core::sync::atomic::{AtomicPtr, Ordering};
use kernel::error::{code::*, to_result, Error, Result};
use kernel::ffi::{c_int, c_void};
use kernel::init::PinInit;

/// `THIS_MODULE`, for `snd_card_new` (the card holds a module reference
/// while a file on it is open).
static THIS_MODULE: AtomicPtr<bindings::module> = AtomicPtr::new(core::ptr::null_mut());

/// Records `THIS_MODULE` (module init, before any card is made).
pub(crate) fn set_this_module(m: &'static kernel::ThisModule) {
    THIS_MODULE.store(m.as_ptr().cast(), Ordering::Relaxed);
}

/// The card's data from a private pointer this layer set.
///
/// # Safety
///
/// `p` must be the `private_data` of a `Card<D>` (or of one of its PCMs,
/// controls or proc entries), whose card is not yet freed.
pub(super) unsafe fn data_of<'a, D>(p: *mut c_void) -> &'a D {
    // SAFETY: guaranteed by the caller: `p` points to the card's live `D`.
    unsafe { &*p.cast::<D>() }
}

/// The names of a card (driver, short and long name).
pub(crate) struct Names<'a> {
    /// `card->driver`.
    pub(crate) driver: &'a CStr,
    /// `card->shortname`.
    pub(crate) short: &'a CStr,
    /// `card->longname`.
    pub(crate) long: &'a CStr,
}

/// Power states for [`Card::set_power`].
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Power {
    /// Working.
    D0,
    /// Suspended.
    D3Hot,
}

/// An ALSA card whose private data is a `D`; freed (with `D`) on drop.
///
/// # Invariants
///
/// `raw` is a card made by `snd_card_new` and not yet freed; its
/// `private_data` holds an initialised `D` (pinned: it never moves) which
/// its `private_free` drops. Setup (`new_pcm`, `add_control`, `add_proc`,
/// `register`) takes `&mut self`: only the creator touches the card's
/// fields, before userspace can see it.
pub(crate) struct Card<D> {
    raw: NonNull<bindings::snd_card>,
    _data: PhantomData<D>,
}

// SAFETY: the card may be freed from any process context; `D` goes with it.
unsafe impl<D: Send + Sync> Send for Card<D> {}
// SAFETY: `&self` methods only read `D` (which is `Sync`) or call ALSA
// functions that lock for themselves.
unsafe impl<D: Send + Sync> Sync for Card<D> {}

unsafe extern "C" fn free_data<D>(card: *mut bindings::snd_card) {
    // SAFETY: set as `private_free` only once `D` was initialised in the
    // card's private area; the card calls it once, last.
    unsafe { core::ptr::drop_in_place((*card).private_data.cast::<D>()) };
}

impl<D: Send + Sync> Card<D> {
    /// Creates a card under `parent` with `D` initialised by `init` in it.
    /// `index` -1 picks the first free slot.
    pub(crate) fn new<E>(
        parent: &Device,
        index: i32,
        id: &CStr,
        names: &Names<'_>,
        init: impl PinInit<D, E>,
    ) -> Result<Self>
    where
        Error: From<E>,
    {
        let size = c_int::try_from(core::mem::size_of::<D>()).map_err(|_| EINVAL)?;
        let mut raw: *mut bindings::snd_card = core::ptr::null_mut();
        // SAFETY: `parent` is live and outlives the card (the card is freed
        // before its parent's driver unbinds); `id` is a C string; the
        // module pointer is THIS_MODULE (or null before init set it, which
        // ALSA accepts).
        to_result(unsafe {
            bindings::snd_card_new(
                parent.as_raw(),
                index,
                id.as_ptr().cast(),
                THIS_MODULE.load(Ordering::Relaxed),
                size,
                &mut raw,
            )
        })?;
        let raw = NonNull::new(raw).ok_or(ENOMEM)?;
        // From here on, dropping `guard` frees the card (without `D`).
        let guard = RawCard(raw);
        // SAFETY: the card is live and only ours.
        let slot = unsafe { (*raw.as_ptr()).private_data }.cast::<D>();
        if slot.is_null() || (slot as usize) % core::mem::align_of::<D>() != 0 {
            return Err(EINVAL);
        }
        // SAFETY: `slot` is the card's zeroed private area of `size_of::<D>()`
        // bytes, suitably aligned (checked), which never moves and is not
        // used by anyone else until initialised.
        unsafe { init.__pinned_init(slot) }.map_err(Error::from)?;
        // SAFETY: the card is only ours; `D` is now initialised.
        unsafe {
            let c = &mut *raw.as_ptr();
            c.private_free = Some(free_data::<D>);
            copy_cstr(&mut c.driver, names.driver);
            copy_cstr(&mut c.shortname, names.short);
            copy_cstr(&mut c.longname, names.long);
        }
        core::mem::forget(guard);
        // INVARIANT: the card is live with an initialised `D` it will drop.
        Ok(Card {
            raw,
            _data: PhantomData,
        })
    }

    /// The card's data.
    pub(crate) fn data(&self) -> &D {
        // SAFETY: by the invariant `private_data` holds a live `D`.
        unsafe { data_of::<D>((*self.raw.as_ptr()).private_data) }
    }

    fn data_ptr(&self) -> *mut c_void {
        // SAFETY: the card is live.
        unsafe { (*self.raw.as_ptr()).private_data }
    }

    /// The card number ALSA chose.
    pub(crate) fn number(&self) -> i32 {
        // SAFETY: the card is live; the number is fixed at creation.
        unsafe { (*self.raw.as_ptr()).number }
    }

    /// Adds PCM device `device` named `name` with `substreams` playback and
    /// capture substreams, whose callbacks are `D`'s [`PcmOps`]. Buffers
    /// are vmalloc'ed (mmap works) by the layer in hw_params.
    pub(crate) fn new_pcm(&mut self, name: &CStr, device: u32, substreams: u32) -> Result
    where
        D: PcmOps,
    {
        let n = c_int::try_from(substreams).map_err(|_| EINVAL)?;
        let dev = c_int::try_from(device).map_err(|_| EINVAL)?;
        let mut pcm: *mut bindings::snd_pcm = core::ptr::null_mut();
        // SAFETY: the card is live and being set up by us; `name` is a C string.
        to_result(unsafe {
            bindings::snd_pcm_new(self.raw.as_ptr(), name.as_ptr().cast(), dev, n, n, &mut pcm)
        })?;
        let ops: &'static bindings::snd_pcm_ops = &OpsTable::<D>::OPS;
        // SAFETY: `pcm` was just created on our card (not visible to
        // userspace before `register`); the ops table is static and its
        // trampolines expect `private_data` to be this card's `D`.
        unsafe {
            bindings::snd_pcm_set_ops(pcm, bindings::SNDRV_PCM_STREAM_PLAYBACK as c_int, ops);
            bindings::snd_pcm_set_ops(pcm, bindings::SNDRV_PCM_STREAM_CAPTURE as c_int, ops);
            (*pcm).private_data = self.data_ptr();
            copy_cstr(&mut (*pcm).name, name);
            bindings::snd_pcm_lib_preallocate_pages_for_all(
                pcm,
                bindings::SNDRV_DMA_TYPE_VMALLOC as c_int,
                core::ptr::null_mut(),
                0,
                0,
            );
        }
        Ok(())
    }

    /// Adds a control described by `desc`, whose callbacks are `D`'s
    /// [`Controls`]; `notify`, when given, picks the handle in `D` (by the
    /// control's key) that is set up to send its change events.
    pub(crate) fn add_control(
        &mut self,
        desc: &CtlDesc,
        notify: Option<fn(&D, usize) -> &CtlNotify>,
    ) -> Result
    where
        D: Controls,
    {
        let (info, get, put) = ctl_trampolines::<D>();
        let knew = bindings::snd_kcontrol_new {
            iface: desc.iface.to_raw() as _,
            device: desc.device,
            subdevice: desc.subdevice,
            name: desc.name.as_ptr().cast(),
            index: desc.index,
            access: if desc.read_only {
                bindings::SND_VOIP_CTL_ACCESS_READ
            } else {
                bindings::SND_VOIP_CTL_ACCESS_READWRITE
            },
            info: Some(info),
            get: Some(get),
            put: if desc.read_only { None } else { Some(put) },
            private_value: desc.key as _,
            ..Default::default()
        };
        // SAFETY: `knew` is a valid template (copied by snd_ctl_new1); the
        // private data is the card's `D`, which outlives the control.
        let kctl = unsafe { bindings::snd_ctl_new1(&knew, self.data_ptr()) };
        if kctl.is_null() {
            return Err(ENOMEM);
        }
        // SAFETY: the card is live; snd_ctl_add takes `kctl` (and frees it
        // on error). On success `kctl` lives as long as the card.
        to_result(unsafe { bindings::snd_ctl_add(self.raw.as_ptr(), kctl) })?;
        if let Some(pick) = notify {
            let n = pick(self.data(), desc.key);
            // SAFETY: `kctl` is the control just added (its id now has its
            // numid); the card outlives `n`, which lives in its `D`.
            unsafe { n.set(self.raw.as_ptr(), core::ptr::addr_of_mut!((*kctl).id)) };
        }
        Ok(())
    }

    /// Adds a read-only text file /proc/asound/cardN/`name`, read by `D`'s
    /// [`ProcFiles`].
    pub(crate) fn add_proc(&mut self, name: &'static CStr) -> Result
    where
        D: ProcFiles,
    {
        // SAFETY: the card is live; `name` is static; the private data is
        // the card's `D`, which outlives the entry.
        to_result(unsafe {
            bindings::snd_card_rw_proc_new(
                self.raw.as_ptr(),
                name.as_ptr().cast(),
                self.data_ptr(),
                Some(proc_read_cb::<D>),
                None,
            )
        })
    }

    /// Registers the card: its devices appear in userspace.
    pub(crate) fn register(&mut self) -> Result {
        // SAFETY: the card is live.
        to_result(unsafe { bindings::snd_card_register(self.raw.as_ptr()) })
    }

    /// Records the card's power state (system suspend and resume); the
    /// PCM core suspends the streams itself.
    pub(crate) fn set_power(&self, state: Power) {
        let s = match state {
            Power::D0 => bindings::SND_VOIP_POWER_D0,
            Power::D3Hot => bindings::SND_VOIP_POWER_D3HOT,
        };
        // SAFETY: the card is live; the function does its own locking.
        unsafe { bindings::snd_voip_power_change_state(self.raw.as_ptr(), s) };
    }
}

impl<D> Drop for Card<D> {
    fn drop(&mut self) {
        // Disconnects the card, waits until every file on it is closed,
        // frees its devices, then drops `D` (private_free).
        // SAFETY: by the invariant the card is live; freed once, here.
        unsafe { bindings::snd_card_free(self.raw.as_ptr()) };
    }
}

/// A card being created, freed on drop (before its `D` exists).
struct RawCard(NonNull<bindings::snd_card>);

impl Drop for RawCard {
    fn drop(&mut self) {
        // SAFETY: the card is live and has no `private_free` yet.
        unsafe { bindings::snd_card_free(self.0.as_ptr()) };
    }
}
