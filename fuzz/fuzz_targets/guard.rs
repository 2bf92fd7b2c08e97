//! Fuzz target `guard`: see `stamp::fuzzing::guard`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| stamp::fuzzing::guard(data));
