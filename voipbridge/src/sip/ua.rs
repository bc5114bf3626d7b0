//! The user agent: a thin router over the RFC 3261 layers, as a sans-IO
//! state machine.
//!
//! [`Ua::handle`] takes an [`Input`] (a message, a command, a lookup or
//! media result, or just the passage of time) with the current `Instant`
//! and returns [`Action`]s (send this message, start or stop a call's
//! media, look up a host name, report an event or abuse). The tokio layer
//! (`crate::agent`) owns the sockets, the clock and every slow operation;
//! tests drive the core with virtual time.
//!
//! | layer | module | RFC |
//! |-------|--------|-----|
//! | messages | [`super::message`] | 3261 7, 20 |
//! | transactions | [`super::transaction`] | 3261 17, 6026 |
//! | dialogs | [`super::dialog`] | 3261 12, 14 |
//! | registration | [`super::registration`] | 3261 10, 22; 7616, 8760 |
//! | INVITE sessions | [`super::session`], [`super::offer_answer`] | 3261 13-15, 3264, 3326 |
//! | answer policy | [`super::policy`] | — (issue 14) |
//!
//! This module routes: a message is parsed, matched to a transaction, and
//! a new request goes to the layer its method and To tag name (a new INVITE
//! first through the policy); a response goes to the owner of its client
//! transaction. Out-of-dialog requests we answer ourselves (OPTIONS, 405
//! for known methods we do not serve, 501 for unknown ones, 420, 416).
//!
//! Every random value — tags, branches, Call-IDs, cnonces, SDP session ids
//! and the RFC 3261 14.1 retry windows — comes from one seeded RNG
//! ([`Ua::with_seed`]), so a test run can be replayed exactly.

use super::message::{salvage_request, Builder, Message, ParseError};
use super::policy::{AbuseKind, Accept, AnswerPolicy, Decision};
use super::registration::Registration;
use super::session::Calls;
use super::transaction::{Outbox, Transactions, TxConfig, TxEvent, TxId, TxStats};
use super::uri::{fmt_addr, ServerUri};
use crate::media::{Codec, Direction, MediaEvent};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::Serialize;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

pub use super::offer_answer::MediaCrypto;
pub use super::session::{CallInfo, CallState};
pub use super::uri::{uri_addr, uri_host_port};

/// Methods we implement (Allow header).
pub const ALLOW: &str = "INVITE, ACK, BYE, CANCEL, OPTIONS, INFO";
/// Methods we know but do not serve: 405 with Allow (RFC 3261 8.2.1);
/// anything else is unknown: 501.
const KNOWN_UNSUPPORTED: [&str; 8] = [
    "REGISTER",
    "PRACK",
    "SUBSCRIBE",
    "NOTIFY",
    "PUBLISH",
    "REFER",
    "MESSAGE",
    "UPDATE",
];
pub(crate) const USER_AGENT: &str = concat!("voipbridge/", env!("CARGO_PKG_VERSION"));

/// Configuration of the core.
#[derive(Debug, Clone)]
pub struct UaConfig {
    /// Our address of record, e.g. `sip:bridge@127.0.0.1`.
    pub aor: String,
    /// Registrar; `None`: no REGISTER. Without an outbound proxy, calls go
    /// through it too (as before `outbound_proxy` existed).
    pub registrar: Option<ServerUri>,
    /// Outbound proxy: every out-of-dialog request goes there, with a
    /// `Route: <proxy;lr>` (RFC 3261 8.1.2).
    pub outbound_proxy: Option<ServerUri>,
    /// Digest user name.
    pub username: String,
    /// Digest password.
    pub password: String,
    /// Our SIP address (Via, Contact).
    pub local: SocketAddr,
    /// Registration lifetime asked for.
    pub expires: u32,
    /// Codecs in preference order.
    pub codecs: Vec<Codec>,
    /// Packet time.
    pub ptime: u32,
    /// Answer admitted calls after this delay; `None`: wait for `answer`.
    pub auto_answer: Option<Duration>,
    /// How long an incoming call may ring before it is given up (480);
    /// outgoing calls ring at least 3 min (RFC 3261 timer C), then CANCEL.
    pub ring_timeout: Duration,
    /// Who may call (see [`super::policy`]).
    pub accept: Accept,
    /// Callers admitted by their From URI, `user@host` (normalised).
    pub allow_from: Vec<String>,
    /// Refuse unauthorised INVITEs by silence instead of 403.
    pub stealth: bool,
    /// `[media] latch`: RTP may latch to the first packet's source, for
    /// calls the registrar / outbound proxy routed.
    pub latch: bool,
    /// First RTP port; slot n uses `rtp_base + 2n`.
    pub rtp_base: u16,
    /// Simultaneous calls (card substreams).
    pub slots: usize,
    /// RFC 3261 T1.
    pub t1: Duration,
    /// RFC 3261 T2.
    pub t2: Duration,
    /// RFC 3261 T4.
    pub t4: Duration,
    /// Transport of every message we send and receive.
    pub transport: Transport,
    /// Most server transactions kept (beyond: stateless answers).
    pub max_transactions: usize,
    /// `[media] srtp`: off, optional or mandatory SRTP (SDES keys).
    pub srtp: crate::srtp::sdes::SrtpMode,
    /// Whether SDES keys may be sent and taken: TLS signalling, or
    /// `[media] srtp_over_udp`. Without it every call is plain RTP.
    pub sdes_allowed: bool,
}

