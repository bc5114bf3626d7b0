//! The transaction layer (RFC 3261 17, with RFC 6026's Accepted state): the
//! four state machines — INVITE client (timers A, B, D, M), non-INVITE
//! client (E, F, K), INVITE server (G, H, I, L) and non-INVITE server (J) —
//! as a sans-IO table.
//!
//! * Client transactions are keyed by the top Via branch and the CSeq method
//!   (17.1.3); server transactions by branch, sent-by and method, ACK
//!   matching its INVITE (17.2.3). A request from an RFC 2543 peer (no
//!   `z9hG4bK` magic cookie) is keyed by Request-URI, From tag, Call-ID, CSeq
//!   number and the whole top Via instead, and an ACK's To tag is checked
//!   against the one our final response carried (17.2.3's fallback).
//! * Lookups are `HashMap`s (O(1), SipHash keyed at random, so a peer cannot
//!   aim collisions at it); timers live in one ordered set of (due, id)
//!   (O(log n) to arm, [`Transactions::next_timeout`] is its first entry).
//! * The table is bounded. When the server side is full, a new request that
//!   the TU calls a priority (a live dialog, the registrar, an authorised
//!   caller) evicts the oldest server transaction that has finished its
//!   work (Completed, Confirmed); any other gets no transaction: the TU
//!   answers it statelessly (RFC 3261 8.2.7), so a flood cannot grow memory.
//! * A non-2xx final response of an INVITE server transaction is kept and
//!   retransmitted (timer G, unreliable transports) until the ACK (then
//!   timer I absorbs retransmitted ACKs) or timer H; retransmitted INVITEs
//!   get it again. A 2xx is retransmitted here too (RFC 3261 13.3.1.4 puts
//!   it in the UAS core; one place for every retransmission is simpler)
//!   until the TU reports the ACK ([`Transactions::ack_received`]) or 64·T1.
//! * The INVITE client transaction ACKs every non-2xx final response itself,
//!   on the INVITE's branch (17.1.1.3), and again for each retransmission of
//!   it while timer D runs. Timer B runs only in Calling (17.1.1.2): a
//!   callee that rings for minutes is not timed out here (the TU's ring
//!   timeout decides). 2xx responses, retransmissions included, go to the TU
//!   while timer M runs: ACKs for 2xx are end-to-end (13.2.2.4).
//!
//! Over a reliable transport no retransmission timer (A, E, G) is started
//! and D, I, J, K are zero; B, F, H, L, M still bound every transaction.

use super::message::{Builder, Message};
use std::collections::{BTreeSet, HashMap};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// The RFC 3261 magic cookie that starts every RFC 3261 branch (8.1.1.7).
pub const MAGIC_COOKIE: &str = "z9hG4bK";

/// Timer values and table bounds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TxConfig {
    /// RTT estimate (500 ms).
    pub t1: Duration,
    /// Longest retransmit interval of non-INVITE requests and INVITE responses (4 s).
    pub t2: Duration,
    /// Longest time a message stays in the network (5 s).
    pub t4: Duration,
    /// Reliable transport (TCP, TLS): no retransmissions, zero wait timers.
    pub reliable: bool,
    /// Most server transactions kept.
    pub max_server: usize,
    /// Most client transactions kept.
    pub max_client: usize,
}

impl Default for TxConfig {
    fn default() -> TxConfig {
        TxConfig {
            t1: Duration::from_millis(500),
            t2: Duration::from_secs(4),
            t4: Duration::from_secs(5),
            reliable: false,
            max_server: 2048,
            max_client: 256,
        }
    }
}

/// A transaction's handle.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TxId(u64);

/// Which of the four state machines.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TxKind {
    /// INVITE client transaction (17.1.1).
    InviteClient,
    /// Non-INVITE client transaction (17.1.2).
    NonInviteClient,
    /// INVITE server transaction (17.2.1).
    InviteServer,
    /// Non-INVITE server transaction (17.2.2).
    NonInviteServer,
}

/// Transaction states (17; Accepted from RFC 6026).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TxState {
    /// INVITE client: request sent, nothing heard.
    Calling,
    /// Non-INVITE: request sent or received, no response yet.
    Trying,
    /// A provisional response was received / sent.
    Proceeding,
    /// A final response was received / sent; waiting for retransmissions.
    Completed,
    /// INVITE server: the ACK for a non-2xx arrived (timer I).
    Confirmed,
    /// INVITE: a 2xx was received / sent (RFC 6026).
    Accepted,
}

/// Server transaction key (RFC 3261 17.2.3).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ServerKey {
    /// The branch, or for an RFC 2543 request its matching fields.
    pub branch: String,
    /// The top Via's sent-by, lower case.
    pub sent_by: String,
    /// The method; ACK is keyed as the INVITE it acknowledges.
    pub method: String,
}

impl ServerKey {
    /// The key of a request; `None` for a request without a Via.
    pub fn of(req: &Message) -> Option<ServerKey> {
        let method = match req.method() {
            "ACK" => "INVITE".to_string(),
            m => m.to_string(),
        };
        let top = req.top_via()?;
        let sent_by = req.via_sent_by().unwrap_or_default();
        let branch = match req.via_branch() {
            Some(b) if b.starts_with(MAGIC_COOKIE) => b,
            _ => rfc2543_id(req, &top),
        };
        Some(ServerKey {
            branch,
            sent_by,
            method,
        })
    }

    /// Whether the key came from an RFC 2543 request (no magic cookie).
    pub fn is_rfc2543(&self) -> bool {
        !self.branch.starts_with(MAGIC_COOKIE)
    }
}

/// RFC 2543 matching (17.2.3): Request-URI, From tag, Call-ID, CSeq number
/// and top Via. (The To tag is checked separately for ACK: the INVITE has
/// none, its ACK has ours.)
fn rfc2543_id(req: &Message, top_via: &str) -> String {
    format!(
        "2543|{}|{}|{}|{}|{}",
        req.uri,
        req.from_tag().unwrap_or_default(),
        req.call_id(),
        req.cseq().map(|c| c.0).unwrap_or(0),
        top_via.trim()
    )
}

