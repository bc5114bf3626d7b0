//! When the kernel received an RTP datagram (`SO_TIMESTAMPNS`), not when
//! the engine got round to reading it.
//!
//! The jitter buffer sizes itself by the interarrival jitter (RFC 3550
//! A.8), which is meant to be the network's. Timed at the engine's read,
//! it also counts how late the engine woke, which the playback fill
//! already covers (packets that arrived before a service are read in it,
//! before the device is topped up). Timed by the kernel, the engine's
//! lateness is counted once, by the fill. (In the latency bench under TCG
//! the 4-6.5 ms of jitter that raised the jitter buffer to 60 ms stayed
//! with kernel times: it was this bridge's own late sends, echoed back by
//! the far end, and went with the device-clock looks of `audio`; the
//! share of the engine's reads was not measured apart.)
//!
//! The kernel turns receive stamping on for the first timed socket of the
//! system in a work item (`net_enable_timestamp`'s deferred static key): a
//! datagram received before that work ran is stamped when it is read, as
//! without the option. That costs the first packets of the first call
//! their kernel time, nothing more.

use super::engine::Datagrams;
use nix::sys::socket::{
    recvmsg, setsockopt, sockopt, ControlMessageOwned, MsgFlags, SockaddrLike, SockaddrStorage,
};
use std::io::{self, IoSliceMut};
use std::net::{SocketAddr, SocketAddrV4, SocketAddrV6, UdpSocket};
use std::os::fd::{AsRawFd, RawFd};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Receive times further back than this are taken as this old (the
/// kernel stamps with CLOCK_REALTIME, which can step; an engine that was
/// away longer has bigger problems than a jitter estimate).
const MAX_AGE: Duration = Duration::from_secs(1);

/// Room for one `SCM_TIMESTAMPNS` control message (CMSG_SPACE of a
/// 16-byte timespec is 32 on 64-bit targets, 24 on 32-bit ones).
const CMSG_ROOM: usize = 64;

/// A non-blocking UDP socket that reports each datagram's kernel receive
/// time (falls back to none where the kernel refuses the option).
#[derive(Debug)]
pub struct TimedUdp {
    sock: UdpSocket,
    timed: bool,
}

impl TimedUdp {
    /// Asks the kernel to stamp `sock`'s datagrams; a refusal is logged and
    /// costs only the stamps.
    pub fn new(sock: UdpSocket) -> TimedUdp {
        let timed = match setsockopt(&sock, sockopt::ReceiveTimestampns, &true) {
            Ok(()) => true,
            Err(e) => {
                tracing::warn!("no kernel receive times for RTP (SO_TIMESTAMPNS: {e}): jitter is measured at the engine's reads");
                false
            }
        };
        TimedUdp { sock, timed }
    }

    /// Whether the kernel stamps this socket's datagrams.
    pub fn is_timed(&self) -> bool {
        self.timed
    }
}

/// The instant of a wall-clock receive time `stamp` (since the epoch),
/// given the wall clock `wall` read at `now`: never after `now`, never more
/// than [`MAX_AGE`] before it (a stepped wall clock lands inside that).
pub fn stamp_to_instant(stamp: Duration, wall: Duration, now: Instant) -> Instant {
    let age = wall.saturating_sub(stamp).min(MAX_AGE);
    now.checked_sub(age).unwrap_or(now)
}

/// The monotonic clock and the wall clock (since the epoch), read together.
fn clocks_now() -> (Instant, Duration) {
    let now = Instant::now();
    let wall = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    (now, wall)
}

fn to_std(a: &SockaddrStorage) -> Option<SocketAddr> {
    if let Some(v4) = a.as_sockaddr_in() {
        return Some(SocketAddr::V4(SocketAddrV4::from(*v4)));
    }
    a.as_sockaddr_in6()
        .map(|v6| SocketAddr::V6(SocketAddrV6::from(*v6)))
}

impl Datagrams for TimedUdp {
    fn send_to(&self, buf: &[u8], to: SocketAddr) -> io::Result<usize> {
        self.sock.send_to(buf, to)
    }

    fn recv_from(&self, buf: &mut [u8]) -> io::Result<(usize, SocketAddr)> {
        self.sock.recv_from(buf)
    }

    fn recv_timed(&self, buf: &mut [u8]) -> io::Result<(usize, SocketAddr, Option<Instant>)> {
        if !self.timed {
            return self.recv_from(buf).map(|(n, a)| (n, a, None));
        }
        // A control buffer on the stack: no allocation per packet.
        let mut cmsg = [0u8; CMSG_ROOM];
        let mut iov = [IoSliceMut::new(buf)];
        let msg = recvmsg::<SockaddrStorage>(
            self.sock.as_raw_fd(),
            &mut iov,
            Some(&mut cmsg),
            MsgFlags::MSG_DONTWAIT,
        )
        .map_err(io::Error::from)?;
        let n = msg.bytes;
        let from = msg
            .address
            .as_ref()
            .filter(|a| a.len() > 0)
            .and_then(to_std)
            .ok_or_else(|| {
                io::Error::new(
                    io::ErrorKind::InvalidData,
                    "datagram without a source address",
                )
            })?;
        let mut stamp = None;
        if let Ok(cmsgs) = msg.cmsgs() {
            for c in cmsgs {
                if let ControlMessageOwned::ScmTimestampns(ts) = c {
                    let secs = u64::try_from(ts.tv_sec()).unwrap_or(0);
                    let nanos = u32::try_from(ts.tv_nsec()).unwrap_or(0).min(999_999_999);
                    stamp = Some(Duration::new(secs, nanos));
                }
            }
        }
        let at = stamp.map(|s| {
            let (now, wall) = clocks_now();
            stamp_to_instant(s, wall, now)
        });
        Ok((n, from, at))
    }

    fn raw_fd(&self) -> Option<RawFd> {
        Some(self.sock.as_raw_fd())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stamp_is_placed_before_now_and_never_after_it_or_too_far_back() {
        let now = Instant::now() + Duration::from_secs(10);
        let wall = Duration::from_secs(1_800_000_000);
        let ms = Duration::from_millis;
        assert_eq!(stamp_to_instant(wall - ms(30), wall, now), now - ms(30));
        // A wall clock stepped back: the stamp is "in the future".
        assert_eq!(stamp_to_instant(wall + ms(500), wall, now), now);
        // Stepped forward, or a stamp from long ago: at most MAX_AGE.
        assert_eq!(stamp_to_instant(wall - ms(5000), wall, now), now - MAX_AGE);
        assert_eq!(stamp_to_instant(Duration::ZERO, wall, now), now - MAX_AGE);
    }

    /// Whether the wall clock moved with the monotonic one between `a` and
    /// `b` (to a millisecond): no step, no large slew.
    fn wall_held(a: (Instant, Duration), b: (Instant, Duration)) -> bool {
        let mono = b.0.duration_since(a.0);
        let wall = b.1.saturating_sub(a.1);
        mono.abs_diff(wall) <= Duration::from_millis(1)
    }

    #[test]
    fn the_kernel_receive_time_is_reported_not_the_read_time() {
        let rx = UdpSocket::bind("127.0.0.1:0").unwrap();
        rx.set_nonblocking(true).unwrap();
        let rx = TimedUdp::new(rx);
        assert!(rx.is_timed(), "the kernel refused SO_TIMESTAMPNS");
        let tx = UdpSocket::bind("127.0.0.1:0").unwrap();
        let to = rx.sock.local_addr().unwrap();
        let mut buf = [0u8; 64];
        assert_eq!(
            rx.recv_timed(&mut buf).unwrap_err().kind(),
            io::ErrorKind::WouldBlock
        );
        // Two things can make one attempt show the read time, by design:
        // the kernel turns receive stamping on for the first timed socket
        // in a work item (net_enable_timestamp's deferred static key), and
        // a datagram that came before it ran is stamped when it is read;
        // and a wall clock stepped or slewed during the attempt (a VM
        // resumed, NTP) moves the CLOCK_REALTIME stamp (`stamp_to_instant`
        // clamps it). CI once saw a stamp 8 µs before the read on a loaded
        // machine. So: up to five attempts; one in which the wall clock
        // held must show the kernel's time.
        let mut shown = false;
        let mut held = 0;
        let mut seen = Vec::new();
        for _ in 0..5 {
            let start = clocks_now();
            let before = Instant::now();
            tx.send_to(b"rtp", to).unwrap();
            // Read 50 ms later: the stamp says when it came, not when it
            // was read (a slow machine only makes the read later still).
            std::thread::sleep(Duration::from_millis(50));
            let (n, from, at) = rx.recv_timed(&mut buf).unwrap();
            let read = Instant::now();
            let end = clocks_now();
            assert_eq!((&buf[..n], from), (&b"rtp"[..], tx.local_addr().unwrap()));
            let at = at.expect("no receive time");
            // Whatever the wall clock did: never after the read, never
            // more than MAX_AGE before it.
            assert!(at <= read && read.duration_since(at) <= MAX_AGE);
            if !wall_held(start, end) {
                continue;
            }
            held += 1;
            seen.push(read.duration_since(at));
            if read.duration_since(at) >= Duration::from_millis(45) {
                // Not before the send either (the wall and monotonic
                // clocks are read a few µs apart: a millisecond of
                // tolerance).
                assert!(at + Duration::from_millis(1) >= before);
                shown = true;
                break;
            }
        }
        assert!(
            shown || held == 0,
            "stamped {seen:?} before the read in {held} attempts with a steady wall clock"
        );
        if held == 0 {
            eprintln!(
                "the wall clock moved in all five attempts: the stamps' times were not judged"
            );
        }
        // IPv6 sources come back as such.
        if let (Ok(r6), Ok(t6)) = (UdpSocket::bind("[::1]:0"), UdpSocket::bind("[::1]:0")) {
            r6.set_nonblocking(true).unwrap();
            let r6 = TimedUdp::new(r6);
            t6.send_to(b"v6", r6.sock.local_addr().unwrap()).unwrap();
            std::thread::sleep(Duration::from_millis(5));
            let (n, from, at) = r6.recv_timed(&mut buf).unwrap();
            assert_eq!((&buf[..n], from), (&b"v6"[..], t6.local_addr().unwrap()));
            assert!(at.is_some());
        }
    }
}
