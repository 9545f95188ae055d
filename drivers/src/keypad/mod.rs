//! USB keypads (or keyboards) that operate the kiosk without touch: a pure decoder from Linux
//! `input_event` key events to [`Key`]s and the hold of the start key, the reader that grabs the
//! evdev node exclusively and feeds the decoder, and a simulator ([`KeypadSim`]) that writes the
//! same `input_event` records into a FIFO read by the same reader code.
//!
//! Data flow: keypad → **driver** → [`KeypadEvent`] → firmware (keys to the screen, the held
//! start key to the journey). The decoder ignores auto-repeat (EN 301 549 5.7: a held key never
//! types twice), so holding the start key is one event, whatever the keyboard's repeat rate.
//!
//! Keys, by evdev code (`linux/input-event-codes.h`), so the result does not depend on the
//! desktop's layout or on Num Lock:
//!
//! | key | codes |
//! |---|---|
//! | previous | Up, Left, Page Up, keypad `-` |
//! | next | Down, Right, Page Down, Tab, keypad `+` |
//! | enter (activate) | Enter, keypad Enter, Space |
//! | back (go back, cancel) | Backspace, Esc, keypad `/`, keypad `.` |
//! | help (say the screen again) | F1, Help, `h`, keypad `*` |
//! | digit n (the n-th choice) | `0`–`9` on the top row and the keypad |
//! | volume | Volume Up / Volume Down |

pub mod settings;
pub mod sim;

use std::fs::File;
use std::io::Read;
use std::os::fd::AsFd;
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

pub use settings::{KeypadSettings, StartKey};
pub use sim::{KeypadSim, SimError};

use crate::Health;
use crate::card::hid::{EV_KEY, INPUT_EVENT_SIZE, parse_input_events};

/// What a key means to the kiosk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "key", content = "n", rename_all = "snake_case")]
pub enum Key {
    /// Focus the previous control.
    Prev,
    /// Focus the next control.
    Next,
    /// Activate the focused control.
    Enter,
    /// Go back, or cancel.
    Back,
    /// Say the screen again, with how to use the keypad.
    Help,
    /// Pick the n-th choice (0 is the tenth).
    Digit(u8),
    /// Louder.
    VolumeUp,
    /// Softer.
    VolumeDown,
}

/// evdev key codes the keypad knows (from `linux/input-event-codes.h`).
pub mod codes {
    /// `KEY_ESC`.
    pub const ESC: u16 = 1;
    /// `KEY_1` (`KEY_2`.. follow; `KEY_0` is 11).
    pub const K1: u16 = 2;
    /// `KEY_0`.
    pub const K0: u16 = 11;
    /// `KEY_5`.
    pub const K5: u16 = 6;
    /// `KEY_BACKSPACE`.
    pub const BACKSPACE: u16 = 14;
    /// `KEY_TAB`.
    pub const TAB: u16 = 15;
    /// `KEY_ENTER`.
    pub const ENTER: u16 = 28;
    /// `KEY_H`.
    pub const H: u16 = 35;
    /// `KEY_KPASTERISK`.
    pub const KP_ASTERISK: u16 = 55;
    /// `KEY_SPACE`.
    pub const SPACE: u16 = 57;
    /// `KEY_F1`.
    pub const F1: u16 = 59;
    /// `KEY_KP7`.
    pub const KP7: u16 = 71;
    /// `KEY_KP8`.
    pub const KP8: u16 = 72;
    /// `KEY_KP9`.
    pub const KP9: u16 = 73;
    /// `KEY_KPMINUS`.
    pub const KP_MINUS: u16 = 74;
    /// `KEY_KP4`.
    pub const KP4: u16 = 75;
    /// `KEY_KP5`.
    pub const KP5: u16 = 76;
    /// `KEY_KP6`.
    pub const KP6: u16 = 77;
    /// `KEY_KPPLUS`.
    pub const KP_PLUS: u16 = 78;
    /// `KEY_KP1`.
    pub const KP1: u16 = 79;
    /// `KEY_KP2`.
    pub const KP2: u16 = 80;
    /// `KEY_KP3`.
    pub const KP3: u16 = 81;
    /// `KEY_KP0`.
    pub const KP0: u16 = 82;
    /// `KEY_KPDOT`.
    pub const KP_DOT: u16 = 83;
    /// `KEY_KPENTER`.
    pub const KP_ENTER: u16 = 96;
    /// `KEY_KPSLASH`.
    pub const KP_SLASH: u16 = 98;
    /// `KEY_UP`.
    pub const UP: u16 = 103;
    /// `KEY_PAGEUP`.
    pub const PAGE_UP: u16 = 104;
    /// `KEY_LEFT`.
    pub const LEFT: u16 = 105;
    /// `KEY_RIGHT`.
    pub const RIGHT: u16 = 106;
    /// `KEY_DOWN`.
    pub const DOWN: u16 = 108;
    /// `KEY_PAGEDOWN`.
    pub const PAGE_DOWN: u16 = 109;
    /// `KEY_VOLUMEDOWN`.
    pub const VOLUME_DOWN: u16 = 114;
    /// `KEY_VOLUMEUP`.
    pub const VOLUME_UP: u16 = 115;
    /// `KEY_HELP`.
    pub const HELP: u16 = 138;
}

