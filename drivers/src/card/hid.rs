//! USB HID keyboard-wedge card readers (for example 125 kHz EM4100 readers that type 10 digits and
//! Enter), read through evdev with an exclusive grab so the digits never reach the desktop.
//!
//! Keys are decoded from their evdev key codes, which name physical keys, not characters: the
//! result is the same whatever keyboard layout the desktop uses (a French AZERTY layout turns
//! the top-row `1` into `&`, the key code stays `KEY_1`). The decoder takes raw `input_event`
//! records, so recorded streams test exactly what the device delivers.

use std::os::fd::AsFd;
use std::time::Duration;

use zeroize::Zeroizing;

use super::ReaderKind;
use super::line_reader::{LineReader, LineSource};
use super::settings::UidFormat;
use super::token::{TenantKey, Uid, UidTextError};

/// `EV_KEY` event type.
pub const EV_KEY: u16 = 1;
/// Size of `struct input_event` on 64-bit Linux.
pub const INPUT_EVENT_SIZE: usize = 24;
/// A gap longer than this between two keys discards the partial code (a read cut short).
const KEY_GAP: Duration = Duration::from_millis(1000);

/// One `struct input_event`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RawInputEvent {
    /// Event time (since the epoch or boot, as the kernel stamps it).
    pub time: Duration,
    /// Event type (`EV_KEY` = 1).
    pub kind: u16,
    /// Key code for `EV_KEY`.
    pub code: u16,
    /// 1 press, 0 release, 2 autorepeat.
    pub value: i32,
}

/// Splits a byte stream read from `/dev/input/event*` (64-bit layout) into events; a trailing
/// partial record is ignored.
pub fn parse_input_events(bytes: &[u8]) -> Vec<RawInputEvent> {
    bytes
        .chunks_exact(INPUT_EVENT_SIZE)
        .map(|r| {
            let word = |i: usize| {
                let mut b = [0u8; 8];
                b.copy_from_slice(&r[i..i + 8]);
                i64::from_ne_bytes(b)
            };
            let (sec, usec) = (word(0).max(0) as u64, word(8).clamp(0, 999_999) as u64);
            RawInputEvent {
                time: Duration::from_secs(sec) + Duration::from_micros(usec),
                kind: u16::from_ne_bytes([r[16], r[17]]),
                code: u16::from_ne_bytes([r[18], r[19]]),
                value: i32::from_ne_bytes([r[20], r[21], r[22], r[23]]),
            }
        })
        .collect()
}

/// The character a key code stands for on a card reader, independent of the keyboard layout.
fn key_char(code: u16) -> Option<char> {
    Some(match code {
        2..=10 => char::from(b'1' + (code - 2) as u8),
        11 => '0',
        // Keypad: KP7 KP8 KP9 . KP4 KP5 KP6 . KP1 KP2 KP3 KP0
        71 => '7',
        72 => '8',
        73 => '9',
        75 => '4',
        76 => '5',
        77 => '6',
        79 => '1',
        80 => '2',
        81 => '3',
        82 => '0',
        30 => 'A',
        48 => 'B',
        46 => 'C',
        32 => 'D',
        18 => 'E',
        33 => 'F',
        _ => return None,
    })
}

const KEY_ENTER: u16 = 28;
const KEY_KPENTER: u16 = 96;
const SHIFT_KEYS: [u16; 2] = [42, 54];

/// Turns key events into UIDs: digits (and hex letters) up to Enter.
#[derive(Debug)]
pub struct WedgeDecoder {
    buf: Zeroizing<String>,
    last_key: Option<Duration>,
    format: UidFormat,
}

impl WedgeDecoder {
    /// A decoder for readers that type `format` digits.
    pub fn new(format: UidFormat) -> Self {
        WedgeDecoder {
            buf: Zeroizing::new(String::new()),
            last_key: None,
            format,
        }
    }

