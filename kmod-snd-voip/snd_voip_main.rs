// SPDX-License-Identifier: GPL-2.0
//! snd-voip: a virtual ALSA card "VoIP" for boards whose audio lives on
//! another core.
//!
//! PCM device 0 ("VoIP PCM") is for applications, device 1 ("VoIP Bridge")
//! for the SIP bridge. Substream *n* of each device is joined by a cable, as
//! in snd-aloop: playback on 0,n is captured on 1,n and playback on 1,n is
//! captured on 0,n. Each running stream has an hrtimer that fires at its
//! period boundaries; positions are computed from ktime since the stream
//! started (as snd-dummy's hrtimer mode does), so they never drift.

use core::ffi::CStr;
use core::sync::atomic::{AtomicI32, AtomicPtr, Ordering};
use kernel::ffi::{c_int, c_void};
use kernel::prelude::*;

mod bindings;
mod cable;
mod hrtimer;
mod rtos;
mod sound;
mod sync;

#[path = "logic/clock.rs"]
pub mod clock;
#[path = "logic/fifo.rs"]
pub mod fifo;
#[path = "logic/follow.rs"]
pub mod follow;
#[path = "logic/format.rs"]
pub mod format;
#[path = "logic/ring.rs"]
pub mod ring;

use cable::Cable;
use format::MAX_SUBSTREAMS;
use rtos::Rtos;
use sound::Card;

module! {
    type: SndVoip,
    name: "snd_voip",
    author: "snd-voip developers",
    description: "VoIP virtual sound card: hrtimer-clocked loopback cables between applications and a SIP bridge",
    license: "GPL",
}

/// `THIS_MODULE`, for `snd_card_new` (the card holds a module reference while open).
static THIS_MODULE_PTR: AtomicPtr<bindings::module> = AtomicPtr::new(core::ptr::null_mut());

/// The error of the last failed probe, for module init to report.
static PROBE_ERROR: AtomicI32 = AtomicI32::new(0);

/// Name of the platform device and driver.
const DRIVER_NAME: &CStr = c"snd_voip";

/// Cables: one per substream and direction.
const MAX_CABLES: usize = 2 * MAX_SUBSTREAMS as usize;

/// Everything one card instance owns. Heap-allocated, never moved: the timers,
/// locks and ALSA private pointers point into it.
///
/// # Invariants
///
/// The first `2 * substreams` cables are initialised; `card` is dropped (the
/// ALSA card freed, which waits for every open file) before the cables.
struct VoipCard {
    card: Option<Card>,
    substreams: u32,
    cables: [Cable; MAX_CABLES],
    /// The RTOS FIFO of a board whose device tree has the node.
    rtos: Option<Rtos>,
}

impl VoipCard {
    /// The cable that serves substream `number` of PCM `device` in `stream`
    /// direction, and which end of it the substream is.
    fn cable_for(&self, ss: sound::Substream) -> Option<(&Cable, usize)> {
        let side = match ss.stream() {
            sound::Stream::Playback => cable::PLAY,
            sound::Stream::Capture => cable::CAPT,
        };
        // device 0 playback and device 1 capture share direction 0; device 1
        // playback and device 0 capture share direction 1.
        let dir = (ss.device() & 1) as usize ^ side;
        let n = ss.number();
        if n >= self.substreams {
            return None;
        }
        self.cables.get(n as usize * 2 + dir).map(|c| (c, side))
    }
}

/// The PCM callbacks, dispatched to the substream's cable end.
struct VoipPcm;

impl VoipPcm {
    fn end(ss: sound::Substream) -> Result<(&'static Cable, usize)> {
        let vc = ss.private().cast::<VoipCard>();
        if vc.is_null() {
            return Err(ENODEV);
        }
        // SAFETY: `private` was set by probe to the live `VoipCard`, which
        // outlives the card and so every substream callback.
        let vc: &'static VoipCard = unsafe { &*vc };
        vc.cable_for(ss).ok_or(EINVAL)
    }
}

