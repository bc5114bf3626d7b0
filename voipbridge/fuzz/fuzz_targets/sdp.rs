//! Arbitrary bytes through the SDP parser and offer/answer.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| voipbridge::fuzzing::sdp(data));
