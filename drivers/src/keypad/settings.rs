//! The `[keypad]` section of a hardware profile: the USB keypad (or keyboard) that operates the
//! kiosk without touch, and the tactile key that, held, starts accessible mode.

use serde::Deserialize;

/// The key that, held for `hold_ms`, turns accessible mode on (and, held again, off).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StartKey {
    /// The "5": the key with the raised nib on every numeric keypad and phone-style keypad
    /// (ITU-T E.161), found by touch without sight. The default.
    #[serde(rename = "5")]
    Five,
    /// Enter: for keypads without a nibbed 5 (mark it with a tactile sticker).
    Enter,
}

/// Which keypad the kiosk has.
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum KeypadSettings {
    /// A USB HID keypad or keyboard, grabbed exclusively through evdev.
    Evdev {
        /// evdev node, preferably a stable `/dev/input/by-id/...-event-kbd` path.
        device: String,
        /// The key held to start accessible mode.
        #[serde(default = "default_start_key")]
        start_key: StartKey,
        /// How long the start key is held, in milliseconds.
        #[serde(default = "default_hold_ms")]
        hold_ms: u32,
    },
    /// The keypad simulator: writes Linux `input_event` records into a FIFO that the same
    /// reader decodes.
    Simulated {
        /// The key held to start accessible mode.
        #[serde(default = "default_start_key")]
        start_key: StartKey,
        /// How long the start key is held, in milliseconds.
        #[serde(default = "default_hold_ms")]
        hold_ms: u32,
    },
    /// No keypad.
    #[default]
    None,
}

impl KeypadSettings {
    /// The hold time, for validation (`None` without a keypad).
    pub fn hold_ms(&self) -> Option<u32> {
        match self {
            KeypadSettings::Evdev { hold_ms, .. } | KeypadSettings::Simulated { hold_ms, .. } => {
                Some(*hold_ms)
            }
            KeypadSettings::None => None,
        }
    }
}

/// The shortest and longest hold accepted: shorter is pressed by accident while feeling for
/// the key, longer is hard to keep up for people with tremor.
pub const HOLD_MS_RANGE: std::ops::RangeInclusive<u32> = 1_000..=5_000;

fn default_start_key() -> StartKey {
    StartKey::Five
}

fn default_hold_ms() -> u32 {
    2_000
}
