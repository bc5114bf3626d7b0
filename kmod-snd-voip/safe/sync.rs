// SPDX-License-Identifier: GPL-2.0
//! An IRQ-safe spinlock around data ([`IrqSpinLock`]).
//!
//! The cable state is touched from hrtimer callbacks (softirq), from the PCM
//! pointer and trigger callbacks (under the PCM stream lock, IRQs off) and
//! from process context (open, prepare, close, controls). One lock class
//! taken with `spin_lock_irqsave` is valid in all of them; the 6.12 kernel
//! crate's `SpinLock` does not disable interrupts, so lockdep would flag it.

use crate::bindings;
use core::cell::UnsafeCell;
use core::marker::{PhantomData, PhantomPinned};
use core::ops::{Deref, DerefMut};
use kernel::init::PinInit;
use kernel::types::Opaque;

/// A spinlock taken with interrupts disabled, protecting a `T`.
///
/// # Invariants
///
/// `lock` is an initialised `spinlock_t` (done by the initialiser of
/// [`IrqSpinLock::new`], the only way to make one), and `data` is only
/// reached through a guard, which exists only while `lock` is held. The
/// lock never moves (`PhantomPinned`, pin-initialised in place).
pub(crate) struct IrqSpinLock<T> {
    lock: Opaque<bindings::spinlock_t>,
    data: UnsafeCell<T>,
    _pin: PhantomPinned,
}

// SAFETY: the data is only reached through the lock, which serialises every
// access, so the lock may be shared between threads when `T` may be sent.
unsafe impl<T: Send> Sync for IrqSpinLock<T> {}
// SAFETY: moving the lock to another thread moves the `T` with it.
unsafe impl<T: Send> Send for IrqSpinLock<T> {}

/// The lockdep class of a lock: locks nested inside each other must be of
/// different classes.
#[derive(Clone, Copy)]
pub(crate) enum LockClass {
    /// A cable's state.
    Cable,
    /// A substream slot (taken inside a cable lock).
    Slot,
}

impl<T> IrqSpinLock<T> {
    /// An initialiser of a lock of `class` holding `data`.
    pub(crate) fn new(data: T, class: LockClass) -> impl PinInit<Self> {
        let class = match class {
            LockClass::Cable => bindings::snd_voip_lock_class_SND_VOIP_LOCK_CABLE,
            LockClass::Slot => bindings::snd_voip_lock_class_SND_VOIP_LOCK_SLOT,
        } as kernel::ffi::c_int;
        let init = move |slot: *mut Self| {
            // SAFETY: `slot` is valid for writes (the caller of the
            // initialiser guarantees it) and not yet shared.
            unsafe {
                core::ptr::write(core::ptr::addr_of_mut!((*slot).data), UnsafeCell::new(data));
                bindings::snd_voip_spin_lock_init(
                    Opaque::raw_get(core::ptr::addr_of!((*slot).lock)),
                    class,
                );
            }
            Ok(())
        };
        // SAFETY: the closure initialises both fields (the marker is a ZST)
        // and never fails; the lock is initialised where it stays.
        unsafe { kernel::init::pin_init_from_closure(init) }
    }

    /// Takes the lock, disabling local interrupts until the guard is dropped.
    pub(crate) fn lock(&self) -> IrqSpinLockGuard<'_, T> {
        // SAFETY: by the type invariant the lock is initialised.
        let flags = unsafe { bindings::snd_voip_spin_lock_irqsave(self.lock.get()) };
        // INVARIANT: the lock is held until the guard drops.
        IrqSpinLockGuard {
            lock: self,
            flags,
            _not_send: PhantomData,
        }
    }
}

/// Holds an [`IrqSpinLock`]; releases it and restores interrupts on drop.
///
/// Not `Send`: a spinlock must be released on the CPU (and with the
/// interrupt state) it was taken with.
///
/// # Invariants
///
/// The guard exists only while `lock` is held with `flags` saved.
pub(crate) struct IrqSpinLockGuard<'a, T> {
    lock: &'a IrqSpinLock<T>,
    flags: kernel::ffi::c_ulong,
    _not_send: PhantomData<*mut ()>,
}

impl<T> Deref for IrqSpinLockGuard<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        // SAFETY: by the invariant the lock is held, so nobody else reaches the data.
        unsafe { &*self.lock.data.get() }
    }
}

impl<T> DerefMut for IrqSpinLockGuard<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: as in `deref`, and `&mut self` makes this the only
        // reference through the guard.
        unsafe { &mut *self.lock.data.get() }
    }
}

impl<T> Drop for IrqSpinLockGuard<'_, T> {
    fn drop(&mut self) {
        // SAFETY: by the invariant this guard holds the lock with these flags.
        unsafe { bindings::snd_voip_spin_unlock_irqrestore(self.lock.lock.get(), self.flags) };
    }
}
