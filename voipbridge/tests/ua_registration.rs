//! Registration (RFC 3261 10, 22; RFC 7616, RFC 8760) in virtual time:
//! challenges, registrar restarts, stale nonces, wrong passwords, the
//! outbound proxy, registrar URIs that need a lookup.

mod support;

use std::net::SocketAddr;
use std::time::{Duration, Instant};
use support::*;
use voipbridge::sip::message::Message;
use voipbridge::sip::ua::{Action, Command, Event, Input, Lookup, RegState, Ua, UaConfig};
use voipbridge::sip::uri::ServerUri;

fn reg_cfg() -> UaConfig {
    let mut c = cfg();
    c.registrar = Some(registrar_uri());
    c
}

fn challenge(m: &Message, nonce: &str, extra: &str) -> Input {
    dgram_from(
        registrar(),
        response_to(
            m,
            "401 Unauthorized",
            Some("srv"),
            &format!("WWW-Authenticate: Digest realm=\"127.0.0.1\", nonce=\"{nonce}\", qop=\"auth\"{extra}\r\n"),
            "",
        ),
    )
}

fn ok(m: &Message, expires: u32) -> Input {
    dgram_from(
        registrar(),
        response_to(
            m,
            "200 OK",
            Some("srv"),
            &format!("Expires: {expires}\r\n"),
            "",
        ),
    )
}

fn register(ua: &mut Ua, t: Instant) -> Message {
    find(&ua.handle(t, Input::Command(Command::Register)), "REGISTER").expect("REGISTER")
}

fn failed(a: &[Action]) -> bool {
    a.iter()
        .any(|x| matches!(x, Action::Event(Event::RegistrationFailed { .. })))
}

/// Registered with nonce n1: (ua, t0, the last REGISTER).
fn registered() -> (Ua, Instant, Message) {
    let mut ua = new_ua(reg_cfg());
    let t0 = Instant::now();
    let r1 = register(&mut ua, t0);
    let r2 = find(&ua.handle(t0, challenge(&r1, "n1", "")), "REGISTER").unwrap();
    let a = ua.handle(t0, ok(&r2, 100));
    assert!(a.contains(&Action::Event(Event::Registered { expires: 100 })));
    (ua, t0, r2)
}

#[test]
fn a_registrar_restart_between_refreshes_is_not_a_wrong_password() {
    let (mut ua, t0, _) = registered();
    // The refresh (80 s) carries the old nonce; the restarted registrar does
    // not know it and challenges afresh, without stale=true.
    let t = t0 + Duration::from_secs(80);
    let refresh = find(&ua.handle(t, Input::Tick), "REGISTER").unwrap();
    assert!(refresh
        .header("authorization")
        .unwrap()
        .contains("nonce=\"n1\""));
    let a = ua.handle(t, challenge(&refresh, "n2-after-restart", ""));
    assert!(!failed(&a), "{a:?}");
    let again = find(&a, "REGISTER").expect("answered with the new nonce");
    let auth = again.header("authorization").unwrap();
    assert!(
        auth.contains("nonce=\"n2-after-restart\"") && auth.contains("nc=00000001"),
        "{auth}"
    );
    let a = ua.handle(t, ok(&again, 100));
    assert!(a.contains(&Action::Event(Event::Registered { expires: 100 })));
    assert_eq!(ua.reg_state(), RegState::Registered);
    // And again at the next restart.
    let t = t + Duration::from_secs(80);
    let refresh = find(&ua.handle(t, Input::Tick), "REGISTER").unwrap();
    let again = find(&ua.handle(t, challenge(&refresh, "n3", "")), "REGISTER").unwrap();
    ua.handle(t, ok(&again, 100));
    assert_eq!(ua.reg_state(), RegState::Registered);
}

#[test]
fn a_registrar_restart_between_challenge_and_answer_is_survived() {
    let mut ua = new_ua(reg_cfg());
    let t0 = Instant::now();
    let r1 = register(&mut ua, t0);
    let r2 = find(&ua.handle(t0, challenge(&r1, "n1", "")), "REGISTER").unwrap();
    // Restarted: our answer to n1 is refused with a fresh nonce, no stale.
    let a = ua.handle(t0, challenge(&r2, "n2", ""));
    assert!(!failed(&a));
    let r3 = find(&a, "REGISTER").unwrap();
    assert!(r3.header("authorization").unwrap().contains("nonce=\"n2\""));
    ua.handle(t0, ok(&r3, 60));
    assert_eq!(ua.reg_state(), RegState::Registered);
}

