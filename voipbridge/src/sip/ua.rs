//! The user agent core: registration, transactions, dialogs and the call
//! table, as a sans-IO state machine.
//!
//! [`Ua::handle`] takes an [`Input`] (a datagram, a command, or just the
//! passage of time) with the current `Instant` and returns [`Action`]s (send
//! this datagram, start or stop a call's media, report an event). The tokio
//! layer (`crate::agent`) owns the socket and the clock; tests drive the core
//! with virtual time.
//!
//! Transactions follow RFC 3261 section 17 for UDP: client requests are
//! retransmitted from T1 doubling (non-INVITE capped at T2; INVITE until a
//! provisional response) and time out after 64·T1 (timers A/B, E/F); the
//! ACK to a non-2xx final response is sent by the transaction; a server's
//! last response is replayed when a request is retransmitted (timers J/K
//! folded into a 32 s cache); a 2xx to INVITE is retransmitted until its ACK
//! (timers G/H, giving up with a BYE).
//!
//! Over TCP ([`Transport::Tcp`], reliable) nothing is retransmitted by the
//! transactions (timers A and E are not started, D and K are zero: a
//! transaction ends with its final response), while timers B and F still
//! bound a transaction to 64·T1. The 2xx to an INVITE is still retransmitted
//! until its ACK, as RFC 3261 13.3.1.4 requires on every transport (a later
//! hop may be UDP).
//!
//! The call table is keyed by Call-ID; each call has one explicit state and
//! every transition is logged.

use super::digest::Challenge;
use super::message::{addr_uri, param, salvage_request, Builder, Message, ParseError};
use super::sdp::{self, Session};
use crate::media::{Codec, Direction};
use serde::Serialize;
use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

/// Methods we implement (Allow header).
pub const ALLOW: &str = "INVITE, ACK, BYE, CANCEL, OPTIONS, INFO";
const USER_AGENT: &str = concat!("voipbridge/", env!("CARGO_PKG_VERSION"));

/// Configuration of the core.
#[derive(Debug, Clone)]
pub struct UaConfig {
    /// Our address of record, e.g. `sip:bridge@127.0.0.1`.
    pub aor: String,
    /// Registrar (also used as outbound proxy for calls); `None`: no REGISTER.
    pub registrar: Option<SocketAddr>,
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
    /// Answer incoming calls after this delay; `None`: wait for `answer`.
    pub auto_answer: Option<Duration>,
    /// Callers allowed (URI substrings); empty: everyone.
    pub allow_from: Vec<String>,
    /// First RTP port; slot n uses `rtp_base + 2n`.
    pub rtp_base: u16,
    /// Simultaneous calls (card substreams).
    pub slots: usize,
    /// RFC 3261 T1.
    pub t1: Duration,
    /// RFC 3261 T2.
    pub t2: Duration,
    /// Transport of every message we send and receive.
    pub transport: Transport,
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
}

impl Transport {
    /// The Via transport token: `UDP`, `TCP`.
    pub fn via_token(self) -> &'static str {
        match self {
            Transport::Udp => "UDP",
            Transport::Tcp => "TCP",
        }
    }

    /// Whether the transport delivers reliably (RFC 3261 17: no retransmissions).
    pub fn is_reliable(self) -> bool {
        self == Transport::Tcp
    }
}

impl std::str::FromStr for Transport {
    type Err = String;
    fn from_str(s: &str) -> Result<Transport, String> {
        match s.to_ascii_lowercase().as_str() {
            "udp" => Ok(Transport::Udp),
            "tcp" => Ok(Transport::Tcp),
            _ => Err(format!("'{s}' is not a supported transport (udp, tcp)")),
        }
    }
}

impl UaConfig {
    fn user(&self) -> String {
        let s = self
            .aor
            .trim_start_matches("sips:")
            .trim_start_matches("sip:");
        s.split('@').next().unwrap_or("voipbridge").to_string()
    }
    fn domain(&self) -> String {
        let s = self
            .aor
            .trim_start_matches("sips:")
            .trim_start_matches("sip:");
        s.split('@')
            .nth(1)
            .unwrap_or(s)
            .split(';')
            .next()
            .unwrap_or("")
            .to_string()
    }
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
}

/// User commands (from the control socket).
#[derive(Debug, Clone, PartialEq)]
pub enum Command {
    /// Start registering.
    Register,
    /// Call a SIP URI.
    Call(String),
    /// Call a SIP URI whose host the I/O layer resolved: send the INVITE
    /// to `dest` (unless a registrar, the outbound proxy, is configured).
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
    /// Peer RTP address.
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
}

/// What the core asks the I/O layer to do.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// Send a datagram.
    Send {
        /// Destination.
        to: SocketAddr,
        /// Bytes.
        data: Vec<u8>,
    },
    /// Start a call's media.
    StartMedia(String, MediaOffer),
    /// Change a call's media (re-INVITE).
    UpdateMedia(String, SocketAddr, Direction),
    /// Stop a call's media.
    StopMedia(String),
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

/// Call states (FreeSWITCH-style progression).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CallState {
    /// Outgoing INVITE sent.
    Calling,
    /// Outgoing call got a provisional response.
    Ringing,
    /// Incoming call waiting to be answered.
    Incoming,
    /// Established.
    Active,
    /// On hold (either side).
    Held,
    /// BYE or CANCEL sent, waiting for the answer.
    Terminating,
    /// Over.
    Ended,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
enum Dir {
    Outgoing,
    Incoming,
}

#[derive(Debug, Clone)]
struct Call {
    id: String,
    dir: Dir,
    state: CallState,
    local_tag: String,
    remote_tag: Option<String>,
    /// Our From/To header value (with tag) and the peer's.
    local_hdr: String,
    remote_hdr: String,
    peer_uri: String,
    remote_target: String,
    /// Route set (RFC 3261 12.1): Route header values for in-dialog requests, first hop first.
    route_set: Vec<String>,
    peer_addr: SocketAddr,
    local_cseq: u32,
    slot: usize,
    invite: Option<Message>,
    invite_from: Option<SocketAddr>,
    invite_branch: String,
    invite_cseq: u32,
    answer_at: Option<Instant>,
    created: Instant,
    answered: Option<Instant>,
    media: Option<MediaOffer>,
    /// SDP `o=` session id: fixed for the call; `sdp_version` counts our descriptions (RFC 3264 8).
    sdp_session: u64,
    sdp_version: u64,
    auth_tries: u32,
    hold: bool,
    /// Offerless INVITE (RFC 3264 5): our offer went in the 200, the answer is due in the ACK.
    offer_in_2xx: bool,
    /// Reason header (RFC 3326) for the BYE we send.
    bye_reason: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
enum Purpose {
    Register { expires: u32 },
    Invite(String),
    Bye(String),
    Cancel(String),
    ReInvite(String),
}

impl Purpose {
    fn method(&self) -> &'static str {
        match self {
            Purpose::Register { .. } => "REGISTER",
            Purpose::Invite(_) | Purpose::ReInvite(_) => "INVITE",
            Purpose::Bye(_) => "BYE",
            Purpose::Cancel(_) => "CANCEL",
        }
    }
}

#[derive(Debug, Clone)]
struct ClientTx {
    branch: String,
    method: String,
    dest: SocketAddr,
    data: Vec<u8>,
    next: Instant,
    interval: Duration,
    deadline: Instant,
    provisional: bool,
    purpose: Purpose,
}

#[derive(Debug, Clone)]
struct ServerCache {
    response: Vec<u8>,
    to: SocketAddr,
    until: Instant,
}

#[derive(Debug, Clone)]
struct Pending2xx {
    call_id: String,
    data: Vec<u8>,
    to: SocketAddr,
    next: Instant,
    interval: Duration,
    deadline: Instant,
}

/// A call as shown by `status`.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct CallInfo {
    /// Call-ID.
    pub call_id: String,
    /// State.
    pub state: CallState,
    /// Outgoing or incoming.
    pub direction: String,
    /// Peer URI.
    pub peer: String,
    /// Card substream.
    pub slot: usize,
    /// Negotiated codec.
    pub codec: Option<String>,
    /// Seconds since answered.
    pub duration_s: Option<f64>,
}

