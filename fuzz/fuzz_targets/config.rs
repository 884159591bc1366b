//! Fuzz target: `config::parse`: the text of `manager.cfg`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| dmg_fuzz::checks::config(data));
