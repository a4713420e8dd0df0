//! Fuzz target: `xstage_core::fuzz::csv_file` (see there for what it checks).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| xstage_core::fuzz::csv_file(data));
