//! The transaction layer through the UA (RFC 3261 17) in virtual time:
//! re-ACK of retransmitted final responses, the server's response cache and
//! its retransmissions, keys with sent-by, RFC 2543 peers, timer F.

mod support;

use std::time::{Duration, Instant};
use support::*;
use voipbridge::sip::ua::{Command, Input};

#[test]
fn a_4xx_retransmitted_three_times_is_re_acked_each_time() {
    let mut ua = new_ua(cfg());
    let t0 = Instant::now();
    let a = ua.handle(
        t0,
        Input::Command(Command::Call("sip:alice@127.0.0.1:5080".into())),
    );
    let inv = find(&a, "INVITE").unwrap();
    let busy = response_to(&inv, "486 Busy Here", Some("b1"), "", "");
    let first = ua.handle(t0, dgram(busy.clone()));
    assert_eq!(ended_codes(&first), vec![486]);
    let ack = find(&first, "ACK").unwrap();
    assert_eq!(
        ack.via_branch(),
        inv.via_branch(),
        "the INVITE's branch (17.1.1.3)"
    );
    assert_eq!(ack.to_tag().as_deref(), Some("b1"));
    assert_eq!(ack.uri, inv.uri);
    for i in 1..=3 {
        let again = ua.handle(t0 + i * T1, dgram(busy.clone()));
        assert_eq!(methods(&again), vec!["ACK"], "retransmission {i}");
        assert_eq!(sent(&again)[0].via_branch(), inv.via_branch());
        assert!(ended_codes(&again).is_empty(), "reported once");
    }
    // No INVITE retransmission after the final response.
    assert!(run(&mut ua, t0, T1, 10 * T1, Duration::from_millis(100))
        .iter()
        .all(|(_, a)| find(a, "INVITE").is_none()));
}

#[test]
fn a_busy_486_is_retransmitted_until_the_ack_and_replayed_for_the_invite() {
    let mut c = cfg();
    c.auto_answer = None;
    let mut ua = new_ua(c);
    let t0 = Instant::now();
    ua.handle(
        t0,
        dgram(request("INVITE", "x1", "z9hG4bKx1", 1, None, SDP)),
    );
    let inv2 = request("INVITE", "x2", "z9hG4bKx2", 1, None, SDP);
    assert_eq!(statuses(&ua.handle(t0, dgram(inv2.clone()))), vec![486]);
    // Timer G: T1, 2T1 later.
    let r = run(
        &mut ua,
        t0,
        Duration::ZERO,
        4 * T1,
        Duration::from_millis(50),
    );
    let busy_times: Vec<u128> = r
        .iter()
        .filter(|(_, a)| sent(a).iter().any(|m| m.status == Some(486)))
        .map(|(t, _)| t.as_millis())
        .collect();
    assert_eq!(busy_times, vec![500, 1500]);
    // The INVITE retransmitted: the same 486 (same To tag), not a new one.
    let a = ua.handle(t0 + 4 * T1, dgram(inv2.clone()));
    let replay = find_status(&a, 486).unwrap();
    let tag = replay.to_tag().unwrap();
    // Its ACK (same branch) stops the retransmissions.
    ua.handle(
        t0 + 4 * T1,
        dgram(request("ACK", "x2", "z9hG4bKx2", 1, Some(&tag), "")),
    );
    let r = run(&mut ua, t0, 4 * T1, 40 * T1, Duration::from_millis(100));
    assert!(
        r.iter().all(|(_, a)| find_status(a, 486).is_none()),
        "{r:?}"
    );
}