/// The user agent; see the module documentation.
pub struct Ua {
    cfg: UaConfig,
    contact_addr: SocketAddr,
    calls: BTreeMap<String, Call>,
    txs: Vec<ClientTx>,
    cache: BTreeMap<(String, String), ServerCache>,
    pending_2xx: Vec<Pending2xx>,
    reg_state: RegState,
    reg_call_id: String,
    reg_cseq: u32,
    reg_refresh: Option<Instant>,
    reg_backoff: Duration,
    reg_expires: u32,
    challenge: Option<(Challenge, u32, bool)>,
    shutting_down: bool,
    counter: u64,
}

fn random_token(n: usize) -> String {
    (0..n)
        .map(|_| format!("{:x}", rand::random::<u8>() & 0xF))
        .collect()
}

/// Host (IPv6 without brackets) and port (5060 when absent) of a SIP URI.
pub fn uri_host_port(uri: &str) -> Option<(String, u16)> {
    let u = uri.trim().trim_start_matches('<').trim_end_matches('>');
    let u = u.strip_prefix("sip:").or_else(|| u.strip_prefix("sips:"))?;
    let hostport = u.split(';').next()?.split('?').next()?;
    let hostport = hostport.rsplit('@').next()?;
    let (host, port) = if let Some(rest) = hostport.strip_prefix('[') {
        let (h, p) = rest.split_once(']')?;
        let port = match p.strip_prefix(':') {
            Some(p) => p.parse().ok()?,
            None if p.is_empty() => 5060,
            None => return None,
        };
        (h.to_string(), port)
    } else {
        match hostport.rsplit_once(':') {
            Some((h, p)) => (h.to_string(), p.parse().ok()?),
            None => (hostport.to_string(), 5060),
        }
    };
    (!host.is_empty()).then_some((host, port))
}

/// Host and port of a SIP URI when the host is an IP literal; names are
/// resolved by the I/O layer ([`Command::CallAt`]).
pub fn uri_addr(uri: &str) -> Option<SocketAddr> {
    let (host, port) = uri_host_port(uri)?;
    let ip: IpAddr = host.parse().ok()?;
    Some(SocketAddr::new(ip, port))
}

/// Whether `uri` can be the Request-URI of a request we send: `sip:` or
/// `sips:`, no whitespace, control characters, `<`, `>` or `"`, and a
/// request line with it parses (the parser judges host and port).
fn is_dialable(uri: &str) -> bool {
    let lower = uri.get(..5).unwrap_or("").to_ascii_lowercase();
    let shape = (lower.starts_with("sip:") && uri.len() > 4 || lower == "sips:" && uri.len() > 5)
        && !uri
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || matches!(c, '<' | '>' | '"'));
    shape
        && Message::parse(
            &Builder::request("OPTIONS", uri)
                .header("Via", "SIP/2.0/UDP 127.0.0.1;branch=z9hG4bKcheck")
                .header("From", "<sip:a@127.0.0.1>;tag=a")
                .header("To", "<sip:b@127.0.0.1>")
                .header("Call-ID", "check")
                .header("CSeq", "1 OPTIONS")
                .build(),
        )
        .is_ok()
}

/// Whether a SIP URI carries the `lr` parameter (a loose router, RFC 3261 16.4).
fn is_loose_router(uri: &str) -> bool {
    let u = uri.split('?').next().unwrap_or(uri);
    u.split(';').skip(1).any(|p| {
        p.split('=')
            .next()
            .unwrap_or("")
            .trim()
            .eq_ignore_ascii_case("lr")
    })
}

/// Request-URI, Route header values and next hop of an in-dialog request (RFC 3261 12.2.1.1).
fn dialog_route(c: &Call) -> (String, Vec<String>, SocketAddr) {
    let Some(first) = c.route_set.first() else {
        let dest = uri_addr(&c.remote_target).unwrap_or(c.peer_addr);
        return (c.remote_target.clone(), Vec::new(), dest);
    };
    let first_uri = addr_uri(first);
    let dest = uri_addr(&first_uri).unwrap_or(c.peer_addr);
    if is_loose_router(&first_uri) {
        (c.remote_target.clone(), c.route_set.clone(), dest)
    } else {
        // Strict router: its URI becomes the Request-URI, the remote target the last Route.
        let mut routes: Vec<String> = c.route_set.iter().skip(1).cloned().collect();
        routes.push(format!("<{}>", c.remote_target));
        (first_uri, routes, dest)
    }
}

/// The digit of a SIP INFO DTMF body: `Signal=5` lines (application/dtmf-relay;
/// 10 and 11 are `*` and `#` for some senders) or a bare digit (application/dtmf).
fn info_dtmf(content_type: &str, body: &[u8]) -> Option<char> {
    let text = std::str::from_utf8(body).ok()?;
    let value = if content_type == "application/dtmf-relay" {
        text.lines().find_map(|l| {
            let (k, v) = l.split_once('=')?;
            k.trim().eq_ignore_ascii_case("signal").then(|| v.trim())
        })?
    } else {
        text.trim()
    };
    match value {
        "10" => Some('*'),
        "11" => Some('#'),
        v => {
            let mut chars = v.chars();
            let c = chars.next()?.to_ascii_uppercase();
            (chars.next().is_none() && matches!(c, '0'..='9' | '*' | '#' | 'A'..='D')).then_some(c)
        }
    }
}

/// A parse error as one short line for a Warning header or a log: parser
/// errors quote the peer's bytes, CR/LF included, which must not reach a header.
fn warning_text(why: &str) -> String {
    why.chars()
        .map(|c| match c {
            '"' => '\'',
            c if c.is_control() => ' ',
            c => c,
        })
        .take(160)
        .collect()
}

/// The event for a call that could not even be placed (no Call-ID yet).
fn not_placed(uri: String, code: u16, reason: &str) -> Action {
    Action::Event(Event::Call {
        call_id: String::new(),
        state: CallState::Ended,
        peer: uri,
        code: Some(code),
        reason: Some(reason.into()),
    })
}

fn fmt_host(a: &SocketAddr) -> String {
    match a {
        SocketAddr::V4(v) => v.to_string(),
        SocketAddr::V6(v) => format!("[{}]:{}", v.ip(), v.port()),
    }
}

impl Ua {
    /// A user agent for `cfg`.
    pub fn new(cfg: UaConfig) -> Ua {
        let reg_state = if cfg.registrar.is_some() {
            RegState::Unregistered
        } else {
            RegState::Disabled
        };
        Ua {
            contact_addr: cfg.local,
            cfg,
            calls: BTreeMap::new(),
            txs: Vec::new(),
            cache: BTreeMap::new(),
            pending_2xx: Vec::new(),
            reg_state,
            reg_call_id: format!("{}@voipbridge", random_token(16)),
            reg_cseq: 0,
            reg_refresh: None,
            reg_backoff: Duration::from_secs(5),
            reg_expires: 0,
            challenge: None,
            shutting_down: false,
            counter: 0,
        }
    }

    /// Registration state.
    pub fn reg_state(&self) -> RegState {
        self.reg_state
    }

    /// The calls, for `status`.
    pub fn calls(&self, now: Instant) -> Vec<CallInfo> {
        self.calls
            .values()
            .map(|c| CallInfo {
                call_id: c.id.clone(),
                state: c.state,
                direction: if c.dir == Dir::Outgoing {
                    "outgoing".into()
                } else {
                    "incoming".into()
                },
                peer: c.peer_uri.clone(),
                slot: c.slot,
                codec: c.media.as_ref().map(|m| m.codec.name().to_string()),
                duration_s: c
                    .answered
                    .map(|a| now.saturating_duration_since(a).as_secs_f64()),
            })
            .collect()
    }

    /// Whether shutdown finished (nothing left to wait for).
    pub fn finished(&self) -> bool {
        self.shutting_down && self.calls.is_empty() && self.txs.is_empty()
    }

    /// When [`Ua::handle`] should next be called with [`Input::Tick`].
    pub fn next_timeout(&self) -> Option<Instant> {
        let mut t: Vec<Instant> = self.txs.iter().flat_map(|x| [x.next, x.deadline]).collect();
        t.extend(self.pending_2xx.iter().flat_map(|p| [p.next, p.deadline]));
        t.extend(self.calls.values().filter_map(|c| c.answer_at));
        t.extend(self.reg_refresh);
        t.extend(self.cache.values().map(|c| c.until));
        t.into_iter().min()
    }

    fn branch(&mut self) -> String {
        self.counter += 1;
        format!("z9hG4bK{}{}", random_token(10), self.counter)
    }

