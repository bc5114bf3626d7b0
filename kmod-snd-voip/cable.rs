// SPDX-License-Identifier: GPL-2.0
//! A cable: one direction of one substream pair, joining a playback end to
//! a capture end (snd-aloop's model), clocked by one hrtimer per running
//! end. On an RTOS board the application-side end of a cable may instead
//! exchange its frames with an RTOS ring ([`EndRoute`]).
//!
//! Locking: the cable's [`IrqSpinLock`] protects its state. ALSA calls
//! `trigger` and `pointer` with the PCM stream lock held, and they take the
//! cable lock inside it; the timer callback takes the cable lock alone and
//! drops it before `snd_pcm_period_elapsed` (which takes the stream lock).
//! So the order is always stream lock, then cable lock, then slot lock
//! (inside `SubstreamSlot::get`, for a moment), and no cable lock is held
//! across a call into the PCM core or a control notification.

use crate::clock::{crossed_period, next_period_boundary, StreamClock};
use crate::counter::PeerCounter;
use crate::follow::{target_fill, Follower, Role};
use crate::format::{
    Constraint, StreamParams, CHANNELS_MAX, CHANNELS_MIN, RATE_BITS, RATE_MAX, RATE_MIN,
};
use crate::ring::{plan_transfer, ring_pieces, Segments};
use crate::route::{route_of, routed_side, EndRoute, RingId, CAPT, PLAY};
use crate::rtos::{PortRef, Rtos};
use crate::safe::device::{dev_err_ratelimited, dev_warn_ratelimited, DeviceRef};
use crate::safe::hrtimer::{impl_has_hrtimer, now_ns, HrTimer, HrTimerCallback, Restart};
use crate::safe::sound::control::CtlNotify;
use crate::safe::sound::pcm::{
    info, DmaBuffer, Hardware, HwParam, HwParams, OpenSetup, Pointer, Substream, SubstreamSlot,
    Trigger,
};
use crate::safe::sync::{IrqSpinLock, LockClass};
use crate::VoipCard;
use core::fmt::Write;
use core::num::NonZeroU64;
use core::sync::atomic::Ordering;
use kernel::prelude::*;
use kernel::sync::Arc;

/// Shortest period the card accepts, in microseconds: shorter ones would
/// only burn CPU in timer interrupts.
const PERIOD_TIME_MIN_US: u32 = 1000;

/// What the card offers on every substream.
const HARDWARE: Hardware = Hardware {
    info: info::MMAP
        | info::MMAP_VALID
        | info::INTERLEAVED
        | info::BLOCK_TRANSFER
        | info::PAUSE
        | info::RESUME,
    formats: &[
        crate::format::ALSA_FORMAT_S16_LE,
        crate::format::ALSA_FORMAT_MU_LAW,
        crate::format::ALSA_FORMAT_A_LAW,
    ],
    rates: RATE_BITS,
    rate_min: RATE_MIN,
    rate_max: RATE_MAX,
    channels_min: CHANNELS_MIN,
    channels_max: CHANNELS_MAX,
    buffer_bytes_max: 256 * 1024,
    period_bytes_min: 64,
    period_bytes_max: 64 * 1024,
    periods_min: 2,
    periods_max: 1024,
};

/// The geometry of a prepared end.
#[derive(Clone, Copy)]
struct Geometry {
    params: StreamParams,
    buffer_frames: usize,
    period_frames: NonZeroU64,
}

/// What prepare fixed: the geometry and the route (until hw_free, close or
/// the next prepare; the routing control refuses changes meanwhile).
#[derive(Clone, Copy)]
struct Prepared {
    geo: Geometry,
    route: EndRoute,
}

/// An end's use of an RTOS ring, from start to stop.
#[derive(Clone, Copy)]
struct Link {
    ring: RingId,
    /// Playback Sink "Both": the playback also goes to the bridge.
    both: bool,
    /// Frames of silence a capture gives before it reads the ring: the
    /// cushion it starts with when the ring held less than the target, or
    /// held only stale frames (see [`Cable::resync`]).
    lead: u64,
    /// Frames a capture gave as silence because the RTOS was late; that
    /// many are skipped when they arrive, so a late RTOS costs a gap, not
    /// lasting latency (at most one ring).
    owed: u64,
    /// Steers this end's clock to the RTOS clock.
    follower: Follower,
    /// Linux's own counter (read for the microphone, write for the
    /// speaker): Linux is its only writer and never reads it back.
    linux: u64,
    /// The RTOS side's counter as Linux tracks it.
    peer: PeerCounter,
    /// Fill after the last transfer.
    fill: u64,
    /// Inside a run of ticks that could not be served (one xrun event).
    in_xrun: bool,
    /// The ring was given back by a system suspend of the paused stream;
    /// the release claims it again.
    released: bool,
}

/// One end of a cable.
struct End {
    /// A substream is open on this end.
    open: bool,
    /// Geometry and route once prepared.
    prepared: Option<Prepared>,
    /// Present while started (running or paused).
    clock: Option<StreamClock>,
    /// Frames the cable has moved for this end since start.
    done: u64,
    /// `done` when the last period was signalled.
    last_elapsed: u64,
    /// Frames of silence (capture) or dropped (playback) since start.
    unconnected: u64,
    /// Periods signalled since start.
    periods: u64,
    /// Present while the end runs (or is paused) on an RTOS ring.
    link: Option<Link>,
    /// Frames between the buffer and the RTOS codec (`runtime->delay`).
    delay: u64,
}

impl End {
    const fn new() -> Self {
        End {
            open: false,
            prepared: None,
            clock: None,
            done: 0,
            last_elapsed: 0,
            unconnected: 0,
            periods: 0,
            link: None,
            delay: 0,
        }
    }

    fn running(&self) -> bool {
        self.clock.is_some_and(|c| c.is_running())
    }

