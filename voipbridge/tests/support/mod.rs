//! Helpers shared by the virtual-time tests of the user agent (`tests/ua*.rs`):
//! a peer that writes requests and responses by hand, and readers for
//! what the UA sends. Every UA here is seeded, so a failing run replays.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::time::{Duration, Instant};
use voipbridge::media::Codec;
use voipbridge::sip::message::Message;
use voipbridge::sip::policy::Accept;
use voipbridge::sip::ua::{Action, CallState, Event, Input, MediaOffer, Ua, UaConfig};
use voipbridge::sip::uri::ServerUri;

pub const T1: Duration = Duration::from_millis(500);

/// The far end.
pub fn peer() -> SocketAddr {
    "127.0.0.1:5080".parse().unwrap()
}

/// The registrar.
pub fn registrar() -> SocketAddr {
    "127.0.0.1:5060".parse().unwrap()
}

/// The registrar as configured.
pub fn registrar_uri() -> ServerUri {
    ServerUri::parse("127.0.0.1:5060").unwrap()
}

/// A UA on 127.0.0.1:5070 that answers anyone at once (`accept = "any"`).
pub fn cfg() -> UaConfig {
    let mut c = UaConfig::new("sip:bridge@127.0.0.1", "127.0.0.1:5070".parse().unwrap());
    c.password = "secret".into();
    c.expires = 600;
    c.codecs = vec![Codec::Pcmu, Codec::Pcma];
    c.accept = Accept::Any;
    c
}

/// A seeded UA.
pub fn new_ua(c: UaConfig) -> Ua {
    Ua::with_seed(c, 7)
}

/// What the UA sent, parsed (every message we send must parse).
pub fn sent(actions: &[Action]) -> Vec<Message> {
    sent_to(actions).into_iter().map(|(_, m)| m).collect()
}

/// What the UA sent, with destinations.
pub fn sent_to(actions: &[Action]) -> Vec<(SocketAddr, Message)> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Send { to, data } => Some((
                *to,
                Message::parse(data).expect("we only send parsable messages"),
            )),
            _ => None,
        })
        .collect()
}

/// Status codes of the responses sent.
pub fn statuses(actions: &[Action]) -> Vec<u16> {
    sent(actions).iter().filter_map(|m| m.status).collect()
}

/// Methods of the requests sent.
pub fn methods(actions: &[Action]) -> Vec<String> {
    sent(actions)
        .iter()
        .filter_map(|m| m.method.clone())
        .collect()
}

/// The first request of `method` sent.
pub fn find(actions: &[Action], method: &str) -> Option<Message> {
    sent(actions)
        .into_iter()
        .find(|m| m.method.as_deref() == Some(method))
}

/// The first response with `code` sent.
pub fn find_status(actions: &[Action], code: u16) -> Option<Message> {
    sent(actions).into_iter().find(|m| m.status == Some(code))
}

pub const SDP: &str = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0 8 101\r\na=rtpmap:101 telephone-event/8000\r\n";

/// A request from the peer (Via 127.0.0.1:5080, From alice with tag alice1).
pub fn request(
    method: &str,
    call_id: &str,
    branch: &str,
    cseq: u32,
    to_tag: Option<&str>,
    body: &str,
) -> Vec<u8> {
    request_from(
        method,
        call_id,
        branch,
        cseq,
        to_tag,
        body,
        "sip:alice@127.0.0.1",
    )
}