/// Client transaction key (17.1.3).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct ClientKey {
    branch: String,
    method: String,
}

#[derive(Debug, Clone)]
enum Key {
    Client(ClientKey),
    Server(ServerKey),
}

/// What the transaction layer tells the TU.
#[derive(Debug, Clone)]
pub enum TxEvent<T> {
    /// A new request. `tx` is its server transaction; `None` when it has
    /// none: the table was full (answer statelessly) or it is an ACK that
    /// matched no INVITE server transaction (the ACK of a 2xx, for the
    /// dialog). An ACK matching an INVITE server transaction in Accepted
    /// (a peer that reuses the INVITE's branch) comes with that `tx`.
    Request {
        /// The server transaction.
        tx: Option<TxId>,
        /// The request.
        req: Message,
        /// Its source.
        from: SocketAddr,
    },
    /// A response for a client transaction: the first of each provisional
    /// and final, and for INVITE every 2xx while timer M runs.
    Response {
        /// The client transaction.
        tx: TxId,
        /// Its owner.
        owner: Option<T>,
        /// The response.
        resp: Message,
    },
    /// A response that matched no client transaction (a 2xx retransmitted
    /// after timer M, a stray).
    Stray {
        /// The response.
        resp: Message,
        /// Its source.
        from: SocketAddr,
    },
    /// A client transaction ended without a final response: timer B or F
    /// (408, RFC 3261 8.1.3.1), or a transport error (503).
    Timeout {
        /// The client transaction.
        tx: TxId,
        /// Its owner.
        owner: Option<T>,
        /// Its method.
        method: String,
        /// A transport error rather than a timeout.
        transport: bool,
    },
    /// An INVITE server transaction's final response was never ACKed
    /// (timer H for a non-2xx, 64·T1 for a 2xx).
    NoAck {
        /// The server transaction.
        tx: TxId,
        /// Its owner.
        owner: Option<T>,
        /// The final response's status.
        code: u16,
    },
}

#[derive(Debug)]
struct Tx<T> {
    kind: TxKind,
    state: TxState,
    key: Key,
    /// Client: the destination; server: where responses go (the request's source).
    peer: SocketAddr,
    owner: Option<T>,
    /// Client: the request, for retransmission and the ACK of a non-2xx.
    request: Vec<u8>,
    /// Server: the last response sent; client INVITE: the ACK of a non-2xx.
    last: Option<Vec<u8>>,
    /// Server: status of the last response.
    code: u16,
    /// INVITE server: To tag of the final response (RFC 2543 ACK matching).
    to_tag: Option<String>,
    retransmit_at: Option<Instant>,
    interval: Duration,
    timeout_at: Option<Instant>,
    /// Its entry in the timer index.
    due: Option<Instant>,
    /// Its entry in the eviction index.
    finished: Option<Instant>,
}

/// Counters, for `status` and tests.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct TxStats {
    /// Server transactions held now.
    pub server: usize,
    /// Client transactions held now.
    pub client: usize,
    /// Finished server transactions evicted to make room.
    pub evicted: u64,
    /// Requests answered without a transaction because the table was full.
    pub stateless: u64,
}

/// The transaction table; `T` is the TU's owner tag of a transaction.
#[derive(Debug)]
pub struct Transactions<T> {
    cfg: TxConfig,
    next: u64,
    txs: HashMap<TxId, Tx<T>>,
    client_index: HashMap<ClientKey, TxId>,
    server_index: HashMap<ServerKey, TxId>,
    timers: BTreeSet<(Instant, TxId)>,
    finished: BTreeSet<(Instant, TxId)>,
    stats: TxStats,
}

/// Why a client transaction was not created.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TxError {
    /// The client table is full.
    #[error("too many client transactions")]
    Full,
    /// A transaction with that branch and method exists.
    #[error("duplicate branch")]
    Duplicate,
}

/// Messages the layer wants sent: (destination, bytes).
pub type Outbox = Vec<(SocketAddr, Vec<u8>)>;

impl<T: Clone> Transactions<T> {
    /// An empty table.
    pub fn new(cfg: TxConfig) -> Transactions<T> {
        Transactions {
            cfg,
            next: 0,
            txs: HashMap::new(),
            client_index: HashMap::new(),
            server_index: HashMap::new(),
            timers: BTreeSet::new(),
            finished: BTreeSet::new(),
            stats: TxStats::default(),
        }
    }

    /// The configuration.
    pub fn config(&self) -> &TxConfig {
        &self.cfg
    }

    /// Counters.
    pub fn stats(&self) -> TxStats {
        TxStats {
            server: self.server_index.len(),
            client: self.client_index.len(),
            ..self.stats
        }
    }

    /// When [`Transactions::on_timers`] is next due.
    pub fn next_timeout(&self) -> Option<Instant> {
        self.timers.first().map(|(t, _)| *t)
    }

    /// A transaction's state (`None` once it ended).
    pub fn state(&self, tx: TxId) -> Option<TxState> {
        self.txs.get(&tx).map(|t| t.state)
    }

    /// A transaction's owner.
    pub fn owner(&self, tx: TxId) -> Option<&T> {
        self.txs.get(&tx)?.owner.as_ref()
    }

    /// Sets the owner of a (server) transaction.
    pub fn set_owner(&mut self, tx: TxId, owner: T) {
        if let Some(t) = self.txs.get_mut(&tx) {
            t.owner = Some(owner);
        }
    }

    /// Where a server transaction's responses go / a client's requests went.
    pub fn peer(&self, tx: TxId) -> Option<SocketAddr> {
        self.txs.get(&tx).map(|t| t.peer)
    }

