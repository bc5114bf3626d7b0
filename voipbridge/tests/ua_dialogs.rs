//! Dialogs (RFC 3261 12, 14) in virtual time: tags, the CSeq rules, target
//! refresh, glare with the 14.1 retry windows on both sides, challenged
//! in-dialog requests.

mod support;

use std::time::{Duration, Instant};
use support::*;
use voipbridge::sip::message::Message;
use voipbridge::sip::ua::{Action, CallState, Command, Input, Ua};

/// An answered incoming call, ACKed: (ua, t0, our tag). We are the callee.
fn callee() -> (Ua, Instant, String) {
    let mut ua = new_ua(cfg());
    let t0 = Instant::now();
    let a = ua.handle(
        t0,
        dgram(request("INVITE", "d1", "z9hG4bKd1", 5, None, SDP)),
    );
    let tag = find_status(&a, 200).unwrap().to_tag().unwrap();
    let a = ua.handle(
        t0,
        dgram(request("ACK", "d1", "z9hG4bKd1a", 5, Some(&tag), "")),
    );
    media_done(&mut ua, t0, &a);
    (ua, t0, tag)
}

/// An answered outgoing call: (ua, t0, the INVITE). We are the caller.
fn caller() -> (Ua, Instant, Message) {
    caller_with(new_ua(cfg()))
}

/// [`caller`] with a given UA (its own seed): a confirmed call we placed.
fn caller_with(mut ua: Ua) -> (Ua, Instant, Message) {
    let t0 = Instant::now();
    let (inv, a) = call_answered(&mut ua, t0, "Contact: <sip:alice@127.0.0.1:5080>\r\n");
    media_done(&mut ua, t0, &a);
    (ua, t0, inv)
}

/// We call alice; she answers 200 with SDP, tag al1 and the header lines
/// `extra`: (our INVITE, what the UA did with the 200).
fn call_answered(ua: &mut Ua, t0: Instant, extra: &str) -> (Message, Vec<Action>) {
    let a = ua.handle(
        t0,
        Input::Command(Command::Call("sip:alice@127.0.0.1:5080".into())),
    );
    let inv = find(&a, "INVITE").unwrap();
    let a = ua.handle(
        t0,
        dgram(response_to(&inv, "200 OK", Some("al1"), extra, SDP)),
    );
    (inv, a)
}

#[test]
fn requests_with_the_wrong_tags_get_481() {
    let (mut ua, t0, tag) = callee();
    let wrong_to = ua.handle(
        t0,
        dgram(request("BYE", "d1", "z9hG4bKx1", 6, Some("nottag"), "")),
    );
    assert_eq!(statuses(&wrong_to), vec![481]);
    let wrong_from = String::from_utf8(request("BYE", "d1", "z9hG4bKx2", 6, Some(&tag), ""))
        .unwrap()
        .replace("tag=alice1", "tag=mallory");
    assert_eq!(
        statuses(&ua.handle(t0, dgram(wrong_from.into_bytes()))),
        vec![481]
    );
    assert_eq!(ua.calls(t0).len(), 1, "the call is untouched");
}

#[test]
fn an_out_of_order_cseq_gets_500_and_changes_nothing() {
    let (mut ua, t0, tag) = callee();
    let info = |branch: &str, cseq: u32| {
        let r = String::from_utf8(request("INFO", "d1", branch, cseq, Some(&tag), "")).unwrap();
        dgram(r.into_bytes())
    };
    assert_eq!(statuses(&ua.handle(t0, info("z9hG4bKi7", 7))), vec![200]);
    // Lower than 7 (and lower than the INVITE's 5): out of order.
    assert_eq!(statuses(&ua.handle(t0, info("z9hG4bKi6", 6))), vec![500]);
    assert_eq!(statuses(&ua.handle(t0, info("z9hG4bKi4", 4))), vec![500]);
    let bye = ua.handle(
        t0,
        dgram(request("BYE", "d1", "z9hG4bKb3", 3, Some(&tag), "")),
    );
    assert_eq!(statuses(&bye), vec![500]);
    assert_eq!(ua.calls(t0)[0].state, CallState::Active);
    // In order again: accepted.
    let bye = ua.handle(
        t0,
        dgram(request("BYE", "d1", "z9hG4bKb8", 8, Some(&tag), "")),
    );
    assert_eq!(statuses(&bye), vec![200]);
    assert!(call_ended(&media_done(&mut ua, t0, &bye)));
    assert!(ua.calls(t0).is_empty());
}

