//! USB HID (keyboard emulation) scanners: a pure decoder from Linux `input_event` key streams to
//! lines of text, with its own US and Spanish keymaps, and the evdev reader that grabs the device
//! exclusively and feeds the decoder.
//!
//! The decoder never asks the desktop for its layout: a scanner programmed for the Spanish layout
//! types `-` with the key a US keyboard has `/` on, and the kiosk reads it as `-` because the
//! profile says `layout = "es"`, whatever the console or X keymap is (the garbled-code complaint of
//! Odoo's attendance kiosk). The grab keeps the scanner's keystrokes out of the kiosk browser.

use std::time::{Duration, Instant};

use super::line::{Framed, LineRejection};
use super::settings::KeyboardLayout;

/// `EV_SYN`.
pub const EV_SYN: u16 = 0;
/// `EV_KEY`.
pub const EV_KEY: u16 = 1;
/// `EV_MSC` (scan codes; ignored).
pub const EV_MSC: u16 = 4;

/// evdev key codes the decoder treats specially (from `linux/input-event-codes.h`).
pub mod keys {
    /// `KEY_ENTER`.
    pub const ENTER: u16 = 28;
    /// `KEY_KPENTER`.
    pub const KP_ENTER: u16 = 96;
    /// `KEY_LEFTSHIFT`.
    pub const LEFT_SHIFT: u16 = 42;
    /// `KEY_RIGHTSHIFT`.
    pub const RIGHT_SHIFT: u16 = 54;
    /// `KEY_RIGHTALT` (AltGr).
    pub const RIGHT_ALT: u16 = 100;
    /// `KEY_LEFTALT`.
    pub const LEFT_ALT: u16 = 56;
    /// `KEY_LEFTCTRL`.
    pub const LEFT_CTRL: u16 = 29;
    /// `KEY_RIGHTCTRL`.
    pub const RIGHT_CTRL: u16 = 97;
    /// `KEY_CAPSLOCK`.
    pub const CAPS_LOCK: u16 = 58;
    /// `KEY_NUMLOCK`.
    pub const NUM_LOCK: u16 = 69;
}

/// What one key gives in a layout: plain, with shift, with AltGr. `DEAD_*` marks a dead key.
type KeyMap = &'static [(u16, char, char, Option<char>)];

const DEAD_GRAVE: char = '\u{300}';
const DEAD_ACUTE: char = '\u{301}';
const DEAD_CIRCUMFLEX: char = '\u{302}';
const DEAD_DIAERESIS: char = '\u{308}';

/// Letters sit on the same keys in both layouts (QWERTY).
const LETTERS: &[(u16, char)] = &[
    (16, 'q'),
    (17, 'w'),
    (18, 'e'),
    (19, 'r'),
    (20, 't'),
    (21, 'y'),
    (22, 'u'),
    (23, 'i'),
    (24, 'o'),
    (25, 'p'),
    (30, 'a'),
    (31, 's'),
    (32, 'd'),
    (33, 'f'),
    (34, 'g'),
    (35, 'h'),
    (36, 'j'),
    (37, 'k'),
    (38, 'l'),
    (44, 'z'),
    (45, 'x'),
    (46, 'c'),
    (47, 'v'),
    (48, 'b'),
    (49, 'n'),
    (50, 'm'),
];

/// Keypad with Num Lock on (scanners that type digits on the keypad), same in both layouts.
const KEYPAD: &[(u16, char)] = &[
    (71, '7'),
    (72, '8'),
    (73, '9'),
    (74, '-'),
    (75, '4'),
    (76, '5'),
    (77, '6'),
    (78, '+'),
    (79, '1'),
    (80, '2'),
    (81, '3'),
    (82, '0'),
    (83, '.'),
    (55, '*'),
    (98, '/'),
];

