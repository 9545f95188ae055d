#![no_main]
//! See `kiosk_e2e::fuzz::scanner_hid`.
libfuzzer_sys::fuzz_target!(|data: &[u8]| kiosk_e2e::fuzz::scanner_hid(data));