#[test]
fn the_server_cache_is_keyed_with_sent_by_and_method() {
    let mut ua = new_ua(cfg());
    let t0 = Instant::now();
    let o1 = request("OPTIONS", "o1", "z9hG4bKsame", 1, None, "");
    let a1 = ua.handle(t0, dgram(o1.clone()));
    let tag1 = find_status(&a1, 200).unwrap().to_tag().unwrap();
    // The retransmission gets the cached answer (same To tag).
    let again = ua.handle(t0, dgram(o1));
    assert_eq!(find_status(&again, 200).unwrap().to_tag().unwrap(), tag1);
    // Same branch from another sent-by: another transaction (a new To tag).
    let other = String::from_utf8(request("OPTIONS", "o1", "z9hG4bKsame", 1, None, ""))
        .unwrap()
        .replace(
            "Via: SIP/2.0/UDP 127.0.0.1:5080",
            "Via: SIP/2.0/UDP 127.0.0.2:5080",
        );
    let a2 = ua.handle(t0, dgram(other.into_bytes()));
    assert_ne!(find_status(&a2, 200).unwrap().to_tag().unwrap(), tag1);
}

#[test]
fn an_rfc2543_peer_without_magic_cookie_completes_a_call() {
    let mut ua = new_ua(cfg());
    let t0 = Instant::now();
    let inv = request("INVITE", "old", "1234", 1, None, SDP);
    let a = ua.handle(t0, dgram(inv.clone()));
    assert_eq!(statuses(&a), vec![100, 180, 200]);
    let tag = find_status(&a, 200).unwrap().to_tag().unwrap();
    // A retransmission is absorbed: the 200 again, no second call.
    let again = ua.handle(t0 + T1 / 2, dgram(inv));
    assert_eq!(statuses(&again), vec![200]);
    assert_eq!(ua.calls(t0).len(), 1);
    // Its ACK (same old-style branch, our tag) confirms the dialog.
    let a = ua.handle(
        t0 + T1,
        dgram(request("ACK", "old", "1234", 1, Some(&tag), "")),
    );
    assert!(started(&a).is_some());
    // The 2xx is no longer retransmitted.
    assert!(run(&mut ua, t0, T1, 10 * T1, Duration::from_millis(100))
        .iter()
        .all(|(_, a)| find_status(a, 200).is_none()));
}

#[test]
fn an_unanswered_bye_ends_the_call_on_timer_f() {
    let mut ua = new_ua(cfg());
    let t0 = Instant::now();
    let a = ua.handle(
        t0,
        dgram(request("INVITE", "f1", "z9hG4bKf1", 1, None, SDP)),
    );
    let tag = find_status(&a, 200).unwrap().to_tag().unwrap();
    let a = ua.handle(
        t0,
        dgram(request("ACK", "f1", "z9hG4bKf1a", 1, Some(&tag), "")),
    );
    media_done(&mut ua, t0, &a);
    let a = ua.handle(t0, Input::Command(Command::Hangup(None)));
    media_done(&mut ua, t0, &a);
    let r = run(
        &mut ua,
        t0,
        Duration::ZERO,
        64 * T1,
        Duration::from_millis(50),
    );
    // Timer E: T1, 2T1, 4T1, then T2; the call ends at 64·T1 with 408.
    assert_eq!(&send_times(&r)[..4], &[500, 1500, 3500, 7500]);
    assert_eq!(ended_codes(&r.last().unwrap().1), vec![408]);
    assert!(ua.calls(t0).is_empty());
}

#[test]
fn a_late_2xx_retransmission_after_timer_m_is_still_acked() {
    let mut ua = new_ua(cfg());
    let t0 = Instant::now();
    let a = ua.handle(
        t0,
        Input::Command(Command::Call("sip:alice@127.0.0.1:5080".into())),
    );
    let inv = find(&a, "INVITE").unwrap();
    let ok = response_to(
        &inv,
        "200 OK",
        Some("z"),
        "Contact: <sip:alice@127.0.0.1:5080>\r\n",
        SDP,
    );
    let first = ua.handle(t0, dgram(ok.clone()));
    let ack = find(&first, "ACK").unwrap();
    run(&mut ua, t0, Duration::ZERO, 65 * T1, Duration::from_secs(1));
    let late = ua.handle(t0 + 66 * T1, dgram(ok));
    let again = find(&late, "ACK").expect("re-ACK from the dialog");
    assert_eq!(again.via_branch(), ack.via_branch());
}
