#![no_main]
//! See `kiosk_e2e::fuzz::site_config`.
libfuzzer_sys::fuzz_target!(|data: &[u8]| kiosk_e2e::fuzz::site_config(data));
