//! Fuzzing entry points, shared by the `cargo fuzz` targets
//! (`voipbridge/fuzz/`) and the seed-corpus/mutation test that `cargo test`
//! runs (`tests/fuzz_seeds.rs`). Each takes arbitrary bytes and panics only
//! when an invariant breaks; any input may be refused, none may crash.

use crate::media::{Codec, Direction};
use crate::sip::message::{salvage_request, Builder, Message};
use crate::sip::offer_answer::{self, LocalMedia};
use crate::sip::policy::Accept;
use crate::sip::sdp::{self, SessionDescription};
use crate::sip::stream::{error_response, StreamFramer};
use crate::sip::ua::{Action, Input, Transport, Ua, UaConfig};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

fn ua_config(transport: Transport, accept: Accept) -> UaConfig {
    let mut c = UaConfig::new(
        "sip:bridge@127.0.0.1",
        SocketAddr::from(([127, 0, 0, 1], 5070)),
    );
    c.password = "secret".into();
    c.expires = 600;
    c.accept = accept;
    c.transport = transport;
    c
}

fn check_sent(actions: &[Action], what: &str) {
    for a in actions {
        if let Action::Send { data, .. } = a {
            if let Err(e) = Message::parse(data) {
                panic!(
                    "{what}: we sent an unparsable message ({e}):\n{}",
                    String::from_utf8_lossy(data)
                );
            }
        }
    }
}

/// The SIP message path: the parser, the 400 salvage, the stream framer and
/// the whole user agent. Invariants: a parsed request's responses parse
/// back; every message the UA sends in reaction (at once and on its timers)
/// parses; the framer never yields more bytes than it got.
pub fn sip_message(data: &[u8]) {
    if let Ok(m) = Message::parse(data) {
        if m.method.is_some() {
            let resp = Builder::response_to(&m, 200, "OK", Some("fuzz")).build();
            if let Err(e) = Message::parse(&resp) {
                panic!(
                    "the response to a parsed request does not parse ({e}):\n{}",
                    String::from_utf8_lossy(&resp)
                );
            }
        }
    }
    let _ = salvage_request(data);

    let mut framer = StreamFramer::new(4096);
    framer.push(data);
    let mut framed = 0;
    while let Some(r) = framer.next_message() {
        match r {
            Ok(m) => framed += m.len(),
            Err(e) => {
                if let Some(resp) = error_response(&e) {
                    assert!(
                        Message::parse(&resp).is_ok(),
                        "framing error response does not parse"
                    );
                }
                break;
            }
        }
    }
    assert!(framed <= data.len(), "framer produced more than it got");

    let t0 = Instant::now();
    let from = SocketAddr::from(([127, 0, 0, 1], 5080));
    for (transport, accept) in [
        (Transport::Udp, Accept::Trusted),
        (Transport::Udp, Accept::Any),
        (Transport::Tcp, Accept::Any),
        (Transport::Tls, Accept::Trusted),
    ] {
        let mut ua = Ua::with_seed(ua_config(transport, accept), 1);
        let a = ua.handle(
            t0,
            Input::Datagram {
                from,
                data: data.to_vec(),
            },
        );
        check_sent(&a, "reaction");
        // Media the UA asked for reports back (started, then stopped).
        let mut follow = Vec::new();
        for x in &a {
            match x {
                Action::StartMedia(id, _) => follow.push(Input::MediaStarted {
                    call_id: id.clone(),
                    result: Ok(()),
                }),
                Action::StopMedia(id) => follow.push(Input::MediaStopped {
                    call_id: id.clone(),
                }),
                _ => {}
            }
        }
        for f in follow {
            check_sent(&ua.handle(t0, f), "media results");
        }
        // The same bytes again (a retransmission), then the timers.
        let a = ua.handle(
            t0 + Duration::from_millis(10),
            Input::Datagram {
                from,
                data: data.to_vec(),
            },
        );
        check_sent(&a, "retransmission");
        for s in [1, 3, 40, 70] {
            let a = ua.handle(t0 + Duration::from_secs(s), Input::Tick);
            check_sent(&a, "timers");
        }
    }
}