impl sound::PcmOps for VoipPcm {
    fn open(ss: sound::Substream) -> Result {
        let (c, side) = Self::end(ss)?;
        c.open(side, ss)
    }
    fn close(ss: sound::Substream) -> Result {
        let (c, side) = Self::end(ss)?;
        c.close(side);
        Ok(())
    }
    fn hw_free(ss: sound::Substream) -> Result {
        let (c, side) = Self::end(ss)?;
        c.hw_free(side);
        Ok(())
    }
    fn prepare(ss: sound::Substream) -> Result {
        let (c, side) = Self::end(ss)?;
        c.prepare(side, ss)
    }
    fn trigger(ss: sound::Substream, cmd: sound::Trigger) -> Result {
        let (c, side) = Self::end(ss)?;
        c.trigger(side, cmd)
    }
    fn sync_stop(ss: sound::Substream) -> Result {
        let (c, side) = Self::end(ss)?;
        c.sync_stop(side);
        Ok(())
    }
    fn pointer(ss: sound::Substream) -> usize {
        match Self::end(ss) {
            Ok((c, side)) => c.pointer(side),
            Err(_) => 0,
        }
    }
}

/// Module parameters, read once at probe.
struct Params {
    index: c_int,
    id: &'static CStr,
    enable: bool,
    substreams: c_int,
}

fn params() -> Params {
    // SAFETY: the getters read module parameters, which are set before init
    // and read-only (0444) afterwards.
    let (index, id, enable, substreams) = unsafe {
        (
            bindings::snd_voip_param_index(),
            bindings::snd_voip_param_id(),
            bindings::snd_voip_param_enable(),
            bindings::snd_voip_param_pcm_substreams(),
        )
    };
    let id = if id.is_null() {
        c"VoIP"
    } else {
        // SAFETY: a charp module parameter is a NUL-terminated string that
        // lives as long as the module.
        unsafe { CStr::from_ptr(id.cast()) }
    };
    Params {
        index,
        id,
        enable,
        substreams,
    }
}

