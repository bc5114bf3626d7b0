//! The INVITE usage (RFC 3261 13-15, RFC 3264) in virtual time: long rings,
//! CANCEL rules, ring timeout and Expires, multi-m-line offers, substreams
//! released with the media, media failures, forks.

mod support;

use std::net::SocketAddr;
use std::time::{Duration, Instant};
use support::*;
use voipbridge::media::{Direction, MediaEvent};
use voipbridge::sip::message::Message;
use voipbridge::sip::sdp::SessionDescription;
use voipbridge::sip::ua::{Action, CallState, Command, Event, Input, Ua};

/// Starts an outgoing call to alice; returns the UA and the INVITE.
fn calling() -> (Ua, Instant, Message) {
    let mut ua = new_ua(cfg());
    let t0 = Instant::now();
    let a = ua.handle(
        t0,
        Input::Command(Command::Call("sip:alice@127.0.0.1:5080".into())),
    );
    (ua, t0, find(&a, "INVITE").expect("INVITE"))
}

fn reply(inv: &Message, status: &str, body: &str) -> Input {
    dgram(response_to(
        inv,
        status,
        Some("bob9"),
        "Contact: <sip:alice@127.0.0.1:5080>\r\n",
        body,
    ))
}

#[test]
fn a_callee_that_rings_45_s_is_answered_acked_and_gets_media() {
    let (mut ua, t0, inv) = calling();
    ua.handle(t0 + T1 / 2, reply(&inv, "180 Ringing", ""));
    assert_eq!(ua.calls(t0)[0].state, CallState::Ringing);
    // 45 s of ringing: nothing on the wire, the call still ringing (timer B
    // does not run in Proceeding).
    let quiet = run(
        &mut ua,
        t0,
        T1,
        Duration::from_secs(45),
        Duration::from_millis(250),
    );
    assert!(quiet.is_empty(), "{quiet:?}");
    assert_eq!(ua.calls(t0)[0].state, CallState::Ringing);
    let t = t0 + Duration::from_secs(45);
    let a = ua.handle(t, reply(&inv, "200 OK", SDP));
    let ack = find(&a, "ACK").expect("ACK");
    assert_eq!(ack.cseq(), Some((1, "ACK".into())));
    assert_ne!(
        ack.via_branch(),
        inv.via_branch(),
        "2xx ACK is a new transaction"
    );
    let (_, m) = started(&a).expect("media");
    assert_eq!(m.remote, "127.0.0.1:4000".parse::<SocketAddr>().unwrap());
    assert_eq!(ua.calls(t)[0].state, CallState::Active);
    // A retransmitted 200 is ACKed again, identically.
    let again = ua.handle(t + T1, reply(&inv, "200 OK", SDP));
    let acks: Vec<Action> = a
        .iter()
        .filter(|x| matches!(x, Action::Send { .. }))
        .cloned()
        .collect();
    assert_eq!(again, acks, "the same ACK, byte for byte");
}

#[test]
fn timer_b_fails_an_unanswered_invite_with_408() {
    let (mut ua, t0, _) = calling();
    let r = run(
        &mut ua,
        t0,
        Duration::ZERO,
        64 * T1,
        Duration::from_millis(50),
    );
    assert_eq!(send_times(&r), vec![500, 1500, 3500, 7500, 15500, 31500]);
    let last = &r.last().unwrap().1;
    assert_eq!(ended_codes(last), vec![408]);
    assert!(ua.calls(t0).is_empty());
}

#[test]
fn cancel_before_any_provisional_waits_for_one() {
    let (mut ua, t0, inv) = calling();
    // Hang up at once: no CANCEL yet (RFC 3261 9.1), the INVITE keeps being retransmitted.
    let a = ua.handle(
        t0 + Duration::from_millis(100),
        Input::Command(Command::Hangup(None)),
    );
    assert!(find(&a, "CANCEL").is_none());
    assert_eq!(ua.calls(t0)[0].state, CallState::Terminating);
    assert_eq!(methods(&ua.handle(t0 + T1, Input::Tick)), vec!["INVITE"]);
    // The 180 comes: now the CANCEL, on the INVITE's branch with its CSeq number.
    let a = ua.handle(t0 + T1 + T1 / 2, reply(&inv, "180 Ringing", ""));
    let cancel = find(&a, "CANCEL").expect("CANCEL after the provisional");
    assert_eq!(cancel.via_branch(), inv.via_branch());
    assert_eq!(cancel.cseq(), Some((1, "CANCEL".into())));
    assert_eq!(cancel.uri, inv.uri);
    assert_eq!(cancel.to_tag(), None, "the INVITE's To");
    // 200 to the CANCEL, 487 to the INVITE: ACKed, the call ends.
    ua.handle(
        t0 + 2 * T1,
        dgram(response_to(&cancel, "200 OK", Some("bob9"), "", "")),
    );
    let a = ua.handle(t0 + 2 * T1, reply(&inv, "487 Request Terminated", ""));
    let ack = find(&a, "ACK").expect("ACK of the 487");
    assert_eq!(ack.via_branch(), inv.via_branch());
    assert_eq!(ended_codes(&a), vec![487]);
    assert!(ua.calls(t0).is_empty());
}