impl UaConfig {
    /// A configuration with the defaults of the config file for `aor` on `local`.
    pub fn new(aor: &str, local: SocketAddr) -> UaConfig {
        UaConfig {
            aor: aor.to_string(),
            registrar: None,
            outbound_proxy: None,
            username: super::message::uri_user(aor).unwrap_or_else(|| "voipbridge".into()),
            password: String::new(),
            local,
            expires: 3600,
            codecs: vec![Codec::Pcmu, Codec::Pcma],
            ptime: 20,
            auto_answer: Some(Duration::ZERO),
            ring_timeout: Duration::from_secs(60),
            srtp: crate::srtp::sdes::SrtpMode::Off,
            sdes_allowed: false,
            accept: Accept::Trusted,
            allow_from: Vec::new(),
            stealth: false,
            latch: false,
            rtp_base: 40000,
            slots: 1,
            t1: Duration::from_millis(500),
            t2: Duration::from_secs(4),
            t4: Duration::from_secs(5),
            transport: Transport::Udp,
            max_transactions: 2048,
        }
    }

    /// The user part of our address of record.
    pub fn user(&self) -> String {
        super::message::uri_user(&self.aor).unwrap_or_else(|| "voipbridge".into())
    }

    /// The host part of our address of record.
    pub fn domain(&self) -> String {
        let s = self
            .aor
            .trim_start_matches("sips:")
            .trim_start_matches("sip:");
        let s = s.rsplit('@').next().unwrap_or(s);
        s.split(';').next().unwrap_or("").to_string()
    }
}

/// SIP transport (RFC 3261 section 18).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Transport {
    /// Datagrams; requests and responses are retransmitted by the transactions.
    #[default]
    Udp,
    /// A byte stream framed by Content-Length; reliable, so no retransmissions
    /// (timers A, E, G are not started; B and F still bound a transaction).
    Tcp,
    /// TCP under TLS (RFC 3261 26): reliable like TCP; Via `SIP/2.0/TLS`,
    /// Contact `;transport=tls`.
    Tls,
}

impl Transport {
    /// The Via transport token: `UDP`, `TCP`, `TLS`.
    pub fn via_token(self) -> &'static str {
        match self {
            Transport::Udp => "UDP",
            Transport::Tcp => "TCP",
            Transport::Tls => "TLS",
        }
    }

    /// Whether the transport delivers reliably (RFC 3261 17: no retransmissions).
    pub fn is_reliable(self) -> bool {
        self != Transport::Udp
    }
}

impl std::str::FromStr for Transport {
    type Err = String;
    fn from_str(s: &str) -> Result<Transport, String> {
        match s.to_ascii_lowercase().as_str() {
            "udp" => Ok(Transport::Udp),
            "tcp" => Ok(Transport::Tcp),
            "tls" => Ok(Transport::Tls),
            _ => Err(format!(
                "'{s}' is not a supported transport (udp, tcp, tls)"
            )),
        }
    }
}

/// A host name the I/O layer is asked to resolve.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Lookup {
    /// The registrar's host.
    Registrar,
    /// The outbound proxy's host.
    OutboundProxy,
    /// The host of a call's target URI (no proxy configured).
    Call(String),
}