/// The SDP path: parse an offer; when it parses, the answer we would
/// write parses back with the offer's media sections in order (RFC 3264 6),
/// the accepted audio section on our port with the chosen codec, every
/// other section at port 0.
pub fn sdp(data: &[u8]) {
    let Ok(offer) = SessionDescription::parse(data) else {
        return;
    };
    let local = LocalMedia {
        ip: "127.0.0.1"
            .parse()
            .unwrap_or(std::net::Ipv4Addr::LOCALHOST.into()),
        port: 40000,
        codecs: vec![Codec::Pcmu, Codec::Pcma],
        ptime: 20,
        telephone_event: 101,
        srtp: crate::srtp::sdes::SrtpMode::Optional,
        sdes_allowed: true,
        keep: None,
    };
    let Ok((sections, chosen)) = offer_answer::answer(&offer, &local, Direction::SendRecv) else {
        return;
    };
    assert_eq!(
        sections.len(),
        offer.media.len(),
        "one answer section per offered one"
    );
    let body = sdp::write(1, 1, local.ip, &sections);
    let answer = match SessionDescription::parse(&body) {
        Ok(a) => a,
        Err(e) => panic!(
            "our answer does not parse ({e}):\n{}",
            String::from_utf8_lossy(&body)
        ),
    };
    assert_eq!(answer.media.len(), offer.media.len(), "answer sections");
    for (i, (a, o)) in answer.media.iter().zip(&offer.media).enumerate() {
        assert_eq!(a.kind, o.kind, "section {i} type");
        match &chosen {
            Some(n) if n.index == i => {
                assert_eq!(a.port, local.port, "accepted section port");
                assert_eq!(
                    a.codecs().first().copied(),
                    Some((n.payload_type, Some(n.codec))),
                    "answer codec"
                );
                assert_eq!(a.direction(&answer), n.direction, "answer direction");
            }
            _ => assert_eq!(a.port, 0, "section {i} declined"),
        }
    }
}

/// Arbitrary bytes as an `a=crypto` value (RFC 4568): the parser, the
/// answer under each mode, the offerer's reading of it as an answer, and
/// the log redaction. Whatever parses must format back to the same key,
/// and no key may survive [`crate::srtp::sdes::redact`].
pub fn sdes(data: &[u8]) {
    use crate::srtp::sdes::{self, CryptoAttr, SrtpMode};
    let text = String::from_utf8_lossy(data);
    let value = text.strip_prefix("a=crypto:").unwrap_or(&text);
    if let Ok(a) = CryptoAttr::parse(value) {
        assert!(!a.keys.is_empty(), "parsed without a key: {value:?}");
        if let Some((suite, key)) = a.usable() {
            let again = CryptoAttr::parse(&sdes::format(a.tag, suite, key)).expect("ours parses");
            assert_eq!(
                again.usable(),
                Some((suite, key)),
                "round trip of {value:?}"
            );
        }
    }
    for mode in [SrtpMode::Off, SrtpMode::Optional, SrtpMode::Mandatory] {
        for proto in ["RTP/AVP", "RTP/SAVP"] {
            if let Ok(ans) = sdes::answer(mode, true, proto, &[value]) {
                assert_eq!(ans.proto, proto, "the answer keeps the offer's protocol");
                assert_eq!(ans.crypto.is_some(), ans.srtp.is_some());
                if mode == SrtpMode::Mandatory {
                    assert!(ans.srtp.is_some(), "mandatory answered without SRTP");
                }
            }
        }
        let _ = sdes::offer(mode, true).accept_answer("RTP/SAVP", &[value]);
    }
    let red = sdes::redact(&text);
    if let Some(i) = red.find("inline:") {
        assert!(red[i + 7..].starts_with("<redacted>"), "{red:?}");
    }
}