#[test]
fn cancel_before_any_response_never_sends_cancel_and_ends_on_timer_b() {
    let (mut ua, t0, _) = calling();
    ua.handle(t0, Input::Command(Command::Hangup(None)));
    let r = run(
        &mut ua,
        t0,
        Duration::ZERO,
        64 * T1,
        Duration::from_millis(100),
    );
    assert!(r.iter().all(|(_, a)| find(a, "CANCEL").is_none()));
    assert_eq!(ended_codes(&r.last().unwrap().1), vec![408]);
    assert!(ua.calls(t0).is_empty());
}

#[test]
fn a_2xx_after_cancel_is_acked_and_ended_with_bye() {
    let (mut ua, t0, inv) = calling();
    ua.handle(t0, reply(&inv, "180 Ringing", ""));
    let a = ua.handle(t0 + T1, Input::Command(Command::Hangup(None)));
    let cancel = find(&a, "CANCEL").expect("CANCEL");
    // The callee answered before the CANCEL reached it.
    ua.handle(
        t0 + T1,
        dgram(response_to(&cancel, "200 OK", Some("bob9"), "", "")),
    );
    let a = ua.handle(t0 + 2 * T1, reply(&inv, "200 OK", SDP));
    let ack = find(&a, "ACK").expect("ACK");
    let bye = find(&a, "BYE").expect("BYE");
    assert_eq!(ack.to_tag().as_deref(), Some("bob9"));
    assert_eq!(bye.to_tag().as_deref(), Some("bob9"));
    assert_eq!(bye.cseq(), Some((2, "BYE".into())));
    assert!(started(&a).is_none(), "no media for a cancelled call");
    let a = ua.handle(
        t0 + 3 * T1,
        dgram(response_to(&bye, "200 OK", None, "", "")),
    );
    assert!(call_ended(&a));
    assert!(ua.calls(t0).is_empty());
}

#[test]
fn no_final_response_64_t1_after_cancel_gives_the_call_up() {
    let (mut ua, t0, inv) = calling();
    ua.handle(t0, reply(&inv, "180 Ringing", ""));
    ua.handle(t0 + T1, Input::Command(Command::Hangup(None)));
    let r = run(&mut ua, t0, T1, T1 + 64 * T1, Duration::from_millis(100));
    assert!(r.iter().any(|(t, a)| call_ended(a) && *t >= T1 + 64 * T1));
    assert!(ua.calls(t0).is_empty());
}

#[test]
fn an_outgoing_call_rings_past_the_incoming_ring_timeout_and_is_cancelled_at_3_min() {
    let mut c = cfg();
    c.ring_timeout = Duration::from_secs(60);
    let mut ua = new_ua(c);
    let t0 = Instant::now();
    let inv = find(
        &ua.handle(
            t0,
            Input::Command(Command::Call("sip:alice@127.0.0.1:5080".into())),
        ),
        "INVITE",
    )
    .unwrap();
    ua.handle(t0, reply(&inv, "180 Ringing", ""));
    // Past the incoming ring timeout (60 s): still ringing, phones ring longer.
    let quiet = run(
        &mut ua,
        t0,
        Duration::ZERO,
        Duration::from_secs(179),
        Duration::from_secs(1),
    );
    assert!(quiet.iter().all(|(_, a)| find(a, "CANCEL").is_none()));
    assert_eq!(ua.calls(t0)[0].state, CallState::Ringing);
    // 3 min (RFC 3261 timer C): given up with CANCEL.
    let t = t0 + Duration::from_secs(180);
    let a = ua.handle(t, Input::Tick);
    let cancel = find(&a, "CANCEL").expect("CANCEL after 3 min");
    ua.handle(
        t,
        dgram(response_to(&cancel, "200 OK", Some("bob9"), "", "")),
    );
    let a = ua.handle(t, reply(&inv, "487 Request Terminated", ""));
    assert!(a.iter().any(|x| matches!(x, Action::Event(Event::Call { state: CallState::Ended, code: Some(487), reason: Some(r), .. }) if r.contains("ring timeout"))), "{a:?}");
}