/// What the core is given.
#[derive(Debug, Clone)]
pub enum Input {
    /// A message arrived: a UDP datagram, or one message framed from a
    /// stream (`from` is then the connection's peer, where responses go back).
    Datagram {
        /// Source.
        from: SocketAddr,
        /// Bytes.
        data: Vec<u8>,
    },
    /// Time passed (timers).
    Tick,
    /// Nothing can be sent to this address (a stream transport could not
    /// connect, or the connection broke): its client transactions fail at
    /// once as if answered 503 (RFC 3261 8.1.3.1).
    TransportError {
        /// The unreachable destination.
        to: SocketAddr,
    },
    /// A user command.
    Command(Command),
    /// The answer to an [`Action::Resolve`].
    Resolved {
        /// What was looked up.
        lookup: Lookup,
        /// The address, or why there is none.
        result: Result<SocketAddr, String>,
    },
    /// The media of a call started (its socket is bound, its devices open), or failed to.
    MediaStarted {
        /// Call-ID.
        call_id: String,
        /// Why it failed.
        result: Result<(), String>,
    },
    /// The media of a call stopped: its substream is free again.
    MediaStopped {
        /// Call-ID.
        call_id: String,
    },
    /// An event of a call's media (RTP timeout, device error, DTMF).
    Media {
        /// Call-ID.
        call_id: String,
        /// The event.
        event: MediaEvent,
    },
}

/// User commands (from the control socket).
#[derive(Debug, Clone, PartialEq)]
pub enum Command {
    /// Start registering.
    Register,
    /// Call a SIP URI (host names are resolved through [`Action::Resolve`]).
    Call(String),
    /// Call a SIP URI whose host was resolved already: send the INVITE to
    /// `dest` (unless an outbound proxy or registrar is configured).
    CallAt(String, SocketAddr),
    /// Answer a ringing call (the oldest when `None`).
    Answer(Option<String>),
    /// Hang up a call (every call when `None`).
    Hangup(Option<String>),
    /// Put a call on hold or resume it.
    Hold(Option<String>, bool),
    /// Un-register and hang up everything.
    Shutdown,
}

/// Media a call needs started.
#[derive(Debug, Clone, PartialEq)]
pub struct MediaOffer {
    /// Card substream / slot.
    pub slot: usize,
    /// Our RTP port.
    pub local_port: u16,
    /// Peer RTP address (the SDP's).
    pub remote: SocketAddr,
    /// Codec.
    pub codec: Codec,
    /// Payload type.
    pub payload_type: u8,
    /// Packet time.
    pub ptime: u32,
    /// telephone-event payload type.
    pub telephone_event: Option<u8>,
    /// Our direction.
    pub direction: Direction,
    /// Latch to the first packet's source (`[media] latch` and a peer the
    /// registrar / outbound proxy vouches for); otherwise only the SDP's address.
    pub latch: bool,
    /// SRTP suite and keys (RFC 4568 SDES); `None`: plain RTP.
    pub crypto: Option<MediaCrypto>,
}

/// What the core asks the I/O layer to do.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// Send a message.
    Send {
        /// Destination.
        to: SocketAddr,
        /// Bytes.
        data: Vec<u8>,
    },
    /// Start a call's media; answer with [`Input::MediaStarted`].
    StartMedia(String, MediaOffer),
    /// Change a call's media (re-INVITE): remote address and direction.
    UpdateMedia(String, SocketAddr, Direction),
    /// Stop a call's media; answer with [`Input::MediaStopped`].
    StopMedia(String),
    /// Resolve a host name (A/AAAA); answer with [`Input::Resolved`].
    Resolve {
        /// What it is for.
        lookup: Lookup,
        /// Host name.
        host: String,
        /// Port.
        port: u16,
    },
    /// A source misbehaved (for the ban table). Never reported for the
    /// registrar or outbound proxy.
    Abuse {
        /// The source address.
        source: SocketAddr,
        /// What it did.
        kind: AbuseKind,
    },
    /// Something the user should know.
    Event(Event),
}

/// Events for logs and the control socket.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event {
    /// Registered for this many seconds.
    Registered {
        /// Granted lifetime.
        expires: u32,
    },
    /// Registration failed.
    RegistrationFailed {
        /// Status code (408 for a timeout).
        code: u16,
        /// Reason.
        reason: String,
    },
    /// Unregistered.
    Unregistered,
    /// A DTMF digit arrived in a SIP INFO (application/dtmf-relay or
    /// application/dtmf); RFC 4733 digits come from the media side instead.
    Dtmf {
        /// Call-ID.
        call_id: String,
        /// `0`-`9`, `*`, `#`, `A`-`D`.
        digit: char,
    },
    /// A call changed state.
    Call {
        /// Call-ID.
        call_id: String,
        /// New state.
        state: CallState,
        /// Peer URI.
        peer: String,
        /// Final status code when it failed.
        code: Option<u16>,
        /// Reason phrase or cause.
        reason: Option<String>,
    },
    /// A call's media could not start or failed; the call is hung up with a
    /// `Reason` header.
    MediaFailed {
        /// Call-ID.
        call_id: String,
        /// Why.
        reason: String,
    },
}

