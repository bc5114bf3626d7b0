// SPDX-License-Identifier: GPL-2.0
//! A `struct device` borrowed from the driver core ([`Device`]): its name,
//! device-tree properties, and `dev_*`-style logging with a rate-limited
//! variant for every path userspace or the RTOS can trigger.
//!
//! The 6.12 kernel crate has a `Device`, but its raw pointer is private to
//! the crate and it has no printing or OF helpers; the module's own
//! bindings type (`bindings::device`) is not the kernel crate's either.

use crate::bindings;
use core::ffi::CStr;
use core::fmt;
use core::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use kernel::error::{to_result, Result};
use kernel::types::Opaque;

/// A device the driver core keeps alive while the driver uses it.
///
/// # Invariants
///
/// A `&Device` is only made from a live `struct device` (the one being
/// probed, or a bound driver's device) and does not outlive its borrow.
#[repr(transparent)]
pub(crate) struct Device(Opaque<bindings::device>);

// SAFETY: the functions called through `&Device` (printing, property
// reads) are safe from any thread for a live device.
unsafe impl Sync for Device {}
// SAFETY: as above.
unsafe impl Send for Device {}

/// Log levels of `_dev_printk` (KERN_ERR, KERN_WARNING, KERN_INFO).
#[derive(Clone, Copy)]
pub(crate) enum Level {
    /// KERN_ERR.
    Err,
    /// KERN_WARNING.
    Warn,
    /// KERN_INFO.
    Info,
}

impl Level {
    fn as_cstr(self) -> &'static CStr {
        match self {
            Level::Err => c"\x013",
            Level::Warn => c"\x014",
            Level::Info => c"\x016",
        }
    }
}

impl Device {
    /// Borrows a raw device.
    ///
    /// # Safety
    ///
    /// `raw` must be a live device for the whole lifetime `'a`.
    pub(crate) unsafe fn from_raw<'a>(raw: *mut bindings::device) -> &'a Device {
        // SAFETY: `Device` is transparent over the C struct; the caller
        // guarantees it lives for `'a`.
        unsafe { &*raw.cast::<Device>() }
    }

    /// The raw pointer, for the safe layer's own calls.
    pub(crate) fn as_raw(&self) -> *mut bindings::device {
        self.0.get()
    }

    /// Whether the device was created from a device-tree node.
    pub(crate) fn has_of_node(&self) -> bool {
        // SAFETY: the device is live.
        !unsafe { (*self.as_raw()).of_node }.is_null()
    }

    /// A string property of the device's node, if present.
    pub(crate) fn property_str(&self, name: &CStr) -> Option<&CStr> {
        // SAFETY: the device is live; `name` is a C string.
        let p = unsafe { bindings::snd_voip_of_string(self.as_raw(), name.as_ptr().cast()) };
        if p.is_null() {
            None
        } else {
            // SAFETY: a property value is a NUL-terminated string that lives
            // as long as the device's node, at least as long as `self`.
            Some(unsafe { CStr::from_ptr(p.cast()) })
        }
    }

    /// Whether a boolean property is present on the device's node.
    pub(crate) fn property_bool(&self, name: &CStr) -> bool {
        // SAFETY: the device is live; `name` is a C string.
        unsafe { bindings::snd_voip_of_bool(self.as_raw(), name.as_ptr().cast()) }
    }

    /// The physical range of the node's `memory-region` (its first entry).
    pub(crate) fn memory_region(&self) -> Result<Region> {
        let mut res = bindings::resource::default();
        // SAFETY: the device is live; `res` is a local the call fills.
        to_result(unsafe { bindings::snd_voip_of_memory_region(self.as_raw(), &mut res) })?;
        let len = res
            .end
            .checked_sub(res.start)
            .and_then(|l| l.checked_add(1))
            .ok_or(kernel::error::code::EINVAL)?;
        Ok(Region {
            start: res.start,
            len,
        })
    }

    /// Prints `args` with the device's driver and name as prefix (`dev_err()`).
    pub(crate) fn print(&self, level: Level, args: fmt::Arguments<'_>) {
        // SAFETY: the device is live; "%pA" prints a `fmt::Arguments` the
        // pointer refers to (the kernel's Rust printing hook), which lives
        // for the call.
        unsafe {
            bindings::_dev_printk(
                level.as_cstr().as_ptr().cast(),
                self.as_raw(),
                c"%pA".as_ptr().cast(),
                core::ptr::from_ref(&args).cast::<kernel::ffi::c_void>(),
            )
        };
    }
}

/// A counted reference to a device (`get_device()` .. `put_device()`), for
/// structures that log from timers and outlive any one callback.
///
/// # Invariants
///
/// `raw` is a device on which this value holds a reference.
pub(crate) struct DeviceRef {
    raw: core::ptr::NonNull<bindings::device>,
}

