//! End-to-end tests across the crates: the kiosk as `kiosk demo` runs it (simulated devices,
//! embedded CRM endpoint, network switch), its packaging, and its screens in a real browser.
//! The tests live in `tests/`; this library holds what they share.
//!
//! - [`browser`]: headless Chromium driven through chromedriver, with polling waits, clicks,
//!   typing and screenshots saved as test artifacts.

pub mod browser;
