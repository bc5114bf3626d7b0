//! The SIP transport (RFC 3261 18 and 26): one UDP socket, or a TCP or TLS
//! listener and its connections, turned into [`NetEvent`]s for the agent's
//! loop.
//!
//! What it guarantees on an exposed network (issue 14, transport half):
//! - **Bans first.** Every datagram and every connection is checked against
//!   the ban table ([`crate::ban`]) before anything is parsed; every
//!   message counts against its source's rate.
//! - **A flood is shed, live traffic is not.** The UDP receiver never
//!   blocks on new out-of-dialog requests: they are dropped (counted as
//!   `shed`) once the agent's queue is three quarters full, while responses,
//!   in-dialog requests (a To tag) and anything from the registrar or
//!   outbound proxy wait for room. The kernel's socket buffer therefore
//!   never fills with a backlog in front of the call's BYE.
//! - **Bounded connections.** At most `max_connections` accepted
//!   connections (TCP and TLS alike) and `max_connections_per_source` from
//!   one address; more are accepted and closed at once. Connections we open
//!   have their own budget of the same size, so a peer filling the inbound
//!   slots cannot stop us from reaching the registrar. At start the open
//!   file limit is raised to its hard limit and checked to hold both budgets
//!   plus the RTP sockets, so connections can never make an RTP bind fail
//!   with EMFILE.
//! - **Bounded time and memory per connection.** A TLS handshake has 10 s,
//!   a started message 32 s to complete, a connection with no traffic
//!   `idle_timeout` (then it is closed); the framer holds at most one
//!   64 KiB message and is linear in the bytes received; the write queue
//!   holds at most [`WRITE_QUEUE`] messages — a peer that does not read is
//!   disconnected, never buffered for.
//! - **Keep-alives (RFC 5626 4.4.1).** On connections we opened, a CRLF CRLF
//!   ping every 80-100 % of `keepalive` (default 120 s); no CRLF pong
//!   within 10 s means the flow failed: it is closed and reported
//!   ([`NetEvent::Failed`]) so the registration is refreshed over a new one.
//!   Every ping received gets its pong.
//! - **TLS** (rustls, [`crate::tls`]): connections we open verify the
//!   server's certificate against the name we meant to reach
//!   ([`SipIo::set_peer_name`]; the IP address otherwise) and log one line
//!   saying which check failed; the listener exists only with our own
//!   certificate (`[tls] cert_file`).

use crate::agent::AgentError;
use crate::ban::{Admit, BanConfig, BanInfo, BanNotice, BanTable, Offence};
use crate::sip::policy::AbuseKind;
use crate::sip::stream::{error_response, StreamFramer};
use crate::sip::ua::Input;
use crate::tls::TlsContext;
use rand::Rng;
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpSocket, UdpSocket};
use tokio::sync::mpsc;

/// How long a TCP connect may take before its transactions fail (503).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a TLS handshake may take.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a message may take to arrive once its first byte has (64*T1).
const PARTIAL_TIMEOUT: Duration = Duration::from_secs(32);
/// RFC 5626 4.4.1: a pong must come within 10 s of the ping.
const PONG_TIMEOUT: Duration = Duration::from_secs(10);
/// Messages queued for one connection's writer; a peer that lets more pile
/// up is not reading and is disconnected.
pub const WRITE_QUEUE: usize = 64;
/// File descriptors kept for everything but SIP connections (RTP/RTCP
/// sockets are counted separately): stdio, the UDP/listening sockets, the
/// control socket and its clients, ALSA, log and WAV files, tokio's epoll.
const FD_RESERVE: u64 = 64;

/// The transport of every SIP message (`[sip] transport`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum TransportKind {
    /// Datagrams.
    #[default]
    Udp,
    /// TCP connections.
    Tcp,
    /// TLS over TCP.
    Tls,
}

impl std::fmt::Display for TransportKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            TransportKind::Udp => "UDP",
            TransportKind::Tcp => "TCP",
            TransportKind::Tls => "TLS",
        })
    }
}

impl std::str::FromStr for TransportKind {
    type Err = String;
    fn from_str(s: &str) -> Result<TransportKind, String> {
        match s.to_ascii_lowercase().as_str() {
            "udp" => Ok(TransportKind::Udp),
            "tcp" => Ok(TransportKind::Tcp),
            "tls" => Ok(TransportKind::Tls),
            _ => Err(format!(
                "'{s}' is not a supported transport (udp, tcp, tls)"
            )),
        }
    }
}

/// Limits of the stream transports (`[sip]` keys).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Accepted connections at once (and, separately, connections we open).
    pub max_connections: usize,
    /// Accepted connections from one IP address.
    pub max_connections_per_source: usize,
    /// A connection with no traffic either way for this long is closed.
    pub idle_timeout: Duration,
    /// RFC 5626 keep-alive interval on connections we open (`None`: off).
    pub keepalive: Option<Duration>,
    /// How long a pong may take (RFC 5626 4.4.1: 10 s).
    pub pong_timeout: Duration,
    /// How long a message may take to arrive once its first byte has.
    pub partial_timeout: Duration,
    /// How long a TLS handshake may take.
    pub handshake_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_connections: 64,
            max_connections_per_source: 8,
            idle_timeout: Duration::from_secs(300),
            keepalive: Some(Duration::from_secs(120)),
            pong_timeout: PONG_TIMEOUT,
            partial_timeout: PARTIAL_TIMEOUT,
            handshake_timeout: HANDSHAKE_TIMEOUT,
        }
    }
}

/// Everything the transport needs at start.
#[derive(Debug, Clone)]
pub struct TransportConfig {
    /// Our SIP address.
    pub local: SocketAddr,
    /// UDP, TCP or TLS.
    pub kind: TransportKind,
    /// Stream limits.
    pub limits: Limits,
    /// The ban table's configuration.
    pub ban: BanConfig,
    /// Addresses never banned besides the registrar (`[ban] exempt`).
    pub exempt: Vec<IpAddr>,
    /// TLS configurations (with `kind == Tls`).
    pub tls: Option<TlsContext>,
    /// RTP/RTCP sockets the media path will need at most (for the fd check).
    pub media_sockets: usize,
}

/// What the network tasks tell the agent's loop.
#[derive(Debug)]
pub(crate) enum NetEvent {
    /// One SIP message from `from` (a datagram, or framed from a stream).
    Message { from: SocketAddr, data: Vec<u8> },
    /// A stream connection was accepted (and its TLS handshake done).
    Accepted(SocketAddr, Conn),
    /// A connection to this address could not be made, broke while
    /// writing, or missed its keep-alive pong.
    Failed(SocketAddr),
    /// A stream connection ended.
    Closed(SocketAddr, u64),
    /// A connection we opened ended after it was up (closed by the peer,
    /// a write error, or a missed keep-alive pong when `failed`).
    FlowLost {
        peer: SocketAddr,
        id: u64,
        failed: bool,
    },
}