#[test]
fn a_wrong_password_fails_after_two_fresh_nonces_or_one_repeated_nonce() {
    // Fresh nonce at every challenge (kamailio, Asterisk): two tries.
    let mut ua = new_ua(reg_cfg());
    let t0 = Instant::now();
    let r1 = register(&mut ua, t0);
    let r2 = find(&ua.handle(t0, challenge(&r1, "a", "")), "REGISTER").unwrap();
    let r3 = find(&ua.handle(t0, challenge(&r2, "b", "")), "REGISTER").unwrap();
    let a = ua.handle(t0, challenge(&r3, "c", ""));
    assert!(find(&a, "REGISTER").is_none());
    assert!(a.iter().any(|x| matches!(x, Action::Event(Event::RegistrationFailed { code: 401, reason }) if reason.contains("check username and password"))));
    assert_eq!(ua.reg_state(), RegState::Failed);
    // The same nonce refused: at once.
    let mut ua = new_ua(reg_cfg());
    let r1 = register(&mut ua, t0);
    let r2 = find(&ua.handle(t0, challenge(&r1, "same", "")), "REGISTER").unwrap();
    let a = ua.handle(t0, challenge(&r2, "same", ""));
    assert!(failed(&a) && find(&a, "REGISTER").is_none());
    // Back-off: 5 s, then 10 s, starting over without credentials.
    assert!(find(
        &ua.handle(t0 + Duration::from_millis(4900), Input::Tick),
        "REGISTER"
    )
    .is_none());
    let retry = find(
        &ua.handle(t0 + Duration::from_secs(5), Input::Tick),
        "REGISTER",
    )
    .unwrap();
    assert!(retry.header("authorization").is_none());
}

#[test]
fn stale_nonces_are_answered_without_counting_as_failures() {
    let (mut ua, t0, _) = registered();
    let mut t = t0;
    for i in 0..4 {
        t += Duration::from_secs(80);
        let refresh = find(&ua.handle(t, Input::Tick), "REGISTER").unwrap();
        let a = ua.handle(t, challenge(&refresh, &format!("s{i}"), ", stale=true"));
        let again = find(&a, "REGISTER").expect("answered");
        ua.handle(t, ok(&again, 100));
        assert_eq!(ua.reg_state(), RegState::Registered);
    }
}

#[test]
fn every_challenge_is_read_and_the_strongest_algorithm_answered() {
    let mut ua = new_ua(reg_cfg());
    let t0 = Instant::now();
    let r1 = register(&mut ua, t0);
    let two = "WWW-Authenticate: Digest realm=\"r\", nonce=\"x\", algorithm=MD5, qop=\"auth\"\r\nWWW-Authenticate: Digest realm=\"r\", nonce=\"x\", algorithm=SHA-256, qop=\"auth\"\r\nWWW-Authenticate: Digest realm=\"r\", nonce=\"x\", algorithm=SHA-3\r\n";
    let a = ua.handle(
        t0,
        dgram_from(
            registrar(),
            response_to(&r1, "401 Unauthorized", Some("s"), two, ""),
        ),
    );
    let auth = find(&a, "REGISTER")
        .unwrap()
        .header("authorization")
        .unwrap()
        .to_string();
    assert!(auth.contains("algorithm=SHA-256"), "{auth}");
    // Only an algorithm we lack: a clear failure.
    let mut ua = new_ua(reg_cfg());
    let r1 = register(&mut ua, t0);
    let a = ua.handle(
        t0,
        dgram_from(
            registrar(),
            response_to(
                &r1,
                "401 Unauthorized",
                Some("s"),
                "WWW-Authenticate: Digest realm=\"r\", nonce=\"x\", algorithm=SHA-3\r\n",
                "",
            ),
        ),
    );
    assert!(a.iter().any(|x| matches!(x, Action::Event(Event::RegistrationFailed { reason, .. }) if reason.contains("SHA-3"))));
}

#[test]
fn the_outbound_proxy_gets_the_register_with_a_route_and_the_registrar_uri() {
    let mut c = cfg();
    c.registrar = Some(ServerUri::parse("sip:pbx.example.com").unwrap());
    c.outbound_proxy = Some(ServerUri::parse("sip:127.0.0.3:5062").unwrap());
    let mut ua = new_ua(c);
    let t0 = Instant::now();
    // The registrar's name is never needed to send: the proxy is an address.
    let a = ua.handle(t0, Input::Command(Command::Register));
    let (to, reg) = sent_to(&a).remove(0);
    assert_eq!(to, "127.0.0.3:5062".parse::<SocketAddr>().unwrap());
    assert_eq!(reg.uri, "sip:pbx.example.com");
    assert_eq!(reg.header_values("route"), vec!["<sip:127.0.0.3:5062;lr>"]);
    // A call goes there too, with the same Route.
    let a = ua.handle(
        t0,
        Input::Command(Command::Call("sip:alice@example.org".into())),
    );
    let (to, inv) = sent_to(&a).remove(0);
    assert_eq!(to, "127.0.0.3:5062".parse::<SocketAddr>().unwrap());
    assert_eq!(inv.header_values("route"), vec!["<sip:127.0.0.3:5062;lr>"]);
    assert_eq!(inv.uri, "sip:alice@example.org");
}

