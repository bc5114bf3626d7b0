//! Issue 14's policy decisions in virtual time: who may ring the board,
//! what an unauthorised INVITE gets, media only after the ACK and only
//! towards the offer's address, latching only for registrar-routed calls,
//! abuse reports, and a flood of 20,000 INVITEs that changes nothing for
//! an OPTIONS ping or a live call.

mod support;

use std::net::SocketAddr;
use std::time::{Duration, Instant};
use support::*;
use voipbridge::sip::policy::{AbuseKind, Accept};
use voipbridge::sip::ua::{Action, Priority, Ua, UaConfig};

/// The default policy: no `accept = "any"`, a registrar at 127.0.0.1:5060.
fn safe_cfg() -> UaConfig {
    let mut c = cfg();
    c.accept = Accept::Trusted;
    c.registrar = Some(registrar_uri());
    c
}

fn abuse(a: &[Action]) -> Vec<(SocketAddr, AbuseKind)> {
    a.iter()
        .filter_map(|x| match x {
            Action::Abuse { source, kind } => Some((*source, *kind)),
            _ => None,
        })
        .collect()
}

fn stranger() -> SocketAddr {
    "192.0.2.66:5060".parse().unwrap()
}

#[test]
fn by_default_a_stranger_gets_one_403_no_substream_and_an_abuse_report() {
    let mut ua = new_ua(safe_cfg());
    let t0 = Instant::now();
    let a = ua.handle(
        t0,
        dgram_from(
            stranger(),
            request("INVITE", "s1", "z9hG4bKs1", 1, None, SDP),
        ),
    );
    assert_eq!(statuses(&a), vec![403], "no 100, no 180: nothing rings");
    assert_eq!(abuse(&a), vec![(stranger(), AbuseKind::UnauthorisedInvite)]);
    assert!(ua.calls(t0).is_empty());
    assert!(started(&a).is_none());
    // Stateless: no timer G retransmissions of the 403 (no reflection).
    assert!(run(
        &mut ua,
        t0,
        Duration::ZERO,
        64 * T1,
        Duration::from_millis(250)
    )
    .is_empty());
    assert_eq!(ua.tx_stats().server, 0);
    // The substream is untouched: a registrar-routed call gets it at once.
    let a = ua.handle(
        t0,
        dgram_from(
            registrar(),
            request("INVITE", "r1", "z9hG4bKr1", 1, None, SDP),
        ),
    );
    assert_eq!(statuses(&a), vec![100, 180, 200]);
}

#[test]
fn stealth_answers_nothing_at_all() {
    let mut c = safe_cfg();
    c.stealth = true;
    let mut ua = new_ua(c);
    let t0 = Instant::now();
    let a = ua.handle(
        t0,
        dgram_from(
            stranger(),
            request("INVITE", "s1", "z9hG4bKs1", 1, None, SDP),
        ),
    );
    assert!(sent(&a).is_empty());
    assert_eq!(abuse(&a).len(), 1);
    // Its retransmission: still nothing.
    let a = ua.handle(
        t0 + T1,
        dgram_from(
            stranger(),
            request("INVITE", "s1", "z9hG4bKs1", 1, None, SDP),
        ),
    );
    assert!(sent(&a).is_empty());
}

#[test]
fn a_registrar_routed_call_is_answered_and_may_latch_when_configured() {
    for latch in [false, true] {
        let mut c = safe_cfg();
        c.latch = latch;
        let mut ua = new_ua(c);
        let t0 = Instant::now();
        let a = ua.handle(
            t0,
            dgram_from(
                registrar(),
                request("INVITE", "r1", "z9hG4bKr1", 1, None, SDP),
            ),
        );
        let ok = find_status(&a, 200).unwrap();
        assert!(abuse(&a).is_empty());
        let tag = ok.to_tag().unwrap();
        let a = ua.handle(
            t0,
            dgram_from(
                registrar(),
                request("ACK", "r1", "z9hG4bKr1a", 1, Some(&tag), ""),
            ),
        );
        let (_, m) = started(&a).unwrap();
        assert_eq!(m.latch, latch);
        assert_eq!(m.remote, "127.0.0.1:4000".parse::<SocketAddr>().unwrap());
    }
    // A direct call admitted by `accept = "any"` never latches.
    let mut c = cfg();
    c.latch = true;
    let mut ua = new_ua(c);
    let t0 = Instant::now();
    let a = ua.handle(
        t0,
        dgram(request("INVITE", "d1", "z9hG4bKd1", 1, None, SDP)),
    );
    let tag = find_status(&a, 200).unwrap().to_tag().unwrap();
    let a = ua.handle(
        t0,
        dgram(request("ACK", "d1", "z9hG4bKd1a", 1, Some(&tag), "")),
    );
    assert!(!started(&a).unwrap().1.latch);
}