/// Creates the card for `pdev`. Returns the `VoipCard` to keep as driver data.
fn create(pdev: *mut bindings::platform_device) -> Result<KBox<VoipCard>> {
    // SAFETY: `pdev` is the live device being probed.
    let dev = unsafe { core::ptr::addr_of_mut!((*pdev).dev) };
    // SAFETY: as above.
    let from_dt = !unsafe { (*dev).of_node }.is_null();
    let p = params();
    let substreams = match u32::try_from(p.substreams) {
        Ok(n) if (1..=MAX_SUBSTREAMS).contains(&n) => n,
        _ => {
            pr_err!(
                "pcm_substreams={} is out of range 1..{}\n",
                p.substreams,
                MAX_SUBSTREAMS
            );
            return Err(EINVAL);
        }
    };
    let boxed = KBox::<VoipCard>::new_uninit(GFP_KERNEL | __GFP_ZERO)?;
    let rtos = if from_dt {
        // SAFETY: `dev` is the live device being probed.
        Some(unsafe { Rtos::probe(dev) }?)
    } else {
        None
    };
    let raw = KBox::into_raw(boxed).cast::<VoipCard>();
    // SAFETY: `raw` is a fresh zeroed allocation of a `VoipCard`; each field is
    // written in place before the box is rebuilt, and the cables are never
    // moved afterwards (the box is only kept, then dropped).
    let vc = unsafe {
        core::ptr::write(core::ptr::addr_of_mut!((*raw).card), None);
        core::ptr::write(core::ptr::addr_of_mut!((*raw).substreams), substreams);
        core::ptr::write(core::ptr::addr_of_mut!((*raw).rtos), rtos);
        let rtos_ptr = match &*core::ptr::addr_of!((*raw).rtos) {
            Some(r) => r as *const Rtos,
            None => core::ptr::null(),
        };
        for i in 0..MAX_CABLES {
            Cable::init(
                core::ptr::addr_of_mut!((*raw).cables[i]),
                i as u32,
                rtos_ptr,
            );
        }
        KBox::from_raw(raw)
    };
    let module = THIS_MODULE_PTR.load(Ordering::Relaxed);
    // SAFETY: `pdev` is the device being probed; it outlives its driver data
    // and so the card. `module` is THIS_MODULE.
    let card = unsafe { Card::new(core::ptr::addr_of_mut!((*pdev).dev), p.index, p.id, module) };
    let card = match card {
        Ok(c) => c,
        Err(e) => {
            pr_err!(
                "cannot create card (index={}, id={:?}): error {}; is another card using that slot or id?\n",
                p.index,
                p.id,
                e.to_errno()
            );
            return Err(e);
        }
    };
    card.set_names(c"snd_voip", c"VoIP", c"VoIP virtual sound card (snd-voip)");
    let private = (&*vc as *const VoipCard).cast_mut().cast::<c_void>();
    let n = substreams as c_int;
    let app = card.new_pcm(c"VoIP PCM", 0, n)?;
    // SAFETY: `vc` outlives the card (see the `VoipCard` invariant).
    unsafe { app.setup::<VoipPcm>(c"VoIP PCM", private) };
    let bridge = card.new_pcm(c"VoIP Bridge", 1, n)?;
    // SAFETY: as above.
    unsafe { bridge.setup::<VoipPcm>(c"VoIP Bridge", private) };
    for (i, c) in vc.cables.iter().enumerate().take(2 * substreams as usize) {
        let name = cable::proc_name(i);
        // SAFETY: the cable lives in `vc`, which outlives the card.
        unsafe {
            card.add_proc(
                name,
                (c as *const Cable).cast_mut().cast(),
                cable::proc_read,
            )?
        };
    }
    if let Some(r) = &vc.rtos {
        let rp = (r as *const Rtos).cast_mut().cast::<c_void>();
        for n in 0..substreams {
            // SAFETY: `vc.rtos` outlives the card (see `VoipCard`).
            unsafe {
                card.add_enum_control::<rtos::RouteCtl<fifo::CaptureSource>>(
                    c"Capture Source",
                    n,
                    rp,
                    n as usize,
                )?;
                card.add_enum_control::<rtos::RouteCtl<fifo::PlaybackSink>>(
                    c"Playback Sink",
                    n,
                    rp,
                    n as usize,
                )?;
            }
        }
        // SAFETY: as above.
        unsafe { card.add_proc(c"rtos", rp, rtos::proc_read)? };
    }
    card.register()?;
    pr_info!(
        "card {} \"{}\": {} cable(s) per direction, devices 0 \"VoIP PCM\" and 1 \"VoIP Bridge\"\n",
        card.number(),
        p.id.to_str().unwrap_or("?"),
        substreams
    );
    if vc.rtos.is_some() {
        pr_info!("RTOS FIFO attached: controls \"Capture Source\" and \"Playback Sink\", /proc/asound/{}/rtos\n", p.id.to_str().unwrap_or("?"));
    }
    let mut vc = vc;
    vc.card = Some(card);
    Ok(vc)
}

unsafe extern "C" fn probe(pdev: *mut bindings::platform_device) -> c_int {
    match create(pdev) {
        Ok(vc) => {
            // SAFETY: `pdev` is live during probe; the driver data is read back in `remove`.
            unsafe { (*pdev).dev.driver_data = KBox::into_raw(vc).cast() };
            0
        }
        Err(e) => {
            PROBE_ERROR.store(e.to_errno(), Ordering::Relaxed);
            e.to_errno()
        }
    }
}

unsafe extern "C" fn remove(pdev: *mut bindings::platform_device) {
    // SAFETY: `pdev` is live; its driver data was set by a successful probe.
    let raw = unsafe { (*pdev).dev.driver_data }.cast::<VoipCard>();
    if raw.is_null() {
        return;
    }
    // SAFETY: `raw` came from `KBox::into_raw` in probe and is reclaimed once.
    let mut vc = unsafe { KBox::from_raw(raw) };
    // Free the ALSA card first: it waits until every substream is closed, and
    // closing cancels each stream's timer, so no callback can reach the cables.
    drop(vc.card.take());
    for c in vc.cables.iter() {
        c.shutdown();
    }
    // SAFETY: `pdev` is live.
    unsafe { (*pdev).dev.driver_data = core::ptr::null_mut() };
}

