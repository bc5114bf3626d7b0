//! Arbitrary bytes through the SIP parser, framer and user agent.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| voipbridge::fuzzing::sip_message(data));