/// The agent's handle on one connection: its writer queue.
#[derive(Debug, Clone)]
pub(crate) struct Conn {
    id: u64,
    tx: mpsc::Sender<Vec<u8>>,
}

/// Counters shown by `status`.
#[derive(Debug, Default)]
struct Counters {
    received: AtomicU64,
    shed: AtomicU64,
    refused_connections: AtomicU64,
    idle_closed: AtomicU64,
    tls_failures: AtomicU64,
    slow_readers: AtomicU64,
}

/// The transport part of `status`.
#[derive(Debug, Clone, serde::Serialize)]
pub struct TransportStatus {
    /// `udp`, `tcp` or `tls`.
    pub transport: TransportKind,
    /// Our SIP address.
    pub listen: SocketAddr,
    /// Whether we accept connections (TLS needs our certificate).
    pub listening: bool,
    /// What TLS server certificates are checked against.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls_trust: Option<String>,
    /// Connections accepted and open.
    pub connections_in: usize,
    /// Connections we opened and open.
    pub connections_out: usize,
    /// Messages received and handed to the SIP layer.
    pub received: u64,
    /// New requests dropped under a flood (UDP).
    pub shed: u64,
    /// Messages dropped because their source was banned.
    pub banned_drops: u64,
    /// Connections refused (banned, or over a limit).
    pub refused_connections: u64,
    /// Connections closed for idleness or a message that never completed.
    pub idle_closed: u64,
    /// TLS handshakes that failed.
    pub tls_failures: u64,
    /// Connections closed because the peer did not read what we sent.
    pub slow_readers: u64,
    /// Sources banned now.
    pub bans: Vec<BanInfo>,
    /// Bans made since start.
    pub bans_total: u64,
}

/// State shared by the network tasks and the agent.
struct Shared {
    ban: Mutex<BanTable>,
    limits: Limits,
    inbound: AtomicUsize,
    outbound: AtomicUsize,
    per_source: Mutex<HashMap<IpAddr, usize>>,
    counters: Counters,
    next_id: AtomicU64,
    exempt: Mutex<Vec<IpAddr>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding these locks leaves plain counters: keep going.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Shared {
    fn admit(&self, ip: IpAddr) -> bool {
        match lock(&self.ban).admit(Instant::now(), ip) {
            Admit::Yes => true,
            Admit::Banned => false,
            Admit::NewBan(n) => {
                log_ban(&n);
                false
            }
        }
    }

    fn is_priority_source(&self, ip: IpAddr) -> bool {
        lock(&self.exempt).contains(&ip)
    }
}

fn log_ban(n: &BanNotice) {
    tracing::warn!(source = %n.source, reason = ?n.reason, "{n}");
}

/// One slot of a connection budget, given back when dropped.
struct Slot {
    shared: Arc<Shared>,
    inbound: Option<IpAddr>,
}

impl Slot {
    /// A slot for a connection accepted from `ip`. The registrar and
    /// outbound proxy (trusted) are admitted beyond both limits, so peers
    /// holding every slot cannot cut the phone off from its registrar.
    fn inbound(shared: &Arc<Shared>, ip: IpAddr) -> Result<Slot, &'static str> {
        let trusted = shared.is_priority_source(ip);
        let mut per = lock(&shared.per_source);
        let n = per.get(&ip).copied().unwrap_or(0);
        if n >= shared.limits.max_connections_per_source && !trusted {
            return Err("too many connections from this address");
        }
        let total = shared.inbound.fetch_add(1, Ordering::SeqCst);
        if total >= shared.limits.max_connections && !trusted {
            shared.inbound.fetch_sub(1, Ordering::SeqCst);
            return Err("connection limit reached");
        }
        per.insert(ip, n + 1);
        Ok(Slot {
            shared: shared.clone(),
            inbound: Some(ip),
        })
    }

    fn outbound(shared: &Arc<Shared>) -> Option<Slot> {
        let total = shared.outbound.fetch_add(1, Ordering::SeqCst);
        if total >= shared.limits.max_connections {
            shared.outbound.fetch_sub(1, Ordering::SeqCst);
            return None;
        }
        Some(Slot {
            shared: shared.clone(),
            inbound: None,
        })
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        match self.inbound {
            Some(ip) => {
                self.shared.inbound.fetch_sub(1, Ordering::SeqCst);
                let mut per = lock(&self.shared.per_source);
                if let Some(n) = per.get_mut(&ip) {
                    *n -= 1;
                    if *n == 0 {
                        per.remove(&ip);
                    }
                }
            }
            None => {
                self.shared.outbound.fetch_sub(1, Ordering::SeqCst);
            }
        }
    }
}

/// Raises the open-file limit to its hard limit and checks it holds every
/// connection both budgets allow, the media sockets and a reserve.
fn check_fd_budget(limits: &Limits, media_sockets: usize) -> Result<u64, String> {
    use nix::sys::resource::{getrlimit, setrlimit, Resource};
    let need = 2 * limits.max_connections as u64 + media_sockets as u64 + FD_RESERVE;
    let (soft, hard) =
        getrlimit(Resource::RLIMIT_NOFILE).map_err(|e| format!("getrlimit(NOFILE): {e}"))?;
    let mut have = soft;
    if soft < need && hard > soft && setrlimit(Resource::RLIMIT_NOFILE, hard, hard).is_ok() {
        have = hard;
    }
    if have < need {
        return Err(format!(
            "the open file limit is {have}, and 2 x max_connections ({}) + {media_sockets} media sockets + {FD_RESERVE} need {need}: lower [sip] max_connections or raise the limit (ulimit -n, LimitNOFILE=)",
            limits.max_connections
        ));
    }
    Ok(have)
}

/// The SIP transport's sockets: one UDP socket, or a TCP/TLS listener and
/// the open connections, keyed by peer address (RFC 3261 18: a response
/// goes back on the connection its request came in on, which is the
/// connection keyed by the request's source).
pub(crate) struct SipIo {
    kind: TransportKind,
    local: SocketAddr,
    #[cfg_attr(not(test), allow(dead_code))]
    bound: SocketAddr,
    udp: Option<Arc<UdpSocket>>,
    listening: bool,
    conns: HashMap<SocketAddr, Conn>,
    events: mpsc::Sender<NetEvent>,
    shared: Arc<Shared>,
    tls: Option<TlsContext>,
    names: HashMap<SocketAddr, String>,
    lost_flows: Vec<SocketAddr>,
    call_peers: Vec<IpAddr>,
}

