//! Real-time status (`DLE EOT n`): the four one-byte answers a printer gives even while offline,
//! decoded into a typed [`PrinterStatus`] and the device [`Health`] the firmware reports.
//!
//! Every answer byte has the fixed pattern `0xx1xx10` (bit 7 = 0, bit 4 = 1, bit 1 = 1, bit 0 = 0)
//! in the Epson ESC/POS reference; a byte that does not match is not a status answer (line noise,
//! a printer echoing data, the wrong baud rate) and is rejected as [`StatusError::Garbage`].

use std::fmt;

use crate::health::Health;

/// `DLE`: the prefix of real-time commands.
pub const DLE: u8 = 0x10;
/// `EOT`: second byte of `DLE EOT n`, transmit real-time status.
pub const EOT: u8 = 0x04;

/// Which status byte a `DLE EOT n` asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatusRequest {
    /// n = 1: printer status (bit 3 offline).
    Printer = 1,
    /// n = 2: offline cause (bit 2 cover open, bit 3 feed button, bit 5 stopped by paper end,
    /// bit 6 error).
    OfflineCause = 2,
    /// n = 3: error cause (bit 2 autocutter, bit 3 unrecoverable, bit 5 auto-recoverable).
    ErrorCause = 3,
    /// n = 4: roll paper sensor (bits 2-3 near end, bits 5-6 paper end).
    PaperSensor = 4,
}

impl StatusRequest {
    /// All four, in the order the driver asks them.
    pub const ALL: [StatusRequest; 4] = [
        StatusRequest::Printer,
        StatusRequest::OfflineCause,
        StatusRequest::ErrorCause,
        StatusRequest::PaperSensor,
    ];

    /// The three bytes `DLE EOT n`. Written by hand: the `escpos` crate appends a fourth byte
    /// (`DLE EOT n 0`), which is only right for the n = 7/8/18 forms.
    pub fn command(self) -> [u8; 3] {
        [DLE, EOT, self as u8]
    }

    /// The request for `n`, if it is one of the four.
    pub fn from_n(n: u8) -> Option<Self> {
        match n {
            1 => Some(StatusRequest::Printer),
            2 => Some(StatusRequest::OfflineCause),
            3 => Some(StatusRequest::ErrorCause),
            4 => Some(StatusRequest::PaperSensor),
            _ => None,
        }
    }
}

impl fmt::Display for StatusRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            StatusRequest::Printer => "printer status (DLE EOT 1)",
            StatusRequest::OfflineCause => "offline cause (DLE EOT 2)",
            StatusRequest::ErrorCause => "error cause (DLE EOT 3)",
            StatusRequest::PaperSensor => "paper sensor (DLE EOT 4)",
        })
    }
}

/// Mask and value of the fixed bits of every status byte (`0xx1xx10`).
pub const FIXED_MASK: u8 = 0b1001_0011;
/// See [`FIXED_MASK`].
pub const FIXED_BITS: u8 = 0b0001_0010;

/// Bit 3 of the printer status: offline.
pub const PRINTER_OFFLINE: u8 = 1 << 3;
/// Bit 2 of the offline cause: cover open.
pub const OFFLINE_COVER_OPEN: u8 = 1 << 2;
/// Bit 3 of the offline cause: paper being fed by the feed button.
pub const OFFLINE_FEED_BUTTON: u8 = 1 << 3;
/// Bit 5 of the offline cause: printing stopped by paper end.
pub const OFFLINE_PAPER_END: u8 = 1 << 5;
/// Bit 6 of the offline cause: an error occurred.
pub const OFFLINE_ERROR: u8 = 1 << 6;
/// Bit 2 of the error cause: autocutter error.
pub const ERROR_AUTOCUTTER: u8 = 1 << 2;
/// Bit 3 of the error cause: unrecoverable error.
pub const ERROR_UNRECOVERABLE: u8 = 1 << 3;
/// Bit 5 of the error cause: automatically recoverable error (e.g. head overheated).
pub const ERROR_AUTO_RECOVERABLE: u8 = 1 << 5;
/// Bits 2-3 of the paper sensor: roll near end.
pub const PAPER_NEAR_END: u8 = 0b0000_1100;
/// Bits 5-6 of the paper sensor: roll end (out of paper).
pub const PAPER_END: u8 = 0b0110_0000;

