//! The `[gpio]` section of a hardware profile.

use serde::Deserialize;

/// One GPIO line on a character device.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GpioLine {
    /// GPIO character device, e.g. `/dev/gpiochip0` (on a Pi 5: `/dev/gpiochip4`).
    pub chip: String,
    /// Line offset (BCM number on a Pi).
    pub line: u32,
    /// Whether the signal is active low.
    #[serde(default)]
    pub active_low: bool,
}

/// Presence sensor and status LED.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum GpioSettings {
    /// Real GPIO lines.
    Cdev {
        /// Presence / people-counter sensor input, if fitted.
        presence: Option<GpioLine>,
        /// Debounce for the presence input, in milliseconds.
        #[serde(default = "default_debounce_ms")]
        presence_debounce_ms: u32,
        /// People counter: a new arrival counts as an entry only after the line was quiet this
        /// long, so one person lingering (or stepping back and forth) is one entry.
        #[serde(default = "default_entry_gap_ms")]
        presence_entry_gap_ms: u32,
        /// Status LED output, if fitted.
        status_led: Option<GpioLine>,
    },
    /// Simulated sensor and LED.
    Simulated,
    /// No GPIO devices.
    None,
}

fn default_debounce_ms() -> u32 {
    50
}

fn default_entry_gap_ms() -> u32 {
    2_000
}
