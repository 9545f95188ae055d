//! Framing of a serial scanner's byte stream into lines: pure (bytes and time in, lines and
//! rejections out), so partial lines, overlong lines, noise and invalid UTF-8 are tested without a
//! port. The serial driver feeds it what it reads; nothing here does I/O or reads a clock.

use std::time::{Duration, Instant};

use super::settings::Suffix;

/// Longest line accepted by default, in bytes (a kiosk payload is about 100; QR codes of other
/// systems can be longer, but a kiosk never needs them).
pub const DEFAULT_MAX_LINE: usize = 512;

/// Why a line (or what was read of it) was thrown away.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LineRejection {
    /// Bytes without a terminator for longer than the line timeout.
    #[error("partial line of {len} bytes had no terminator within {timeout_ms} ms; discarded")]
    PartialTimeout {
        /// Bytes discarded.
        len: usize,
        /// The configured line timeout.
        timeout_ms: u64,
    },
    /// More bytes than the limit before a terminator; everything up to the next terminator is
    /// discarded.
    #[error("line longer than {max} bytes; discarded up to the next terminator")]
    Overlong {
        /// The limit.
        max: usize,
    },
    /// The line is not valid UTF-8.
    #[error("line of {len} bytes is not valid utf-8 (check the scanner's character set)")]
    InvalidUtf8 {
        /// Its length in bytes.
        len: usize,
    },
    /// The line holds control bytes: line noise, a wrong baud rate or a binary protocol.
    #[error("line of {len} bytes holds {control} control bytes (noise, or a wrong baud rate)")]
    BinaryNoise {
        /// Its length in bytes.
        len: usize,
        /// How many control bytes it holds.
        control: usize,
    },
    /// Handled a HID key with no character in the configured layout.
    #[error("key code {code} has no character in the {layout} layout")]
    UnmappedKey {
        /// evdev key code.
        code: u16,
        /// Layout name.
        layout: &'static str,
    },
    /// The device went away in the middle of a line.
    #[error("scanner disconnected in the middle of a line of {len} bytes")]
    Disconnected {
        /// Bytes discarded.
        len: usize,
    },
}

/// What the framer produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Framed {
    /// A complete line of printable text, terminator removed.
    Line(String),
    /// Something discarded, and why.
    Rejected(LineRejection),
}

/// Splits a byte stream into lines at a suffix, with a per-line timeout and a length limit.
#[derive(Debug)]
pub struct LineFramer {
    suffix: Suffix,
    max_len: usize,
    timeout: Duration,
    buf: Vec<u8>,
    started: Option<Instant>,
    /// Discarding an overlong line until the next terminator.
    skipping: bool,
    /// Last byte was a CR (to drop the LF of a CRLF when the suffix is CR).
    after_cr: bool,
}

impl LineFramer {
    /// A framer for lines ending in `suffix`, at most `max_len` bytes, each finished within
    /// `timeout` of its first byte.
    pub fn new(suffix: Suffix, max_len: usize, timeout: Duration) -> Self {
        LineFramer {
            suffix,
            max_len,
            timeout,
            buf: Vec::new(),
            started: None,
            skipping: false,
            after_cr: false,
        }
    }

    /// Feeds bytes read at `now`; returns the lines and rejections they complete.
    pub fn push(&mut self, bytes: &[u8], now: Instant) -> Vec<Framed> {
        let mut out = Vec::new();
        if let Some(r) = self.expire(now) {
            out.push(Framed::Rejected(r));
        }
        for &b in bytes {
            let after_cr = std::mem::replace(&mut self.after_cr, b == b'\r');
            let ends = match self.suffix {
                Suffix::Cr => b == b'\r',
                Suffix::Lf => b == b'\n',
                Suffix::Crlf => b == b'\n' && self.buf.last() == Some(&b'\r'),
            };
            if ends {
                if self.suffix == Suffix::Crlf {
                    self.buf.pop();
                }
                if let Some(f) = self.finish_line() {
                    out.push(f);
                }
                continue;
            }
            // Tolerate a scanner sending CRLF to a kiosk configured for CR or LF.
            if (self.suffix == Suffix::Cr && b == b'\n' && after_cr && self.buf.is_empty())
                || (self.suffix == Suffix::Lf && b == b'\r')
            {
                continue;
            }
            if self.skipping {
                continue;
            }
            if self.buf.is_empty() {
                self.started = Some(now);
            }
            self.buf.push(b);
            // A CRLF terminator's CR sits in the buffer until its LF arrives.
            let len = self.buf.len() - usize::from(self.suffix == Suffix::Crlf && b == b'\r');
            if len > self.max_len {
                self.buf.clear();
                self.started = None;
                self.skipping = true;
                out.push(Framed::Rejected(LineRejection::Overlong {
                    max: self.max_len,
                }));
            }
        }
        out
    }