#[test]
fn a_second_fork_2xx_is_acked_and_byed() {
    let (mut ua, t0, inv) = calling();
    ua.handle(t0, reply(&inv, "200 OK", SDP));
    let fork = response_to(
        &inv,
        "200 OK",
        Some("fork2"),
        "Contact: <sip:alice@127.0.0.1:5090>\r\n",
        SDP,
    );
    let a = ua.handle(t0 + T1, dgram(fork));
    let ack = find(&a, "ACK").expect("ACK of the fork");
    let bye = find(&a, "BYE").expect("BYE of the fork");
    assert_eq!(ack.to_tag().as_deref(), Some("fork2"));
    assert_eq!(bye.to_tag().as_deref(), Some("fork2"));
    assert_eq!(bye.uri, "sip:alice@127.0.0.1:5090");
    assert!(started(&a).is_none());
    assert_eq!(
        ua.calls(t0)[0].state,
        CallState::Active,
        "the first dialog stays"
    );
}

fn ringing_incoming(auto: Option<Duration>, extra_header: &str) -> (Ua, Instant) {
    let mut c = cfg();
    c.auto_answer = auto;
    let mut ua = new_ua(c);
    let t0 = Instant::now();
    let inv = String::from_utf8(request("INVITE", "in1", "z9hG4bKin1", 1, None, SDP))
        .unwrap()
        .replace(
            "Max-Forwards: 70\r\n",
            &format!("Max-Forwards: 70\r\n{extra_header}"),
        );
    let a = ua.handle(t0, dgram(inv.into_bytes()));
    assert_eq!(statuses(&a), vec![100, 180]);
    (ua, t0)
}

#[test]
fn an_unanswered_incoming_call_gets_480_at_the_ring_timeout() {
    let (mut ua, t0) = ringing_incoming(None, "");
    assert!(statuses(&ua.handle(t0 + Duration::from_secs(59), Input::Tick)).is_empty());
    let a = ua.handle(t0 + Duration::from_secs(60), Input::Tick);
    assert_eq!(statuses(&a), vec![480]);
    assert_eq!(ended_codes(&a), vec![480]);
    assert!(ua.calls(t0).is_empty());
    // The 480 is retransmitted (timer G) until the ACK.
    assert_eq!(
        statuses(&ua.handle(t0 + Duration::from_secs(60) + T1, Input::Tick)),
        vec![480]
    );
}

#[test]
fn the_invite_expires_header_ends_it_with_487() {
    let (mut ua, t0) = ringing_incoming(None, "Expires: 10\r\n");
    assert!(statuses(&ua.handle(t0 + Duration::from_secs(9), Input::Tick)).is_empty());
    let a = ua.handle(t0 + Duration::from_secs(10), Input::Tick);
    assert_eq!(statuses(&a), vec![487]);
    assert_eq!(ended_codes(&a), vec![487]);
}

#[test]
fn an_incoming_call_rings_45_s_then_the_user_answers() {
    let (mut ua, t0) = ringing_incoming(None, "");
    let t = t0 + Duration::from_secs(45);
    assert!(run(
        &mut ua,
        t0,
        Duration::ZERO,
        Duration::from_secs(45),
        Duration::from_secs(1)
    )
    .is_empty());
    let a = ua.handle(t, Input::Command(Command::Answer(None)));
    assert_eq!(statuses(&a), vec![200]);
}

#[test]
fn cancel_of_a_ringing_incoming_call_and_cancel_that_matches_nothing() {
    let (mut ua, t0) = ringing_incoming(None, "");
    let a = ua.handle(
        t0,
        dgram(request("CANCEL", "in1", "z9hG4bKother", 1, None, "")),
    );
    assert_eq!(statuses(&a), vec![481]);
    let a = ua.handle(
        t0 + T1,
        dgram(request("CANCEL", "in1", "z9hG4bKin1", 1, None, "")),
    );
    assert_eq!(statuses(&a), vec![200, 487]);
    assert_eq!(ended_codes(&a), vec![487]);
    // A CANCEL retransmission: the 200 again; the INVITE's retransmission: the 487 again.
    assert_eq!(
        statuses(&ua.handle(
            t0 + T1,
            dgram(request("CANCEL", "in1", "z9hG4bKin1", 1, None, ""))
        )),
        vec![200]
    );
    assert_eq!(
        statuses(&ua.handle(
            t0 + T1,
            dgram(request("INVITE", "in1", "z9hG4bKin1", 1, None, SDP))
        )),
        vec![487]
    );
}