    fn via(&self, branch: &str) -> String {
        format!(
            "SIP/2.0/{} {};branch={branch};rport",
            self.cfg.transport.via_token(),
            fmt_host(&self.cfg.local)
        )
    }

    fn contact(&self) -> String {
        let transport = match self.cfg.transport {
            Transport::Udp => "",
            Transport::Tcp => ";transport=tcp",
        };
        format!(
            "<sip:{}@{}{transport}>",
            self.cfg.user(),
            fmt_host(&self.contact_addr)
        )
    }

    fn set_state(
        &mut self,
        id: &str,
        state: CallState,
        code: Option<u16>,
        reason: Option<String>,
        out: &mut Vec<Action>,
    ) {
        if let Some(c) = self.calls.get_mut(id) {
            if c.state != state {
                tracing::info!(call = %id, from = ?c.state, to = ?state, peer = %c.peer_uri, "call state");
                c.state = state;
                out.push(Action::Event(Event::Call {
                    call_id: id.to_string(),
                    state,
                    peer: c.peer_uri.clone(),
                    code,
                    reason,
                }));
            }
        }
        if state == CallState::Ended {
            self.calls.remove(id);
            self.pending_2xx.retain(|p| p.call_id != id);
        }
    }

    fn end_call(
        &mut self,
        id: &str,
        code: Option<u16>,
        reason: Option<String>,
        out: &mut Vec<Action>,
    ) {
        if self.calls.get(id).is_some_and(|c| c.media.is_some()) {
            out.push(Action::StopMedia(id.to_string()));
        }
        self.set_state(id, CallState::Ended, code, reason, out);
    }

    fn send_request(
        &mut self,
        now: Instant,
        dest: SocketAddr,
        data: Vec<u8>,
        branch: String,
        purpose: Purpose,
        out: &mut Vec<Action>,
    ) {
        out.push(Action::Send {
            to: dest,
            data: data.clone(),
        });
        let deadline = now + 64 * self.cfg.t1;
        self.txs.push(ClientTx {
            branch,
            method: purpose.method().to_string(),
            dest,
            data,
            // Timers A/E (retransmission) only on an unreliable transport; B/F always.
            next: if self.cfg.transport.is_reliable() {
                deadline
            } else {
                now + self.cfg.t1
            },
            interval: self.cfg.t1,
            deadline,
            provisional: false,
            purpose,
        });
    }

    /// Feeds one input; returns what to do.
    pub fn handle(&mut self, now: Instant, input: Input) -> Vec<Action> {
        let mut out = Vec::new();
        match input {
            Input::Datagram { from, data } => self.on_datagram(now, from, &data, &mut out),
            Input::Tick => {}
            Input::TransportError { to } => self.on_transport_error(now, to, &mut out),
            Input::Command(c) => self.on_command(now, c, &mut out),
        }
        self.on_timers(now, &mut out);
        out
    }

    fn on_command(&mut self, now: Instant, cmd: Command, out: &mut Vec<Action>) {
        match cmd {
            Command::Register => {
                if self.cfg.registrar.is_some() {
                    self.register(now, self.cfg.expires, out);
                }
            }
            Command::Call(uri) => self.call(now, &uri, None, out),
            Command::CallAt(uri, dest) => self.call(now, &uri, Some(dest), out),
            Command::Answer(id) => {
                let id = id.or_else(|| {
                    self.calls
                        .values()
                        .filter(|c| c.state == CallState::Incoming)
                        .min_by_key(|c| c.created)
                        .map(|c| c.id.clone())
                });
                if let Some(id) = id {
                    self.answer(now, &id, out);
                }
            }
            Command::Hangup(id) => {
                let ids: Vec<String> = match id {
                    Some(i) => vec![i],
                    None => self.calls.keys().cloned().collect(),
                };
                for i in ids {
                    self.hangup(now, &i, out);
                }
            }
            Command::Hold(id, hold) => {
                let id = id.or_else(|| self.calls.keys().next().cloned());
                if let Some(id) = id {
                    self.reinvite(now, &id, hold, out);
                }
            }
            Command::Shutdown => {
                self.shutting_down = true;
                let ids: Vec<String> = self.calls.keys().cloned().collect();
                for i in ids {
                    self.hangup(now, &i, out);
                }
                if self.reg_state == RegState::Registered || self.reg_state == RegState::Registering
                {
                    self.register(now, 0, out);
                }
                self.reg_refresh = None;
            }
        }
    }

    fn register(&mut self, now: Instant, expires: u32, out: &mut Vec<Action>) {
        let Some(registrar) = self.cfg.registrar else {
            return;
        };
        self.txs
            .retain(|t| !matches!(t.purpose, Purpose::Register { .. }));
        self.reg_cseq += 1;
        let branch = self.branch();
        let ruri = format!("sip:{}", self.cfg.domain());
        let mut b = Builder::request("REGISTER", &ruri)
            .header("Via", &self.via(&branch))
            .header("Max-Forwards", "70")
            .header(
                "From",
                &format!(
                    "<{}>;tag={}",
                    self.cfg.aor,
                    self.reg_call_id.split('@').next().unwrap_or("r")
                ),
            )
            .header("To", &format!("<{}>", self.cfg.aor))
            .header("Call-ID", &self.reg_call_id)
            .header("CSeq", &format!("{} REGISTER", self.reg_cseq))
            .header("Contact", &self.contact())
            .header("Expires", &expires.to_string())
            .header("Allow", ALLOW)
            .header("User-Agent", USER_AGENT);
        if let Some((ch, nc, proxy)) = self.challenge.as_mut() {
            *nc += 1;
            let auth = ch.authorize(
                &self.cfg.username,
                &self.cfg.password,
                "REGISTER",
                &ruri,
                *nc,
                &random_token(8),
            );
            b = b.header(
                if *proxy {
                    "Proxy-Authorization"
                } else {
                    "Authorization"
                },
                &auth,
            );
        }
        if expires > 0 {
            self.reg_state = RegState::Registering;
        }
        self.send_request(
            now,
            registrar,
            b.build(),
            branch,
            Purpose::Register { expires },
            out,
        );
    }

    fn free_slot(&self) -> Option<usize> {
        (0..self.cfg.slots).find(|s| !self.calls.values().any(|c| c.slot == *s))
    }

    fn local_sdp(&self, call: &Call, codecs: &[(Codec, u8)], dir: Direction) -> Vec<u8> {
        let port = self.cfg.rtp_base + 2 * call.slot as u16;
        sdp::write(
            call.sdp_session,
            call.sdp_version,
            SocketAddr::new(self.cfg.local.ip(), port),
            codecs,
            Some(101),
            self.cfg.ptime,
            dir,
        )
    }

    fn call(
        &mut self,
        now: Instant,
        uri: &str,
        resolved: Option<SocketAddr>,
        out: &mut Vec<Action>,
    ) {
        let uri = if uri.starts_with("sip:") || uri.starts_with("sips:") {
            uri.to_string()
        } else {
            format!("sip:{uri}")
        };
        let dest = match self.cfg.registrar.or(resolved).or_else(|| uri_addr(&uri)) {
            Some(d) => d,
            None => {
                tracing::error!("cannot route a call to {uri}: no registrar/proxy and the host was not resolved");
                out.push(not_placed(uri, 404, "no route"));
                return;
            }
        };
        let Some(slot) = self.free_slot() else {
            tracing::warn!(
                "all {} substreams are busy: not calling {uri}",
                self.cfg.slots
            );
            out.push(not_placed(uri, 486, "all substreams busy"));
            return;
        };
        let id = format!("{}@voipbridge", random_token(20));
        let local_tag = random_token(10);
        let call = Call {
            id: id.clone(),
            dir: Dir::Outgoing,
            state: CallState::Calling,
            local_hdr: format!("<{}>;tag={local_tag}", self.cfg.aor),
            local_tag,
            remote_tag: None,
            remote_hdr: format!("<{uri}>"),
            peer_uri: uri.clone(),
            remote_target: uri.clone(),
            route_set: Vec::new(),
            peer_addr: dest,
            local_cseq: 1,
            slot,
            invite: None,
            invite_from: None,
            invite_branch: String::new(),
            invite_cseq: 1,
            answer_at: None,
            created: now,
            answered: None,
            media: None,
            sdp_session: u64::from(rand::random::<u32>()),
            sdp_version: 1,
            auth_tries: 0,
            hold: false,
            offer_in_2xx: false,
            bye_reason: None,
        };
        tracing::info!(call = %id, peer = %uri, slot, "calling");
        out.push(Action::Event(Event::Call {
            call_id: id.clone(),
            state: CallState::Calling,
            peer: uri.clone(),
            code: None,
            reason: None,
        }));
        self.calls.insert(id.clone(), call);
        self.send_invite(now, &id, None, out);
    }

