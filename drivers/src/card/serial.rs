//! Serial and USB CDC-ACM card readers that send one UID per line (hex or decimal, as the profile
//! says), through the `serialport` crate. The port is reopened when it comes back after an
//! unplug; health says why it is absent meanwhile.

use std::io::Read;
use std::time::Duration;

use zeroize::Zeroizing;

use super::ReaderKind;
use super::line_reader::{LineReader, LineSource};
use super::settings::UidFormat;
use super::token::{TenantKey, Uid};

/// Longest line accepted; longer input is noise and is dropped up to the next newline.
const MAX_LINE: usize = 64;

/// A line-oriented serial card reader.
pub type SerialCardReader = LineReader<SerialLines>;

impl SerialCardReader {
    /// A reader on `path` at `baud`; opened on the first call to `next_event`.
    pub fn new(path: String, baud: u32, format: UidFormat, key: TenantKey) -> Self {
        LineReader::with_source(
            SerialLines {
                baud,
                format,
                port: None,
                line: Zeroizing::new(Vec::with_capacity(MAX_LINE)),
                overlong: false,
            },
            path,
            key,
        )
    }
}

/// A serial port read as lines of UID text.
pub struct SerialLines {
    baud: u32,
    format: UidFormat,
    port: Option<Box<dyn serialport::SerialPort>>,
    line: Zeroizing<Vec<u8>>,
    overlong: bool,
}

impl SerialLines {
    fn byte(&mut self, b: u8, lines: &mut Vec<Result<Uid, String>>) {
        match b {
            b'\n' | b'\r' => {
                if !self.overlong && !self.line.is_empty() {
                    lines.push(self.parse_line());
                }
                self.line.clear();
                self.overlong = false;
            }
            _ if self.line.len() >= MAX_LINE => self.overlong = true,
            _ => self.line.push(b),
        }
    }

    fn parse_line(&self) -> Result<Uid, String> {
        match std::str::from_utf8(&self.line) {
            Ok(text) => Uid::parse(text.trim(), self.format).map_err(|e| e.to_string()),
            Err(_) => Err("reader sent bytes that are not text".to_owned()),
        }
    }
}

impl LineSource for SerialLines {
    const NAME: &'static str = "serial card reader";
    const KIND: ReaderKind = ReaderKind::Serial;

    fn open(&mut self, path: &str) -> Result<(), String> {
        match serialport::new(path, self.baud)
            .timeout(Duration::from_millis(100))
            .open()
        {
            Ok(port) => {
                self.port = Some(port);
                self.line.clear();
                self.overlong = false;
                Ok(())
            }
            Err(e) => Err(format!(
                "serial card reader {path} cannot be opened ({e}): check that it is plugged in, \
                 the port path (a udev symlink is stable) and the dialout group of the kiosk user"
            )),
        }
    }

    fn is_open(&self) -> bool {
        self.port.is_some()
    }

    fn read(
        &mut self,
        path: &str,
        wait: Duration,
        lines: &mut Vec<Result<Uid, String>>,
    ) -> Result<(), String> {
        let Some(port) = self.port.as_mut() else {
            return Ok(());
        };
        let _ = port.set_timeout(wait.clamp(Duration::from_millis(1), Duration::from_millis(500)));
        let mut buf = Zeroizing::new([0u8; 256]);
        let lost = match port.read(&mut buf[..]) {
            Ok(0) => "the port reached end of file".to_owned(),
            Ok(n) => {
                for &b in &buf[..n] {
                    self.byte(b, lines);
                }
                return Ok(());
            }
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::TimedOut
                        | std::io::ErrorKind::Interrupted
                        | std::io::ErrorKind::WouldBlock
                ) =>
            {
                return Ok(());
            }
            Err(e) => e.to_string(),
        };
        self.port = None;
        Err(format!(
            "serial card reader {path} stopped answering ({lost}): check its cable"
        ))
    }
}