/// The meaning of an evdev key code, if the keypad gives it one.
pub fn key_of(code: u16) -> Option<Key> {
    use codes::*;
    Some(match code {
        UP | LEFT | PAGE_UP | KP_MINUS => Key::Prev,
        DOWN | RIGHT | PAGE_DOWN | TAB | KP_PLUS => Key::Next,
        ENTER | KP_ENTER | SPACE => Key::Enter,
        BACKSPACE | ESC | KP_SLASH | KP_DOT => Key::Back,
        F1 | HELP | H | KP_ASTERISK => Key::Help,
        VOLUME_UP => Key::VolumeUp,
        VOLUME_DOWN => Key::VolumeDown,
        K0 | KP0 => Key::Digit(0),
        c @ K1..=10 => Key::Digit(u8::try_from(c - K1 + 1).unwrap_or(0)),
        KP1 => Key::Digit(1),
        KP2 => Key::Digit(2),
        KP3 => Key::Digit(3),
        KP4 => Key::Digit(4),
        KP5 => Key::Digit(5),
        KP6 => Key::Digit(6),
        KP7 => Key::Digit(7),
        KP8 => Key::Digit(8),
        KP9 => Key::Digit(9),
        _ => return None,
    })
}

/// Whether `code` is the physical start key.
fn is_start_key(start: StartKey, code: u16) -> bool {
    match start {
        StartKey::Five => code == codes::K5 || code == codes::KP5,
        StartKey::Enter => code == codes::ENTER || code == codes::KP_ENTER,
    }
}

/// What a keypad reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeypadEvent {
    /// A key was pressed (the start key: released before the hold time).
    Key(Key),
    /// The start key was held for the hold time: toggle accessible mode.
    StartHeld,
    /// The keypad's health changed.
    Health(Health),
}

/// Turns key events into [`KeypadEvent`]s. Pure: events and time in, events out.
///
/// Every key acts when pressed, except the start key: it acts when released (a short press is
/// its ordinary meaning), or as [`KeypadEvent::StartHeld`] once held for the hold time (the
/// release after that is swallowed).
#[derive(Debug)]
pub struct KeypadDecoder {
    start: StartKey,
    hold: Duration,
    /// The start key, down since then; `true` once its hold was reported.
    held: Option<(u16, Instant, bool)>,
}

impl KeypadDecoder {
    /// A decoder whose `start` key, held for `hold`, reports [`KeypadEvent::StartHeld`].
    pub fn new(start: StartKey, hold: Duration) -> Self {
        KeypadDecoder {
            start,
            hold,
            held: None,
        }
    }

