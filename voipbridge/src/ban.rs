//! Built-in abuse banning (the seeds' `astban`, inside the agent), sans-IO.
//!
//! Per-source counters over a sliding window — failed digest, unknown
//! users, malformed and unauthorised requests, and the rate of messages —
//! and a ban list. A source over any threshold is banned for the ban time:
//! the transport drops its datagrams and refuses (and closes) its
//! connections before any parsing. The registrar and the outbound proxy are
//! never banned (their retransmissions must always get through), nor are
//! the addresses of `[ban] exempt`.
//!
//! A source is an IPv4 address, or an IPv6 /64 (one subscriber's prefix:
//! banning a single v6 address would cost an attacker nothing).
//!
//! Both tables are bounded. Counters live in an LRU of `table_size`
//! sources (a flood from many spoofed sources evicts the oldest counters,
//! never grows memory); bans in a table of `max_bans`, evicting the ban
//! that would expire first. Every operation is O(log n).
//!
//! No crate fits: fail2ban-style banning inside a SIP agent needs the SIP
//! layer's own verdicts (unknown user, failed digest), which only the agent
//! sees; the generic rate limiters on crates.io (governor, ...) count one
//! thing per key and keep no ban list.

use crate::sip::policy::AbuseKind;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;
use std::net::{IpAddr, Ipv6Addr};
use std::time::{Duration, Instant};
use thiserror::Error;

/// What a source did wrong (reported by the SIP layer, or counted by the
/// transport for the rate).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Offence {
    /// A request whose digest credentials were wrong.
    FailedAuth,
    /// A request for a user we are not.
    UnknownUser,
    /// A message that did not parse, or broke the RFC.
    Malformed,
    /// A request the answer policy refused (an INVITE from a caller not allowed).
    Unauthorised,
    /// More messages within the window than `max_requests`.
    Rate,
    /// Banned by `voipbridge ban`.
    Manual,
}

impl From<AbuseKind> for Offence {
    /// The SIP layer's abuse reports as counters: a method we do not serve
    /// outside a dialog (REGISTER, SUBSCRIBE, ... — what scanners probe
    /// with) counts as an unauthorised request.
    fn from(kind: AbuseKind) -> Offence {
        match kind {
            AbuseKind::MalformedRequest => Offence::Malformed,
            AbuseKind::UnauthorisedInvite | AbuseKind::MethodNotAllowed => Offence::Unauthorised,
            AbuseKind::UnknownUser => Offence::UnknownUser,
        }
    }
}

impl fmt::Display for Offence {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Offence::FailedAuth => "failed digest authentication",
            Offence::UnknownUser => "requests for unknown users",
            Offence::Malformed => "malformed requests",
            Offence::Unauthorised => "unauthorised requests",
            Offence::Rate => "request rate",
            Offence::Manual => "banned by the operator",
        })
    }
}

/// Thresholds and sizes (`[ban]` in the configuration).
#[derive(Debug, Clone, PartialEq)]
pub struct BanConfig {
    /// Off: nothing is counted or banned (manual bans still work).
    pub enabled: bool,
    /// Length of the sliding window the counters cover.
    pub window: Duration,
    /// How long a ban lasts.
    pub ban_time: Duration,
    /// Failed digest authentications within the window (0: not counted).
    pub max_failed_auth: u32,
    /// Requests for unknown users within the window (0: not counted).
    pub max_unknown_user: u32,
    /// Malformed messages within the window (0: not counted).
    pub max_malformed: u32,
    /// Unauthorised requests within the window (0: not counted).
    pub max_unauthorised: u32,
    /// Messages of any kind within the window (0: not counted).
    pub max_requests: u32,
    /// Sources whose counters are kept (LRU).
    pub table_size: usize,
    /// Bans kept at once (the one expiring first is dropped for a new one).
    pub max_bans: usize,
}

impl Default for BanConfig {
    /// Defaults for a phone: a handful of failures, a rate no phone or
    /// proxy talking to one reaches (100 messages in 10 s: a call's whole
    /// set-up with every UDP retransmission is under 20).
    fn default() -> Self {
        BanConfig {
            enabled: true,
            window: Duration::from_secs(10),
            ban_time: Duration::from_secs(600),
            max_failed_auth: 5,
            max_unknown_user: 5,
            max_malformed: 10,
            max_unauthorised: 10,
            max_requests: 100,
            table_size: 4096,
            max_bans: 1024,
        }
    }
}

