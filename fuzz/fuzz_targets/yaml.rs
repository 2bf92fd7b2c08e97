//! Fuzz target `yaml`: see `stamp::fuzzing::yaml`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| stamp::fuzzing::yaml(data));
