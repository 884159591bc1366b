//! Fuzz target: Messages on the SUB socket: `wire::decode_status` through `Manager::handle_status_message` and the publications.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| dmg_fuzz::checks::status(data));
