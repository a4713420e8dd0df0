//! Fuzz target: `xstage_core::fuzz::fragment` (see there for what it checks).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| xstage_core::fuzz::fragment(data));
