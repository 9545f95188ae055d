//! Drivers for every device of the kiosk, each with a simulator that speaks the real protocol.
//!
//! Data flow: **device → driver → input** → engine. A driver turns bytes on a bus (SPI registers,
//! serial lines, HID key events, ESC/POS status bytes, GPIO edges) into typed inputs and health
//! reports, and typed output (a ticket layout) into bytes. Drivers know nothing of journeys,
//! journals or sync. Only [`card::linux`] names `linux-embedded-hal`; everything else takes the
//! `embedded-hal` traits, so the simulators exercise the real driver code.
//!
//! Each device kind has a `settings` module: the typed section of a `hw-config/*.toml` profile.

pub mod card;
pub mod gpio;
pub mod health;
pub mod keypad;
pub mod printer;
pub mod pty;
pub mod scanner;
pub mod speech;

pub use health::{DeviceHealth, Health};
