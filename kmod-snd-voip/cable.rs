// SPDX-License-Identifier: GPL-2.0
//! A cable: one direction of one substream pair, joining a playback end to a
//! capture end (snd-aloop's model), clocked by one hrtimer per running end.
//!
//! Locking: the cable's [`IrqSpinLock`] protects its state. ALSA calls
//! `trigger` and `pointer` with the PCM stream lock held, and they take the
//! cable lock inside it; the timer callback takes the cable lock alone and
//! drops it before `snd_pcm_period_elapsed` (which takes the stream lock).
//! So the order is always stream lock, then cable lock, and no cable lock is
//! held across a call into the PCM core.

use crate::bindings;
use crate::clock::{crossed_period, next_period_boundary, StreamClock};
use crate::fifo::{CaptureSource, PlaybackSink};
use crate::follow::{target_fill, Follower, Role};
use crate::format::{
    Constraint, StreamParams, CHANNELS_MAX, CHANNELS_MIN, RATE_BITS, RATE_MAX, RATE_MIN,
};
use crate::hrtimer::{now_ns, HrTimer, Restart};
use crate::ring::{plan_transfer, ring_pieces, Segments};
use crate::rtos::{Port, Rtos};
use crate::sound::{self, Substream, Trigger};
use crate::sync::IrqSpinLock;
use core::ffi::CStr;
use core::fmt::Write;
use core::num::NonZeroU64;
use core::sync::atomic::Ordering;
use kernel::ffi::{c_int, c_void};
use kernel::prelude::*;

/// Index of the playback end.
pub(crate) const PLAY: usize = 0;
/// Index of the capture end.
pub(crate) const CAPT: usize = 1;

/// Shortest period the card accepts, in microseconds: shorter ones would
/// only burn CPU in timer interrupts.
const PERIOD_TIME_MIN_US: u32 = 1000;

/// What the card offers on every substream.
const HARDWARE: bindings::snd_pcm_hardware = bindings::snd_pcm_hardware {
    info: bindings::SNDRV_PCM_INFO_MMAP
        | bindings::SNDRV_PCM_INFO_MMAP_VALID
        | bindings::SNDRV_PCM_INFO_INTERLEAVED
        | bindings::SNDRV_PCM_INFO_BLOCK_TRANSFER
        | bindings::SNDRV_PCM_INFO_PAUSE,
    formats: bindings::SND_VOIP_FMTBIT_S16_LE
        | bindings::SND_VOIP_FMTBIT_MU_LAW
        | bindings::SND_VOIP_FMTBIT_A_LAW,
    subformats: 0,
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
    fifo_size: 0,
};

/// The geometry of a prepared end.
#[derive(Clone, Copy)]
struct Geometry {
    params: StreamParams,
    area: *mut u8,
    buffer_frames: usize,
    period_frames: NonZeroU64,
}

/// An end's use of an RTOS ring, from start to stop.
#[derive(Clone, Copy)]
struct Link {
    /// True for the microphone ring (this end is the application's
    /// capture), false for the speaker ring (the application's playback).
    mic: bool,
    /// Playback Sink "Both": the playback also goes to the bridge.
    both: bool,
    /// Frames of silence a capture gives before it reads the ring: the
    /// cushion it starts with when the ring held less than the target, or
    /// held only stale frames (see [`Cable::link_start`]).
    lead: u64,
    /// Frames a capture gave as silence because the RTOS was late; that
    /// many are skipped when they arrive, so a late RTOS costs a gap, not
    /// lasting latency (at most one ring).
    owed: u64,
    /// Steers this end's clock to the RTOS clock.
    follower: Follower,
}

/// One end of a cable.
struct End {
    /// The open substream, if any.
    substream: Option<Substream>,
    /// Format, rate and channels once prepared (the peer's constraint).
    geometry: Option<Geometry>,
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
    /// Present while the end runs on an RTOS ring.
    link: Option<Link>,
}