    /// Frames the clock says this end has advanced beyond `done`.
    fn pending(&self, now: u64) -> u64 {
        match self.clock {
            Some(c) => c.position(now).saturating_sub(self.done),
            None => 0,
        }
    }

    fn route(&self) -> EndRoute {
        self.prepared.map_or(EndRoute::Cable, |p| p.route)
    }

    /// Running and exchanging frames with the other end of the cable.
    fn on_cable(&self) -> bool {
        self.running() && self.route().on_cable()
    }
}

/// What the "PCM Slave" controls report about the playback that feeds this
/// cable's capture (snd-aloop's `loopback_setup`).
#[derive(Clone, Copy)]
struct Slave {
    format: u32,
    rate: u32,
    channels: u32,
}

/// The state the cable lock protects.
struct CableState {
    ends: [End; 2],
    /// The routing control's value for the cable's routable end.
    route_pref: u8,
    /// "PCM Notify": a playback with other parameters breaks a running
    /// capture (an xrun) instead of failing to start.
    notify: bool,
    /// A running capture must be broken (notify mode) at its next tick.
    break_capture: bool,
    slave: Slave,
}

/// Indices of [`Cable::events`].
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum SlaveCtl {
    /// "PCM Slave Active".
    Active = 0,
    /// "PCM Slave Format".
    Format = 1,
    /// "PCM Slave Rate".
    Rate = 2,
    /// "PCM Slave Channels".
    Channels = 3,
}

/// Change events to send once the cable lock is dropped.
#[derive(Default)]
struct Events([bool; 4]);

/// A cable; see the module documentation.
///
/// The timers come first: fields drop in order, and a timer's drop cancels
/// it (waiting for a running callback) before anything it uses goes.
#[pin_data]
pub(crate) struct Cable {
    #[pin]
    play_timer: HrTimer<Cable, 0>,
    #[pin]
    capt_timer: HrTimer<Cable, 1>,
    #[pin]
    state: IrqSpinLock<CableState>,
    #[pin]
    play_slot: SubstreamSlot<VoipCard>,
    #[pin]
    capt_slot: SubstreamSlot<VoipCard>,
    /// Change events of the "PCM Slave" controls (index: [`SlaveCtl`]).
    events: [CtlNotify; 4],
    index: u32,
    /// The card's RTOS FIFO, on a board that has one.
    rtos: Option<Arc<Rtos>>,
    dev: DeviceRef,
}

impl_has_hrtimer!(Cable, 0, play_timer);
impl_has_hrtimer!(Cable, 1, capt_timer);

impl HrTimerCallback<0> for Cable {
    fn run(&self) -> Restart {
        self.on_timer(PLAY)
    }
}

impl HrTimerCallback<1> for Cable {
    fn run(&self) -> Restart {
        self.on_timer(CAPT)
    }
}

/// The absolute time of the first period boundary after `now`.
fn next_expiry(clock: &StreamClock, period: NonZeroU64, now: u64) -> i64 {
    let target = next_period_boundary(clock.position(now), period);
    let at = clock.time_of_frame(target).unwrap_or(now).max(now + 1);
    i64::try_from(at).unwrap_or(i64::MAX)
}

impl Cable {
    /// An initialiser of cable `index` (N = substream * 2 + direction),
    /// with its routing control at `route_pref`.
    pub(crate) fn new(
        index: u32,
        rtos: Option<Arc<Rtos>>,
        dev: DeviceRef,
        route_pref: u8,
    ) -> impl PinInit<Self> {
        pin_init!(Cable {
            play_timer <- HrTimer::new(),
            capt_timer <- HrTimer::new(),
            state <- IrqSpinLock::new(
                CableState {
                    ends: [End::new(), End::new()],
                    route_pref,
                    notify: false,
                    break_capture: false,
                    // snd-aloop's defaults until a playback starts.
                    slave: Slave {
                        format: crate::format::ALSA_FORMAT_S16_LE,
                        rate: 48000,
                        channels: 2,
                    },
                },
                LockClass::Cable
            ),
            play_slot <- SubstreamSlot::new(),
            capt_slot <- SubstreamSlot::new(),
            events: [CtlNotify::new(), CtlNotify::new(), CtlNotify::new(), CtlNotify::new()],
            index,
            rtos,
            dev,
        })
    }

    /// The slot of end `side`.
    pub(crate) fn slot(&self, side: usize) -> &SubstreamSlot<VoipCard> {
        if side == PLAY {
            &self.play_slot
        } else {
            &self.capt_slot
        }
    }

    /// The change-event handle of a "PCM Slave" control.
    pub(crate) fn event(&self, c: SlaveCtl) -> &CtlNotify {
        &self.events[c as usize]
    }

    fn timer_start(&self, side: usize, at: i64) {
        if side == PLAY {
            self.play_timer.start_at(at)
        } else {
            self.capt_timer.start_at(at)
        }
    }

    fn timer_try_cancel(&self, side: usize) {
        if side == PLAY {
            self.play_timer.try_cancel()
        } else {
            self.capt_timer.try_cancel()
        }
    }

    fn timer_cancel(&self, side: usize) {
        if side == PLAY {
            self.play_timer.cancel()
        } else {
            self.capt_timer.cancel()
        }
    }

