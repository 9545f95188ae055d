#![no_main]
//! See `kiosk_e2e::fuzz::endpoint_batch`.
libfuzzer_sys::fuzz_target!(|data: &[u8]| kiosk_e2e::fuzz::endpoint_batch(data));