/// Registration state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RegState {
    /// No registrar configured.
    Disabled,
    /// Not registered (yet, or after failure).
    Unregistered,
    /// REGISTER in progress.
    Registering,
    /// Registered.
    Registered,
    /// Failed; retrying later.
    Failed,
}

/// How urgently the I/O layer should hand a received message over (see
/// [`Ua::priority`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Priority {
    /// New out-of-dialog requests (INVITE floods land here).
    Low,
    /// Cheap out-of-dialog requests (OPTIONS) and other messages.
    Normal,
    /// The registrar / outbound proxy, and anything about a live call or our registration.
    High,
}

/// The owner of a transaction, as the layers know it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Owner {
    /// Our REGISTER.
    Register,
    /// A call's transaction.
    Call(String, CallTx),
}

/// Which transaction of a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CallTx {
    /// Our dialog-creating INVITE.
    Invite,
    /// Our CANCEL of it.
    Cancel,
    /// Our re-INVITE.
    ReInvite,
    /// Our BYE.
    Bye,
    /// Our BYE of a second fork's dialog.
    ForkBye,
    /// An INVITE we serve (the initial one or a re-INVITE).
    Server,
}

/// The registrar / outbound proxy as the core uses them.
#[derive(Debug, Clone, Default)]
pub(crate) struct Servers {
    pub registrar: Option<ServerUri>,
    pub outbound: Option<ServerUri>,
}

/// Where an out-of-dialog request goes.
pub(crate) enum Route {
    /// Send it here, with this Route header if any.
    At(SocketAddr, Option<String>),
    /// A configured server is not resolved yet.
    WaitServer,
    /// The target's host must be looked up.
    Lookup(String, u16),
    /// No way to reach it.
    None,
}

impl Servers {
    /// Whether `from` is the registrar's or the outbound proxy's address.
    pub fn is_server(&self, from: SocketAddr, reliable: bool) -> bool {
        [&self.registrar, &self.outbound]
            .into_iter()
            .flatten()
            .filter_map(|s| s.addr)
            .any(|a| a.ip() == from.ip() && (reliable || a.port() == from.port()))
    }

    /// The route of an out-of-dialog request to `target`: the outbound
    /// proxy, else the registrar (acting as proxy), else the target itself.
    pub fn route(&self, target: &str) -> Route {
        if let Some(p) = &self.outbound {
            return match p.addr {
                Some(a) => Route::At(a, Some(p.route())),
                None => Route::WaitServer,
            };
        }
        if let Some(r) = &self.registrar {
            return match r.addr {
                Some(a) => Route::At(a, None),
                None => Route::WaitServer,
            };
        }
        if let Some(a) = uri_addr(target) {
            return Route::At(a, None);
        }
        match uri_host_port(target) {
            Some((h, p)) => Route::Lookup(h, p),
            None => Route::None,
        }
    }
}

/// What every layer shares: configuration, the RNG, the transaction table,
/// the servers and the actions produced.
pub(crate) struct Env {
    pub cfg: UaConfig,
    pub rng: StdRng,
    pub txs: Transactions<Owner>,
    pub out: Vec<Action>,
    /// Our Contact address (the registrar may tell us another one: NAT).
    pub contact_addr: SocketAddr,
    pub servers: Servers,
    pub policy: AnswerPolicy,
}

impl Env {
    /// `n` random hex digits.
    pub fn token(&mut self, n: usize) -> String {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        (0..n)
            .map(|_| HEX[self.rng.gen_range(0..16)] as char)
            .collect()
    }

    /// A new branch with the magic cookie.
    pub fn branch(&mut self) -> String {
        format!("{}{}", super::transaction::MAGIC_COOKIE, self.token(16))
    }

    /// Our Via for `branch`.
    pub fn via(&self, branch: &str) -> String {
        format!(
            "SIP/2.0/{} {};branch={branch};rport",
            self.cfg.transport.via_token(),
            fmt_addr(&self.cfg.local)
        )
    }

    /// Our Contact.
    pub fn contact(&self) -> String {
        let transport = match self.cfg.transport {
            Transport::Udp => "",
            Transport::Tcp => ";transport=tcp",
            Transport::Tls => ";transport=tls",
        };
        format!(
            "<sip:{}@{}{transport}>",
            self.cfg.user(),
            fmt_addr(&self.contact_addr)
        )
    }