#[test]
fn our_cseq_grows_by_one_per_request_and_the_target_follows_refreshes() {
    let (mut ua, t0, tag) = callee();
    // The peer's re-INVITE moves its Contact.
    let reinv = String::from_utf8(request("INVITE", "d1", "z9hG4bKr6", 6, Some(&tag), SDP))
        .unwrap()
        .replace(
            "Contact: <sip:alice@127.0.0.1:5080>",
            "Contact: <sip:alice@127.0.0.7:5099>",
        );
    let a = ua.handle(t0, dgram(reinv.into_bytes()));
    assert_eq!(statuses(&a), vec![200]);
    ua.handle(
        t0,
        dgram(request("ACK", "d1", "z9hG4bKr6a", 6, Some(&tag), "")),
    );
    let a = ua.handle(t0 + T1, Input::Command(Command::Hold(None, true)));
    let (to, hold) = sent_to(&a).remove(0);
    assert_eq!(
        hold.cseq(),
        Some((1, "INVITE".into())),
        "the callee's first request"
    );
    assert_eq!(hold.uri, "sip:alice@127.0.0.7:5099");
    assert_eq!(to, "127.0.0.7:5099".parse().unwrap());
    let a = ua.handle(
        t0 + T1,
        dgram(response_to(
            &hold,
            "200 OK",
            None,
            "",
            &(SDP.to_string() + "a=recvonly\r\n"),
        )),
    );
    let ack = find(&a, "ACK").unwrap();
    assert_eq!(ack.cseq(), Some((1, "ACK".into())));
    let a = ua.handle(t0 + 2 * T1, Input::Command(Command::Hangup(None)));
    assert_eq!(find(&a, "BYE").unwrap().cseq(), Some((2, "BYE".into())));
}

/// Both sides re-INVITE at once; returns what happened to ours.
fn glare(ua: &mut Ua, t0: Instant, peer_reinvite: Vec<u8>) -> Duration {
    let a = ua.handle(t0 + T1, Input::Command(Command::Hold(None, true)));
    let ours = find(&a, "INVITE").expect("our re-INVITE");
    // The peer's re-INVITE crosses ours: 491 (RFC 3261 14.2).
    let theirs = ua.handle(t0 + T1, dgram(peer_reinvite));
    assert_eq!(statuses(&theirs), vec![491]);
    // Ours is refused 491 too: the transaction ACKs it; we retry after the 14.1 window.
    let a = ua.handle(
        t0 + T1,
        dgram(response_to(&ours, "491 Request Pending", None, "", "")),
    );
    let ack = find(&a, "ACK").expect("ACK of the 491");
    assert_eq!(ack.via_branch(), ours.via_branch());
    let r = run(
        ua,
        t0,
        T1,
        T1 + Duration::from_secs(5),
        Duration::from_millis(10),
    );
    let (when, retry) = r
        .iter()
        .find_map(|(t, a)| find(a, "INVITE").map(|m| (*t, m)))
        .expect("the re-INVITE again");
    assert!(retry.cseq().unwrap().0 > ours.cseq().unwrap().0);
    assert_ne!(retry.via_branch(), ours.via_branch());
    assert!(
        String::from_utf8_lossy(&retry.body).contains("a=sendonly"),
        "still a hold"
    );
    when - T1
}