// SAFETY: a device reference may be taken, used and dropped on any thread.
unsafe impl Send for DeviceRef {}
// SAFETY: as above; `&DeviceRef` only gives `&Device`.
unsafe impl Sync for DeviceRef {}

impl Device {
    /// Takes a reference on the device.
    pub(crate) fn get(&self) -> DeviceRef {
        // SAFETY: the device is live; `get_device` raises its count.
        unsafe { bindings::get_device(self.as_raw()) };
        // INVARIANT: the reference just taken, on this (non-null) device.
        DeviceRef {
            raw: core::ptr::NonNull::from(&self.0).cast(),
        }
    }
}

impl Clone for DeviceRef {
    fn clone(&self) -> Self {
        let d: &Device = self;
        d.get()
    }
}

impl core::ops::Deref for DeviceRef {
    type Target = Device;
    fn deref(&self) -> &Device {
        // SAFETY: by the invariant the device lives while referenced.
        unsafe { Device::from_raw(self.raw.as_ptr()) }
    }
}

impl Drop for DeviceRef {
    fn drop(&mut self) {
        // SAFETY: by the invariant this value holds one reference.
        unsafe { bindings::put_device(self.raw.as_ptr()) };
    }
}

/// A physical address range (from the device tree).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Region {
    /// First byte.
    pub(crate) start: u64,
    /// Bytes.
    pub(crate) len: u64,
}

/// A rate limit for one log call site, as the kernel's
/// `DEFAULT_RATELIMIT_INTERVAL`/`_BURST` (10 messages per 5 s); the
/// messages it held back are counted in the next one it lets through.
pub(crate) struct RateLimit {
    window_start_ns: AtomicU64,
    printed: AtomicU32,
    missed: AtomicU32,
}

impl RateLimit {
    const INTERVAL_NS: u64 = 5_000_000_000;
    const BURST: u32 = 10;

    /// A limit with nothing printed yet.
    pub(crate) const fn new() -> Self {
        RateLimit {
            window_start_ns: AtomicU64::new(0),
            printed: AtomicU32::new(0),
            missed: AtomicU32::new(0),
        }
    }

    /// Whether to print now; `Some(n)`: yes, and `n` messages were held
    /// back since the last one printed. (Approximate under races between
    /// CPUs, like the kernel's.)
    pub(crate) fn check(&self) -> Option<u32> {
        let now = crate::safe::hrtimer::now_ns();
        let start = self.window_start_ns.load(Ordering::Relaxed);
        if start == 0 || now.saturating_sub(start) >= Self::INTERVAL_NS {
            self.window_start_ns.store(now.max(1), Ordering::Relaxed);
            self.printed.store(0, Ordering::Relaxed);
        }
        if self.printed.fetch_add(1, Ordering::Relaxed) < Self::BURST {
            Some(self.missed.swap(0, Ordering::Relaxed))
        } else {
            self.missed.fetch_add(1, Ordering::Relaxed);
            None
        }
    }
}

/// `dev_err()`: an error line prefixed with the device's driver and name.
macro_rules! dev_err {
    ($dev:expr, $($arg:tt)*) => {
        $dev.print($crate::safe::device::Level::Err, format_args!($($arg)*))
    };
}
/// `dev_info()`.
macro_rules! dev_info {
    ($dev:expr, $($arg:tt)*) => {
        $dev.print($crate::safe::device::Level::Info, format_args!($($arg)*))
    };
}
/// `dev_err_ratelimited()`: at most 10 lines per 5 s from this call site;
/// the next line printed says how many were suppressed.
macro_rules! dev_err_ratelimited {
    ($dev:expr, $($arg:tt)*) => {{
        static LIMIT: $crate::safe::device::RateLimit = $crate::safe::device::RateLimit::new();
        if let Some(missed) = LIMIT.check() {
            if missed > 0 {
                $dev.print(
                    $crate::safe::device::Level::Warn,
                    format_args!("{} similar messages suppressed\n", missed),
                );
            }
            $dev.print($crate::safe::device::Level::Err, format_args!($($arg)*));
        }
    }};
}
/// `dev_warn_ratelimited()`.
macro_rules! dev_warn_ratelimited {
    ($dev:expr, $($arg:tt)*) => {{
        static LIMIT: $crate::safe::device::RateLimit = $crate::safe::device::RateLimit::new();
        if let Some(missed) = LIMIT.check() {
            if missed > 0 {
                $dev.print(
                    $crate::safe::device::Level::Warn,
                    format_args!("{} similar messages suppressed\n", missed),
                );
            }
            $dev.print($crate::safe::device::Level::Warn, format_args!($($arg)*));
        }
    }};
}
pub(crate) use {dev_err, dev_err_ratelimited, dev_info, dev_warn_ratelimited};