    fn send_invite(
        &mut self,
        now: Instant,
        id: &str,
        auth: Option<(String, String)>,
        out: &mut Vec<Action>,
    ) {
        let branch = self.branch();
        let codecs: Vec<(Codec, u8)> = self
            .cfg
            .codecs
            .iter()
            .map(|c| (*c, c.payload_type()))
            .collect();
        let via = self.via(&branch);
        let contact = self.contact();
        let Some(c) = self.calls.get(id) else { return };
        let body = self.local_sdp(
            c,
            &codecs,
            if c.hold {
                Direction::SendOnly
            } else {
                Direction::SendRecv
            },
        );
        let Some(c) = self.calls.get_mut(id) else {
            return;
        };
        c.invite_branch = branch.clone();
        c.invite_cseq = c.local_cseq;
        let in_dialog = matches!(c.state, CallState::Active | CallState::Held);
        let (ruri, routes, dest) = if in_dialog {
            dialog_route(c)
        } else {
            (c.remote_target.clone(), Vec::new(), c.peer_addr)
        };
        let mut b = Builder::request("INVITE", &ruri)
            .header("Via", &via)
            .header("Max-Forwards", "70");
        for r in &routes {
            b = b.header("Route", r);
        }
        b = b
            .header("From", &c.local_hdr)
            .header("To", &c.remote_hdr)
            .header("Call-ID", &c.id)
            .header("CSeq", &format!("{} INVITE", c.local_cseq))
            .header("Contact", &contact)
            .header("Allow", ALLOW)
            .header("User-Agent", USER_AGENT);
        if let Some((name, value)) = auth {
            b = b.header(&name, &value);
        }
        let data = b.body("application/sdp", body).build();
        let purpose = if in_dialog {
            Purpose::ReInvite(id.to_string())
        } else {
            Purpose::Invite(id.to_string())
        };
        self.send_request(now, dest, data, branch, purpose, out);
    }

    fn in_dialog(&mut self, now: Instant, id: &str, method: &str, out: &mut Vec<Action>) {
        let branch = self.branch();
        let via = self.via(&branch);
        let Some(c) = self.calls.get_mut(id) else {
            return;
        };
        c.local_cseq += 1;
        let to = match &c.remote_tag {
            Some(t) if param(&c.remote_hdr, "tag").is_none() => format!("{};tag={t}", c.remote_hdr),
            _ => c.remote_hdr.clone(),
        };
        let (ruri, routes, dest) = dialog_route(c);
        let mut b = Builder::request(method, &ruri)
            .header("Via", &via)
            .header("Max-Forwards", "70");
        for r in &routes {
            b = b.header("Route", r);
        }
        let data = b
            .header("From", &c.local_hdr)
            .header("To", &to)
            .header("Call-ID", &c.id)
            .header("CSeq", &format!("{} {method}", c.local_cseq))
            .header("User-Agent", USER_AGENT);
        let data = match &c.bye_reason {
            Some(r) => data.header("Reason", r),
            None => data,
        }
        .build();
        let purpose = Purpose::Bye(id.to_string());
        self.send_request(now, dest, data, branch, purpose, out);
    }

    fn reinvite(&mut self, now: Instant, id: &str, hold: bool, out: &mut Vec<Action>) {
        let Some(c) = self.calls.get_mut(id) else {
            return;
        };
        if !matches!(c.state, CallState::Active | CallState::Held) {
            return;
        }
        c.hold = hold;
        c.local_cseq += 1;
        c.sdp_version += 1;
        self.send_invite(now, id, None, out);
    }

    fn hangup(&mut self, now: Instant, id: &str, out: &mut Vec<Action>) {
        let Some(c) = self.calls.get(id).cloned() else {
            return;
        };
        match c.state {
            CallState::Calling | CallState::Ringing => {
                // CANCEL: same branch, Request-URI, Call-ID, From, To and CSeq number as the INVITE.
                let data = Builder::request("CANCEL", &c.remote_target)
                    .header("Via", &self.via(&c.invite_branch))
                    .header("Max-Forwards", "70")
                    .header("From", &c.local_hdr)
                    .header("To", &c.remote_hdr)
                    .header("Call-ID", &c.id)
                    .header("CSeq", &format!("{} CANCEL", c.invite_cseq))
                    .build();
                if c.state == CallState::Calling {
                    // RFC 3261 9.1: CANCEL only after a provisional response; without one, give up locally.
                    self.txs
                        .retain(|t| t.purpose != Purpose::Invite(id.to_string()));
                    self.end_call(id, None, Some("cancelled before any response".into()), out);
                    return;
                }
                self.send_request(
                    now,
                    c.peer_addr,
                    data,
                    c.invite_branch.clone(),
                    Purpose::Cancel(id.to_string()),
                    out,
                );
                self.set_state(id, CallState::Terminating, None, None, out);
            }
            CallState::Incoming => {
                if let (Some(inv), Some(from)) = (&c.invite, c.invite_from) {
                    let resp =
                        Builder::response_to(inv, 603, "Decline", Some(&c.local_tag)).build();
                    out.push(Action::Send {
                        to: from,
                        data: resp,
                    });
                }
                self.end_call(id, Some(603), Some("declined".into()), out);
            }
            CallState::Active | CallState::Held => {
                self.in_dialog(now, id, "BYE", out);
                if c.media.is_some() {
                    out.push(Action::StopMedia(id.to_string()));
                    if let Some(cc) = self.calls.get_mut(id) {
                        cc.media = None;
                    }
                }
                self.set_state(id, CallState::Terminating, None, c.bye_reason, out);
            }
            CallState::Terminating | CallState::Ended => {}
        }
    }

    fn answer(&mut self, now: Instant, id: &str, out: &mut Vec<Action>) {
        let Some(c) = self.calls.get(id).cloned() else {
            return;
        };
        if c.state != CallState::Incoming {
            return;
        }
        let (Some(inv), Some(from)) = (c.invite.clone(), c.invite_from) else {
            return;
        };
        if inv.body.is_empty() {
            self.answer_with_offer(now, id, &c, &inv, from, out);
            return;
        }
        let offer = match Session::parse(&inv.body) {
            Ok(s) => s,
            Err(e) => {
                let r = Builder::response_to(&inv, 488, "Not Acceptable Here", Some(&c.local_tag))
                    .header("Warning", &format!("399 voipbridge \"{e}\""))
                    .build();
                out.push(Action::Send { to: from, data: r });
                self.end_call(id, Some(488), Some(e.to_string()), out);
                return;
            }
        };
        let (codec, pt) = match offer.choose(&self.cfg.codecs) {
            Ok(x) => x,
            Err(e) => {
                let r = Builder::response_to(&inv, 488, "Not Acceptable Here", Some(&c.local_tag))
                    .build();
                out.push(Action::Send { to: from, data: r });
                self.end_call(id, Some(488), Some(e.to_string()), out);
                return;
            }
        };
        let dir = offer.direction.answer();
        let te = offer.telephone_event;
        let port = self.cfg.rtp_base + 2 * c.slot as u16;
        let body = sdp::write(
            c.sdp_session,
            c.sdp_version,
            SocketAddr::new(self.cfg.local.ip(), port),
            &[(codec, pt)],
            te,
            self.cfg.ptime,
            dir,
        );
        self.send_2xx(now, id, &c, &inv, from, body, out);
        let media = MediaOffer {
            slot: c.slot,
            local_port: port,
            remote: offer.addr,
            codec,
            payload_type: pt,
            ptime: offer.ptime.unwrap_or(self.cfg.ptime),
            telephone_event: te,
            direction: dir,
        };
        if let Some(cc) = self.calls.get_mut(id) {
            cc.media = Some(media.clone());
            cc.answer_at = None;
            cc.answered = Some(now);
        }
        out.push(Action::StartMedia(id.to_string(), media));
        self.set_state(id, CallState::Active, None, None, out);
    }