#[test]
fn the_allow_list_matches_user_at_host_exactly() {
    let mut c = safe_cfg();
    c.allow_from = vec!["alice@127.0.0.1".into()];
    let mut ua = new_ua(c);
    let t0 = Instant::now();
    let ok = ua.handle(
        t0,
        dgram_from(
            stranger(),
            request_from(
                "INVITE",
                "a1",
                "z9hG4bKa1",
                1,
                None,
                SDP,
                "sip:alice@127.0.0.1:5999;transport=udp",
            ),
        ),
    );
    assert_eq!(statuses(&ok), vec![100, 180, 200]);
    for (i, from) in [
        "sip:alice2@127.0.0.1",
        "sip:Alice@127.0.0.1",
        "sip:alice@127.0.0.10",
        "sip:malice@127.0.0.1",
        "sip:127.0.0.1",
    ]
    .iter()
    .enumerate()
    {
        let mut c = safe_cfg();
        c.allow_from = vec!["alice@127.0.0.1".into()];
        let mut ua = new_ua(c);
        let a = ua.handle(
            t0,
            dgram_from(
                stranger(),
                request_from(
                    "INVITE",
                    &format!("b{i}"),
                    &format!("z9hG4bKb{i}"),
                    1,
                    None,
                    SDP,
                    from,
                ),
            ),
        );
        assert_eq!(statuses(&a), vec![403], "{from}");
    }
}

#[test]
fn an_unknown_user_is_refused_like_an_unauthorised_caller() {
    let mut ua = new_ua(cfg()); // even with accept = "any"
    let t0 = Instant::now();
    let other = String::from_utf8(request("INVITE", "u1", "z9hG4bKu1", 1, None, SDP))
        .unwrap()
        .replace("INVITE sip:bridge@", "INVITE sip:admin@");
    let a = ua.handle(t0, dgram(other.into_bytes()));
    assert_eq!(statuses(&a), vec![403]);
    assert_eq!(abuse(&a), vec![(peer(), AbuseKind::UnknownUser)]);
}

#[test]
fn no_media_before_the_ack_and_only_an_ack_with_our_tag_starts_it() {
    let mut ua = new_ua(cfg());
    let t0 = Instant::now();
    // The INVITE comes from one address, its SDP names another.
    let sdp = SDP.replace("c=IN IP4 127.0.0.1", "c=IN IP4 127.0.0.44");
    let a = ua.handle(
        t0,
        dgram(request("INVITE", "m1", "z9hG4bKm1", 1, None, &sdp)),
    );
    assert!(started(&a).is_none());
    let tag = find_status(&a, 200).unwrap().to_tag().unwrap();
    // An ACK with a guessed tag (a forger who never saw our 200) does nothing.
    let a = ua.handle(
        t0,
        dgram(request("ACK", "m1", "z9hG4bKm1a", 1, Some("guessed"), "")),
    );
    assert!(a.is_empty(), "{a:?}");
    let a = ua.handle(
        t0,
        dgram(request("ACK", "m1", "z9hG4bKm1b", 1, Some(&tag), "")),
    );
    let (_, m) = started(&a).unwrap();
    assert_eq!(
        m.remote,
        "127.0.0.44:4000".parse::<SocketAddr>().unwrap(),
        "the offer's address, not the source"
    );
}

#[test]
fn the_registrar_is_never_reported_and_strangers_are() {
    let mut ua = new_ua(safe_cfg());
    let t0 = Instant::now();
    let garbage = b"INVITE sip:bridge@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bKg\r\nFrom: <sip:a@b>;tag=1\r\nTo: <sip:bridge@127.0.0.1>\r\nCall-ID: g\r\nCSeq: 1 INVITE\r\nContent-Length: 5\r\n\r\n".to_vec();
    let a = ua.handle(t0, dgram_from(registrar(), garbage.clone()));
    assert_eq!(statuses(&a), vec![400]);
    assert!(abuse(&a).is_empty());
    let a = ua.handle(t0, dgram_from(stranger(), garbage));
    assert_eq!(abuse(&a), vec![(stranger(), AbuseKind::MalformedRequest)]);
    let a = ua.handle(
        t0,
        dgram_from(
            stranger(),
            request("REGISTER", "x", "z9hG4bKx", 1, None, ""),
        ),
    );
    assert_eq!(statuses(&a), vec![405]);
    assert_eq!(abuse(&a), vec![(stranger(), AbuseKind::MethodNotAllowed)]);
    let a = ua.handle(
        t0,
        dgram_from(
            registrar(),
            request("SUBSCRIBE", "y", "z9hG4bKy", 1, None, ""),
        ),
    );
    assert!(abuse(&a).is_empty());
}

