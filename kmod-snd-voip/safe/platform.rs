// SPDX-License-Identifier: GPL-2.0
//! A platform driver with its device ([`Registration`], [`Driver`]).
//!
//! The 6.12 kernel crate has no platform driver abstraction (6.14 has).
//! The driver binds either the device-tree node `snd-voip,rtos-fifo`
//! (the match table lives in the C shim, where `MODULE_DEVICE_TABLE()`
//! can export it for module autoloading) or, on a board without it, a
//! software platform device it registers itself. Probe, remove and the
//! system-sleep PM callbacks are trampolines to [`Driver`]; probe's own
//! error is what [`Registration::new`] returns, so `modprobe` reports it.

use crate::bindings;
use crate::safe::device::Device;
use core::ffi::CStr;
use core::marker::PhantomData;
use core::pin::Pin;
use core::sync::atomic::{AtomicI32, AtomicU32, Ordering};
use kernel::alloc::KBox;
use kernel::error::{code::*, to_result, Error, Result};
use kernel::ffi::c_int;
use kernel::init::InPlaceInit;
use kernel::prelude::{pin_data, GFP_KERNEL};
use kernel::types::Opaque;

/// A platform driver's callbacks.
pub(crate) trait Driver: 'static {
    /// What a bound device keeps (its driver data).
    type Data: Send + Sync;
    /// Binds `dev`; the returned data lives until the device is unbound.
    fn probe(dev: &Device) -> Result<KBox<Self::Data>>;
    /// System suspend (and hibernation freeze/poweroff).
    fn suspend(_data: &Self::Data) -> Result {
        Ok(())
    }
    /// System resume (and thaw/restore).
    fn resume(_data: &Self::Data) -> Result {
        Ok(())
    }
}

/// Whether the device tree has an enabled node the driver matches.
pub(crate) fn of_node_present() -> bool {
    // SAFETY: a lookup in the device tree, no preconditions.
    unsafe { bindings::snd_voip_of_node_present() }
}

/// The registered `struct platform_driver`, with what probe reports back.
///
/// # Invariants
///
/// `driver`'s callbacks are this module's trampolines for `T`; it is only
/// registered while inside a pinned `Inner` (it never moves).
#[pin_data]
struct Inner<T> {
    #[pin]
    driver: Opaque<bindings::platform_driver>,
    /// The errno of the last failed probe (0: none).
    probe_error: AtomicI32,
    /// Devices bound.
    bound: AtomicU32,
    _driver: PhantomData<T>,
}

// SAFETY: the C driver struct is only read by the driver core after
// registration; the atomics are shared.
unsafe impl<T> Sync for Inner<T> {}
// SAFETY: as above.
unsafe impl<T> Send for Inner<T> {}

/// The driver registered with the driver core, and the software device it
/// binds on boards without the device-tree node; both unregistered on drop
/// (which unbinds, calling `remove`).
///
/// # Invariants
///
/// `inner.driver` is registered; `device` is null or a registered platform
/// device.
pub(crate) struct Registration<T: Driver> {
    inner: Pin<KBox<Inner<T>>>,
    device: *mut bindings::platform_device,
}

// SAFETY: registration and unregistration may happen from any process
// context; the pointer is only used in `drop`.
unsafe impl<T: Driver> Send for Registration<T> {}
// SAFETY: no `&self` method exists.
unsafe impl<T: Driver> Sync for Registration<T> {}

fn is_err_ptr<P>(p: *mut P) -> Option<c_int> {
    let v = p as isize;
    (-4095..0).contains(&v).then_some(v as c_int)
}

impl<T: Driver> Registration<T> {
    /// Registers the driver `name`. With `of`, it matches the device-tree
    /// node (probed during registration); without, it also registers a
    /// software device of that name for it to bind. Either way it returns
    /// probe's own error when the device was refused, and `ENODEV` when
    /// nothing was bound.
    pub(crate) fn new(
        module: &'static kernel::ThisModule,
        name: &'static CStr,
        of: bool,
    ) -> Result<Self> {
        let init = kernel::pin_init!(Inner::<T> {
            driver <- Opaque::ffi_init(move |p: *mut bindings::platform_driver| {
                // SAFETY: `p` is the driver struct being initialised in place.
                unsafe {
                    p.write(bindings::platform_driver::default());
                    (*p).probe = Some(probe_cb::<T>);
                    (*p).__bindgen_anon_1.remove = Some(remove_cb::<T>);
                    (*p).driver.name = name.as_ptr().cast();
                    (*p).driver.pm = &PmTable::<T>::OPS;
                    if of {
                        (*p).driver.of_match_table =
                            core::ptr::addr_of!(bindings::snd_voip_of_match).cast();
                    }
                }
            }),
            probe_error: AtomicI32::new(0),
            bound: AtomicU32::new(0),
            _driver: PhantomData,
        });
        let inner = KBox::pin_init(init, GFP_KERNEL)?;
        // SAFETY: the driver struct is initialised and pinned; it stays
        // registered until `drop` (or the error paths below) unregister it.
        to_result(unsafe {
            bindings::__platform_driver_register(inner.driver.get(), module.as_ptr().cast())
        })?;
        // INVARIANT: registered above.
        let mut reg = Registration {
            inner,
            device: core::ptr::null_mut(),
        };
        if !of {
            let info = bindings::platform_device_info {
                name: name.as_ptr().cast(),
                id: -1,
                ..Default::default()
            };
            // SAFETY: `info` is valid for the call; the name is static.
            let device = unsafe { bindings::platform_device_register_full(&info) };
            if let Some(err) = is_err_ptr(device) {
                return Err(Error::from_errno(err));
            }
            // INVARIANT: a registered device, unregistered in `drop`.
            reg.device = device;
        }
        match reg.inner.probe_error.load(Ordering::Relaxed) {
            0 if reg.inner.bound.load(Ordering::Relaxed) > 0 => Ok(reg),
            0 => Err(ENODEV),
            err => Err(Error::from_errno(err)),
        }
    }
}