impl End {
    const fn new() -> Self {
        End {
            substream: None,
            geometry: None,
            clock: None,
            done: 0,
            last_elapsed: 0,
            unconnected: 0,
            periods: 0,
            link: None,
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
}

/// The state the cable lock protects.
struct CableState {
    ends: [End; 2],
}

// SAFETY: the raw pointers in the state (buffers, substreams) are only used
// under the cable lock while ALSA keeps them alive.
unsafe impl Send for CableState {}

/// Per-end context reachable from the end's hrtimer and hw rules.
///
/// # Invariants
///
/// `timer` is the first field, so a pointer to it is a pointer to the `EndCtx`;
/// `cable` points to the cable that contains this `EndCtx`.
#[repr(C)]
struct EndCtx {
    timer: HrTimer,
    cable: *const Cable,
    side: usize,
}

/// A cable; see the module documentation.
pub(crate) struct Cable {
    state: IrqSpinLock<CableState>,
    ctx: [EndCtx; 2],
    index: u32,
    /// The card's RTOS FIFO, or null on a board without one.
    rtos: *const Rtos,
}

impl Cable {
    /// Initialises a cable in place.
    ///
    /// # Safety
    ///
    /// `this` must point to zeroed memory valid for writes that never moves
    /// afterwards; `rtos`, when not null, must outlive the cable.
    pub(crate) unsafe fn init(this: *mut Cable, index: u32, rtos: *const Rtos) {
        // SAFETY: guaranteed by the caller.
        unsafe {
            IrqSpinLock::init(
                core::ptr::addr_of_mut!((*this).state),
                CableState {
                    ends: [End::new(), End::new()],
                },
            );
            core::ptr::write(core::ptr::addr_of_mut!((*this).index), index);
            core::ptr::write(core::ptr::addr_of_mut!((*this).rtos), rtos);
            for side in [PLAY, CAPT] {
                let ctx = core::ptr::addr_of_mut!((*this).ctx[side]);
                core::ptr::write(core::ptr::addr_of_mut!((*ctx).cable), this.cast_const());
                core::ptr::write(core::ptr::addr_of_mut!((*ctx).side), side);
                HrTimer::init(core::ptr::addr_of_mut!((*ctx).timer), timer_callback);
            }
        }
    }

    fn rtos(&self) -> Option<&Rtos> {
        // SAFETY: `rtos` is null or outlives the cable (see `init`).
        unsafe { self.rtos.as_ref() }
    }

    /// The RTOS ring end `side` of this cable uses now, per the controls:
    /// the application's capture (cable direction 1) reads the microphone
    /// ring when its "Capture Source" is RTOS; the application's playback
    /// (direction 0) writes the speaker ring when its "Playback Sink" is
    /// RTOS or Both (then `true`: also to the bridge).
    fn route(&self, side: usize) -> Option<(&Port, bool)> {
        let rtos = self.rtos()?;
        let n = (self.index / 2) as usize;
        match (self.index & 1, side & 1) {
            (1, CAPT) => {
                (rtos.capture_source(n) == CaptureSource::Rtos).then_some((&rtos.mic, false))
            }
            (0, PLAY) => match rtos.playback_sink(n) {
                PlaybackSink::Bridge => None,
                PlaybackSink::Rtos => Some((&rtos.spk, false)),
                PlaybackSink::Both => Some((&rtos.spk, true)),
            },
            _ => None,
        }
    }

    fn port(&self, link: &Link) -> Option<&Port> {
        self.rtos().map(|r| if link.mic { &r.mic } else { &r.spk })
    }

    /// Starts end `side` on its RTOS ring: claims it, re-checks its header,
    /// drops stale microphone frames or primes the speaker ring with
    /// silence, and returns the link. Cable lock held.
    fn link_start(&self, side: usize, geo: &Geometry, now: u64) -> Result<Option<Link>> {
        let Some((port, both)) = self.route(side) else {
            return Ok(None);
        };
        if !port.claim(self.index) {
            pr_err!(
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
        let left = self.rtos().map_or(0, |r| r.left_from(port));
        if let Err(e) = port.revalidate(left) {
            pr_err!(
                "cable {}: RTOS {} ring unusable: {:?}\n",
                self.index,
                port.name,
                e
            );
            return fail(crate::rtos::errno(e));
        }
        let role = if port.ring.to_linux {
            Role::Consumer
        } else {
            Role::Producer
        };
        let cap = port.ring.capacity();
        let Some(target) = target_fill(
            role,
            cap,
            u64::from(port.ring.period_frames),
            geo.period_frames.get(),
        ) else {
            pr_err!(
                "cable {}: RTOS {} ring of {} frames is too small for periods of {} (RTOS) and {} (ALSA) frames\n",
                self.index,
                port.name,
                cap,
                port.ring.period_frames,
                geo.period_frames.get()
            );
            return fail(EINVAL);
        };
        port.broken.store(false, Ordering::Release);
        let mut lead = 0;
        if let Ok((w, _, fill)) = port.counters() {
            if port.ring.to_linux {
                if fill + u64::from(port.ring.period_frames) > cap {
                    // No room for another RTOS period: the RTOS has been
                    // dropping frames, so the ring holds old audio that is
                    // not continuous with what comes next. Skip all of it
                    // and start with a cushion of silence instead.
                    port.publish_read(w);
                    lead = target;
                } else if fill > target {
                    // Stale but continuous frames: start `target` behind the producer.
                    port.publish_read(w - target);
                } else {
                    lead = target - fill;
                }
            } else if fill < target {
                // SAFETY: a null source writes silence; `target - fill` frames fit the room.
                unsafe { port.copy_in(w, core::ptr::null(), 0, 0, target - fill) };
                port.publish_write(w + (target - fill));
            }
        }
        port.set_linux_state(true);
        port.shift_ppm.store(0, Ordering::Relaxed);
        port.measure_from(now);
        let max_ppm = self.rtos().map_or(0, |r| r.max_shift_ppm);
        Ok(Some(Link {
            mic: port.ring.to_linux,
            both,
            lead,
            owed: 0,
            follower: Follower::new(geo.params.rate.get(), target, role, now, max_ppm),
        }))
    }

    /// Ends a link (stop or close). Cable lock held.
    fn link_stop(&self, end: &mut End) {
        if let Some(link) = end.link.take() {
            if let Some(port) = self.port(&link) {
                port.set_linux_state(false);
                port.release(self.index);
            }
        }
    }

    fn timer(&self, side: usize) -> &HrTimer {
        &self.ctx[side & 1].timer
    }

    pub(crate) fn open(&self, side: usize, ss: Substream) -> Result {
        {
            let mut st = self.state.lock();
            let end = &mut st.ends[side & 1];
            if end.substream.is_some() {
                return Err(EBUSY);
            }
            *end = End::new();
            end.substream = Some(ss);
        }
        let rt = ss.runtime();
        rt.set_hw(&HARDWARE);
        let ctx = (&self.ctx[side & 1] as *const EndCtx)
            .cast_mut()
            .cast::<c_void>();
        let res = (|| -> Result {
            // SAFETY: `ctx` lives in the card's allocation, which outlives the substream.
            unsafe {
                rt.add_rule(
                    bindings::SND_VOIP_PARAM_FORMAT,
                    rule_format,
                    ctx,
                    bindings::SND_VOIP_PARAM_FORMAT,
                )?;
                rt.add_rule(
                    bindings::SND_VOIP_PARAM_RATE,
                    rule_rate,
                    ctx,
                    bindings::SND_VOIP_PARAM_RATE,
                )?;
                rt.add_rule(
                    bindings::SND_VOIP_PARAM_CHANNELS,
                    rule_channels,
                    ctx,
                    bindings::SND_VOIP_PARAM_CHANNELS,
                )?;
            }
            rt.constrain_minmax(
                bindings::SND_VOIP_PARAM_PERIOD_TIME,
                PERIOD_TIME_MIN_US,
                u32::MAX,
            )
        })();
        if res.is_err() {
            self.state.lock().ends[side & 1].substream = None;
        }
        res
    }

    pub(crate) fn close(&self, side: usize) {
        // Process context and no lock held: wait for a running callback.
        self.timer(side).cancel();
        let mut st = self.state.lock();
        self.link_stop(&mut st.ends[side & 1]);
        st.ends[side & 1] = End::new();
    }

    pub(crate) fn hw_free(&self, side: usize) {
        let mut st = self.state.lock();
        let end = &mut st.ends[side & 1];
        end.clock = None;
        end.geometry = None;
    }

    pub(crate) fn prepare(&self, side: usize, ss: Substream) -> Result {
        let rt = ss.runtime();
        let Some(params) = StreamParams::new(rt.format(), rt.rate(), rt.channels()) else {
            pr_err!(
                "cable {}: unsupported parameters format={} rate={} channels={}\n",
                self.index,
                rt.format(),
                rt.rate(),
                rt.channels()
            );
            return Err(EINVAL);
        };
        let (area, bytes) = rt.dma_area();
        let buffer_frames = rt.buffer_size();
        let period = NonZeroU64::new(rt.period_size() as u64).ok_or(EINVAL)?;
        let need = buffer_frames
            .checked_mul(params.frame_bytes())
            .ok_or(EINVAL)?;
        if area.is_null() || buffer_frames == 0 || need > bytes {
            pr_err!(
                "cable {}: buffer of {} frames does not fit {} bytes\n",
                self.index,
                buffer_frames,
                bytes
            );
            return Err(EINVAL);
        }
        if let Some((port, _)) = self.route(side) {
            if !Constraint::compatible(&port.ring.params, &params) {
                pr_err!(
                    "cable {}: the RTOS {} ring is {} {} Hz {} ch; the stream must use the same (or route it to the bridge)\n",
                    self.index,
                    port.name,
                    port.ring.params.format.name(),
                    port.ring.params.rate.get(),
                    port.ring.params.channels
                );
                return Err(EINVAL);
            }
        }
        let mut st = self.state.lock();
        let end = &mut st.ends[side & 1];
        end.geometry = Some(Geometry {
            params,
            area,
            buffer_frames,
            period_frames: period,
        });
        end.clock = None;
        end.done = 0;
        end.last_elapsed = 0;
        Ok(())
    }

    pub(crate) fn trigger(&self, side: usize, cmd: Trigger) -> Result {
        let side = side & 1;
        let now = now_ns();
        let mut st = self.state.lock();
        self.advance(&mut st, now);
        // Tick with a running peer of the same format (see `StreamClock`).
        let peer_epoch = {
            let peer = &st.ends[side ^ 1];
            match (peer.clock, peer.geometry, st.ends[side].geometry) {
                (Some(c), Some(pg), Some(g))
                    if c.is_running() && Constraint::compatible(&pg.params, &g.params) =>
                {
                    Some(c.epoch())
                }
                _ => None,
            }
        };
        let epoch = peer_epoch.unwrap_or(now);
        let end = &mut st.ends[side];
        let Some(geo) = end.geometry else {
            return Ok(());
        };
        // An end on an RTOS ring ticks with the RTOS, not with its peer.
        let epoch = if end.link.is_some() { now } else { epoch };
        match cmd {
            Trigger::Start => {
                self.link_stop(end);
                end.link = self.link_start(side, &geo, now)?;
                let epoch = if end.link.is_some() { now } else { epoch };
                end.clock = Some(StreamClock::start_aligned(geo.params.rate, epoch, now));
                end.done = 0;
                end.last_elapsed = 0;
                end.unconnected = 0;
                end.periods = 0;
                self.arm(side, end, now);
            }
            Trigger::PauseRelease => {
                if let Some(c) = end.clock.as_mut() {
                    c.resume_aligned(epoch, now);
                }
                self.arm(side, end, now);
            }
            Trigger::Stop | Trigger::PausePush => {
                if cmd == Trigger::Stop {
                    end.clock = None;
                    self.link_stop(end);
                } else if let Some(c) = end.clock.as_mut() {
                    c.pause(now);
                }
                drop(st);
                // Atomic context: do not wait; the callback sees the end
                // stopped and does not restart, and sync_stop waits.
                self.timer(side).try_cancel();
            }
        }
        Ok(())
    }

    /// Arms the end's timer for its next period boundary (cable lock held).
    fn arm(&self, side: usize, end: &End, now: u64) {
        if let (Some(clock), Some(geo)) = (end.clock, end.geometry) {
            self.timer(side)
                .start_at(next_expiry(&clock, geo.period_frames, now));
        }
    }

    pub(crate) fn sync_stop(&self, side: usize) {
        self.timer(side).cancel();
    }

    pub(crate) fn pointer(&self, side: usize) -> usize {
        let now = now_ns();
        let mut st = self.state.lock();
        self.advance(&mut st, now);
        let end = &mut st.ends[side & 1];
        match end.geometry {
            Some(g) => match (end.done).checked_rem(g.buffer_frames as u64) {
                Some(p) => p as usize,
                None => 0,
            },
            None => 0,
        }
    }

    /// Stops both timers for good (card removal).
    pub(crate) fn shutdown(&self) {
        self.timer(PLAY).cancel();
        self.timer(CAPT).cancel();
    }

    /// The hrtimer of end `side` fired.
    fn on_timer(&self, side: usize) -> Restart {
        let now = now_ns();
        let ss;
        {
            let mut st = self.state.lock();
            if !st.ends[side].running() {
                return Restart::No;
            }
            self.advance(&mut st, now);
            let end = &mut st.ends[side];
            let Some(geo) = end.geometry else {
                return Restart::No;
            };
            self.follow(end, now);
            if !crossed_period(end.last_elapsed, end.done, geo.period_frames) {
                // Early wakeup: just re-arm.
                return self.rearm(&st.ends[side], side, now);
            }
            end.last_elapsed = end.done;
            end.periods += 1;
            ss = end.substream;
        }
        if let Some(ss) = ss {
            // May stop the stream (xrun, drain end) through our trigger.
            ss.period_elapsed();
        }
        let st = self.state.lock();
        self.rearm(&st.ends[side], side, now_ns())
    }

    fn rearm(&self, end: &End, side: usize, now: u64) -> Restart {
        let timer = self.timer(side);
        // A trigger that restarted the timer meanwhile owns its expiry.
        if !end.running() || timer.is_queued() {
            return Restart::No;
        }
        let (Some(clock), Some(geo)) = (end.clock, end.geometry) else {
            return Restart::No;
        };
        timer.set_expires(next_expiry(&clock, geo.period_frames, now));
        Restart::Yes
    }
}

/// The absolute time of the first period boundary after `now`.
fn next_expiry(clock: &StreamClock, period: NonZeroU64, now: u64) -> i64 {
    let target = next_period_boundary(clock.position(now), period);
    let at = clock.time_of_frame(target).unwrap_or(now).max(now + 1);
    i64::try_from(at).unwrap_or(i64::MAX)
}

impl Cable {
    /// Moves the cable forward to `now`: copies what playback produced into the
    /// capture buffer, drops playback nobody reads, and writes silence where
    /// capture has nothing to read (snd-aloop's rule, see [`plan_transfer`]).
    /// An end linked to an RTOS ring exchanges its frames with the ring instead
    /// (the playback end also with the cable when its sink is Both).
    fn advance(&self, st: &mut CableState, now: u64) {
        let play_new = st.ends[PLAY].pending(now);
        let mut capt_new = st.ends[CAPT].pending(now);
        if play_new == 0 && capt_new == 0 {
            return;
        }
        let [play, capt] = &mut st.ends;
        if let Some(port) = capt.link.as_ref().and_then(|l| self.port(l)) {
            rtos_capture(port, capt, capt_new);
            capt_new = 0;
        }
        let mut to_cable = true;
        if let Some(link) = play.link {
            if let Some(port) = self.port(&link) {
                rtos_playback(port, play, play_new);
            }
            to_cable = link.both;
        }
        let play_new = if to_cable {
            play_new
        } else {
            play.done += play_new;
            0
        };
        cable_transfer(play, capt, play_new, capt_new);
    }

    /// After a tick of a linked end: feeds the ring's fill to the follower
    /// and shifts the end's clock as it says.
    fn follow(&self, end: &mut End, now: u64) {
        let Some(mut link) = end.link else { return };
        let Some(port) = self.port(&link) else { return };
        port.heartbeat();
        let Ok((_, _, fill)) = port.counters() else {
            return;
        };
        port.last_fill.store(fill, Ordering::Relaxed);
        if let Some(ppm) = link.follower.sample(now, fill) {
            if let Some(c) = end.clock.as_mut() {
                c.set_shift_ppm(ppm, now);
            }
            port.shift_ppm.store(ppm, Ordering::Relaxed);
        }
        end.link = Some(link);
    }
}

/// Reads `n` frames for a capture end from the microphone ring, after the
/// link's lead of silence; what the ring lacks (or all of it, when the
/// ring is broken) is silence too, and is skipped when it comes late.
fn rtos_capture(port: &Port, end: &mut End, n: u64) {
    let Some(geo) = end.geometry else { return };
    // (Without a link, which the caller rules out, everything is silence.)
    let (mut lead, mut owed) = end.link.map_or((n, 0), |l| (l.lead, l.owed));
    let quiet = lead.min(n);
    lead -= quiet;
    let want = n - quiet;
    let mut got = 0;
    if want > 0 && !port.broken.load(Ordering::Acquire) {
        match port.counters() {
            Ok((_, read, fill)) => {
                // Late frames already given as silence are dropped first.
                let skip = owed.min(fill);
                owed -= skip;
                let (read, fill) = (read + skip, fill - skip);
                got = fill.min(want);
                if got == 0 && skip > 0 {
                    port.publish_read(read);
                }
                if got > 0 {
                    // SAFETY: the capture buffer holds `buffer_frames` frames
                    // of the ring's frame size (prepare checked the size and
                    // that the format equals the ring's); `got <= fill`.
                    unsafe {
                        port.copy_out(read, geo.area, geo.buffer_frames, end.done + quiet, got)
                    };
                    port.publish_read(read + got);
                }
                if got < want {
                    port.count_xrun(u32::try_from(want - got).unwrap_or(u32::MAX));
                    owed = (owed + (want - got)).min(port.ring.capacity());
                }
            }
            Err(e) => port.mark_broken(e),
        }
    }
    if let Some(l) = end.link.as_mut() {
        l.lead = lead;
        l.owed = owed;
    }
    let fb = geo.params.frame_bytes();
    let ch = geo.params.channels as usize;
    let silent = [(end.done, quiet), (end.done + quiet + got, want - got)];
    for (from, count) in silent {
        for seg in ring_pieces(from, geo.buffer_frames, count) {
            // SAFETY: the piece lies inside the capture buffer (see `ring_pieces`).
            unsafe {
                sound::write_silence(
                    geo.params.format.to_alsa(),
                    geo.area.add(seg.dst * fb),
                    seg.len * ch,
                )
            };
        }
    }
    end.done += n;
    end.unconnected += n - got;
}

/// Writes the `n` frames a playback end advanced into the speaker ring
/// (without moving `done`: the caller does). Frames the ring has no room
/// for are dropped and counted; a draining stream sends only what the
/// application wrote.
fn rtos_playback(port: &Port, end: &mut End, n: u64) {
    let Some(geo) = end.geometry else { return };
    let valid = match end.substream.filter(|s| s.is_draining()) {
        Some(ss) => n.min(ss.appl_ptr().saturating_sub(end.done)),
        None => n,
    };
    if valid == 0 || port.broken.load(Ordering::Acquire) {
        return;
    }
    match port.counters() {
        Ok((write, _, fill)) => {
            let put = valid.min(port.ring.capacity() - fill);
            if put > 0 {
                // SAFETY: the playback buffer holds `buffer_frames` frames of
                // the ring's frame size (checked at prepare); `put` fits the room.
                unsafe { port.copy_in(write, geo.area, geo.buffer_frames, end.done, put) };
                port.publish_write(write + put);
            }
            if put < valid {
                port.count_xrun(u32::try_from(valid - put).unwrap_or(u32::MAX));
                end.unconnected += valid - put;
            }
        }
        Err(e) => port.mark_broken(e),
    }
}

/// The cable part of [`Cable::advance`]: `play_new` playback frames and
/// `capt_new` capture frames to exchange between the two ends.
fn cable_transfer(play: &mut End, capt: &mut End, play_new: u64, capt_new: u64) {
    if play_new == 0 && capt_new == 0 {
        return;
    }
    let connected = match (play.geometry, capt.geometry) {
        (Some(p), Some(c)) => {
            play.running()
                && capt.running()
                && capt.link.is_none()
                && Constraint::compatible(&p.params, &c.params)
        }
        _ => false,
    };
    let mut plan = plan_transfer(play_new, capt_new, connected);
    // A draining playback has nothing valid beyond what the application
    // wrote: since prepare, ALSA's hw_ptr equals `done` (the pointer reports
    // `done` and no xrun can happen while draining), so the application's
    // pointer tells how many frames after `done` hold data.
    let mut tail_skip = 0;
    if connected && plan.copy > 0 {
        if let Some(ss) = play.substream.filter(|s| s.is_draining()) {
            let valid = ss.appl_ptr().saturating_sub(play.done + plan.discard);
            if valid < plan.copy {
                tail_skip = plan.copy - valid;
                plan.silence += tail_skip;
                plan.copy = valid;
            }
        }
    }
    play.done += plan.discard;
    play.unconnected += plan.discard;
    if let (Some(pg), Some(cg)) = (play.geometry, capt.geometry) {
        if plan.copy > 0 {
            let fb = pg.params.frame_bytes();
            for seg in Segments::new(
                play.done,
                pg.buffer_frames,
                capt.done,
                cg.buffer_frames,
                plan.copy,
            ) {
                // SAFETY: both areas hold `buffer_frames * fb` bytes (checked
                // at prepare, and the buffers stay allocated while the ends
                // run); segments stay inside them (see `Segments`); the two
                // substreams' buffers are distinct allocations.
                unsafe {
                    core::ptr::copy_nonoverlapping(
                        pg.area.add(seg.src * fb),
                        cg.area.add(seg.dst * fb),
                        seg.len * fb,
                    );
                }
            }
        }
    }
    play.done += plan.copy + tail_skip;
    play.unconnected += tail_skip;
    capt.done += plan.copy;
    if let Some(cg) = capt.geometry {
        let fb = cg.params.frame_bytes();
        let ch = cg.params.channels as usize;
        for seg in ring_pieces(capt.done, cg.buffer_frames, plan.silence) {
            // SAFETY: as above, the piece lies inside the capture buffer.
            unsafe {
                sound::write_silence(
                    cg.params.format.to_alsa(),
                    cg.area.add(seg.dst * fb),
                    seg.len * ch,
                )
            };
        }
    }
    capt.done += plan.silence;
    capt.unconnected += plan.silence;
}

unsafe extern "C" fn timer_callback(timer: *mut bindings::hrtimer) -> bindings::hrtimer_restart {
    // SAFETY: every timer of this driver is the first field of an `EndCtx`
    // (type invariant), which lives as long as the card.
    let ctx = unsafe { &*timer.cast::<EndCtx>() };
    // SAFETY: by the `EndCtx` invariant `cable` is its live containing cable.
    let cable = unsafe { &*ctx.cable };
    cable.on_timer(ctx.side & 1).to_raw()
}

/// The peer's constraint for the end behind a rule's private pointer.
///
/// # Safety
///
/// `rule` must be a live rule added by [`Cable::open`].
unsafe fn rule_constraint(rule: *mut bindings::snd_pcm_hw_rule) -> Constraint {
    // SAFETY: the rule's private data is the end's `EndCtx` (see `open`),
    // which lives as long as the card.
    let ctx = unsafe { &*(*rule).private.cast::<EndCtx>() };
    // SAFETY: by the `EndCtx` invariant.
    let cable = unsafe { &*ctx.cable };
    // An end routed to an RTOS ring must use the ring's format.
    if let Some((port, _)) = cable.route(ctx.side) {
        return Constraint::from_peer(Some(port.ring.params));
    }
    let st = cable.state.lock();
    Constraint::from_peer(st.ends[(ctx.side & 1) ^ 1].geometry.map(|g| g.params))
}

unsafe extern "C" fn rule_format(
    params: *mut bindings::snd_pcm_hw_params,
    rule: *mut bindings::snd_pcm_hw_rule,
) -> c_int {
    // SAFETY: ALSA calls rules with live params and rule.
    let c = unsafe { rule_constraint(rule) };
    // SAFETY: as above.
    let mask = unsafe { sound::params_mask(params, bindings::SND_VOIP_PARAM_FORMAT) };
    match c.refine_format_mask(mask) {
        Ok(changed) => c_int::from(changed),
        Err(_) => EINVAL.to_errno(),
    }
}

unsafe extern "C" fn rule_rate(
    params: *mut bindings::snd_pcm_hw_params,
    rule: *mut bindings::snd_pcm_hw_rule,
) -> c_int {
    // SAFETY: ALSA calls rules with live params and rule.
    match unsafe { rule_constraint(rule) }.rate {
        // SAFETY: as above.
        Some(rate) => unsafe {
            sound::params_fix_interval(params, bindings::SND_VOIP_PARAM_RATE, rate)
        },
        None => 0,
    }
}

unsafe extern "C" fn rule_channels(
    params: *mut bindings::snd_pcm_hw_params,
    rule: *mut bindings::snd_pcm_hw_rule,
) -> c_int {
    // SAFETY: ALSA calls rules with live params and rule.
    match unsafe { rule_constraint(rule) }.channels {
        // SAFETY: as above.
        Some(ch) => unsafe {
            sound::params_fix_interval(params, bindings::SND_VOIP_PARAM_CHANNELS, ch)
        },
        None => 0,
    }
}

/// /proc/asound/VoIP/cableN names (N = substream * 2 + direction).
const PROC_NAMES: [&CStr; 16] = [
    c"cable0", c"cable1", c"cable2", c"cable3", c"cable4", c"cable5", c"cable6", c"cable7",
    c"cable8", c"cable9", c"cable10", c"cable11", c"cable12", c"cable13", c"cable14", c"cable15",
];

/// The proc file name of cable `i`.
pub(crate) fn proc_name(i: usize) -> &'static CStr {
    PROC_NAMES.get(i).copied().unwrap_or(c"cable")
}

/// A fixed-size text buffer for one proc line.
pub(crate) struct Line {
    buf: [u8; 256],
    len: usize,
}

impl Line {
    /// An empty line.
    pub(crate) const fn new() -> Self {
        Line {
            buf: [0; 256],
            len: 0,
        }
    }

    /// Appends the line to a proc buffer.
    pub(crate) fn emit(&mut self, buffer: *mut bindings::snd_info_buffer) {
        self.buf[self.len] = 0;
        // SAFETY: the buffer is NUL-terminated (`write_str` keeps a byte
        // free); `buffer` is the live proc buffer of the read callback.
        unsafe { bindings::snd_voip_info_puts(buffer, self.buf.as_ptr().cast()) };
    }
}

impl Write for Line {
    fn write_str(&mut self, s: &str) -> core::fmt::Result {
        let room = self.buf.len() - 1 - self.len;
        let n = s.len().min(room);
        self.buf[self.len..self.len + n].copy_from_slice(&s.as_bytes()[..n]);
        self.len += n;
        Ok(())
    }
}

/// Writes the state of a cable to /proc/asound/VoIP/cableN.
pub(crate) unsafe extern "C" fn proc_read(
    entry: *mut bindings::snd_info_entry,
    buffer: *mut bindings::snd_info_buffer,
) {
    // SAFETY: the entry's private data is the cable (see `create`), live as long as the card.
    let cable = unsafe { &*(*entry).private_data.cast::<Cable>() };
    let now = now_ns();
    let dir = cable.index & 1;
    let (from, to) = if dir == 0 { (0, 1) } else { (1, 0) };
    let mut lines: [Line; 4] = [const { Line::new() }; 4];
    {
        let st = cable.state.lock();
        let _ = writeln!(
            lines[0],
            "cable {}: substream {}, hw:VoIP,{},{} playback -> hw:VoIP,{},{} capture",
            cable.index,
            cable.index / 2,
            from,
            cable.index / 2,
            to,
            cable.index / 2
        );
        for (i, name) in [(PLAY, "playback"), (CAPT, "capture")] {
            let e = &st.ends[i];
            let l = &mut lines[1 + i];
            let state = match (&e.substream, &e.clock) {
                (None, _) => "closed",
                (Some(_), None) => "stopped",
                (Some(_), Some(c)) if c.is_running() => "running",
                (Some(_), Some(_)) => "paused",
            };
            let _ = write!(l, "  {}: {}", name, state);
            if let Some(g) = e.geometry {
                let _ = write!(
                    l,
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
                    l,
                    ", position {} (clock {}), periods {}, {} {}",
                    e.done,
                    c.position(now),
                    e.periods,
                    if i == PLAY { "dropped" } else { "silence" },
                    e.unconnected
                );
            }
            let _ = writeln!(l);
            if let Some(link) = e.link {
                let _ = writeln!(
                    lines[3],
                    "  {}: RTOS {} ring{}, rate shift {:+} ppm, target fill {}, mean fill {}.{:03}",
                    name,
                    if link.mic { "microphone" } else { "speaker" },
                    if link.both { " and bridge" } else { "" },
                    link.follower.ppm(),
                    link.follower.target(),
                    link.follower.last_mean_mframes() / 1000,
                    link.follower.last_mean_mframes() % 1000
                );
            }
        }
    }
    for l in lines.iter_mut().filter(|l| l.len > 0) {
        l.emit(buffer);
    }
}