/// A status answer that cannot be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StatusDecodeError {
    /// The byte lacks the fixed `0xx1xx10` pattern.
    #[error(
        "printer answered {request} with byte {byte:#04x}, which is not a status byte (expected the pattern 0xx1xx10); check the baud rate and that the device is an ESC/POS printer"
    )]
    Garbage {
        /// What was asked.
        request: StatusRequest,
        /// What came back.
        byte: u8,
    },
}

/// Alias kept short for signatures.
pub type StatusError = StatusDecodeError;

/// Checks one answer byte against the fixed pattern.
pub fn check_byte(request: StatusRequest, byte: u8) -> Result<u8, StatusDecodeError> {
    if byte & FIXED_MASK == FIXED_BITS {
        Ok(byte)
    } else {
        Err(StatusDecodeError::Garbage { request, byte })
    }
}

/// The printer's state from the four real-time status bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PrinterStatus {
    /// The printer is offline (it will not print until the cause is cleared).
    pub offline: bool,
    /// The cover is open.
    pub cover_open: bool,
    /// The roll is out.
    pub paper_out: bool,
    /// The roll is near its end (still prints).
    pub paper_near_end: bool,
    /// The paper is being fed with the feed button.
    pub feed_button: bool,
    /// The autocutter jammed or failed.
    pub cutter_error: bool,
    /// An unrecoverable error (needs a power cycle or service).
    pub unrecoverable_error: bool,
    /// An error the printer clears by itself (e.g. head temperature).
    pub recoverable_error: bool,
}

impl PrinterStatus {
    /// Decodes the four answers, in the order of [`StatusRequest::ALL`].
    pub fn decode(bytes: [u8; 4]) -> Result<Self, StatusDecodeError> {
        let printer = check_byte(StatusRequest::Printer, bytes[0])?;
        let offline = check_byte(StatusRequest::OfflineCause, bytes[1])?;
        let error = check_byte(StatusRequest::ErrorCause, bytes[2])?;
        let paper = check_byte(StatusRequest::PaperSensor, bytes[3])?;
        Ok(PrinterStatus {
            offline: printer & PRINTER_OFFLINE != 0,
            cover_open: offline & OFFLINE_COVER_OPEN != 0,
            paper_out: offline & OFFLINE_PAPER_END != 0 || paper & PAPER_END != 0,
            paper_near_end: paper & PAPER_NEAR_END != 0,
            feed_button: offline & OFFLINE_FEED_BUTTON != 0,
            cutter_error: error & ERROR_AUTOCUTTER != 0,
            unrecoverable_error: error & ERROR_UNRECOVERABLE != 0,
            recoverable_error: error & ERROR_AUTO_RECOVERABLE != 0,
        })
    }

    /// Encodes this status as the four answer bytes a printer would send (used by the virtual
    /// printer, so encoder and decoder are checked against each other and the spec constants).
    pub fn encode(&self) -> [u8; 4] {
        let bit = |on: bool, b: u8| if on { b } else { 0 };
        let any_error = self.cutter_error || self.unrecoverable_error || self.recoverable_error;
        let offline = self.offline || self.cover_open || self.paper_out || any_error;
        [
            FIXED_BITS | bit(offline, PRINTER_OFFLINE),
            FIXED_BITS
                | bit(self.cover_open, OFFLINE_COVER_OPEN)
                | bit(self.feed_button, OFFLINE_FEED_BUTTON)
                | bit(self.paper_out, OFFLINE_PAPER_END)
                | bit(any_error, OFFLINE_ERROR),
            FIXED_BITS
                | bit(self.cutter_error, ERROR_AUTOCUTTER)
                | bit(self.unrecoverable_error, ERROR_UNRECOVERABLE)
                | bit(self.recoverable_error, ERROR_AUTO_RECOVERABLE),
            FIXED_BITS
                | bit(self.paper_near_end || self.paper_out, PAPER_NEAR_END)
                | bit(self.paper_out, PAPER_END),
        ]
    }