const US: KeyMap = &[
    (2, '1', '!', None),
    (3, '2', '@', None),
    (4, '3', '#', None),
    (5, '4', '$', None),
    (6, '5', '%', None),
    (7, '6', '^', None),
    (8, '7', '&', None),
    (9, '8', '*', None),
    (10, '9', '(', None),
    (11, '0', ')', None),
    (12, '-', '_', None),
    (13, '=', '+', None),
    (15, '\t', '\t', None),
    (26, '[', '{', None),
    (27, ']', '}', None),
    (39, ';', ':', None),
    (40, '\'', '"', None),
    (41, '`', '~', None),
    (43, '\\', '|', None),
    (51, ',', '<', None),
    (52, '.', '>', None),
    (53, '/', '?', None),
    (57, ' ', ' ', None),
    (86, '\\', '|', None),
];

const ES: KeyMap = &[
    (2, '1', '!', Some('|')),
    (3, '2', '"', Some('@')),
    (4, '3', '·', Some('#')),
    (5, '4', '$', Some('~')),
    (6, '5', '%', Some('€')),
    (7, '6', '&', Some('¬')),
    (8, '7', '/', None),
    (9, '8', '(', None),
    (10, '9', ')', None),
    (11, '0', '=', None),
    (12, '\'', '?', None),
    (13, '¡', '¿', None),
    (15, '\t', '\t', None),
    (26, DEAD_GRAVE, DEAD_CIRCUMFLEX, Some('[')),
    (27, '+', '*', Some(']')),
    (39, 'ñ', 'Ñ', None),
    (40, DEAD_ACUTE, DEAD_DIAERESIS, Some('{')),
    (41, 'º', 'ª', Some('\\')),
    (43, 'ç', 'Ç', Some('}')),
    (51, ',', ';', None),
    (52, '.', ':', None),
    (53, '-', '_', None),
    (57, ' ', ' ', None),
    (86, '<', '>', None),
];

/// Character of a key, or `None` when the layout has none for it.
fn key_char(
    layout: KeyboardLayout,
    code: u16,
    shift: bool,
    altgr: bool,
    caps: bool,
) -> Option<char> {
    if let Some(&(_, c)) = LETTERS.iter().find(|(k, _)| *k == code) {
        return match (layout, altgr) {
            (KeyboardLayout::Es, true) if c == 'e' => Some('€'),
            (_, true) => None,
            _ if shift ^ caps => Some(c.to_ascii_uppercase()),
            _ => Some(c),
        };
    }
    if let Some(&(_, c)) = KEYPAD.iter().find(|(k, _)| *k == code) {
        return (!altgr).then_some(c);
    }
    let map = match layout {
        KeyboardLayout::Us => US,
        KeyboardLayout::Es => ES,
    };
    let &(_, plain, shifted, alt) = map.iter().find(|(k, ..)| *k == code)?;
    if altgr {
        return alt;
    }
    // Caps Lock also shifts the letters of this row in the Spanish layout.
    let letter_like = matches!(plain, 'ñ' | 'ç');
    Some(if shift ^ (caps && letter_like) {
        shifted
    } else {
        plain
    })
}

/// Composes a dead accent with the next character (`´` + `a` = `á`); `None` if they do not combine.
fn compose(dead: char, c: char) -> Option<char> {
    const TABLE: &[(char, &str, &str)] = &[
        (DEAD_GRAVE, "aeiouAEIOU", "àèìòùÀÈÌÒÙ"),
        (DEAD_ACUTE, "aeiouAEIOU", "áéíóúÁÉÍÓÚ"),
        (DEAD_CIRCUMFLEX, "aeiouAEIOU", "âêîôûÂÊÎÔÛ"),
        (DEAD_DIAERESIS, "aeiouAEIOU", "äëïöüÄËÏÖÜ"),
    ];
    let (_, from, to) = TABLE.iter().find(|(d, ..)| *d == dead)?;
    let i = from.chars().position(|f| f == c)?;
    to.chars().nth(i)
}

/// The character a dead key types on its own (followed by space).
fn dead_alone(dead: char) -> char {
    match dead {
        DEAD_GRAVE => '`',
        DEAD_ACUTE => '´',
        DEAD_CIRCUMFLEX => '^',
        _ => '¨',
    }
}