    fn port(&self, id: RingId) -> Option<PortRef<'_>> {
        self.rtos.as_ref().map(|r| r.port(id))
    }

    /// The route end `side` would get if prepared now.
    fn route_now(&self, st: &CableState, side: usize) -> EndRoute {
        if self.rtos.is_some() && side == routed_side(self.index) {
            route_of(self.index, st.route_pref)
        } else {
            EndRoute::Cable
        }
    }

    fn send(&self, ev: Events) {
        for (i, e) in ev.0.iter().enumerate() {
            if *e {
                self.events[i].notify();
            }
        }
    }

    // ---------------------------------------------------------------- PCM

    pub(crate) fn open(&self, side: usize, setup: &mut OpenSetup<'_, VoipCard>) -> Result {
        {
            let mut st = self.state.lock();
            let end = &mut st.ends[side & 1];
            if end.open {
                return Err(EBUSY);
            }
            *end = End::new();
            end.open = true;
        }
        setup.set_hw(&HARDWARE);
        let res = setup
            .add_rule(HwParam::Format, HwParam::Format)
            .and_then(|()| setup.add_rule(HwParam::Rate, HwParam::Rate))
            .and_then(|()| setup.add_rule(HwParam::Channels, HwParam::Channels))
            .and_then(|()| {
                setup.constrain_minmax(HwParam::PeriodTime, PERIOD_TIME_MIN_US, u32::MAX)
            });
        if res.is_err() {
            self.state.lock().ends[side & 1].open = false;
        }
        res
    }

    pub(crate) fn close(&self, side: usize) {
        // Process context, no lock held: wait for a running callback.
        self.timer_cancel(side & 1);
        let ev = {
            let mut st = self.state.lock();
            let was_active = side & 1 == PLAY && st.ends[PLAY].running();
            self.link_stop(&mut st.ends[side & 1]);
            st.ends[side & 1] = End::new();
            let mut ev = Events::default();
            ev.0[SlaveCtl::Active as usize] = was_active;
            ev
        };
        self.send(ev);
    }

    /// The peer's (or the ring's) constraint on end `side`'s parameters.
    pub(crate) fn hw_rule(&self, side: usize, var: HwParam, params: &mut HwParams) -> Result<bool> {
        let side = side & 1;
        let c = {
            let st = self.state.lock();
            let route = self.route_now(&st, side);
            match route.ring().and_then(|id| self.port(id)) {
                // An end routed to an RTOS ring must use the ring's format.
                Some(p) => Constraint::from_peer(Some(p.ring.params)),
                None => {
                    let peer = &st.ends[side ^ 1];
                    // In notify mode the playback is free (snd-aloop's rule).
                    let free = side == PLAY && st.notify;
                    match peer.prepared.filter(|p| p.route.on_cable() && !free) {
                        Some(p) => Constraint::from_peer(Some(p.geo.params)),
                        None => Constraint::default(),
                    }
                }
            }
        };
        match var {
            HwParam::Format => c
                .refine_format_mask(params.format_mask())
                .map_err(|_| EINVAL),
            HwParam::Rate => c.rate.map_or(Ok(false), |r| params.fix(HwParam::Rate, r)),
            HwParam::Channels => c
                .channels
                .map_or(Ok(false), |ch| params.fix(HwParam::Channels, ch)),
            HwParam::PeriodTime => Ok(false),
        }
    }

    pub(crate) fn hw_free(&self, side: usize) {
        let mut st = self.state.lock();
        let end = &mut st.ends[side & 1];
        self.link_stop(end);
        end.clock = None;
        end.prepared = None;
    }

    pub(crate) fn prepare(&self, side: usize, ss: &Substream<VoipCard>) -> Result {
        let side = side & 1;
        let Some(params) = StreamParams::new(ss.format(), ss.rate(), ss.channels()) else {
            dev_err_ratelimited!(
                self.dev,
                "cable {}: unsupported parameters format={} rate={} channels={}\n",
                self.index,
                ss.format(),
                ss.rate(),
                ss.channels()
            );
            return Err(EINVAL);
        };
        let buffer_frames = ss.buffer_size();
        let period = NonZeroU64::new(ss.period_size() as u64).ok_or(EINVAL)?;
        let need = buffer_frames
            .checked_mul(params.frame_bytes())
            .ok_or(EINVAL)?;
        if buffer_frames == 0 || need > ss.dma_bytes() {
            dev_err_ratelimited!(
                self.dev,
                "cable {}: buffer of {} frames does not fit {} bytes\n",
                self.index,
                buffer_frames,
                ss.dma_bytes()
            );
            return Err(EINVAL);
        }
        let mut st = self.state.lock();
        let route = self.route_now(&st, side);
        if let Some(p) = route.ring().and_then(|id| self.port(id)) {
            if !Constraint::compatible(&p.ring.params, &params) {
                dev_warn_ratelimited!(
                    self.dev,
                    "cable {}: the RTOS {} ring is {} {} Hz {} ch; the stream must use the same (or route it to the bridge)\n",
                    self.index,
                    p.name,
                    p.ring.params.format.name(),
                    p.ring.params.rate.get(),
                    p.ring.params.channels
                );
                return Err(EINVAL);
            }
        }
        let end = &mut st.ends[side];
        // A prepare after a suspend (or an xrun) starts over.
        self.link_stop(end);
        end.prepared = Some(Prepared {
            geo: Geometry {
                params,
                buffer_frames,
                period_frames: period,
            },
            route,
        });
        end.clock = None;
        end.done = 0;
        end.last_elapsed = 0;
        end.delay = 0;
        Ok(())
    }

    /// Whether starting end `side` would join two ends of different
    /// formats (snd-aloop's `loopback_check_format`): a capture fails when
    /// its playback is prepared with other parameters, a playback when its
    /// capture runs with other ones. Ends on an RTOS ring only do not count.
    fn format_conflict(st: &CableState, side: usize) -> bool {
        let (me, peer) = (&st.ends[side], &st.ends[side ^ 1]);
        let (Some(m), Some(p)) = (me.prepared, peer.prepared) else {
            return false;
        };
        if !m.route.on_cable() || !p.route.on_cable() {
            return false;
        }
        if Constraint::compatible(&m.geo.params, &p.geo.params) {
            return false;
        }
        side == CAPT || peer.clock.is_some()
    }

    pub(crate) fn trigger(&self, side: usize, cmd: Trigger) -> Result {
        let side = side & 1;
        let now = now_ns();
        let mut st = self.state.lock();
        self.advance(&mut st, now);
        let Some(prep) = st.ends[side].prepared else {
            return Err(EINVAL);
        };
        let mut ev = Events::default();
        let was_active = st.ends[PLAY].running();
        match cmd {
            Trigger::Start => {
                if Self::format_conflict(&st, side) {
                    if side == PLAY && st.notify {
                        // Notify mode: the capture is broken instead.
                        st.break_capture = true;
                    } else {
                        dev_warn_ratelimited!(
                            self.dev,
                            "cable {}: the two ends have different formats, rates or channels: {} refused (EIO)\n",
                            self.index,
                            if side == PLAY { "playback start" } else { "capture start" }
                        );
                        return Err(EIO);
                    }
                }
                self.link_stop(&mut st.ends[side]);
                let link = self.link_start(&prep, now)?;
                let clock = self.clock_for(&mut st, side, &prep, link.is_some(), now, None);
                let end = &mut st.ends[side];
                end.link = link;
                end.clock = Some(clock);
                end.done = 0;
                end.last_elapsed = 0;
                end.unconnected = 0;
                end.periods = 0;
                self.arm(side, end, now);
                if side == PLAY {
                    let s = Slave {
                        format: prep.geo.params.format.to_alsa(),
                        rate: prep.geo.params.rate.get(),
                        channels: prep.geo.params.channels,
                    };
                    ev.0[SlaveCtl::Format as usize] = s.format != st.slave.format;
                    ev.0[SlaveCtl::Rate as usize] = s.rate != st.slave.rate;
                    ev.0[SlaveCtl::Channels as usize] = s.channels != st.slave.channels;
                    st.slave = s;
                }
            }
            Trigger::PauseRelease | Trigger::Resume => {
                if let Some(mut link) = st.ends[side].link {
                    if let Some(port) = self.port(link.ring) {
                        if link.released {
                            if !port.claim(self.index) {
                                dev_warn_ratelimited!(
                                    self.dev,
                                    "cable {}: the RTOS {} ring was taken by cable {} while this stream was suspended\n",
                                    self.index,
                                    port.name,
                                    port.owner().unwrap_or(u32::MAX)
                                );
                                return Err(EBUSY);
                            }
                            link.released = false;
                        }
                        self.resync(&port, &mut link, &prep.geo, now);
                        port.set_linux_state(true);
                    }
                    st.ends[side].link = Some(link);
                }
                let linked = st.ends[side].link.is_some();
                if let Some(c) = st.ends[side].clock {
                    let c = self.clock_for(&mut st, side, &prep, linked, now, Some(c));
                    st.ends[side].clock = Some(c);
                }
                let end = &st.ends[side];
                self.arm(side, end, now);
            }
            Trigger::Stop | Trigger::PausePush | Trigger::Suspend => {
                let end = &mut st.ends[side];
                if cmd == Trigger::Stop {
                    end.clock = None;
                    self.link_stop(end);
                } else {
                    if let Some(c) = end.clock.as_mut() {
                        c.pause(now);
                    }
                    if let Some(link) = end.link.as_mut() {
                        if let Some(port) = self.port(link.ring) {
                            // The RTOS sees Linux stopped: no xruns counted,
                            // and (suspend) the ring is free for others.
                            if !link.released {
                                port.set_linux_state(false);
                                if cmd == Trigger::Suspend {
                                    port.release(self.index);
                                    link.released = true;
                                }
                            }
                        }
                    }
                }
                self.unshift_bridge_capture(&mut st, side, now);
                drop(st);
                // Atomic context: do not wait; the callback sees the end
                // stopped and does not re-arm, and sync_stop waits.
                self.timer_try_cancel(side);
                if side == PLAY && was_active {
                    self.event(SlaveCtl::Active).notify();
                }
                return Ok(());
            }
        }
        let active = st.ends[PLAY].running();
        drop(st);
        ev.0[SlaveCtl::Active as usize] |= active != was_active;
        self.send(ev);
        Ok(())
    }

    /// The clock end `side` starts (or, with `paused`, resumes) with: an
    /// end alone on a ring ticks by itself; an end on the cable ticks with
    /// its running peer (same epoch and shift), so both move by the same
    /// frames at every update; a Both playback joins its bridge capture at
    /// the nominal rate, and the follower then shifts the two together.
    fn clock_for(
        &self,
        st: &mut CableState,
        side: usize,
        prep: &Prepared,
        linked: bool,
        now: u64,
        paused: Option<StreamClock>,
    ) -> StreamClock {
        let rate = prep.geo.params.rate;
        let on_cable = prep.route.on_cable();
        let peer = &mut st.ends[side ^ 1];
        let peer_ok = on_cable
            && peer.on_cable()
            && peer
                .prepared
                .is_some_and(|p| Constraint::compatible(&p.geo.params, &prep.geo.params));
        if peer_ok && linked {
            // A Both playback (re)starting: the bridge capture returns to
            // the nominal rate, the follower starts from there.
            if let Some(c) = peer.clock.as_mut() {
                c.set_shift_ppm(0, now);
            }
        }
        let peer_clock = if peer_ok { peer.clock } else { None };
        match (paused, peer_clock) {
            (None, Some(p)) => StreamClock::start_with(&p, now),
            (None, None) => StreamClock::start(rate, now),
            (Some(mut c), Some(p)) => {
                c.resume_with(&p, now);
                c
            }
            (Some(mut c), None) => {
                // Alone (or on a ring): resume at the nominal rate; the
                // follower steers it again from its new start.
                if linked {
                    c.set_shift_ppm(0, now);
                }
                c.resume(now);
                c
            }
        }
    }

    /// A Both playback that stops or pauses leaves its bridge capture at
    /// the nominal rate. Cable lock held.
    fn unshift_bridge_capture(&self, st: &mut CableState, side: usize, now: u64) {
        if side != PLAY {
            return;
        }
        let both = st.ends[PLAY].link.is_some_and(|l| l.both);
        let capt = &mut st.ends[CAPT];
        if both && capt.link.is_none() {
            if let Some(c) = capt.clock.as_mut() {
                c.set_shift_ppm(0, now);
            }
        }
    }

    /// Arms the end's timer for its next period boundary (cable lock held).
    fn arm(&self, side: usize, end: &End, now: u64) {
        if let (Some(clock), Some(p)) = (end.clock, end.prepared) {
            if clock.is_running() {
                self.timer_start(side, next_expiry(&clock, p.geo.period_frames, now));
            }
        }
    }

    pub(crate) fn sync_stop(&self, side: usize) {
        self.timer_cancel(side & 1);
    }

    pub(crate) fn pointer(&self, side: usize) -> Pointer {
        let now = now_ns();
        let mut st = self.state.lock();
        self.advance(&mut st, now);
        let end = &st.ends[side & 1];
        match end.prepared {
            Some(p) => Pointer {
                pos: end
                    .done
                    .checked_rem(p.geo.buffer_frames as u64)
                    .map_or(0, |v| v as usize),
                delay: end.delay,
            },
            None => Pointer::default(),
        }
    }

    /// Gives back the ring of a paused end (system suspend: a paused
    /// stream gets no suspend trigger, but the RTOS must see Linux gone
    /// and the ring must be free while the system sleeps).
    pub(crate) fn release_paused(&self) {
        let mut st = self.state.lock();
        for end in st.ends.iter_mut() {
            let paused = end.clock.is_some_and(|c| !c.is_running());
            if let (true, Some(link)) = (paused, end.link.as_mut()) {
                if !link.released {
                    if let Some(port) = self.port(link.ring) {
                        port.set_linux_state(false);
                        port.release(self.index);
                    }
                    link.released = true;
                }
            }
        }
    }

    // ------------------------------------------------------------ controls

    /// The routing control's value.
    pub(crate) fn route_get(&self) -> u8 {
        self.state.lock().route_pref
    }

    /// Sets the routing control: refused with `EBUSY` while the end it
    /// routes is prepared (its route is fixed until hw_free or close).
    pub(crate) fn route_put(&self, v: u8) -> Result<bool> {
        let mut st = self.state.lock();
        if st.route_pref == v {
            return Ok(false);
        }
        if st.ends[routed_side(self.index)].prepared.is_some() {
            dev_warn_ratelimited!(
                self.dev,
                "cable {}: {} of substream {} cannot change while its stream is prepared (EBUSY); stop the stream (hw_free) first\n",
                self.index,
                if self.index & 1 == 0 { "Playback Sink" } else { "Capture Source" },
                self.index / 2
            );
            return Err(EBUSY);
        }
        st.route_pref = v;
        Ok(true)
    }

    /// "PCM Notify".
    pub(crate) fn notify_get(&self) -> bool {
        self.state.lock().notify
    }

    /// Sets "PCM Notify".
    pub(crate) fn notify_put(&self, v: bool) -> bool {
        let mut st = self.state.lock();
        let changed = st.notify != v;
        st.notify = v;
        changed
    }

    /// A "PCM Slave" control's value.
    pub(crate) fn slave_get(&self, c: SlaveCtl) -> i64 {
        let st = self.state.lock();
        match c {
            SlaveCtl::Active => i64::from(st.ends[PLAY].running()),
            SlaveCtl::Format => i64::from(st.slave.format),
            SlaveCtl::Rate => i64::from(st.slave.rate),
            SlaveCtl::Channels => i64::from(st.slave.channels),
        }
    }

    // ------------------------------------------------------------- rings

    /// Starts end `side` on its RTOS ring: claims it, re-checks its header,
    /// drops stale microphone frames or primes the speaker ring with
    /// silence, and returns the link. Cable lock held.
    fn link_start(&self, prep: &Prepared, now: u64) -> Result<Option<Link>> {
        let Some(id) = prep.route.ring() else {
            return Ok(None);
        };
        let (Some(rtos), Some(port)) = (self.rtos.as_ref(), self.port(id)) else {
            return Ok(None);
        };
        if !port.claim(self.index) {
            dev_warn_ratelimited!(
                self.dev,
                "cable {}: the RTOS {} ring is in use by cable {}\n",
                self.index,
                port.name,
                port.owner().unwrap_or(u32::MAX)
            );
            return Err(EBUSY);
        }
        let fail = |e: Error| -> Result<Option<Link>> {
            port.release(self.index);
            Err(e)
        };
        if let Err(e) = port.revalidate(rtos.left_from(id)) {
            dev_err_ratelimited!(
                self.dev,
                "cable {}: RTOS {} ring unusable: {}\n",
                self.index,
                port.name,
                crate::rtos::Why(e)
            );
            return fail(crate::rtos::errno(e));
        }
        let role = if port.ring.to_linux {
            Role::Consumer
        } else {
            Role::Producer
        };
        let cap = port.ring.capacity();
        let slack = rtos
            .slack_us
            .map(|us| crate::follow::frames_in_us(us, prep.geo.params.rate.get()));
        let Some(target) = target_fill(
            role,
            cap,
            u64::from(port.ring.period_frames),
            prep.geo.period_frames.get(),
            slack,
        ) else {
            dev_err_ratelimited!(
                self.dev,
                "cable {}: RTOS {} ring of {} frames is too small for periods of {} (RTOS) and {} (ALSA) frames and a slack of {} frames\n",
                self.index,
                port.name,
                cap,
                port.ring.period_frames,
                prep.geo.period_frames.get(),
                slack.unwrap_or(u64::from(port.ring.period_frames))
            );
            return fail(EINVAL);
        };
        let linux = port.read_linux_counter();
        let peer = match port.anchor(linux) {
            Ok(p) => p,
            Err(e) => {
                dev_err_ratelimited!(
                    self.dev,
                    "cable {}: RTOS {} ring: {}\n",
                    self.index,
                    port.name,
                    crate::rtos::Why(e)
                );
                return fail(crate::rtos::errno(e));
            }
        };
        port.broken.store(false, Ordering::Release);
        let mut link = Link {
            ring: id,
            both: matches!(prep.route, EndRoute::Speaker { also_cable: true }),
            lead: 0,
            owed: 0,
            follower: Follower::new(
                prep.geo.params.rate.get(),
                target,
                role,
                now,
                rtos.max_shift_ppm,
            ),
            linux,
            peer,
            fill: 0,
            in_xrun: false,
            released: false,
        };
        self.resync(&port, &mut link, &prep.geo, now);
        port.set_linux_state(true);
        Ok(Some(link))
    }

    /// Brings a link back in step with its ring (start, pause release,
    /// resume): a microphone ring holding more than the target is skipped
    /// to `target` frames behind the producer (stale but continuous
    /// frames); one with no room for another RTOS period is skipped whole,
    /// since the RTOS has been dropping and what it holds is not continuous
    /// with what follows, and the capture starts with a lead of `target`
    /// frames of silence instead; one below the target gets a lead of the
    /// difference. A speaker ring is primed with silence up to the target.
    /// The follower and the RTOS clock measure start over. Cable lock held.
    fn resync(&self, port: &PortRef<'_>, link: &mut Link, geo: &Geometry, now: u64) {
        let cap = port.ring.capacity();
        let target = link.follower.target();
        let role = if port.ring.to_linux {
            Role::Consumer
        } else {
            Role::Producer
        };
        link.lead = 0;
        link.owed = 0;
        link.in_xrun = false;
        match port.anchor(link.linux) {
            Err(e) => port.mark_broken(e),
            Ok(peer) => {
                link.peer = peer;
                let p = peer.last();
                if port.ring.to_linux {
                    let fill = p.saturating_sub(link.linux);
                    if fill + u64::from(port.ring.period_frames) > cap {
                        link.linux = p;
                        port.publish_linux(link.linux);
                        link.lead = target;
                    } else if fill > target {
                        link.linux = p - target;
                        port.publish_linux(link.linux);
                    } else {
                        link.lead = target - fill;
                    }
                    link.fill = p - link.linux;
                } else {
                    let fill = link.linux.saturating_sub(p);
                    if fill < target && port.copy_in(link.linux, None, target - fill).is_ok() {
                        link.linux += target - fill;
                        port.publish_linux(link.linux);
                    }
                    link.fill = link.linux.saturating_sub(p);
                }
                port.measure_from(now, p);
            }
        }
        let max_ppm = self.rtos.as_ref().map_or(0, |r| r.max_shift_ppm);
        link.follower = Follower::new(geo.params.rate.get(), target, role, now, max_ppm);
        port.shift_ppm.store(0, Ordering::Relaxed);
    }

    /// Ends a link (stop, hw_free, prepare or close). Cable lock held.
    fn link_stop(&self, end: &mut End) {
        if let Some(link) = end.link.take() {
            if let (false, Some(port)) = (link.released, self.port(link.ring)) {
                port.set_linux_state(false);
                port.release(self.index);
            }
        }
        end.delay = 0;
    }

    // ------------------------------------------------------------- timers

    /// The hrtimer of end `side` fired.
    fn on_timer(&self, side: usize) -> Restart {
        let now = now_ns();
        let (elapsed, break_capture) = {
            let mut st = self.state.lock();
            if !st.ends[side].running() {
                return Restart::No;
            }
            self.advance(&mut st, now);
            self.follow(&mut st, side, now);
            let brk = side == CAPT && core::mem::take(&mut st.break_capture);
            let end = &mut st.ends[side];
            let Some(p) = end.prepared else {
                return Restart::No;
            };
            let crossed = crossed_period(end.last_elapsed, end.done, p.geo.period_frames);
            if crossed {
                end.last_elapsed = end.done;
                end.periods += 1;
            }
            (crossed, brk)
        };
        if let Some(a) = self.slot(side).get() {
            if break_capture {
                // Notify mode: the playback changed format under a running
                // capture, which stops with an xrun (EPIPE) and re-prepares.
                dev_warn_ratelimited!(
                    self.dev,
                    "cable {}: the playback changed format: capture stopped (PCM Notify)\n",
                    self.index
                );
                a.substream().stop_xrun();
            } else if elapsed {
                // May stop the stream (xrun, drain end) through our trigger.
                a.substream().period_elapsed();
            }
        }
        let st = self.state.lock();
        let end = &st.ends[side];
        match (end.clock, end.prepared) {
            (Some(c), Some(p)) if c.is_running() => {
                Restart::At(next_expiry(&c, p.geo.period_frames, now_ns()))
            }
            _ => Restart::No,
        }
    }

    /// After a tick of a linked end: feeds the ring's fill to the follower
    /// and shifts the end's clock as it says (and, for a Both playback,
    /// the bridge capture's with it, at the same instant).
    fn follow(&self, st: &mut CableState, side: usize, now: u64) {
        let Some(mut link) = st.ends[side].link else {
            return;
        };
        let Some(port) = self.port(link.ring) else {
            return;
        };
        if link.released {
            return;
        }
        port.heartbeat();
        port.last_fill.store(link.fill, Ordering::Relaxed);
        if let Some(ppm) = link.follower.sample(now, link.fill) {
            if let Some(c) = st.ends[side].clock.as_mut() {
                c.set_shift_ppm(ppm, now);
            }
            if side == PLAY && link.both {
                let capt = &mut st.ends[CAPT];
                if capt.on_cable() {
                    if let Some(c) = capt.clock.as_mut() {
                        c.set_shift_ppm(ppm, now);
                    }
                }
            }
            port.shift_ppm.store(ppm, Ordering::Relaxed);
        }
        st.ends[side].link = Some(link);
    }

    /// Moves the cable forward to `now`: copies what playback produced into
    /// the capture buffer, drops playback nobody reads, and writes silence
    /// where capture has nothing to read (snd-aloop's rule, see
    /// [`plan_transfer`]). An end linked to an RTOS ring exchanges its
    /// frames with the ring instead (the playback end also with the cable
    /// when its sink is Both). Cable lock held.
    fn advance(&self, st: &mut CableState, now: u64) {
        let play_new = st.ends[PLAY].pending(now);
        let mut capt_new = st.ends[CAPT].pending(now);
        if play_new == 0 && capt_new == 0 {
            return;
        }
        let pa = self.play_slot.get();
        let ca = self.capt_slot.get();
        let pbuf = pa.as_ref().and_then(|a| a.buffer());
        let cbuf = ca.as_ref().and_then(|a| a.buffer());
        // A draining playback has nothing valid beyond what the application
        // wrote: since prepare, ALSA's hw_ptr equals `done` (the pointer
        // reports `done` and no xrun can happen while draining), so the
        // application's pointer tells how many frames after `done` hold data.
        let drain_appl = pa
            .as_ref()
            .filter(|a| a.substream().is_draining())
            .map(|a| a.substream().appl_ptr());
        let [play, capt] = &mut st.ends;
        if let Some(port) = capt.link.and_then(|l| self.port(l.ring)) {
            self.rtos_capture(&port, capt, capt_new, cbuf.as_ref());
            capt_new = 0;
        }
        let mut to_cable = true;
        if let Some(link) = play.link {
            if let Some(port) = self.port(link.ring) {
                self.rtos_playback(&port, play, play_new, pbuf.as_ref(), drain_appl);
            }
            to_cable = link.both;
        }
        let play_new = if to_cable {
            play_new
        } else {
            play.done += play_new;
            0
        };
        self.cable_transfer(
            play,
            capt,
            play_new,
            capt_new,
            pbuf.as_ref(),
            cbuf.as_ref(),
            drain_appl,
        );
    }

    /// Reads `n` frames for a capture end from the microphone ring, after
    /// the link's lead of silence; what the ring lacks (or all of it, when
    /// the ring is broken) is silence too, and is skipped when it comes late.
    fn rtos_capture(&self, port: &PortRef<'_>, end: &mut End, n: u64, buf: Option<&DmaBuffer<'_>>) {
        let (Some(prep), Some(mut link)) = (end.prepared, end.link) else {
            return;
        };
        let geo = prep.geo;
        let cap = port.ring.capacity();
        let quiet = link.lead.min(n);
        link.lead -= quiet;
        let want = n - quiet;
        let mut got = 0;
        if want > 0 && !link.released && !port.broken.load(Ordering::Acquire) {
            if let Some(w) = port.read_peer(&mut link.peer, link.linux + cap) {
                let mut fill = w.saturating_sub(link.linux);
                // Late frames already given as silence are dropped first.
                let skip = link.owed.min(fill);
                link.owed -= skip;
                link.linux += skip;
                fill -= skip;
                got = fill.min(want);
                if got > 0 {
                    let copied = match buf {
                        Some(b) => {
                            port.copy_out(link.linux, b, geo.buffer_frames, end.done + quiet, got)
                        }
                        None => Ok(()),
                    };
                    if copied.is_err() {
                        dev_err_ratelimited!(
                            self.dev,
                            "cable {}: microphone frames do not fit the capture buffer\n",
                            self.index
                        );
                    }
                    link.linux += got;
                }
                if skip > 0 || got > 0 {
                    port.publish_linux(link.linux);
                }
                let short = got < want;
                if short {
                    link.owed = (link.owed + (want - got)).min(cap);
                    if !link.in_xrun && port.peer_running() {
                        port.count_xrun();
                    }
                }
                link.in_xrun = short;
                link.fill = w.saturating_sub(link.linux);
            }
        }
        end.delay = link.lead + link.fill;
        end.link = Some(link);
        if let Some(b) = buf {
            let fb = geo.params.frame_bytes();
            let ch = geo.params.channels as usize;
            let format = geo.params.format.to_alsa();
            for (from, count) in [(end.done, quiet), (end.done + quiet + got, want - got)] {
                for seg in ring_pieces(from, geo.buffer_frames, count) {
                    // In bounds by construction; the buffer checks again.
                    let _ = b.silence(format, seg.dst * fb, seg.len * ch);
                }
            }
        }
        end.done += n;
        end.unconnected += n - got;
    }

    /// Writes the `n` frames a playback end advanced into the speaker ring
    /// (without moving `done`: the caller does). Frames the ring has no
    /// room for are dropped (one overrun event per run of them); a
    /// draining stream sends only what the application wrote.
    fn rtos_playback(
        &self,
        port: &PortRef<'_>,
        end: &mut End,
        n: u64,
        buf: Option<&DmaBuffer<'_>>,
        drain_appl: Option<u64>,
    ) {
        let (Some(prep), Some(mut link)) = (end.prepared, end.link) else {
            return;
        };
        if link.released || port.broken.load(Ordering::Acquire) {
            return;
        }
        let valid = match drain_appl {
            Some(appl) => n.min(appl.saturating_sub(end.done)),
            None => n,
        };
        if let Some(read) = port.read_peer(&mut link.peer, link.linux) {
            let fill = link.linux.saturating_sub(read);
            let put = valid.min(port.ring.capacity().saturating_sub(fill));
            if put > 0 {
                let src = buf.map(|b| (b, prep.geo.buffer_frames, end.done));
                if port.copy_in(link.linux, src, put).is_err() {
                    dev_err_ratelimited!(
                        self.dev,
                        "cable {}: playback frames do not fit the speaker ring\n",
                        self.index
                    );
                }
                link.linux += put;
                port.publish_linux(link.linux);
            }
            let short = put < valid;
            if short {
                end.unconnected += valid - put;
                if !link.in_xrun && port.peer_running() {
                    port.count_xrun();
                }
            }
            link.in_xrun = short;
            link.fill = link.linux.saturating_sub(read);
        }
        end.delay = link.fill;
        end.link = Some(link);
    }

    /// The cable part of [`Cable::advance`]: `play_new` playback frames and
    /// `capt_new` capture frames to exchange between the two ends.
    #[allow(clippy::too_many_arguments)]
    fn cable_transfer(
        &self,
        play: &mut End,
        capt: &mut End,
        play_new: u64,
        capt_new: u64,
        pbuf: Option<&DmaBuffer<'_>>,
        cbuf: Option<&DmaBuffer<'_>>,
        drain_appl: Option<u64>,
    ) {
        if play_new == 0 && capt_new == 0 {
            return;
        }
        let geos = match (play.prepared, capt.prepared) {
            (Some(p), Some(c)) => Some((p.geo, c.geo)),
            _ => None,
        };
        let connected = play.on_cable()
            && capt.on_cable()
            && capt.link.is_none()
            && geos.is_some_and(|(p, c)| Constraint::compatible(&p.params, &c.params));
        let mut plan = plan_transfer(play_new, capt_new, connected);
        let mut tail_skip = 0;
        if connected && plan.copy > 0 {
            if let Some(appl) = drain_appl {
                let valid = appl.saturating_sub(play.done + plan.discard);
                if valid < plan.copy {
                    tail_skip = plan.copy - valid;
                    plan.silence += tail_skip;
                    plan.copy = valid;
                }
            }
        }
        play.done += plan.discard;
        play.unconnected += plan.discard;
        if let (Some((pg, cg)), Some(pb), Some(cb)) = (geos, pbuf, cbuf) {
            if plan.copy > 0 {
                let fb = pg.params.frame_bytes();
                for seg in Segments::new(
                    play.done,
                    pg.buffer_frames,
                    capt.done,
                    cg.buffer_frames,
                    plan.copy,
                ) {
                    if cb
                        .copy_from(seg.dst * fb, pb, seg.src * fb, seg.len * fb)
                        .is_err()
                    {
                        dev_err_ratelimited!(
                            self.dev,
                            "cable {}: frames do not fit a buffer\n",
                            self.index
                        );
                        break;
                    }
                }
            }
        }
        play.done += plan.copy + tail_skip;
        play.unconnected += tail_skip;
        capt.done += plan.copy;
        if let (Some(cp), Some(cb)) = (capt.prepared, cbuf) {
            let g = cp.geo;
            let fb = g.params.frame_bytes();
            let ch = g.params.channels as usize;
            for seg in ring_pieces(capt.done, g.buffer_frames, plan.silence) {
                let _ = cb.silence(g.params.format.to_alsa(), seg.dst * fb, seg.len * ch);
            }
        }
        capt.done += plan.silence;
        capt.unconnected += plan.silence;
    }

    // -------------------------------------------------------------- /proc

    /// Writes /proc/asound/VoIP/cableN.
    pub(crate) fn proc_read(&self, out: &mut impl Write) {
        let now = now_ns();
        let (from, to) = if self.index & 1 == 0 { (0, 1) } else { (1, 0) };
        let n = self.index / 2;
        let st = self.state.lock();
        let _ = writeln!(
            out,
            "cable {}: substream {}, hw:VoIP,{},{} playback -> hw:VoIP,{},{} capture",
            self.index, n, from, n, to, n
        );
        for (i, name) in [(PLAY, "playback"), (CAPT, "capture")] {
            let e = &st.ends[i];
            let state = match (e.open, &e.clock) {
                (false, _) => "closed",
                (true, None) => "stopped",
                (true, Some(c)) if c.is_running() => "running",
                (true, Some(_)) => "paused",
            };
            let _ = write!(out, "  {}: {}", name, state);
            if let Some(p) = e.prepared {
                let g = p.geo;
                let _ = write!(
                    out,
                    ", {} {} Hz {} ch, buffer {} period {}",
                    g.params.format.name(),
                    g.params.rate.get(),
                    g.params.channels,
                    g.buffer_frames,
                    g.period_frames.get()
                );
            }
            if let Some(c) = e.clock {
                let _ = write!(
                    out,
                    ", position {} (clock {}), periods {}, {} {}",
                    e.done,
                    c.position(now),
                    e.periods,
                    if i == PLAY { "dropped" } else { "silence" },
                    e.unconnected
                );
                if c.shift_ppm() != 0 {
                    let _ = write!(out, ", rate shift {:+} ppm", c.shift_ppm());
                }
            }
            let _ = writeln!(out);
        }
        for (i, name) in [(PLAY, "playback"), (CAPT, "capture")] {
            if let Some(link) = st.ends[i].link {
                let f = &link.follower;
                let _ = writeln!(
                    out,
                    "  {}: RTOS {} ring{}{}, rate shift {:+} ppm, target fill {}, mean fill {}.{:03}, delay {}",
                    name,
                    if link.ring == RingId::Mic { "microphone" } else { "speaker" },
                    if link.both { " and bridge" } else { "" },
                    if link.released { " (released)" } else { "" },
                    f.ppm(),
                    f.target(),
                    f.last_mean_mframes() / 1000,
                    f.last_mean_mframes() % 1000,
                    st.ends[i].delay
                );
            }
        }
        if self.rtos.is_some() {
            let r = route_of(self.index, st.route_pref);
            let _ = writeln!(
                out,
                "  route of the {} end: {:?} (fixed while prepared)",
                if routed_side(self.index) == PLAY {
                    "playback"
                } else {
                    "capture"
                },
                r
            );
        }
    }
}