const AV: &str = "v=0\r\no=- 9 9 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n\
m=video 4002 RTP/AVP 96\r\na=rtpmap:96 H264/90000\r\na=inactive\r\n\
m=audio 4000 RTP/AVP 8 0 101\r\na=rtpmap:101 telephone-event/8000\r\n\
m=audio 4004 RTP/SAVP 0\r\na=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:WVNfX19zZW1jdGwgKCkgewkyMjA7fQp9CnVubGVz\r\n";

#[test]
fn a_multi_m_line_offer_gets_every_line_back_in_order() {
    let mut ua = new_ua(cfg());
    let t0 = Instant::now();
    let a = ua.handle(t0, dgram(request("INVITE", "av", "z9hG4bKav", 1, None, AV)));
    let ok = find_status(&a, 200).expect("200");
    let ans = SessionDescription::parse(&ok.body).unwrap();
    let lines: Vec<(String, u16, String)> = ans
        .media
        .iter()
        .map(|m| (m.kind.clone(), m.port, m.proto.clone()))
        .collect();
    assert_eq!(
        lines,
        vec![
            ("video".into(), 0, "RTP/AVP".into()),
            ("audio".into(), 40000, "RTP/AVP".into()),
            ("audio".into(), 0, "RTP/SAVP".into()),
        ]
    );
    // The video's a=inactive stays with the video.
    assert_eq!(ans.media[1].direction(&ans), Direction::SendRecv);
    assert_eq!(ans.media[1].codecs()[0].0, 8, "the offerer's first codec");
    let tag = ok.to_tag().unwrap();
    let a = ua.handle(
        t0,
        dgram(request("ACK", "av", "z9hG4bKava", 1, Some(&tag), "")),
    );
    let (_, m) = started(&a).unwrap();
    assert_eq!((m.remote.port(), m.direction), (4000, Direction::SendRecv));
}

#[test]
fn an_offer_with_only_savp_audio_is_refused_488() {
    let mut ua = new_ua(cfg());
    let only_savp = "v=0\r\nc=IN IP4 127.0.0.1\r\nm=audio 4000 RTP/SAVP 0\r\n";
    let a = ua.handle(
        Instant::now(),
        dgram(request("INVITE", "sv", "z9hG4bKsv", 1, None, only_savp)),
    );
    assert_eq!(statuses(&a), vec![488]);
    let w = find_status(&a, 488)
        .unwrap()
        .header("warning")
        .unwrap()
        .to_string();
    assert!(w.contains("SRTP"), "{w}");
}

const SRTP_KEY: &str = "WVNfX19zZW1jdGwgKCkgewkyMjA7fQp9CnVubGVz";

fn srtp_cfg(mode: voipbridge::srtp::sdes::SrtpMode) -> voipbridge::sip::ua::UaConfig {
    let mut c = cfg();
    c.srtp = mode;
    c.sdes_allowed = true;
    c
}

#[test]
fn mandatory_srtp_refuses_a_plain_offer_488_and_answers_savp_with_keys_into_the_media() {
    use voipbridge::srtp::sdes::SrtpMode;
    let mut ua = new_ua(srtp_cfg(SrtpMode::Mandatory));
    let t0 = Instant::now();
    let a = ua.handle(
        t0,
        dgram(request("INVITE", "pl", "z9hG4bKpl", 1, None, SDP)),
    );
    assert_eq!(statuses(&a), vec![488]);
    let w = find_status(&a, 488)
        .unwrap()
        .header("warning")
        .unwrap()
        .to_string();
    assert!(w.contains("mandatory"), "{w}");
    assert!(started(&a).is_none());

    let savp = format!(
        "v=0\r\nc=IN IP4 127.0.0.1\r\nm=audio 4000 RTP/SAVP 0\r\na=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:{SRTP_KEY}\r\n"
    );
    let a = ua.handle(
        t0,
        dgram(request("INVITE", "sv", "z9hG4bKsv", 1, None, &savp)),
    );
    let ok = find_status(&a, 200).expect("200");
    let ans = SessionDescription::parse(&ok.body).unwrap();
    assert_eq!(ans.media[0].proto, "RTP/SAVP");
    let line = ans.media[0]
        .attr("crypto")
        .expect("a=crypto in the answer")
        .to_string();
    assert!(
        line.starts_with("1 AES_CM_128_HMAC_SHA1_80 inline:"),
        "{line}"
    );
    let tag = ok.to_tag().unwrap();
    let a = ua.handle(
        t0,
        dgram(request("ACK", "sv", "z9hG4bKsva", 1, Some(&tag), "")),
    );
    let (_, m) = started(&a).expect("media");
    let c = m.crypto.as_ref().expect("SRTP keys in the media offer");
    assert_eq!(&c.remote.bytes()[..4], b"YS__");
    assert_eq!(
        voipbridge::srtp::sdes::format(1, c.suite, &c.local),
        line,
        "we send with the key we answered"
    );
    // Nothing the UA emits shows a key in Debug.
    assert!(!format!("{a:?}").contains(SRTP_KEY));
    assert!(!format!("{a:?}").contains(&line[33..]));
}