    /// Sends the 200 OK to `inv` with the SDP `body` (an answer, or our
    /// offer for an offerless INVITE), retransmits it until the ACK comes
    /// (RFC 3261 13.3.1.4: T1 doubling, 64*T1 at most) and caches it for
    /// retransmitted INVITEs.
    #[allow(clippy::too_many_arguments)]
    fn send_2xx(
        &mut self,
        now: Instant,
        id: &str,
        c: &Call,
        inv: &Message,
        from: SocketAddr,
        body: Vec<u8>,
        out: &mut Vec<Action>,
    ) {
        let resp = Builder::response_to(inv, 200, "OK", Some(&c.local_tag))
            .header("Contact", &self.contact())
            .header("Allow", ALLOW)
            .header("User-Agent", USER_AGENT)
            .body("application/sdp", body)
            .build();
        out.push(Action::Send {
            to: from,
            data: resp.clone(),
        });
        self.pending_2xx.push(Pending2xx {
            call_id: id.to_string(),
            data: resp.clone(),
            to: from,
            next: now + self.cfg.t1,
            interval: self.cfg.t1,
            deadline: now + 64 * self.cfg.t1,
        });
        self.cache_response(inv, resp, from, now);
    }

    /// Answers an offerless INVITE (RFC 3264 5, RFC 3261 13.2.1): our offer
    /// (every configured codec, telephone-event) goes in the 200; the media
    /// starts when the ACK brings the answer ([`Ua::on_ack_answer`]).
    fn answer_with_offer(
        &mut self,
        now: Instant,
        id: &str,
        c: &Call,
        inv: &Message,
        from: SocketAddr,
        out: &mut Vec<Action>,
    ) {
        let codecs: Vec<(Codec, u8)> = self
            .cfg
            .codecs
            .iter()
            .map(|c| (*c, c.payload_type()))
            .collect();
        let body = self.local_sdp(c, &codecs, Direction::SendRecv);
        self.send_2xx(now, id, c, inv, from, body, out);
        if let Some(cc) = self.calls.get_mut(id) {
            cc.offer_in_2xx = true;
            cc.answer_at = None;
            cc.answered = Some(now);
        }
        tracing::info!(call = %id, "offerless INVITE: our offer is in the 200, waiting for the answer in the ACK");
        self.set_state(id, CallState::Active, None, None, out);
    }

    /// The ACK of an offerless INVITE carries the answer to our offer: start
    /// the media, or hang up with a Reason when it is missing or unusable.
    fn on_ack_answer(&mut self, now: Instant, id: &str, ack: &Message, out: &mut Vec<Action>) {
        let Some(c) = self.calls.get_mut(id) else {
            return;
        };
        c.offer_in_2xx = false;
        let slot = c.slot;
        let chosen = if ack.body.is_empty() {
            Err("no SDP answer in the ACK".to_string())
        } else {
            Session::parse(&ack.body)
                .map_err(|e| e.to_string())
                .and_then(|a| {
                    a.choose(&self.cfg.codecs)
                        .map(|x| (a.clone(), x))
                        .map_err(|e| e.to_string())
                })
        };
        match chosen {
            Ok((a, (codec, pt))) => {
                let media = MediaOffer {
                    slot,
                    local_port: self.cfg.rtp_base + 2 * slot as u16,
                    remote: a.addr,
                    codec,
                    payload_type: pt,
                    ptime: a.ptime.unwrap_or(self.cfg.ptime),
                    telephone_event: a.telephone_event,
                    direction: a.direction.answer(),
                };
                tracing::info!(call = %id, codec = codec.name(), remote = %a.addr, "answer from the ACK");
                if let Some(c) = self.calls.get_mut(id) {
                    c.media = Some(media.clone());
                }
                out.push(Action::StartMedia(id.to_string(), media));
            }
            Err(why) => {
                tracing::warn!(call = %id, "unusable answer in the ACK ({why}): hanging up");
                if let Some(c) = self.calls.get_mut(id) {
                    c.bye_reason = Some(format!("SIP;cause=488;text=\"{}\"", warning_text(&why)));
                }
                self.hangup(now, id, out);
            }
        }
    }

    fn cache_response(&mut self, req: &Message, data: Vec<u8>, to: SocketAddr, now: Instant) {
        if let (Some(b), Some(m)) = (req.via_branch(), req.method.clone()) {
            self.cache.insert(
                (b, m),
                ServerCache {
                    response: data,
                    to,
                    until: now + Duration::from_secs(32),
                },
            );
        }
    }

    fn respond(
        &mut self,
        now: Instant,
        req: &Message,
        from: SocketAddr,
        (code, reason): (u16, &str),
        extra: &[(&str, &str)],
        out: &mut Vec<Action>,
    ) {
        let tag = random_token(10);
        let mut b = Builder::response_to(req, code, reason, Some(&tag));
        for (n, v) in extra {
            b = b.header(n, v);
        }
        let data = b.build();
        out.push(Action::Send {
            to: from,
            data: data.clone(),
        });
        if code >= 200 {
            self.cache_response(req, data, from, now);
        }
    }

    fn on_datagram(&mut self, now: Instant, from: SocketAddr, data: &[u8], out: &mut Vec<Action>) {
        if data.iter().all(|b| b.is_ascii_whitespace()) {
            return; // keep-alive (RFC 5626 CRLF)
        }
        match Message::parse(data) {
            Ok(m) if m.method.is_some() => self.on_request(now, from, m, out),
            Ok(m) => self.on_response(now, from, m, out),
            Err(ParseError::BadRequest(why)) | Err(ParseError::Unparsable(why)) => {
                tracing::warn!(%from, "malformed request: {}", warning_text(&why));
                if let Some(req) = salvage_request(data) {
                    if req.method.as_deref() != Some("ACK") {
                        let warning = format!("399 voipbridge \"{}\"", warning_text(&why));
                        let resp =
                            Builder::response_to(&req, 400, "Bad Request", Some(&random_token(10)))
                                .header("Warning", &warning)
                                .build();
                        // The 400 copies the request's Via, From, To, Call-ID and CSeq: when one
                        // of them is itself malformed, so is the answer, and nothing is sent.
                        if Message::parse(&resp).is_ok() {
                            out.push(Action::Send {
                                to: from,
                                data: resp.clone(),
                            });
                            self.cache_response(&req, resp, from, now);
                        } else {
                            tracing::warn!(%from, "too malformed to answer: not sending 400");
                        }
                    }
                }
            }
            Err(ParseError::BadResponse(why)) => {
                tracing::warn!(%from, "dropping malformed response: {}", warning_text(&why))
            }
        }
    }

