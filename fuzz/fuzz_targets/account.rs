//! Fuzz target `account`: see `stamp::fuzzing::account`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| stamp::fuzzing::account(data));
