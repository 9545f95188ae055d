//! End-to-end tests across the crates: the kiosk as `kiosk demo` runs it (simulated devices,
//! embedded CRM endpoint, network switch), its packaging, and its screens in a real browser.
//! The tests live in `tests/`; this library holds what they share.
//!
//! - [`browser`]: headless Chromium driven through chromedriver, with polling waits, clicks,
//!   typing and screenshots saved as test artifacts.
//! - [`crm`]: a signed batch of events posted as a kiosk posts it.
//! - [`fuzz`]: the bodies of the `cargo fuzz` targets in `tests/fuzz`, which the suite also runs
//!   over their corpora and regressions.

pub mod browser;
pub mod crm;
pub mod fuzz;
