//! The keypad simulator: a FIFO into which it writes Linux `struct input_event` records (key
//! press, auto-repeat, release, each followed by `SYN_REPORT`), exactly as the kernel delivers
//! them from `/dev/input/eventN`. The keypad's reader opens the FIFO by path and decodes it with
//! the code that reads a real keypad.

use std::fs::File;
use std::io::Write;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::card::hid::EV_KEY;

/// The kernel's auto-repeat: first repeat after 250 ms, then every 33 ms.
const REPEAT_DELAY: Duration = Duration::from_millis(250);
const REPEAT_PERIOD: Duration = Duration::from_millis(33);

/// Errors of the keypad simulator.
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    /// The FIFO could not be made or opened.
    #[error("keypad simulator cannot make its event FIFO at {path}")]
    Fifo {
        /// The FIFO.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// Writing events failed.
    #[error("keypad simulator cannot write its events")]
    Write(#[source] std::io::Error),
}

/// A simulated USB keypad. Clones press keys on the same keypad.
#[derive(Debug, Clone)]
pub struct KeypadSim {
    inner: Arc<Mutex<Inner>>,
}

#[derive(Debug)]
struct Inner {
    dir: PathBuf,
    path: PathBuf,
    fifo: File,
}

impl Drop for Inner {
    fn drop(&mut self) {
        // Best effort: a leftover FIFO in the temp dir harms nothing.
        let _ = std::fs::remove_file(&self.path);
        let _ = std::fs::remove_dir(&self.dir);
    }
}

static NEXT_ID: AtomicU64 = AtomicU64::new(0);

/// One `struct input_event` (64-bit layout), stamped now.
fn record(kind: u16, code: u16, value: i32) -> [u8; 24] {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    let mut r = [0u8; 24];
    r[0..8].copy_from_slice(&i64::try_from(now.as_secs()).unwrap_or(0).to_ne_bytes());
    r[8..16].copy_from_slice(&i64::from(now.subsec_micros()).to_ne_bytes());
    r[16..18].copy_from_slice(&kind.to_ne_bytes());
    r[18..20].copy_from_slice(&code.to_ne_bytes());
    r[20..24].copy_from_slice(&value.to_ne_bytes());
    r
}

impl KeypadSim {
    /// A plugged-in simulated keypad; its event node is [`KeypadSim::path`].
    pub fn new() -> Result<KeypadSim, SimError> {
        use std::os::unix::fs::OpenOptionsExt;
        let id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
        let dir =
            std::env::temp_dir().join(format!("kiosk-keypad-sim-{}-{id}", std::process::id()));
        let path = dir.join("event-kbd");
        let fifo_err = |source| SimError::Fifo {
            path: path.clone(),
            source,
        };
        std::fs::create_dir_all(&dir).map_err(fifo_err)?;
        let _ = std::fs::remove_file(&path);
        nix::unistd::mkfifo(&path, nix::sys::stat::Mode::from_bits_truncate(0o600))
            .map_err(|e| fifo_err(std::io::Error::from(e)))?;
        // Read-write: opening never waits for a reader, and the reader never sees a hang-up
        // while the simulator lives (a keypad stays plugged in).
        let fifo = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags(libc::O_NONBLOCK)
            .open(&path)
            .map_err(fifo_err)?;
        Ok(KeypadSim {
            inner: Arc::new(Mutex::new(Inner { dir, path, fifo })),
        })
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic while holding this lock leaves only a file handle behind: still usable.
        self.inner
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The event node the reader opens.
    pub fn path(&self) -> PathBuf {
        self.lock().path.clone()
    }

    /// Writes one key event and its `SYN_REPORT`.
    pub fn event(&self, code: u16, value: i32) -> Result<(), SimError> {
        let mut bytes = Vec::with_capacity(48);
        bytes.extend_from_slice(&record(EV_KEY, code, value));
        bytes.extend_from_slice(&record(0, 0, 0));
        let mut inner = self.lock();
        inner.fifo.write_all(&bytes).map_err(SimError::Write)
    }

    /// Presses and releases the key with evdev code `code`, as a quick finger does.
    pub fn tap(&self, code: u16) -> Result<(), SimError> {
        self.event(code, 1)?;
        std::thread::sleep(Duration::from_millis(60));
        self.event(code, 0)
    }

    /// Holds the key down for `hold`, with the kernel's auto-repeat events, then releases it.
    /// Blocks for `hold`, as the finger does.
    pub fn hold(&self, code: u16, hold: Duration) -> Result<(), SimError> {
        let start = std::time::Instant::now();
        self.event(code, 1)?;
        let mut next = REPEAT_DELAY;
        while next < hold {
            std::thread::sleep(next.saturating_sub(start.elapsed()));
            self.event(code, 2)?;
            next += REPEAT_PERIOD;
        }
        std::thread::sleep(hold.saturating_sub(start.elapsed()));
        self.event(code, 0)
    }
}