#[test]
fn glare_as_the_caller_retries_after_2_1_to_4_s() {
    let mut waits = Vec::new();
    for seed in 0..8 {
        let (mut ua, t0, inv) = caller_with(Ua::with_seed(cfg(), seed));
        let our_tag = inv.from_tag().unwrap();
        // Their re-INVITE: From is them (al1), To is us.
        let theirs = format!(
            "INVITE sip:bridge@127.0.0.1:5070 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5080;branch=z9hG4bKg{seed}\r\nFrom: <sip:alice@127.0.0.1>;tag=al1\r\nTo: <sip:bridge@127.0.0.1>;tag={our_tag}\r\nCall-ID: {}\r\nCSeq: 1 INVITE\r\nContact: <sip:alice@127.0.0.1:5080>\r\nContent-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{SDP}",
            inv.call_id(),
            SDP.len()
        );
        let w = glare(&mut ua, t0, theirs.into_bytes());
        assert!(
            w >= Duration::from_millis(2100) && w <= Duration::from_millis(4010),
            "{w:?}"
        );
        waits.push(w);
    }
    waits.dedup();
    assert!(waits.len() > 1, "randomised: {waits:?}");
    // Replayable: the same seed gives the same wait.
    let again: Vec<Duration> = (0..2)
        .map(|_| {
            let mut ua = Ua::with_seed(cfg(), 3);
            let t0 = Instant::now();
            let a = ua.handle(
                t0,
                Input::Command(Command::Call("sip:alice@127.0.0.1:5080".into())),
            );
            let inv = find(&a, "INVITE").unwrap();
            ua.handle(
                t0,
                dgram(response_to(
                    &inv,
                    "200 OK",
                    Some("al1"),
                    "Contact: <sip:alice@127.0.0.1:5080>\r\n",
                    SDP,
                )),
            );
            let ours = find(
                &ua.handle(t0 + T1, Input::Command(Command::Hold(None, true))),
                "INVITE",
            )
            .unwrap();
            ua.handle(
                t0 + T1,
                dgram(response_to(&ours, "491 Request Pending", None, "", "")),
            );
            let r = run(
                &mut ua,
                t0,
                T1,
                T1 + Duration::from_secs(5),
                Duration::from_millis(10),
            );
            r.iter()
                .find(|(_, a)| find(a, "INVITE").is_some())
                .unwrap()
                .0
        })
        .collect();
    assert_eq!(again[0], again[1]);
}

#[test]
fn glare_as_the_callee_retries_within_2_s() {
    for seed in 0..8 {
        let mut c = cfg();
        c.slots = 1;
        let mut ua = Ua::with_seed(c, seed);
        let t0 = Instant::now();
        let a = ua.handle(
            t0,
            dgram(request("INVITE", "g1", "z9hG4bKg1", 1, None, SDP)),
        );
        let tag = find_status(&a, 200).unwrap().to_tag().unwrap();
        let a = ua.handle(
            t0,
            dgram(request("ACK", "g1", "z9hG4bKg1a", 1, Some(&tag), "")),
        );
        media_done(&mut ua, t0, &a);
        let w = glare(
            &mut ua,
            t0,
            request(
                "INVITE",
                "g1",
                &format!("z9hG4bKgr{seed}"),
                2,
                Some(&tag),
                SDP,
            ),
        );
        assert!(w <= Duration::from_millis(2010), "{w:?}");
    }
}