impl<T: Driver> Drop for Registration<T> {
    fn drop(&mut self) {
        // SAFETY: by the invariant both are registered; unregistering the
        // device unbinds it (remove), then the driver goes.
        unsafe {
            if !self.device.is_null() {
                bindings::platform_device_unregister(self.device);
            }
            bindings::platform_driver_unregister(self.inner.driver.get());
        }
    }
}

/// The `Inner` of the driver a device is being bound to.
///
/// # Safety
///
/// `pdev` must be a device whose driver is an `Inner<T>`'s, during probe.
unsafe fn inner_of<'a, T: Driver>(pdev: *mut bindings::platform_device) -> &'a Inner<T> {
    // SAFETY: during probe `dev.driver` is the `device_driver` inside our
    // `platform_driver` (`to_platform_driver()`), which is the `driver`
    // field of a pinned, live `Inner<T>`: two `container_of` steps.
    unsafe {
        let drv = (*pdev).dev.driver;
        let pdrv = kernel::container_of!(drv, bindings::platform_driver, driver);
        let opaque = pdrv.cast::<Opaque<bindings::platform_driver>>();
        &*kernel::container_of!(opaque, Inner<T>, driver)
    }
}

unsafe extern "C" fn probe_cb<T: Driver>(pdev: *mut bindings::platform_device) -> c_int {
    // SAFETY: the driver core probes a live device with our driver.
    let (dev, inner) = unsafe {
        (
            Device::from_raw(core::ptr::addr_of_mut!((*pdev).dev)),
            inner_of::<T>(pdev),
        )
    };
    match T::probe(dev) {
        Ok(data) => {
            // SAFETY: the device is live; its driver data is ours while bound
            // and read back (once) by `remove_cb`.
            unsafe { (*pdev).dev.driver_data = KBox::into_raw(data).cast() };
            inner.bound.fetch_add(1, Ordering::Relaxed);
            0
        }
        Err(e) => {
            inner.probe_error.store(e.to_errno(), Ordering::Relaxed);
            e.to_errno()
        }
    }
}

unsafe extern "C" fn remove_cb<T: Driver>(pdev: *mut bindings::platform_device) {
    // SAFETY: the driver core unbinds a live device that `probe_cb` bound.
    let raw = unsafe { (*pdev).dev.driver_data }.cast::<T::Data>();
    if raw.is_null() {
        return;
    }
    // SAFETY: `raw` came from `KBox::into_raw` in probe; reclaimed once.
    drop(unsafe { KBox::from_raw(raw) });
    // SAFETY: as above.
    unsafe { (*pdev).dev.driver_data = core::ptr::null_mut() };
}

/// The bound device's driver data.
///
/// # Safety
///
/// `dev` must be a live device bound by `probe_cb::<T>`.
unsafe fn data_of<'a, T: Driver>(dev: *mut bindings::device) -> Option<&'a T::Data> {
    // SAFETY: the PM core calls us only while the device is bound, so the
    // driver data is null or the live `T::Data` of `probe_cb`.
    unsafe { ((*dev).driver_data as *const T::Data).as_ref() }
}

unsafe extern "C" fn pm_suspend<T: Driver>(dev: *mut bindings::device) -> c_int {
    // SAFETY: the PM core calls this for a bound device of our driver.
    match unsafe { data_of::<T>(dev) } {
        Some(d) => T::suspend(d).map_or_else(|e| e.to_errno(), |()| 0),
        None => 0,
    }
}

unsafe extern "C" fn pm_resume<T: Driver>(dev: *mut bindings::device) -> c_int {
    // SAFETY: as in `pm_suspend`.
    match unsafe { data_of::<T>(dev) } {
        Some(d) => T::resume(d).map_or_else(|e| e.to_errno(), |()| 0),
        None => 0,
    }
}

/// The driver's `dev_pm_ops` (system sleep: suspend/resume,
/// freeze/thaw, poweroff/restore), as `SET_SYSTEM_SLEEP_PM_OPS()`.
struct PmTable<T>(PhantomData<T>);

impl<T: Driver> PmTable<T> {
    const OPS: bindings::dev_pm_ops = {
        // SAFETY: `dev_pm_ops` is a table of optional function pointers,
        // for which all-zero is "none".
        let mut o: bindings::dev_pm_ops = unsafe { core::mem::zeroed() };
        o.suspend = Some(pm_suspend::<T>);
        o.resume = Some(pm_resume::<T>);
        o.freeze = Some(pm_suspend::<T>);
        o.thaw = Some(pm_resume::<T>);
        o.poweroff = Some(pm_suspend::<T>);
        o.restore = Some(pm_resume::<T>);
        o
    };
}