#[test]
fn srtp_keys_are_kept_across_re_invites_unless_the_peer_changes_its_own() {
    use voipbridge::srtp::sdes::SrtpMode;
    let mut ua = new_ua(srtp_cfg(SrtpMode::Mandatory));
    let t0 = Instant::now();
    let offer = |key: &str, dir: &str| {
        format!(
            "v=0\r\nc=IN IP4 127.0.0.1\r\nm=audio 4000 RTP/SAVP 0\r\na=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:{key}\r\na={dir}\r\n"
        )
    };
    let a = ua.handle(
        t0,
        dgram(request(
            "INVITE",
            "rk",
            "z9hG4bKrk",
            1,
            None,
            &offer(SRTP_KEY, "sendrecv"),
        )),
    );
    let ok = find_status(&a, 200).expect("200");
    let first = SessionDescription::parse(&ok.body).unwrap().media[0]
        .attr("crypto")
        .unwrap()
        .to_string();
    let tag = ok.to_tag().unwrap();
    let a = ua.handle(
        t0,
        dgram(request("ACK", "rk", "z9hG4bKrka", 1, Some(&tag), "")),
    );
    media_done(&mut ua, t0, &a);
    // The peer puts us on hold with the same key: same key back, no restart.
    let hold = ua.handle(
        t0 + T1,
        dgram(request(
            "INVITE",
            "rk",
            "z9hG4bKrk2",
            2,
            Some(&tag),
            &offer(SRTP_KEY, "sendonly"),
        )),
    );
    let ok = find_status(&hold, 200).expect("200 to the hold");
    assert_eq!(
        SessionDescription::parse(&ok.body).unwrap().media[0]
            .attr("crypto")
            .unwrap(),
        first
    );
    let a = ua.handle(
        t0 + T1,
        dgram(request("ACK", "rk", "z9hG4bKrk2a", 2, Some(&tag), "")),
    );
    assert!(
        !hold
            .iter()
            .chain(&a)
            .any(|x| matches!(x, Action::StopMedia(_))),
        "{hold:?} {a:?}"
    );
    // The hold reached the media as a direction change.
    assert!(
        hold.iter()
            .chain(&a)
            .any(|x| matches!(x, Action::UpdateMedia(_, _, Direction::RecvOnly))),
        "{hold:?} {a:?}"
    );
    // Our own hold: the re-offer carries our key in use, alone.
    let a = ua.handle(t0 + 2 * T1, Input::Command(Command::Hold(None, true)));
    let re = find(&a, "INVITE").expect("re-INVITE");
    let lines: Vec<String> = SessionDescription::parse(&re.body).unwrap().media[0]
        .attributes
        .iter()
        .filter(|x| x.name == "crypto")
        .filter_map(|x| x.value.clone())
        .collect();
    assert_eq!(lines.len(), 1);
    assert_eq!(
        lines[0].split(' ').nth(2),
        first.split(' ').nth(2),
        "same key offered"
    );
    let _ = ua.handle(
        t0 + 2 * T1,
        reply(&re, "200 OK", &offer(SRTP_KEY, "recvonly")),
    );
    // The peer re-keys: we answer with a fresh key and the media restarts.
    let other = "QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVphYmNk";
    let inv = ua.handle(
        t0 + 4 * T1,
        dgram(request(
            "INVITE",
            "rk",
            "z9hG4bKrk3",
            3,
            Some(&tag),
            &offer(other, "sendrecv"),
        )),
    );
    let ok = find_status(&inv, 200).expect("200 to the re-key");
    let now = SessionDescription::parse(&ok.body).unwrap().media[0]
        .attr("crypto")
        .unwrap()
        .to_string();
    assert_ne!(now.split(' ').nth(2), first.split(' ').nth(2));
    let a = ua.handle(
        t0 + 4 * T1,
        dgram(request("ACK", "rk", "z9hG4bKrk3a", 3, Some(&tag), "")),
    );
    assert!(
        inv.iter()
            .chain(&a)
            .any(|x| matches!(x, Action::StopMedia(_))),
        "{inv:?} {a:?}"
    );
}