    /// Whether a ticket can be printed now.
    pub fn can_print(&self) -> bool {
        self.problem().is_none()
    }

    /// Why the printer cannot print, in words for a technician; `None` when it can.
    pub fn problem(&self) -> Option<&'static str> {
        if self.paper_out {
            Some("paper out; load a new roll")
        } else if self.cover_open {
            Some("cover open; close the printer cover")
        } else if self.cutter_error {
            Some("cutter error; clear the paper jam at the cutter")
        } else if self.unrecoverable_error {
            Some("unrecoverable error; power-cycle the printer")
        } else if self.recoverable_error {
            Some("temporary error (e.g. print head too hot); wait")
        } else if self.offline {
            Some("offline; check the printer's panel")
        } else {
            None
        }
    }

    /// The device health for this status, naming the device (`printer at /dev/usb/lp0`).
    pub fn health(&self, device: &str) -> Health {
        match self.problem() {
            Some(problem) => Health::absent(format!("printer at {device} reports {problem}")),
            None if self.paper_near_end => Health::degraded(format!(
                "printer at {device} reports paper near end; replace the roll soon"
            )),
            None => Health::ok(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::health::DeviceHealth;

    #[test]
    fn an_idle_printer_answers_0x12_to_every_request() {
        assert_eq!(PrinterStatus::default().encode(), [0x12; 4]);
        assert_eq!(
            PrinterStatus::decode([0x12; 4]).unwrap(),
            PrinterStatus::default()
        );
    }

    #[test]
    fn every_fault_survives_encode_then_decode() {
        for s in [
            PrinterStatus {
                paper_out: true,
                ..Default::default()
            },
            PrinterStatus {
                paper_near_end: true,
                ..Default::default()
            },
            PrinterStatus {
                cover_open: true,
                ..Default::default()
            },
            PrinterStatus {
                offline: true,
                ..Default::default()
            },
            PrinterStatus {
                cutter_error: true,
                ..Default::default()
            },
        ] {
            let back = PrinterStatus::decode(s.encode()).unwrap();
            assert_eq!(back.paper_out, s.paper_out);
            assert_eq!(back.paper_near_end, s.paper_near_end || s.paper_out);
            assert_eq!(back.cover_open, s.cover_open);
            assert_eq!(back.cutter_error, s.cutter_error);
            assert_eq!(back.can_print(), s.can_print());
        }
    }

    #[test]
    fn epson_example_bytes_decode_to_cover_open_and_paper_end() {
        // Offline cause 0x16 = fixed bits + cover open; paper sensor 0x72 = fixed + end (bits 5,6).
        let s = PrinterStatus::decode([0x1A, 0x16, 0x12, 0x72]).unwrap();
        assert!(s.offline && s.cover_open && s.paper_out);
        assert_eq!(s.health("/dev/usb/lp0").state, DeviceHealth::Absent);
    }

    #[test]
    fn paper_near_end_is_degraded_not_absent() {
        let s = PrinterStatus::decode([0x12, 0x12, 0x12, 0x1E]).unwrap();
        let h = s.health("tcp://10.0.0.9:9100");
        assert_eq!(h.state, DeviceHealth::Degraded);
        assert!(h.reason.unwrap().contains("paper near end"));
    }

    #[test]
    fn a_byte_without_the_fixed_pattern_is_rejected_as_garbage() {
        for byte in [0x00, 0xFF, 0x13, 0x92, b'A'] {
            let err = PrinterStatus::decode([0x12, byte, 0x12, 0x12]).unwrap_err();
            assert_eq!(
                err,
                StatusDecodeError::Garbage {
                    request: StatusRequest::OfflineCause,
                    byte
                }
            );
            assert!(err.to_string().contains("not a status byte"));
        }
    }
}