    /// Queues the transaction layer's sends.
    pub fn flush(&mut self, ob: Outbox) {
        self.out
            .extend(ob.into_iter().map(|(to, data)| Action::Send { to, data }));
    }

    /// Sends a message outside any transaction (ACK of a 2xx, stateless answers).
    pub fn send(&mut self, to: SocketAddr, data: Vec<u8>) {
        self.out.push(Action::Send { to, data });
    }

    /// Starts a client transaction; `None` when the table refuses it.
    pub fn client_tx(
        &mut self,
        now: Instant,
        dest: SocketAddr,
        data: Vec<u8>,
        branch: &str,
        method: &str,
        owner: Owner,
    ) -> Option<TxId> {
        let mut ob = Vec::new();
        let r = self
            .txs
            .client(now, dest, data, branch, method, owner, &mut ob);
        self.flush(ob);
        match r {
            Ok(id) => Some(id),
            Err(e) => {
                tracing::warn!(%method, "cannot start a client transaction: {e}");
                None
            }
        }
    }

    /// Answers `req`: on its server transaction when it has one, else
    /// statelessly to `to`. A final response without a To tag gets `tag`
    /// (a random one when `None`, RFC 3261 8.2.6.2).
    #[allow(clippy::too_many_arguments)]
    pub fn reply(
        &mut self,
        now: Instant,
        tx: Option<TxId>,
        req: &Message,
        to: SocketAddr,
        (code, reason): (u16, &str),
        tag: Option<&str>,
        extra: &[(&str, &str)],
        body: Option<(&str, Vec<u8>)>,
    ) {
        let tag = match tag {
            Some(t) => t.to_string(),
            None => self.token(10),
        };
        let mut b = Builder::response_to(req, code, reason, Some(&tag));
        for (n, v) in extra {
            b = b.header(n, v);
        }
        if let Some((ct, body)) = body {
            b = b.body(ct, body);
        }
        let data = b.build();
        match tx {
            Some(tx) => {
                let mut ob = Vec::new();
                self.txs.respond(now, tx, code, data, Some(tag), &mut ob);
                self.flush(ob);
            }
            None => self.send(to, data),
        }
    }

    /// Reports abuse by `source` unless it is one of our servers.
    pub fn abuse(&mut self, source: SocketAddr, kind: AbuseKind) {
        if !self
            .servers
            .is_server(source, self.cfg.transport.is_reliable())
        {
            self.out.push(Action::Abuse { source, kind });
        }
    }
}

/// A parse error as one short line for a Warning header or a log: parser
/// errors quote the peer's bytes, CR/LF included, which must not reach a header.
pub(crate) fn warning_text(why: &str) -> String {
    why.chars()
        .map(|c| match c {
            '"' | '\\' => '\'',
            c if c.is_control() => ' ',
            c => c,
        })
        .take(160)
        .collect()
}

/// The user agent; see the module documentation.
pub struct Ua {
    env: Env,
    reg: Registration,
    calls: Calls,
    shutting_down: bool,
}

impl Ua {
    /// A user agent for `cfg`, its randomness seeded from the OS.
    pub fn new(cfg: UaConfig) -> Ua {
        Ua::with_rng(cfg, StdRng::from_entropy())
    }

    /// A user agent whose every random choice follows `seed` (replayable runs).
    pub fn with_seed(cfg: UaConfig, seed: u64) -> Ua {
        Ua::with_rng(cfg, StdRng::seed_from_u64(seed))
    }

    /// A user agent drawing every random value from `rng`.
    pub fn with_rng(cfg: UaConfig, rng: StdRng) -> Ua {
        let txs = Transactions::new(TxConfig {
            t1: cfg.t1,
            t2: cfg.t2,
            t4: cfg.t4,
            reliable: cfg.transport.is_reliable(),
            max_server: cfg.max_transactions.max(16),
            max_client: 256,
        });
        let policy = AnswerPolicy {
            accept: cfg.accept,
            allow: cfg.allow_from.clone(),
            stealth: cfg.stealth,
        };
        let mut env = Env {
            contact_addr: cfg.local,
            servers: Servers {
                registrar: cfg.registrar.clone(),
                outbound: cfg.outbound_proxy.clone(),
            },
            cfg,
            rng,
            txs,
            out: Vec::new(),
            policy,
        };
        let reg = Registration::new(&mut env);
        Ua {
            env,
            reg,
            calls: Calls::default(),
            shutting_down: false,
        }
    }

