//! Fuzz target: xPL datagrams: `xpl::message::decode`, `encode` back, and the xPL devices' state they feed.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| dmg_fuzz::checks::xpl(data));
