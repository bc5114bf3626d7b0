//! snd-voip-aec held to issue 18's figures on rtos-sim's acoustic path, in
//! virtual time (the same scenarios as `aec-eval`; that binary prints the
//! numbers, this test fails when one drops below its threshold). Each
//! threshold is also checked to fail without a canceller.

use aec_eval::backends;
use aec_eval::scenario::{self, Figures, Scenario};

fn run(name: &str, backend: &str) -> Figures {
    let sc: Scenario = scenario::all()
        .into_iter()
        .find(|s| s.name == name)
        .expect("scenario");
    let make = || backends::make(backend, scenario::BLOCK).expect("backend");
    let lat = scenario::latency(&make);
    let mut b = make();
    let f = scenario::run(&sc, b.as_mut(), lat).expect("run");
    eprintln!("{f:?}");
    f
}

#[test]
fn erle_after_two_seconds_is_30_db() {
    let f = run("converge-60ms", "aec3");
    assert!(f.erle_2s_db.unwrap() >= 30.0, "{f:?}");
    assert!(f.converge_s.unwrap() <= 2.0, "{f:?}");
    let off = run("converge-60ms", "off");
    assert!(off.erle_2s_db.unwrap() < 1.0, "{off:?}");
    // The card's delays are not needed for 200 ms.
    let f = run("converge-200ms", "aec3");
    assert!(f.erle_2s_db.unwrap() >= 30.0, "{f:?}");
}

#[test]
fn double_talk_keeps_the_near_end_and_removes_the_echo() {
    let f = run("double-talk", "aec3");
    assert!(f.near_atten_db.unwrap() <= 3.0, "{f:?}");
    assert!(f.dt_echo_db.unwrap() >= 20.0, "{f:?}");
    let off = run("double-talk", "off");
    assert!(off.dt_echo_db.unwrap() < 20.0, "{off:?}");
}

#[test]
fn a_40_ms_delay_step_is_followed_within_two_seconds() {
    let f = run("delay-step-40ms", "aec3");
    assert!(f.recover_s.unwrap() <= 2.0, "{f:?}");
    assert!(f.erle_after_step_db.unwrap() >= 25.0, "{f:?}");
    assert!(run("delay-step-40ms", "off").recover_s.is_none());
}

#[test]
fn drift_of_300_ppm_either_way_keeps_25_db() {
    for s in ["drift+300ppm", "drift-300ppm"] {
        let f = run(s, "aec3");
        assert!(f.erle_2s_db.unwrap() >= 25.0, "{f:?}");
        assert!(f.below_25db.unwrap() <= 0.1, "{f:?}");
    }
}