    /// Feeds one `input_event` (`type`, `code`, `value`) seen at `now`.
    pub fn push(&mut self, ev_type: u16, code: u16, value: i32, now: Instant) -> Vec<KeypadEvent> {
        let mut out: Vec<KeypadEvent> = self.expire(now).into_iter().collect();
        // value 2 is the keyboard's auto-repeat: a held key acts once (EN 301 549 5.7).
        if ev_type != EV_KEY || value == 2 {
            return out;
        }
        let pressed = value == 1;
        if is_start_key(self.start, code) {
            match (pressed, self.held) {
                (true, None) => self.held = Some((code, now, false)),
                (false, Some((c, _, fired))) if c == code => {
                    self.held = None;
                    if !fired {
                        out.extend(key_of(code).map(KeypadEvent::Key));
                    }
                }
                _ => {}
            }
            return out;
        }
        if pressed {
            out.extend(key_of(code).map(KeypadEvent::Key));
        }
        out
    }

    /// Reports the start key's hold once it has been down for the hold time at `now`.
    pub fn expire(&mut self, now: Instant) -> Option<KeypadEvent> {
        match &mut self.held {
            Some((_, since, fired))
                if !*fired && now.saturating_duration_since(*since) >= self.hold =>
            {
                *fired = true;
                Some(KeypadEvent::StartHeld)
            }
            _ => None,
        }
    }

    /// When the start key, if it is down, will have been held long enough.
    pub fn deadline(&self) -> Option<Instant> {
        match self.held {
            Some((_, since, false)) => Some(since + self.hold),
            _ => None,
        }
    }

    /// Forgets a key that was down (the keypad went away).
    pub fn reset(&mut self) {
        self.held = None;
    }
}

/// Errors of a keypad's evdev node.
#[derive(Debug, thiserror::Error)]
pub enum KeypadError {
    /// The node cannot be opened.
    #[error(
        "keypad at {path} cannot be opened; check that it is plugged in, the /dev/input/by-id path and that the kiosk user is in the input group"
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
        "keypad at {path} cannot be grabbed exclusively; another program (a desktop session?) holds it"
    )]
    Grab {
        /// The evdev node.
        path: String,
        /// What the kernel said.
        #[source]
        source: nix::Error,
    },
    /// Reading failed (typically: unplugged).
    #[error("keypad at {path} stopped answering; it was probably unplugged")]
    Read {
        /// The evdev node.
        path: String,
        /// What the kernel said.
        #[source]
        source: std::io::Error,
    },
    /// The simulator could not start.
    #[error("keypad simulator cannot start")]
    Simulator(#[from] SimError),
    /// The worker thread could not start.
    #[error("cannot start the keypad thread")]
    Thread(#[source] std::io::Error),
}

mod ioctl {
    //! `EVIOCGRAB` (`_IOW('E', 0x90, int)`): an exclusive grab of an evdev node.
    nix::ioctl_write_int!(eviocgrab, b'E', 0x90);
}
use ioctl::eviocgrab;

/// A keypad's event node, read as raw `struct input_event` records. A character device (the
/// real keypad) is grabbed exclusively, so its keys never reach the browser or a console; a FIFO
/// (the simulator) has nothing to grab and is read alike.
struct EventNode {
    path: String,
    file: File,
    /// A partial record left from the last read.
    partial: Vec<u8>,
}

impl EventNode {
    fn open(path: &str) -> Result<Self, KeypadError> {
        use std::os::fd::AsRawFd;
        use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
        let open_err = |source| KeypadError::Open {
            path: path.to_owned(),
            source,
        };
        let file = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NONBLOCK)
            .open(path)
            .map_err(open_err)?;
        let kind = file.metadata().map_err(open_err)?.file_type();
        if kind.is_char_device() {
            // SAFETY: EVIOCGRAB takes an int by value on the evdev fd we own for this call.
            unsafe { eviocgrab(file.as_raw_fd(), 1) }.map_err(|source| KeypadError::Grab {
                path: path.to_owned(),
                source,
            })?;
        }
        Ok(EventNode {
            path: path.to_owned(),
            file,
            partial: Vec::new(),
        })
    }

    /// Waits up to `timeout` and returns the records read as `(type, code, value)`.
    fn read(&mut self, timeout: Duration) -> Result<Vec<(u16, u16, i32)>, KeypadError> {
        use nix::poll::{PollFd, PollFlags, PollTimeout};
        let read_err = |source| KeypadError::Read {
            path: self.path.clone(),
            source,
        };
        let millis = u16::try_from(timeout.as_millis()).unwrap_or(u16::MAX);
        let mut fds = [PollFd::new(self.file.as_fd(), PollFlags::POLLIN)];
        match nix::poll::poll(&mut fds, PollTimeout::from(millis)) {
            Ok(0) | Err(nix::errno::Errno::EINTR) => return Ok(Vec::new()),
            Ok(_) => {}
            Err(e) => return Err(read_err(std::io::Error::from(e))),
        }
        let revents = fds[0].revents().unwrap_or(PollFlags::empty());
        let mut buf = [0u8; INPUT_EVENT_SIZE * 64];
        match self.file.read(&mut buf) {
            Ok(0) => Err(read_err(std::io::Error::from(
                std::io::ErrorKind::UnexpectedEof,
            ))),
            Ok(n) => {
                self.partial.extend_from_slice(&buf[..n]);
                let whole = self.partial.len() / INPUT_EVENT_SIZE * INPUT_EVENT_SIZE;
                let events = parse_input_events(&self.partial[..whole])
                    .into_iter()
                    .map(|e| (e.kind, e.code, e.value))
                    .collect();
                self.partial.drain(..whole);
                Ok(events)
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                if revents.intersects(PollFlags::POLLHUP | PollFlags::POLLERR) {
                    return Err(read_err(std::io::Error::from(
                        std::io::ErrorKind::NotConnected,
                    )));
                }
                Ok(Vec::new())
            }
            Err(e) => Err(read_err(e)),
        }
    }
}

