//! The UA core driven with virtual time: every message on the wire and every
//! timer is checked without sockets or sleeping. Calls, registration and
//! transports end to end; the RFC 3261 layers in detail are in
//! `ua_transactions.rs`, `ua_dialogs.rs`, `ua_registration.rs`,
//! `ua_session.rs` and `ua_policy.rs`.

mod support;

use std::net::SocketAddr;
use std::time::{Duration, Instant};
use support::*;
use voipbridge::media::Codec;
use voipbridge::sip::message::Message;
use voipbridge::sip::ua::{
    Action, CallState, Command, Event, Input, Lookup, RegState, Transport, Ua, UaConfig,
};

#[test]
fn incoming_call_is_answered_and_2xx_retransmitted_until_ack() {
    let mut ua = new_ua(cfg());
    let t0 = Instant::now();
    let a = ua.handle(
        t0,
        dgram(request("INVITE", "c1", "z9hG4bKi1", 1, None, SDP)),
    );
    assert_eq!(statuses(&a), vec![100, 180, 200]);
    let ok = &sent(&a)[2];
    let answer = String::from_utf8_lossy(&ok.body).to_string();
    assert!(answer.contains("m=audio 40000 RTP/AVP 0 101"), "{answer}");
    assert!(ok.to_tag().is_some());
    assert!(started(&a).is_none(), "no media before the ACK");
    // No ACK yet: the 200 is resent after T1, then 2·T1.
    assert_eq!(statuses(&ua.handle(t0 + T1, Input::Tick)), vec![200]);
    assert!(statuses(&ua.handle(t0 + T1 + T1, Input::Tick)).is_empty());
    assert_eq!(statuses(&ua.handle(t0 + 3 * T1, Input::Tick)), vec![200]);
    // The ACK stops it and starts the media, towards the offer's address.
    let tag = ok.to_tag().unwrap();
    let a = ua.handle(
        t0 + 3 * T1,
        dgram(request("ACK", "c1", "z9hG4bKa1", 1, Some(&tag), "")),
    );
    let (id, m) = started(&a).expect("media on the ACK");
    assert_eq!(id, "c1");
    assert_eq!(m.remote, "127.0.0.1:4000".parse::<SocketAddr>().unwrap());
    assert_eq!(
        (m.codec, m.local_port, m.latch),
        (Codec::Pcmu, 40000, false)
    );
    ua.handle(
        t0 + 3 * T1,
        Input::MediaStarted {
            call_id: "c1".into(),
            result: Ok(()),
        },
    );
    assert!(sent(&ua.handle(t0 + 10 * T1, Input::Tick)).is_empty());
    // BYE from the peer: 200, media stopped, call gone.
    let b = ua.handle(
        t0 + 11 * T1,
        dgram(request("BYE", "c1", "z9hG4bKb1", 2, Some(&tag), "")),
    );
    assert_eq!(statuses(&b), vec![200]);
    assert!(b.contains(&Action::StopMedia("c1".into())));
    // Over once its media has stopped (the recording is then complete).
    assert_eq!(ua.calls(t0)[0].state, CallState::Terminating);
    let a = ua.handle(
        t0 + 11 * T1,
        Input::MediaStopped {
            call_id: "c1".into(),
        },
    );
    assert!(call_ended(&a));
    assert!(ua.calls(t0).is_empty());
}

#[test]
fn missing_ack_hangs_up_after_64_t1() {
    let mut ua = new_ua(cfg());
    let t0 = Instant::now();
    ua.handle(
        t0,
        dgram(request("INVITE", "c2", "z9hG4bKi2", 1, None, SDP)),
    );
    let mut bye = false;
    let mut t = t0;
    while t < t0 + 70 * T1 {
        t += Duration::from_millis(100);
        bye |= sent(&ua.handle(t, Input::Tick))
            .iter()
            .any(|m| m.method.as_deref() == Some("BYE"));
    }
    assert!(bye, "a BYE after 64·T1 without ACK");
}

#[test]
fn stray_and_malformed_requests_get_rfc3261_answers() {
    let mut ua = new_ua(cfg());
    let t = Instant::now();
    assert_eq!(
        statuses(&ua.handle(
            t,
            dgram(request("BYE", "nope", "z9hG4bK1", 1, Some("x"), ""))
        )),
        vec![481]
    );
    let opt = ua.handle(t, dgram(request("OPTIONS", "o1", "z9hG4bK2", 1, None, "")));
    assert_eq!(statuses(&opt), vec![200]);
    assert!(sent(&opt)[0].header("allow").unwrap().contains("INVITE"));
    assert_eq!(
        statuses(&ua.handle(
            t,
            dgram(request("SUBSCRIBE", "s1", "z9hG4bK3", 1, None, ""))
        )),
        vec![405]
    );
    // An extension method (rsip has no enum variant for it): 501, not 400.
    let foo = ua.handle(t, dgram(request("FOOBAR", "f1", "z9hG4bKf", 1, None, "")));
    assert_eq!(statuses(&foo), vec![501]);
    assert!(sent(&foo)[0].header("allow").unwrap().contains("INVITE"));
    assert_eq!(sent(&foo)[0].cseq(), Some((1, "FOOBAR".into())));
    let bad = String::from_utf8(request("INVITE", "b1", "z9hG4bK4", 1, None, SDP))
        .unwrap()
        .replace("Content-Length: ", "Content-Length: 9");
    assert_eq!(statuses(&ua.handle(t, dgram(bad.into_bytes()))), vec![400]);
    assert_eq!(
        statuses(&ua.handle(
            t,
            dgram(request(
                "INVITE",
                "b2",
                "z9hG4bK5",
                1,
                None,
                "v=0\r\nnonsense\r\n"
            ))
        )),
        vec![400]
    );
    let g729 = SDP.replace("RTP/AVP 0 8 101", "RTP/AVP 18");
    assert_eq!(
        statuses(&ua.handle(
            t,
            dgram(request("INVITE", "b3", "z9hG4bK6", 1, None, &g729))
        )),
        vec![488],
        "refused before it rings"
    );
    // A retransmitted request gets the same answer again, not a new transaction.
    assert_eq!(
        statuses(&ua.handle(
            t,
            dgram(request("SUBSCRIBE", "s1", "z9hG4bK3", 1, None, ""))
        )),
        vec![405]
    );
    assert!(ua.calls(t).is_empty());
}