    /// Ends a transaction at once, without any event.
    pub fn terminate(&mut self, tx: TxId) {
        let Some(t) = self.txs.remove(&tx) else {
            return;
        };
        match &t.key {
            Key::Client(k) => {
                self.client_index.remove(k);
            }
            Key::Server(k) => {
                self.server_index.remove(k);
            }
        }
        if let Some(d) = t.due {
            self.timers.remove(&(d, tx));
        }
        if let Some(f) = t.finished {
            self.finished.remove(&(f, tx));
        }
    }

    fn new_id(&mut self) -> TxId {
        self.next += 1;
        TxId(self.next)
    }

    /// Re-files a transaction in the timer index after its timers changed.
    fn reschedule(&mut self, tx: TxId) {
        let Some(t) = self.txs.get_mut(&tx) else {
            return;
        };
        let due = match (t.retransmit_at, t.timeout_at) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        if due == t.due {
            return;
        }
        if let Some(d) = t.due {
            self.timers.remove(&(d, tx));
        }
        t.due = due;
        if let Some(d) = due {
            self.timers.insert((d, tx));
        }
    }

    /// Marks a server transaction as finished (evictable) from `now`.
    fn mark_finished(&mut self, tx: TxId, now: Instant) {
        if let Some(t) = self.txs.get_mut(&tx) {
            if t.finished.is_none() {
                t.finished = Some(now);
                self.finished.insert((now, tx));
            }
        }
    }

    /// Starts a client transaction: sends `data` to `dest` and arms its
    /// timers. `method` is the CSeq method (INVITE makes an INVITE client
    /// transaction; ACK is never a transaction).
    #[allow(clippy::too_many_arguments)]
    pub fn client(
        &mut self,
        now: Instant,
        dest: SocketAddr,
        data: Vec<u8>,
        branch: &str,
        method: &str,
        owner: T,
        out: &mut Outbox,
    ) -> Result<TxId, TxError> {
        if self.client_index.len() >= self.cfg.max_client {
            return Err(TxError::Full);
        }
        let key = ClientKey {
            branch: branch.to_string(),
            method: method.to_string(),
        };
        if self.client_index.contains_key(&key) {
            return Err(TxError::Duplicate);
        }
        let id = self.new_id();
        let invite = method == "INVITE";
        let retransmit_at = (!self.cfg.reliable).then(|| now + self.cfg.t1);
        out.push((dest, data.clone()));
        self.client_index.insert(key.clone(), id);
        self.txs.insert(
            id,
            Tx {
                kind: if invite {
                    TxKind::InviteClient
                } else {
                    TxKind::NonInviteClient
                },
                state: if invite {
                    TxState::Calling
                } else {
                    TxState::Trying
                },
                key: Key::Client(key),
                peer: dest,
                owner: Some(owner),
                request: data,
                last: None,
                code: 0,
                to_tag: None,
                retransmit_at,
                interval: self.cfg.t1,
                // Timer B / F.
                timeout_at: Some(now + 64 * self.cfg.t1),
                due: None,
                finished: None,
            },
        );
        self.reschedule(id);
        Ok(id)
    }

    /// Whether a client transaction has received a provisional response
    /// (RFC 3261 9.1: only then may it be cancelled).
    pub fn provisional_received(&self, tx: TxId) -> bool {
        self.txs
            .get(&tx)
            .is_some_and(|t| t.state == TxState::Proceeding)
    }

    /// Feeds a parsed message. `priority` requests (in a live dialog, from
    /// the registrar, from an authorised caller) may evict finished server
    /// transactions when the table is full.
    pub fn receive(
        &mut self,
        now: Instant,
        from: SocketAddr,
        msg: Message,
        priority: bool,
        out: &mut Outbox,
    ) -> Option<TxEvent<T>> {
        if msg.is_request() {
            self.receive_request(now, from, msg, priority, out)
        } else {
            self.receive_response(now, from, msg, out)
        }
    }

    fn receive_response(
        &mut self,
        now: Instant,
        from: SocketAddr,
        resp: Message,
        out: &mut Outbox,
    ) -> Option<TxEvent<T>> {
        let code = resp.status?;
        let (_, method) = resp.cseq()?;
        let key = ClientKey {
            branch: resp.via_branch().unwrap_or_default(),
            method,
        };
        let Some(&id) = self.client_index.get(&key) else {
            return Some(TxEvent::Stray { resp, from });
        };
        let cfg = self.cfg;
        let t = self.txs.get_mut(&id)?;
        let event = |t: &Tx<T>, resp: Message| TxEvent::Response {
            tx: id,
            owner: t.owner.clone(),
            resp,
        };
        match (t.kind, t.state) {
            (TxKind::InviteClient, TxState::Calling | TxState::Proceeding) => {
                if code < 200 {
                    // Proceeding: no more retransmissions and no timer B (17.1.1.2).
                    t.state = TxState::Proceeding;
                    t.retransmit_at = None;
                    t.timeout_at = None;
                    let ev = event(t, resp);
                    self.reschedule(id);
                    return Some(ev);
                }
                if code < 300 {
                    // Accepted (RFC 6026): 2xx retransmissions go to the TU until timer M.
                    t.state = TxState::Accepted;
                    t.retransmit_at = None;
                    t.timeout_at = Some(now + 64 * cfg.t1);
                    let ev = event(t, resp);
                    self.reschedule(id);
                    return Some(ev);
                }
                // Completed: ACK on the INVITE's branch, timer D absorbs retransmissions.
                let ack = ack_for_non_2xx(&t.request, &resp);
                if let Some(a) = &ack {
                    out.push((t.peer, a.clone()));
                }
                t.last = ack;
                t.state = TxState::Completed;
                t.retransmit_at = None;
                // Timer D: at least 32 s on unreliable transports (17.1.1.2).
                let timer_d = if cfg.reliable {
                    Duration::ZERO
                } else {
                    Duration::from_secs(32).max(64 * cfg.t1)
                };
                t.timeout_at = Some(now + timer_d);
                let ev = event(t, resp);
                self.reschedule(id);
                Some(ev)
            }
            (TxKind::InviteClient, TxState::Accepted) => {
                (200..300).contains(&code).then(|| event(t, resp))
            }
            (TxKind::InviteClient, TxState::Completed) => {
                if code >= 300 {
                    if let Some(a) = &t.last {
                        out.push((t.peer, a.clone()));
                    }
                }
                None
            }
            (TxKind::NonInviteClient, TxState::Trying | TxState::Proceeding) => {
                if code < 200 {
                    if t.state == TxState::Trying && !cfg.reliable {
                        // Timer E continues at T2 (17.1.2.2).
                        t.interval = cfg.t2;
                    }
                    t.state = TxState::Proceeding;
                    return Some(event(t, resp));
                }
                t.state = TxState::Completed;
                t.retransmit_at = None;
                t.timeout_at = Some(now + if cfg.reliable { Duration::ZERO } else { cfg.t4 });
                let ev = event(t, resp);
                self.reschedule(id);
                Some(ev)
            }
            _ => None,
        }
    }

