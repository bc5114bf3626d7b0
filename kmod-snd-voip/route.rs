// SPDX-License-Identifier: GPL-2.0
//! Routing of the application-side ends on an RTOS board: which cable end
//! each routing control governs, what its items mean, and where an end
//! exchanges its frames once prepared. Neither cables nor rings: both use
//! these types.

use crate::fifo::{CaptureSource, PlaybackSink};
use core::ffi::CStr;

/// Index of a cable's playback end.
pub(crate) const PLAY: usize = 0;
/// Index of a cable's capture end.
pub(crate) const CAPT: usize = 1;

/// Which RTOS ring.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum RingId {
    /// The microphone ring (RTOS to Linux).
    Mic,
    /// The speaker ring (Linux to RTOS).
    Speaker,
}

/// Where an end of a cable exchanges its frames; fixed when the end is
/// prepared, so that nothing a control does later can make a transfer use
/// one ring's frame size against another stream's buffer.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum EndRoute {
    /// The other end of the cable (snd-aloop's loopback).
    Cable,
    /// The application's capture reads the microphone ring.
    Mic,
    /// The application's playback feeds the speaker ring, and with
    /// `also_cable` ("Both") the bridge's capture too.
    Speaker {
        /// Playback Sink = Both.
        also_cable: bool,
    },
}

impl EndRoute {
    /// The ring the end uses, if any.
    pub(crate) fn ring(self) -> Option<RingId> {
        match self {
            EndRoute::Cable => None,
            EndRoute::Mic => Some(RingId::Mic),
            EndRoute::Speaker { .. } => Some(RingId::Speaker),
        }
    }

    /// Whether the end exchanges frames with the other end of its cable.
    pub(crate) fn on_cable(self) -> bool {
        matches!(
            self,
            EndRoute::Cable | EndRoute::Speaker { also_cable: true }
        )
    }
}

/// The routing control of cable `cable`, if it has one: cable 2n (device
/// 0's playback into device 1's capture) has "Playback Sink" index n on its
/// playback end; cable 2n+1 (device 1's playback into device 0's capture)
/// has "Capture Source" index n on its capture end.
pub(crate) fn routed_side(cable: u32) -> usize {
    if cable & 1 == 0 {
        PLAY
    } else {
        CAPT
    }
}

/// The route of the routable end of cable `cable` for control value `v`.
pub(crate) fn route_of(cable: u32, v: u8) -> EndRoute {
    if cable & 1 == 0 {
        match PlaybackSink::from_index(u32::from(v)) {
            Some(PlaybackSink::Rtos) => EndRoute::Speaker { also_cable: false },
            Some(PlaybackSink::Both) => EndRoute::Speaker { also_cable: true },
            _ => EndRoute::Cable,
        }
    } else {
        match CaptureSource::from_index(u32::from(v)) {
            Some(CaptureSource::Rtos) => EndRoute::Mic,
            _ => EndRoute::Cable,
        }
    }
}

/// Items of "Capture Source", in value order.
pub(crate) const CAPTURE_SOURCE_ITEMS: &[&CStr] = &[c"Bridge", c"RTOS"];
/// Items of "Playback Sink", in value order.
pub(crate) const PLAYBACK_SINK_ITEMS: &[&CStr] = &[c"Bridge", c"RTOS", c"Both"];

/// The control values every substream starts with on an RTOS board.
#[derive(Clone, Copy, Debug)]
pub(crate) struct RouteDefaults {
    /// "Capture Source".
    pub(crate) capture: CaptureSource,
    /// "Playback Sink".
    pub(crate) playback: PlaybackSink,
}

impl RouteDefaults {
    /// The default control value of cable `cable`'s routable end.
    pub(crate) fn value_for(&self, cable: u32) -> u8 {
        if cable & 1 == 0 {
            self.playback as u8
        } else {
            self.capture as u8
        }
    }
}