#[test]
fn busy_when_every_substream_is_in_use_and_cancel_of_a_ringing_call() {
    let mut c = cfg();
    c.auto_answer = None;
    let mut ua = new_ua(c);
    let t = Instant::now();
    assert_eq!(
        statuses(&ua.handle(t, dgram(request("INVITE", "r1", "z9hG4bKr1", 1, None, SDP)))),
        vec![100, 180]
    );
    assert_eq!(ua.calls(t)[0].state, CallState::Incoming);
    assert_eq!(
        statuses(&ua.handle(t, dgram(request("INVITE", "r2", "z9hG4bKr2", 1, None, SDP)))),
        vec![486]
    );
    // CANCEL (same branch as the INVITE): 200 to the CANCEL, 487 to the INVITE.
    assert_eq!(
        statuses(&ua.handle(t, dgram(request("CANCEL", "r1", "z9hG4bKr1", 1, None, "")))),
        vec![200, 487]
    );
    assert!(ua.calls(t).is_empty());
}

#[test]
fn outgoing_call_retransmits_then_acks_and_starts_media() {
    let mut ua = new_ua(cfg());
    let t0 = Instant::now();
    let a = ua.handle(
        t0,
        Input::Command(Command::Call("sip:alice@127.0.0.1:5080".into())),
    );
    let inv = sent(&a).remove(0);
    assert_eq!(inv.method.as_deref(), Some("INVITE"));
    assert!(String::from_utf8_lossy(&inv.body).contains("a=rtpmap:0 PCMU/8000"));
    // Timer A: T1, then 2·T1 later.
    assert_eq!(sent(&ua.handle(t0 + T1, Input::Tick)).len(), 1);
    assert_eq!(sent(&ua.handle(t0 + 2 * T1, Input::Tick)).len(), 0);
    assert_eq!(sent(&ua.handle(t0 + 3 * T1, Input::Tick)).len(), 1);
    let reply = |code: u16, reason: &str, body: &str| {
        dgram(response_to(
            &inv,
            &format!("{code} {reason}"),
            Some("bob9"),
            "Contact: <sip:alice@127.0.0.1:5080>\r\n",
            body,
        ))
    };
    let r = ua.handle(t0 + 3 * T1, reply(180, "Ringing", ""));
    assert!(r.iter().any(|x| matches!(
        x,
        Action::Event(Event::Call {
            state: CallState::Ringing,
            ..
        })
    )));
    // No more retransmissions after a provisional response.
    assert!(sent(&ua.handle(t0 + 20 * T1, Input::Tick)).is_empty());
    let r = ua.handle(t0 + 21 * T1, reply(200, "OK", SDP));
    let ack = sent(&r)
        .into_iter()
        .find(|m| m.method.as_deref() == Some("ACK"))
        .expect("ACK");
    assert_eq!(ack.cseq(), Some((1, "ACK".into())));
    assert_eq!(ack.uri, "sip:alice@127.0.0.1:5080");
    assert!(r
        .iter()
        .any(|x| matches!(x, Action::StartMedia(_, m) if m.remote.port() == 4000)));
    assert_eq!(ua.calls(t0)[0].state, CallState::Active);
    // Hang up: BYE, and the 200 ends it.
    let b = ua.handle(t0 + 30 * T1, Input::Command(Command::Hangup(None)));
    let bye = sent(&b).remove(0);
    assert_eq!(bye.method.as_deref(), Some("BYE"));
    assert_eq!(bye.to_tag().as_deref(), Some("bob9"));
}

#[test]
fn outgoing_call_failure_is_acked_with_the_invite_branch() {
    let mut ua = new_ua(cfg());
    let t0 = Instant::now();
    let inv = sent(&ua.handle(
        t0,
        Input::Command(Command::Call("sip:alice@127.0.0.1:5080".into())),
    ))
    .remove(0);
    let busy = response_to(&inv, "486 Busy Here", Some("x"), "", "");
    let r = ua.handle(t0, dgram(busy));
    let ack = sent(&r).remove(0);
    assert_eq!(ack.method.as_deref(), Some("ACK"));
    assert_eq!(ack.via_branch(), inv.via_branch());
    assert!(r.iter().any(|x| matches!(
        x,
        Action::Event(Event::Call {
            state: CallState::Ended,
            code: Some(486),
            ..
        })
    )));
}