#[test]
fn without_secure_signalling_savp_is_refused_and_offers_carry_no_keys() {
    use voipbridge::srtp::sdes::SrtpMode;
    let mut c = srtp_cfg(SrtpMode::Optional);
    c.sdes_allowed = false;
    let mut ua = new_ua(c);
    let t0 = Instant::now();
    let savp = format!(
        "v=0\r\nc=IN IP4 127.0.0.1\r\nm=audio 4000 RTP/SAVP 0\r\na=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:{SRTP_KEY}\r\n"
    );
    let a = ua.handle(
        t0,
        dgram(request("INVITE", "sv", "z9hG4bKsv", 1, None, &savp)),
    );
    assert_eq!(statuses(&a), vec![488]);
    let a = ua.handle(
        t0,
        Input::Command(Command::Call("sip:alice@127.0.0.1:5080".into())),
    );
    let inv = find(&a, "INVITE").expect("INVITE");
    assert!(!String::from_utf8_lossy(&inv.body).contains("crypto"));
}

#[test]
fn our_mandatory_offer_is_savp_and_the_answer_keys_reach_the_media() {
    use voipbridge::srtp::sdes::SrtpMode;
    let mut ua = new_ua(srtp_cfg(SrtpMode::Mandatory));
    let t0 = Instant::now();
    let a = ua.handle(
        t0,
        Input::Command(Command::Call("sip:alice@127.0.0.1:5080".into())),
    );
    let inv = find(&a, "INVITE").expect("INVITE");
    let off = SessionDescription::parse(&inv.body).unwrap();
    assert_eq!(off.media[0].proto, "RTP/SAVP");
    let ours: Vec<String> = off.media[0]
        .attributes
        .iter()
        .filter(|x| x.name == "crypto")
        .filter_map(|x| x.value.clone())
        .collect();
    assert_eq!(ours.len(), 2);
    // A plain answer to a mandatory offer: the call is ended, no media.
    let plain = ua.handle(t0 + T1, reply(&inv, "200 OK", SDP));
    assert!(started(&plain).is_none());
    assert!(find(&plain, "BYE").is_some(), "{plain:?}");

    let mut ua = new_ua(srtp_cfg(SrtpMode::Mandatory));
    let a = ua.handle(
        t0,
        Input::Command(Command::Call("sip:alice@127.0.0.1:5080".into())),
    );
    let inv = find(&a, "INVITE").expect("INVITE");
    let off = SessionDescription::parse(&inv.body).unwrap();
    let tag2 = off.media[0]
        .attributes
        .iter()
        .filter(|x| x.name == "crypto")
        .filter_map(|x| x.value.clone())
        .nth(1)
        .unwrap();
    let answer = format!(
        "v=0\r\nc=IN IP4 127.0.0.1\r\nm=audio 4000 RTP/SAVP 0\r\na=crypto:2 AES_CM_128_HMAC_SHA1_32 inline:{SRTP_KEY}\r\n"
    );
    let a = ua.handle(t0 + T1, reply(&inv, "200 OK", &answer));
    assert!(find(&a, "ACK").is_some());
    let (_, m) = started(&a).expect("media");
    let c = m.crypto.as_ref().expect("SRTP");
    assert_eq!(voipbridge::srtp::sdes::format(2, c.suite, &c.local), tag2);
    assert_eq!(&c.remote.bytes()[..4], b"YS__");
}

/// An answered incoming call, ACKed, media started: (ua, t0, our To tag).
fn active_incoming(slots: usize) -> (Ua, Instant, String) {
    let mut c = cfg();
    c.slots = slots;
    let mut ua = new_ua(c);
    let t0 = Instant::now();
    let a = ua.handle(
        t0,
        dgram(request("INVITE", "ac", "z9hG4bKac", 1, None, SDP)),
    );
    let tag = find_status(&a, 200).unwrap().to_tag().unwrap();
    let a = ua.handle(
        t0,
        dgram(request("ACK", "ac", "z9hG4bKaca", 1, Some(&tag), "")),
    );
    media_done(&mut ua, t0, &a);
    (ua, t0, tag)
}

#[test]
fn call_peers_list_the_live_calls_next_hops_for_the_ban_table() {
    let mut ua = new_ua(cfg());
    let t0 = Instant::now();
    assert!(ua.call_peers().is_empty());
    let a = ua.handle(
        t0,
        dgram(request("INVITE", "cp", "z9hG4bKcp", 1, None, SDP)),
    );
    // Ringing/answered but not confirmed: not a live call yet.
    assert!(ua.call_peers().is_empty());
    let tag = find_status(&a, 200).unwrap().to_tag().unwrap();
    ua.handle(
        t0,
        dgram(request("ACK", "cp", "z9hG4bKcpa", 1, Some(&tag), "")),
    );
    assert_eq!(
        ua.call_peers(),
        vec![std::net::IpAddr::from([127, 0, 0, 1])]
    );
    let a = ua.handle(
        t0 + T1,
        dgram(request("BYE", "cp", "z9hG4bKcpb", 2, Some(&tag), "")),
    );
    assert_eq!(statuses(&a), vec![200]);
    assert!(ua.call_peers().is_empty());
}

