//! Fuzz target `template`: see `stamp::fuzzing::template`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| stamp::fuzzing::template(data));