#[test]
fn registration_with_digest_refresh_and_unregister() {
    let mut c = cfg();
    c.registrar = Some(registrar_uri());
    let mut ua = new_ua(c);
    let t0 = Instant::now();
    let reg = sent(&ua.handle(t0, Input::Command(Command::Register))).remove(0);
    assert_eq!(reg.method.as_deref(), Some("REGISTER"));
    assert_eq!(ua.reg_state(), RegState::Registering);
    let resp = |m: &Message, code: u16, extra: &str| {
        dgram(response_to(m, &format!("{code} X"), Some("r"), extra, ""))
    };
    let a = ua.handle(t0, resp(&reg, 401, "WWW-Authenticate: Digest realm=\"127.0.0.1\", nonce=\"abc\", qop=\"auth\", algorithm=SHA-256\r\n"));
    let reg2 = sent(&a).remove(0);
    let auth = reg2.header("authorization").expect("Authorization");
    assert!(
        auth.contains("algorithm=SHA-256")
            && auth.contains("nc=00000001")
            && auth.contains("username=\"bridge\""),
        "{auth}"
    );
    assert!(reg2.cseq().unwrap().0 > reg.cseq().unwrap().0);
    let a = ua.handle(
        t0,
        resp(
            &reg2,
            200,
            "Contact: <sip:bridge@127.0.0.1:5070>;expires=100\r\n",
        ),
    );
    assert!(a.contains(&Action::Event(Event::Registered { expires: 100 })));
    assert_eq!(ua.reg_state(), RegState::Registered);
    // Refresh at 80 % of the granted lifetime.
    assert!(sent(&ua.handle(t0 + Duration::from_secs(79), Input::Tick)).is_empty());
    let refresh = sent(&ua.handle(t0 + Duration::from_secs(80), Input::Tick)).remove(0);
    assert_eq!(refresh.method.as_deref(), Some("REGISTER"));
    assert!(refresh
        .header("authorization")
        .unwrap()
        .contains("nc=00000002"));
    ua.handle(
        t0 + Duration::from_secs(80),
        resp(&refresh, 200, "Expires: 100\r\n"),
    );
    assert_eq!(ua.reg_state(), RegState::Registered);
    // Shutdown un-registers with Expires: 0.
    let s = sent(&ua.handle(
        t0 + Duration::from_secs(81),
        Input::Command(Command::Shutdown),
    ));
    assert!(s
        .iter()
        .any(|m| m.method.as_deref() == Some("REGISTER") && m.header("expires") == Some("0")));
}

#[test]
fn wrong_password_fails_with_backoff() {
    let mut c = cfg();
    c.registrar = Some(registrar_uri());
    let mut ua = new_ua(c);
    let t0 = Instant::now();
    let challenge = |m: &Message| {
        dgram(response_to(
            m,
            "401 Unauthorized",
            Some("r"),
            "WWW-Authenticate: Digest realm=\"r\", nonce=\"n1\"\r\n",
            "",
        ))
    };
    let reg = sent(&ua.handle(t0, Input::Command(Command::Register))).remove(0);
    let reg2 = sent(&ua.handle(t0, challenge(&reg))).remove(0);
    assert!(reg2.header("authorization").is_some());
    let a = ua.handle(t0, challenge(&reg2));
    assert!(a.iter().any(|x| matches!(x, Action::Event(Event::RegistrationFailed { code: 401, reason }) if reason.contains("password"))), "{a:?}");
    assert_eq!(ua.reg_state(), RegState::Failed);
    // Retried after the back-off (5 s first).
    assert!(sent(&ua.handle(t0 + Duration::from_secs(4), Input::Tick)).is_empty());
    assert_eq!(
        sent(&ua.handle(t0 + Duration::from_secs(5), Input::Tick)).len(),
        1
    );
}

#[test]
fn registrar_silence_times_out_with_408() {
    let mut c = cfg();
    c.registrar = Some(registrar_uri());
    let mut ua = new_ua(c);
    let t0 = Instant::now();
    ua.handle(t0, Input::Command(Command::Register));
    // Timer E: retransmissions at T1, 2T1, 4T1, then every T2 (4 s).
    let mut times = Vec::new();
    let mut t = t0;
    let mut failed = false;
    while t < t0 + 64 * T1 + T1 {
        t += Duration::from_millis(50);
        let a = ua.handle(t, Input::Tick);
        if !sent(&a).is_empty() {
            times.push((t - t0).as_millis() / 50 * 50);
        }
        failed |= a.iter().any(|x| {
            matches!(
                x,
                Action::Event(Event::RegistrationFailed { code: 408, .. })
            )
        });
    }
    assert_eq!(&times[..4], &[500, 1500, 3500, 7500]);
    assert!(
        times.windows(2).skip(3).all(|w| w[1] - w[0] == 4000),
        "{times:?}"
    );
    assert!(failed);
}

fn proxy_a() -> SocketAddr {
    "127.0.0.2:5062".parse().unwrap()
}

#[test]
fn incoming_call_through_record_routing_proxies_keeps_the_route_set() {
    let mut ua = new_ua(cfg());
    let t0 = Instant::now();
    let inv = String::from_utf8(request("INVITE", "rr1", "z9hG4bKr1", 1, None, SDP))
        .unwrap()
        .replace(
            "Max-Forwards: 70\r\n",
            "Max-Forwards: 70\r\nRecord-Route: <sip:127.0.0.2:5062;lr>\r\nRecord-Route: <sip:127.0.0.3:5063;lr;ftag=x>\r\n",
        );
    let a = ua.handle(
        t0,
        Input::Datagram {
            from: proxy_a(),
            data: inv.into_bytes(),
        },
    );
    let out = sent_to(&a);
    let ok = out
        .iter()
        .find(|(_, m)| m.status == Some(200))
        .expect("200 OK");
    // The 200 goes back to where the INVITE came from, with the Record-Route copied in order.
    assert_eq!(ok.0, proxy_a());
    assert_eq!(
        ok.1.header_values("record-route"),
        vec![
            "<sip:127.0.0.2:5062;lr>".to_string(),
            "<sip:127.0.0.3:5063;lr;ftag=x>".to_string()
        ]
    );
    let tag = ok.1.to_tag().unwrap();
    ua.handle(
        t0,
        Input::Datagram {
            from: proxy_a(),
            data: request("ACK", "rr1", "z9hG4bKra", 1, Some(&tag), ""),
        },
    );
    // Hold: the re-INVITE follows the route set (loose routing: Request-URI = peer's Contact).
    let h = sent_to(&ua.handle(t0 + T1, Input::Command(Command::Hold(None, true))));
    let (to, reinv) = &h[0];
    assert_eq!(reinv.method.as_deref(), Some("INVITE"));
    assert_eq!(*to, proxy_a());
    assert_eq!(reinv.uri, "sip:alice@127.0.0.1:5080");
    assert_eq!(
        reinv.header_values("route"),
        vec![
            "<sip:127.0.0.2:5062;lr>".to_string(),
            "<sip:127.0.0.3:5063;lr;ftag=x>".to_string()
        ]
    );
    // Its 200 is ACKed along the same route.
    assert_eq!(reinv.call_id(), "rr1");
    let ok2 = response_to(
        reinv,
        "200 OK",
        None,
        "Contact: <sip:alice@127.0.0.1:5080>\r\n",
        SDP,
    );
    let r = sent_to(&ua.handle(
        t0 + T1,
        Input::Datagram {
            from: proxy_a(),
            data: ok2,
        },
    ));
    let (to, ack) = r
        .iter()
        .find(|(_, m)| m.method.as_deref() == Some("ACK"))
        .expect("ACK");
    assert_eq!(*to, proxy_a());
    assert_eq!(ack.header_values("route").len(), 2);
    // BYE: same route.
    let b = sent_to(&ua.handle(t0 + 2 * T1, Input::Command(Command::Hangup(None))));
    let (to, bye) = &b[0];
    assert_eq!(bye.method.as_deref(), Some("BYE"));
    assert_eq!(*to, proxy_a());
    assert_eq!(bye.uri, "sip:alice@127.0.0.1:5080");
    assert_eq!(
        bye.header_values("route").first().map(String::as_str),
        Some("<sip:127.0.0.2:5062;lr>")
    );
    assert_eq!(bye.to_tag().as_deref(), Some("alice1"));
}

