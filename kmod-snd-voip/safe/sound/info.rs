// SPDX-License-Identifier: GPL-2.0
//! Text files under /proc/asound/cardN ([`ProcFiles`], [`InfoBuffer`]).

use super::card::data_of;
use crate::bindings;
use core::ffi::CStr;
use core::fmt;
use kernel::types::Opaque;

/// The proc files of a card, read by its data.
pub(crate) trait ProcFiles: Sized + Send + Sync {
    /// Writes file `name` (as given to `Card::add_proc`) into `buf`.
    fn proc_read(&self, name: &CStr, buf: &mut InfoBuffer);
}

/// The buffer a proc file is written into: `write!` into it.
#[repr(transparent)]
pub(crate) struct InfoBuffer(Opaque<bindings::snd_info_buffer>);

impl fmt::Write for InfoBuffer {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        // snd_iprintf takes C strings: pass `s` in NUL-terminated pieces
        // (a NUL inside `s` is sent as '?').
        let mut chunk = [0u8; 128];
        for piece in s.as_bytes().chunks(chunk.len() - 1) {
            for (d, &b) in chunk.iter_mut().zip(piece) {
                *d = if b == 0 { b'?' } else { b };
            }
            chunk[piece.len()] = 0;
            // SAFETY: `&mut self` is the live buffer of the running read
            // callback (made only by `proc_read_cb`); `chunk` is NUL-terminated.
            unsafe { bindings::snd_voip_info_puts(self.0.get(), chunk.as_ptr().cast()) };
        }
        Ok(())
    }
}

pub(super) unsafe extern "C" fn proc_read_cb<D: ProcFiles>(
    entry: *mut bindings::snd_info_entry,
    buffer: *mut bindings::snd_info_buffer,
) {
    // SAFETY: ALSA passes an entry made by `Card<D>::add_proc` (private
    // data: the card's `D`, name: a static C string) and its live buffer,
    // ours for the call.
    let (d, name, buf) = unsafe {
        (
            data_of::<D>((*entry).private_data),
            CStr::from_ptr((*entry).name.cast()),
            &mut *buffer.cast::<InfoBuffer>(),
        )
    };
    d.proc_read(name, buf);
}