/// Longest single wait for events, so a stop request or the hold time is seen promptly.
const READ_SLICE: Duration = Duration::from_millis(50);
/// How often a missing keypad is looked for again.
const REOPEN: Duration = Duration::from_millis(500);

/// A running keypad. Dropping it stops its thread and releases the device.
pub struct KeypadHandle {
    events: Receiver<KeypadEvent>,
    stop: Option<Sender<()>>,
    thread: Option<JoinHandle<()>>,
    sim: Option<KeypadSim>,
    device: String,
}

impl KeypadHandle {
    /// Waits up to `timeout` for the next event.
    pub fn next_event(&self, timeout: Duration) -> Option<KeypadEvent> {
        self.events.recv_timeout(timeout).ok()
    }

    /// The simulator behind this keypad, for `Simulated` settings.
    pub fn simulator(&self) -> Option<KeypadSim> {
        self.sim.clone()
    }

    /// The node the reader opens.
    pub fn device(&self) -> &str {
        &self.device
    }
}

impl Drop for KeypadHandle {
    fn drop(&mut self) {
        self.stop.take();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl std::fmt::Debug for KeypadHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeypadHandle")
            .field("device", &self.device)
            .finish_non_exhaustive()
    }
}

/// Starts the keypad a hardware profile describes; `Ok(None)` when it has none.
pub fn open(settings: &KeypadSettings) -> Result<Option<KeypadHandle>, KeypadError> {
    let (device, sim, start, hold_ms) = match settings {
        KeypadSettings::None => return Ok(None),
        KeypadSettings::Evdev {
            device,
            start_key,
            hold_ms,
        } => (device.clone(), None, *start_key, *hold_ms),
        KeypadSettings::Simulated { start_key, hold_ms } => {
            let sim = KeypadSim::new()?;
            let path = sim.path().to_string_lossy().into_owned();
            (path, Some(sim), *start_key, *hold_ms)
        }
    };
    let decoder = KeypadDecoder::new(start, Duration::from_millis(u64::from(hold_ms)));
    let (tx, events) = mpsc::channel();
    let (stop, stop_rx) = mpsc::channel();
    let path = device.clone();
    let thread = std::thread::Builder::new()
        .name("keypad".into())
        .spawn(move || run(&path, decoder, &tx, &stop_rx))
        .map_err(KeypadError::Thread)?;
    Ok(Some(KeypadHandle {
        events,
        stop: Some(stop),
        thread: Some(thread),
        sim,
        device,
    }))
}