/// The module: a platform driver and the platform device it binds.
struct SndVoip {
    driver: Option<KBox<bindings::platform_driver>>,
    device: *mut bindings::platform_device,
}

// SAFETY: the raw pointers are only used at init and exit, which the module
// loader serialises.
unsafe impl Send for SndVoip {}
// SAFETY: as above; no method reads them concurrently.
unsafe impl Sync for SndVoip {}

/// Whether `p` is an `ERR_PTR` value.
pub(crate) fn is_err_ptr<T>(p: *mut T) -> bool {
    let v = p as isize;
    (-4095..0).contains(&v)
}

impl kernel::Module for SndVoip {
    fn init(module: &'static ThisModule) -> Result<Self> {
        THIS_MODULE_PTR.store(module.as_ptr().cast(), Ordering::Relaxed);
        let p = params();
        if !p.enable {
            pr_info!("enable=0: no card created\n");
            return Ok(SndVoip {
                driver: None,
                device: core::ptr::null_mut(),
            });
        }
        let mut drv = KBox::new(bindings::platform_driver::default(), GFP_KERNEL)?;
        drv.probe = Some(probe);
        drv.__bindgen_anon_1.remove = Some(remove);
        drv.driver.name = DRIVER_NAME.as_ptr().cast();
        // The match table is a static C array ending with an empty entry.
        drv.driver.of_match_table = core::ptr::addr_of!(bindings::snd_voip_of_match).cast();
        PROBE_ERROR.store(0, Ordering::Relaxed);
        // SAFETY: `drv` is heap-allocated and kept until `drop` unregisters it.
        kernel::error::to_result(unsafe {
            bindings::__platform_driver_register(&mut *drv, module.as_ptr().cast())
        })?;
        // A board whose device tree has the RTOS FIFO node gets its card from
        // that node (probed during the registration above); others get a
        // software platform device.
        // SAFETY: a lookup in the device tree, no preconditions.
        if unsafe { bindings::snd_voip_of_node_present() } {
            let err = PROBE_ERROR.load(Ordering::Relaxed);
            if err != 0 {
                // SAFETY: registered just above.
                unsafe { bindings::platform_driver_unregister(&mut *drv) };
                pr_err!("the RTOS FIFO node was refused (error {}): no card\n", err);
                return Err(kernel::error::Error::from_errno(err));
            }
            return Ok(SndVoip {
                driver: Some(drv),
                device: core::ptr::null_mut(),
            });
        }
        let info = bindings::platform_device_info {
            name: DRIVER_NAME.as_ptr().cast(),
            id: -1,
            ..Default::default()
        };
        // SAFETY: `info` is valid for the call; the name is static.
        let device = unsafe { bindings::platform_device_register_full(&info) };
        if is_err_ptr(device) {
            let err = device as isize as c_int;
            // SAFETY: registered just above.
            unsafe { bindings::platform_driver_unregister(&mut *drv) };
            pr_err!("cannot register the platform device: error {}\n", err);
            return Err(kernel::error::Error::from_errno(err));
        }
        // probe errors do not fail platform_device_register: report them.
        // SAFETY: `device` is a live registered platform device.
        if unsafe { (*device).dev.driver_data }.is_null() {
            // SAFETY: both were registered above.
            unsafe {
                bindings::platform_device_unregister(device);
                bindings::platform_driver_unregister(&mut *drv);
            }
            return Err(ENODEV);
        }
        Ok(SndVoip {
            driver: Some(drv),
            device,
        })
    }
}

impl Drop for SndVoip {
    fn drop(&mut self) {
        if let Some(mut drv) = self.driver.take() {
            // SAFETY: both were registered in init and are unregistered once
            // (no software device on a device-tree board).
            unsafe {
                if !self.device.is_null() {
                    bindings::platform_device_unregister(self.device);
                }
                bindings::platform_driver_unregister(&mut *drv);
            }
        }
        pr_info!("unloaded\n");
    }
}

/// Checks on constants the driver relies on (compile time).
const _: () = {
    assert!(MAX_SUBSTREAMS as usize * 2 == MAX_CABLES);
};
