// SPDX-License-Identifier: GPL-2.0
//! The card: its data ([`VoipCard`]: the cables and the RTOS FIFO), its
//! PCM callbacks (dispatched to the substream's cable end), its controls,
//! its proc files, and the platform driver that creates it ([`VoipDriver`]).

use crate::cable::{Cable, SlaveCtl};
use crate::format::MAX_SUBSTREAMS;
use crate::route::{routed_side, CAPT, CAPTURE_SOURCE_ITEMS, PLAY, PLAYBACK_SINK_ITEMS};
use crate::rtos::Rtos;
use crate::safe::device::{dev_err, dev_info, Device, DeviceRef};
use crate::safe::hrtimer::now_ns;
use crate::safe::params;
use crate::safe::platform::Driver;
use crate::safe::sound::card::{Card, Names, Power};
use crate::safe::sound::control::{Controls, CtlDesc, CtlKind, CtlNotify, Iface};
use crate::safe::sound::info::{InfoBuffer, ProcFiles};
use crate::safe::sound::pcm::{
    HwParam, HwParams, OpenSetup, PcmOps, Pointer, Stream, Substream, SubstreamSlot, Trigger,
};
use core::ffi::CStr;
use kernel::prelude::*;
use kernel::sync::Arc;

/// Cables: one per substream and direction.
const MAX_CABLES: usize = 2 * MAX_SUBSTREAMS as usize;

/// /proc/asound/VoIP/cableN names (N = substream * 2 + direction).
const PROC_NAMES: [&CStr; MAX_CABLES] = [
    c"cable0", c"cable1", c"cable2", c"cable3", c"cable4", c"cable5", c"cable6", c"cable7",
    c"cable8", c"cable9", c"cable10", c"cable11", c"cable12", c"cable13", c"cable14", c"cable15",
];

/// Everything one card owns, pinned in the card's own allocation (see
/// `safe::sound::card`): the timers, locks and slots in the cables never
/// move, and the card is freed (every file closed) before they are dropped.
#[pin_data]
pub(crate) struct VoipCard {
    /// Substreams per PCM device (cables per direction).
    substreams: u32,
    /// The first `2 * substreams` are in use.
    #[pin]
    cables: [Cable; MAX_CABLES],
    /// The RTOS FIFO of a board whose device tree has the node.
    rtos: Option<Arc<Rtos>>,
    dev: DeviceRef,
}

impl VoipCard {
    /// The cable serving `ss`, and which end of it `ss` is.
    fn end(&self, ss: &Substream<Self>) -> Option<(&Cable, usize)> {
        let side = match ss.stream() {
            Stream::Playback => PLAY,
            Stream::Capture => CAPT,
        };
        // Device 0 playback and device 1 capture share direction 0; device
        // 1 playback and device 0 capture share direction 1.
        let dir = (ss.device() & 1) as usize ^ side;
        let n = ss.number();
        if n >= self.substreams {
            return None;
        }
        self.cables.get(n as usize * 2 + dir).map(|c| (c, side))
    }

    fn cable(&self, i: usize) -> Option<&Cable> {
        self.cables.get(..2 * self.substreams as usize)?.get(i)
    }

    /// System suspend: paused streams give their RTOS rings back (running
    /// ones got the PCM core's SUSPEND trigger already).
    fn suspend(&self) {
        for c in self.cables.iter().take(2 * self.substreams as usize) {
            c.release_paused();
        }
    }
}

impl PcmOps for VoipCard {
    fn slot(&self, ss: &Substream<Self>) -> Option<&SubstreamSlot<Self>> {
        self.end(ss).map(|(c, side)| c.slot(side))
    }

    fn open(&self, ss: &Substream<Self>, setup: &mut OpenSetup<'_, Self>) -> Result {
        let (c, side) = self.end(ss).ok_or(ENODEV)?;
        c.open(side, setup)
    }

    fn close(&self, ss: &Substream<Self>) {
        if let Some((c, side)) = self.end(ss) {
            c.close(side);
        }
    }

    fn hw_rule(&self, ss: &Substream<Self>, var: HwParam, params: &mut HwParams) -> Result<bool> {
        let (c, side) = self.end(ss).ok_or(ENODEV)?;
        c.hw_rule(side, var, params)
    }

    fn hw_free(&self, ss: &Substream<Self>) {
        if let Some((c, side)) = self.end(ss) {
            c.hw_free(side);
        }
    }

    fn prepare(&self, ss: &Substream<Self>) -> Result {
        let (c, side) = self.end(ss).ok_or(ENODEV)?;
        c.prepare(side, ss)
    }