/// Layout name for messages.
pub fn layout_name(layout: KeyboardLayout) -> &'static str {
    match layout {
        KeyboardLayout::Us => "us",
        KeyboardLayout::Es => "es",
    }
}

/// Turns key events into lines: Enter ends a line. Pure: events and time in, lines out.
#[derive(Debug)]
pub struct HidDecoder {
    layout: KeyboardLayout,
    max_len: usize,
    timeout: Duration,
    left_shift: bool,
    right_shift: bool,
    altgr: bool,
    ctrl: bool,
    caps: bool,
    dead: Option<char>,
    buf: String,
    started: Option<Instant>,
    bad: Option<LineRejection>,
    overlong: bool,
}

impl HidDecoder {
    /// A decoder for a scanner typing in `layout`, lines of at most `max_len` bytes, each finished
    /// within `timeout` of its first key.
    pub fn new(layout: KeyboardLayout, max_len: usize, timeout: Duration) -> Self {
        HidDecoder {
            layout,
            max_len,
            timeout,
            left_shift: false,
            right_shift: false,
            altgr: false,
            ctrl: false,
            caps: false,
            dead: None,
            buf: String::new(),
            started: None,
            bad: None,
            overlong: false,
        }
    }

    /// Feeds one `input_event` (`type`, `code`, `value`) seen at `now`.
    pub fn push(&mut self, ev_type: u16, code: u16, value: i32, now: Instant) -> Vec<Framed> {
        let mut out = Vec::new();
        if let Some(r) = self.expire(now) {
            out.push(Framed::Rejected(r));
        }
        if ev_type != EV_KEY {
            return out;
        }
        let pressed = value == 1;
        // value 2 is auto-repeat: a scanner never holds a key; a repeat is not a second character.
        if value == 2 {
            return out;
        }
        match code {
            keys::LEFT_SHIFT => self.left_shift = pressed,
            keys::RIGHT_SHIFT => self.right_shift = pressed,
            keys::RIGHT_ALT => self.altgr = pressed,
            keys::LEFT_CTRL | keys::RIGHT_CTRL => self.ctrl = pressed,
            keys::CAPS_LOCK if pressed => self.caps = !self.caps,
            keys::LEFT_ALT | keys::NUM_LOCK | keys::CAPS_LOCK => {}
            keys::ENTER | keys::KP_ENTER if pressed => out.extend(self.finish_line()),
            _ if pressed => self.key(code, now, &mut out),
            _ => {}
        }
        out
    }

    /// Feeds a recorded stream of `(type, code, value)` events, all at `now`.
    pub fn push_all(&mut self, events: &[(u16, u16, i32)], now: Instant) -> Vec<Framed> {
        events
            .iter()
            .flat_map(|&(t, c, v)| self.push(t, c, v, now))
            .collect()
    }

    /// Discards a partial line whose timeout has passed at `now`.
    pub fn expire(&mut self, now: Instant) -> Option<LineRejection> {
        let started = self.started?;
        if now.saturating_duration_since(started) < self.timeout {
            return None;
        }
        let len = self.buf.len();
        self.clear_line();
        Some(LineRejection::PartialTimeout {
            len,
            timeout_ms: self.timeout.as_millis() as u64,
        })
    }

    /// When the partial line (if any) times out.
    pub fn deadline(&self) -> Option<Instant> {
        self.started.map(|s| s + self.timeout)
    }

    /// Forgets the partial line and modifier state (the device went away); says so if there was
    /// a partial line.
    pub fn reset(&mut self) -> Option<LineRejection> {
        let had = self.started.map(|_| self.buf.len());
        *self = HidDecoder::new(self.layout, self.max_len, self.timeout);
        had.map(|len| LineRejection::Disconnected { len })
    }

