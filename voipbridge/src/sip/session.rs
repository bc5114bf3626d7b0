//! The INVITE usage (RFC 3261 13-15, RFC 3264, RFC 3326): calls.
//!
//! A call is one dialog ([`Dialog`]), its offer/answer state
//! ([`super::offer_answer`]), its card substream (slot) and its media.
//!
//! * **Outgoing**: INVITE with our offer, through the outbound proxy or the
//!   registrar when configured, else to the target (its host looked up by
//!   the I/O layer). A provisional response makes it ring; rings longer
//!   than 64·T1 are fine (timer B runs only in Calling); after 3 min (RFC
//!   3261 16.6's timer C), or `ring_timeout` if longer, it gives up with CANCEL. The 2xx is ACKed (and re-ACKed on every
//!   retransmission, the ACK carrying the INVITE's credentials, 13.2.2.4),
//!   the media starts with the dialog confirmed. 2xx from a second fork:
//!   ACK and BYE. 401/407: the INVITE again with credentials.
//! * **CANCEL** (9.1): only after a provisional response; hanging up before
//!   one waits for it (or for timer B). A 2xx that crosses the CANCEL is
//!   ACKed and the call ended with BYE. No final response 64·T1 after the
//!   CANCEL: the call is given up.
//! * **Incoming** (admitted by the policy): 100, 180 with our tag, then the
//!   answer after `auto_answer`, on `answer`, or never: `ring_timeout`
//!   ends it with 480, the INVITE's `Expires` with 487 (13.3.1). A CANCEL
//!   ends it with 487. The 200 is retransmitted until its ACK; **media
//!   starts only with the ACK** (issue 14: no media before the dialog is
//!   confirmed, and only towards the offer's address). No ACK: BYE.
//! * **In the dialog**: BYE, INFO (DTMF), re-INVITE (hold, resume, target
//!   refresh, offerless) with the CSeq rules of 12.2.2 (500 when out of
//!   order). Glare (14.1): a re-INVITE while ours is pending gets 491; ours
//!   refused with 491 is retried after 2.1-4 s (we own the Call-ID) or 0-2 s
//!   (we do not). A challenged BYE or re-INVITE is sent again with
//!   credentials; a re-INVITE answered 408 or 481 ends the dialog (14.1).
//! * **Substreams**: a call holds its slot until its media has stopped,
//!   not until its BYE is answered: a call in Terminating whose media
//!   stopped frees its substream at once. Media start failure (socket, ALSA
//!   device): BYE with `Reason: SIP;cause=500;text="..."` and a
//!   `media_failed` event. RTP timeout and device errors end the call the
//!   same way.

use super::dialog::Dialog;
use super::digest::{Authenticator, Credentials};
use super::message::{Builder, Message};
use super::offer_answer::{self, LocalMedia, Negotiated, OaError, SdpVersion};
use super::sdp::{SessionDescription, WriteSection};
use super::transaction::TxId;
use super::ua::{
    warning_text, Action, CallTx, Env, Event, Lookup, MediaOffer, Owner, Route, ALLOW, USER_AGENT,
};
use super::uri::is_dialable;
use crate::media::{Direction, MediaEvent};
use serde::Serialize;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// Most calls kept (ringing, active, terminating).
const MAX_CALLS: usize = 64;
/// How long an outgoing call may ring at least: RFC 3261 16.6's timer C
/// (a proxy gives up after more than 3 min). Callees ring for minutes;
/// this only keeps a callee that never answers from holding a substream.
const OUTGOING_RING_MIN: Duration = Duration::from_secs(180);
/// Our telephone-event payload type.
const TELEPHONE_EVENT: u8 = 101;

/// Call states (FreeSWITCH-style progression).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CallState {
    /// Outgoing INVITE sent (or its target being looked up).
    Calling,
    /// Outgoing call got a provisional response.
    Ringing,
    /// Incoming call waiting to be answered.
    Incoming,
    /// Established (answered; media once the ACK confirmed the dialog).
    Active,
    /// On hold (either side).
    Held,
    /// BYE or CANCEL sent, waiting for the answer.
    Terminating,
    /// Over.
    Ended,
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
    /// Card substream the call was given.
    pub slot: usize,
    /// Whether it still holds that substream.
    pub holds_substream: bool,
    /// Media: `none`, `starting`, `running`, `stopping`.
    pub media: &'static str,
    /// Negotiated codec.
    pub codec: Option<String>,
    /// Seconds since answered.
    pub duration_s: Option<f64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Dir {
    Outgoing,
    Incoming,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum MediaPhase {
    Idle,
    Starting,
    Running,
    Stopping,
}

impl MediaPhase {
    fn name(self) -> &'static str {
        match self {
            MediaPhase::Idle => "none",
            MediaPhase::Starting => "starting",
            MediaPhase::Running => "running",
            MediaPhase::Stopping => "stopping",
        }
    }
}

/// The INVITE we are answering (until its final response).
#[derive(Debug, Clone)]
struct Uas {
    tx: Option<TxId>,
    req: Message,
    from: SocketAddr,
}

