//! The `[scanner]` section of a hardware profile.

use serde::Deserialize;

/// Line terminator a serial scanner appends to each code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Suffix {
    /// Carriage return.
    Cr,
    /// Line feed.
    Lf,
    /// Carriage return + line feed.
    Crlf,
}

/// Keyboard layout a HID scanner is programmed for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum KeyboardLayout {
    /// US QWERTY.
    Us,
    /// Spanish QWERTY.
    Es,
}

/// Which scanner the kiosk has, and how to reach it.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum ScannerSettings {
    /// Serial / USB CDC-ACM scanner.
    Serial {
        /// Serial port, e.g. `/dev/ttyACM0` or `/dev/kiosk-scanner`.
        port: String,
        /// Baud rate.
        #[serde(default = "default_baud")]
        baud: u32,
        /// Terminator after each code.
        #[serde(default = "default_suffix")]
        suffix: Suffix,
        /// A line not finished within this many milliseconds is discarded as noise.
        #[serde(default = "default_timeout_ms")]
        line_timeout_ms: u32,
    },
    /// USB HID scanner (keyboard emulation), grabbed exclusively via evdev.
    Hid {
        /// evdev node, preferably a stable `/dev/input/by-id/...` path.
        device: String,
        /// Layout the scanner types in.
        #[serde(default = "default_layout")]
        layout: KeyboardLayout,
    },
    /// The scanner simulator: writes into a real pty that the serial driver reads.
    Simulated {
        /// Terminator after each code.
        #[serde(default = "default_suffix")]
        suffix: Suffix,
    },
    /// No scanner.
    None,
}

fn default_baud() -> u32 {
    9600
}
fn default_suffix() -> Suffix {
    Suffix::Cr
}
fn default_timeout_ms() -> u32 {
    500
}
fn default_layout() -> KeyboardLayout {
    KeyboardLayout::Us
}