#[test]
fn a_reinvite_before_the_ack_of_our_2xx_gets_491_and_one_before_our_answer_500() {
    let mut c = cfg();
    c.auto_answer = None;
    let mut ua = new_ua(c);
    let t0 = Instant::now();
    let a = ua.handle(
        t0,
        dgram(request("INVITE", "p1", "z9hG4bKp1", 1, None, SDP)),
    );
    let tag = find_status(&a, 180).unwrap().to_tag().unwrap();
    // In the early dialog, before our final response: 500 with Retry-After (14.2).
    let a = ua.handle(
        t0,
        dgram(request("INVITE", "p1", "z9hG4bKp2", 2, Some(&tag), SDP)),
    );
    assert_eq!(statuses(&a), vec![500]);
    let ra: u32 = find_status(&a, 500)
        .unwrap()
        .header("retry-after")
        .unwrap()
        .parse()
        .unwrap();
    assert!(ra <= 10);
    ua.handle(t0, Input::Command(Command::Answer(None)));
    // Answered, not ACKed: a re-INVITE now gets 491.
    let a = ua.handle(
        t0,
        dgram(request("INVITE", "p1", "z9hG4bKp3", 3, Some(&tag), SDP)),
    );
    assert_eq!(statuses(&a), vec![491]);
}

#[test]
fn a_challenged_bye_is_sent_again_with_credentials() {
    let (mut ua, t0, inv) = caller();
    let a = ua.handle(t0 + T1, Input::Command(Command::Hangup(None)));
    media_done(&mut ua, t0 + T1, &a);
    let bye = find(&a, "BYE").unwrap();
    assert!(bye.header("authorization").is_none());
    let challenge = "WWW-Authenticate: Digest realm=\"example\", nonce=\"bn\", qop=\"auth\", algorithm=MD5\r\nWWW-Authenticate: Digest realm=\"example\", nonce=\"bn\", qop=\"auth\", algorithm=SHA-256\r\n";
    let a = ua.handle(
        t0 + T1,
        dgram(response_to(&bye, "401 Unauthorized", None, challenge, "")),
    );
    let bye2 = find(&a, "BYE").expect("BYE again");
    assert_eq!(bye2.cseq().unwrap().0, bye.cseq().unwrap().0 + 1);
    assert_ne!(bye2.via_branch(), bye.via_branch());
    assert_eq!(bye2.call_id(), inv.call_id());
    let auth = bye2.header("authorization").expect("Authorization");
    assert!(
        auth.contains("algorithm=SHA-256") && auth.contains("username=\"bridge\""),
        "{auth}"
    );
    assert!(auth.contains(&format!("uri=\"{}\"", bye2.uri)), "{auth}");
    // Challenged again: no third BYE, the call ends.
    let a = ua.handle(
        t0 + T1,
        dgram(response_to(&bye2, "401 Unauthorized", None, challenge, "")),
    );
    assert!(find(&a, "BYE").is_none());
    assert!(call_ended(&a));
}

#[test]
fn a_challenged_reinvite_is_sent_again_with_credentials() {
    let (mut ua, t0, _) = caller();
    let a = ua.handle(t0 + T1, Input::Command(Command::Hold(None, true)));
    let hold = find(&a, "INVITE").unwrap();
    let a = ua.handle(
        t0 + T1,
        dgram(response_to(
            &hold,
            "407 Proxy Authentication Required",
            None,
            "Proxy-Authenticate: Digest realm=\"px\", nonce=\"pn\"\r\n",
            "",
        )),
    );
    assert_eq!(methods(&a), vec!["ACK", "INVITE"]);
    let hold2 = find(&a, "INVITE").unwrap();
    assert!(hold2.header("proxy-authorization").is_some());
    assert!(String::from_utf8_lossy(&hold2.body).contains("a=sendonly"));
    assert_eq!(hold2.cseq().unwrap().0, hold.cseq().unwrap().0 + 1);
}