    fn on_request(&mut self, now: Instant, from: SocketAddr, req: Message, out: &mut Vec<Action>) {
        let method = req.method.clone().unwrap_or_default();
        // Retransmission of a request we already answered: replay the answer.
        if let Some(b) = req.via_branch() {
            if let Some(c) = self.cache.get(&(b.clone(), method.clone())) {
                out.push(Action::Send {
                    to: c.to,
                    data: c.response.clone(),
                });
                return;
            }
        }
        // RFC 3261 8.2.2.3: we implement no option tags, so any Require gets 420 listing them.
        if method != "ACK" && method != "CANCEL" {
            let required = req.header_values("require");
            if !required.is_empty() {
                let list = required.join(", ");
                tracing::info!(%method, require = %list, "unsupported extension required: 420");
                self.respond(
                    now,
                    &req,
                    from,
                    (420, "Bad Extension"),
                    &[("Unsupported", &list)],
                    out,
                );
                return;
            }
        }
        let id = req.call_id().to_string();
        match method.as_str() {
            "INVITE" => {
                if let Some(c) = self.calls.get(&id) {
                    if c.remote_tag.is_some() && req.to_tag().is_some() && c.dir == Dir::Incoming
                        || c.dir == Dir::Outgoing && req.to_tag().is_some()
                    {
                        self.on_reinvite(now, from, req, out);
                    } else {
                        // A retransmission before we answered (different branch only if broken): 100 again.
                        self.respond(now, &req, from, (100, "Trying"), &[], out);
                    }
                    return;
                }
                if req.to_tag().is_some() {
                    self.respond(
                        now,
                        &req,
                        from,
                        (481, "Call/Transaction Does Not Exist"),
                        &[],
                        out,
                    );
                    return;
                }
                self.on_invite(now, from, req, out);
            }
            "ACK" => {
                self.pending_2xx.retain(|p| p.call_id != id);
                let awaiting = self.calls.get(&id).is_some_and(|c| {
                    c.offer_in_2xx && req.to_tag().as_deref() == Some(c.local_tag.as_str())
                });
                if awaiting {
                    self.on_ack_answer(now, &id, &req, out);
                }
            }
            "INFO" => {
                if !self.calls.contains_key(&id) {
                    let r = (481, "Call/Transaction Does Not Exist");
                    self.respond(now, &req, from, r, &[], out);
                    return;
                }
                let ct = req
                    .header("content-type")
                    .unwrap_or("")
                    .to_ascii_lowercase();
                let ct = ct.split(';').next().unwrap_or("").trim().to_string();
                if req.body.is_empty() {
                    self.respond(now, &req, from, (200, "OK"), &[], out);
                } else if ct != "application/dtmf-relay" && ct != "application/dtmf" {
                    let accept = [("Accept", "application/dtmf-relay, application/dtmf")];
                    self.respond(
                        now,
                        &req,
                        from,
                        (415, "Unsupported Media Type"),
                        &accept,
                        out,
                    );
                } else if let Some(digit) = info_dtmf(&ct, &req.body) {
                    self.respond(now, &req, from, (200, "OK"), &[], out);
                    tracing::info!(call = %id, %digit, "DTMF (SIP INFO)");
                    out.push(Action::Event(Event::Dtmf { call_id: id, digit }));
                } else {
                    let w = [("Warning", "399 voipbridge \"no DTMF digit in the body\"")];
                    self.respond(now, &req, from, (400, "Bad Request"), &w, out);
                }
            }
            "BYE" => {
                if self.calls.contains_key(&id) {
                    self.respond(now, &req, from, (200, "OK"), &[], out);
                    self.txs
                        .retain(|t| !matches!(&t.purpose, Purpose::ReInvite(c) if *c == id));
                    self.end_call(&id, None, Some("BYE from peer".into()), out);
                } else {
                    self.respond(
                        now,
                        &req,
                        from,
                        (481, "Call/Transaction Does Not Exist"),
                        &[],
                        out,
                    );
                }
            }
            "CANCEL" => {
                let matching = self
                    .calls
                    .get(&id)
                    .filter(|c| {
                        c.state == CallState::Incoming
                            && c.invite.as_ref().and_then(|i| i.via_branch()) == req.via_branch()
                    })
                    .cloned();
                match matching {
                    Some(c) => {
                        self.respond(now, &req, from, (200, "OK"), &[], out);
                        if let (Some(inv), Some(f)) = (&c.invite, c.invite_from) {
                            let r = Builder::response_to(
                                inv,
                                487,
                                "Request Terminated",
                                Some(&c.local_tag),
                            )
                            .build();
                            out.push(Action::Send {
                                to: f,
                                data: r.clone(),
                            });
                            self.cache_response(inv, r, f, now);
                        }
                        self.end_call(&id, Some(487), Some("cancelled by caller".into()), out);
                    }
                    None => self.respond(
                        now,
                        &req,
                        from,
                        (481, "Call/Transaction Does Not Exist"),
                        &[],
                        out,
                    ),
                }
            }
            "OPTIONS" => self.respond(
                now,
                &req,
                from,
                (200, "OK"),
                &[
                    ("Allow", ALLOW),
                    ("Accept", "application/sdp"),
                    ("Supported", ""),
                    ("User-Agent", USER_AGENT),
                ],
                out,
            ),
            _ => self.respond(
                now,
                &req,
                from,
                (501, "Not Implemented"),
                &[("Allow", ALLOW)],
                out,
            ),
        }
    }

    fn on_invite(&mut self, now: Instant, from: SocketAddr, req: Message, out: &mut Vec<Action>) {
        let id = req.call_id().to_string();
        let peer = req.header_uri("from").unwrap_or_default();
        if let Some(ct) = req.header("content-type") {
            if !req.body.is_empty() && !ct.to_ascii_lowercase().starts_with("application/sdp") {
                self.respond(
                    now,
                    &req,
                    from,
                    (415, "Unsupported Media Type"),
                    &[("Accept", "application/sdp")],
                    out,
                );
                return;
            }
        }
        // An empty body is an offerless INVITE: our offer goes in the 200 (answer_with_offer).
        if let Err(e) = (!req.body.is_empty())
            .then(|| Session::parse(&req.body))
            .transpose()
        {
            self.respond(
                now,
                &req,
                from,
                (400, "Bad Request"),
                &[("Warning", &format!("399 voipbridge \"{e}\""))],
                out,
            );
            return;
        }
        if !self.cfg.allow_from.is_empty()
            && !self
                .cfg
                .allow_from
                .iter()
                .any(|a| peer.contains(a.as_str()))
        {
            tracing::info!(%peer, "refusing call from a caller not on the allow list");
            self.respond(now, &req, from, (603, "Decline"), &[], out);
            return;
        }
        if self.shutting_down {
            self.respond(now, &req, from, (503, "Service Unavailable"), &[], out);
            return;
        }
        let Some(slot) = self.free_slot() else {
            tracing::info!(%peer, "all substreams busy: 486");
            self.respond(now, &req, from, (486, "Busy Here"), &[], out);
            return;
        };
        // The remote target: every in-dialog request we send goes there (RFC 3261 12.1.1).
        let remote_target = req.header_uri("contact").unwrap_or_else(|| peer.clone());
        if !is_dialable(&remote_target) {
            let w = [("Warning", "399 voipbridge \"bad Contact URI\"")];
            self.respond(now, &req, from, (400, "Bad Request"), &w, out);
            return;
        }
        let local_tag = random_token(10);
        let to = req.header("to").unwrap_or("").to_string();
        let call = Call {
            id: id.clone(),
            dir: Dir::Incoming,
            state: CallState::Incoming,
            local_hdr: format!("{to};tag={local_tag}"),
            local_tag: local_tag.clone(),
            remote_tag: req.from_tag(),
            remote_hdr: req.header("from").unwrap_or("").to_string(),
            peer_uri: peer.clone(),
            remote_target,
            route_set: req.header_values("record-route"),
            peer_addr: from,
            local_cseq: 0,
            slot,
            invite: Some(req.clone()),
            invite_from: Some(from),
            invite_branch: req.via_branch().unwrap_or_default(),
            invite_cseq: req.cseq().map(|c| c.0).unwrap_or(0),
            answer_at: self.cfg.auto_answer.map(|d| now + d),
            created: now,
            answered: None,
            media: None,
            sdp_session: u64::from(rand::random::<u32>()),
            sdp_version: 1,
            auth_tries: 0,
            hold: false,
            offer_in_2xx: false,
            bye_reason: None,
        };
        self.calls.insert(id.clone(), call);
        out.push(Action::Send {
            to: from,
            data: Builder::response_to(&req, 100, "Trying", None).build(),
        });
        out.push(Action::Send {
            to: from,
            data: Builder::response_to(&req, 180, "Ringing", Some(&local_tag))
                .header("Contact", &self.contact())
                .build(),
        });
        tracing::info!(call = %id, %peer, slot, "incoming call");
        out.push(Action::Event(Event::Call {
            call_id: id.clone(),
            state: CallState::Incoming,
            peer,
            code: None,
            reason: None,
        }));
        if self.cfg.auto_answer == Some(Duration::ZERO) {
            self.answer(now, &id, out);
        }
    }

