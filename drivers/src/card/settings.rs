//! The `[card_reader]` section of a hardware profile.

use serde::Deserialize;

/// Which card reader the kiosk has, and how to reach it.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum CardReaderSettings {
    /// MFRC522 on the SPI bus (Linux spidev + GPIO character device).
    Mfrc522 {
        /// spidev node, e.g. `/dev/spidev0.0` (needs `dtparam=spi=on` in `/boot/firmware/config.txt`).
        spi_device: String,
        /// SPI clock in Hz; long wires need a slow clock (1 MHz is safe, the chip allows 10 MHz).
        #[serde(default = "default_spi_hz")]
        spi_hz: u32,
        /// GPIO character device of the reset (NRSTPD) line, e.g. `/dev/gpiochip0`.
        reset_chip: Option<String>,
        /// Line offset of the reset pin on that chip (BCM number on a Pi, e.g. 25).
        reset_line: Option<u32>,
        /// GPIO character device of the chip's IRQ line, e.g. `/dev/gpiochip0`; with `irq_line`,
        /// the driver sleeps until the chip signals the end of a frame instead of polling its
        /// interrupt register over SPI (only with `transceive = "lean"`).
        irq_chip: Option<String>,
        /// Line offset of the IRQ pin on that chip (BCM number on a Pi, e.g. 24).
        irq_line: Option<u32>,
        /// Which register path speaks ISO 14443A: `lean` (default, the fewest SPI transfers) or
        /// `crate` (the unmodified `mfrc522` crate, kept to compare both in the benchmarks).
        #[serde(default)]
        transceive: Transceive,
        /// Receiver gain in dB: one of 18, 23, 33, 38, 43, 48.
        #[serde(default = "default_gain")]
        antenna_gain_db: u8,
        /// How often to poll the field for a card, in milliseconds.
        #[serde(default = "default_poll_ms")]
        poll_interval_ms: u32,
        /// How often to poll the field while nobody is in front of the kiosk, in milliseconds
        /// (default 50, never below `poll_interval_ms`). Only with a presence sensor: the reader
        /// polls at `poll_interval_ms` while the sensor sees someone, a journey is on the screen
        /// or a card is on the reader, and for 30 s after; a kiosk without a working sensor
        /// always polls at `poll_interval_ms`.
        #[serde(default)]
        idle_poll_ms: Option<u32>,
        /// Consecutive polls without any answer after which a card counts as removed (a card
        /// held on the reader is one tap; removed and presented again is a new one).
        #[serde(default = "default_removal_polls")]
        removal_polls: u32,
    },
    /// USB HID keyboard-wedge reader (types digits + Enter), grabbed exclusively via evdev.
    HidWedge {
        /// evdev node, preferably a stable `/dev/input/by-id/...` path.
        device: String,
        /// How the reader types UIDs (most wedge readers type decimal digits).
        #[serde(default = "default_wedge_format")]
        uid_format: UidFormat,
    },
    /// Serial / USB CDC-ACM reader sending one UID per line.
    Serial {
        /// Serial port, e.g. `/dev/ttyACM0` or `/dev/kiosk-card`.
        port: String,
        /// Baud rate.
        #[serde(default = "default_baud")]
        baud: u32,
        /// How the reader writes UIDs: `hex` (e.g. `04A2B3C4`, separators `:`/`-`/space allowed)
        /// or `decimal` (e.g. `0012345678`).
        #[serde(default)]
        uid_format: UidFormat,
    },
    /// The MFRC522 simulator (demo and tests): the real driver talks to simulated registers.
    Simulated {
        /// How often to poll the field for a card, in milliseconds.
        #[serde(default = "default_poll_ms")]
        poll_interval_ms: u32,
        /// How often to poll the field while nobody is in front of the kiosk, in milliseconds
        /// (default 50, never below `poll_interval_ms`). Only with a presence sensor: the reader
        /// polls at `poll_interval_ms` while the sensor sees someone, a journey is on the screen
        /// or a card is on the reader, and for 30 s after; a kiosk without a working sensor
        /// always polls at `poll_interval_ms`.
        #[serde(default)]
        idle_poll_ms: Option<u32>,
        /// Consecutive polls without any answer after which a card counts as removed (a card
        /// held on the reader is one tap; removed and presented again is a new one).
        #[serde(default = "default_removal_polls")]
        removal_polls: u32,
        /// Which register path speaks ISO 14443A (see the `mfrc522` kind).
        #[serde(default)]
        transceive: Transceive,
        /// Whether the simulated chip's IRQ line is wired (the driver waits on it instead of
        /// polling the interrupt register).
        #[serde(default)]
        irq: bool,
    },
    /// No card reader: customers continue anonymously.
    None,
}

/// Which code path exchanges ISO 14443A frames with an MFRC522.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Transceive {
    /// The driver's own register sequence ([`super::lean`]): the fewest SPI transfers per frame.
    #[default]
    Lean,
    /// The unmodified `mfrc522` crate's `reqa`/`wupa`/`select`/`hlta` (about 9x the transfers).
    Crate,
}

/// How a serial or keyboard-wedge reader writes a UID.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UidFormat {
    /// Hexadecimal digits, most significant byte first.
    #[default]
    Hex,
    /// A decimal number (EM4100-style readers: 10 digits for a 32-bit ID).
    Decimal,
}

fn default_wedge_format() -> UidFormat {
    UidFormat::Decimal
}

fn default_removal_polls() -> u32 {
    super::DEFAULT_REMOVAL_POLLS
}

fn default_spi_hz() -> u32 {
    1_000_000
}
fn default_gain() -> u8 {
    48
}
fn default_poll_ms() -> u32 {
    // The lean path's empty poll costs about a tenth of the crate's, so polling 2.5 times as
    // often still costs the bus less than the crate's 50 ms did; 20 ms keeps a tap's p99 under
    // 30 ms (the poll's phase plus a few ms to the screen). An idle kiosk polls at
    // `idle_poll_ms` instead.
    20
}
fn default_baud() -> u32 {
    9600
}