    /// Registration state.
    pub fn reg_state(&self) -> RegState {
        self.reg.state()
    }

    /// The calls, for `status`.
    pub fn calls(&self, now: Instant) -> Vec<CallInfo> {
        self.calls.info(now)
    }

    /// The signalling addresses of the confirmed calls (where their
    /// in-dialog requests go, so where the peer's come from), sorted, for
    /// the ban table's rate exemption.
    pub fn call_peers(&self) -> Vec<std::net::IpAddr> {
        self.calls.peers()
    }

    /// Transaction table counters, for `status`.
    pub fn tx_stats(&self) -> TxStats {
        self.env.txs.stats()
    }

    /// Whether shutdown finished (nothing left to wait for).
    pub fn finished(&self) -> bool {
        self.shutting_down && self.calls.is_empty() && !self.reg.busy()
    }

    /// When [`Ua::handle`] should next be called with [`Input::Tick`].
    pub fn next_timeout(&self) -> Option<Instant> {
        [
            self.env.txs.next_timeout(),
            self.reg.next_timeout(),
            self.calls.next_timeout(),
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// How urgently a received message should be handled, judged cheaply
    /// from its bytes (no full parse): the I/O layer serves `High` first
    /// and sheds `Low` first when it cannot keep up (issue 14: a flood of
    /// new INVITEs must not delay the registrar or a live call).
    pub fn priority(&self, from: SocketAddr, data: &[u8]) -> Priority {
        if self
            .env
            .servers
            .is_server(from, self.env.cfg.transport.is_reliable())
        {
            return Priority::High;
        }
        let Some(head) = peek_head(data) else {
            return Priority::Low;
        };
        if head
            .call_id
            .is_some_and(|c| self.calls.contains(c) || self.reg.call_id() == c)
        {
            return Priority::High;
        }
        // OPTIONS (a keep-alive or monitoring ping) is cheap to answer;
        // every other new request (INVITE floods, scanners' REGISTERs) and
        // stray responses wait behind it.
        match head.method {
            Some("OPTIONS") => Priority::Normal,
            _ => Priority::Low,
        }
    }

    /// Feeds one input; returns what to do.
    pub fn handle(&mut self, now: Instant, input: Input) -> Vec<Action> {
        match input {
            Input::Datagram { from, data } => self.on_datagram(now, from, &data),
            Input::Tick => {}
            Input::TransportError { to } => {
                for ev in self.env.txs.transport_error(to) {
                    self.dispatch(now, ev);
                }
            }
            Input::Command(c) => self.on_command(now, c),
            Input::Resolved { lookup, result } => self.on_resolved(now, lookup, result),
            Input::MediaStarted { call_id, result } => {
                self.calls
                    .on_media_started(&mut self.env, now, &call_id, result)
            }
            Input::MediaStopped { call_id } => {
                self.calls.on_media_stopped(&mut self.env, now, &call_id)
            }
            Input::Media { call_id, event } => {
                self.calls
                    .on_media_event(&mut self.env, now, &call_id, event)
            }
        }
        self.on_timers(now);
        std::mem::take(&mut self.env.out)
    }

    fn on_timers(&mut self, now: Instant) {
        let mut ob = Vec::new();
        let events = self.env.txs.on_timers(now, &mut ob);
        self.env.flush(ob);
        for ev in events {
            self.dispatch(now, ev);
        }
        self.reg.on_timer(&mut self.env, now);
        self.calls.on_timers(&mut self.env, now);
    }

    fn on_command(&mut self, now: Instant, cmd: Command) {
        match cmd {
            Command::Register => self.reg.start(&mut self.env, now),
            Command::Call(uri) => self.calls.call(&mut self.env, now, &uri, None),
            Command::CallAt(uri, dest) => self.calls.call(&mut self.env, now, &uri, Some(dest)),
            Command::Answer(id) => self.calls.answer_cmd(&mut self.env, now, id),
            Command::Hangup(id) => self.calls.hangup_cmd(&mut self.env, now, id),
            Command::Hold(id, hold) => self.calls.hold_cmd(&mut self.env, now, id, hold),
            Command::Shutdown => {
                self.shutting_down = true;
                self.calls.hangup_cmd(&mut self.env, now, None);
                self.reg.shutdown(&mut self.env, now);
            }
        }
    }

    fn on_resolved(&mut self, now: Instant, lookup: Lookup, result: Result<SocketAddr, String>) {
        match lookup {
            Lookup::Registrar | Lookup::OutboundProxy => {
                let server = if lookup == Lookup::Registrar {
                    &mut self.env.servers.registrar
                } else {
                    &mut self.env.servers.outbound
                };
                let name = if lookup == Lookup::Registrar {
                    "registrar"
                } else {
                    "outbound proxy"
                };
                match (server.as_mut(), result) {
                    (Some(s), Ok(addr)) => {
                        tracing::info!(host = %s.host, %addr, "{name} resolved");
                        s.addr = Some(addr);
                    }
                    (Some(s), Err(e)) => {
                        tracing::error!(host = %s.host, "cannot resolve the {name}: {e}");
                    }
                    (None, _) => return,
                }
                self.reg.on_resolved(&mut self.env, now);
                self.calls.on_server_resolved(&mut self.env, now);
            }
            Lookup::Call(id) => self.calls.on_call_resolved(&mut self.env, now, &id, result),
        }
    }

    fn dispatch(&mut self, now: Instant, ev: TxEvent<Owner>) {
        match ev {
            TxEvent::Request { tx, req, from } => self.on_request(now, tx, req, from),
            TxEvent::Response { tx, owner, resp } => match owner {
                Some(Owner::Register) => self.reg.on_response(&mut self.env, now, tx, &resp),
                Some(Owner::Call(id, kind)) => {
                    self.calls
                        .on_response(&mut self.env, now, &id, kind, tx, &resp)
                }
                None => {}
            },
            TxEvent::Stray { resp, from } => self.calls.on_stray(&mut self.env, now, &resp, from),
            TxEvent::Timeout {
                tx,
                owner,
                method,
                transport,
            } => {
                tracing::warn!(%method, transport, "transaction failed without a final response");
                let code = if transport { 503 } else { 408 };
                match owner {
                    Some(Owner::Register) => self.reg.on_failure(&mut self.env, now, tx, code),
                    Some(Owner::Call(id, kind)) => {
                        self.calls
                            .on_failure(&mut self.env, now, &id, kind, tx, code)
                    }
                    None => {}
                }
            }
            TxEvent::NoAck { owner, code, .. } => {
                if let Some(Owner::Call(id, _)) = owner {
                    self.calls.on_no_ack(&mut self.env, now, &id, code);
                }
            }
        }
    }

    fn on_datagram(&mut self, now: Instant, from: SocketAddr, data: &[u8]) {
        if data.iter().all(|b| b.is_ascii_whitespace()) {
            return; // keep-alive (RFC 5626 CRLF)
        }
        let msg = match Message::parse(data) {
            Ok(m) => m,
            Err(ParseError::BadRequest(why)) | Err(ParseError::Unparsable(why)) => {
                let why = warning_text(&why);
                tracing::warn!(%from, "malformed request: {why}");
                if let Some(req) = salvage_request(data) {
                    self.env.abuse(from, AbuseKind::MalformedRequest);
                    if req.method.as_deref() != Some("ACK") {
                        let warning = format!("399 voipbridge \"{why}\"");
                        let tag = self.env.token(10);
                        let resp = Builder::response_to(&req, 400, "Bad Request", Some(&tag))
                            .header("Warning", &warning)
                            .build();
                        // The 400 copies the request's Via, From, To, Call-ID and CSeq: when one
                        // of them is itself malformed, so is the answer, and nothing is sent.
                        if Message::parse(&resp).is_ok() {
                            self.env.send(from, resp);
                        } else {
                            tracing::warn!(%from, "too malformed to answer: not sending 400");
                        }
                    }
                } else if data.get(..4) != Some(b"SIP/") {
                    self.env.abuse(from, AbuseKind::MalformedRequest);
                }
                return;
            }
            Err(ParseError::BadResponse(why)) => {
                tracing::warn!(%from, "dropping malformed response: {}", warning_text(&why));
                return;
            }
        };
        let priority = msg.is_request()
            && (self
                .env
                .servers
                .is_server(from, self.env.cfg.transport.is_reliable())
                || self.calls.contains(msg.call_id())
                || msg.method() == "INVITE"
                    && msg.to_tag().is_none()
                    && matches!(
                        self.env.policy.decide(&msg, false, &self.env.cfg.user()),
                        Decision::Admit { .. }
                    ));
        let mut ob = Vec::new();
        let ev = self.env.txs.receive(now, from, msg, priority, &mut ob);
        self.env.flush(ob);
        if let Some(ev) = ev {
            self.dispatch(now, ev);
        }
    }

    fn on_request(&mut self, now: Instant, tx: Option<TxId>, req: Message, from: SocketAddr) {
        let method = req.method().to_string();
        if method == "ACK" {
            self.calls.on_ack(&mut self.env, now, tx, &req, from);
            return;
        }
        let env = &mut self.env;
        // RFC 3261 8.2.2.3: we implement no option tags, so any Require gets 420 listing them.
        if method != "CANCEL" {
            let required = req.header_values("require");
            if !required.is_empty() {
                let list = required.join(", ");
                tracing::info!(%method, require = %list, "unsupported extension required: 420");
                let unsupported = [("Unsupported", list.as_str())];
                env.reply(
                    now,
                    tx,
                    &req,
                    from,
                    (420, "Bad Extension"),
                    None,
                    &unsupported,
                    None,
                );
                return;
            }
        }
        // RFC 3261 8.2.2.1: a Request-URI scheme we do not serve.
        let scheme = req.uri.split(':').next().unwrap_or("").to_ascii_lowercase();
        if scheme != "sip" && scheme != "sips" {
            env.reply(
                now,
                tx,
                &req,
                from,
                (416, "Unsupported URI Scheme"),
                None,
                &[],
                None,
            );
            return;
        }
        let in_dialog = req.to_tag().is_some();
        match method.as_str() {
            "INVITE" if in_dialog => self.calls.on_reinvite(env, now, tx, &req, from),
            "INVITE" => self.on_new_invite(now, tx, req, from),
            "CANCEL" => self.calls.on_cancel(env, now, tx, &req, from),
            "BYE" | "INFO" if in_dialog => self.calls.on_in_dialog(env, now, tx, &req, from),
            "BYE" | "INFO" => {
                let r = (481, "Call/Transaction Does Not Exist");
                env.reply(now, tx, &req, from, r, None, &[], None);
            }
            "OPTIONS" => env.reply(
                now,
                tx,
                &req,
                from,
                (200, "OK"),
                None,
                &[("Allow", ALLOW), ("Accept", "application/sdp")],
                None,
            ),
            m => {
                if !in_dialog {
                    env.abuse(from, AbuseKind::MethodNotAllowed);
                }
                let r = if KNOWN_UNSUPPORTED.contains(&m) {
                    (405, "Method Not Allowed")
                } else {
                    (501, "Not Implemented")
                };
                env.reply(now, tx, &req, from, r, None, &[("Allow", ALLOW)], None);
            }
        }
    }

    fn on_new_invite(&mut self, now: Instant, tx: Option<TxId>, req: Message, from: SocketAddr) {
        let env = &mut self.env;
        let from_server = env.servers.is_server(from, env.cfg.transport.is_reliable());
        let vouched = match env.policy.decide(&req, from_server, &env.cfg.user()) {
            Decision::Admit { vouched } => vouched,
            Decision::Refuse(kind) => {
                let peer = req.header_uri("from").unwrap_or_default();
                tracing::info!(%from, peer = %warning_text(&peer), ?kind, stealth = env.policy.stealth, "refusing INVITE");
                env.abuse(from, kind);
                // Stateless (RFC 3261 8.2.7): a refused INVITE keeps no
                // transaction, so a flood (or a forged source) gets at most
                // one 403 per INVITE, never timer G's retransmissions.
                if let Some(tx) = tx {
                    env.txs.terminate(tx);
                }
                if !env.policy.stealth {
                    env.reply(now, None, &req, from, (403, "Forbidden"), None, &[], None);
                }
                return;
            }
        };
        if self.shutting_down {
            env.reply(
                now,
                tx,
                &req,
                from,
                (503, "Service Unavailable"),
                None,
                &[],
                None,
            );
            return;
        }
        self.calls.on_invite(env, now, tx, req, from, vouched);
    }
}

/// The start line's method (`None` for a response) and the Call-ID of a
/// message, found by scanning the header block (no parse).
struct Head<'a> {
    method: Option<&'a str>,
    call_id: Option<&'a str>,
}

fn peek_head(data: &[u8]) -> Option<Head<'_>> {
    let end = data
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or(data.len().min(4096));
    let text = std::str::from_utf8(data.get(..end)?).ok()?;
    let mut lines = text.split("\r\n");
    let first = lines.next()?;
    let method = if first.starts_with("SIP/") {
        None
    } else {
        Some(first.split(' ').next()?)
    };
    let call_id = lines.find_map(|l| {
        let (n, v) = l.split_once(':')?;
        let n = n.trim();
        (n.eq_ignore_ascii_case("call-id") || n.eq_ignore_ascii_case("i")).then(|| v.trim())
    });
    Some(Head { method, call_id })
}