/// The unit that is counted and banned: an IPv4 address or an IPv6 /64.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Source(IpAddr);

impl Source {
    /// The source an address belongs to.
    pub fn of(ip: IpAddr) -> Source {
        match ip {
            IpAddr::V4(_) => Source(ip),
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => Source(IpAddr::V4(v4)),
                None => {
                    let s = v6.segments();
                    Source(IpAddr::V6(Ipv6Addr::new(
                        s[0], s[1], s[2], s[3], 0, 0, 0, 0,
                    )))
                }
            },
        }
    }
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            IpAddr::V4(a) => write!(f, "{a}"),
            IpAddr::V6(a) => write!(f, "{a}/64"),
        }
    }
}

/// A new ban, for the one log line the I/O layer writes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BanNotice {
    /// Who.
    pub source: Source,
    /// Why.
    pub reason: Offence,
    /// The count that crossed the threshold (0 for a manual ban).
    pub count: u32,
    /// For how long.
    pub duration: Duration,
}

impl fmt::Display for BanNotice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.reason == Offence::Manual {
            write!(
                f,
                "banned {} for {} s ({})",
                self.source,
                self.duration.as_secs(),
                self.reason
            )
        } else {
            write!(
                f,
                "banned {} for {} s: {} {} within the window",
                self.source,
                self.duration.as_secs(),
                self.count,
                self.reason
            )
        }
    }
}

/// A current ban, for `status`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct BanInfo {
    /// The source (address, or IPv6 prefix/64).
    pub source: String,
    /// Why.
    pub reason: Offence,
    /// Seconds left.
    pub remaining_s: u64,
}

/// What the transport does with a message or connection from an address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Admit {
    /// Process it.
    Yes,
    /// Drop it: the source is banned.
    Banned,
    /// Drop it: this message just got its source banned (log the notice).
    NewBan(BanNotice),
}

/// Why a manual ban was refused.
#[derive(Debug, Clone, Error, PartialEq, Eq)]
pub enum BanError {
    /// The address is the registrar, the outbound proxy or exempt.
    #[error("{0} is the registrar, the outbound proxy or in [ban] exempt: never banned")]
    Exempt(IpAddr),
}

/// Sliding-window counter: the previous and the current window's counts;
/// the estimate weighs the previous one by how much of it still overlaps.
#[derive(Debug, Clone, Copy, Default)]
struct Window {
    start: Option<Instant>,
    prev: u32,
    cur: u32,
}

impl Window {
    fn add(&mut self, now: Instant, len: Duration) -> u32 {
        let start = *self.start.get_or_insert(now);
        let mut elapsed = now.saturating_duration_since(start);
        if elapsed >= len {
            let windows = elapsed.as_nanos() / len.as_nanos().max(1);
            self.prev = if windows == 1 { self.cur } else { 0 };
            self.cur = 0;
            let advanced = len.saturating_mul(u32::try_from(windows).unwrap_or(u32::MAX));
            self.start = Some(start + advanced);
            elapsed = now.saturating_duration_since(start + advanced);
        }
        self.cur = self.cur.saturating_add(1);
        let left = len.saturating_sub(elapsed).as_nanos();
        let weighted = u128::from(self.prev) * left / len.as_nanos().max(1);
        u32::try_from(weighted)
            .unwrap_or(u32::MAX)
            .saturating_add(self.cur)
    }
}

#[derive(Debug, Clone, Default)]
struct Counters {
    lru: u64,
    by: [Window; 5],
}

fn slot(o: Offence) -> Option<usize> {
    match o {
        Offence::FailedAuth => Some(0),
        Offence::UnknownUser => Some(1),
        Offence::Malformed => Some(2),
        Offence::Unauthorised => Some(3),
        Offence::Rate => Some(4),
        Offence::Manual => None,
    }
}

#[derive(Debug, Clone)]
struct Ban {
    until: Instant,
    reason: Offence,
}

/// Most live-call peers kept out of the rate count (the UA's call limit).
pub const MAX_CALL_PEERS: usize = 64;