    /// Feeds one event; returns a UID (or why the line was not one) at each Enter.
    pub fn push(&mut self, event: RawInputEvent) -> Option<Result<Uid, UidTextError>> {
        if event.kind != EV_KEY || event.value != 1 || SHIFT_KEYS.contains(&event.code) {
            return None;
        }
        if let Some(last) = self.last_key {
            if event.time.saturating_sub(last) > KEY_GAP {
                self.buf.clear();
            }
        }
        self.last_key = Some(event.time);
        if event.code == KEY_ENTER || event.code == KEY_KPENTER {
            let line = std::mem::take(&mut *self.buf);
            let line = Zeroizing::new(line);
            if line.len() > 32 {
                return Some(Err(UidTextError::TooLong(line.len())));
            }
            return Some(Uid::parse(&line, self.format));
        }
        if self.buf.len() <= 32 {
            // An unexpected key poisons the line so that it is rejected at Enter.
            self.buf.push(key_char(event.code).unwrap_or('?'));
        }
        None
    }
}

/// A keyboard-wedge reader on an evdev node, grabbed exclusively.
pub type HidWedgeReader = LineReader<WedgeKeys>;

impl HidWedgeReader {
    /// A reader on `path` (preferably `/dev/input/by-id/...`) typing decimal UIDs; opened on the
    /// first call to `next_event`.
    pub fn new(path: String, key: TenantKey) -> Self {
        Self::with_format(path, UidFormat::Decimal, key)
    }

    /// A reader typing UIDs in `format`.
    pub fn with_format(path: String, format: UidFormat, key: TenantKey) -> Self {
        LineReader::with_source(
            WedgeKeys {
                device: None,
                decoder: WedgeDecoder::new(format),
            },
            path,
            key,
        )
    }
}

/// An evdev node read as key events, decoded into UID lines.
pub struct WedgeKeys {
    device: Option<evdev::Device>,
    decoder: WedgeDecoder,
}

impl LineSource for WedgeKeys {
    const NAME: &'static str = "hid card reader";
    const KIND: ReaderKind = ReaderKind::HidWedge;

    fn open(&mut self, path: &str) -> Result<(), String> {
        let opened = evdev::Device::open(path).and_then(|mut d| d.grab().map(|()| d));
        match opened {
            Ok(device) => {
                self.device = Some(device);
                Ok(())
            }
            Err(e) => Err(format!(
                "hid card reader {path} cannot be opened and grabbed ({e}): check that it is \
                 plugged in, the /dev/input/by-id path, the input group of the kiosk user, \
                 and that no other program grabs it"
            )),
        }
    }

    fn is_open(&self) -> bool {
        self.device.is_some()
    }

    fn read(
        &mut self,
        path: &str,
        wait: Duration,
        lines: &mut Vec<Result<Uid, String>>,
    ) -> Result<(), String> {
        let Some(device) = self.device.as_mut() else {
            return Ok(());
        };
        let ms = u16::try_from(wait.as_millis()).unwrap_or(u16::MAX);
        let mut fds = [nix::poll::PollFd::new(
            device.as_fd(),
            nix::poll::PollFlags::POLLIN,
        )];
        let lost = match nix::poll::poll(&mut fds, nix::poll::PollTimeout::from(ms)) {
            Ok(0) | Err(nix::errno::Errno::EINTR) => return Ok(()),
            Ok(_) => match device.fetch_events() {
                Ok(events) => {
                    for e in events {
                        let event = RawInputEvent {
                            time: e
                                .timestamp()
                                .duration_since(std::time::UNIX_EPOCH)
                                .unwrap_or_default(),
                            kind: e.event_type().0,
                            code: e.code(),
                            value: e.value(),
                        };
                        if let Some(line) = self.decoder.push(event) {
                            lines.push(line.map_err(|e| e.to_string()));
                        }
                    }
                    return Ok(());
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return Ok(()),
                Err(e) => e,
            },
            Err(e) => std::io::Error::from(e),
        };
        self.device = None;
        Err(format!(
            "hid card reader {path} stopped delivering events ({lost}): check its usb cable"
        ))
    }
}