impl SipIo {
    pub(crate) async fn bind(
        cfg: TransportConfig,
        events: mpsc::Sender<NetEvent>,
    ) -> Result<SipIo, AgentError> {
        let local = cfg.local;
        let bind_err = |e| AgentError::Bind(local, e);
        if cfg.kind != TransportKind::Udp {
            check_fd_budget(&cfg.limits, cfg.media_sockets)
                .map_err(|e| bind_err(std::io::Error::other(e)))?;
        }
        let mut table = BanTable::new(cfg.ban.clone());
        table.set_exempt(cfg.exempt.iter().copied());
        let shared = Arc::new(Shared {
            ban: Mutex::new(table),
            limits: cfg.limits.clone(),
            inbound: AtomicUsize::new(0),
            outbound: AtomicUsize::new(0),
            per_source: Mutex::new(HashMap::new()),
            counters: Counters::default(),
            next_id: AtomicU64::new(1),
            exempt: Mutex::new(cfg.exempt.clone()),
        });
        let mut io = SipIo {
            kind: cfg.kind,
            local,
            bound: local,
            udp: None,
            listening: false,
            conns: HashMap::new(),
            events: events.clone(),
            shared: shared.clone(),
            tls: cfg.tls.clone(),
            names: HashMap::new(),
            lost_flows: Vec::new(),
            call_peers: Vec::new(),
        };
        match cfg.kind {
            TransportKind::Udp => {
                let sock = Arc::new(UdpSocket::bind(local).await.map_err(bind_err)?);
                io.bound = sock.local_addr().map_err(bind_err)?;
                tokio::spawn(udp_receiver(sock.clone(), events, shared));
                io.udp = Some(sock);
                io.listening = true;
            }
            TransportKind::Tcp => {
                let listener = TcpListener::bind(local).await.map_err(bind_err)?;
                io.bound = listener.local_addr().map_err(bind_err)?;
                tokio::spawn(acceptor(listener, None, events, shared));
                io.listening = true;
            }
            TransportKind::Tls => {
                match cfg.tls.as_ref().and_then(|t| t.acceptor()) {
                    Some(acc) => {
                        let listener = TcpListener::bind(local).await.map_err(bind_err)?;
                        io.bound = listener.local_addr().map_err(bind_err)?;
                        tokio::spawn(acceptor(listener, Some(acc), events, shared));
                        io.listening = true;
                    }
                    None => tracing::warn!(
                        "no [tls] cert_file: not accepting TLS connections; requests reach us only over connections we open (the registrar's)"
                    ),
                }
            }
        }
        Ok(io)
    }

    /// The address actually bound (the configured one, unless its port was 0).
    #[cfg(test)]
    pub(crate) fn bound(&self) -> SocketAddr {
        self.bound
    }

    /// The name to verify (and send as SNI) when we open a TLS connection to
    /// `addr`: the registrar's or a called URI's host.
    pub(crate) fn set_peer_name(&mut self, addr: SocketAddr, name: &str) {
        self.names.insert(addr, name.to_string());
    }

    /// Addresses never banned and always let through under a flood: the
    /// registrar and outbound proxy (plus `[ban] exempt`).
    pub(crate) fn set_trusted(&mut self, addrs: &[IpAddr]) {
        let mut all = lock(&self.shared.exempt);
        for a in addrs {
            if !all.contains(a) {
                all.push(*a);
            }
        }
        lock(&self.shared.ban).set_exempt(all.iter().copied());
    }

    /// The signalling addresses of the live calls (see
    /// [`BanTable::set_call_peers`]); a no-op when unchanged.
    pub(crate) fn set_call_peers(&mut self, ips: Vec<IpAddr>) {
        if ips != self.call_peers {
            lock(&self.shared.ban).set_call_peers(ips.iter().copied());
            self.call_peers = ips;
        }
    }

    /// Counts abuse the SIP layer reported ([`crate::sip::ua::Action::Abuse`]);
    /// logs the ban it caused.
    pub(crate) fn record_abuse(&mut self, ip: IpAddr, kind: AbuseKind) {
        self.record_offence(ip, Offence::from(kind));
    }

    /// Counts an offence (failed digest, unknown user, malformed or
    /// unauthorised request); logs the ban it caused.
    pub(crate) fn record_offence(&mut self, ip: IpAddr, what: Offence) {
        if let Some(n) = lock(&self.shared.ban).record(Instant::now(), ip, what) {
            log_ban(&n);
        }
    }

    /// `voipbridge ban ADDR [SECONDS]`.
    pub(crate) fn ban(&mut self, ip: IpAddr, secs: Option<u64>) -> Result<BanNotice, String> {
        let n = lock(&self.shared.ban)
            .ban(Instant::now(), ip, secs.map(Duration::from_secs))
            .map_err(|e| e.to_string())?;
        log_ban(&n);
        Ok(n)
    }

    /// `voipbridge unban ADDR`: whether there was a ban.
    pub(crate) fn unban(&mut self, ip: IpAddr) -> bool {
        let was = lock(&self.shared.ban).unban(ip);
        if was {
            tracing::info!(source = %ip, "unbanned by the operator");
        }
        was
    }

    /// The transport part of `status`.
    pub(crate) fn status(&self) -> TransportStatus {
        let c = &self.shared.counters;
        let mut ban = lock(&self.shared.ban);
        TransportStatus {
            transport: self.kind,
            listen: self.local,
            listening: self.listening,
            tls_trust: self.tls.as_ref().map(|t| t.trust().to_owned()),
            connections_in: self.shared.inbound.load(Ordering::Relaxed),
            connections_out: self.shared.outbound.load(Ordering::Relaxed),
            received: c.received.load(Ordering::Relaxed),
            shed: c.shed.load(Ordering::Relaxed),
            banned_drops: ban.dropped,
            refused_connections: c.refused_connections.load(Ordering::Relaxed),
            idle_closed: c.idle_closed.load(Ordering::Relaxed),
            tls_failures: c.tls_failures.load(Ordering::Relaxed),
            slow_readers: c.slow_readers.load(Ordering::Relaxed),
            bans: ban.bans(Instant::now()),
            bans_total: ban.banned_total,
        }
    }

    /// Bookkeeping of a network event; the UA input it carries, if any.
    pub(crate) fn on_event(&mut self, ev: NetEvent) -> Option<Input> {
        match ev {
            NetEvent::Message { from, data } => Some(Input::Datagram { from, data }),
            NetEvent::Accepted(peer, conn) => {
                tracing::debug!(%peer, "connection accepted");
                self.conns.insert(peer, conn);
                None
            }
            NetEvent::Closed(peer, id) => {
                // Only that connection: a newer one to the same peer may exist.
                if self.conns.get(&peer).is_some_and(|c| c.id == id) {
                    tracing::debug!(%peer, "connection closed");
                    self.conns.remove(&peer);
                }
                None
            }
            NetEvent::Failed(to) => {
                if self.conns.get(&to).is_some_and(|c| c.tx.is_closed()) {
                    self.conns.remove(&to);
                }
                Some(Input::TransportError { to })
            }
            NetEvent::FlowLost { peer, id, failed } => {
                if self.conns.get(&peer).is_some_and(|c| c.id == id) {
                    tracing::info!(%peer, failed, "connection we opened is gone");
                    self.conns.remove(&peer);
                    self.lost_flows.push(peer);
                }
                failed.then_some(Input::TransportError { to: peer })
            }
        }
    }

