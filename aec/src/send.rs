//! AEC3's canceller, movable between threads.
//!
//! voipbridge creates a call's canceller where the call's media is set up
//! and runs it on the media thread, so the canceller must be `Send`.
//! `aec3` 0.4.0's `EchoCanceller3` is not, for one reason only: it holds
//! its block processor as `Box<dyn BlockProcessorBackend>`, a private
//! trait declared without a `Send` bound. Outside `aec3`'s own unit tests
//! (whose recording doubles use `Rc<RefCell<_>>`) that box always holds
//! `BlockProcessor`, which is `Send` (asserted below). Everything else in
//! `EchoCanceller3` is `Send` too: `aec3` 0.4.0 built with
//! `trait BlockProcessorBackend: Send` and a `Send` assertion on
//! `EchoCanceller3` compiles (checked when this was written). The
//! dependency is pinned to `=0.4.0` in `aec/Cargo.toml` so that a new
//! version is looked at again before it is used; the bound belongs
//! upstream (aec3-rs), and this module goes once it is there.

use aec3::audio_processing::aec3::block_processor::BlockProcessor;
use aec3::audio_processing::aec3::echo_canceller3::EchoCanceller3;

/// An [`EchoCanceller3`] that may move to another thread (see the module
/// documentation). It is never shared: `&` access from two threads at once
/// is still impossible (it is not `Sync`).
pub(crate) struct SendAec3(pub(crate) EchoCanceller3);

// SAFETY: `EchoCanceller3` (aec3 =0.4.0) is `!Send` only because of its
// `Box<dyn BlockProcessorBackend>` field, whose trait lacks a `Send` bound;
// outside aec3's `#[cfg(test)]` code the only value ever stored there is a
// `BlockProcessor`, which is `Send` (`_block_processor_is_send`), and every
// other field is `Send` (the crate compiles with the bound added). Moving
// the whole canceller, with everything it owns, to another thread is
// therefore sound; it stays `!Sync`.
unsafe impl Send for SendAec3 {}

/// Fails to compile if `BlockProcessor` stops being `Send`.
const _: fn() = || {
    fn _block_processor_is_send<T: Send>() {}
    _block_processor_is_send::<BlockProcessor>();
};
