//! Extension points of the media path, for the features that plug into it
//! without touching the engine:
//!
//! * [`PacketTransform`]: a per-call transform of every datagram on the
//!   send and receive paths, RTP and RTCP separately. SRTP/SRTCP (RFC 3711)
//!   is the user: `protect` adds the authentication tag (and the SRTCP
//!   index), `unprotect` checks and strips it. It works in place on the
//!   engine's buffers, which always have [`MAX_OVERHEAD`] bytes of room
//!   after the packet, so an in-place cipher allocates nothing.
//! * [`AudioProcessor`]: a stage on the capture path (echo cancellation,
//!   noise suppression), fed the far-end reference: every block written to
//!   the playback device, with both devices' delays so the two signals can
//!   be aligned to the sample.
//!
//! Both are created per call by a factory in [`super::MediaParams`]
//! (`transform`, `processors`), so a call's keys or adaptive filters never
//! leak into another call.

use std::fmt;
use std::sync::Arc;
use std::time::Instant;
use thiserror::Error;

/// The most a transform may add to a packet: SRTP's 10-byte tag (or a
/// longer one), an MKI, SRTCP's 4-byte index, with room to spare.
pub const MAX_OVERHEAD: usize = 64;

/// Why a transform refused a packet.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum TransformError {
    /// Authentication failed (wrong key, forged or corrupted packet).
    #[error("authentication failed")]
    Auth,
    /// A replayed packet (RFC 3711 3.3.2).
    #[error("replayed packet")]
    Replay,
    /// The packet is too short or otherwise malformed for the transform.
    #[error("malformed packet")]
    Malformed,
    /// The buffer had no room for the transform's overhead.
    #[error("no room for the transform's overhead")]
    NoRoom,
    /// Anything else (key exhausted, internal error), with a reason.
    #[error("{0}")]
    Other(String),
}

/// A per-call transform of RTP and RTCP datagrams (SRTP).
///
/// Each method transforms `buf[..len]` in place and returns the new
/// length. `buf` is at least `len + MAX_OVERHEAD` bytes long for
/// `protect_*`. A failed `unprotect_*` makes the engine drop the datagram
/// and count it in [`MediaStats::transform_dropped`](super::MediaStats);
/// a failed `protect_*` drops the outgoing packet (counted, logged).
pub trait PacketTransform: Send {
    /// Protects an outgoing RTP packet.
    fn protect_rtp(&mut self, buf: &mut [u8], len: usize) -> Result<usize, TransformError>;
    /// Protects an outgoing compound RTCP packet.
    fn protect_rtcp(&mut self, buf: &mut [u8], len: usize) -> Result<usize, TransformError>;
    /// Checks and strips a received RTP packet.
    fn unprotect_rtp(&mut self, buf: &mut [u8], len: usize) -> Result<usize, TransformError>;
    /// Checks and strips a received RTCP packet.
    fn unprotect_rtcp(&mut self, buf: &mut [u8], len: usize) -> Result<usize, TransformError>;
    /// What `status` shows, e.g. `SRTP AES_CM_128_HMAC_SHA1_80`.
    fn describe(&self) -> String;
}

/// The moment a block met a device, and how much audio stood between it
/// and the device's far side.
///
/// * Playback ([`AudioProcessor::far_end`]): the block was written at
///   `at` behind `delay` frames still queued in the device, so its first
///   sample leaves the device `delay` frames after `at`.
/// * Capture ([`AudioProcessor::process`]): the block was read at `at`,
///   and `delay` frames captured after its last sample were still waiting
///   in the device, so its last sample entered the device `delay` frames
///   (plus one) before `at`.
///
/// `delay` is `snd_pcm_delay()` taken next to the transfer, converted to
/// 8 kHz frames; files and tones report 0.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeviceTiming {
    /// When the block was transferred.
    pub at: Instant,
    /// Frames (8 kHz) queued in the device beyond the block.
    pub delay: i64,
}

/// A stage on the capture path of a call: echo cancellation, noise
/// suppression. Runs on the media thread: it must not block, and should
/// take well under a period per call.
///
/// Audio is 8 kHz mono linear (what the call carries). The far-end
/// reference is exactly what was written to the playback device
/// (concealment and drift correction included), in the order written.
/// With a processor present the capture path decodes G.711 from the card
/// (no passthrough), runs the chain in order, and encodes the result.
pub trait AudioProcessor: Send {
    /// A block was written to the playback device.
    fn far_end(&mut self, pcm: &[i16], timing: DeviceTiming);
    /// Processes a captured block in place (the near end, to be sent).
    fn process(&mut self, pcm: &mut [i16], timing: DeviceTiming);
    /// A device lost its continuity (a playback underrun, a capture
    /// overrun): what the speaker played and the microphone heard no
    /// longer line up as before.
    fn discontinuity(&mut self) {}
    /// Short name for `status` (e.g. `aec3`, `ns`).
    fn name(&self) -> &str;
    /// Figures for `status` (e.g. `("erle_db", 31.5)`, `("delay_ms", 52.0)`);
    /// called when `status` asks, never per block.
    fn stats(&self, out: &mut Vec<(String, f64)>) {
        let _ = out;
    }
}

/// Makes a call's packet transform (called once, when its media starts).
#[derive(Clone)]
pub struct TransformFactory(
    pub Arc<dyn Fn() -> Result<Box<dyn PacketTransform>, TransformError> + Send + Sync>,
);

impl fmt::Debug for TransformFactory {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TransformFactory")
    }
}

/// Makes one capture processor of a call (called once, when its media starts).
#[derive(Clone)]
pub struct ProcessorFactory(pub Arc<dyn Fn() -> Box<dyn AudioProcessor> + Send + Sync>);

impl fmt::Debug for ProcessorFactory {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ProcessorFactory")
    }
}