/// The ban table. Time is passed in (`now`), never read.
#[derive(Debug)]
pub struct BanTable {
    cfg: BanConfig,
    exempt: BTreeSet<IpAddr>,
    /// Signalling addresses of live calls: not counted against the rate
    /// (their in-dialog requests, DTMF INFO bursts included, must never ban
    /// the peer mid-call); still banned for abuse, still dropped if banned.
    call_peers: BTreeSet<IpAddr>,
    counters: HashMap<Source, Counters>,
    lru: BTreeMap<u64, Source>,
    tick: u64,
    bans: HashMap<Source, Ban>,
    expiry: BTreeSet<(Instant, Source)>,
    /// Messages dropped because their source was banned.
    pub dropped: u64,
    /// Bans made since start (automatic and manual).
    pub banned_total: u64,
}

impl BanTable {
    /// An empty table.
    pub fn new(cfg: BanConfig) -> BanTable {
        BanTable {
            cfg,
            exempt: BTreeSet::new(),
            call_peers: BTreeSet::new(),
            counters: HashMap::new(),
            lru: BTreeMap::new(),
            tick: 0,
            bans: HashMap::new(),
            expiry: BTreeSet::new(),
            dropped: 0,
            banned_total: 0,
        }
    }

    /// The configuration in force.
    pub fn config(&self) -> &BanConfig {
        &self.cfg
    }

    /// Addresses never banned (the registrar and outbound proxy, once
    /// resolved, and `[ban] exempt`); lifts any ban they have.
    pub fn set_exempt(&mut self, addrs: impl IntoIterator<Item = IpAddr>) {
        self.exempt = addrs.into_iter().map(canonical).collect();
        let lifted: Vec<Source> = self
            .bans
            .keys()
            .filter(|s| self.exempt.iter().any(|a| Source::of(*a) == **s))
            .copied()
            .collect();
        for s in lifted {
            self.remove_ban(s);
        }
    }

    /// The signalling addresses of the live (confirmed) calls, replacing
    /// the previous set: their messages are not counted against the rate.
    /// At most [`MAX_CALL_PEERS`] are kept.
    pub fn set_call_peers(&mut self, addrs: impl IntoIterator<Item = IpAddr>) {
        self.call_peers = addrs
            .into_iter()
            .map(canonical)
            .take(MAX_CALL_PEERS)
            .collect();
    }

    fn is_exempt(&self, ip: IpAddr) -> bool {
        self.exempt.contains(&canonical(ip))
    }

    /// Whether `ip` is banned now (expired bans are dropped on the way).
    pub fn is_banned(&mut self, now: Instant, ip: IpAddr) -> bool {
        self.expire(now);
        self.bans.contains_key(&Source::of(ip))
    }

    /// A message from `ip` arrived: drop it if the source is banned, else
    /// count it against the rate threshold.
    pub fn admit(&mut self, now: Instant, ip: IpAddr) -> Admit {
        if self.is_banned(now, ip) {
            self.dropped += 1;
            return Admit::Banned;
        }
        if self.call_peers.contains(&canonical(ip)) {
            return Admit::Yes;
        }
        match self.record(now, ip, Offence::Rate) {
            Some(n) => {
                self.dropped += 1;
                Admit::NewBan(n)
            }
            None => Admit::Yes,
        }
    }

    /// A connection from `ip` is being accepted: refused while banned
    /// (connections are not counted against the rate; their messages are).
    pub fn admit_connection(&mut self, now: Instant, ip: IpAddr) -> bool {
        !self.is_banned(now, ip)
    }

    /// Counts one offence by `ip`; the notice when it crossed a threshold
    /// and the source is now banned.
    pub fn record(&mut self, now: Instant, ip: IpAddr, what: Offence) -> Option<BanNotice> {
        let max = match what {
            Offence::FailedAuth => self.cfg.max_failed_auth,
            Offence::UnknownUser => self.cfg.max_unknown_user,
            Offence::Malformed => self.cfg.max_malformed,
            Offence::Unauthorised => self.cfg.max_unauthorised,
            Offence::Rate => self.cfg.max_requests,
            Offence::Manual => 0,
        };
        let i = slot(what)?;
        if !self.cfg.enabled || max == 0 || self.is_exempt(ip) || self.cfg.table_size == 0 {
            return None;
        }
        let src = Source::of(ip);
        if self.bans.contains_key(&src) {
            return None;
        }
        self.tick += 1;
        let tick = self.tick;
        let window = self.cfg.window;
        let c = match self.counters.get_mut(&src) {
            Some(c) => {
                self.lru.remove(&c.lru);
                c
            }
            None => {
                while self.counters.len() >= self.cfg.table_size {
                    let Some((_, old)) = self.lru.pop_first() else {
                        break;
                    };
                    self.counters.remove(&old);
                }
                self.counters.entry(src).or_default()
            }
        };
        c.lru = tick;
        self.lru.insert(tick, src);
        let count = c.by[i].add(now, window);
        if count <= max {
            return None;
        }
        // Banned: its counters start afresh when the ban ends.
        if let Some(c) = self.counters.remove(&src) {
            self.lru.remove(&c.lru);
        }
        let notice = BanNotice {
            source: src,
            reason: what,
            count,
            duration: self.cfg.ban_time,
        };
        self.insert_ban(now, src, what, self.cfg.ban_time);
        Some(notice)
    }

