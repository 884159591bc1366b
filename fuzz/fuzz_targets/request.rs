//! Fuzz target: Requests on the REP socket: `wire::decode_request` through `Manager::handle_request`, which must always reply.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| dmg_fuzz::checks::request(data));