/// A live registrar-routed call: (ua, t0, our tag).
fn live_call(ua: &mut Ua, t0: Instant) -> String {
    let a = ua.handle(
        t0,
        dgram_from(
            registrar(),
            request("INVITE", "live", "z9hG4bKlive", 1, None, SDP),
        ),
    );
    let tag = find_status(&a, 200).unwrap().to_tag().unwrap();
    let a = ua.handle(
        t0,
        dgram_from(
            registrar(),
            request("ACK", "live", "z9hG4bKlivea", 1, Some(&tag), ""),
        ),
    );
    media_done(ua, t0, &a);
    tag
}

#[test]
fn a_flood_of_20000_invites_leaves_memory_bounded_and_changes_nothing_for_options_or_a_live_call() {
    let mut c = safe_cfg();
    c.max_transactions = 1024;
    let mut ua = new_ua(c);
    let t0 = Instant::now();
    let tag = live_call(&mut ua, t0);
    let mut refused = 0;
    for i in 0..20_000u32 {
        let t = t0 + Duration::from_micros(500 * u64::from(i)); // 10 s
        let from: SocketAddr = format!("198.51.100.{}:{}", i % 250 + 1, 5060 + i % 1000)
            .parse()
            .unwrap();
        let inv = request_from(
            "INVITE",
            &format!("flood{i}"),
            &format!("z9hG4bKfl{i}"),
            1,
            None,
            SDP,
            "sip:scanner@198.51.100.1",
        );
        assert_eq!(ua.priority(from, &inv), Priority::Low);
        let a = ua.handle(t, dgram_from(from, inv));
        refused += statuses(&a).iter().filter(|c| **c == 403).count();
        assert!(started(&a).is_none());
        if i % 5000 == 2500 {
            // Mid-flood: an OPTIONS ping and the live call's INFO are answered at once.
            let o = request(
                "OPTIONS",
                &format!("ping{i}"),
                &format!("z9hG4bKp{i}"),
                1,
                None,
                "",
            );
            assert_eq!(ua.priority(peer(), &o), Priority::Normal);
            assert_eq!(statuses(&ua.handle(t, dgram(o))), vec![200]);
            let info = request(
                "INFO",
                "live",
                &format!("z9hG4bKinfo{i}"),
                2 + i,
                Some(&tag),
                "",
            );
            assert_eq!(ua.priority(registrar(), &info), Priority::High);
            let a = ua.handle(t, dgram_from(registrar(), info));
            assert_eq!(statuses(&a), vec![200]);
        }
        assert!(ua.tx_stats().server <= 1024);
    }
    assert_eq!(refused, 20_000);
    assert_eq!(ua.calls(t0).len(), 1, "no flood INVITE became a call");
    // The live call still ends cleanly.
    let t = t0 + Duration::from_secs(11);
    let bye = request("BYE", "live", "z9hG4bKbye", 99_999, Some(&tag), "");
    let a = ua.handle(t, dgram_from(registrar(), bye));
    assert_eq!(statuses(&a), vec![200]);
}

#[test]
fn an_options_flood_fills_the_table_to_its_cap_then_is_answered_statelessly() {
    let mut c = cfg();
    c.max_transactions = 100;
    let mut ua = new_ua(c);
    let t0 = Instant::now();
    for i in 0..1000 {
        let o = request(
            "OPTIONS",
            &format!("o{i}"),
            &format!("z9hG4bKo{i}"),
            1,
            None,
            "",
        );
        assert_eq!(statuses(&ua.handle(t0, dgram(o))), vec![200]);
    }
    let st = ua.tx_stats();
    assert_eq!(st.server, 100);
    assert_eq!(st.stateless, 900);
    // A live call's requests still get transactions: finished ones are evicted.
    let a = ua.handle(
        t0,
        dgram(request("INVITE", "c1", "z9hG4bKc1", 1, None, SDP)),
    );
    assert_eq!(statuses(&a), vec![100, 180, 200]);
    assert!(ua.tx_stats().evicted >= 1);
}

#[test]
fn priority_of_raw_messages() {
    let mut ua = Ua::with_seed(safe_cfg(), 1);
    let t0 = Instant::now();
    live_call(&mut ua, t0);
    let bye = request("BYE", "live", "z9hG4bKx", 5, Some("t"), "");
    assert_eq!(
        ua.priority(stranger(), &bye),
        Priority::High,
        "a live call's Call-ID"
    );
    let new_inv = request("INVITE", "new", "z9hG4bKn", 1, None, SDP);
    assert_eq!(ua.priority(stranger(), &new_inv), Priority::Low);
    assert_eq!(
        ua.priority(registrar(), &new_inv),
        Priority::High,
        "the registrar"
    );
    assert_eq!(ua.priority(stranger(), b"\x00garbage"), Priority::Low);
    let compact = b"OPTIONS sip:b@h SIP/2.0\r\ni: live\r\n\r\n";
    assert_eq!(
        ua.priority(stranger(), compact),
        Priority::High,
        "compact Call-ID"
    );
}
