#![no_main]
//! See `kiosk_e2e::fuzz::scanner_serial`.
libfuzzer_sys::fuzz_target!(|data: &[u8]| kiosk_e2e::fuzz::scanner_serial(data));
