// SPDX-License-Identifier: GPL-2.0
//! A soft (softirq-context) `CLOCK_MONOTONIC` hrtimer embedded in a
//! structure, whose callback gets the structure back ([`HrTimer`]).
//!
//! The 6.12 kernel crate has no hrtimer abstraction (it arrived in 6.15);
//! this follows its shape: the timer is a field of its owner, which
//! implements [`HrTimerCallback`], and [`impl_has_hrtimer!`] records where
//! the field is, so the C callback recovers the owner `container_of`-style
//! from the `struct hrtimer` pointer it is given.
//!
//! A callback that wants to run again returns [`Restart::At`]; the
//! trampoline re-arms with `hrtimer_start_range_ns()` (which the hrtimer
//! core allows from a timer's own callback, and which is safe whether or not
//! the timer was re-armed meanwhile by someone else). There is no
//! `set_expires`: changing the expiry of a queued timer corrupts the timer
//! queue, and a callback cannot know, without the timer base lock, that a
//! concurrent `start` did not queue it.

use crate::bindings;
use core::marker::{PhantomData, PhantomPinned};
use kernel::init::PinInit;
use kernel::types::Opaque;

/// What a timer callback asks for.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Restart {
    /// Do not fire again (until someone starts the timer).
    No,
    /// Fire again at this absolute `CLOCK_MONOTONIC` time, in ns.
    At(i64),
}

/// The callback of a timer with identity `ID` inside `Self`.
pub(crate) trait HrTimerCallback<const ID: u64> {
    /// The timer fired (softirq context, no lock of the driver held).
    fn run(&self) -> Restart;
}

/// Where the [`HrTimer`] with identity `ID` lives inside `Self`.
///
/// # Safety
///
/// `OFFSET` must be the byte offset of a field of type `HrTimer<Self, ID>`
/// in `Self`. Implement it with [`impl_has_hrtimer!`], which computes the
/// offset with `offset_of!` and type-checks the field.
pub(crate) unsafe trait HasHrTimer<const ID: u64>: Sized {
    /// Offset of the timer field.
    const OFFSET: usize;
}

/// Declares that `$field` of `$ty` is its [`HrTimer`] number `$id`.
///
/// ```ignore
/// impl_has_hrtimer!(Cable, 0, play_timer);
/// ```
macro_rules! impl_has_hrtimer {
    ($ty:ty, $id:expr, $field:ident) => {
        // SAFETY: the offset is computed by `offset_of!` for a field whose
        // type the function below checks to be `HrTimer<$ty, $id>`. (The
        // one `unsafe` a driver file gets, from this safe-layer macro:
        // allowed here, where it is proven, not at the call site.)
        #[allow(unsafe_code)]
        unsafe impl $crate::safe::hrtimer::HasHrTimer<{ $id }> for $ty {
            const OFFSET: usize = {
                #[allow(dead_code)]
                fn check(x: &$ty) -> &$crate::safe::hrtimer::HrTimer<$ty, { $id }> {
                    &x.$field
                }
                ::core::mem::offset_of!($ty, $field)
            };
        }
    };
}
pub(crate) use impl_has_hrtimer;

/// A kernel `struct hrtimer` on `CLOCK_MONOTONIC`, soft mode, absolute
/// expiry, embedded in a `T` whose [`HrTimerCallback::run`] it calls.
///
/// # Invariants
///
/// `raw` is an initialised hrtimer whose function is [`trampoline::<T, ID>`]
/// (done by [`HrTimer::new`], the only way to make one); the timer never
/// moves (pinned, `PhantomPinned`) and lives inside a `T` at
/// `<T as HasHrTimer<ID>>::OFFSET`; it is cancelled (and any running
/// callback waited for) before it is dropped, so no callback runs on a
/// freed `T`.
#[repr(C)]
pub(crate) struct HrTimer<T, const ID: u64> {
    raw: Opaque<bindings::hrtimer>,
    _owner: PhantomData<T>,
    _pin: PhantomPinned,
}

// SAFETY: the timer functions do their own locking (the hrtimer base lock);
// the callback gets `&T`, which needs `T: Sync` to be shared with the
// softirq context.
unsafe impl<T: Sync, const ID: u64> Sync for HrTimer<T, ID> {}
// SAFETY: as above; sending the owner sends the timer.
unsafe impl<T: Send, const ID: u64> Send for HrTimer<T, ID> {}

