#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| aidiag::fuzzing::dialect(data));