#[test]
fn a_reinvite_answered_481_or_408_ends_the_dialog() {
    let (mut ua, t0, _) = caller();
    let hold = find(
        &ua.handle(t0 + T1, Input::Command(Command::Hold(None, true))),
        "INVITE",
    )
    .unwrap();
    let a = ua.handle(
        t0 + T1,
        dgram(response_to(
            &hold,
            "481 Call/Transaction Does Not Exist",
            None,
            "",
            "",
        )),
    );
    assert!(call_ended(&media_done(&mut ua, t0 + T1, &a)));
    assert!(find(&a, "BYE").is_none(), "481: the dialog is gone already");
    let (mut ua, t0, _) = caller();
    let hold = find(
        &ua.handle(t0 + T1, Input::Command(Command::Hold(None, true))),
        "INVITE",
    )
    .unwrap();
    let a = ua.handle(
        t0 + T1,
        dgram(response_to(&hold, "408 Request Timeout", None, "", "")),
    );
    assert!(find(&a, "BYE").is_some(), "408: BYE");
}

#[test]
fn a_refused_reinvite_leaves_the_session_as_it_was() {
    let (mut ua, t0, _) = caller();
    let hold = find(
        &ua.handle(t0 + T1, Input::Command(Command::Hold(None, true))),
        "INVITE",
    )
    .unwrap();
    let a = ua.handle(
        t0 + T1,
        dgram(response_to(&hold, "488 Not Acceptable Here", None, "", "")),
    );
    assert!(find(&a, "ACK").is_some());
    assert!(!call_ended(&a));
    assert_eq!(ua.calls(t0)[0].state, CallState::Active);
}

/// A Record-Route we cannot route through (a strict router whose URI is no
/// SIP URI; the fuzzer found us sending a BYE with `<sip:85ag=2` as its
/// Request-URI): the INVITE that brings it gets 400 and makes no call.
#[test]
fn an_invite_with_an_unroutable_record_route_gets_400() {
    let mut ua = new_ua(cfg());
    let t0 = Instant::now();
    let inv = String::from_utf8(request("INVITE", "rr1", "z9hG4bKrr1", 5, None, SDP))
        .unwrap()
        .replace(
            "Contact: ",
            "Record-Route: <<sip:85ag=2>, <sip:127.0.0.1:5090;lr>\r\nContact: ",
        );
    let a = ua.handle(t0, dgram(inv.into_bytes()));
    assert_eq!(statuses(&a), vec![400]);
    let resp = find_status(&a, 400).unwrap();
    assert!(
        resp.header("warning")
            .is_some_and(|w| w.contains("Record-Route")),
        "{:?}",
        resp.header("warning")
    );
    assert!(started(&a).is_none());
    assert!(ua.calls(t0).is_empty());
}

/// The same in the 2xx to our INVITE: the ACK goes to the Contact (no
/// route set), then a BYE with `Reason: SIP;cause=400`; the call ends.
#[test]
fn a_2xx_with_an_unroutable_record_route_is_acked_and_ended() {
    let mut ua = new_ua(cfg());
    let t0 = Instant::now();
    let (_, a) = call_answered(
        &mut ua,
        t0,
        "Record-Route: <sip:127.0.0.1:5090;lr>, <<sip:85ag=2>\r\nContact: <sip:alice@127.0.0.1:5081>\r\n",
    );
    let sent = sent_to(&a);
    let methods: Vec<&str> = sent.iter().map(|(_, m)| m.method()).collect();
    assert_eq!(methods, vec!["ACK", "BYE"]);
    for (to, m) in &sent {
        assert_eq!(m.uri, "sip:alice@127.0.0.1:5081");
        assert!(m.header("route").is_none());
        assert_eq!(*to, "127.0.0.1:5081".parse().unwrap());
    }
    let bye = &sent[1].1;
    assert!(
        bye.header("reason")
            .is_some_and(|r| r.contains("cause=400")),
        "{:?}",
        bye.header("reason")
    );
    assert!(started(&a).is_none(), "no media for a call being ended");
    let a = ua.handle(t0 + T1, dgram(response_to(bye, "200 OK", None, "", "")));
    media_done(&mut ua, t0 + T1, &a);
    assert!(ua.calls(t0 + T1).is_empty());
}