    fn key(&mut self, code: u16, now: Instant, out: &mut Vec<Framed>) {
        if self.started.is_none() {
            self.started = Some(now);
        }
        let shift = self.left_shift || self.right_shift;
        let c = if self.ctrl {
            None
        } else {
            key_char(self.layout, code, shift, self.altgr, self.caps)
        };
        let Some(c) = c else {
            self.bad.get_or_insert(LineRejection::UnmappedKey {
                code,
                layout: layout_name(self.layout),
            });
            return;
        };
        if matches!(
            c,
            DEAD_GRAVE | DEAD_ACUTE | DEAD_CIRCUMFLEX | DEAD_DIAERESIS
        ) {
            if let Some(prev) = self.dead.replace(c) {
                self.append(dead_alone(prev), out);
            }
            return;
        }
        match self.dead.take() {
            Some(dead) if c == ' ' => self.append(dead_alone(dead), out),
            Some(dead) => match compose(dead, c) {
                Some(composed) => self.append(composed, out),
                None => {
                    self.append(dead_alone(dead), out);
                    self.append(c, out);
                }
            },
            None => self.append(c, out),
        }
    }

    fn append(&mut self, c: char, out: &mut Vec<Framed>) {
        if self.overlong {
            return;
        }
        self.buf.push(c);
        if self.buf.len() > self.max_len {
            self.buf.clear();
            self.overlong = true;
            out.push(Framed::Rejected(LineRejection::Overlong {
                max: self.max_len,
            }));
        }
    }

    fn finish_line(&mut self) -> Option<Framed> {
        if let Some(dead) = self.dead.take() {
            let mut sink = Vec::new();
            self.append(dead_alone(dead), &mut sink);
            if let Some(f) = sink.pop() {
                self.clear_line();
                return Some(f);
            }
        }
        let text = std::mem::take(&mut self.buf);
        let bad = self.bad.take();
        let overlong = self.overlong;
        self.clear_line();
        if overlong {
            return None;
        }
        if let Some(bad) = bad {
            return Some(Framed::Rejected(bad));
        }
        (!text.is_empty()).then_some(Framed::Line(text))
    }

    fn clear_line(&mut self) {
        self.buf.clear();
        self.started = None;
        self.bad = None;
        self.overlong = false;
        self.dead = None;
    }
}

/// Errors of the evdev side of a HID scanner.
#[derive(Debug, thiserror::Error)]
pub enum HidError {
    /// The evdev node cannot be opened.
    #[error(
        "scanner at {path} cannot be opened; check the cable and that the kiosk user is in the input group"
    )]
    Open {
        /// The evdev node.
        path: String,
        /// What the kernel said.
        #[source]
        source: std::io::Error,
    },
    /// Another process holds the device.
    #[error(
        "scanner at {path} cannot be grabbed exclusively; another program (a desktop session?) holds it"
    )]
    Grab {
        /// The evdev node.
        path: String,
        /// What the kernel said.
        #[source]
        source: std::io::Error,
    },
    /// Reading events failed (typically: unplugged).
    #[error("scanner at {path} stopped answering; it was probably unplugged")]
    Read {
        /// The evdev node.
        path: String,
        /// What the kernel said.
        #[source]
        source: std::io::Error,
    },
}

/// An evdev scanner, grabbed exclusively: its keystrokes reach the kiosk only.
pub struct HidDevice {
    path: String,
    dev: evdev::Device,
}

impl HidDevice {
    /// Opens and grabs the evdev node at `path`.
    pub fn open(path: &str) -> Result<Self, HidError> {
        let mut dev = evdev::Device::open(path).map_err(|source| HidError::Open {
            path: path.to_owned(),
            source,
        })?;
        dev.grab().map_err(|source| HidError::Grab {
            path: path.to_owned(),
            source,
        })?;
        dev.set_nonblocking(true).map_err(|source| HidError::Open {
            path: path.to_owned(),
            source,
        })?;
        Ok(HidDevice {
            path: path.to_owned(),
            dev,
        })
    }