    /// Bans `ip` by hand for `duration` (the configured ban time when `None`).
    pub fn ban(
        &mut self,
        now: Instant,
        ip: IpAddr,
        duration: Option<Duration>,
    ) -> Result<BanNotice, BanError> {
        if self.is_exempt(ip) {
            return Err(BanError::Exempt(ip));
        }
        let duration = duration.unwrap_or(self.cfg.ban_time);
        let src = Source::of(ip);
        self.remove_ban(src);
        self.insert_ban(now, src, Offence::Manual, duration);
        Ok(BanNotice {
            source: src,
            reason: Offence::Manual,
            count: 0,
            duration,
        })
    }

    /// Lifts the ban on `ip`'s source; whether there was one.
    pub fn unban(&mut self, ip: IpAddr) -> bool {
        let src = Source::of(ip);
        if let Some(c) = self.counters.remove(&src) {
            self.lru.remove(&c.lru);
        }
        self.remove_ban(src)
    }

    /// The current bans, soonest to expire first.
    pub fn bans(&mut self, now: Instant) -> Vec<BanInfo> {
        self.expire(now);
        self.expiry
            .iter()
            .filter_map(|(until, s)| {
                let b = self.bans.get(s)?;
                Some(BanInfo {
                    source: s.to_string(),
                    reason: b.reason,
                    remaining_s: until.saturating_duration_since(now).as_secs_f64().ceil() as u64,
                })
            })
            .collect()
    }

    /// Sources whose counters are held (for tests and status).
    pub fn tracked(&self) -> usize {
        self.counters.len()
    }

    fn insert_ban(&mut self, now: Instant, src: Source, reason: Offence, duration: Duration) {
        while self.bans.len() >= self.cfg.max_bans.max(1) {
            let Some((_, s)) = self.expiry.pop_first() else {
                break;
            };
            self.bans.remove(&s);
        }
        let until = now + duration;
        self.bans.insert(src, Ban { until, reason });
        self.expiry.insert((until, src));
        self.banned_total += 1;
    }

    fn remove_ban(&mut self, src: Source) -> bool {
        match self.bans.remove(&src) {
            Some(b) => {
                self.expiry.remove(&(b.until, src));
                true
            }
            None => false,
        }
    }

    fn expire(&mut self, now: Instant) {
        while let Some(&(until, s)) = self.expiry.first() {
            if until > now {
                break;
            }
            self.expiry.pop_first();
            self.bans.remove(&s);
            tracing::info!(source = %s, "ban expired");
        }
    }
}