    fn receive_request(
        &mut self,
        now: Instant,
        from: SocketAddr,
        req: Message,
        priority: bool,
        out: &mut Outbox,
    ) -> Option<TxEvent<T>> {
        let Some(key) = ServerKey::of(&req) else {
            return Some(TxEvent::Request {
                tx: None,
                req,
                from,
            });
        };
        let is_ack = req.method() == "ACK";
        if let Some(&id) = self.server_index.get(&key) {
            let cfg = self.cfg;
            let t = self.txs.get_mut(&id)?;
            if is_ack {
                if key.is_rfc2543() && t.to_tag.is_some() && req.to_tag() != t.to_tag {
                    // RFC 2543: the ACK of another response (a 2xx): the dialog's.
                    return Some(TxEvent::Request {
                        tx: None,
                        req,
                        from,
                    });
                }
                match t.state {
                    TxState::Completed => {
                        t.state = TxState::Confirmed;
                        t.retransmit_at = None;
                        t.timeout_at =
                            Some(now + if cfg.reliable { Duration::ZERO } else { cfg.t4 });
                        self.reschedule(id);
                        return None;
                    }
                    TxState::Accepted => {
                        return Some(TxEvent::Request {
                            tx: Some(id),
                            req,
                            from,
                        })
                    }
                    _ => return None,
                }
            }
            // A retransmitted request: the last response again, if any.
            if matches!(
                t.state,
                TxState::Proceeding | TxState::Completed | TxState::Accepted
            ) {
                if let Some(r) = &t.last {
                    out.push((t.peer, r.clone()));
                }
            }
            return None;
        }
        if is_ack {
            return Some(TxEvent::Request {
                tx: None,
                req,
                from,
            });
        }
        if self.server_index.len() >= self.cfg.max_server && !(priority && self.evict_one()) {
            self.stats.stateless += 1;
            return Some(TxEvent::Request {
                tx: None,
                req,
                from,
            });
        }
        let id = self.new_id();
        let invite = req.method() == "INVITE";
        self.server_index.insert(key.clone(), id);
        self.txs.insert(
            id,
            Tx {
                kind: if invite {
                    TxKind::InviteServer
                } else {
                    TxKind::NonInviteServer
                },
                state: if invite {
                    TxState::Proceeding
                } else {
                    TxState::Trying
                },
                key: Key::Server(key),
                peer: from,
                owner: None,
                request: Vec::new(),
                last: None,
                code: 0,
                to_tag: None,
                retransmit_at: None,
                interval: self.cfg.t1,
                // No timer bounds a server transaction before its final
                // response but the TU's; this one bounds a TU that forgets
                // it (a non-INVITE must be answered within 64·T1 anyway).
                timeout_at: Some(
                    now + if invite {
                        Duration::from_secs(3600)
                    } else {
                        64 * self.cfg.t1
                    },
                ),
                due: None,
                finished: None,
            },
        );
        self.reschedule(id);
        Some(TxEvent::Request {
            tx: Some(id),
            req,
            from,
        })
    }

    /// Evicts the oldest finished server transaction; false if none.
    fn evict_one(&mut self) -> bool {
        let Some(&(_, id)) = self.finished.first() else {
            return false;
        };
        self.terminate(id);
        self.stats.evicted += 1;
        true
    }

    /// Sends a response on a server transaction. `data` must be the response
    /// `code`; `to_tag` its To tag (for RFC 2543 ACK matching).
    pub fn respond(
        &mut self,
        now: Instant,
        tx: TxId,
        code: u16,
        data: Vec<u8>,
        to_tag: Option<String>,
        out: &mut Outbox,
    ) {
        let cfg = self.cfg;
        let Some(t) = self.txs.get_mut(&tx) else {
            return;
        };
        if !matches!(t.state, TxState::Trying | TxState::Proceeding) {
            return; // a final response was sent already
        }
        out.push((t.peer, data.clone()));
        t.last = Some(data);
        t.code = code;
        if code < 200 {
            t.state = TxState::Proceeding;
            return;
        }
        t.to_tag = to_tag;
        let mut finished = false;
        match t.kind {
            TxKind::InviteServer => {
                // 2xx: Accepted, retransmitted until the ACK (13.3.1.4, on
                // every transport); non-2xx: Completed, timer G on
                // unreliable transports. Both give up after 64·T1 (H, L).
                let retransmit = code < 300 || !cfg.reliable;
                t.state = if code < 300 {
                    TxState::Accepted
                } else {
                    finished = true;
                    TxState::Completed
                };
                t.interval = cfg.t1;
                t.retransmit_at = retransmit.then(|| now + cfg.t1);
                t.timeout_at = Some(now + 64 * cfg.t1);
            }
            _ => {
                t.state = TxState::Completed;
                t.retransmit_at = None;
                // Timer J.
                t.timeout_at = Some(
                    now + if cfg.reliable {
                        Duration::ZERO
                    } else {
                        64 * cfg.t1
                    },
                );
                finished = true;
            }
        }
        self.reschedule(tx);
        if finished {
            self.mark_finished(tx, now);
        }
    }