    /// Discards a partial line whose timeout has passed at `now`.
    pub fn expire(&mut self, now: Instant) -> Option<LineRejection> {
        let started = self.started?;
        if now.saturating_duration_since(started) < self.timeout {
            return None;
        }
        let len = self.buf.len();
        self.buf.clear();
        self.started = None;
        Some(LineRejection::PartialTimeout {
            len,
            timeout_ms: self.timeout.as_millis() as u64,
        })
    }

    /// When the partial line (if any) times out: the latest moment to call [`Self::expire`].
    pub fn deadline(&self) -> Option<Instant> {
        self.started.map(|s| s + self.timeout)
    }

    /// Forgets the partial line (the port went away); says so if there was one.
    pub fn reset(&mut self) -> Option<LineRejection> {
        let len = self.buf.len();
        let had = self.started.is_some();
        self.buf.clear();
        self.started = None;
        self.skipping = false;
        self.after_cr = false;
        had.then_some(LineRejection::Disconnected { len })
    }

    fn finish_line(&mut self) -> Option<Framed> {
        let bytes = std::mem::take(&mut self.buf);
        self.started = None;
        if std::mem::replace(&mut self.skipping, false) || bytes.is_empty() {
            return None;
        }
        Some(match check_text(bytes) {
            Ok(text) => Framed::Line(text),
            Err(r) => Framed::Rejected(r),
        })
    }
}

