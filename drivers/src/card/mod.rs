//! Loyalty card readers: MFRC522 over SPI, USB HID keyboard-wedge readers and serial readers, each
//! producing one *tap* per card presentation as a keyed card token (the UID never leaves here).

pub mod settings;
pub mod mfrc522sim;
