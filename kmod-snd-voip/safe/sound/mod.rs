// SPDX-License-Identifier: GPL-2.0
//! Safe wrappers of the ALSA core: the card and its data, PCM substreams,
//! hw rules and buffers, controls and change events, proc files.

pub(crate) mod card;
pub(crate) mod control;
pub(crate) mod info;
pub(crate) mod pcm;