    /// Waits up to `timeout` for events and returns them as `(type, code, value)`.
    pub fn read(&mut self, timeout: Duration) -> Result<Vec<(u16, u16, i32)>, HidError> {
        use nix::poll::{PollFd, PollFlags, PollTimeout};
        use std::os::fd::AsFd;
        let read_err = |source| HidError::Read {
            path: self.path.clone(),
            source,
        };
        let millis = u16::try_from(timeout.as_millis()).unwrap_or(u16::MAX);
        let mut fds = [PollFd::new(self.dev.as_fd(), PollFlags::POLLIN)];
        let ready = nix::poll::poll(&mut fds, PollTimeout::from(millis))
            .map_err(|e| read_err(std::io::Error::from(e)))?;
        if ready == 0 {
            return Ok(Vec::new());
        }
        let gone = PollFlags::POLLHUP | PollFlags::POLLERR | PollFlags::POLLNVAL;
        if fds[0].revents().is_some_and(|r| r.intersects(gone)) {
            return Err(read_err(std::io::Error::from(
                std::io::ErrorKind::NotConnected,
            )));
        }
        match self.dev.fetch_events() {
            Ok(events) => Ok(events
                .map(|e| (e.event_type().0, e.code(), e.value()))
                .collect()),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => Ok(Vec::new()),
            Err(e) => Err(read_err(e)),
        }
    }
}

/// How a HID scanner is reached.
#[derive(Debug, Clone)]
pub(crate) struct HidConfig {
    pub device: String,
    pub layout: KeyboardLayout,
    pub line_timeout: Duration,
    pub max_line: usize,
}

/// Longest a single wait for events lasts, so a stop request or a line timeout is seen promptly.
const READ_SLICE: Duration = Duration::from_millis(100);

/// Runs until stopped: open and grab, decode lines, report health, reopen after an unplug.
pub(crate) fn run(cfg: HidConfig, mut worker: super::Worker) {
    use super::WorkerExit::Stop;
    use crate::Health;
    let mut decoder = HidDecoder::new(cfg.layout, cfg.max_line, cfg.line_timeout);
    loop {
        let mut dev = match HidDevice::open(&cfg.device) {
            Ok(dev) => dev,
            Err(e) => {
                if worker.health(Health::absent(e.to_string())) == Stop
                    || worker.wait_retry() == Stop
                {
                    return;
                }
                continue;
            }
        };
        if worker.health(Health::ok()) == Stop {
            return;
        }
        let failure = loop {
            if worker.should_stop() {
                return;
            }
            let now = Instant::now();
            let slice = decoder
                .deadline()
                .map_or(READ_SLICE, |d| {
                    d.saturating_duration_since(now).min(READ_SLICE)
                })
                .max(Duration::from_millis(1));
            let events = match dev.read(slice) {
                Ok(events) => events,
                Err(e) => break e,
            };
            let now = Instant::now();
            let mut out: Vec<Framed> = decoder
                .expire(now)
                .map(Framed::Rejected)
                .into_iter()
                .collect();
            for (t, c, v) in events {
                out.extend(decoder.push(t, c, v, now));
            }
            for framed in out {
                if worker.framed(framed) == Stop {
                    return;
                }
            }
        };
        drop(dev);
        if let Some(r) = decoder.reset() {
            if worker.rejected(r.into()) == Stop {
                return;
            }
        }
        if worker.health(Health::absent(failure.to_string())) == Stop || worker.wait_retry() == Stop
        {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_missing_from_a_layout_have_no_character() {
        assert_eq!(key_char(KeyboardLayout::Us, 8, false, true, false), None);
        assert_eq!(key_char(KeyboardLayout::Es, 1, false, false, false), None);
        assert_eq!(
            key_char(KeyboardLayout::Es, 39, false, false, true),
            Some('Ñ')
        );
    }

    #[test]
    fn dead_accents_compose_with_vowels() {
        assert_eq!(compose(DEAD_ACUTE, 'a'), Some('á'));
        assert_eq!(compose(DEAD_DIAERESIS, 'U'), Some('Ü'));
        assert_eq!(compose(DEAD_GRAVE, 'x'), None);
    }
}