#[test]
fn a_registrar_named_by_host_is_looked_up_before_the_register_and_after_a_timeout() {
    let mut c = cfg();
    c.registrar = Some(ServerUri::parse("sip:pbx.example.com:5062").unwrap());
    let mut ua = new_ua(c);
    let t0 = Instant::now();
    let a = ua.handle(t0, Input::Command(Command::Register));
    assert!(sent(&a).is_empty());
    assert!(a.contains(&Action::Resolve {
        lookup: Lookup::Registrar,
        host: "pbx.example.com".into(),
        port: 5062
    }));
    let addr: SocketAddr = "127.0.0.4:5062".parse().unwrap();
    let a = ua.handle(
        t0,
        Input::Resolved {
            lookup: Lookup::Registrar,
            result: Ok(addr),
        },
    );
    let (to, reg) = sent_to(&a).remove(0);
    assert_eq!(to, addr);
    assert_eq!(reg.uri, "sip:pbx.example.com:5062");
    // Silence: 408 at 64·T1, and a new lookup (the name may have moved).
    let r = run(
        &mut ua,
        t0,
        Duration::ZERO,
        64 * T1,
        Duration::from_millis(100),
    );
    let last = &r.last().unwrap().1;
    assert_eq!(ended_codes(last), vec![408]);
    assert!(last.iter().any(|x| matches!(
        x,
        Action::Resolve {
            lookup: Lookup::Registrar,
            ..
        }
    )));
    // A failed lookup: the registration fails (503) and is retried later.
    let mut c = cfg();
    c.registrar = Some(ServerUri::parse("sip:nowhere.invalid").unwrap());
    let mut ua = new_ua(c);
    ua.handle(t0, Input::Command(Command::Register));
    let a = ua.handle(
        t0,
        Input::Resolved {
            lookup: Lookup::Registrar,
            result: Err("NXDOMAIN".into()),
        },
    );
    assert_eq!(ended_codes(&a), vec![503]);
    let a = ua.handle(t0 + Duration::from_secs(5), Input::Tick);
    assert!(a.iter().any(|x| matches!(x, Action::Resolve { .. })));
}

#[test]
fn min_expires_423_and_retry_after_503() {
    let mut ua = new_ua(reg_cfg());
    let t0 = Instant::now();
    let r1 = register(&mut ua, t0);
    let a = ua.handle(
        t0,
        dgram_from(
            registrar(),
            response_to(
                &r1,
                "423 Interval Too Brief",
                Some("s"),
                "Min-Expires: 1800\r\n",
                "",
            ),
        ),
    );
    let r2 = find(&a, "REGISTER").unwrap();
    assert_eq!(r2.header("expires"), Some("1800"));
    let a = ua.handle(
        t0,
        dgram_from(
            registrar(),
            response_to(
                &r2,
                "503 Service Unavailable",
                Some("s"),
                "Retry-After: 60\r\n",
                "",
            ),
        ),
    );
    assert_eq!(ended_codes(&a), vec![503]);
    assert!(find(
        &ua.handle(t0 + Duration::from_secs(59), Input::Tick),
        "REGISTER"
    )
    .is_none());
    assert!(find(
        &ua.handle(t0 + Duration::from_secs(60), Input::Tick),
        "REGISTER"
    )
    .is_some());
}

#[test]
fn a_sips_address_of_record_is_registered_with_a_sips_request_uri() {
    // RFC 3261 10.2 with RFC 5630 3.1.3: the Request-URI is the domain with
    // the AOR's scheme.
    let mut c = reg_cfg();
    c.aor = "sips:bridge@example.org".into();
    let mut ua = new_ua(c);
    let r = register(&mut ua, Instant::now());
    assert_eq!(r.uri, "sips:example.org");
    assert!(r.header("to").unwrap().contains("sips:bridge@example.org"));
    let mut ua = new_ua(reg_cfg());
    assert_eq!(register(&mut ua, Instant::now()).uri, "sip:127.0.0.1");
}