#[test]
fn the_substream_is_free_as_soon_as_the_media_stopped_not_when_bye_is_answered() {
    let (mut ua, t0, _) = active_incoming(1);
    let a = ua.handle(t0 + T1, Input::Command(Command::Hangup(None)));
    assert!(find(&a, "BYE").is_some());
    assert!(a.contains(&Action::StopMedia("ac".into())));
    // The BYE is not answered yet; the media is still stopping: busy.
    let busy = ua.handle(
        t0 + T1,
        dgram(request("INVITE", "n1", "z9hG4bKn1", 1, None, SDP)),
    );
    assert_eq!(statuses(&busy), vec![486]);
    // The media stopped: the substream is free although the BYE is pending.
    ua.handle(
        t0 + T1,
        Input::MediaStopped {
            call_id: "ac".into(),
        },
    );
    assert_eq!(ua.calls(t0)[0].state, CallState::Terminating);
    assert!(!ua.calls(t0)[0].holds_substream);
    let next = ua.handle(
        t0 + 2 * T1,
        dgram(request("INVITE", "n2", "z9hG4bKn2", 1, None, SDP)),
    );
    let to_n2: Vec<u16> = sent(&next)
        .iter()
        .filter(|m| m.call_id() == "n2")
        .filter_map(|m| m.status)
        .collect();
    assert_eq!(to_n2, vec![100, 180, 200]);
}

#[test]
fn media_that_fails_to_start_hangs_up_with_a_reason_and_an_event() {
    let mut ua = new_ua(cfg());
    let t0 = Instant::now();
    let a = ua.handle(
        t0,
        dgram(request("INVITE", "mf", "z9hG4bKmf", 1, None, SDP)),
    );
    let tag = find_status(&a, 200).unwrap().to_tag().unwrap();
    ua.handle(
        t0,
        dgram(request("ACK", "mf", "z9hG4bKmfa", 1, Some(&tag), "")),
    );
    let a = ua.handle(
        t0,
        Input::MediaStarted {
            call_id: "mf".into(),
            result: Err("audio device hw:VoIP,1,0: No such device".into()),
        },
    );
    assert!(a.iter().any(|x| matches!(x, Action::Event(Event::MediaFailed { call_id, reason }) if call_id == "mf" && reason.contains("No such device"))));
    let bye = find(&a, "BYE").expect("BYE");
    let reason = bye.header("reason").expect("Reason");
    assert!(
        reason.starts_with("SIP;cause=500;text=\"media failed"),
        "{reason}"
    );
    assert!(
        !a.iter().any(|x| matches!(x, Action::StopMedia(_))),
        "nothing to stop"
    );
    assert!(!ua.calls(t0)[0].holds_substream);
}

#[test]
fn rtp_timeout_and_device_errors_end_the_call() {
    for (ev, cause) in [
        (MediaEvent::RtpTimeout, "cause=408"),
        (MediaEvent::DeviceError("xrun storm".into()), "cause=500"),
    ] {
        let (mut ua, t0, _) = active_incoming(1);
        let a = ua.handle(
            t0,
            Input::Media {
                call_id: "ac".into(),
                event: ev,
            },
        );
        let bye = find(&a, "BYE").expect("BYE");
        assert!(bye.header("reason").unwrap().contains(cause));
        assert!(a.contains(&Action::StopMedia("ac".into())));
    }
    let (mut ua, t0, _) = active_incoming(1);
    let a = ua.handle(
        t0,
        Input::Media {
            call_id: "ac".into(),
            event: MediaEvent::DtmfReceived('7'),
        },
    );
    assert!(a.contains(&Action::Event(Event::Dtmf {
        call_id: "ac".into(),
        digit: '7'
    })));
}

#[test]
fn our_hold_answered_inactive_makes_us_inactive() {
    let (mut ua, t0, tag) = active_incoming(1);
    let a = ua.handle(t0 + T1, Input::Command(Command::Hold(None, true)));
    let reinv = find(&a, "INVITE").unwrap();
    assert!(String::from_utf8_lossy(&reinv.body).contains("a=sendonly"));
    assert_eq!(reinv.from_tag().as_deref(), Some(tag.as_str()));
    let inactive = SDP.to_string() + "a=inactive\r\n";
    let a = ua.handle(
        t0 + T1,
        dgram(response_to(&reinv, "200 OK", None, "", &inactive)),
    );
    assert!(find(&a, "ACK").is_some());
    assert!(
        a.contains(&Action::UpdateMedia(
            "ac".into(),
            "127.0.0.1:4000".parse().unwrap(),
            Direction::Inactive
        )),
        "{a:?}"
    );
    assert_eq!(ua.calls(t0)[0].state, CallState::Held);
}