    fn trigger(&self, ss: &Substream<Self>, cmd: Trigger) -> Result {
        let (c, side) = self.end(ss).ok_or(ENODEV)?;
        c.trigger(side, cmd)
    }

    fn sync_stop(&self, ss: &Substream<Self>) {
        if let Some((c, side)) = self.end(ss) {
            c.sync_stop(side);
        }
    }

    fn pointer(&self, ss: &Substream<Self>) -> Pointer {
        self.end(ss)
            .map_or(Pointer::default(), |(c, side)| c.pointer(side))
    }
}

/// What a control key names: its kind (high bits) and its substream or
/// cable (low byte).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Ctl {
    /// "Capture Source" of substream n.
    CaptureSource,
    /// "Playback Sink" of substream n.
    PlaybackSink,
    /// "PCM Notify" of cable n.
    Notify,
    /// "PCM Slave ..." of cable n.
    Slave(SlaveCtl),
}

const CTLS: [Ctl; 7] = [
    Ctl::CaptureSource,
    Ctl::PlaybackSink,
    Ctl::Notify,
    Ctl::Slave(SlaveCtl::Active),
    Ctl::Slave(SlaveCtl::Format),
    Ctl::Slave(SlaveCtl::Rate),
    Ctl::Slave(SlaveCtl::Channels),
];

fn key(ctl: Ctl, n: usize) -> usize {
    let kind = CTLS.iter().position(|c| *c == ctl).unwrap_or(0);
    (kind << 8) | (n & 0xff)
}

fn unkey(key: usize) -> (Ctl, usize) {
    (
        CTLS.get(key >> 8).copied().unwrap_or(Ctl::Notify),
        key & 0xff,
    )
}

/// The cable a control key acts on.
fn ctl_cable(vc: &VoipCard, key: usize) -> Option<&Cable> {
    match unkey(key) {
        (Ctl::CaptureSource, n) => vc.cable(2 * n + 1),
        (Ctl::PlaybackSink, n) => vc.cable(2 * n),
        (_, c) => vc.cable(c),
    }
}

/// The change-event handle of a "PCM Slave" control key.
fn slave_event(vc: &VoipCard, key: usize) -> &CtlNotify {
    match (unkey(key), vc.cables.get(key & 0xff)) {
        ((Ctl::Slave(s), _), Some(c)) => c.event(s),
        // Only slave keys are given this picker; any other key gets the
        // first cable's (idle) handle, whose events nobody asked for.
        _ => vc.cables[0].event(SlaveCtl::Active),
    }
}

impl Controls for VoipCard {
    fn ctl_kind(&self, key: usize) -> CtlKind {
        match unkey(key).0 {
            Ctl::CaptureSource => CtlKind::Enumerated(CAPTURE_SOURCE_ITEMS),
            Ctl::PlaybackSink => CtlKind::Enumerated(PLAYBACK_SINK_ITEMS),
            Ctl::Notify | Ctl::Slave(SlaveCtl::Active) => CtlKind::Boolean,
            Ctl::Slave(SlaveCtl::Format) => CtlKind::Integer { min: 0, max: 52 },
            Ctl::Slave(SlaveCtl::Rate) => CtlKind::Integer {
                min: 0,
                max: 192_000,
            },
            Ctl::Slave(SlaveCtl::Channels) => CtlKind::Integer { min: 1, max: 1024 },
        }
    }

    fn ctl_get(&self, key: usize) -> i64 {
        let Some(c) = ctl_cable(self, key) else {
            return 0;
        };
        match unkey(key).0 {
            Ctl::CaptureSource | Ctl::PlaybackSink => i64::from(c.route_get()),
            Ctl::Notify => i64::from(c.notify_get()),
            Ctl::Slave(s) => c.slave_get(s),
        }
    }

    fn ctl_put(&self, key: usize, value: i64) -> Result<bool> {
        let c = ctl_cable(self, key).ok_or(EINVAL)?;
        match unkey(key).0 {
            Ctl::CaptureSource | Ctl::PlaybackSink => {
                c.route_put(u8::try_from(value).map_err(|_| EINVAL)?)
            }
            Ctl::Notify => Ok(c.notify_put(value != 0)),
            Ctl::Slave(_) => Err(EPERM),
        }
    }
}

impl ProcFiles for VoipCard {
    fn proc_read(&self, name: &CStr, buf: &mut InfoBuffer) {
        if name == c"rtos" {
            if let Some(r) = &self.rtos {
                r.proc_read(buf, now_ns());
            }
            return;
        }
        if let Some(i) = PROC_NAMES.iter().position(|n| *n == name) {
            if let Some(c) = self.cable(i) {
                c.proc_read(buf);
            }
        }
    }
}