/// Accepts a line as text: valid UTF-8 without control characters, C0, DEL or C1 (U+0080 to
/// U+009F, which UTF-8 spells in two bytes: `\u{9b}` is a terminal's CSI); a tab is allowed, some
/// scanners separate fields with it.
pub fn check_text(bytes: Vec<u8>) -> Result<String, LineRejection> {
    let len = bytes.len();
    let control = bytes
        .iter()
        .filter(|&&b| (b < 0x20 && b != b'\t') || b == 0x7f)
        .count();
    if control > 0 {
        return Err(LineRejection::BinaryNoise { len, control });
    }
    let text = String::from_utf8(bytes).map_err(|_| LineRejection::InvalidUtf8 { len })?;
    let control = text
        .chars()
        .filter(|c| c.is_control() && *c != '\t')
        .count();
    if control > 0 {
        return Err(LineRejection::BinaryNoise { len, control });
    }
    Ok(text)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn framer(suffix: Suffix) -> LineFramer {
        LineFramer::new(suffix, 16, Duration::from_millis(500))
    }

    fn line(s: &str) -> Framed {
        Framed::Line(s.into())
    }

    #[test]
    fn each_suffix_splits_lines_and_is_removed() {
        let t = Instant::now();
        assert_eq!(
            framer(Suffix::Cr).push(b"123\r456\r", t),
            vec![line("123"), line("456")]
        );
        assert_eq!(
            framer(Suffix::Lf).push(b"123\n456\n", t),
            vec![line("123"), line("456")]
        );
        assert_eq!(
            framer(Suffix::Crlf).push(b"123\r\n456\r\n", t),
            vec![line("123"), line("456")]
        );
        // With CRLF configured, a lone CR inside a line is a control byte, not a terminator.
        assert_eq!(
            framer(Suffix::Crlf).push(b"12\r3\r\n", t),
            vec![Framed::Rejected(LineRejection::BinaryNoise {
                len: 4,
                control: 1
            })]
        );
    }

    #[test]
    fn a_line_split_across_reads_is_joined() {
        let t = Instant::now();
        let mut f = framer(Suffix::Crlf);
        assert_eq!(f.push(b"40063", t), vec![]);
        assert_eq!(f.push(b"8\r", t), vec![]);
        assert_eq!(f.push(b"\n", t), vec![line("400638")]);
    }

    #[test]
    fn crlf_from_the_scanner_is_tolerated_when_cr_or_lf_is_configured() {
        let t = Instant::now();
        assert_eq!(
            framer(Suffix::Cr).push(b"1\r\n2\r\n", t),
            vec![line("1"), line("2")]
        );
        assert_eq!(
            framer(Suffix::Lf).push(b"1\r\n2\r\n", t),
            vec![line("1"), line("2")]
        );
    }

    #[test]
    fn a_partial_line_is_discarded_after_the_timeout_and_the_next_line_is_clean() {
        let t = Instant::now();
        let mut f = framer(Suffix::Cr);
        assert_eq!(f.push(b"123", t), vec![]);
        assert_eq!(f.expire(t + Duration::from_millis(499)), None);
        assert_eq!(f.deadline(), Some(t + Duration::from_millis(500)));
        assert_eq!(
            f.expire(t + Duration::from_millis(500)),
            Some(LineRejection::PartialTimeout {
                len: 3,
                timeout_ms: 500
            })
        );
        assert_eq!(
            f.push(b"456\r", t + Duration::from_secs(1)),
            vec![line("456")]
        );
    }

    #[test]
    fn an_overlong_line_is_rejected_once_and_reading_resumes_at_the_next_terminator() {
        let t = Instant::now();
        let mut f = framer(Suffix::Lf);
        let mut out = f.push(&[b'9'; 40], t);
        out.extend(f.push(b"999\nok\n", t));
        assert_eq!(
            out,
            vec![
                Framed::Rejected(LineRejection::Overlong { max: 16 }),
                line("ok")
            ]
        );
        // Exactly the limit is fine.
        assert_eq!(f.push(&[b'7'; 16], t), vec![]);
        assert_eq!(f.push(b"\n", t), vec![line(&"7".repeat(16))]);
    }

    #[test]
    fn invalid_utf8_and_control_bytes_are_rejected_with_a_reason() {
        let t = Instant::now();
        let mut f = framer(Suffix::Cr);
        assert_eq!(
            f.push(b"ab\xff\xfe\r", t),
            vec![Framed::Rejected(LineRejection::InvalidUtf8 { len: 4 })]
        );
        assert_eq!(
            f.push(b"\x00\x01\x1bq\r", t),
            vec![Framed::Rejected(LineRejection::BinaryNoise {
                len: 4,
                control: 3
            })]
        );
        // C1 controls arrive as valid UTF-8 (found by cargo fuzz: U+009A inside a line).
        assert_eq!(
            f.push("A\u{9a}1\u{9b}2\r".as_bytes(), t),
            vec![Framed::Rejected(LineRejection::BinaryNoise {
                len: 7,
                control: 2
            })]
        );
        assert_eq!(f.push("Peña\t1\r".as_bytes(), t), vec![line("Peña\t1")]);
    }

    #[test]
    fn empty_lines_are_ignored() {
        let t = Instant::now();
        assert_eq!(framer(Suffix::Cr).push(b"\r\r\r", t), vec![]);
    }

    #[test]
    fn a_disconnect_mid_line_is_reported() {
        let mut f = framer(Suffix::Cr);
        f.push(b"12", Instant::now());
        assert_eq!(f.reset(), Some(LineRejection::Disconnected { len: 2 }));
        assert_eq!(f.reset(), None);
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic_and_lines_respect_the_limit(
            chunks in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..64), 0..16),
            suffix in prop_oneof![Just(Suffix::Cr), Just(Suffix::Lf), Just(Suffix::Crlf)],
        ) {
            let t = Instant::now();
            let mut f = framer(suffix);
            for (i, c) in chunks.iter().enumerate() {
                for out in f.push(c, t + Duration::from_millis(100 * i as u64)) {
                    if let Framed::Line(l) = out {
                        prop_assert!(l.len() <= 16);
                        prop_assert!(!l.bytes().any(|b| b < 0x20 && b != b'\t'));
                    }
                }
            }
        }
    }
}