#[test]
fn a_reinvite_that_changes_the_codec_restarts_the_media() {
    let (mut ua, t0, tag) = active_incoming(1);
    let pcma = SDP.replace("RTP/AVP 0 8 101", "RTP/AVP 8 101");
    let a = ua.handle(
        t0 + T1,
        dgram(request("INVITE", "ac", "z9hG4bKre", 2, Some(&tag), &pcma)),
    );
    assert_eq!(statuses(&a), vec![200]);
    assert!(a.contains(&Action::StopMedia("ac".into())));
    let a = ua.handle(
        t0 + T1,
        Input::MediaStopped {
            call_id: "ac".into(),
        },
    );
    let (_, m) = started(&a).expect("restarted");
    assert_eq!(m.payload_type, 8);
}

#[test]
fn hanging_up_before_the_ack_waits_for_it_then_sends_bye() {
    let mut ua = new_ua(cfg());
    let t0 = Instant::now();
    let a = ua.handle(
        t0,
        dgram(request("INVITE", "ea", "z9hG4bKea", 1, None, SDP)),
    );
    let tag = find_status(&a, 200).unwrap().to_tag().unwrap();
    // RFC 3261 15: no BYE before the ACK of our 2xx.
    let a = ua.handle(t0, Input::Command(Command::Hangup(None)));
    assert!(find(&a, "BYE").is_none());
    assert_eq!(ua.calls(t0)[0].state, CallState::Terminating);
    let a = ua.handle(
        t0 + T1,
        dgram(request("ACK", "ea", "z9hG4bKeaa", 1, Some(&tag), "")),
    );
    assert!(find(&a, "BYE").is_some());
    assert!(started(&a).is_none(), "no media for a call already hung up");
}

#[test]
fn a_merged_invite_gets_482_and_an_offerless_reinvite_gets_our_offer() {
    let mut c = cfg();
    c.auto_answer = None;
    let mut ua = new_ua(c);
    let t0 = Instant::now();
    ua.handle(
        t0,
        dgram(request("INVITE", "mg", "z9hG4bKmg1", 1, None, SDP)),
    );
    // The same request by another path (another branch): 8.2.2.2.
    let a = ua.handle(
        t0,
        dgram(request("INVITE", "mg", "z9hG4bKmg2", 1, None, SDP)),
    );
    assert_eq!(statuses(&a), vec![482]);
    assert_eq!(ua.calls(t0).len(), 1);
    // Answer, confirm; then an offerless re-INVITE: our offer in the 200, its answer in the ACK.
    let a = ua.handle(t0, Input::Command(Command::Answer(None)));
    let tag = find_status(&a, 200).unwrap().to_tag().unwrap();
    let a = ua.handle(
        t0,
        dgram(request("ACK", "mg", "z9hG4bKmga", 1, Some(&tag), "")),
    );
    media_done(&mut ua, t0, &a);
    let a = ua.handle(
        t0 + T1,
        dgram(request("INVITE", "mg", "z9hG4bKmg3", 2, Some(&tag), "")),
    );
    let ok = find_status(&a, 200).expect("200 with our offer");
    let offer = SessionDescription::parse(&ok.body).unwrap();
    assert_eq!(
        offer.media[0].codecs().len(),
        3,
        "every codec and telephone-event"
    );
    let pcma = SDP.replace("RTP/AVP 0 8 101", "RTP/AVP 8");
    let a = ua.handle(
        t0 + T1,
        dgram(request("ACK", "mg", "z9hG4bKmg3a", 2, Some(&tag), &pcma)),
    );
    assert!(
        a.contains(&Action::StopMedia("mg".into())),
        "PCMU -> PCMA restarts the media"
    );
}

#[test]
fn other_uri_schemes_get_416_and_update_in_a_dialog_405() {
    let (mut ua, t0, tag) = active_incoming(1);
    let tel = String::from_utf8(request("OPTIONS", "t1", "z9hG4bKt1", 1, None, ""))
        .unwrap()
        .replace("OPTIONS sip:bridge@127.0.0.1:5070", "OPTIONS tel:+15551234");
    assert_eq!(statuses(&ua.handle(t0, dgram(tel.into_bytes()))), vec![416]);
    let upd = ua.handle(
        t0,
        dgram(request("UPDATE", "ac", "z9hG4bKu1", 2, Some(&tag), "")),
    );
    assert_eq!(statuses(&upd), vec![405]);
    assert!(find_status(&upd, 405).unwrap().header("allow").is_some());
}