/// Starts an outgoing call and answers it with a 200 carrying `record_route` headers;
/// returns the UA and what it sent in reply (the ACK).
fn answered_outgoing_call(record_route: &str) -> (Ua, Instant, Vec<(SocketAddr, Message)>) {
    let mut ua = new_ua(cfg());
    let t0 = Instant::now();
    let a = ua.handle(
        t0,
        Input::Command(Command::Call("sip:alice@127.0.0.1:5080".into())),
    );
    let inv = sent(&a).remove(0);
    let ok = response_to(
        &inv,
        "200 OK",
        Some("bob9"),
        &format!("{record_route}Contact: <sip:alice@127.0.0.1:5090>\r\n"),
        SDP,
    );
    let r = sent_to(&ua.handle(t0, dgram(ok)));
    (ua, t0, r)
}

#[test]
fn outgoing_call_uses_the_reversed_record_route_for_ack_and_bye() {
    let (mut ua, t0, r) = answered_outgoing_call(
        "Record-Route: <sip:127.0.0.3:5063;lr>, <sip:127.0.0.2:5062;lr>\r\n",
    );
    let (to, ack) = r
        .iter()
        .find(|(_, m)| m.method.as_deref() == Some("ACK"))
        .expect("ACK");
    let route = vec![
        "<sip:127.0.0.2:5062;lr>".to_string(),
        "<sip:127.0.0.3:5063;lr>".to_string(),
    ];
    assert_eq!(*to, proxy_a());
    assert_eq!(ack.uri, "sip:alice@127.0.0.1:5090");
    assert_eq!(ack.header_values("route"), route);
    let b = sent_to(&ua.handle(t0 + T1, Input::Command(Command::Hangup(None))));
    let (to, bye) = &b[0];
    assert_eq!(bye.method.as_deref(), Some("BYE"));
    assert_eq!(*to, proxy_a());
    assert_eq!(bye.uri, "sip:alice@127.0.0.1:5090");
    assert_eq!(bye.header_values("route"), route);
}

#[test]
fn strict_router_gets_the_request_uri_and_the_target_goes_last() {
    let (mut ua, t0, _) = answered_outgoing_call("Record-Route: <sip:127.0.0.2:5062>\r\n");
    let b = sent_to(&ua.handle(t0 + T1, Input::Command(Command::Hangup(None))));
    let (to, bye) = &b[0];
    assert_eq!(*to, proxy_a());
    assert_eq!(bye.uri, "sip:127.0.0.2:5062");
    assert_eq!(
        bye.header_values("route"),
        vec!["<sip:alice@127.0.0.1:5090>".to_string()]
    );
}

#[test]
fn without_record_route_in_dialog_requests_go_to_the_contact() {
    let (mut ua, t0, r) = answered_outgoing_call("");
    let (to, ack) = &r[0];
    assert_eq!(*to, "127.0.0.1:5090".parse::<SocketAddr>().unwrap());
    assert!(ack.header_values("route").is_empty());
    let b = sent_to(&ua.handle(t0 + T1, Input::Command(Command::Hangup(None))));
    assert_eq!(b[0].0, "127.0.0.1:5090".parse::<SocketAddr>().unwrap());
    assert!(b[0].1.header_values("route").is_empty());
}

/// The `o=` line's session id and version of an SDP body.
fn sdp_origin(m: &Message) -> (String, String) {
    let body = String::from_utf8_lossy(&m.body).to_string();
    let o = body
        .lines()
        .find(|l| l.starts_with("o="))
        .unwrap_or("")
        .to_string();
    let f: Vec<&str> = o.split_whitespace().collect();
    (
        f.get(1).unwrap_or(&"").to_string(),
        f.get(2).unwrap_or(&"").to_string(),
    )
}