    fn on_reinvite(&mut self, now: Instant, from: SocketAddr, req: Message, out: &mut Vec<Action>) {
        let id = req.call_id().to_string();
        let Some(c) = self.calls.get(&id).cloned() else {
            return;
        };
        let offer = match Session::parse(&req.body) {
            Ok(o) => o,
            Err(e) => {
                self.respond(
                    now,
                    &req,
                    from,
                    (488, "Not Acceptable Here"),
                    &[("Warning", &format!("399 voipbridge \"{e}\""))],
                    out,
                );
                return;
            }
        };
        let Some(media) = c.media.clone() else {
            self.respond(now, &req, from, (491, "Request Pending"), &[], out);
            return;
        };
        let dir = offer.direction.answer();
        let body = sdp::write(
            c.sdp_session,
            c.sdp_version + 1,
            SocketAddr::new(self.cfg.local.ip(), media.local_port),
            &[(media.codec, media.payload_type)],
            media.telephone_event,
            media.ptime,
            dir,
        );
        let resp = Builder::response_to(&req, 200, "OK", Some(&c.local_tag))
            .header("Contact", &self.contact())
            .body("application/sdp", body)
            .build();
        out.push(Action::Send {
            to: from,
            data: resp.clone(),
        });
        self.cache_response(&req, resp.clone(), from, now);
        self.pending_2xx.push(Pending2xx {
            call_id: id.clone(),
            data: resp,
            to: from,
            next: now + self.cfg.t1,
            interval: self.cfg.t1,
            deadline: now + 64 * self.cfg.t1,
        });
        if let Some(cc) = self.calls.get_mut(&id) {
            cc.sdp_version += 1;
            if let Some(m) = cc.media.as_mut() {
                m.remote = offer.addr;
                m.direction = dir;
            }
        }
        out.push(Action::UpdateMedia(id.clone(), offer.addr, dir));
        let state = if dir == Direction::SendRecv {
            CallState::Active
        } else {
            CallState::Held
        };
        self.set_state(
            &id,
            state,
            None,
            Some(format!("peer offered {}", offer.direction.attr())),
            out,
        );
    }

    fn on_response(
        &mut self,
        now: Instant,
        from: SocketAddr,
        resp: Message,
        out: &mut Vec<Action>,
    ) {
        let Some(code) = resp.status else { return };
        let Some((_, cseq_method)) = resp.cseq() else {
            return;
        };
        let branch = resp.via_branch().unwrap_or_default();
        let Some(idx) = self
            .txs
            .iter()
            .position(|t| t.branch == branch && t.method == cseq_method)
        else {
            // A retransmitted 2xx to our INVITE: ACK it again.
            if cseq_method == "INVITE" && (200..300).contains(&code) {
                let id = resp.call_id().to_string();
                if self.calls.contains_key(&id) {
                    self.send_ack(&id, &resp, out);
                }
            }
            return;
        };
        if code < 200 {
            self.txs[idx].provisional = true;
            if let Purpose::Invite(id) = self.txs[idx].purpose.clone() {
                if code > 100 {
                    if let Some(c) = self.calls.get_mut(&id) {
                        c.remote_tag = resp.to_tag().or(c.remote_tag.take());
                    }
                    self.set_state(
                        &id,
                        CallState::Ringing,
                        Some(code),
                        Some(resp.reason.clone()),
                        out,
                    );
                }
            }
            return;
        }
        let tx = self.txs.remove(idx);
        if tx.method == "INVITE" && code >= 300 {
            // The transaction ACKs a non-2xx final response (same branch).
            let ack = self.ack_for_failure(&tx, &resp);
            out.push(Action::Send {
                to: tx.dest,
                data: ack,
            });
        }
        match tx.purpose {
            Purpose::Register { expires } => {
                self.on_register_response(now, expires, &resp, code, out)
            }
            Purpose::Invite(id) => self.on_invite_response(now, from, &id, &resp, code, out),
            Purpose::ReInvite(id) => {
                if (200..300).contains(&code) {
                    self.send_ack(&id, &resp, out);
                    if let Ok(ans) = Session::parse(&resp.body) {
                        let hold = self.calls.get(&id).is_some_and(|c| c.hold);
                        let dir = if hold {
                            Direction::SendOnly
                        } else {
                            Direction::SendRecv
                        };
                        out.push(Action::UpdateMedia(id.clone(), ans.addr, dir));
                        self.set_state(
                            &id,
                            if hold {
                                CallState::Held
                            } else {
                                CallState::Active
                            },
                            None,
                            None,
                            out,
                        );
                    }
                } else {
                    tracing::warn!(call = %id, code, "re-INVITE refused: {}", resp.reason);
                }
            }
            Purpose::Bye(id) => self.end_call(&id, None, Some("hung up".into()), out),
            Purpose::Cancel(_) => {}
        }
    }

    fn ack_for_failure(&self, tx: &ClientTx, resp: &Message) -> Vec<u8> {
        let req = Message::parse(&tx.data).ok();
        let ruri = req.as_ref().map(|r| r.uri.clone()).unwrap_or_default();
        Builder::request("ACK", &ruri)
            .header("Via", &self.via(&tx.branch))
            .header("Max-Forwards", "70")
            .header("From", resp.header("from").unwrap_or(""))
            .header("To", resp.header("to").unwrap_or(""))
            .header("Call-ID", resp.call_id())
            .header(
                "CSeq",
                &format!("{} ACK", resp.cseq().map(|c| c.0).unwrap_or(1)),
            )
            .build()
    }

    fn send_ack(&mut self, id: &str, resp: &Message, out: &mut Vec<Action>) {
        let branch = self.branch();
        let via = self.via(&branch);
        let Some(c) = self.calls.get(id) else { return };
        let cseq = resp.cseq().map(|c| c.0).unwrap_or(c.invite_cseq);
        let (ruri, routes, dest) = dialog_route(c);
        let mut b = Builder::request("ACK", &ruri)
            .header("Via", &via)
            .header("Max-Forwards", "70");
        for r in &routes {
            b = b.header("Route", r);
        }
        let data = b
            .header("From", &c.local_hdr)
            .header("To", resp.header("to").unwrap_or(""))
            .header("Call-ID", &c.id)
            .header("CSeq", &format!("{cseq} ACK"))
            .build();
        out.push(Action::Send { to: dest, data });
    }

    fn on_invite_response(
        &mut self,
        now: Instant,
        _from: SocketAddr,
        id: &str,
        resp: &Message,
        code: u16,
        out: &mut Vec<Action>,
    ) {
        if !self.calls.contains_key(id) {
            return;
        }
        if (200..300).contains(&code) {
            if let Some(c) = self.calls.get_mut(id) {
                c.remote_tag = resp.to_tag();
                c.remote_hdr = resp.header("to").unwrap_or("").to_string();
                if let Some(t) = resp.header_uri("contact").filter(|t| is_dialable(t)) {
                    c.remote_target = t;
                }
                // UAC route set: the 2xx's Record-Route in reverse order (RFC 3261 12.1.2).
                let mut rr = resp.header_values("record-route");
                rr.reverse();
                c.route_set = rr;
            }
            self.send_ack(id, resp, out);
            if self
                .calls
                .get(id)
                .is_some_and(|c| c.state == CallState::Terminating)
            {
                // Answered while we were cancelling: hang up now.
                if let Some(c) = self.calls.get_mut(id) {
                    c.state = CallState::Active;
                }
                self.hangup(now, id, out);
                return;
            }
            let answer = Session::parse(&resp.body);
            let chosen = answer.as_ref().map_err(|e| e.to_string()).and_then(|a| {
                a.choose(&self.cfg.codecs)
                    .map(|x| (a.clone(), x))
                    .map_err(|e| e.to_string())
            });
            match chosen {
                Ok((a, (codec, pt))) => {
                    let Some(c) = self.calls.get_mut(id) else {
                        return;
                    };
                    let media = MediaOffer {
                        slot: c.slot,
                        local_port: self.cfg.rtp_base + 2 * c.slot as u16,
                        remote: a.addr,
                        codec,
                        payload_type: pt,
                        ptime: a.ptime.unwrap_or(self.cfg.ptime),
                        telephone_event: a.telephone_event,
                        direction: a.direction.answer(),
                    };
                    c.media = Some(media.clone());
                    c.answered = Some(now);
                    out.push(Action::StartMedia(id.to_string(), media));
                    self.set_state(id, CallState::Active, Some(code), None, out);
                }
                Err(e) => {
                    tracing::error!(call = %id, "unusable SDP answer: {e}; hanging up");
                    if let Some(c) = self.calls.get_mut(id) {
                        c.state = CallState::Active;
                    }
                    self.hangup(now, id, out);
                }
            }
            return;
        }
        if code == 401 || code == 407 {
            let tries = self.calls.get(id).map_or(9, |c| c.auth_tries);
            let hdr = if code == 401 {
                "www-authenticate"
            } else {
                "proxy-authenticate"
            };
            if tries < 2 {
                if let Some(Ok(ch)) = resp.header(hdr).map(Challenge::parse) {
                    let Some(c) = self.calls.get_mut(id) else {
                        return;
                    };
                    c.auth_tries += 1;
                    c.local_cseq += 1;
                    let uri = c.remote_target.clone();
                    let auth = ch.authorize(
                        &self.cfg.username,
                        &self.cfg.password,
                        "INVITE",
                        &uri,
                        1,
                        &random_token(8),
                    );
                    let name = if code == 401 {
                        "Authorization"
                    } else {
                        "Proxy-Authorization"
                    };
                    self.send_invite(now, id, Some((name.to_string(), auth)), out);
                    return;
                }
            }
        }
        tracing::warn!(call = %id, code, reason = %resp.reason, "call failed");
        self.end_call(id, Some(code), Some(resp.reason.clone()), out);
    }