/// [`request`] with another From URI.
pub fn request_from(
    method: &str,
    call_id: &str,
    branch: &str,
    cseq: u32,
    to_tag: Option<&str>,
    body: &str,
    from_uri: &str,
) -> Vec<u8> {
    let to = match to_tag {
        Some(t) => format!("<sip:bridge@127.0.0.1>;tag={t}"),
        None => "<sip:bridge@127.0.0.1>".into(),
    };
    let ct = if body.is_empty() {
        String::new()
    } else {
        "Content-Type: application/sdp\r\n".into()
    };
    format!(
        "{method} sip:bridge@127.0.0.1:5070 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5080;branch={branch}\r\nFrom: <{from_uri}>;tag=alice1\r\nTo: {to}\r\nCall-ID: {call_id}\r\nCSeq: {cseq} {method}\r\nContact: <sip:alice@127.0.0.1:5080>\r\nMax-Forwards: 70\r\n{ct}Content-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

/// A datagram from the peer.
pub fn dgram(data: Vec<u8>) -> Input {
    Input::Datagram { from: peer(), data }
}

/// A datagram from `from`.
pub fn dgram_from(from: SocketAddr, data: Vec<u8>) -> Input {
    Input::Datagram { from, data }
}

/// A response to `req` from its peer: status line, Via/From/To/Call-ID/CSeq
/// copied (To gets `to_tag` when given), then `extra` header lines (each
/// ending in CRLF) and the body (as SDP when not empty).
pub fn response_to(
    req: &Message,
    status: &str,
    to_tag: Option<&str>,
    extra: &str,
    body: &str,
) -> Vec<u8> {
    let to = req.header("to").unwrap();
    let to = match to_tag {
        Some(t) if !to.contains(";tag=") => format!("{to};tag={t}"),
        _ => to.to_string(),
    };
    let ct = if body.is_empty() {
        ""
    } else {
        "Content-Type: application/sdp\r\n"
    };
    let vias: String = req
        .header_values("via")
        .iter()
        .map(|v| format!("Via: {v}\r\n"))
        .collect();
    format!(
        "SIP/2.0 {status}\r\n{vias}From: {}\r\nTo: {to}\r\nCall-ID: {}\r\nCSeq: {}\r\n{extra}{ct}Content-Length: {}\r\n\r\n{body}",
        req.header("from").unwrap(),
        req.call_id(),
        req.header("cseq").unwrap(),
        body.len()
    )
    .into_bytes()
}

/// Every Ended code of `actions` (calls and registration failures).
pub fn ended_codes(actions: &[Action]) -> Vec<u16> {
    actions
        .iter()
        .filter_map(|x| match x {
            Action::Event(Event::Call {
                state: CallState::Ended,
                code,
                ..
            }) => *code,
            Action::Event(Event::RegistrationFailed { code, .. }) => Some(*code),
            _ => None,
        })
        .collect()
}

/// Whether a call ended in `actions`.
pub fn call_ended(actions: &[Action]) -> bool {
    actions.iter().any(|x| {
        matches!(
            x,
            Action::Event(Event::Call {
                state: CallState::Ended,
                ..
            })
        )
    })
}

/// The media started in `actions`.
pub fn started(actions: &[Action]) -> Option<(String, MediaOffer)> {
    actions.iter().find_map(|a| match a {
        Action::StartMedia(id, m) => Some((id.clone(), m.clone())),
        _ => None,
    })
}

/// Answers every StartMedia / StopMedia of `actions` as the agent does
/// (started; stopped) and returns what the UA did in reply, answered too.
pub fn media_done(ua: &mut Ua, now: Instant, actions: &[Action]) -> Vec<Action> {
    let mut out = Vec::new();
    let mut todo: Vec<Input> = media_inputs(actions);
    while let Some(i) = todo.pop() {
        let a = ua.handle(now, i);
        todo.extend(media_inputs(&a));
        out.extend(a);
    }
    out
}

fn media_inputs(actions: &[Action]) -> Vec<Input> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::StartMedia(id, _) => Some(Input::MediaStarted {
                call_id: id.clone(),
                result: Ok(()),
            }),
            Action::StopMedia(id) => Some(Input::MediaStopped {
                call_id: id.clone(),
            }),
            _ => None,
        })
        .collect()
}

/// Ticks from `from` to `to` (inclusive) every `step`; returns (time since
/// `t0`, actions) of every tick that did something.
pub fn run(
    ua: &mut Ua,
    t0: Instant,
    from: Duration,
    to: Duration,
    step: Duration,
) -> Vec<(Duration, Vec<Action>)> {
    let mut out = Vec::new();
    let mut t = from;
    while t <= to {
        let a = ua.handle(t0 + t, Input::Tick);
        if !a.is_empty() {
            out.push((t, a));
        }
        t += step;
    }
    out
}

/// Millisecond times of sends in a [`run`].
pub fn send_times(r: &[(Duration, Vec<Action>)]) -> Vec<u128> {
    r.iter()
        .flat_map(|(t, a)| sent(a).into_iter().map(move |_| t.as_millis()))
        .collect()
}
