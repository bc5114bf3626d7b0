// SPDX-License-Identifier: GPL-2.0
//! The module parameters (declared with `module_param()` in
//! `snd_voip_shim.c`: Rust on 6.12 cannot declare them).

use crate::bindings;
use core::ffi::CStr;

/// `index`: the card slot, -1 for the first free one.
pub(crate) fn index() -> i32 {
    // SAFETY: reads an int parameter, set before init and read-only (0444).
    unsafe { bindings::snd_voip_param_index() }
}

/// `id`: the card id.
pub(crate) fn id() -> &'static CStr {
    // SAFETY: reads a charp parameter, read-only after load.
    let p = unsafe { bindings::snd_voip_param_id() };
    charp(p).unwrap_or(c"VoIP")
}

/// `enable`: whether to create the card.
pub(crate) fn enable() -> bool {
    // SAFETY: reads a bool parameter, read-only after load.
    unsafe { bindings::snd_voip_param_enable() }
}

/// `pcm_substreams`: cables per direction.
pub(crate) fn pcm_substreams() -> i32 {
    // SAFETY: reads an int parameter, read-only after load.
    unsafe { bindings::snd_voip_param_pcm_substreams() }
}

/// `capture_source`, if given.
pub(crate) fn capture_source() -> Option<&'static CStr> {
    // SAFETY: reads a charp parameter, read-only after load.
    charp(unsafe { bindings::snd_voip_param_capture_source() })
}

/// `playback_sink`, if given.
pub(crate) fn playback_sink() -> Option<&'static CStr> {
    // SAFETY: reads a charp parameter, read-only after load.
    charp(unsafe { bindings::snd_voip_param_playback_sink() })
}

/// `rtos_max_shift_ppm`.
pub(crate) fn rtos_max_shift_ppm() -> i32 {
    // SAFETY: reads an int parameter, read-only after load.
    unsafe { bindings::snd_voip_param_rtos_max_shift_ppm() }
}

/// `rtos_slack_us` (-1: the default, one RTOS period).
pub(crate) fn rtos_slack_us() -> i32 {
    // SAFETY: reads an int parameter, read-only after load.
    unsafe { bindings::snd_voip_param_rtos_slack_us() }
}

fn charp(p: *const kernel::ffi::c_char) -> Option<&'static CStr> {
    if p.is_null() {
        None
    } else {
        // SAFETY: a charp module parameter is a NUL-terminated string that
        // stays as it is while the module is loaded (0444: no writes).
        Some(unsafe { CStr::from_ptr(p.cast()) })
    }
}
