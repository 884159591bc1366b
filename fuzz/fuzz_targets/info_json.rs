//! Fuzz target: `packages::parse_info_json`: the bytes of a plugin's `info.json`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| dmg_fuzz::checks::info_json(data));