#[test]
fn peer_hold_and_resume_answer_with_the_same_sdp_session() {
    // Answered a second after the INVITE (the session id once depended on that delay).
    let mut c = cfg();
    c.auto_answer = Some(Duration::from_secs(1));
    let mut ua = new_ua(c);
    let t = Instant::now();
    ua.handle(t, dgram(request("INVITE", "h1", "z9hG4bKh1", 1, None, SDP)));
    let t0 = t + Duration::from_secs(1);
    let ok = sent(&ua.handle(t0, Input::Tick)).remove(0);
    assert_eq!(ok.status, Some(200));
    let tag = ok.to_tag().unwrap();
    let (session, v1) = sdp_origin(&ok);
    ua.handle(
        t0,
        dgram(request("ACK", "h1", "z9hG4bKha", 1, Some(&tag), "")),
    );
    // The peer holds: a=sendonly. We answer recvonly, same session id, next version.
    let hold_sdp = format!("{SDP}a=sendonly\r\n");
    let h = ua.handle(
        t0 + T1,
        dgram(request(
            "INVITE",
            "h1",
            "z9hG4bKh2",
            2,
            Some(&tag),
            &hold_sdp,
        )),
    );
    let ok2 = sent(&h).remove(0);
    assert_eq!(ok2.status, Some(200));
    assert!(String::from_utf8_lossy(&ok2.body).contains("a=recvonly"));
    let (session2, v2) = sdp_origin(&ok2);
    assert_eq!(session2, session);
    assert_eq!(v2.parse::<u64>().unwrap(), v1.parse::<u64>().unwrap() + 1);
    assert!(h.iter().any(|x| matches!(
        x,
        Action::UpdateMedia(id, _, voipbridge::media::Direction::RecvOnly) if id == "h1"
    )));
    assert_eq!(ua.calls(t0)[0].state, CallState::Held);
    ua.handle(
        t0 + T1,
        dgram(request("ACK", "h1", "z9hG4bKhb", 2, Some(&tag), "")),
    );
    // Resume.
    let r = ua.handle(
        t0 + 2 * T1,
        dgram(request("INVITE", "h1", "z9hG4bKh3", 3, Some(&tag), SDP)),
    );
    let ok3 = sent(&r).remove(0);
    assert!(String::from_utf8_lossy(&ok3.body).contains("a=sendrecv"));
    let (session3, v3) = sdp_origin(&ok3);
    assert_eq!(session3, session);
    assert_eq!(v3.parse::<u64>().unwrap(), v2.parse::<u64>().unwrap() + 1);
    assert_eq!(ua.calls(t0)[0].state, CallState::Active);
    // Our own hold offer keeps the session id too.
    ua.handle(
        t0 + 2 * T1,
        dgram(request("ACK", "h1", "z9hG4bKhc", 3, Some(&tag), "")),
    );
    let o = sent(&ua.handle(t0 + 3 * T1, Input::Command(Command::Hold(None, true)))).remove(0);
    assert!(String::from_utf8_lossy(&o.body).contains("a=sendonly"));
    assert_eq!(sdp_origin(&o).0, session);
}

#[test]
fn invite_challenged_by_the_proxy_is_resent_with_credentials_once_then_fails() {
    use md5::{Digest, Md5};
    let proxy: SocketAddr = "127.0.0.1:5060".parse().unwrap();
    let mut c = cfg();
    c.registrar = Some(registrar_uri());
    let mut ua = new_ua(c);
    let t0 = Instant::now();
    let a = sent_to(&ua.handle(
        t0,
        Input::Command(Command::Call("sip:alice@127.0.0.1".into())),
    ));
    let (to, inv) = &a[0];
    assert_eq!(
        *to, proxy,
        "calls go through the registrar as outbound proxy"
    );
    let challenge = |inv: &Message| Input::Datagram {
        from: proxy,
        data: response_to(
            inv,
            "407 Proxy Authentication Required",
            Some("px"),
            "Proxy-Authenticate: Digest realm=\"example\", nonce=\"n0nce\"\r\n",
            "",
        ),
    };
    let r = sent_to(&ua.handle(t0, challenge(inv)));
    // The 407 is ACKed on the INVITE's branch, then a new INVITE carries Proxy-Authorization.
    let ack = &r[0].1;
    assert_eq!(ack.method.as_deref(), Some("ACK"));
    assert_eq!(ack.via_branch(), inv.via_branch());
    let (to, inv2) = &r[1];
    assert_eq!(*to, proxy);
    assert_eq!(inv2.method.as_deref(), Some("INVITE"));
    assert_ne!(inv2.via_branch(), inv.via_branch());
    assert_eq!(inv2.cseq(), Some((2, "INVITE".into())));
    assert_eq!(inv2.call_id(), inv.call_id());
    let auth = inv2
        .header("proxy-authorization")
        .expect("Proxy-Authorization");
    let md5 = |s: String| hex::encode(Md5::digest(s.as_bytes()));
    let expected = md5(format!(
        "{}:n0nce:{}",
        md5("bridge:example:secret".into()),
        md5("INVITE:sip:alice@127.0.0.1".into())
    ));
    assert!(auth.contains(&format!("response=\"{expected}\"")), "{auth}");
    assert!(auth.contains("username=\"bridge\""), "{auth}");
    // Challenged again (wrong password): one more try, then the call ends with 407.
    let r = sent_to(&ua.handle(t0, challenge(inv2)));
    let inv3 = &r[1].1;
    assert_eq!(inv3.cseq(), Some((3, "INVITE".into())));
    let r = ua.handle(t0, challenge(inv3));
    assert!(sent(&r)
        .iter()
        .all(|m| m.method.as_deref() != Some("INVITE")));
    assert!(r.iter().any(|x| matches!(
        x,
        Action::Event(Event::Call {
            state: CallState::Ended,
            code: Some(407),
            ..
        })
    )));
    assert!(ua.calls(t0).is_empty());
}

#[test]
fn delayed_auto_answer_and_answer_command() {
    let mut c = cfg();
    c.auto_answer = Some(Duration::from_secs(2));
    let mut ua = new_ua(c.clone());
    let t = Instant::now();
    assert_eq!(
        statuses(&ua.handle(t, dgram(request("INVITE", "w1", "z9hG4bKw1", 1, None, SDP)))),
        vec![100, 180]
    );
    assert!(statuses(&ua.handle(t + Duration::from_millis(1900), Input::Tick)).is_empty());
    assert_eq!(
        statuses(&ua.handle(t + Duration::from_secs(2), Input::Tick)),
        vec![200]
    );
    // auto_answer off: only the answer command picks up.
    c.auto_answer = None;
    let mut ua = new_ua(c);
    ua.handle(t, dgram(request("INVITE", "w2", "z9hG4bKw2", 1, None, SDP)));
    assert!(statuses(&ua.handle(t + Duration::from_secs(20), Input::Tick)).is_empty());
    assert_eq!(ua.calls(t)[0].state, CallState::Incoming);
    assert_eq!(
        statuses(&ua.handle(
            t + Duration::from_secs(20),
            Input::Command(Command::Answer(None))
        )),
        vec![200]
    );
}