/// An IPv4-mapped IPv6 address is its IPv4 address.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn cfg() -> BanConfig {
        BanConfig {
            max_requests: 20,
            ..BanConfig::default()
        }
    }

    #[test]
    fn banned_after_the_threshold_and_free_after_the_ban_time() {
        let t0 = Instant::now();
        let mut b = BanTable::new(cfg());
        let a = ip("192.0.2.7");
        for i in 0..5 {
            assert_eq!(b.record(t0, a, Offence::UnknownUser), None, "offence {i}");
        }
        let n = b
            .record(t0, a, Offence::UnknownUser)
            .expect("sixth offence bans");
        assert_eq!(n.reason, Offence::UnknownUser);
        assert_eq!(n.count, 6);
        assert_eq!(
            n.to_string(),
            "banned 192.0.2.7 for 600 s: 6 requests for unknown users within the window"
        );
        assert!(b.is_banned(t0, a));
        assert_eq!(b.admit(t0 + Duration::from_secs(1), a), Admit::Banned);
        assert!(!b.admit_connection(t0, a));
        // Other sources are untouched.
        assert_eq!(b.admit(t0, ip("192.0.2.8")), Admit::Yes);
        let listed = b.bans(t0 + Duration::from_secs(100));
        assert_eq!(listed.len(), 1);
        assert_eq!(listed[0].remaining_s, 500);
        assert!(b.is_banned(t0 + Duration::from_secs(599), a));
        assert!(!b.is_banned(t0 + Duration::from_secs(600), a));
        assert!(b.bans(t0 + Duration::from_secs(600)).is_empty());
        // Counting starts afresh: one offence does not ban again.
        assert_eq!(
            b.record(t0 + Duration::from_secs(601), a, Offence::UnknownUser),
            None
        );
    }

    #[test]
    fn the_window_slides() {
        let t0 = Instant::now();
        let mut b = BanTable::new(cfg());
        let a = ip("198.51.100.1");
        // 5 failures per 10 s window, spread out, never ban...
        for k in 0..100u64 {
            let t = t0 + Duration::from_millis(2100 * k);
            assert_eq!(b.record(t, a, Offence::FailedAuth), None, "at {k}");
        }
        // ...but 6 within 2 s do.
        let t = t0 + Duration::from_secs(1000);
        for _ in 0..5 {
            assert_eq!(b.record(t, a, Offence::FailedAuth), None);
        }
        assert!(b
            .record(t + Duration::from_secs(2), a, Offence::FailedAuth)
            .is_some());
    }

    #[test]
    fn the_rate_bans_a_flood_but_not_a_phone() {
        let t0 = Instant::now();
        let mut b = BanTable::new(BanConfig::default());
        let phone = ip("203.0.113.5");
        // A call with every UDP retransmission, and OPTIONS each second for an hour.
        for s in 0..3600u64 {
            let t = t0 + Duration::from_secs(s);
            assert_eq!(b.admit(t, phone), Admit::Yes, "second {s}");
            if s % 60 == 0 {
                for k in 0..15 {
                    assert_eq!(
                        b.admit(t + Duration::from_millis(k * 10), phone),
                        Admit::Yes
                    );
                }
            }
        }
        // 2000 INVITEs per second from a scanner: banned at the 101st message.
        let scanner = ip("203.0.113.66");
        let mut banned_at = None;
        for k in 0..2000u64 {
            match b.admit(t0 + Duration::from_micros(500 * k), scanner) {
                Admit::Yes => {}
                Admit::NewBan(n) => {
                    assert_eq!(n.reason, Offence::Rate);
                    banned_at = Some(k);
                }
                Admit::Banned => assert!(banned_at.is_some()),
            }
        }
        assert_eq!(banned_at, Some(100));
        assert_eq!(b.dropped, 1900);
    }

    #[test]
    fn a_live_call_peer_is_not_banned_for_its_rate_but_still_for_abuse() {
        let mut b = BanTable::new(BanConfig {
            max_requests: 10,
            ..BanConfig::default()
        });
        let t = Instant::now();
        let peer = IpAddr::from([192, 0, 2, 7]);
        b.set_call_peers([peer]);
        for i in 0..1000 {
            assert_eq!(b.admit(t + Duration::from_millis(i), peer), Admit::Yes);
        }
        // Abuse still counts.
        let mut banned = None;
        for _ in 0..20 {
            banned = banned.or(b.record(t, peer, Offence::Unauthorised));
        }
        assert!(banned.is_some());
        assert_eq!(b.admit(t, peer), Admit::Banned);
        // The call over: the rate counts again.
        let other = IpAddr::from([192, 0, 2, 8]);
        b.set_call_peers([other]);
        b.set_call_peers(std::iter::empty());
        let mut n = 0;
        while b.admit(t, other) == Admit::Yes {
            n += 1;
            assert!(n <= 10, "never banned");
        }
        assert_eq!(n, 10);
    }

    #[test]
    fn the_registrar_is_never_banned() {
        let t0 = Instant::now();
        let mut b = BanTable::new(cfg());
        let reg = ip("10.1.1.1");
        b.set_exempt([reg]);
        for k in 0..10_000u64 {
            assert_eq!(b.admit(t0 + Duration::from_micros(k), reg), Admit::Yes);
            assert_eq!(b.record(t0, reg, Offence::Malformed), None);
        }
        assert_eq!(b.ban(t0, reg, None), Err(BanError::Exempt(reg)));
        // An IPv4-mapped form of the same address is the same address.
        assert_eq!(
            b.ban(t0, ip("::ffff:10.1.1.1"), None),
            Err(BanError::Exempt(ip("::ffff:10.1.1.1")))
        );
        // Becoming exempt lifts a ban.
        let other = ip("10.1.1.2");
        b.ban(t0, other, None).unwrap();
        assert!(b.is_banned(t0, other));
        b.set_exempt([reg, other]);
        assert!(!b.is_banned(t0, other));
    }

    #[test]
    fn manual_ban_and_unban() {
        let t0 = Instant::now();
        let mut b = BanTable::new(cfg());
        let a = ip("2001:db8:1:2::99");
        let n = b.ban(t0, a, Some(Duration::from_secs(30))).unwrap();
        assert_eq!(
            n.to_string(),
            "banned 2001:db8:1:2::/64 for 30 s (banned by the operator)"
        );
        // The whole /64 is banned.
        assert!(b.is_banned(t0, ip("2001:db8:1:2::1234")));
        assert!(!b.is_banned(t0, ip("2001:db8:1:3::1")));
        assert_eq!(b.bans(t0)[0].source, "2001:db8:1:2::/64");
        assert!(b.unban(ip("2001:db8:1:2::5")));
        assert!(!b.unban(a));
        assert!(!b.is_banned(t0, a));
    }

    #[test]
    fn disabled_counts_nothing() {
        let t0 = Instant::now();
        let mut b = BanTable::new(BanConfig {
            enabled: false,
            ..cfg()
        });
        for _ in 0..1000 {
            assert_eq!(b.admit(t0, ip("192.0.2.1")), Admit::Yes);
        }
        assert_eq!(b.tracked(), 0);
    }

    #[test]
    fn tables_stay_bounded_under_spoofed_floods() {
        let t0 = Instant::now();
        let mut b = BanTable::new(BanConfig {
            table_size: 100,
            max_bans: 10,
            max_malformed: 1,
            ..cfg()
        });
        for k in 0..100_000u32 {
            let a = IpAddr::from(k.to_be_bytes());
            b.record(t0, a, Offence::Malformed);
            b.record(t0, a, Offence::Malformed);
            assert!(b.tracked() <= 100);
            assert!(b.bans(t0).len() <= 10);
        }
        assert_eq!(b.banned_total, 100_000);
        // The ones kept are the latest.
        assert!(b.is_banned(t0, IpAddr::from(99_999u32.to_be_bytes())));
    }

    proptest! {
        /// Whatever happens, the tables stay within bounds, the exempt
        /// address is never banned and a ban never outlives its time.
        #[test]
        fn invariants_hold(ops in proptest::collection::vec((0u8..6, 0u8..8, 0u64..50_000), 1..400)) {
            let t0 = Instant::now();
            let mut b = BanTable::new(BanConfig {
                table_size: 5,
                max_bans: 3,
                max_requests: 4,
                max_malformed: 2,
                ban_time: Duration::from_secs(20),
                ..cfg()
            });
            let exempt = IpAddr::from([10, 0, 0, 0]);
            b.set_exempt([exempt]);
            let mut t = t0;
            for (op, who, dt) in ops {
                t += Duration::from_millis(dt);
                let a = IpAddr::from([10, 0, 0, who]);
                match op {
                    0 => { b.admit(t, a); }
                    1 => { b.record(t, a, Offence::Malformed); }
                    2 => { let _ = b.ban(t, a, Some(Duration::from_secs(5))); }
                    3 => { b.unban(a); }
                    4 => { b.record(t, a, Offence::FailedAuth); }
                    _ => { b.admit_connection(t, a); }
                }
                prop_assert!(b.tracked() <= 5);
                let bans = b.bans(t);
                prop_assert!(bans.len() <= 3);
                prop_assert!(bans.iter().all(|x| x.remaining_s <= 20));
                prop_assert!(!b.is_banned(t, exempt));
                prop_assert_eq!(b.bans.len(), b.expiry.len());
                prop_assert_eq!(b.counters.len(), b.lru.len());
            }
        }
    }
}