impl<T: HasHrTimer<ID> + HrTimerCallback<ID> + Sync, const ID: u64> HrTimer<T, ID> {
    /// An initialiser of the timer, in place inside its `T`.
    pub(crate) fn new() -> impl PinInit<Self> {
        let init = |slot: *mut Self| {
            // SAFETY: `slot` is valid for writes and will not move (pinned
            // initialisation); the timer is not armed yet.
            unsafe {
                let raw = Opaque::raw_get(core::ptr::addr_of!((*slot).raw));
                bindings::hrtimer_init(
                    raw,
                    CLOCK_MONOTONIC,
                    bindings::hrtimer_mode_HRTIMER_MODE_ABS_SOFT,
                );
                (*raw).function = Some(trampoline::<T, ID>);
            }
            Ok(())
        };
        // SAFETY: the closure initialises the only non-ZST field and never fails.
        unsafe { kernel::init::pin_init_from_closure(init) }
    }

    /// Arms the timer for the absolute monotonic time `expires_ns` (safe at
    /// any time, also while it is queued or its callback runs).
    pub(crate) fn start_at(&self, expires_ns: i64) {
        // SAFETY: by the invariant the timer is initialised and pinned.
        unsafe {
            bindings::hrtimer_start_range_ns(
                self.raw.get(),
                expires_ns,
                0,
                bindings::hrtimer_mode_HRTIMER_MODE_ABS_SOFT,
            )
        };
    }

    /// Cancels without waiting (atomic context): a running callback may
    /// still be finishing.
    pub(crate) fn try_cancel(&self) {
        // SAFETY: by the invariant the timer is initialised.
        unsafe { bindings::hrtimer_try_to_cancel(self.raw.get()) };
    }

    /// Cancels and waits for a running callback (also one that re-arms the
    /// timer) to finish. Process context only, with no lock held that the
    /// callback takes.
    pub(crate) fn cancel(&self) {
        // SAFETY: by the invariant the timer is initialised.
        unsafe { bindings::hrtimer_cancel(self.raw.get()) };
    }
}

impl<T, const ID: u64> Drop for HrTimer<T, ID> {
    fn drop(&mut self) {
        // The invariant: nothing runs on the owner after this.
        // SAFETY: the timer is initialised (every `HrTimer` is).
        unsafe { bindings::hrtimer_cancel(self.raw.get()) };
    }
}

/// `CLOCK_MONOTONIC` from include/uapi/linux/time.h.
const CLOCK_MONOTONIC: kernel::ffi::c_int = 1;

/// The C callback of every `HrTimer<T, ID>`.
///
/// # Safety
///
/// Called by the hrtimer core with the `struct hrtimer` of an `HrTimer<T, ID>`.
unsafe extern "C" fn trampoline<T, const ID: u64>(
    raw: *mut bindings::hrtimer,
) -> bindings::hrtimer_restart
where
    T: HasHrTimer<ID> + HrTimerCallback<ID> + Sync,
{
    // `raw` is the first field of the `#[repr(C)]` `HrTimer`, which lives
    // at `OFFSET` in its `T` (the `HasHrTimer` contract): `container_of`.
    let owner = raw.cast::<u8>().wrapping_sub(T::OFFSET).cast::<T>();
    // SAFETY: by the `HrTimer` invariant the timer is inside a live `T`
    // (it is cancelled before the `T` goes), and only shared references
    // to a `T` exist while its timers run.
    let this = unsafe { &*owner };
    match this.run() {
        Restart::No => {}
        Restart::At(t) => {
            // Re-arming from the callback itself is allowed; a concurrent
            // start by someone else just moves the expiry.
            // SAFETY: `raw` is the live, initialised timer.
            unsafe {
                bindings::hrtimer_start_range_ns(
                    raw,
                    t,
                    0,
                    bindings::hrtimer_mode_HRTIMER_MODE_ABS_SOFT,
                )
            };
        }
    }
    bindings::hrtimer_restart_HRTIMER_NORESTART
}

/// The current `CLOCK_MONOTONIC` time in nanoseconds.
pub(crate) fn now_ns() -> u64 {
    let t = kernel::time::Ktime::ktime_get().to_ns();
    // Monotonic time since boot is never negative.
    u64::try_from(t).unwrap_or(0)
}