#[test]
fn required_extensions_we_lack_get_420_with_unsupported() {
    let mut ua = new_ua(cfg());
    let t = Instant::now();
    let inv = String::from_utf8(request("INVITE", "x1", "z9hG4bKx1", 1, None, SDP))
        .unwrap()
        .replace(
            "Max-Forwards: 70\r\n",
            "Max-Forwards: 70\r\nRequire: 100rel, timer\r\n",
        );
    let r = sent(&ua.handle(t, dgram(inv.into_bytes())));
    assert_eq!(r.len(), 1);
    assert_eq!(r[0].status, Some(420));
    assert_eq!(
        r[0].header_values("unsupported"),
        vec!["100rel".to_string(), "timer".to_string()]
    );
    assert!(ua.calls(t).is_empty());
    // Supported (not Require) is fine: the call is answered.
    let inv = String::from_utf8(request("INVITE", "x2", "z9hG4bKx2", 1, None, SDP))
        .unwrap()
        .replace(
            "Max-Forwards: 70\r\n",
            "Max-Forwards: 70\r\nSupported: 100rel, timer\r\n",
        );
    assert_eq!(
        statuses(&ua.handle(t, dgram(inv.into_bytes()))),
        vec![100, 180, 200]
    );
}

#[test]
fn a_400_for_an_unparsable_request_is_itself_well_formed() {
    let mut ua = new_ua(cfg());
    let t = Instant::now();
    // A request line rsip rejects, with the headers a 400 needs: the parser's
    // error quotes the whole datagram, CR/LF included; none may leak into Warning.
    let bad = String::from_utf8(request("INVITE", "m1", "z9hG4bKm1", 1, None, SDP))
        .unwrap()
        .replacen("SIP/2.0\r\n", "SIP/2.0 extra\r\n", 1);
    let a = ua.handle(t, dgram(bad.into_bytes()));
    let r = sent(&a);
    assert_eq!(r.len(), 1);
    assert_eq!(r[0].status, Some(400));
    assert_eq!(r[0].call_id(), "m1");
    let w = r[0].header("warning").expect("Warning");
    assert!(w.starts_with("399 voipbridge \""), "{w}");
    assert!(w.len() < 200, "{w}");
    // Exactly the headers we put in: nothing injected from the peer's bytes.
    let names: Vec<String> = r[0]
        .headers
        .iter()
        .map(|(n, _)| n.to_ascii_lowercase())
        .collect();
    assert_eq!(
        names,
        [
            "via",
            "from",
            "to",
            "call-id",
            "cseq",
            "warning",
            "content-length"
        ]
    );
}

#[test]
fn sip_info_dtmf_is_reported_and_other_info_bodies_refused() {
    let mut ua = new_ua(cfg());
    let t = Instant::now();
    let a = ua.handle(t, dgram(request("INVITE", "i1", "z9hG4bKi1", 1, None, SDP)));
    let tag = sent(&a)[2].to_tag().unwrap();
    ua.handle(
        t,
        dgram(request("ACK", "i1", "z9hG4bKia", 1, Some(&tag), "")),
    );
    let info = |branch: &str, cseq: u32, ct: &str, body: &str| {
        let r = String::from_utf8(request("INFO", "i1", branch, cseq, Some(&tag), body))
            .unwrap()
            .replace("application/sdp", ct);
        dgram(r.into_bytes())
    };
    let dtmf = |a: &[Action]| -> Vec<char> {
        a.iter()
            .filter_map(|x| match x {
                Action::Event(Event::Dtmf { call_id, digit }) if call_id == "i1" => Some(*digit),
                _ => None,
            })
            .collect()
    };
    let r = ua.handle(
        t,
        info(
            "z9hG4bKn1",
            2,
            "application/dtmf-relay",
            "Signal=5\r\nDuration=160\r\n",
        ),
    );
    assert_eq!(statuses(&r), vec![200]);
    assert_eq!(dtmf(&r), vec!['5']);
    let r = ua.handle(
        t,
        info("z9hG4bKn2", 3, "application/dtmf-relay", "Signal= 11\r\n"),
    );
    assert_eq!(dtmf(&r), vec!['#']);
    let r = ua.handle(t, info("z9hG4bKn3", 4, "application/dtmf", "b"));
    assert_eq!(dtmf(&r), vec!['B']);
    // A retransmission is answered again from the cache, not reported twice.
    let r = ua.handle(t, info("z9hG4bKn3", 4, "application/dtmf", "b"));
    assert_eq!(statuses(&r), vec![200]);
    assert!(dtmf(&r).is_empty());
    // Not DTMF: 415 with Accept; a bad digit: 400; nothing reported.
    let r = ua.handle(t, info("z9hG4bKn4", 5, "application/json", "{}"));
    assert_eq!(statuses(&r), vec![415]);
    assert!(sent(&r)[0]
        .header("accept")
        .unwrap()
        .contains("application/dtmf-relay"));
    let r = ua.handle(
        t,
        info("z9hG4bKn5", 6, "application/dtmf-relay", "Signal=x\r\n"),
    );
    assert_eq!(statuses(&r), vec![400]);
    assert!(dtmf(&r).is_empty());
    // Outside a dialog: 481.
    let stray = request("INFO", "nope", "z9hG4bKn6", 1, Some("zz"), "");
    assert_eq!(statuses(&ua.handle(t, dgram(stray))), vec![481]);
}

