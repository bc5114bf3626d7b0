// SPDX-License-Identifier: GPL-2.0
//! A soft (softirq-context) monotonic hrtimer with absolute expiry times.
//!
//! The 6.12 kernel crate has no hrtimer abstraction (it arrived in 6.15).
//! This wrapper keeps the raw calls in one place.

use crate::bindings;
use kernel::types::Opaque;

/// Callback type: the raw hrtimer that fired.
pub(crate) type RawCallback =
    unsafe extern "C" fn(*mut bindings::hrtimer) -> bindings::hrtimer_restart;

/// What a timer callback asks for.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Restart {
    /// Do not fire again.
    No,
    /// Fire again at the expiry time set with [`HrTimer::set_expires`].
    Yes,
}

impl Restart {
    /// The C value.
    pub(crate) fn to_raw(self) -> bindings::hrtimer_restart {
        match self {
            Restart::No => bindings::hrtimer_restart_HRTIMER_NORESTART,
            Restart::Yes => bindings::hrtimer_restart_HRTIMER_RESTART,
        }
    }
}

/// A kernel `struct hrtimer` on `CLOCK_MONOTONIC` in soft mode.
///
/// # Invariants
///
/// After [`HrTimer::init`], `raw` is an initialised hrtimer whose callback is set.
#[repr(transparent)]
pub(crate) struct HrTimer {
    raw: Opaque<bindings::hrtimer>,
}

/// `CLOCK_MONOTONIC` from include/uapi/linux/time.h.
const CLOCK_MONOTONIC: kernel::ffi::c_int = 1;

impl HrTimer {
    /// Initialises the timer in place with `callback`.
    ///
    /// # Safety
    ///
    /// `this` must be valid for writes, must not move afterwards and the timer
    /// must not be armed.
    pub(crate) unsafe fn init(this: *mut Self, callback: RawCallback) {
        // SAFETY: the caller guarantees `this` is valid; `HrTimer` is
        // transparent over the C struct.
        unsafe {
            let raw = Opaque::raw_get(core::ptr::addr_of!((*this).raw));
            bindings::hrtimer_init(
                raw,
                CLOCK_MONOTONIC,
                bindings::hrtimer_mode_HRTIMER_MODE_ABS_SOFT,
            );
            (*raw).function = Some(callback);
        }
    }

    /// Arms the timer to fire at the absolute monotonic time `expires_ns`.
    pub(crate) fn start_at(&self, expires_ns: i64) {
        // SAFETY: by the type invariant the timer is initialised.
        unsafe {
            bindings::hrtimer_start_range_ns(
                self.raw.get(),
                expires_ns,
                0,
                bindings::hrtimer_mode_HRTIMER_MODE_ABS_SOFT,
            )
        };
    }

    /// Sets the next expiry from inside the callback (before returning
    /// [`Restart::Yes`]). Must not be called while the timer is queued.
    pub(crate) fn set_expires(&self, expires_ns: i64) {
        // SAFETY: by the type invariant the timer is initialised; the caller
        // checked with `is_queued` under its lock that it is not enqueued.
        unsafe { bindings::snd_voip_hrtimer_set_expires(self.raw.get(), expires_ns) };
    }

    /// Whether the timer is enqueued (armed and not yet running).
    pub(crate) fn is_queued(&self) -> bool {
        // SAFETY: by the type invariant the timer is initialised.
        unsafe { bindings::snd_voip_hrtimer_is_queued(self.raw.get()) }
    }

    /// Cancels without waiting: safe in atomic context, but a running
    /// callback may still be finishing.
    pub(crate) fn try_cancel(&self) {
        // SAFETY: by the type invariant the timer is initialised.
        unsafe { bindings::hrtimer_try_to_cancel(self.raw.get()) };
    }

    /// Cancels and waits for a running callback to finish. Process context
    /// only, with no lock held that the callback takes.
    pub(crate) fn cancel(&self) {
        // SAFETY: by the type invariant the timer is initialised.
        unsafe { bindings::hrtimer_cancel(self.raw.get()) };
    }
}

/// The current `CLOCK_MONOTONIC` time in nanoseconds.
pub(crate) fn now_ns() -> u64 {
    let t = kernel::time::Ktime::ktime_get().to_ns();
    // Monotonic time since boot is never negative.
    u64::try_from(t).unwrap_or(0)
}