    /// Connections we opened that were up and are gone since the last call
    /// (RFC 5626 4.4: a UA whose flow to the registrar fails registers
    /// again over a new one).
    pub(crate) fn take_lost_flows(&mut self) -> Vec<SocketAddr> {
        std::mem::take(&mut self.lost_flows)
    }

    /// Sends one message to `to`: a datagram, or on the connection to `to`
    /// (opened when there is none). Never waits for the peer: a connection
    /// whose write queue is full is closed.
    pub(crate) async fn send(&mut self, to: SocketAddr, data: Vec<u8>) {
        trace_message("sending", to, &data);
        if let Some(sock) = &self.udp {
            if let Err(e) = sock.send_to(&data, to).await {
                tracing::warn!(%to, "SIP send failed: {e}");
            }
            return;
        }
        let data = match self.conns.get(&to) {
            Some(c) => match c.tx.try_send(data) {
                Ok(()) => return,
                Err(mpsc::error::TrySendError::Full(_)) => {
                    self.shared
                        .counters
                        .slow_readers
                        .fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(%to, "the peer does not read (write queue full): closing the connection");
                    self.conns.remove(&to);
                    let _ = self.events.try_send(NetEvent::Failed(to));
                    return;
                }
                Err(mpsc::error::TrySendError::Closed(d)) => d, // ended: open a new one
            },
            None => data,
        };
        let Some(slot) = Slot::outbound(&self.shared) else {
            tracing::warn!(%to, "no connection slot left to open one (max_connections)");
            let _ = self.events.try_send(NetEvent::Failed(to));
            return;
        };
        let (tx, rx) = mpsc::channel(WRITE_QUEUE);
        let _ = tx.try_send(data);
        let id = self.shared.next_id.fetch_add(1, Ordering::Relaxed);
        self.conns.insert(to, Conn { id, tx });
        let tls = match (&self.tls, self.kind) {
            (Some(t), TransportKind::Tls) => Some((
                t.clone(),
                self.names
                    .get(&to)
                    .cloned()
                    .unwrap_or_else(|| to.ip().to_string()),
            )),
            _ => None,
        };
        tracing::debug!(%to, tls = tls.is_some(), "opening a connection");
        tokio::spawn(connect(
            self.local.ip(),
            to,
            tls,
            id,
            rx,
            self.events.clone(),
            self.shared.clone(),
            slot,
        ));
    }
}

/// Logs a message at trace level (`RUST_LOG=voipbridge::transport=trace`),
/// with any SDES key blanked: keys never reach a log.
fn trace_message(dir: &str, peer: SocketAddr, data: &[u8]) {
    if tracing::enabled!(tracing::Level::TRACE) {
        let text = crate::srtp::sdes::redact(&String::from_utf8_lossy(data));
        tracing::trace!(%peer, "{dir} {} bytes\n{text}", data.len());
    }
}

/// Whether a datagram must get through under a flood: a response, an
/// in-dialog request (its To has a tag) or anything from the registrar.
/// Reads the header part only, without parsing the message.
pub(crate) fn is_priority(data: &[u8]) -> bool {
    if data.starts_with(b"SIP/2.0 ") {
        return true;
    }
    let head_end = data
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or(data.len());
    let head = &data[..head_end];
    head.split(|b| *b == b'\n').skip(1).any(|line| {
        let Some(colon) = line.iter().position(|b| *b == b':') else {
            return false;
        };
        let name = line[..colon].trim_ascii();
        (name.eq_ignore_ascii_case(b"to") || name.eq_ignore_ascii_case(b"t"))
            && line[colon..]
                .windows(5)
                .any(|w| w.eq_ignore_ascii_case(b";tag="))
    })
}

async fn udp_receiver(sock: Arc<UdpSocket>, events: mpsc::Sender<NetEvent>, shared: Arc<Shared>) {
    let mut buf = vec![0u8; 65536];
    // New requests are let in while a quarter of the queue is free.
    let keep_free = events.max_capacity() / 4;
    loop {
        let (n, from) = match sock.recv_from(&mut buf).await {
            Ok(x) => x,
            Err(e) => {
                tracing::debug!("SIP receive: {e}");
                continue;
            }
        };
        let data = buf.get(..n).unwrap_or_default();
        // Keep-alives (a CRLF pair, RFC 5626 for UDP is STUN; some send CRLFs).
        if data.iter().all(|b| *b == b'\r' || *b == b'\n') {
            continue;
        }
        if !shared.admit(from.ip()) {
            continue;
        }
        trace_message("received", from, data);
        let ev = NetEvent::Message {
            from,
            data: data.to_vec(),
        };
        if is_priority(data) || shared.is_priority_source(from.ip()) {
            if events.send(ev).await.is_err() {
                return;
            }
        } else if events.capacity() > keep_free {
            if let Err(mpsc::error::TrySendError::Closed(_)) = events.try_send(ev) {
                return;
            }
        } else {
            shared.counters.shed.fetch_add(1, Ordering::Relaxed);
            continue;
        }
        shared.counters.received.fetch_add(1, Ordering::Relaxed);
    }
}

async fn acceptor(
    listener: TcpListener,
    tls: Option<crate::tls::Acceptor>,
    events: mpsc::Sender<NetEvent>,
    shared: Arc<Shared>,
) {
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(x) => x,
            Err(e) => {
                // EMFILE and friends: wait for connections to close.
                tracing::warn!("accept: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        if !lock(&shared.ban).admit_connection(Instant::now(), peer.ip()) {
            shared
                .counters
                .refused_connections
                .fetch_add(1, Ordering::Relaxed);
            drop(stream);
            continue;
        }
        let slot = match Slot::inbound(&shared, peer.ip()) {
            Ok(s) => s,
            Err(why) => {
                shared
                    .counters
                    .refused_connections
                    .fetch_add(1, Ordering::Relaxed);
                tracing::debug!(%peer, "connection refused: {why}");
                drop(stream);
                continue;
            }
        };
        let id = shared.next_id.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = mpsc::channel(WRITE_QUEUE);
        let conn = Conn { id, tx };
        let events = events.clone();
        let shared = shared.clone();
        let tls = tls.clone();
        tokio::spawn(async move {
            let _ = stream.set_nodelay(true);
            match tls {
                None => {
                    // Announced before its first message can be queued behind it.
                    if events.send(NetEvent::Accepted(peer, conn)).await.is_ok() {
                        connection(stream, peer, id, rx, events, shared, slot, false).await;
                    }
                }
                #[cfg(not(feature = "tls"))]
                Some(acc) => match acc {},
                #[cfg(feature = "tls")]
                Some(acc) => {
                    let limit = shared.limits.handshake_timeout;
                    match tokio::time::timeout(limit, acc.accept(stream)).await {
                        Ok(Ok(s)) => {
                            if events.send(NetEvent::Accepted(peer, conn)).await.is_ok() {
                                connection(s, peer, id, rx, events, shared, slot, false).await;
                            }
                        }
                        Ok(Err(e)) => {
                            shared.counters.tls_failures.fetch_add(1, Ordering::Relaxed);
                            tracing::info!(%peer, "incoming TLS handshake failed: {e}");
                        }
                        Err(_) => {
                            shared.counters.tls_failures.fetch_add(1, Ordering::Relaxed);
                            tracing::info!(%peer, "incoming TLS handshake timed out");
                        }
                    }
                }
            }
        });
    }
}

