// SPDX-License-Identifier: GPL-2.0
//! snd-voip: a virtual ALSA card "VoIP" for boards whose audio lives on
//! another core.
//!
//! PCM device 0 ("VoIP PCM") is for applications, device 1 ("VoIP Bridge")
//! for the SIP bridge. Substream *n* of each device is joined by a cable, as
//! in snd-aloop: playback on 0,n is captured on 1,n and playback on 1,n is
//! captured on 0,n. Each running stream has an hrtimer that fires at its
//! period boundaries; positions are computed from ktime since the stream
//! started (as snd-dummy's hrtimer mode does), so they never drift. On an
//! AMP board whose device tree describes the RTOS core's audio FIFO, the
//! application side reads the RTOS microphone and feeds its speaker.
//!
//! Driver files (this one, `card.rs`, `cable.rs`, `rtos.rs`, `route.rs`)
//! make no raw calls: every call into C goes through the safe layer in
//! `safe/` (see its documentation and ARCHITECTURE.md).

use kernel::prelude::*;

mod bindings;
// Driver files: no `unsafe` (every raw call is in `safe/`); `make lint`
// also checks that they name no raw `bindings::`.
#[deny(unsafe_code)]
mod cable;
#[deny(unsafe_code)]
mod card;
#[deny(unsafe_code)]
mod route;
#[deny(unsafe_code)]
mod rtos;
mod safe;

#[path = "logic/clock.rs"]
pub mod clock;
#[path = "logic/counter.rs"]
pub mod counter;
#[path = "logic/fifo.rs"]
pub mod fifo;
#[path = "logic/follow.rs"]
pub mod follow;
#[path = "logic/format.rs"]
pub mod format;
#[path = "logic/ring.rs"]
pub mod ring;

pub(crate) use card::VoipCard;
use safe::platform::{of_node_present, Registration};

module! {
    type: SndVoip,
    name: "snd_voip",
    author: "snd-voip developers",
    description: "VoIP virtual sound card: hrtimer-clocked loopback cables between applications and a SIP bridge",
    license: "GPL",
}

/// The module: the platform driver and, on a board without the RTOS FIFO
/// node, the software device it binds.
struct SndVoip {
    _registration: Option<Registration<card::VoipDriver>>,
}

impl kernel::Module for SndVoip {
    fn init(module: &'static ThisModule) -> Result<Self> {
        safe::sound::card::set_this_module(module);
        if !safe::params::enable() {
            pr_info!("enable=0: no card created\n");
            return Ok(SndVoip {
                _registration: None,
            });
        }
        // A board whose device tree has the RTOS FIFO node gets its card
        // from that node; others get a software platform device. Either
        // way a refused probe fails the load with probe's own errno.
        let of = of_node_present();
        let reg = Registration::new(module, c"snd_voip", of).map_err(|e| {
            pr_err!(
                "no card{}: error {}\n",
                if of {
                    " (the RTOS FIFO node was refused)"
                } else {
                    ""
                },
                e.to_errno()
            );
            e
        })?;
        Ok(SndVoip {
            _registration: Some(reg),
        })
    }
}

impl Drop for SndVoip {
    fn drop(&mut self) {
        pr_info!("unloaded\n");
    }
}
