//! The fuzz targets' entry points (`voipbridge::fuzzing`) run by `cargo test`:
//! every committed seed (`fuzz/seeds/`) as it is, then proptest mutations of
//! the seeds (bytes flipped, inserted, deleted, cut, spliced) — the same
//! inputs libFuzzer starts from, without needing its toolchain.

use proptest::prelude::*;
use std::path::PathBuf;
use voipbridge::fuzzing;

fn seeds(target: &str) -> Vec<Vec<u8>> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/seeds")
        .join(target);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect();
    files.sort();
    files
        .iter()
        .map(|f| std::fs::read(f).unwrap_or_else(|e| panic!("{}: {e}", f.display())))
        .collect()
}

#[test]
fn every_sip_seed_passes_the_entry_point() {
    let s = seeds("sip_message");
    assert!(s.len() >= 20, "only {} SIP seeds", s.len());
    // The seeds mean something: most parse, some are refused.
    let parsed = s
        .iter()
        .filter(|d| voipbridge::sip::message::Message::parse(d).is_ok())
        .count();
    assert!(
        parsed >= 15 && parsed < s.len(),
        "{parsed} of {} parse",
        s.len()
    );
    for d in &s {
        fuzzing::sip_message(d);
    }
}

#[test]
fn every_sdp_seed_passes_the_entry_point() {
    let s = seeds("sdp");
    assert!(s.len() >= 5);
    let parsed = s
        .iter()
        .filter(|d| voipbridge::sip::sdp::SessionDescription::parse(d).is_ok())
        .count();
    assert!(
        parsed >= 3 && parsed < s.len(),
        "{parsed} of {} parse",
        s.len()
    );
    for d in &s {
        fuzzing::sdp(d);
    }
}

#[derive(Debug, Clone)]
enum Mutation {
    Flip(usize, u8),
    Insert(usize, Vec<u8>),
    Delete(usize, usize),
    Truncate(usize),
    Splice(usize, usize, usize),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    let token = prop_oneof![
        proptest::collection::vec(any::<u8>(), 1..8),
        Just(b"\r\n".to_vec()),
        Just(b"\r\n ".to_vec()),
        Just(b";".to_vec()),
        Just(b":".to_vec()),
        Just(b"<".to_vec()),
        Just(b"\"".to_vec()),
        Just(b"[::1]".to_vec()),
        Just(b"99999999999999999999".to_vec()),
        Just(b"Content-Length: 7\r\n".to_vec()),
        Just(b"m=audio 0 RTP/AVP 0\r\n".to_vec()),
    ];
    prop_oneof![
        (any::<usize>(), any::<u8>()).prop_map(|(i, b)| Mutation::Flip(i, b)),
        (any::<usize>(), token).prop_map(|(i, t)| Mutation::Insert(i, t)),
        (any::<usize>(), 1usize..40).prop_map(|(i, n)| Mutation::Delete(i, n)),
        any::<usize>().prop_map(Mutation::Truncate),
        (any::<usize>(), any::<usize>(), 1usize..200)
            .prop_map(|(a, b, n)| Mutation::Splice(a, b, n)),
    ]
}

fn mutate(seed: &[u8], other: &[u8], muts: &[Mutation]) -> Vec<u8> {
    let mut d = seed.to_vec();
    for m in muts {
        let at = |i: usize, len: usize| if len == 0 { 0 } else { i % (len + 1) };
        match m {
            Mutation::Flip(i, b) => {
                if !d.is_empty() {
                    let i = i % d.len();
                    d[i] ^= b | 1;
                }
            }
            Mutation::Insert(i, t) => {
                let i = at(*i, d.len());
                d.splice(i..i, t.iter().copied());
            }
            Mutation::Delete(i, n) => {
                let i = at(*i, d.len());
                let end = (i + n).min(d.len());
                d.drain(i..end);
            }
            Mutation::Truncate(i) => d.truncate(at(*i, d.len())),
            Mutation::Splice(a, b, n) => {
                let a = at(*a, d.len());
                let b = at(*b, other.len());
                let end = (b + n).min(other.len());
                d.splice(a..a, other[b..end].iter().copied());
            }
        }
    }
    d
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(600))]

    #[test]
    fn mutated_sip_seeds_never_break_an_invariant(
        pick in any::<(usize, usize)>(),
        muts in proptest::collection::vec(mutation(), 1..6),
    ) {
        let s = seeds("sip_message");
        let d = mutate(&s[pick.0 % s.len()], &s[pick.1 % s.len()], &muts);
        fuzzing::sip_message(&d);
    }

    #[test]
    fn mutated_sdp_seeds_never_break_an_invariant(
        pick in any::<(usize, usize)>(),
        muts in proptest::collection::vec(mutation(), 1..6),
    ) {
        let s = seeds("sdp");
        let d = mutate(&s[pick.0 % s.len()], &s[pick.1 % s.len()], &muts);
        fuzzing::sdp(&d);
    }
}

#[test]
fn every_sdes_seed_passes_the_entry_point() {
    let s = seeds("sdes");
    assert!(s.len() >= 8);
    let usable = s
        .iter()
        .filter(|d| {
            let t = String::from_utf8_lossy(d);
            let v = t.strip_prefix("a=crypto:").unwrap_or(&t).to_string();
            voipbridge::srtp::sdes::CryptoAttr::parse(&v).is_ok_and(|a| a.usable().is_some())
        })
        .count();
    assert!(
        usable >= 3 && usable < s.len(),
        "{usable} of {} usable",
        s.len()
    );
    for d in &s {
        fuzzing::sdes(d);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(600))]

    #[test]
    fn mutated_sdes_seeds_never_break_an_invariant(
        pick in any::<(usize, usize)>(),
        muts in proptest::collection::vec(mutation(), 1..6),
    ) {
        let s = seeds("sdes");
        let d = mutate(&s[pick.0 % s.len()], &s[pick.1 % s.len()], &muts);
        fuzzing::sdes(&d);
    }
}