/// Creates the card for `dev` (a device-tree node or the software device).
fn create(dev: &Device) -> Result<KBox<Card<VoipCard>>> {
    let substreams = match u32::try_from(params::pcm_substreams()) {
        Ok(n) if (1..=MAX_SUBSTREAMS).contains(&n) => n,
        _ => {
            dev_err!(
                dev,
                "pcm_substreams={} is out of range 1..{}\n",
                params::pcm_substreams(),
                MAX_SUBSTREAMS
            );
            return Err(EINVAL);
        }
    };
    let rtos = if dev.has_of_node() {
        Some(Arc::new(Rtos::probe(dev)?, GFP_KERNEL)?)
    } else {
        None
    };
    let defaults = rtos.as_ref().map(|r| r.defaults);
    let has_rtos = rtos.is_some();
    let card_rtos = rtos.clone();
    let init = pin_init!(VoipCard {
        substreams,
        cables <- kernel::init::pin_init_array_from_fn(|i| {
            let i = i as u32;
            Cable::new(i, rtos.clone(), dev.get(), defaults.map_or(0, |d| d.value_for(i)))
        }),
        rtos: card_rtos,
        dev: dev.get(),
    });
    let id = params::id();
    let names = Names {
        driver: c"snd_voip",
        short: c"VoIP",
        long: c"VoIP virtual sound card (snd-voip)",
    };
    let mut card = Card::new(dev, params::index(), id, &names, init).map_err(|e| {
        dev_err!(
            dev,
            "cannot create card (index={}, id={:?}): error {}; is another card using that slot or id?\n",
            params::index(),
            id,
            e.to_errno()
        );
        e
    })?;
    card.new_pcm(c"VoIP PCM", 0, substreams)?;
    card.new_pcm(c"VoIP Bridge", 1, substreams)?;
    let cables = 2 * substreams as usize;
    for (c, &proc_name) in PROC_NAMES.iter().enumerate().take(cables) {
        card.add_proc(proc_name)?;
        // snd-aloop's controls, on the device whose capture this cable
        // feeds: they describe the playback feeding it.
        let device = if c & 1 == 0 { 1 } else { 0 };
        let pcm = |name: &'static CStr, ctl: Ctl, read_only: bool| CtlDesc {
            iface: Iface::Pcm,
            name,
            index: 0,
            device,
            subdevice: (c / 2) as u32,
            read_only,
            key: key(ctl, c),
        };
        card.add_control(&pcm(c"PCM Notify", Ctl::Notify, false), None)?;
        for (name, s) in [
            (c"PCM Slave Active", SlaveCtl::Active),
            (c"PCM Slave Format", SlaveCtl::Format),
            (c"PCM Slave Rate", SlaveCtl::Rate),
            (c"PCM Slave Channels", SlaveCtl::Channels),
        ] {
            card.add_control(&pcm(name, Ctl::Slave(s), true), Some(slave_event))?;
        }
    }
    if has_rtos {
        for n in 0..substreams as usize {
            for (name, ctl) in [
                (c"Capture Source", Ctl::CaptureSource),
                (c"Playback Sink", Ctl::PlaybackSink),
            ] {
                let desc = CtlDesc {
                    iface: Iface::Mixer,
                    name,
                    index: n as u32,
                    device: 0,
                    subdevice: 0,
                    read_only: false,
                    key: key(ctl, n),
                };
                card.add_control(&desc, None)?;
            }
        }
        card.add_proc(c"rtos")?;
    }
    card.register()?;
    dev_info!(
        dev,
        "card {} \"{}\": {} cable(s) per direction, devices 0 \"VoIP PCM\" and 1 \"VoIP Bridge\"\n",
        card.number(),
        id.to_str().unwrap_or("?"),
        substreams
    );
    if has_rtos {
        dev_info!(
            dev,
            "RTOS FIFO attached: controls \"Capture Source\" and \"Playback Sink\", /proc/asound/{}/rtos\n",
            id.to_str().unwrap_or("?")
        );
    }
    // The side each routing control governs (documented in route.rs).
    debug_assert!(routed_side(0) == PLAY && routed_side(1) == CAPT);
    Ok(KBox::new(card, GFP_KERNEL)?)
}

/// The platform driver of the card.
pub(crate) struct VoipDriver;

impl Driver for VoipDriver {
    type Data = Card<VoipCard>;

    fn probe(dev: &Device) -> Result<KBox<Card<VoipCard>>> {
        create(dev)
    }

    fn suspend(card: &Card<VoipCard>) -> Result {
        card.set_power(Power::D3Hot);
        card.data().suspend();
        Ok(())
    }

    fn resume(card: &Card<VoipCard>) -> Result {
        card.set_power(Power::D0);
        Ok(())
    }
}