    fn on_register_response(
        &mut self,
        now: Instant,
        expires: u32,
        resp: &Message,
        code: u16,
        out: &mut Vec<Action>,
    ) {
        if expires == 0 {
            self.reg_state = if self.cfg.registrar.is_some() {
                RegState::Unregistered
            } else {
                RegState::Disabled
            };
            out.push(Action::Event(Event::Unregistered));
            return;
        }
        match code {
            200..=299 => {
                // rport/received: re-register with the address the registrar sees (NAT).
                if let Some(via) = resp.header_values("via").first() {
                    let rec = param(via, "received").and_then(|r| r.parse::<IpAddr>().ok());
                    let rport = param(via, "rport").and_then(|r| r.parse::<u16>().ok());
                    if let (Some(ip), Some(port)) = (
                        rec.or(Some(self.contact_addr.ip())),
                        rport.or(Some(self.contact_addr.port())),
                    ) {
                        let seen = SocketAddr::new(ip, port);
                        if seen != self.contact_addr
                            && (rec.is_some() || rport.is_some())
                            && seen.ip() != self.cfg.local.ip()
                        {
                            tracing::info!(%seen, "registrar sees us at another address: updating Contact");
                            self.contact_addr = seen;
                            self.register(now, expires, out);
                            return;
                        }
                    }
                }
                let granted = resp
                    .header_values("contact")
                    .iter()
                    .find(|c| addr_uri(c).contains(&fmt_host(&self.contact_addr)))
                    .and_then(|c| param(c, "expires"))
                    .and_then(|e| e.parse().ok())
                    .or_else(|| resp.header("expires").and_then(|e| e.trim().parse().ok()))
                    .unwrap_or(expires);
                self.reg_state = RegState::Registered;
                self.reg_expires = granted;
                self.reg_backoff = Duration::from_secs(5);
                let refresh = Duration::from_secs(u64::from(granted))
                    .mul_f32(0.8)
                    .max(Duration::from_secs(1));
                self.reg_refresh = Some(now + refresh);
                tracing::info!(expires = granted, "registered");
                out.push(Action::Event(Event::Registered { expires: granted }));
            }
            401 | 407 => {
                let hdr = if code == 401 {
                    "www-authenticate"
                } else {
                    "proxy-authenticate"
                };
                let parsed = resp.header(hdr).map(Challenge::parse);
                let had = self.challenge.as_ref().map(|c| c.0.nonce.clone());
                match parsed {
                    Some(Ok(ch))
                        if had.is_none()
                            || ch.stale
                            || had.as_deref() != Some(&ch.nonce) && self.reg_cseq < 3 =>
                    {
                        self.challenge = Some((ch, 0, code == 407));
                        self.register(now, expires, out);
                    }
                    Some(Ok(_)) => self.reg_failed(
                        now,
                        code,
                        "authentication failed: check username and password",
                        out,
                    ),
                    Some(Err(e)) => self.reg_failed(now, code, &e.to_string(), out),
                    None => {
                        self.reg_failed(now, code, "challenge without an authenticate header", out)
                    }
                }
            }
            423 => {
                let min = resp
                    .header("min-expires")
                    .and_then(|m| m.trim().parse().ok())
                    .unwrap_or(expires * 2);
                self.cfg.expires = min;
                self.register(now, min, out);
            }
            _ => self.reg_failed(now, code, &resp.reason.clone(), out),
        }
    }

    fn reg_failed(&mut self, now: Instant, code: u16, reason: &str, out: &mut Vec<Action>) {
        tracing::error!(code, %reason, retry_in = ?self.reg_backoff, "registration failed");
        self.reg_state = RegState::Failed;
        self.challenge = None;
        out.push(Action::Event(Event::RegistrationFailed {
            code,
            reason: reason.to_string(),
        }));
        if !self.shutting_down {
            self.reg_refresh = Some(now + self.reg_backoff);
            self.reg_backoff = (self.reg_backoff * 2).min(Duration::from_secs(300));
        }
    }

    /// A client transaction ended without a final response: timeout (408)
    /// or transport error (503, RFC 3261 8.1.3.1).
    fn tx_failed(&mut self, now: Instant, t: ClientTx, code: u16, out: &mut Vec<Action>) {
        let transport = code == 503;
        match t.purpose {
            Purpose::Register { expires } if expires > 0 => {
                let why = if transport {
                    "cannot reach the registrar"
                } else {
                    "registrar did not answer"
                };
                self.reg_failed(now, code, why, out)
            }
            Purpose::Register { .. } => out.push(Action::Event(Event::Unregistered)),
            Purpose::Invite(id) => {
                if !transport
                    && self
                        .calls
                        .get(&id)
                        .is_some_and(|c| c.state == CallState::Ringing)
                {
                    // Ringing for 64·T1 is fine for INVITE: keep waiting (timer C is the proxy's).
                    return;
                }
                let why = if transport {
                    "cannot reach the peer"
                } else {
                    "no answer from the peer"
                };
                self.end_call(&id, Some(code), Some(why.into()), out);
            }
            Purpose::Bye(id) | Purpose::Cancel(id) => {
                self.end_call(&id, Some(code), Some("peer did not confirm".into()), out)
            }
            Purpose::ReInvite(_) => {}
        }
    }

    fn on_transport_error(&mut self, now: Instant, to: SocketAddr, out: &mut Vec<Action>) {
        let (failed, kept): (Vec<ClientTx>, Vec<ClientTx>) = std::mem::take(&mut self.txs)
            .into_iter()
            .partition(|t| t.dest == to);
        self.txs = kept;
        for t in failed {
            tracing::warn!(method = %t.method, dest = %t.dest, "transport error: transaction failed");
            self.tx_failed(now, t, 503, out);
        }
    }

    fn on_timers(&mut self, now: Instant, out: &mut Vec<Action>) {
        // Client transactions: retransmit or time out.
        let mut timed_out = Vec::new();
        for t in self.txs.iter_mut() {
            if now >= t.deadline {
                timed_out.push(t.clone());
                continue;
            }
            if now >= t.next && !(t.method == "INVITE" && t.provisional) {
                out.push(Action::Send {
                    to: t.dest,
                    data: t.data.clone(),
                });
                t.interval = if t.method == "INVITE" {
                    t.interval * 2
                } else {
                    (t.interval * 2).min(self.cfg.t2)
                };
                t.next = now + t.interval;
            } else if now >= t.next {
                t.next = t.deadline;
            }
        }
        self.txs.retain(|t| now < t.deadline);
        for t in timed_out {
            tracing::warn!(method = %t.method, dest = %t.dest, "transaction timed out");
            self.tx_failed(now, t, 408, out);
        }
        // 2xx retransmission until ACK (timer G/H).
        let mut no_ack = Vec::new();
        for p in self.pending_2xx.iter_mut() {
            if now >= p.deadline {
                no_ack.push(p.call_id.clone());
            } else if now >= p.next {
                out.push(Action::Send {
                    to: p.to,
                    data: p.data.clone(),
                });
                p.interval = (p.interval * 2).min(self.cfg.t2);
                p.next = now + p.interval;
            }
        }
        self.pending_2xx.retain(|p| now < p.deadline);
        for id in no_ack {
            tracing::warn!(call = %id, "no ACK for our 200 OK: hanging up");
            self.hangup(now, &id, out);
        }
        // Auto-answer.
        let due: Vec<String> = self
            .calls
            .values()
            .filter(|c| c.answer_at.is_some_and(|t| now >= t))
            .map(|c| c.id.clone())
            .collect();
        for id in due {
            self.answer(now, &id, out);
        }
        // Registration refresh / retry.
        if self.reg_refresh.is_some_and(|t| now >= t) {
            self.reg_refresh = None;
            self.register(now, self.cfg.expires, out);
        }
        self.cache.retain(|_, c| now < c.until);
    }
}