#[allow(clippy::too_many_arguments)]
async fn connect(
    local_ip: IpAddr,
    to: SocketAddr,
    tls: Option<(TlsContext, String)>,
    id: u64,
    rx: mpsc::Receiver<Vec<u8>>,
    events: mpsc::Sender<NetEvent>,
    shared: Arc<Shared>,
    slot: Slot,
) {
    let tcp = async {
        let sock = if to.is_ipv4() {
            TcpSocket::new_v4()
        } else {
            TcpSocket::new_v6()
        }?;
        if local_ip.is_ipv4() == to.is_ipv4() {
            sock.bind(SocketAddr::new(local_ip, 0))?;
        }
        sock.connect(to).await
    };
    let stream = match tokio::time::timeout(CONNECT_TIMEOUT, tcp).await {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => {
            tracing::warn!(%to, "TCP connect failed: {e}");
            let _ = events.send(NetEvent::Failed(to)).await;
            return;
        }
        Err(_) => {
            tracing::warn!(%to, "TCP connect timed out");
            let _ = events.send(NetEvent::Failed(to)).await;
            return;
        }
    };
    let _ = stream.set_nodelay(true);
    match tls {
        None => connection(stream, to, id, rx, events, shared, slot, true).await,
        #[cfg(not(feature = "tls"))]
        Some((ctx, _)) => match ctx {},
        #[cfg(feature = "tls")]
        Some((ctx, name)) => {
            let sn = match crate::tls::server_name(&name) {
                Ok(n) => n,
                Err(e) => {
                    tracing::error!(%to, "{e}");
                    let _ = events.send(NetEvent::Failed(to)).await;
                    return;
                }
            };
            let conn = tokio_rustls::TlsConnector::from(ctx.client.clone());
            match tokio::time::timeout(shared.limits.handshake_timeout, conn.connect(sn, stream))
                .await
            {
                Ok(Ok(s)) => {
                    let (_, session) = s.get_ref();
                    tracing::info!(
                        %to,
                        %name,
                        version = ?session.protocol_version(),
                        cipher = ?session.negotiated_cipher_suite().map(|c| c.suite()),
                        "TLS connection established, certificate verified"
                    );
                    connection(s, to, id, rx, events, shared, slot, true).await
                }
                Ok(Err(e)) => {
                    shared.counters.tls_failures.fetch_add(1, Ordering::Relaxed);
                    tracing::error!(
                        "{}",
                        crate::tls::describe_connect_error(&e, to, &name, &ctx.trust)
                    );
                    let _ = events.send(NetEvent::Failed(to)).await;
                }
                Err(_) => {
                    shared.counters.tls_failures.fetch_add(1, Ordering::Relaxed);
                    tracing::error!(%to, %name, "TLS handshake timed out");
                    let _ = events.send(NetEvent::Failed(to)).await;
                }
            }
        }
    }
}

