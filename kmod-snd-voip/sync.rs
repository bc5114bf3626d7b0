// SPDX-License-Identifier: GPL-2.0
//! An IRQ-safe spinlock around data.
//!
//! The cable state is touched from the hrtimer callback (softirq), from the
//! PCM pointer and trigger callbacks (under the PCM stream lock, IRQs off) and
//! from process context (open, prepare, close). `spin_lock_irqsave` makes one
//! lock class valid in all of them; the 6.12 kernel crate's `SpinLock` does
//! not disable interrupts, so lockdep would flag it here.

use crate::bindings;
use core::cell::UnsafeCell;
use core::ops::{Deref, DerefMut};
use kernel::types::Opaque;

/// A spinlock taken with interrupts disabled, protecting a `T`.
///
/// # Invariants
///
/// `lock` has been initialised by [`IrqSpinLock::init`] before any call to
/// [`IrqSpinLock::lock`], and `data` is only accessed while `lock` is held.
pub(crate) struct IrqSpinLock<T> {
    lock: Opaque<bindings::spinlock_t>,
    data: UnsafeCell<T>,
}

// SAFETY: the data is only reached through the lock, which serialises access
// between threads, so sharing the lock is fine when `T` can be sent.
unsafe impl<T: Send> Sync for IrqSpinLock<T> {}
// SAFETY: moving the lock moves the `T` with it.
unsafe impl<T: Send> Send for IrqSpinLock<T> {}

impl<T> IrqSpinLock<T> {
    /// Initialises a lock in place.
    ///
    /// # Safety
    ///
    /// `this` must be valid for writes, must not move afterwards and must not
    /// be in use by any other thread.
    pub(crate) unsafe fn init(this: *mut Self, data: T) {
        // SAFETY: the caller guarantees `this` is valid for writes.
        unsafe {
            core::ptr::write(core::ptr::addr_of_mut!((*this).data), UnsafeCell::new(data));
            bindings::snd_voip_spin_lock_init(Opaque::raw_get(core::ptr::addr_of!((*this).lock)));
        }
    }

    /// Takes the lock, disabling local interrupts until the guard is dropped.
    pub(crate) fn lock(&self) -> IrqSpinLockGuard<'_, T> {
        // SAFETY: by the type invariant the lock was initialised.
        let flags = unsafe { bindings::snd_voip_spin_lock_irqsave(self.lock.get()) };
        IrqSpinLockGuard { lock: self, flags }
    }
}

/// Holds an [`IrqSpinLock`]; releases it and restores interrupts on drop.
pub(crate) struct IrqSpinLockGuard<'a, T> {
    lock: &'a IrqSpinLock<T>,
    flags: kernel::ffi::c_ulong,
}

impl<T> Deref for IrqSpinLockGuard<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        // SAFETY: the guard exists only while the lock is held.
        unsafe { &*self.lock.data.get() }
    }
}

impl<T> DerefMut for IrqSpinLockGuard<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: the guard exists only while the lock is held, and `&mut self`
        // makes this the only reference through it.
        unsafe { &mut *self.lock.data.get() }
    }
}

impl<T> Drop for IrqSpinLockGuard<'_, T> {
    fn drop(&mut self) {
        // SAFETY: this guard took the lock with these flags.
        unsafe { bindings::snd_voip_spin_unlock_irqrestore(self.lock.lock.get(), self.flags) };
    }
}
