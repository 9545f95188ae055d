#![no_main]
//! See `kiosk_e2e::fuzz::qr_payload`.
libfuzzer_sys::fuzz_target!(|data: &[u8]| kiosk_e2e::fuzz::qr_payload(data));
