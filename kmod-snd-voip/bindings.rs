// SPDX-License-Identifier: GPL-2.0
//! Raw bindings to the ALSA, hrtimer and platform-device APIs that the 6.12
//! kernel crate does not wrap, generated at build time by bindgen from
//! `snd_voip_shim.h` with this tree's own flags (see `Kbuild`).
//!
//! Only the safe layer (`safe/`) uses them; driver files never do.

#![allow(
    dead_code,
    missing_docs,
    non_camel_case_types,
    non_upper_case_globals,
    non_snake_case,
    improper_ctypes,
    unreachable_pub,
    unsafe_op_in_unsafe_fn,
    unknown_lints,
    unnecessary_transmutes,
    clippy::all,
    clippy::undocumented_unsafe_blocks
)]

// Types that rust/bindgen_parameters blocklists, defined as the kernel's
// own rust/bindings/lib.rs does.
type __kernel_size_t = usize;
type __kernel_ssize_t = isize;
type __kernel_ptrdiff_t = isize;

include!(env!("SND_VOIP_BINDINGS"));
