//! The `[printer]` section of a hardware profile.

use serde::Deserialize;

/// Paper roll width.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub enum PaperWidth {
    /// 58 mm paper (typically 384 dots per line at 203 dpi).
    #[serde(rename = "58mm")]
    Mm58,
    /// 80 mm paper (typically 576 dots per line at 203 dpi).
    #[serde(rename = "80mm")]
    Mm80,
}

/// How QR codes are printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum QrMode {
    /// The printer's own QR command (GS ( k).
    Native,
    /// A raster image (GS v 0) for printers without QR support.
    Raster,
}

/// The printer model's capabilities.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PrinterProfile {
    /// Paper width.
    pub paper: PaperWidth,
    /// Printable dots per line.
    pub dots_per_line: u16,
    /// QR code support.
    #[serde(default = "default_qr")]
    pub qr: QrMode,
    /// Whether the printer has a cutter that supports partial cuts.
    #[serde(default = "default_true")]
    pub partial_cut: bool,
}

/// How to reach the printer.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum PrinterConnection {
    /// USB printer class device, e.g. `/dev/usb/lp0` or `/dev/kiosk-printer`.
    Usb {
        /// Device node.
        device: String,
    },
    /// Serial printer.
    Serial {
        /// Serial port.
        port: String,
        /// Baud rate.
        #[serde(default = "default_baud")]
        baud: u32,
    },
    /// Network printer (raw TCP, usually port 9100).
    Tcp {
        /// `host:port`.
        address: String,
    },
    /// Append ESC/POS bytes to a file (for debugging).
    File {
        /// Output path.
        path: String,
    },
    /// The virtual printer: interprets the bytes and renders PNGs.
    Simulated,
    /// No printer: tickets are shown on screen.
    None,
}

/// The printer section: connection plus model profile.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PrinterSettings {
    /// How to reach it.
    pub connection: PrinterConnection,
    /// What it can do.
    pub profile: PrinterProfile,
    /// Give up on a print that has not completed within this many milliseconds.
    #[serde(default = "default_timeout_ms")]
    pub timeout_ms: u32,
}

fn default_qr() -> QrMode {
    QrMode::Native
}
fn default_true() -> bool {
    true
}
fn default_baud() -> u32 {
    19200
}
fn default_timeout_ms() -> u32 {
    3000
}