/// One connection (TCP or TLS): writes what the agent queues, frames what
/// arrives, answers keep-alive pings, sends them on connections we opened,
/// and closes on idleness, a stuck message, a framing error (after its
/// 400/513 when the head was a request) or a ban.
#[allow(clippy::too_many_arguments)]
async fn connection<S: AsyncRead + AsyncWrite + Send + Unpin>(
    stream: S,
    peer: SocketAddr,
    id: u64,
    mut rx: mpsc::Receiver<Vec<u8>>,
    events: mpsc::Sender<NetEvent>,
    shared: Arc<Shared>,
    slot: Slot,
    outbound: bool,
) {
    let (mut rd, mut wr) = tokio::io::split(stream);
    let mut framer = StreamFramer::default();
    let mut buf = vec![0u8; 16384];
    let mut failed = false;
    let limits = shared.limits.clone();
    let mut last_activity = tokio::time::Instant::now();
    let mut partial_since: Option<tokio::time::Instant> = None;
    let keepalive = limits.keepalive.filter(|_| outbound);
    let next_ping = |from: tokio::time::Instant| {
        keepalive.map(|k| {
            let f = rand::thread_rng().gen_range(0.8..=1.0);
            from + k.mul_f64(f)
        })
    };
    let mut ping_at = next_ping(tokio::time::Instant::now());
    let mut pong_due: Option<tokio::time::Instant> = None;
    'conn: loop {
        let idle_at = last_activity + limits.idle_timeout;
        let partial_at = partial_since.map(|t| t + limits.partial_timeout);
        let deadline = [Some(idle_at), partial_at, ping_at, pong_due]
            .into_iter()
            .flatten()
            .min()
            .unwrap_or(idle_at);
        tokio::select! {
            r = rd.read(&mut buf) => {
                let n = match r {
                    Ok(0) => break,
                    Ok(n) => n,
                    Err(e) => {
                        match crate::tls::describe_alert(&e) {
                            Some(why) => tracing::warn!(%peer, "TLS connection ended by the peer: {why}"),
                            None => tracing::debug!(%peer, "read: {e}"),
                        }
                        break;
                    }
                };
                last_activity = tokio::time::Instant::now();
                framer.push(buf.get(..n).unwrap_or_default());
                while let Some(m) = framer.next_message() {
                    match m {
                        Ok(data) => {
                            if !shared.admit(peer.ip()) {
                                tracing::info!(%peer, "source banned: closing the connection");
                                break 'conn;
                            }
                            shared.counters.received.fetch_add(1, Ordering::Relaxed);
                            trace_message("received", peer, &data);
                            if events.send(NetEvent::Message { from: peer, data }).await.is_err() {
                                break 'conn;
                            }
                        }
                        Err(e) => {
                            tracing::warn!(%peer, "SIP framing error: {e}; closing the connection");
                            let ban = lock(&shared.ban).record(Instant::now(), peer.ip(), Offence::Malformed);
                            if let Some(n) = ban {
                                log_ban(&n);
                            }
                            if let Some(resp) = error_response(&e) {
                                let _ = wr.write_all(&resp).await;
                            }
                            break 'conn;
                        }
                    }
                }
                for _ in 0..framer.take_pings() {
                    if wr.write_all(b"\r\n").await.is_err() {
                        break 'conn;
                    }
                }
                if framer.take_crlf_seen() && pong_due.take().is_some() {
                    tracing::trace!(%peer, "keep-alive pong");
                    ping_at = next_ping(tokio::time::Instant::now());
                }
                partial_since = match (framer.pending() > 0, partial_since) {
                    (true, None) => Some(last_activity),
                    (true, p) => p,
                    (false, _) => None,
                };
            }
            m = rx.recv() => match m {
                Some(data) => {
                    if let Err(e) = wr.write_all(&data).await {
                        tracing::warn!(%peer, "write: {e}");
                        failed = true;
                        break;
                    }
                    let _ = wr.flush().await;
                    last_activity = tokio::time::Instant::now();
                }
                None => break,
            },
            _ = tokio::time::sleep_until(deadline) => {
                let now = tokio::time::Instant::now();
                if pong_due.is_some_and(|t| now >= t) {
                    tracing::warn!(%peer, "no keep-alive pong within {} s: the flow failed (RFC 5626 4.4.1)", limits.pong_timeout.as_secs_f32());
                    failed = true;
                    break;
                }
                if ping_at.is_some_and(|t| now >= t) {
                    if wr.write_all(b"\r\n\r\n").await.is_err() {
                        failed = true;
                        break;
                    }
                    let _ = wr.flush().await;
                    ping_at = None;
                    pong_due = Some(now + limits.pong_timeout);
                    continue;
                }
                if partial_at.is_some_and(|t| now >= t) {
                    tracing::info!(%peer, "a message did not complete within {} s: closing", limits.partial_timeout.as_secs());
                    shared.counters.idle_closed.fetch_add(1, Ordering::Relaxed);
                    break;
                }
                if now >= idle_at {
                    tracing::debug!(%peer, "idle for {} s: closing", limits.idle_timeout.as_secs());
                    shared.counters.idle_closed.fetch_add(1, Ordering::Relaxed);
                    break;
                }
            }
        }
    }
    let _ = tokio::time::timeout(Duration::from_secs(1), wr.shutdown()).await;
    rx.close();
    drop(rx);
    drop(slot);
    let ev = if outbound {
        NetEvent::FlowLost { peer, id, failed }
    } else if failed {
        NetEvent::Failed(peer)
    } else {
        NetEvent::Closed(peer, id)
    };
    let _ = events.send(ev).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn priority_is_responses_and_in_dialog_requests() {
        assert!(is_priority(b"SIP/2.0 200 OK\r\nVia: x\r\n\r\n"));
        assert!(is_priority(
            b"BYE sip:a@b SIP/2.0\r\nFrom: <sip:x@y>;tag=1\r\nTo: <sip:a@b>;tag=99\r\n\r\n"
        ));
        assert!(is_priority(
            b"BYE sip:a@b SIP/2.0\r\nt: <sip:a@b>;TAG=9\r\n\r\n"
        ));
        assert!(!is_priority(
            b"INVITE sip:a@b SIP/2.0\r\nFrom: <sip:x@y>;tag=1\r\nTo: <sip:a@b>\r\n\r\nv=0 To: x;tag=1"
        ));
        assert!(!is_priority(b"OPTIONS sip:a@b SIP/2.0\r\n\r\n"));
        assert!(!is_priority(b""));
    }

    #[test]
    fn transport_names() {
        assert_eq!("TLS".parse::<TransportKind>(), Ok(TransportKind::Tls));
        assert_eq!("udp".parse::<TransportKind>(), Ok(TransportKind::Udp));
        assert!("sctp"
            .parse::<TransportKind>()
            .unwrap_err()
            .contains("udp, tcp, tls"));
    }

    #[test]
    fn the_fd_budget_is_checked() {
        let l = Limits {
            max_connections: 1 << 40,
            ..Limits::default()
        };
        let e = check_fd_budget(&l, 16).unwrap_err();
        assert!(e.contains("lower [sip] max_connections"), "{e}");
        assert!(check_fd_budget(&Limits::default(), 16).unwrap() >= 2 * 64 + 16 + FD_RESERVE);
    }

    /// A transport on an ephemeral loopback port; the agent's event channel.
    async fn open(
        kind: TransportKind,
        limits: Limits,
        ban: BanConfig,
        queue: usize,
    ) -> (SipIo, mpsc::Receiver<NetEvent>) {
        let (tx, rx) = mpsc::channel(queue);
        let cfg = TransportConfig {
            local: "127.0.0.1:0".parse().unwrap(),
            kind,
            limits,
            ban,
            exempt: Vec::new(),
            tls: None,
            media_sockets: 4,
        };
        (SipIo::bind(cfg, tx).await.unwrap(), rx)
    }

    async fn connect_from(src: &str, to: SocketAddr) -> tokio::net::TcpStream {
        let s = TcpSocket::new_v4().unwrap();
        s.bind(format!("{src}:0").parse().unwrap()).unwrap();
        s.connect(to).await.unwrap()
    }

    /// Whether the peer closed `s` within `within` (reads to EOF, discarding).
    async fn closed_within(s: &mut tokio::net::TcpStream, within: Duration) -> bool {
        let mut b = [0u8; 256];
        tokio::time::timeout(within, async {
            loop {
                match s.read(&mut b).await {
                    Ok(0) | Err(_) => return,
                    Ok(_) => {}
                }
            }
        })
        .await
        .is_ok()
    }

    /// Drains the agent's channel, feeding the transport's bookkeeping.
    fn pump(io: &mut SipIo, rx: &mut mpsc::Receiver<NetEvent>) -> Vec<Input> {
        let mut out = Vec::new();
        while let Ok(ev) = rx.try_recv() {
            if let Some(i) = io.on_event(ev) {
                out.push(i);
            }
        }
        out
    }

    const OPTIONS: &[u8] = b"OPTIONS sip:x@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/TCP 127.0.0.1:9;branch=z9hG4bK1\r\nFrom: <sip:a@b>;tag=1\r\nTo: <sip:x@127.0.0.1>\r\nCall-ID: c1\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n";

    #[tokio::test]
    async fn connection_limits_per_source_and_in_all() {
        let limits = Limits {
            max_connections: 3,
            max_connections_per_source: 2,
            ..Limits::default()
        };
        let (mut io, mut rx) = open(TransportKind::Tcp, limits, BanConfig::default(), 64).await;
        let addr = io.bound();
        let mut a1 = connect_from("127.0.0.1", addr).await;
        let mut a2 = connect_from("127.0.0.1", addr).await;
        let mut a3 = connect_from("127.0.0.1", addr).await;
        assert!(
            closed_within(&mut a3, Duration::from_secs(2)).await,
            "third from one source refused"
        );
        let mut b1 = connect_from("127.0.0.2", addr).await;
        let mut c1 = connect_from("127.0.0.3", addr).await;
        assert!(
            closed_within(&mut c1, Duration::from_secs(2)).await,
            "fourth in all refused"
        );
        for s in [&mut a1, &mut a2, &mut b1] {
            assert!(
                !closed_within(s, Duration::from_millis(200)).await,
                "admitted ones stay open"
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        pump(&mut io, &mut rx);
        let st = io.status();
        assert_eq!((st.connections_in, st.refused_connections), (3, 2));
        // The registrar gets in beyond both limits.
        io.set_trusted(&["127.0.0.9".parse().unwrap()]);
        let mut reg = Vec::new();
        for _ in 0..3 {
            let mut r = connect_from("127.0.0.9", addr).await;
            r.write_all(OPTIONS).await.unwrap();
            reg.push(r);
        }
        for r in &mut reg {
            assert!(
                !closed_within(r, Duration::from_millis(200)).await,
                "the registrar is admitted"
            );
        }
        drop(reg);
        tokio::time::sleep(Duration::from_millis(200)).await;
        pump(&mut io, &mut rx);
        // A slot freed is a slot reusable.
        drop(a1);
        tokio::time::sleep(Duration::from_millis(200)).await;
        let mut c2 = connect_from("127.0.0.3", addr).await;
        c2.write_all(OPTIONS).await.unwrap();
        assert!(!closed_within(&mut c2, Duration::from_millis(300)).await);
        tokio::time::sleep(Duration::from_millis(100)).await;
        let got = pump(&mut io, &mut rx);
        assert!(got.iter().any(
            |i| matches!(i, Input::Datagram { from, .. } if from.ip().to_string() == "127.0.0.3")
        ));
    }

    #[tokio::test]
    async fn idle_and_stuck_connections_are_closed() {
        let limits = Limits {
            idle_timeout: Duration::from_millis(800),
            partial_timeout: Duration::from_millis(800),
            ..Limits::default()
        };
        let (mut io, mut rx) = open(TransportKind::Tcp, limits, BanConfig::default(), 64).await;
        let addr = io.bound();
        let mut idle = connect_from("127.0.0.1", addr).await;
        let mut busy = connect_from("127.0.0.1", addr).await;
        let mut stuck = connect_from("127.0.0.1", addr).await;
        // Half a message, then a byte every 300 ms: never completes.
        stuck.write_all(&OPTIONS[..40]).await.unwrap();
        let t0 = Instant::now();
        let mut closed_idle = None;
        let mut closed_stuck = None;
        while t0.elapsed() < Duration::from_millis(2500) {
            busy.write_all(b"\r\n").await.unwrap();
            let _ = stuck.write_all(b"x").await;
            if closed_idle.is_none() && closed_within(&mut idle, Duration::from_millis(1)).await {
                closed_idle = Some(t0.elapsed());
            }
            if closed_stuck.is_none() && closed_within(&mut stuck, Duration::from_millis(1)).await {
                closed_stuck = Some(t0.elapsed());
            }
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
        let (i, s) = (
            closed_idle.expect("idle closed"),
            closed_stuck.expect("stuck closed"),
        );
        assert!(
            i >= Duration::from_millis(700) && i < Duration::from_millis(2000),
            "idle closed after {i:?}"
        );
        assert!(
            s >= Duration::from_millis(700) && s < Duration::from_millis(2000),
            "stuck closed after {s:?}"
        );
        assert!(
            !closed_within(&mut busy, Duration::from_millis(1)).await,
            "traffic keeps a connection"
        );
        pump(&mut io, &mut rx);
        assert_eq!(io.status().idle_closed, 2);
    }

    /// A server for our outbound connection: counts pings, answers them
    /// with pongs when `pong`.
    async fn ping_server(pong: bool) -> (SocketAddr, Arc<AtomicUsize>) {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        let pings = Arc::new(AtomicUsize::new(0));
        let p = pings.clone();
        tokio::spawn(async move {
            let (mut s, _) = l.accept().await.unwrap();
            let mut f = StreamFramer::default();
            let mut b = [0u8; 4096];
            while let Ok(n) = s.read(&mut b).await {
                if n == 0 {
                    break;
                }
                f.push(&b[..n]);
                while let Some(Ok(_)) = f.next_message() {}
                let k = f.take_pings();
                p.fetch_add(k, Ordering::SeqCst);
                if pong {
                    for _ in 0..k {
                        let _ = s.write_all(b"\r\n").await;
                    }
                }
            }
        });
        (addr, pings)
    }

    #[tokio::test]
    async fn keepalives_on_our_flows_and_a_missing_pong() {
        let limits = Limits {
            keepalive: Some(Duration::from_millis(400)),
            pong_timeout: Duration::from_millis(400),
            ..Limits::default()
        };
        let (mut io, mut rx) =
            open(TransportKind::Tcp, limits.clone(), BanConfig::default(), 64).await;
        let (good, good_pings) = ping_server(true).await;
        let (mute, mute_pings) = ping_server(false).await;
        io.send(good, OPTIONS.to_vec()).await;
        io.send(mute, OPTIONS.to_vec()).await;
        let t0 = Instant::now();
        let mut failed = Vec::new();
        while t0.elapsed() < Duration::from_millis(2500) {
            if let Ok(Some(ev)) = tokio::time::timeout(Duration::from_millis(100), rx.recv()).await
            {
                if let Some(Input::TransportError { to }) = io.on_event(ev) {
                    failed.push((to, t0.elapsed()));
                }
            }
        }
        assert!(
            good_pings.load(Ordering::SeqCst) >= 3,
            "pings every 320-400 ms"
        );
        assert_eq!(
            mute_pings.load(Ordering::SeqCst),
            1,
            "one ping, then the flow failed"
        );
        assert_eq!(failed.len(), 1, "{failed:?}");
        assert_eq!(failed[0].0, mute);
        assert_eq!(
            io.take_lost_flows(),
            vec![mute],
            "reported for re-registration"
        );
        assert!(
            failed[0].1 >= Duration::from_millis(700) && failed[0].1 < Duration::from_millis(1500),
            "{failed:?}"
        );
        // Without keep-alives nothing is sent but the message.
        let (mut io2, _rx2) = open(
            TransportKind::Tcp,
            Limits {
                keepalive: None,
                ..limits
            },
            BanConfig::default(),
            64,
        )
        .await;
        let (quiet, quiet_pings) = ping_server(false).await;
        io2.send(quiet, OPTIONS.to_vec()).await;
        tokio::time::sleep(Duration::from_millis(1000)).await;
        assert_eq!(quiet_pings.load(Ordering::SeqCst), 0);
    }

    #[tokio::test]
    async fn a_peer_that_does_not_read_is_disconnected() {
        let (mut io, mut rx) = open(
            TransportKind::Tcp,
            Limits::default(),
            BanConfig::default(),
            64,
        )
        .await;
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        let held = tokio::spawn(async move { l.accept().await.map(|(s, _)| s) });
        let big = vec![b'x'; 60_000];
        let mut sent = 0;
        while io.status().slow_readers == 0 && sent < 2000 {
            io.send(addr, big.clone()).await;
            sent += 1;
            tokio::task::yield_now().await;
        }
        assert_eq!(io.status().slow_readers, 1, "after {sent} messages");
        assert!(
            sent > WRITE_QUEUE,
            "the queue holds {WRITE_QUEUE} before giving up"
        );
        let got = pump(&mut io, &mut rx);
        assert!(got
            .iter()
            .any(|i| matches!(i, Input::TransportError { to } if *to == addr)));
        drop(held);
    }

    #[tokio::test]
    async fn bans_are_enforced_on_datagrams_and_connections() {
        let ban = BanConfig {
            max_requests: 5,
            ..BanConfig::default()
        };
        // UDP: the sixth message bans the source; the rest are dropped unread.
        let (mut io, mut rx) = open(TransportKind::Udp, Limits::default(), ban.clone(), 64).await;
        let addr = io.bound();
        let peer = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        for _ in 0..20 {
            peer.send_to(OPTIONS, addr).await.unwrap();
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert_eq!(pump(&mut io, &mut rx).len(), 5);
        let st = io.status();
        assert_eq!(
            (st.banned_drops, st.bans.len(), st.bans[0].source.as_str()),
            (15, 1, "127.0.0.1")
        );
        assert!(io.unban("127.0.0.1".parse().unwrap()));
        peer.send_to(OPTIONS, addr).await.unwrap();
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert_eq!(pump(&mut io, &mut rx).len(), 1, "unbanned: heard again");
        // TCP: a banned source's connections are refused, others are not.
        let (mut io, mut rx) = open(TransportKind::Tcp, Limits::default(), ban, 64).await;
        let addr = io.bound();
        io.ban("127.0.0.5".parse().unwrap(), Some(60)).unwrap();
        let mut s = connect_from("127.0.0.5", addr).await;
        assert!(closed_within(&mut s, Duration::from_secs(2)).await);
        let mut ok = connect_from("127.0.0.6", addr).await;
        ok.write_all(OPTIONS).await.unwrap();
        assert!(!closed_within(&mut ok, Duration::from_millis(200)).await);
        pump(&mut io, &mut rx);
        assert_eq!(io.status().refused_connections, 1);
        // A flood on an open connection bans and closes it.
        for _ in 0..10 {
            let _ = ok.write_all(OPTIONS).await;
        }
        assert!(closed_within(&mut ok, Duration::from_secs(2)).await);
        assert_eq!(
            io.ban("127.0.0.6".parse().unwrap(), None).map(|_| ()),
            Ok(())
        );
        // The registrar is never banned.
        io.set_trusted(&["127.0.0.9".parse().unwrap()]);
        assert!(io.ban("127.0.0.9".parse().unwrap(), None).is_err());
    }

    #[tokio::test]
    async fn a_udp_flood_is_shed_but_responses_and_dialogs_get_through() {
        // The agent is stuck (nobody drains the queue of 16): new requests
        // beyond three quarters of it are dropped, a response and an
        // in-dialog BYE still wait for room and arrive.
        let ban = BanConfig {
            enabled: false,
            ..BanConfig::default()
        };
        let (mut io, mut rx) = open(TransportKind::Udp, Limits::default(), ban, 16).await;
        let addr = io.bound();
        let peer = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        for _ in 0..200 {
            peer.send_to(OPTIONS, addr).await.unwrap();
        }
        let bye = b"BYE sip:x@127.0.0.1 SIP/2.0\r\nTo: <sip:x@127.0.0.1>;tag=77\r\n\r\n";
        peer.send_to(bye, addr).await.unwrap();
        peer.send_to(b"SIP/2.0 200 OK\r\n\r\n", addr).await.unwrap();
        tokio::time::sleep(Duration::from_millis(300)).await;
        let mut got = Vec::new();
        for _ in 0..50 {
            got.extend(pump(&mut io, &mut rx));
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let datas: Vec<&[u8]> = got
            .iter()
            .filter_map(|i| match i {
                Input::Datagram { data, .. } => Some(data.as_slice()),
                _ => None,
            })
            .collect();
        assert!(
            datas.iter().any(|d| d.starts_with(b"BYE")),
            "the in-dialog BYE got through"
        );
        assert!(
            datas.iter().any(|d| d.starts_with(b"SIP/2.0 200")),
            "the response got through"
        );
        let st = io.status();
        assert!(st.shed >= 150, "shed {}", st.shed);
        assert_eq!(st.received as usize, datas.len());
    }

    #[tokio::test]
    #[cfg(feature = "tls")]
    async fn tls_connections_count_against_the_limits() {
        // A TLS listener: connections that never finish their handshake
        // hold a slot only until the handshake timeout, and count against
        // the per-source limit like any other; a real handshake is served.
        let dir = std::env::temp_dir().join(format!("vb-tls-limits-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = rcgen::CertificateParams::new(vec!["127.0.0.1".to_string()])
            .unwrap()
            .self_signed(&key)
            .unwrap();
        let (cf, kf) = (dir.join("c.pem"), dir.join("k.pem"));
        std::fs::write(&cf, cert.pem()).unwrap();
        std::fs::write(&kf, key.serialize_pem()).unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&kf, std::fs::Permissions::from_mode(0o600)).unwrap();
        let tls = crate::tls::TlsContext::new(&crate::tls::TlsSettings {
            ca_file: Some(cf.clone()),
            cert_file: Some(cf),
            key_file: Some(kf),
            ..Default::default()
        })
        .unwrap();
        let (tx, mut rx) = mpsc::channel(64);
        let cfg = TransportConfig {
            local: "127.0.0.1:0".parse().unwrap(),
            kind: TransportKind::Tls,
            limits: Limits {
                max_connections_per_source: 2,
                handshake_timeout: Duration::from_millis(600),
                ..Limits::default()
            },
            ban: BanConfig::default(),
            exempt: Vec::new(),
            tls: Some(tls.clone()),
            media_sockets: 4,
        };
        let mut io = SipIo::bind(cfg, tx).await.unwrap();
        let addr = io.bound();
        let mut stall1 = connect_from("127.0.0.1", addr).await;
        let mut stall2 = connect_from("127.0.0.1", addr).await;
        let mut third = connect_from("127.0.0.1", addr).await;
        assert!(
            closed_within(&mut third, Duration::from_millis(400)).await,
            "over the per-source limit"
        );
        let t0 = Instant::now();
        assert!(closed_within(&mut stall1, Duration::from_secs(3)).await);
        assert!(closed_within(&mut stall2, Duration::from_secs(3)).await);
        let t = t0.elapsed();
        assert!(
            t >= Duration::from_millis(300) && t < Duration::from_millis(2000),
            "handshake timeout after {t:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert_eq!(io.status().tls_failures, 2);
        // The slots are free again: a real TLS client is served.
        let tcp = connect_from("127.0.0.1", addr).await;
        let c = tokio_rustls::TlsConnector::from(tls.client.clone());
        let mut t = c
            .connect(crate::tls::server_name("127.0.0.1").unwrap(), tcp)
            .await
            .unwrap();
        t.write_all(OPTIONS).await.unwrap();
        let n = tokio::time::timeout(Duration::from_secs(2), async {
            loop {
                if let Some(ev) = rx.recv().await {
                    if let Some(Input::Datagram { data, .. }) = io.on_event(ev) {
                        return data.len();
                    }
                }
            }
        })
        .await
        .unwrap();
        assert_eq!(n, OPTIONS.len());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