fn tcp_cfg() -> UaConfig {
    let mut c = cfg();
    c.transport = Transport::Tcp;
    c.registrar = Some(registrar_uri());
    c
}

#[test]
fn over_tcp_nothing_is_retransmitted_but_timers_b_and_f_still_fire() {
    let mut ua = new_ua(tcp_cfg());
    let t0 = Instant::now();
    let reg = sent(&ua.handle(t0, Input::Command(Command::Register))).remove(0);
    let via = reg.header("via").unwrap();
    assert!(via.starts_with("SIP/2.0/TCP 127.0.0.1:5070;"), "{via}");
    let contact = reg.header_uri("contact").unwrap();
    assert!(
        contact.eq_ignore_ascii_case("sip:bridge@127.0.0.1:5070;transport=tcp"),
        "{contact}"
    );
    let call = sent(&ua.handle(
        t0,
        Input::Command(Command::Call("sip:alice@127.0.0.1:5080".into())),
    ))
    .remove(0);
    assert_eq!(call.method.as_deref(), Some("INVITE"));
    assert!(call.header("via").unwrap().starts_with("SIP/2.0/TCP "));
    assert!(call.header("contact").unwrap().contains(";transport=tcp"));
    // No timer A or E: silence on the wire until 64·T1, then both fail with 408.
    let mut t = t0;
    let mut codes = Vec::new();
    while t < t0 + 64 * T1 + T1 {
        t += Duration::from_millis(50);
        let a = ua.handle(t, Input::Tick);
        assert!(sent(&a).is_empty(), "retransmission at {:?}", t - t0);
        codes.extend(ended_codes(&a));
        if !codes.is_empty() {
            assert!(t >= t0 + 64 * T1, "failed early at {:?}", t - t0);
        }
    }
    codes.sort_unstable();
    assert_eq!(codes, vec![408, 408]);
    assert_eq!(ua.reg_state(), RegState::Failed);
    assert!(ua.calls(t).is_empty());
}

#[test]
fn over_tcp_an_answered_call_takes_no_retransmission_and_2xx_is_acked() {
    let mut c = tcp_cfg();
    c.registrar = None;
    let mut ua = new_ua(c);
    let t0 = Instant::now();
    let inv = sent(&ua.handle(
        t0,
        Input::Command(Command::Call("sip:alice@127.0.0.1:5080".into())),
    ))
    .remove(0);
    let ok = response_to(
        &inv,
        "200 OK",
        Some("a1"),
        "Contact: <sip:alice@127.0.0.1:5080;transport=tcp>\r\n",
        SDP,
    );
    let a = ua.handle(t0 + T1, dgram(ok));
    let ack = sent(&a).remove(0);
    assert_eq!(ack.method.as_deref(), Some("ACK"));
    assert!(ack.header("via").unwrap().starts_with("SIP/2.0/TCP "));
    // (rsip writes the parameter value in upper case; URI parameters compare case-insensitively.)
    assert!(
        ack.uri
            .eq_ignore_ascii_case("sip:alice@127.0.0.1:5080;transport=tcp"),
        "{}",
        ack.uri
    );
    assert_eq!(ua.calls(t0)[0].state, CallState::Active);
    // Incoming call over TCP: 100/180/200, Contact with transport=tcp.
    let mut ua = new_ua(tcp_cfg());
    let a = ua.handle(
        t0,
        dgram(request("INVITE", "c9", "z9hG4bKt1", 1, None, SDP)),
    );
    assert_eq!(statuses(&a), vec![100, 180, 200]);
    let contact = sent(&a)[2].header("contact").unwrap().to_ascii_lowercase();
    assert!(contact.ends_with(";transport=tcp>"), "{contact}");
}

#[test]
fn a_transport_error_fails_the_transactions_to_that_peer_at_once_with_503() {
    let mut ua = new_ua(tcp_cfg());
    let t0 = Instant::now();
    ua.handle(t0, Input::Command(Command::Register));
    ua.handle(
        t0,
        Input::Command(Command::Call("sip:alice@127.0.0.1:5080".into())),
    );
    // The call goes to the registrar (outbound proxy): both fail together.
    let a = ua.handle(
        t0 + T1,
        Input::TransportError {
            to: "127.0.0.1:5060".parse().unwrap(),
        },
    );
    let mut codes = ended_codes(&a);
    codes.sort_unstable();
    assert_eq!(codes, vec![503, 503]);
    assert_eq!(ua.reg_state(), RegState::Failed);
    assert!(ua.calls(t0).is_empty());
    // An error for another address touches nothing.
    let mut ua = new_ua(tcp_cfg());
    ua.handle(t0, Input::Command(Command::Register));
    let a = ua.handle(
        t0,
        Input::TransportError {
            to: "127.0.0.1:5999".parse().unwrap(),
        },
    );
    assert!(ended_codes(&a).is_empty());
    assert_eq!(ua.reg_state(), RegState::Registering);
}

const ANSWER_PCMA: &str = "v=0\r\no=- 7 7 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 4100 RTP/AVP 8\r\na=rtpmap:8 PCMA/8000\r\n";

/// An offerless INVITE answered at once: (ua, the 200 with our offer, its To tag).
fn offerless_call() -> (Ua, Instant, Message, String) {
    let mut ua = new_ua(cfg());
    let t0 = Instant::now();
    let a = ua.handle(t0, dgram(request("INVITE", "o1", "z9hG4bKo1", 1, None, "")));
    assert_eq!(statuses(&a), vec![100, 180, 200]);
    assert!(
        !a.iter().any(|x| matches!(x, Action::StartMedia(..))),
        "no media before the answer"
    );
    let ok = sent(&a).remove(2);
    let offer = String::from_utf8_lossy(&ok.body).to_string();
    assert!(offer.contains("m=audio 40000 RTP/AVP 0 8 101"), "{offer}");
    assert_eq!(ua.calls(t0)[0].codec, None);
    let tag = ok.to_tag().expect("To tag");
    (ua, t0, ok, tag)
}

