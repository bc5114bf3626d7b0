//! Fuzzing entry points, shared by the `cargo fuzz` targets
//! (`voipbridge/fuzz/`) and the seed-corpus/mutation test that `cargo test`
//! runs (`tests/fuzz_seeds.rs`). Each takes arbitrary bytes and panics only
//! when an invariant breaks; any input may be refused, none may crash.

use crate::media::Codec;
use crate::sip::message::{salvage_request, Builder, Message};
use crate::sip::sdp::{self, Session};
use crate::sip::stream::{error_response, StreamFramer};
use crate::sip::ua::{Action, Input, Transport, Ua, UaConfig};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

fn ua_config(transport: Transport) -> UaConfig {
    UaConfig {
        aor: "sip:bridge@127.0.0.1".into(),
        registrar: None,
        username: "bridge".into(),
        password: "secret".into(),
        local: SocketAddr::from(([127, 0, 0, 1], 5070)),
        expires: 600,
        codecs: vec![Codec::Pcmu, Codec::Pcma],
        ptime: 20,
        auto_answer: Some(Duration::ZERO),
        allow_from: Vec::new(),
        rtp_base: 40000,
        slots: 1,
        t1: Duration::from_millis(500),
        t2: Duration::from_secs(4),
        transport,
    }
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
    for transport in [Transport::Udp, Transport::Tcp] {
        let mut ua = Ua::new(ua_config(transport));
        let a = ua.handle(
            t0,
            Input::Datagram {
                from,
                data: data.to_vec(),
            },
        );
        check_sent(&a, "reaction");
        for s in [1, 3, 40] {
            let a = ua.handle(t0 + Duration::from_secs(s), Input::Tick);
            check_sent(&a, "timers");
        }
    }
}

/// The SDP path: parse an offer; when it parses and has a codec of ours,
/// the answer we would write parses back with the same address and codec.
pub fn sdp(data: &[u8]) {
    let Ok(offer) = Session::parse(data) else {
        return;
    };
    let ours = [Codec::Pcmu, Codec::Pcma];
    let Ok((codec, pt)) = offer.choose(&ours) else {
        return;
    };
    let local = SocketAddr::from(([127, 0, 0, 1], 40000));
    let answer = sdp::write(
        1,
        1,
        local,
        &[(codec, pt)],
        offer.telephone_event,
        offer.ptime.unwrap_or(20),
        offer.direction.answer(),
    );
    match Session::parse(&answer) {
        Ok(a) => {
            assert_eq!(a.addr, local, "answer address");
            assert_eq!(a.choose(&ours), Ok((codec, pt)), "answer codec");
            assert_eq!(a.direction, offer.direction.answer(), "answer direction");
        }
        Err(e) => panic!(
            "our answer does not parse ({e}):\n{}",
            String::from_utf8_lossy(&answer)
        ),
    }
}