fn stopped(stop: &Receiver<()>) -> bool {
    !matches!(stop.try_recv(), Err(mpsc::TryRecvError::Empty))
}

/// Runs until stopped: open (and grab), decode, report health, reopen after an unplug.
fn run(path: &str, mut decoder: KeypadDecoder, tx: &Sender<KeypadEvent>, stop: &Receiver<()>) {
    let mut health: Option<Health> = None;
    let mut report = |h: Health| -> bool {
        if health.as_ref() == Some(&h) {
            return true;
        }
        tracing::info!(target: "kiosk_drivers::keypad", health = %h, "keypad health changed");
        health = Some(h.clone());
        tx.send(KeypadEvent::Health(h)).is_ok()
    };
    loop {
        let mut node = match EventNode::open(path) {
            Ok(node) => node,
            Err(e) => {
                if !report(Health::absent(e.to_string())) {
                    return;
                }
                match stop.recv_timeout(REOPEN) {
                    Err(RecvTimeoutError::Timeout) => continue,
                    _ => return,
                }
            }
        };
        if !report(Health::ok()) {
            return;
        }
        let failure = loop {
            if stopped(stop) {
                return;
            }
            let now = Instant::now();
            let slice = decoder
                .deadline()
                .map_or(READ_SLICE, |d| {
                    d.saturating_duration_since(now).min(READ_SLICE)
                })
                .max(Duration::from_millis(1));
            let events = match node.read(slice) {
                Ok(events) => events,
                Err(e) => break e,
            };
            let now = Instant::now();
            let mut out: Vec<KeypadEvent> = Vec::new();
            for (t, c, v) in events {
                out.extend(decoder.push(t, c, v, now));
            }
            out.extend(decoder.expire(now));
            for event in out {
                if tx.send(event).is_err() {
                    return;
                }
            }
        };
        drop(node);
        decoder.reset();
        if !report(Health::absent(failure.to_string())) {
            return;
        }
        match stop.recv_timeout(REOPEN) {
            Err(RecvTimeoutError::Timeout) => {}
            _ => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decoder() -> (KeypadDecoder, Instant) {
        (
            KeypadDecoder::new(StartKey::Five, Duration::from_millis(2_000)),
            Instant::now(),
        )
    }

    const fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn arrows_and_keypad_operators_move_focus_enter_activates_backspace_goes_back() {
        let (mut d, t) = decoder();
        let press = |d: &mut KeypadDecoder, code| d.push(EV_KEY, code, 1, t);
        assert_eq!(press(&mut d, codes::DOWN), [KeypadEvent::Key(Key::Next)]);
        assert_eq!(press(&mut d, codes::KP_PLUS), [KeypadEvent::Key(Key::Next)]);
        assert_eq!(press(&mut d, codes::UP), [KeypadEvent::Key(Key::Prev)]);
        assert_eq!(
            press(&mut d, codes::KP_ENTER),
            [KeypadEvent::Key(Key::Enter)]
        );
        assert_eq!(
            press(&mut d, codes::BACKSPACE),
            [KeypadEvent::Key(Key::Back)]
        );
        assert_eq!(press(&mut d, codes::F1), [KeypadEvent::Key(Key::Help)]);
        assert_eq!(press(&mut d, codes::KP3), [KeypadEvent::Key(Key::Digit(3))]);
        assert_eq!(
            press(&mut d, 4),
            [KeypadEvent::Key(Key::Digit(3))],
            "top-row 3"
        );
        assert_eq!(press(&mut d, codes::K0), [KeypadEvent::Key(Key::Digit(0))]);
        assert_eq!(press(&mut d, 30), [], "a letter means nothing here");
    }

    #[test]
    fn releases_sync_and_auto_repeat_do_nothing() {
        let (mut d, t) = decoder();
        assert_eq!(
            d.push(EV_KEY, codes::DOWN, 1, t),
            [KeypadEvent::Key(Key::Next)]
        );
        for _ in 0..20 {
            assert_eq!(d.push(EV_KEY, codes::DOWN, 2, t), [], "auto-repeat");
        }
        assert_eq!(d.push(EV_KEY, codes::DOWN, 0, t), [], "release");
        assert_eq!(d.push(0, 0, 0, t), [], "EV_SYN");
        assert_eq!(d.push(4, 4, 0x70051, t), [], "EV_MSC scan code");
    }

    #[test]
    fn the_start_key_held_for_the_hold_time_is_one_start_and_its_release_is_swallowed() {
        let (mut d, t) = decoder();
        assert_eq!(d.push(EV_KEY, codes::KP5, 1, t), []);
        assert_eq!(d.deadline(), Some(t + ms(2_000)));
        assert_eq!(d.expire(t + ms(1_999)), None);
        for i in 0..50 {
            // The kernel repeats a held key every 33 ms after 250 ms.
            assert_eq!(d.push(EV_KEY, codes::KP5, 2, t + ms(250 + 33 * i)), []);
        }
        assert_eq!(d.expire(t + ms(2_000)), Some(KeypadEvent::StartHeld));
        assert_eq!(d.expire(t + ms(3_000)), None, "once per hold");
        assert_eq!(d.deadline(), None);
        assert_eq!(d.push(EV_KEY, codes::KP5, 0, t + ms(3_100)), [], "release");
    }

    #[test]
    fn a_short_press_of_the_start_key_is_its_digit_on_release() {
        let (mut d, t) = decoder();
        assert_eq!(d.push(EV_KEY, codes::K5, 1, t), []);
        assert_eq!(
            d.push(EV_KEY, codes::K5, 0, t + ms(300)),
            [KeypadEvent::Key(Key::Digit(5))]
        );
    }

    #[test]
    fn a_hold_seen_only_at_the_next_event_still_counts_before_that_event() {
        let (mut d, t) = decoder();
        d.push(EV_KEY, codes::KP5, 1, t);
        assert_eq!(
            d.push(EV_KEY, codes::DOWN, 1, t + ms(2_500)),
            [KeypadEvent::StartHeld, KeypadEvent::Key(Key::Next)]
        );
    }

    #[test]
    fn enter_can_be_the_start_key() {
        let mut d = KeypadDecoder::new(StartKey::Enter, ms(1_500));
        let t = Instant::now();
        assert_eq!(d.push(EV_KEY, codes::ENTER, 1, t), []);
        assert_eq!(
            d.push(EV_KEY, codes::ENTER, 0, t + ms(100)),
            [KeypadEvent::Key(Key::Enter)]
        );
        assert_eq!(
            d.push(EV_KEY, codes::KP5, 1, t),
            [KeypadEvent::Key(Key::Digit(5))]
        );
        d.push(EV_KEY, codes::ENTER, 1, t);
        assert_eq!(d.expire(t + ms(1_500)), Some(KeypadEvent::StartHeld));
    }

    #[test]
    fn a_keypad_unplugged_while_the_start_key_is_down_forgets_it() {
        let (mut d, t) = decoder();
        d.push(EV_KEY, codes::KP5, 1, t);
        d.reset();
        assert_eq!(d.expire(t + ms(5_000)), None);
    }
}