#[test]
fn offerless_invite_gets_our_offer_in_the_200_and_the_ack_answer_starts_media() {
    let (mut ua, t0, _ok, tag) = offerless_call();
    let a = ua.handle(
        t0 + T1 / 2,
        dgram(request(
            "ACK",
            "o1",
            "z9hG4bKa1",
            1,
            Some(&tag),
            ANSWER_PCMA,
        )),
    );
    let media = a
        .iter()
        .find_map(|x| match x {
            Action::StartMedia(id, m) if id == "o1" => Some(m.clone()),
            _ => None,
        })
        .expect("media started by the ACK");
    assert_eq!(media.codec, Codec::Pcma);
    assert_eq!(media.payload_type, 8);
    assert_eq!(
        media.remote,
        "127.0.0.1:4100".parse::<SocketAddr>().unwrap()
    );
    assert!(sent(&a).is_empty());
    assert_eq!(ua.calls(t0)[0].codec.as_deref(), Some("PCMA"));
    assert_eq!(ua.calls(t0)[0].state, CallState::Active);
    // The ACK stopped the 200's retransmissions; a repeated ACK changes nothing.
    assert!(sent(&ua.handle(t0 + 10 * T1, Input::Tick)).is_empty());
    let again = ua.handle(
        t0 + 10 * T1,
        dgram(request(
            "ACK",
            "o1",
            "z9hG4bKa1",
            1,
            Some(&tag),
            ANSWER_PCMA,
        )),
    );
    assert!(again.is_empty(), "{again:?}");
}

#[test]
fn offerless_invite_without_a_usable_answer_in_the_ack_is_hung_up_with_a_reason() {
    let no_common = ANSWER_PCMA
        .replace("RTP/AVP 8", "RTP/AVP 18")
        .replace("8 PCMA", "18 G729");
    for (body, why) in [
        ("", "no SDP answer"),
        ("v=0\r\nc=IN IP4 nowhere\r\n", "malformed"),
        (no_common.as_str(), "codec"),
    ] {
        let (mut ua, t0, _ok, tag) = offerless_call();
        let a = ua.handle(
            t0 + T1 / 2,
            dgram(request("ACK", "o1", "z9hG4bKa1", 1, Some(&tag), body)),
        );
        assert!(!a.iter().any(|x| matches!(x, Action::StartMedia(..))));
        let bye = sent(&a).remove(0);
        assert_eq!(bye.method.as_deref(), Some("BYE"), "{why}");
        assert_eq!(bye.from_tag().as_deref(), Some(tag.as_str()));
        let reason = bye.header("reason").expect("Reason header");
        assert!(reason.starts_with("SIP;cause=488;text="), "{reason}");
        assert!(reason.contains(why), "{why}: {reason}");
        assert_eq!(ua.calls(t0)[0].state, CallState::Terminating);
        let r = ua.handle(t0 + T1, dgram(response_to(&bye, "200 OK", None, "", "")));
        assert!(r.iter().any(|x| matches!(
            x,
            Action::Event(Event::Call {
                state: CallState::Ended,
                ..
            })
        )));
        assert!(ua.calls(t0).is_empty());
    }
}

#[test]
fn a_call_to_a_host_name_is_resolved_by_the_io_layer_then_placed() {
    let mut ua = new_ua(cfg());
    let t0 = Instant::now();
    // Not an IP literal and no proxy: the UA asks for a lookup, sends nothing yet.
    let a = ua.handle(
        t0,
        Input::Command(Command::Call("sip:alice@pbx.example:5080".into())),
    );
    assert!(sent(&a).is_empty());
    let (lookup, host, port) = a
        .iter()
        .find_map(|x| match x {
            Action::Resolve { lookup, host, port } => Some((lookup.clone(), host.clone(), *port)),
            _ => None,
        })
        .expect("a lookup");
    assert_eq!((host.as_str(), port), ("pbx.example", 5080));
    assert_eq!(ua.calls(t0)[0].state, CallState::Calling);
    let dest: SocketAddr = "127.0.0.9:5080".parse().unwrap();
    let a = ua.handle(
        t0,
        Input::Resolved {
            lookup: lookup.clone(),
            result: Ok(dest),
        },
    );
    let (to, inv) = sent_to(&a).remove(0);
    assert_eq!(to, dest);
    assert_eq!(inv.uri, "sip:alice@pbx.example:5080");
    // A failed lookup ends the call with 404.
    let mut ua = new_ua(cfg());
    let a = ua.handle(
        t0,
        Input::Command(Command::Call("sip:bob@nowhere.invalid".into())),
    );
    let lookup = a
        .iter()
        .find_map(|x| match x {
            Action::Resolve { lookup, .. } => Some(lookup.clone()),
            _ => None,
        })
        .unwrap();
    assert!(matches!(lookup, Lookup::Call(_)));
    let a = ua.handle(
        t0,
        Input::Resolved {
            lookup,
            result: Err("no such host".into()),
        },
    );
    assert_eq!(ended_codes(&a), vec![404]);
    assert!(ua.calls(t0).is_empty());
    // CallAt (resolved already) goes straight out.
    let a = ua.handle(
        t0,
        Input::Command(Command::CallAt("sip:alice@pbx.example:5080".into(), dest)),
    );
    assert_eq!(sent_to(&a)[0].0, dest);
    // With a registrar (the outbound proxy) the INVITE goes there instead.
    let mut c = cfg();
    c.registrar = Some(registrar_uri());
    let mut ua = new_ua(c);
    let a = ua.handle(
        t0,
        Input::Command(Command::CallAt("sip:alice@pbx.example".into(), dest)),
    );
    assert_eq!(sent_to(&a)[0].0, registrar());
}