    /// The TU saw the ACK of the 2xx an INVITE server transaction sent: stop
    /// retransmitting it and end the transaction.
    pub fn ack_received(&mut self, tx: TxId) {
        if self
            .txs
            .get(&tx)
            .is_some_and(|t| t.kind == TxKind::InviteServer && t.state == TxState::Accepted)
        {
            self.terminate(tx);
        }
    }

    /// The INVITE server transaction a CANCEL is for (RFC 3261 9.2: the
    /// same matching as 17.2.3, with the method of the INVITE).
    pub fn invite_for_cancel(&self, cancel: &Message) -> Option<TxId> {
        let mut key = ServerKey::of(cancel)?;
        key.method = "INVITE".into();
        self.server_index.get(&key).copied()
    }

    /// A transport error towards `dest`: its pending client transactions fail.
    pub fn transport_error(&mut self, dest: SocketAddr) -> Vec<TxEvent<T>> {
        let failed: Vec<TxId> = self
            .txs
            .iter()
            .filter(|(_, t)| {
                t.peer == dest
                    && matches!(t.kind, TxKind::InviteClient | TxKind::NonInviteClient)
                    && matches!(
                        t.state,
                        TxState::Calling | TxState::Trying | TxState::Proceeding
                    )
            })
            .map(|(id, _)| *id)
            .collect();
        let mut events = Vec::new();
        for id in failed {
            if let Some(t) = self.txs.get(&id) {
                events.push(TxEvent::Timeout {
                    tx: id,
                    owner: t.owner.clone(),
                    method: method_of(&t.key),
                    transport: true,
                });
            }
            self.terminate(id);
        }
        events
    }

    /// Runs the timers due at `now`: retransmissions go to `out`, timeouts
    /// come back as events.
    pub fn on_timers(&mut self, now: Instant, out: &mut Outbox) -> Vec<TxEvent<T>> {
        let mut events = Vec::new();
        while let Some(&(due, id)) = self.timers.first() {
            if due > now {
                break;
            }
            self.timers.remove(&(due, id));
            let cfg = self.cfg;
            let Some(t) = self.txs.get_mut(&id) else {
                continue;
            };
            t.due = None;
            if t.timeout_at.is_some_and(|d| d <= now) {
                let ev = match (t.kind, t.state) {
                    (
                        TxKind::InviteClient | TxKind::NonInviteClient,
                        TxState::Calling | TxState::Trying | TxState::Proceeding,
                    ) => Some(TxEvent::Timeout {
                        tx: id,
                        owner: t.owner.clone(),
                        method: method_of(&t.key),
                        transport: false,
                    }),
                    (TxKind::InviteServer, TxState::Completed | TxState::Accepted) => {
                        Some(TxEvent::NoAck {
                            tx: id,
                            owner: t.owner.clone(),
                            code: t.code,
                        })
                    }
                    _ => None,
                };
                events.extend(ev);
                self.terminate(id);
                continue;
            }
            if t.retransmit_at.is_some_and(|r| r <= now) {
                let data = match t.kind {
                    TxKind::InviteClient | TxKind::NonInviteClient => Some(t.request.clone()),
                    _ => t.last.clone(),
                };
                if let Some(d) = data {
                    out.push((t.peer, d));
                }
                t.interval = match t.kind {
                    // Timer A doubles without a cap.
                    TxKind::InviteClient => t.interval * 2,
                    // Timers E and G double up to T2.
                    _ => (t.interval * 2).min(cfg.t2),
                };
                t.retransmit_at = Some(now + t.interval);
            }
            self.reschedule(id);
        }
        events
    }
}

fn method_of(k: &Key) -> String {
    match k {
        Key::Client(c) => c.method.clone(),
        Key::Server(s) => s.method.clone(),
    }
}

