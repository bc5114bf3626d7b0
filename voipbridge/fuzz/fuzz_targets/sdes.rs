//! Arbitrary bytes through the SDES crypto attribute parser (RFC 4568),
//! the SRTP offer/answer and the key redaction of logs.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| voipbridge::fuzzing::sdes(data));