/// A 2xx we sent waits for its ACK.
#[derive(Debug, Clone)]
struct AckWait {
    tx: Option<TxId>,
    cseq: u32,
    /// The 2xx carried our offer (offerless INVITE): the answer is in the ACK.
    offer: Option<Vec<WriteSection>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Cancel {
    No,
    /// Hung up before any provisional response: CANCEL when one comes.
    Pending,
    Sent,
}

/// Our dialog-creating INVITE.
#[derive(Debug, Clone)]
struct Uac {
    tx: Option<TxId>,
    request: Vec<u8>,
    dest: SocketAddr,
    cseq: u32,
    offer: Vec<WriteSection>,
    auth_headers: Vec<(&'static str, String)>,
    auth_tries: u32,
    cancel: Cancel,
}

/// Our re-INVITE in flight.
#[derive(Debug, Clone)]
struct OurReInvite {
    tx: Option<TxId>,
    cseq: u32,
    offer: Vec<WriteSection>,
    auth_tried: bool,
}

/// Why an outgoing call's INVITE is not sent yet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Pending {
    No,
    /// The outbound proxy / registrar is being looked up.
    Server,
    /// The target's host is being looked up.
    Lookup,
}

#[derive(Debug, Clone)]
struct Call {
    id: String,
    dir: Dir,
    state: CallState,
    dialog: Dialog,
    peer_uri: String,
    slot: Option<usize>,
    first_slot: usize,
    media: MediaPhase,
    /// What the media runs with (or is starting with).
    running: Option<Negotiated>,
    /// Restart the media when it has stopped (the codec changed).
    restart: bool,
    negotiated: Option<Negotiated>,
    sdp: SdpVersion,
    created: Instant,
    answered: Option<Instant>,
    hold: bool,
    /// Routed by the registrar / outbound proxy (media may latch).
    vouched: bool,
    auth: Authenticator,
    uas: Option<Uas>,
    answer_at: Option<Instant>,
    ring_deadline: Option<Instant>,
    expires_at: Option<Instant>,
    ack_wait: Option<AckWait>,
    /// BYE as soon as the pending ACK arrives (hung up before it, 15).
    bye_after_ack: bool,
    uac: Option<Uac>,
    pending: Pending,
    /// Our ACK of a 2xx: (CSeq, next hop, bytes), sent again for each retransmission.
    ack: Option<(u32, SocketAddr, Vec<u8>)>,
    reinvite: Option<OurReInvite>,
    /// When to (re)try our re-INVITE (glare, or a queued hold change).
    reinvite_at: Option<Instant>,
    /// The hold state wanted once the pending re-INVITE is done.
    want_hold: Option<bool>,
    bye: Option<TxId>,
    bye_auth_tried: bool,
    /// Reason header (RFC 3326) of the BYE we send.
    bye_reason: Option<String>,
    /// Terminating: give up at this time (no final response after CANCEL).
    give_up_at: Option<Instant>,
    /// What the Ended event will say.
    end_code: Option<u16>,
    end_reason: Option<String>,
    /// The dialog is over; the call ends when its media has stopped.
    over: Option<(Option<u16>, Option<String>)>,
}

/// The calls.
#[derive(Debug, Default)]
pub(crate) struct Calls {
    calls: BTreeMap<String, Call>,
}

fn local_media(env: &Env, slot: usize) -> LocalMedia {
    LocalMedia {
        ip: env.cfg.local.ip(),
        port: env.cfg.rtp_base + 2 * slot as u16,
        codecs: env.cfg.codecs.clone(),
        ptime: env.cfg.ptime,
        telephone_event: TELEPHONE_EVENT,
        srtp: env.cfg.srtp,
        sdes_allowed: env.cfg.sdes_allowed,
        keep: None,
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

/// The event for a call that could not even be placed (no Call-ID yet).
fn not_placed(env: &mut Env, uri: String, code: u16, reason: &str) {
    env.out.push(Action::Event(Event::Call {
        call_id: String::new(),
        state: CallState::Ended,
        peer: uri,
        code: Some(code),
        reason: Some(reason.into()),
    }));
}

/// A `Reason` header value (RFC 3326).
fn reason(cause: u16, text: &str) -> String {
    format!("SIP;cause={cause};text=\"{}\"", warning_text(text))
}

impl Calls {
    pub fn is_empty(&self) -> bool {
        self.calls.is_empty()
    }

    pub fn contains(&self, call_id: &str) -> bool {
        self.calls.contains_key(call_id)
    }

    /// The next hop of every confirmed, live call's dialog, sorted.
    pub fn peers(&self) -> Vec<std::net::IpAddr> {
        let mut v: Vec<std::net::IpAddr> = self
            .calls
            .values()
            .filter(|c| {
                c.dialog.confirmed && matches!(c.state, CallState::Active | CallState::Held)
            })
            .map(|c| c.dialog.next_hop().ip())
            .collect();
        v.sort();
        v.dedup();
        v
    }

    pub fn info(&self, now: Instant) -> Vec<CallInfo> {
        self.calls
            .values()
            .map(|c| CallInfo {
                call_id: c.id.clone(),
                state: c.state,
                direction: match c.dir {
                    Dir::Outgoing => "outgoing".into(),
                    Dir::Incoming => "incoming".into(),
                },
                peer: c.peer_uri.clone(),
                slot: c.first_slot,
                holds_substream: c.slot.is_some(),
                media: c.media.name(),
                codec: c.negotiated.as_ref().map(|m| m.codec.name().to_string()),
                duration_s: c
                    .answered
                    .map(|a| now.saturating_duration_since(a).as_secs_f64()),
            })
            .collect()
    }

    pub fn next_timeout(&self) -> Option<Instant> {
        self.calls
            .values()
            .flat_map(|c| {
                [
                    c.answer_at,
                    c.ring_deadline,
                    c.expires_at,
                    c.reinvite_at,
                    c.give_up_at,
                ]
            })
            .flatten()
            .min()
    }

    fn free_slot(&self, slots: usize) -> Option<usize> {
        (0..slots).find(|s| !self.calls.values().any(|c| c.slot == Some(*s)))
    }

    fn set_state(
        &mut self,
        env: &mut Env,
        id: &str,
        state: CallState,
        code: Option<u16>,
        reason: Option<String>,
    ) {
        let Some(c) = self.calls.get_mut(id) else {
            return;
        };
        if c.state == state {
            return;
        }
        tracing::info!(call = %id, from = ?c.state, to = ?state, peer = %c.peer_uri, "call state");
        c.state = state;
        env.out.push(Action::Event(Event::Call {
            call_id: id.to_string(),
            state,
            peer: c.peer_uri.clone(),
            code,
            reason,
        }));
    }

    /// Stops the media of a call (its slot stays until it has stopped).
    fn stop_media(env: &mut Env, c: &mut Call) {
        c.restart = false;
        if matches!(c.media, MediaPhase::Starting | MediaPhase::Running) {
            env.out.push(Action::StopMedia(c.id.clone()));
            c.media = MediaPhase::Stopping;
        }
    }

    /// The call no longer needs its substream: stop the media; the slot is
    /// free at once when no media runs, else when it has stopped.
    fn release(env: &mut Env, c: &mut Call) {
        Self::stop_media(env, c);
        if c.media == MediaPhase::Idle {
            c.slot = None;
        }
    }

    /// Ends a call's dialog. The call is over (Ended event, removed) once
    /// its media has stopped too: until then it shows as Terminating, keeps
    /// its substream, and answers nothing more (481) — so when `status` no
    /// longer lists a call, its recording is complete and its substream free.
    fn end(&mut self, env: &mut Env, id: &str, code: Option<u16>, why: Option<String>) {
        let Some(c) = self.calls.get_mut(id) else {
            return;
        };
        Self::release(env, c);
        // An INVITE still pending (given up after CANCEL) ends with the call:
        // its late responses are strays.
        if let Some(tx) = c.uac.as_ref().and_then(|u| u.tx) {
            if matches!(
                env.txs.state(tx),
                Some(
                    super::transaction::TxState::Calling | super::transaction::TxState::Proceeding
                )
            ) {
                env.txs.terminate(tx);
            }
        }
        c.answer_at = None;
        c.ring_deadline = None;
        c.expires_at = None;
        c.reinvite_at = None;
        c.give_up_at = None;
        let code = code.or(c.end_code);
        let why = why.or(c.end_reason.take());
        if c.media == MediaPhase::Stopping {
            c.over = Some((code, why));
            self.set_state(env, id, CallState::Terminating, None, None);
            return;
        }
        self.finish(env, id, code, why);
    }

    /// Removes a call whose dialog and media are both over: the Ended event.
    fn finish(&mut self, env: &mut Env, id: &str, code: Option<u16>, why: Option<String>) {
        let Some(c) = self.calls.remove(id) else {
            return;
        };
        tracing::info!(call = %id, from = ?c.state, to = ?CallState::Ended, peer = %c.peer_uri, code, reason = why.as_deref().unwrap_or(""), "call state");
        env.out.push(Action::Event(Event::Call {
            call_id: id.to_string(),
            state: CallState::Ended,
            peer: c.peer_uri,
            code,
            reason: why,
        }));
    }

    /// Starts, updates or restarts a call's media to match what was
    /// negotiated — only once the dialog is confirmed (issue 14).
    fn sync_media(&mut self, env: &mut Env, id: &str) {
        let Some(c) = self.calls.get_mut(id) else {
            return;
        };
        if !c.dialog.confirmed || !matches!(c.state, CallState::Active | CallState::Held) {
            return;
        }
        let Some(neg) = c.negotiated.clone() else {
            Self::stop_media(env, c);
            return;
        };
        let Some(slot) = c.slot else {
            return;
        };
        match c.media {
            MediaPhase::Idle => {
                let offer = MediaOffer {
                    slot,
                    local_port: env.cfg.rtp_base + 2 * slot as u16,
                    remote: neg.remote,
                    codec: neg.codec,
                    payload_type: neg.payload_type,
                    ptime: neg.ptime,
                    telephone_event: neg.telephone_event,
                    direction: neg.direction,
                    latch: env.cfg.latch && c.vouched,
                    crypto: neg.crypto.clone(),
                };
                tracing::info!(call = %id, codec = neg.codec.name(), remote = %neg.remote, direction = neg.direction.attr(), latch = offer.latch, srtp = neg.crypto.as_ref().map_or("off", |c| c.suite.name()), "starting media");
                env.out.push(Action::StartMedia(id.to_string(), offer));
                c.media = MediaPhase::Starting;
                c.running = Some(neg);
            }
            MediaPhase::Starting | MediaPhase::Running => {
                let Some(run) = c.running.as_ref() else {
                    return;
                };
                let same_stream = run.codec == neg.codec
                    && run.payload_type == neg.payload_type
                    && run.telephone_event == neg.telephone_event
                    && run.ptime == neg.ptime
                    && run.crypto == neg.crypto;
                if !same_stream {
                    tracing::info!(call = %id, "the stream changed: restarting the media");
                    env.out.push(Action::StopMedia(id.to_string()));
                    c.media = MediaPhase::Stopping;
                    c.restart = true;
                } else if run.remote != neg.remote || run.direction != neg.direction {
                    env.out.push(Action::UpdateMedia(
                        id.to_string(),
                        neg.remote,
                        neg.direction,
                    ));
                    c.running = Some(neg);
                }
            }
            MediaPhase::Stopping => c.restart = true,
        }
    }

    /// Held or Active from the negotiated direction.
    fn state_for(c: &Call) -> CallState {
        match &c.negotiated {
            Some(n) if n.direction != Direction::SendRecv => CallState::Held,
            None if c.hold => CallState::Held,
            _ => CallState::Active,
        }
    }

    // ---------------------------------------------------------------- outgoing

    /// Places a call to `uri` (`resolved`: its host's address, when known).
    pub fn call(&mut self, env: &mut Env, now: Instant, uri: &str, resolved: Option<SocketAddr>) {
        let uri = if uri.get(..4).is_some_and(|s| s.eq_ignore_ascii_case("sip:"))
            || uri
                .get(..5)
                .is_some_and(|s| s.eq_ignore_ascii_case("sips:"))
        {
            uri.to_string()
        } else {
            format!("sip:{uri}")
        };
        if !is_dialable(&uri) {
            tracing::error!(uri = %warning_text(&uri), "not a SIP URI we can call");
            not_placed(env, uri, 400, "not a SIP URI");
            return;
        }
        if self.calls.len() >= MAX_CALLS {
            not_placed(env, uri, 503, "too many calls");
            return;
        }
        let Some(slot) = self.free_slot(env.cfg.slots) else {
            tracing::warn!(
                "all {} substreams are busy: not calling {uri}",
                env.cfg.slots
            );
            not_placed(env, uri, 486, "all substreams busy");
            return;
        };
        let route = match resolved {
            Some(a) if env.servers.outbound.is_none() && env.servers.registrar.is_none() => {
                Route::At(a, None)
            }
            _ => env.servers.route(&uri),
        };
        let vouched = env.servers.outbound.is_some() || env.servers.registrar.is_some();
        let id = format!("{}@voipbridge", env.token(20));
        let local_tag = env.token(10);
        let fallback = match &route {
            Route::At(a, _) => *a,
            _ => env.cfg.local,
        };
        let dialog = Dialog::uac(
            &id,
            &local_tag,
            format!("<{}>;tag={local_tag}", env.cfg.aor),
            format!("<{uri}>"),
            &uri,
            1,
            fallback,
        );
        let session_id = u64::from(rand::Rng::gen::<u32>(&mut env.rng));
        let call = Call {
            id: id.clone(),
            dir: Dir::Outgoing,
            state: CallState::Calling,
            dialog,
            peer_uri: uri.clone(),
            slot: Some(slot),
            first_slot: slot,
            media: MediaPhase::Idle,
            running: None,
            restart: false,
            negotiated: None,
            sdp: SdpVersion::new(session_id),
            created: now,
            answered: None,
            hold: false,
            vouched,
            auth: Authenticator::default(),
            uas: None,
            answer_at: None,
            ring_deadline: Some(now + env.cfg.ring_timeout.max(OUTGOING_RING_MIN)),
            expires_at: None,
            ack_wait: None,
            bye_after_ack: false,
            uac: None,
            pending: Pending::No,
            ack: None,
            reinvite: None,
            reinvite_at: None,
            want_hold: None,
            bye: None,
            bye_auth_tried: false,
            bye_reason: None,
            give_up_at: None,
            end_code: None,
            end_reason: None,
            over: None,
        };
        tracing::info!(call = %id, peer = %uri, slot, "calling");
        env.out.push(Action::Event(Event::Call {
            call_id: id.clone(),
            state: CallState::Calling,
            peer: uri.clone(),
            code: None,
            reason: None,
        }));
        self.calls.insert(id.clone(), call);
        self.route_invite(env, now, &id, route);
    }

    fn route_invite(&mut self, env: &mut Env, now: Instant, id: &str, route: Route) {
        match route {
            Route::At(dest, r) => self.send_invite(env, now, id, dest, r, false),
            Route::WaitServer => {
                if let Some(c) = self.calls.get_mut(id) {
                    c.pending = Pending::Server;
                }
                for (lookup, s) in [
                    (Lookup::OutboundProxy, &env.servers.outbound),
                    (Lookup::Registrar, &env.servers.registrar),
                ] {
                    if let Some(s) = s.as_ref().filter(|s| s.addr.is_none()) {
                        env.out.push(Action::Resolve {
                            lookup,
                            host: s.host.clone(),
                            port: s.port,
                        });
                    }
                }
            }
            Route::Lookup(host, port) => {
                if let Some(c) = self.calls.get_mut(id) {
                    c.pending = Pending::Lookup;
                }
                env.out.push(Action::Resolve {
                    lookup: Lookup::Call(id.to_string()),
                    host,
                    port,
                });
            }
            Route::None => {
                tracing::error!(call = %id, "cannot route the call: no proxy and no host");
                self.end(env, id, Some(404), Some("no route".into()));
            }
        }
    }

    /// A configured server got its address: calls waiting for it go out.
    pub fn on_server_resolved(&mut self, env: &mut Env, now: Instant) {
        let waiting: Vec<String> = self
            .calls
            .values()
            .filter(|c| c.pending == Pending::Server)
            .map(|c| c.id.clone())
            .collect();
        for id in waiting {
            let target = self.calls.get(&id).map(|c| c.dialog.remote_target.clone());
            match target.map(|t| env.servers.route(&t)) {
                Some(Route::At(dest, r)) => {
                    if let Some(c) = self.calls.get_mut(&id) {
                        c.pending = Pending::No;
                        c.dialog.fallback = dest;
                    }
                    self.send_invite(env, now, &id, dest, r, false);
                }
                _ => self.end(env, &id, Some(503), Some("cannot resolve the proxy".into())),
            }
        }
    }

    pub fn on_call_resolved(
        &mut self,
        env: &mut Env,
        now: Instant,
        id: &str,
        result: Result<SocketAddr, String>,
    ) {
        if !self
            .calls
            .get(id)
            .is_some_and(|c| c.pending == Pending::Lookup)
        {
            return;
        }
        match result {
            Ok(addr) => {
                if let Some(c) = self.calls.get_mut(id) {
                    c.pending = Pending::No;
                    c.dialog.fallback = addr;
                    tracing::debug!(call = %id, %addr, "sending the INVITE to the resolved host");
                }
                self.send_invite(env, now, id, addr, None, false);
            }
            Err(e) => {
                tracing::warn!(call = %id, "cannot resolve the call's host: {e}");
                self.end(env, id, Some(404), Some(format!("cannot resolve: {e}")));
            }
        }
    }

    fn send_invite(
        &mut self,
        env: &mut Env,
        now: Instant,
        id: &str,
        dest: SocketAddr,
        route: Option<String>,
        with_auth: bool,
    ) {
        let Some(c) = self.calls.get_mut(id) else {
            return;
        };
        let Some(slot) = c.slot else {
            return;
        };
        let local = local_media(env, slot);
        let offer = offer_answer::offer(&local, Direction::SendRecv);
        let body = c.sdp.body(local.ip, &offer);
        let cseq = if with_auth {
            c.dialog.next_cseq()
        } else {
            c.dialog.local_seq
        };
        let branch = env.branch();
        let mut b = Builder::request("INVITE", &c.dialog.remote_target)
            .header("Via", &env.via(&branch))
            .header("Max-Forwards", "70");
        if let Some(r) = &route {
            b = b.header("Route", r);
        }
        b = b
            .header("From", &c.dialog.local_hdr)
            .header("To", &c.dialog.remote_hdr)
            .header("Call-ID", &c.id)
            .header("CSeq", &format!("{cseq} INVITE"))
            .header("Contact", &env.contact())
            .header("Allow", ALLOW)
            .header("User-Agent", USER_AGENT);
        let mut auth_headers = Vec::new();
        if with_auth {
            let cnonce = env.token(16);
            let creds = Credentials {
                user: &env.cfg.username,
                password: &env.cfg.password,
            };
            auth_headers =
                c.auth
                    .headers(&creds, "INVITE", &c.dialog.remote_target, &body, &cnonce);
            for (n, v) in &auth_headers {
                b = b.header(n, v);
            }
        }
        let data = b.body("application/sdp", body).build();
        let tx = env.client_tx(
            now,
            dest,
            data.clone(),
            &branch,
            "INVITE",
            Owner::Call(id.to_string(), CallTx::Invite),
        );
        let (auth_tries, cancel) = c
            .uac
            .as_ref()
            .map_or((0, Cancel::No), |u| (u.auth_tries, u.cancel));
        c.uac = Some(Uac {
            tx,
            request: data,
            dest,
            cseq,
            offer,
            auth_headers,
            auth_tries,
            cancel,
        });
        if tx.is_none() {
            self.end(env, id, Some(503), Some("too many transactions".into()));
        }
    }

    fn send_cancel(&mut self, env: &mut Env, now: Instant, id: &str) {
        let Some(c) = self.calls.get_mut(id) else {
            return;
        };
        let Some(uac) = c.uac.as_mut() else {
            return;
        };
        let Ok(inv) = Message::parse(&uac.request) else {
            return;
        };
        let branch = inv.via_branch().unwrap_or_default();
        // RFC 3261 9.1: the INVITE's Request-URI, Call-ID, To, From, CSeq
        // number, top Via and Route.
        let mut b = Builder::request("CANCEL", &inv.uri)
            .header("Via", &inv.top_via().unwrap_or_default())
            .header("Max-Forwards", "70");
        for r in inv.header_values("route") {
            b = b.header("Route", &r);
        }
        let data = b
            .header("From", inv.header("from").unwrap_or(""))
            .header("To", inv.header("to").unwrap_or(""))
            .header("Call-ID", inv.call_id())
            .header("CSeq", &format!("{} CANCEL", uac.cseq))
            .header("User-Agent", USER_AGENT)
            .build();
        uac.cancel = Cancel::Sent;
        let dest = uac.dest;
        c.give_up_at = Some(now + 64 * env.cfg.t1);
        env.client_tx(
            now,
            dest,
            data,
            &branch,
            "CANCEL",
            Owner::Call(id.to_string(), CallTx::Cancel),
        );
    }

    fn on_invite_response(
        &mut self,
        env: &mut Env,
        now: Instant,
        id: &str,
        tx: TxId,
        resp: &Message,
    ) {
        let Some(c) = self.calls.get_mut(id) else {
            return;
        };
        if c.uac.as_ref().and_then(|u| u.tx) != Some(tx) {
            return; // an INVITE replaced by its authenticated retry
        }
        let code = resp.status.unwrap_or(0);
        if code < 200 {
            if code > 100 && c.dialog.uac_update(resp).is_err() {
                tracing::warn!(call = %id, code, "unusable Record-Route in a provisional response: ignored");
            }
            let cancel = c.uac.as_ref().map(|u| u.cancel);
            if cancel == Some(Cancel::Pending) {
                self.send_cancel(env, now, id);
            } else if code > 100 && c.state == CallState::Calling {
                self.set_state(
                    env,
                    id,
                    CallState::Ringing,
                    Some(code),
                    Some(resp.reason.clone()),
                );
            }
            return;
        }
        if code < 300 {
            self.on_invite_2xx(env, now, id, resp);
            return;
        }
        if code == 401 || code == 407 {
            let retry = c
                .uac
                .as_ref()
                .is_some_and(|u| u.auth_tries < 2 && u.cancel == Cancel::No)
                && c.auth.on_challenge(resp).is_ok();
            if retry {
                if let Some(u) = c.uac.as_mut() {
                    u.auth_tries += 1;
                }
                let (dest, route) = match env.servers.route(&c.dialog.remote_target) {
                    Route::At(d, r) => (d, r),
                    _ => (c.uac.as_ref().map_or(c.dialog.fallback, |u| u.dest), None),
                };
                self.send_invite(env, now, id, dest, route, true);
                return;
            }
        }
        let cancelled = c.uac.as_ref().is_some_and(|u| u.cancel != Cancel::No);
        let why = if cancelled && code == 487 {
            c.end_reason.clone().unwrap_or_else(|| "cancelled".into())
        } else {
            resp.reason.clone()
        };
        tracing::warn!(call = %id, code, reason = %why, "call failed");
        self.end(env, id, Some(code), Some(why));
    }

    fn on_invite_2xx(&mut self, env: &mut Env, now: Instant, id: &str, resp: &Message) {
        let Some(c) = self.calls.get_mut(id) else {
            return;
        };
        let Some(uac) = c.uac.clone() else {
            return;
        };
        if c.dialog.confirmed {
            if resp.to_tag() == c.dialog.remote_tag {
                // A retransmission: the same ACK again.
                if let Some((_, dest, data)) = &c.ack {
                    env.send(*dest, data.clone());
                }
            } else {
                Self::ack_and_bye_fork(env, now, c, resp, &uac);
            }
            return;
        }
        let routed = c.dialog.uac_update(resp);
        let branch = env.branch();
        let (mut b, dest) = c.dialog.request("ACK", uac.cseq, &env.via(&branch));
        for (n, v) in &uac.auth_headers {
            b = b.header(n, v);
        }
        let ack = b.build();
        env.send(dest, ack.clone());
        c.ack = Some((uac.cseq, dest, ack));
        c.ring_deadline = None;
        if uac.cancel != Cancel::No || c.state == CallState::Terminating {
            tracing::info!(call = %id, "answered while we were cancelling: ACK and BYE");
            c.give_up_at = None;
            c.state = CallState::Active;
            self.send_bye(env, now, id);
            return;
        }
        if let Err(e) = routed {
            // In-dialog requests would bypass the proxies the peer's
            // dialog runs through: the ACK went to the Contact; end it.
            tracing::error!(call = %id, "{e} in the 2xx; hanging up");
            c.bye_reason = Some(reason(400, &e.to_string()));
            c.state = CallState::Active;
            self.send_bye(env, now, id);
            return;
        }
        let answer = SessionDescription::parse(&resp.body)
            .map_err(|e| OaError::Malformed(e.to_string()))
            .and_then(|a| offer_answer::accept_answer(&a, &uac.offer));
        match answer {
            Ok(Some(neg)) => {
                c.negotiated = Some(neg);
                c.answered = Some(now);
                let state = Self::state_for(c);
                self.set_state(env, id, state, Some(resp.status.unwrap_or(200)), None);
                self.sync_media(env, id);
            }
            Ok(None) | Err(_) => {
                let why = match answer {
                    Err(e) => e.to_string(),
                    _ => "the peer declined the audio stream".into(),
                };
                tracing::error!(call = %id, "unusable SDP answer: {why}; hanging up");
                c.bye_reason = Some(reason(488, &why));
                c.state = CallState::Active;
                self.send_bye(env, now, id);
            }
        }
    }

    /// A 2xx from a second fork of our INVITE (13.2.2.4): ACK it, then BYE it.
    fn ack_and_bye_fork(env: &mut Env, now: Instant, c: &Call, resp: &Message, uac: &Uac) {
        let mut d = c.dialog.clone();
        d.confirmed = false;
        d.route_set.clear();
        // Unroutable or not, it is acknowledged and ended.
        let _ = d.uac_update(resp);
        tracing::info!(call = %c.id, tag = ?resp.to_tag(), "2xx from another fork: ACK and BYE it");
        let branch = env.branch();
        let (b, dest) = d.request("ACK", uac.cseq, &env.via(&branch));
        env.send(dest, b.build());
        let cseq = d.next_cseq();
        let branch = env.branch();
        let (b, dest) = d.request("BYE", cseq, &env.via(&branch));
        let data = b.header("User-Agent", USER_AGENT).build();
        env.client_tx(
            now,
            dest,
            data,
            &branch,
            "BYE",
            Owner::Call(c.id.clone(), CallTx::ForkBye),
        );
    }

    // ---------------------------------------------------------------- incoming

    /// A new INVITE the policy admitted.
    pub fn on_invite(
        &mut self,
        env: &mut Env,
        now: Instant,
        tx: Option<TxId>,
        req: Message,
        from: SocketAddr,
        vouched: bool,
    ) {
        let id = req.call_id().to_string();
        let Some(tx) = tx else {
            // No room for a transaction (only finished ones are evicted).
            env.reply(
                now,
                None,
                &req,
                from,
                (503, "Service Unavailable"),
                None,
                &[("Retry-After", "5")],
                None,
            );
            return;
        };
        if let Some(c) = self.calls.get(&id) {
            let merged = c
                .uas
                .as_ref()
                .is_some_and(|u| u.req.from_tag() == req.from_tag() && u.req.cseq() == req.cseq());
            let r = if merged {
                (482, "Loop Detected") // 8.2.2.2: the same request by another path
            } else {
                (486, "Busy Here")
            };
            env.reply(now, Some(tx), &req, from, r, None, &[], None);
            return;
        }
        let peer = req.header_uri("from").unwrap_or_default();
        if let Some(ct) = req.header("content-type") {
            if !req.body.is_empty() && !ct.to_ascii_lowercase().starts_with("application/sdp") {
                let accept = [("Accept", "application/sdp")];
                env.reply(
                    now,
                    Some(tx),
                    &req,
                    from,
                    (415, "Unsupported Media Type"),
                    None,
                    &accept,
                    None,
                );
                return;
            }
        }
        // An empty body is an offerless INVITE: our offer goes in the 200.
        if !req.body.is_empty() {
            let checked = SessionDescription::parse(&req.body)
                .map_err(|e| OaError::Malformed(e.to_string()))
                .and_then(|o| offer_answer::answer(&o, &local_media(env, 0), Direction::SendRecv));
            let refuse = match checked {
                Err(OaError::Malformed(e)) => Some((400, "Bad Request", "399", e)),
                Err(OaError::NotAcceptable(e)) => Some((488, "Not Acceptable Here", "304", e)),
                Ok((_, None)) => Some((
                    488,
                    "Not Acceptable Here",
                    "304",
                    "no usable audio stream".to_string(),
                )),
                Ok(_) => None,
            };
            if let Some((code, phrase, warn, e)) = refuse {
                let w = format!("{warn} voipbridge \"{}\"", warning_text(&e));
                env.reply(
                    now,
                    Some(tx),
                    &req,
                    from,
                    (code, phrase),
                    None,
                    &[("Warning", &w)],
                    None,
                );
                return;
            }
        }
        if self.calls.len() >= MAX_CALLS {
            env.reply(
                now,
                Some(tx),
                &req,
                from,
                (486, "Busy Here"),
                None,
                &[],
                None,
            );
            return;
        }
        let Some(slot) = self.free_slot(env.cfg.slots) else {
            tracing::info!(peer = %warning_text(&peer), "all substreams busy: 486");
            env.reply(
                now,
                Some(tx),
                &req,
                from,
                (486, "Busy Here"),
                None,
                &[],
                None,
            );
            return;
        };
        let local_tag = env.token(10);
        let dialog = match Dialog::uas(&req, &local_tag, from) {
            Ok(d) => d,
            Err(e) => {
                let warning = format!("399 voipbridge \"{e}\"");
                let w = [("Warning", warning.as_str())];
                env.reply(
                    now,
                    Some(tx),
                    &req,
                    from,
                    (400, "Bad Request"),
                    None,
                    &w,
                    None,
                );
                return;
            }
        };
        env.txs
            .set_owner(tx, Owner::Call(id.clone(), CallTx::Server));
        let session_id = u64::from(rand::Rng::gen::<u32>(&mut env.rng));
        let expires_at = req
            .expires()
            .map(|e| now + Duration::from_secs(u64::from(e)));
        let call = Call {
            id: id.clone(),
            dir: Dir::Incoming,
            state: CallState::Incoming,
            dialog,
            peer_uri: peer.clone(),
            slot: Some(slot),
            first_slot: slot,
            media: MediaPhase::Idle,
            running: None,
            restart: false,
            negotiated: None,
            sdp: SdpVersion::new(session_id),
            created: now,
            answered: None,
            hold: false,
            vouched,
            auth: Authenticator::default(),
            uas: Some(Uas {
                tx: Some(tx),
                req: req.clone(),
                from,
            }),
            answer_at: env.cfg.auto_answer.map(|d| now + d),
            ring_deadline: Some(now + env.cfg.ring_timeout),
            expires_at,
            ack_wait: None,
            bye_after_ack: false,
            uac: None,
            pending: Pending::No,
            ack: None,
            reinvite: None,
            reinvite_at: None,
            want_hold: None,
            bye: None,
            bye_auth_tried: false,
            bye_reason: None,
            give_up_at: None,
            end_code: None,
            end_reason: None,
            over: None,
        };
        self.calls.insert(id.clone(), call);
        env.reply(now, Some(tx), &req, from, (100, "Trying"), None, &[], None);
        let contact = env.contact();
        env.reply(
            now,
            Some(tx),
            &req,
            from,
            (180, "Ringing"),
            Some(&local_tag),
            &[("Contact", &contact)],
            None,
        );
        tracing::info!(call = %id, peer = %warning_text(&peer), slot, vouched, "incoming call");
        env.out.push(Action::Event(Event::Call {
            call_id: id.clone(),
            state: CallState::Incoming,
            peer,
            code: None,
            reason: None,
        }));
        if env.cfg.auto_answer == Some(Duration::ZERO) {
            self.answer(env, now, &id);
        }
    }

    /// `answer` command: the given call, or the oldest ringing one.
    pub fn answer_cmd(&mut self, env: &mut Env, now: Instant, id: Option<String>) {
        let id = id.or_else(|| {
            self.calls
                .values()
                .filter(|c| c.state == CallState::Incoming)
                .min_by_key(|c| c.created)
                .map(|c| c.id.clone())
        });
        if let Some(id) = id {
            self.answer(env, now, &id);
        }
    }

    /// Answers a ringing incoming call with a 200 (our answer, or our offer
    /// for an offerless INVITE). The media waits for the ACK.
    fn answer(&mut self, env: &mut Env, now: Instant, id: &str) {
        let Some(c) = self.calls.get_mut(id) else {
            return;
        };
        if c.state != CallState::Incoming {
            return;
        }
        let (Some(uas), Some(slot)) = (c.uas.clone(), c.slot) else {
            return;
        };
        let local = local_media(env, slot);
        let (body, offer) = if uas.req.body.is_empty() {
            let offer = offer_answer::offer(&local, Direction::SendRecv);
            (c.sdp.body(local.ip, &offer), Some(offer))
        } else {
            let answered = SessionDescription::parse(&uas.req.body)
                .map_err(|e| OaError::Malformed(e.to_string()))
                .and_then(|o| offer_answer::answer(&o, &local, Direction::SendRecv));
            match answered {
                Ok((secs, Some(neg))) => {
                    c.negotiated = Some(neg);
                    (c.sdp.body(local.ip, &secs), None)
                }
                Ok((_, None)) | Err(_) => {
                    let why = match answered {
                        Err(e) => e.to_string(),
                        _ => "no usable audio stream".into(),
                    };
                    let w = format!("304 voipbridge \"{}\"", warning_text(&why));
                    let tag = c.dialog.local_tag.clone();
                    env.reply(
                        now,
                        uas.tx,
                        &uas.req,
                        uas.from,
                        (488, "Not Acceptable Here"),
                        Some(&tag),
                        &[("Warning", &w)],
                        None,
                    );
                    c.uas = None;
                    self.end(env, id, Some(488), Some(why));
                    return;
                }
            }
        };
        let tag = c.dialog.local_tag.clone();
        let contact = env.contact();
        env.reply(
            now,
            uas.tx,
            &uas.req,
            uas.from,
            (200, "OK"),
            Some(&tag),
            &[
                ("Contact", &contact),
                ("Allow", ALLOW),
                ("User-Agent", USER_AGENT),
            ],
            Some(("application/sdp", body)),
        );
        if offer.is_some() {
            tracing::info!(call = %id, "offerless INVITE: our offer is in the 200, waiting for the answer in the ACK");
        }
        c.ack_wait = Some(AckWait {
            tx: uas.tx,
            cseq: uas.req.cseq().map_or(0, |x| x.0),
            offer,
        });
        c.uas = None;
        c.answer_at = None;
        c.ring_deadline = None;
        c.expires_at = None;
        c.answered = Some(now);
        let state = Self::state_for(c);
        self.set_state(env, id, state, None, None);
    }

    /// An ACK outside any transaction (of a 2xx) or of a 2xx sent on a
    /// branch the peer reused.
    pub fn on_ack(
        &mut self,
        env: &mut Env,
        now: Instant,
        _tx: Option<TxId>,
        req: &Message,
        from: SocketAddr,
    ) {
        let id = req.call_id().to_string();
        let Some(c) = self.calls.get_mut(&id) else {
            return;
        };
        if c.over.is_some() || !c.dialog.matches_request(req) {
            tracing::debug!(call = %id, %from, "ACK that does not match the dialog: ignored");
            return;
        }
        if c.ack_wait.as_ref().map(|w| w.cseq) != req.cseq().map(|x| x.0) {
            return; // a retransmitted or stale ACK
        }
        let Some(w) = c.ack_wait.take() else {
            return;
        };
        if let Some(t) = w.tx {
            env.txs.ack_received(t);
        }
        c.dialog.confirmed = true;
        if let Some(offer) = w.offer {
            let answer = if req.body.is_empty() {
                Err(OaError::NotAcceptable("no SDP answer in the ACK".into()))
            } else {
                SessionDescription::parse(&req.body)
                    .map_err(|e| OaError::Malformed(e.to_string()))
                    .and_then(|a| offer_answer::accept_answer(&a, &offer))
            };
            match answer {
                Ok(Some(neg)) => {
                    tracing::info!(call = %id, codec = neg.codec.name(), remote = %neg.remote, "answer from the ACK");
                    c.negotiated = Some(neg);
                }
                Ok(None) | Err(_) => {
                    let why = match answer {
                        Err(e) => e.to_string(),
                        _ => "the ACK declined the audio stream".into(),
                    };
                    tracing::warn!(call = %id, "unusable answer in the ACK ({why}): hanging up");
                    c.bye_reason = Some(reason(488, &why));
                    self.send_bye(env, now, &id);
                    return;
                }
            }
        }
        if c.bye_after_ack {
            self.send_bye(env, now, &id);
            return;
        }
        let state = Self::state_for(c);
        if matches!(c.state, CallState::Active | CallState::Held) {
            self.set_state(env, &id, state, None, None);
        }
        self.sync_media(env, &id);
    }

    /// Our 2xx was never ACKed (13.3.1.4): end the session with BYE.
    pub fn on_no_ack(&mut self, env: &mut Env, now: Instant, id: &str, code: u16) {
        if !(200..300).contains(&code) {
            return;
        }
        let Some(c) = self.calls.get_mut(id) else {
            return;
        };
        if c.ack_wait.take().is_none() {
            return;
        }
        tracing::warn!(call = %id, "no ACK for our 200 OK: hanging up");
        c.bye_reason = Some(reason(408, "no ACK"));
        c.dialog.confirmed = true;
        self.send_bye(env, now, id);
    }

    pub fn on_cancel(
        &mut self,
        env: &mut Env,
        now: Instant,
        tx: Option<TxId>,
        req: &Message,
        from: SocketAddr,
    ) {
        let invite = env.txs.invite_for_cancel(req);
        let owner = invite.and_then(|t| env.txs.owner(t).cloned());
        let Some(Owner::Call(id, _)) = owner else {
            env.reply(
                now,
                tx,
                req,
                from,
                (481, "Call/Transaction Does Not Exist"),
                None,
                &[],
                None,
            );
            return;
        };
        env.reply(now, tx, req, from, (200, "OK"), None, &[], None);
        let Some(c) = self.calls.get_mut(&id) else {
            return;
        };
        // 9.2: a CANCEL after the final response has no effect.
        let Some(uas) = c.uas.take().filter(|u| u.tx == invite) else {
            return;
        };
        let tag = c.dialog.local_tag.clone();
        env.reply(
            now,
            uas.tx,
            &uas.req,
            uas.from,
            (487, "Request Terminated"),
            Some(&tag),
            &[],
            None,
        );
        self.end(env, &id, Some(487), Some("cancelled by caller".into()));
    }

    // ---------------------------------------------------------------- in dialog

    /// The call a request in a dialog belongs to; answers 481 / 500 itself
    /// when there is none or its CSeq is out of order.
    fn dialog_of(
        &mut self,
        env: &mut Env,
        now: Instant,
        tx: Option<TxId>,
        req: &Message,
        from: SocketAddr,
    ) -> Option<String> {
        let id = req.call_id().to_string();
        let Some(c) = self
            .calls
            .get_mut(&id)
            .filter(|c| c.over.is_none() && c.dialog.matches_request(req))
        else {
            env.reply(
                now,
                tx,
                req,
                from,
                (481, "Call/Transaction Does Not Exist"),
                None,
                &[],
                None,
            );
            return None;
        };
        if c.dialog.check_remote_cseq(req).is_err() {
            tracing::warn!(call = %id, cseq = ?req.cseq(), last = ?c.dialog.remote_seq, "CSeq out of order: 500");
            let tag = c.dialog.local_tag.clone();
            env.reply(
                now,
                tx,
                req,
                from,
                (500, "Server Internal Error"),
                Some(&tag),
                &[("Warning", "399 voipbridge \"CSeq out of order\"")],
                None,
            );
            return None;
        }
        Some(id)
    }

    /// BYE and INFO in a dialog.
    pub fn on_in_dialog(
        &mut self,
        env: &mut Env,
        now: Instant,
        tx: Option<TxId>,
        req: &Message,
        from: SocketAddr,
    ) {
        let Some(id) = self.dialog_of(env, now, tx, req, from) else {
            return;
        };
        let Some(c) = self.calls.get_mut(&id) else {
            return;
        };
        let tag = c.dialog.local_tag.clone();
        if req.method() == "BYE" {
            env.reply(now, tx, req, from, (200, "OK"), Some(&tag), &[], None);
            if let Some(uas) = c.uas.take() {
                // A BYE before we answered ends the INVITE too (15.1.2).
                env.reply(
                    now,
                    uas.tx,
                    &uas.req,
                    uas.from,
                    (487, "Request Terminated"),
                    Some(&tag),
                    &[],
                    None,
                );
            }
            if let Some(r) = c.reinvite.take() {
                if let Some(t) = r.tx {
                    env.txs.terminate(t);
                }
            }
            self.end(env, &id, None, Some("BYE from peer".into()));
            return;
        }
        // INFO
        let ct = req
            .header("content-type")
            .unwrap_or("")
            .to_ascii_lowercase();
        let ct = ct.split(';').next().unwrap_or("").trim().to_string();
        if req.body.is_empty() {
            env.reply(now, tx, req, from, (200, "OK"), Some(&tag), &[], None);
        } else if ct != "application/dtmf-relay" && ct != "application/dtmf" {
            let accept = [("Accept", "application/dtmf-relay, application/dtmf")];
            env.reply(
                now,
                tx,
                req,
                from,
                (415, "Unsupported Media Type"),
                Some(&tag),
                &accept,
                None,
            );
        } else if let Some(digit) = info_dtmf(&ct, &req.body) {
            env.reply(now, tx, req, from, (200, "OK"), Some(&tag), &[], None);
            tracing::info!(call = %id, %digit, "DTMF (SIP INFO)");
            env.out
                .push(Action::Event(Event::Dtmf { call_id: id, digit }));
        } else {
            let w = [("Warning", "399 voipbridge \"no DTMF digit in the body\"")];
            env.reply(
                now,
                tx,
                req,
                from,
                (400, "Bad Request"),
                Some(&tag),
                &w,
                None,
            );
        }
    }

    /// A re-INVITE from the peer.
    pub fn on_reinvite(
        &mut self,
        env: &mut Env,
        now: Instant,
        tx: Option<TxId>,
        req: &Message,
        from: SocketAddr,
    ) {
        let Some(id) = self.dialog_of(env, now, tx, req, from) else {
            return;
        };
        let Some(c) = self.calls.get_mut(&id) else {
            return;
        };
        let tag = c.dialog.local_tag.clone();
        let Some(tx) = tx else {
            env.reply(
                now,
                None,
                req,
                from,
                (503, "Service Unavailable"),
                Some(&tag),
                &[("Retry-After", "1")],
                None,
            );
            return;
        };
        if c.uas.is_some() {
            // 14.2: an INVITE before our final response to the first one.
            let secs = rand::Rng::gen_range(&mut env.rng, 0..=10).to_string();
            env.reply(
                now,
                Some(tx),
                req,
                from,
                (500, "Server Internal Error"),
                Some(&tag),
                &[("Retry-After", &secs)],
                None,
            );
            return;
        }
        if c.reinvite.is_some()
            || c.ack_wait.is_some()
            || !matches!(c.state, CallState::Active | CallState::Held)
        {
            // 14.2 glare: our re-INVITE (or an offer of ours) is pending.
            tracing::info!(call = %id, "re-INVITE while ours is pending: 491");
            env.reply(
                now,
                Some(tx),
                req,
                from,
                (491, "Request Pending"),
                Some(&tag),
                &[],
                None,
            );
            return;
        }
        let Some(slot) = c.slot else {
            env.reply(
                now,
                Some(tx),
                req,
                from,
                (488, "Not Acceptable Here"),
                Some(&tag),
                &[],
                None,
            );
            return;
        };
        let mut local = local_media(env, slot);
        // Keep the SRTP keys in use (no re-keying, no media restart).
        local.keep = c
            .running
            .as_ref()
            .or(c.negotiated.as_ref())
            .and_then(|n| n.crypto.clone());
        let want = if c.hold {
            Direction::SendOnly
        } else {
            Direction::SendRecv
        };
        let contact = env.contact();
        let extra = [
            ("Contact", contact.as_str()),
            ("Allow", ALLOW),
            ("User-Agent", USER_AGENT),
        ];
        // An offerless re-INVITE gets our offer in the 200 (the answer comes
        // in the ACK); an offer gets our answer. Either way the 200 and the
        // wait for its ACK are the same.
        let (body, offer, neg) = if req.body.is_empty() {
            let offer = offer_answer::offer(&local, want);
            (c.sdp.body(local.ip, &offer), Some(offer), None)
        } else {
            let answered = SessionDescription::parse(&req.body)
                .map_err(|e| OaError::Malformed(e.to_string()))
                .and_then(|o| offer_answer::answer(&o, &local, want));
            let (secs, neg) = match answered {
                Ok(x) => x,
                Err(e) => {
                    // The session stays as it was (RFC 3264 8).
                    let w = format!("304 voipbridge \"{}\"", warning_text(&e.to_string()));
                    env.reply(
                        now,
                        Some(tx),
                        req,
                        from,
                        (488, "Not Acceptable Here"),
                        Some(&tag),
                        &[("Warning", &w)],
                        None,
                    );
                    return;
                }
            };
            (c.sdp.body(local.ip, &secs), None, Some(neg))
        };
        env.txs
            .set_owner(tx, Owner::Call(id.clone(), CallTx::Server));
        env.reply(
            now,
            Some(tx),
            req,
            from,
            (200, "OK"),
            Some(&tag),
            &extra,
            Some(("application/sdp", body)),
        );
        c.dialog.refresh_target(req);
        c.ack_wait = Some(AckWait {
            tx: Some(tx),
            cseq: req.cseq().map_or(0, |x| x.0),
            offer,
        });
        let Some(neg) = neg else {
            return;
        };
        let offered_dir = neg.as_ref().map(|n| n.direction.answer());
        c.negotiated = neg;
        let state = Self::state_for(c);
        let why = offered_dir.map(|d| format!("peer offered {}", d.attr()));
        self.set_state(env, &id, state, None, why);
        self.sync_media(env, &id);
    }

    // ---------------------------------------------------------------- our requests in the dialog

    /// `hold` / `resume` command.
    pub fn hold_cmd(&mut self, env: &mut Env, now: Instant, id: Option<String>, hold: bool) {
        let id = id.or_else(|| {
            self.calls
                .values()
                .find(|c| matches!(c.state, CallState::Active | CallState::Held))
                .map(|c| c.id.clone())
        });
        let Some(id) = id else {
            return;
        };
        let Some(c) = self.calls.get_mut(&id) else {
            return;
        };
        if !matches!(c.state, CallState::Active | CallState::Held) {
            return;
        }
        c.want_hold = Some(hold);
        if c.reinvite.is_some()
            || c.ack_wait.is_some()
            || c.reinvite_at.is_some()
            || !c.dialog.confirmed
        {
            // After the pending exchange (or the glare wait).
            if c.reinvite_at.is_none() && c.reinvite.is_none() {
                c.reinvite_at = Some(now + env.cfg.t1);
            }
            return;
        }
        self.send_reinvite(env, now, &id, false);
    }

    fn send_reinvite(&mut self, env: &mut Env, now: Instant, id: &str, with_auth: bool) {
        let Some(c) = self.calls.get_mut(id) else {
            return;
        };
        let Some(slot) = c.slot else {
            return;
        };
        c.reinvite_at = None;
        if let Some(h) = c.want_hold.take() {
            c.hold = h;
        }
        let mut local = local_media(env, slot);
        // Keep the SRTP keys in use (no re-keying, no media restart).
        local.keep = c
            .running
            .as_ref()
            .or(c.negotiated.as_ref())
            .and_then(|n| n.crypto.clone());
        let want = if c.hold {
            Direction::SendOnly
        } else {
            Direction::SendRecv
        };
        let offer = offer_answer::offer(&local, want);
        let body = c.sdp.body(local.ip, &offer);
        let cseq = c.dialog.next_cseq();
        let branch = env.branch();
        let (mut b, dest) = c.dialog.request("INVITE", cseq, &env.via(&branch));
        b = b
            .header("Contact", &env.contact())
            .header("Allow", ALLOW)
            .header("User-Agent", USER_AGENT);
        if with_auth {
            let cnonce = env.token(16);
            let creds = Credentials {
                user: &env.cfg.username,
                password: &env.cfg.password,
            };
            let (ruri, _, _) = c.dialog.route();
            for (n, v) in c.auth.headers(&creds, "INVITE", &ruri, &body, &cnonce) {
                b = b.header(n, &v);
            }
        }
        let data = b.body("application/sdp", body).build();
        tracing::info!(call = %id, hold = c.hold, "sending re-INVITE");
        let tx = env.client_tx(
            now,
            dest,
            data,
            &branch,
            "INVITE",
            Owner::Call(id.to_string(), CallTx::ReInvite),
        );
        c.reinvite = Some(OurReInvite {
            tx,
            cseq,
            offer,
            auth_tried: with_auth,
        });
    }

    fn on_reinvite_response(
        &mut self,
        env: &mut Env,
        now: Instant,
        id: &str,
        tx: TxId,
        resp: &Message,
    ) {
        let Some(c) = self.calls.get_mut(id) else {
            return;
        };
        let code = resp.status.unwrap_or(0);
        let Some(ours) = c.reinvite.clone().filter(|r| r.tx == Some(tx)) else {
            // A retransmitted 2xx of a re-INVITE we already ACKed.
            if (200..300).contains(&code) {
                if let Some((cseq, dest, data)) = &c.ack {
                    if resp.cseq().map(|x| x.0) == Some(*cseq) {
                        env.send(*dest, data.clone());
                    }
                }
            }
            return;
        };
        if code < 200 {
            return;
        }
        c.reinvite = None;
        match code {
            200..=299 => {
                let branch = env.branch();
                let (b, dest) = c.dialog.request("ACK", ours.cseq, &env.via(&branch));
                let ack = b.build();
                env.send(dest, ack.clone());
                c.ack = Some((ours.cseq, dest, ack));
                c.dialog.refresh_target(resp);
                let answer = SessionDescription::parse(&resp.body)
                    .map_err(|e| OaError::Malformed(e.to_string()))
                    .and_then(|a| offer_answer::accept_answer(&a, &ours.offer));
                match answer {
                    Ok(neg) => {
                        c.negotiated = neg;
                        let state = Self::state_for(c);
                        self.set_state(env, id, state, None, None);
                        self.sync_media(env, id);
                        self.queue_hold_change(env, now, id);
                    }
                    Err(e) => {
                        tracing::error!(call = %id, "unusable answer to our re-INVITE: {e}; hanging up");
                        c.bye_reason = Some(reason(488, &e.to_string()));
                        self.send_bye(env, now, id);
                    }
                }
            }
            491 => {
                let wait = c.dialog.glare_retry_delay(&mut env.rng);
                tracing::info!(call = %id, ?wait, "re-INVITE glare (491): retrying");
                if c.want_hold.is_none() {
                    c.want_hold = Some(c.hold);
                }
                c.reinvite_at = Some(now + wait);
            }
            401 | 407 if !ours.auth_tried && c.auth.on_challenge(resp).is_ok() => {
                if c.want_hold.is_none() {
                    c.want_hold = Some(c.hold);
                }
                self.send_reinvite(env, now, id, true);
            }
            408 | 481 => {
                // 14.1: the dialog is gone.
                tracing::warn!(call = %id, code, "re-INVITE answered {code}: ending the dialog");
                if code == 408 {
                    c.bye_reason = Some(reason(408, "re-INVITE timed out"));
                    self.send_bye(env, now, id);
                } else {
                    self.end(env, id, Some(code), Some(resp.reason.clone()));
                }
            }
            _ => {
                tracing::warn!(call = %id, code, "re-INVITE refused: {}", resp.reason);
                // The session stays as it was; so does our hold state.
                c.hold = c
                    .negotiated
                    .as_ref()
                    .is_some_and(|n| !n.direction.receives() && c.hold);
                self.queue_hold_change(env, now, id);
            }
        }
    }

    /// A hold change asked for while a re-INVITE was pending.
    fn queue_hold_change(&mut self, env: &mut Env, now: Instant, id: &str) {
        if let Some(c) = self.calls.get_mut(id) {
            if c.want_hold.is_some_and(|h| h != c.hold) && c.reinvite_at.is_none() {
                c.reinvite_at = Some(now);
            } else {
                c.want_hold = None;
            }
            let _ = env;
        }
    }

    /// `hangup` command: the given call, or every call.
    pub fn hangup_cmd(&mut self, env: &mut Env, now: Instant, id: Option<String>) {
        let ids: Vec<String> = match id {
            Some(i) => vec![i],
            None => self.calls.keys().cloned().collect(),
        };
        for i in ids {
            self.hangup(env, now, &i, None);
        }
    }

    fn hangup(&mut self, env: &mut Env, now: Instant, id: &str, why: Option<String>) {
        let Some(c) = self.calls.get_mut(id) else {
            return;
        };
        match c.state {
            CallState::Calling | CallState::Ringing => {
                c.ring_deadline = None;
                c.end_reason = why.or(Some("cancelled".into()));
                if c.pending != Pending::No || c.uac.is_none() {
                    self.end(env, id, None, None);
                    return;
                }
                Self::release(env, c);
                let tx = c.uac.as_ref().and_then(|u| u.tx);
                let provisional = tx.is_some_and(|t| env.txs.provisional_received(t));
                if provisional {
                    self.send_cancel(env, now, id);
                } else if let Some(u) = c.uac.as_mut() {
                    // 9.1: no CANCEL before a provisional response: wait for one.
                    tracing::info!(call = %id, "hanging up before any provisional response: the CANCEL waits for one");
                    u.cancel = Cancel::Pending;
                }
                self.set_state(env, id, CallState::Terminating, None, None);
            }
            CallState::Incoming => {
                if let Some(uas) = c.uas.take() {
                    let tag = c.dialog.local_tag.clone();
                    env.reply(
                        now,
                        uas.tx,
                        &uas.req,
                        uas.from,
                        (603, "Decline"),
                        Some(&tag),
                        &[],
                        None,
                    );
                }
                self.end(env, id, Some(603), Some("declined".into()));
            }
            CallState::Active | CallState::Held => {
                if let Some(w) = why {
                    c.bye_reason.get_or_insert(w);
                }
                if c.ack_wait.is_some() && !c.dialog.confirmed {
                    // 15: no BYE before the ACK of our 2xx (or its timeout).
                    c.bye_after_ack = true;
                    Self::release(env, c);
                    self.set_state(env, id, CallState::Terminating, None, None);
                    return;
                }
                self.send_bye(env, now, id);
            }
            CallState::Terminating | CallState::Ended => {}
        }
    }

    fn send_bye(&mut self, env: &mut Env, now: Instant, id: &str) {
        self.send_bye_auth(env, now, id, false);
    }

    fn send_bye_auth(&mut self, env: &mut Env, now: Instant, id: &str, with_auth: bool) {
        let Some(c) = self.calls.get_mut(id) else {
            return;
        };
        Self::release(env, c);
        c.bye_after_ack = false;
        c.reinvite_at = None;
        c.ring_deadline = None;
        let cseq = c.dialog.next_cseq();
        let branch = env.branch();
        let (mut b, dest) = c.dialog.request("BYE", cseq, &env.via(&branch));
        b = b.header("User-Agent", USER_AGENT);
        if let Some(r) = &c.bye_reason {
            b = b.header("Reason", r);
        }
        if with_auth {
            let cnonce = env.token(16);
            let creds = Credentials {
                user: &env.cfg.username,
                password: &env.cfg.password,
            };
            let (ruri, _, _) = c.dialog.route();
            for (n, v) in c.auth.headers(&creds, "BYE", &ruri, b"", &cnonce) {
                b = b.header(n, &v);
            }
        }
        c.bye = env.client_tx(
            now,
            dest,
            b.build(),
            &branch,
            "BYE",
            Owner::Call(id.to_string(), CallTx::Bye),
        );
        let why = c.bye_reason.clone();
        if c.bye.is_none() {
            self.end(env, id, None, why);
            return;
        }
        self.set_state(env, id, CallState::Terminating, None, why);
    }

    fn on_bye_response(&mut self, env: &mut Env, now: Instant, id: &str, tx: TxId, resp: &Message) {
        let Some(c) = self.calls.get_mut(id) else {
            return;
        };
        if c.bye != Some(tx) {
            return;
        }
        let code = resp.status.unwrap_or(0);
        if code < 200 {
            return;
        }
        if (code == 401 || code == 407) && !c.bye_auth_tried && c.auth.on_challenge(resp).is_ok() {
            c.bye_auth_tried = true;
            tracing::info!(call = %id, code, "BYE challenged: sending it again with credentials");
            self.send_bye_auth(env, now, id, true);
            return;
        }
        let code = (code >= 300).then_some(code);
        let why = c.bye_reason.clone().unwrap_or_else(|| "hung up".into());
        self.end(env, id, code, Some(why));
    }

    // ---------------------------------------------------------------- routing of layer events

    pub fn on_response(
        &mut self,
        env: &mut Env,
        now: Instant,
        id: &str,
        kind: CallTx,
        tx: TxId,
        resp: &Message,
    ) {
        match kind {
            CallTx::Invite => self.on_invite_response(env, now, id, tx, resp),
            CallTx::ReInvite => self.on_reinvite_response(env, now, id, tx, resp),
            CallTx::Bye => self.on_bye_response(env, now, id, tx, resp),
            CallTx::Cancel | CallTx::ForkBye | CallTx::Server => {}
        }
    }

    /// A response no transaction matched: a 2xx retransmitted after timer
    /// M is ACKed again.
    pub fn on_stray(&mut self, env: &mut Env, _now: Instant, resp: &Message, _from: SocketAddr) {
        let code = resp.status.unwrap_or(0);
        if !(200..300).contains(&code) || resp.cseq().map(|x| x.1).as_deref() != Some("INVITE") {
            return;
        }
        if let Some(c) = self.calls.get(resp.call_id()) {
            if let Some((cseq, dest, data)) = &c.ack {
                if resp.cseq().map(|x| x.0) == Some(*cseq) && resp.to_tag() == c.dialog.remote_tag {
                    env.send(*dest, data.clone());
                }
            }
        }
    }

    /// A client transaction of a call ended without a final response.
    pub fn on_failure(
        &mut self,
        env: &mut Env,
        now: Instant,
        id: &str,
        kind: CallTx,
        tx: TxId,
        code: u16,
    ) {
        let Some(c) = self.calls.get_mut(id) else {
            return;
        };
        match kind {
            CallTx::Invite if c.uac.as_ref().and_then(|u| u.tx) == Some(tx) => {
                let why = if code == 503 {
                    "cannot reach the peer"
                } else {
                    "no answer from the peer"
                };
                self.end(env, id, Some(code), Some(why.into()));
            }
            CallTx::ReInvite if c.reinvite.as_ref().and_then(|r| r.tx) == Some(tx) => {
                c.reinvite = None;
                c.bye_reason = Some(reason(408, "re-INVITE timed out"));
                self.send_bye(env, now, id);
            }
            CallTx::Bye if c.bye == Some(tx) => {
                self.end(env, id, Some(code), Some("peer did not confirm".into()));
            }
            _ => {}
        }
    }

    // ---------------------------------------------------------------- timers

    pub fn on_timers(&mut self, env: &mut Env, now: Instant) {
        let due = |t: Option<Instant>| t.is_some_and(|t| now >= t);
        let ids: Vec<String> = self
            .calls
            .values()
            .filter(|c| {
                due(c.answer_at)
                    || due(c.ring_deadline)
                    || due(c.expires_at)
                    || due(c.reinvite_at)
                    || due(c.give_up_at)
            })
            .map(|c| c.id.clone())
            .collect();
        for id in ids {
            let Some(c) = self.calls.get_mut(&id) else {
                continue;
            };
            if due(c.expires_at) && c.state == CallState::Incoming {
                // 13.3.1: the INVITE's Expires passed unanswered.
                if let Some(uas) = c.uas.take() {
                    let tag = c.dialog.local_tag.clone();
                    env.reply(
                        now,
                        uas.tx,
                        &uas.req,
                        uas.from,
                        (487, "Request Terminated"),
                        Some(&tag),
                        &[],
                        None,
                    );
                }
                tracing::info!(call = %id, "the INVITE expired unanswered: 487");
                self.end(env, &id, Some(487), Some("INVITE expired".into()));
                continue;
            }
            if due(c.ring_deadline) {
                c.ring_deadline = None;
                if c.state == CallState::Incoming {
                    if let Some(uas) = c.uas.take() {
                        let tag = c.dialog.local_tag.clone();
                        env.reply(
                            now,
                            uas.tx,
                            &uas.req,
                            uas.from,
                            (480, "Temporarily Unavailable"),
                            Some(&tag),
                            &[],
                            None,
                        );
                    }
                    tracing::info!(call = %id, "not answered within the ring timeout: 480");
                    self.end(env, &id, Some(480), Some("not answered".into()));
                } else {
                    tracing::info!(call = %id, "no answer within the ring timeout: cancelling");
                    self.hangup(env, now, &id, Some("no answer (ring timeout)".into()));
                }
                continue;
            }
            if due(c.answer_at) {
                c.answer_at = None;
                self.answer(env, now, &id);
                continue;
            }
            if due(c.give_up_at) {
                c.give_up_at = None;
                tracing::warn!(call = %id, "no final response 64*T1 after the CANCEL: giving the call up");
                self.end(
                    env,
                    &id,
                    Some(408),
                    Some("no final response to the cancelled INVITE".into()),
                );
                continue;
            }
            if due(c.reinvite_at) {
                c.reinvite_at = None;
                if c.reinvite.is_none()
                    && c.ack_wait.is_none()
                    && c.dialog.confirmed
                    && matches!(c.state, CallState::Active | CallState::Held)
                {
                    self.send_reinvite(env, now, &id, false);
                } else if matches!(c.state, CallState::Active | CallState::Held)
                    && c.reinvite.is_none()
                {
                    c.reinvite_at = Some(now + env.cfg.t1);
                }
            }
        }
    }

    // ---------------------------------------------------------------- media results

    pub fn on_media_started(
        &mut self,
        env: &mut Env,
        now: Instant,
        id: &str,
        result: Result<(), String>,
    ) {
        let Some(c) = self.calls.get_mut(id) else {
            return;
        };
        if c.media != MediaPhase::Starting {
            return; // already stopping: MediaStopped follows
        }
        match result {
            Ok(()) => c.media = MediaPhase::Running,
            Err(e) => {
                tracing::error!(call = %id, "media failed to start: {e}; hanging up");
                c.media = MediaPhase::Idle;
                c.running = None;
                env.out.push(Action::Event(Event::MediaFailed {
                    call_id: id.to_string(),
                    reason: e.clone(),
                }));
                c.bye_reason = Some(reason(500, &format!("media failed: {e}")));
                let why = c.bye_reason.clone();
                self.hangup(env, now, id, why);
            }
        }
    }

    pub fn on_media_stopped(&mut self, env: &mut Env, _now: Instant, id: &str) {
        let Some(c) = self.calls.get_mut(id) else {
            return;
        };
        if c.media != MediaPhase::Stopping {
            return;
        }
        c.media = MediaPhase::Idle;
        c.running = None;
        if let Some((code, why)) = c.over.take() {
            c.slot = None;
            self.finish(env, id, code, why);
            return;
        }
        if c.restart && matches!(c.state, CallState::Active | CallState::Held) {
            c.restart = false;
            self.sync_media(env, id);
        } else if !matches!(c.state, CallState::Active | CallState::Held) {
            c.slot = None;
        }
    }

    pub fn on_media_event(&mut self, env: &mut Env, now: Instant, id: &str, ev: MediaEvent) {
        match ev {
            MediaEvent::DtmfReceived(digit) => {
                tracing::info!(call = %id, %digit, "DTMF");
                env.out.push(Action::Event(Event::Dtmf {
                    call_id: id.to_string(),
                    digit,
                }));
            }
            MediaEvent::RtpTimeout => {
                tracing::warn!(call = %id, "no RTP: hanging up");
                self.hangup(env, now, id, Some(reason(408, "RTP timeout")));
            }
            MediaEvent::DeviceError(e) => {
                tracing::error!(call = %id, "audio device failed: {e}; hanging up");
                env.out.push(Action::Event(Event::MediaFailed {
                    call_id: id.to_string(),
                    reason: e.clone(),
                }));
                self.hangup(
                    env,
                    now,
                    id,
                    Some(reason(500, &format!("audio device: {e}"))),
                );
            }
        }
    }
}