/// The ACK of a non-2xx final response (RFC 3261 17.1.1.3): the INVITE's
/// Request-URI, Call-ID, From, CSeq number, top Via and Route headers, the
/// response's To.
fn ack_for_non_2xx(invite: &[u8], resp: &Message) -> Option<Vec<u8>> {
    let inv = Message::parse(invite).ok()?;
    let mut b = Builder::request("ACK", &inv.uri).header("Via", &inv.top_via()?);
    b = b.header("Max-Forwards", "70");
    for r in inv.header_values("route") {
        b = b.header("Route", &r);
    }
    Some(
        b.header("From", inv.header("from")?)
            .header("To", resp.header("to")?)
            .header("Call-ID", inv.call_id())
            .header("CSeq", &format!("{} ACK", inv.cseq()?.0))
            .build(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const T1: Duration = Duration::from_millis(500);

    fn peer() -> SocketAddr {
        "127.0.0.1:5080".parse().unwrap()
    }

    fn req(method: &str, branch: &str, cseq_method: &str) -> Vec<u8> {
        format!(
            "{method} sip:bob@127.0.0.1:5070 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5080;branch={branch}\r\nFrom: <sip:alice@127.0.0.1>;tag=a\r\nTo: <sip:bob@127.0.0.1>\r\nCall-ID: c1\r\nCSeq: 1 {cseq_method}\r\nContent-Length: 0\r\n\r\n"
        )
        .into_bytes()
    }

    fn resp(request: &[u8], code: u16, to_tag: &str) -> Message {
        let r = Message::parse(request).unwrap();
        Message::parse(&Builder::response_to(&r, code, "X", Some(to_tag)).build()).unwrap()
    }

    fn table(reliable: bool) -> Transactions<u32> {
        Transactions::new(TxConfig {
            reliable,
            ..TxConfig::default()
        })
    }

    /// Ticks every 50 ms from `from` to `to`; returns (times of sends since t0, events).
    fn run(
        txs: &mut Transactions<u32>,
        t0: Instant,
        from: Duration,
        to: Duration,
    ) -> (Vec<u128>, Vec<TxEvent<u32>>) {
        let mut times = Vec::new();
        let mut events = Vec::new();
        let mut t = from;
        while t <= to {
            let mut out = Vec::new();
            events.extend(txs.on_timers(t0 + t, &mut out));
            times.extend(out.iter().map(|_| t.as_millis()));
            t += Duration::from_millis(50);
        }
        (times, events)
    }

    #[test]
    fn invite_client_timer_a_doubles_and_timer_b_fires_in_calling() {
        let mut txs = table(false);
        let t0 = Instant::now();
        let mut out = Vec::new();
        let inv = req("INVITE", "z9hG4bK1", "INVITE");
        txs.client(t0, peer(), inv, "z9hG4bK1", "INVITE", 7, &mut out)
            .unwrap();
        assert_eq!(out.len(), 1);
        let (times, events) = run(&mut txs, t0, Duration::ZERO, 64 * T1);
        assert_eq!(times, vec![500, 1500, 3500, 7500, 15500, 31500]);
        assert!(matches!(
            events.as_slice(),
            [TxEvent::Timeout {
                owner: Some(7),
                transport: false,
                ..
            }]
        ));
        assert_eq!(txs.stats().client, 0);
    }

    #[test]
    fn invite_client_in_proceeding_waits_past_timer_b_then_takes_the_2xx() {
        let mut txs = table(false);
        let t0 = Instant::now();
        let mut out = Vec::new();
        let inv = req("INVITE", "z9hG4bK2", "INVITE");
        let id = txs
            .client(t0, peer(), inv.clone(), "z9hG4bK2", "INVITE", 1, &mut out)
            .unwrap();
        let ev = txs.receive(t0 + T1 / 2, peer(), resp(&inv, 180, "b"), false, &mut out);
        assert!(matches!(ev, Some(TxEvent::Response { .. })));
        assert!(txs.provisional_received(id));
        // 45 s of ringing: no retransmission, no timeout.
        let (times, events) = run(&mut txs, t0, T1, Duration::from_secs(45));
        assert!(times.is_empty() && events.is_empty(), "{times:?}");
        let ev = txs.receive(
            t0 + Duration::from_secs(45),
            peer(),
            resp(&inv, 200, "b"),
            false,
            &mut out,
        );
        assert!(matches!(ev, Some(TxEvent::Response { tx, .. }) if tx == id));
        assert_eq!(txs.state(id), Some(TxState::Accepted));
        // A retransmitted 2xx still reaches the TU (it re-ACKs), until timer M.
        let ev = txs.receive(
            t0 + Duration::from_secs(46),
            peer(),
            resp(&inv, 200, "b"),
            false,
            &mut out,
        );
        assert!(matches!(ev, Some(TxEvent::Response { .. })));
        let (_, events) = run(
            &mut txs,
            t0,
            Duration::from_secs(46),
            Duration::from_secs(45) + 64 * T1,
        );
        assert!(events.is_empty());
        assert_eq!(txs.state(id), None);
        let ev = txs.receive(
            t0 + Duration::from_secs(90),
            peer(),
            resp(&inv, 200, "b"),
            false,
            &mut out,
        );
        assert!(matches!(ev, Some(TxEvent::Stray { .. })));
    }

    #[test]
    fn non_2xx_is_acked_on_the_invite_branch_and_each_retransmission_re_acked() {
        let mut txs = table(false);
        let t0 = Instant::now();
        let mut out = Vec::new();
        let inv = req("INVITE", "z9hG4bK3", "INVITE");
        txs.client(t0, peer(), inv.clone(), "z9hG4bK3", "INVITE", 1, &mut out)
            .unwrap();
        out.clear();
        let busy = resp(&inv, 486, "b");
        assert!(txs
            .receive(t0, peer(), busy.clone(), false, &mut out)
            .is_some());
        for _ in 0..3 {
            assert!(txs
                .receive(t0 + T1, peer(), busy.clone(), false, &mut out)
                .is_none());
        }
        assert_eq!(out.len(), 4);
        for (to, a) in &out {
            let ack = Message::parse(a).unwrap();
            assert_eq!(*to, peer());
            assert_eq!(ack.method(), "ACK");
            assert_eq!(ack.via_branch().as_deref(), Some("z9hG4bK3"));
            assert_eq!(ack.to_tag().as_deref(), Some("b"));
            assert_eq!(ack.cseq(), Some((1, "ACK".into())));
        }
        // Timer D: 32 s, then the retransmission is a stray.
        run(&mut txs, t0, Duration::ZERO, Duration::from_secs(32));
        assert!(matches!(
            txs.receive(t0 + Duration::from_secs(33), peer(), busy, false, &mut out),
            Some(TxEvent::Stray { .. })
        ));
    }

    #[test]
    fn non_invite_client_timer_e_caps_at_t2_and_goes_to_t2_in_proceeding() {
        let mut txs = table(false);
        let t0 = Instant::now();
        let mut out = Vec::new();
        let bye = req("BYE", "z9hG4bK4", "BYE");
        txs.client(t0, peer(), bye.clone(), "z9hG4bK4", "BYE", 1, &mut out)
            .unwrap();
        let (times, events) = run(&mut txs, t0, Duration::ZERO, Duration::from_secs(8));
        assert_eq!(times, vec![500, 1500, 3500, 7500]);
        assert!(events.is_empty());
        let mut txs = table(false);
        txs.client(t0, peer(), bye.clone(), "z9hG4bK4", "BYE", 1, &mut out)
            .unwrap();
        txs.receive(
            t0 + Duration::from_millis(100),
            peer(),
            resp(&bye, 100, "b"),
            false,
            &mut out,
        );
        let (times, events) = run(&mut txs, t0, Duration::ZERO, 64 * T1);
        // E keeps its first deadline, then every T2.
        assert_eq!(times[..3], [500, 4500, 8500]);
        assert!(matches!(events.as_slice(), [TxEvent::Timeout { .. }]));
    }

    #[test]
    fn reliable_transport_never_retransmits_but_times_out() {
        let mut txs = table(true);
        let t0 = Instant::now();
        let mut out = Vec::new();
        txs.client(
            t0,
            peer(),
            req("OPTIONS", "z9hG4bK5", "OPTIONS"),
            "z9hG4bK5",
            "OPTIONS",
            1,
            &mut out,
        )
        .unwrap();
        txs.client(
            t0,
            peer(),
            req("INVITE", "z9hG4bK6", "INVITE"),
            "z9hG4bK6",
            "INVITE",
            2,
            &mut out,
        )
        .unwrap();
        let (times, events) = run(&mut txs, t0, Duration::ZERO, 64 * T1);
        assert!(times.is_empty());
        assert_eq!(events.len(), 2);
    }

    #[test]
    fn invite_server_non_2xx_timers_g_h_and_ack_to_confirmed() {
        let mut txs = table(false);
        let t0 = Instant::now();
        let mut out = Vec::new();
        let inv = req("INVITE", "z9hG4bK7", "INVITE");
        let Some(TxEvent::Request { tx: Some(id), .. }) =
            txs.receive(t0, peer(), Message::parse(&inv).unwrap(), false, &mut out)
        else {
            panic!("new transaction")
        };
        let r = Message::parse(&inv).unwrap();
        txs.respond(
            t0,
            id,
            100,
            Builder::response_to(&r, 100, "Trying", None).build(),
            None,
            &mut out,
        );
        // A retransmitted INVITE gets the provisional again, not a new transaction.
        assert!(txs
            .receive(t0, peer(), r.clone(), false, &mut out)
            .is_none());
        assert_eq!(out.len(), 2);
        out.clear();
        let busy = Builder::response_to(&r, 486, "Busy Here", Some("x")).build();
        txs.respond(t0, id, 486, busy, Some("x".into()), &mut out);
        let (times, events) = run(&mut txs, t0, Duration::ZERO, Duration::from_secs(10));
        // G: T1, 2T1, 4T1, then T2.
        assert_eq!(times, vec![500, 1500, 3500, 7500]);
        assert!(events.is_empty());
        // The INVITE again: the 486 again.
        out.clear();
        assert!(txs
            .receive(
                t0 + Duration::from_secs(10),
                peer(),
                r.clone(),
                false,
                &mut out
            )
            .is_none());
        assert_eq!(Message::parse(&out[0].1).unwrap().status, Some(486));
        // ACK (same branch): Confirmed, absorbed; no more 486.
        let ack = Message::parse(&req("ACK", "z9hG4bK7", "ACK")).unwrap();
        assert!(txs
            .receive(
                t0 + Duration::from_secs(10),
                peer(),
                ack.clone(),
                false,
                &mut out
            )
            .is_none());
        assert_eq!(txs.state(id), Some(TxState::Confirmed));
        assert!(txs
            .receive(t0 + Duration::from_secs(11), peer(), ack, false, &mut out)
            .is_none());
        let (times, _) = run(
            &mut txs,
            t0,
            Duration::from_secs(10),
            Duration::from_secs(20),
        );
        assert!(times.is_empty());
        assert_eq!(txs.state(id), None, "timer I ended it");
        // Without an ACK: timer H reports it.
        let mut txs = table(false);
        let Some(TxEvent::Request { tx: Some(id), .. }) =
            txs.receive(t0, peer(), r.clone(), false, &mut out)
        else {
            panic!()
        };
        txs.respond(
            t0,
            id,
            480,
            Builder::response_to(&r, 480, "X", Some("y")).build(),
            None,
            &mut out,
        );
        let (times, events) = run(&mut txs, t0, Duration::ZERO, 64 * T1);
        // G until H: T1, 2T1, 4T1, then T2 up to 64·T1.
        assert_eq!(
            times,
            vec![500, 1500, 3500, 7500, 11500, 15500, 19500, 23500, 27500, 31500]
        );
        assert!(matches!(
            events.as_slice(),
            [TxEvent::NoAck { code: 480, .. }]
        ));
    }

    #[test]
    fn invite_server_2xx_is_retransmitted_until_the_tu_sees_the_ack() {
        let mut txs = table(true);
        let t0 = Instant::now();
        let mut out = Vec::new();
        let r = Message::parse(&req("INVITE", "z9hG4bK8", "INVITE")).unwrap();
        let Some(TxEvent::Request { tx: Some(id), .. }) =
            txs.receive(t0, peer(), r.clone(), false, &mut out)
        else {
            panic!()
        };
        txs.respond(
            t0,
            id,
            200,
            Builder::response_to(&r, 200, "OK", Some("t")).build(),
            None,
            &mut out,
        );
        // Even over a reliable transport (13.3.1.4).
        let (times, _) = run(&mut txs, t0, Duration::ZERO, Duration::from_secs(4));
        assert_eq!(times, vec![500, 1500, 3500]);
        txs.ack_received(id);
        let (times, events) = run(
            &mut txs,
            t0,
            Duration::from_secs(4),
            Duration::from_secs(40),
        );
        assert!(times.is_empty() && events.is_empty());
    }

    #[test]
    fn server_keys_use_sent_by_and_rfc2543_fields() {
        let a = Message::parse(&req("OPTIONS", "z9hG4bKs", "OPTIONS")).unwrap();
        let other_host = String::from_utf8(req("OPTIONS", "z9hG4bKs", "OPTIONS"))
            .unwrap()
            .replace("127.0.0.1:5080;branch", "127.0.0.2:5080;branch");
        let b = Message::parse(other_host.as_bytes()).unwrap();
        assert_ne!(
            ServerKey::of(&a),
            ServerKey::of(&b),
            "same branch, other sent-by"
        );
        let mut txs = table(false);
        let t0 = Instant::now();
        let mut out = Vec::new();
        assert!(matches!(
            txs.receive(t0, peer(), a.clone(), false, &mut out),
            Some(TxEvent::Request { tx: Some(_), .. })
        ));
        assert!(matches!(
            txs.receive(t0, peer(), b, false, &mut out),
            Some(TxEvent::Request { tx: Some(_), .. })
        ));
        assert!(
            txs.receive(t0, peer(), a, false, &mut out).is_none(),
            "retransmission absorbed"
        );
        // RFC 2543: no cookie; the INVITE's ACK matches only with our To tag.
        let inv = Message::parse(&req("INVITE", "old1", "INVITE")).unwrap();
        let k = ServerKey::of(&inv).unwrap();
        assert!(k.is_rfc2543());
        let Some(TxEvent::Request { tx: Some(id), .. }) =
            txs.receive(t0, peer(), inv.clone(), false, &mut out)
        else {
            panic!()
        };
        txs.respond(
            t0,
            id,
            603,
            Builder::response_to(&inv, 603, "Decline", Some("ours")).build(),
            Some("ours".into()),
            &mut out,
        );
        let ack = |tag: &str| {
            Message::parse(
                String::from_utf8(req("ACK", "old1", "ACK"))
                    .unwrap()
                    .replace(
                        "To: <sip:bob@127.0.0.1>",
                        &format!("To: <sip:bob@127.0.0.1>;tag={tag}"),
                    )
                    .as_bytes(),
            )
            .unwrap()
        };
        assert!(matches!(
            txs.receive(t0, peer(), ack("theirs"), false, &mut out),
            Some(TxEvent::Request { tx: None, .. })
        ));
        assert!(txs
            .receive(t0, peer(), ack("ours"), false, &mut out)
            .is_none());
        assert_eq!(txs.state(id), Some(TxState::Confirmed));
        // A CANCEL finds its INVITE.
        let inv2 = Message::parse(&req("INVITE", "z9hG4bKc", "INVITE")).unwrap();
        let Some(TxEvent::Request { tx: Some(iid), .. }) =
            txs.receive(t0, peer(), inv2, false, &mut out)
        else {
            panic!()
        };
        let cancel = Message::parse(&req("CANCEL", "z9hG4bKc", "CANCEL")).unwrap();
        assert_eq!(txs.invite_for_cancel(&cancel), Some(iid));
        assert!(
            matches!(txs.receive(t0, peer(), cancel, false, &mut out), Some(TxEvent::Request { tx: Some(c), .. }) if c != iid)
        );
    }

    #[test]
    fn a_full_table_answers_statelessly_and_priority_evicts_the_oldest_finished() {
        let mut txs: Transactions<u32> = Transactions::new(TxConfig {
            max_server: 10,
            ..TxConfig::default()
        });
        let t0 = Instant::now();
        let mut out = Vec::new();
        for i in 0..10 {
            let r = Message::parse(&req("INVITE", &format!("z9hG4bKf{i}"), "INVITE")).unwrap();
            let Some(TxEvent::Request { tx: Some(id), .. }) =
                txs.receive(t0, peer(), r.clone(), false, &mut out)
            else {
                panic!()
            };
            if i < 5 {
                txs.respond(
                    t0 + Duration::from_millis(i),
                    id,
                    403,
                    Builder::response_to(&r, 403, "Forbidden", Some("t")).build(),
                    None,
                    &mut out,
                );
            }
        }
        let r = Message::parse(&req("INVITE", "z9hG4bKnew", "INVITE")).unwrap();
        assert!(matches!(
            txs.receive(t0, peer(), r.clone(), false, &mut out),
            Some(TxEvent::Request { tx: None, .. })
        ));
        assert_eq!(txs.stats().stateless, 1);
        assert!(matches!(
            txs.receive(t0, peer(), r, true, &mut out),
            Some(TxEvent::Request { tx: Some(_), .. })
        ));
        assert_eq!(txs.stats().evicted, 1);
        assert_eq!(txs.stats().server, 10);
        // The evicted one was the oldest finished (f0): its retransmission is new again.
        let f0 = Message::parse(&req("INVITE", "z9hG4bKf0", "INVITE")).unwrap();
        assert!(matches!(
            txs.receive(t0, peer(), f0, true, &mut out),
            Some(TxEvent::Request { tx: Some(_), .. })
        ));
        // Proceeding ones are never evicted: five finished were there, two are gone.
        assert_eq!(txs.stats().evicted, 2);
    }

    #[test]
    fn transport_error_fails_pending_client_transactions_to_that_peer() {
        let mut txs = table(true);
        let t0 = Instant::now();
        let mut out = Vec::new();
        txs.client(
            t0,
            peer(),
            req("INVITE", "z9hG4bKt1", "INVITE"),
            "z9hG4bKt1",
            "INVITE",
            1,
            &mut out,
        )
        .unwrap();
        let other: SocketAddr = "127.0.0.1:6000".parse().unwrap();
        txs.client(
            t0,
            other,
            req("BYE", "z9hG4bKt2", "BYE"),
            "z9hG4bKt2",
            "BYE",
            2,
            &mut out,
        )
        .unwrap();
        let ev = txs.transport_error(peer());
        assert!(matches!(
            ev.as_slice(),
            [TxEvent::Timeout {
                owner: Some(1),
                transport: true,
                ..
            }]
        ));
        assert_eq!(txs.stats().client, 1);
    }
}
