//! The scanner simulator: a serial scanner on a real pseudo-terminal. The real serial driver opens
//! the simulator's port by path and reads what [`ScannerSim::scan`] writes, byte for byte as a
//! CDC-ACM scanner would send it.
//!
//! The port path is a symlink (like the `/dev/kiosk-scanner` a udev rule makes) to the current
//! `/dev/pts/N`: [`ScannerSim::unplug`] closes the pty and removes the link, as unplugging a USB
//! scanner removes its `/dev/ttyACM0`; [`ScannerSim::replug`] opens a new pty behind the same path.

use std::io::Write;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use super::settings::Suffix;
use crate::pty::{Pty, PtyError};

/// Errors of the scanner simulator.
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    /// The pseudo-terminal could not be opened.
    #[error("scanner simulator cannot open its pseudo-terminal")]
    Pty(#[from] PtyError),
    /// The port symlink or its directory could not be made.
    #[error("scanner simulator cannot create its port link at {path}")]
    Link {
        /// The link path.
        path: PathBuf,
        /// What the file system said.
        #[source]
        source: std::io::Error,
    },
    /// Writing into the pseudo-terminal failed.
    #[error("scanner simulator cannot write into its pseudo-terminal")]
    Write(#[source] std::io::Error),
    /// `scan` or `write_raw` while unplugged.
    #[error("scanner simulator is unplugged; replug it before scanning")]
    Unplugged,
}

/// A simulated serial scanner. Clones control the same scanner.
#[derive(Debug, Clone)]
pub struct ScannerSim {
    inner: Arc<Mutex<Inner>>,
}

#[derive(Debug)]
struct Inner {
    suffix: Suffix,
    pty: Option<Pty>,
    dir: PathBuf,
    link: PathBuf,
}

impl Drop for Inner {
    fn drop(&mut self) {
        // Best effort: a leftover link in the temp dir harms nothing.
        let _ = std::fs::remove_file(&self.link);
        let _ = std::fs::remove_dir(&self.dir);
    }
}

static NEXT_ID: AtomicU64 = AtomicU64::new(0);

impl ScannerSim {
    /// A plugged-in simulated scanner ending each code with `suffix`, and the port path the serial
    /// driver should open.
    pub fn new(suffix: Suffix) -> Result<(ScannerSim, PathBuf), SimError> {
        let id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
        let dir =
            std::env::temp_dir().join(format!("kiosk-scanner-sim-{}-{id}", std::process::id()));
        std::fs::create_dir_all(&dir).map_err(|source| SimError::Link {
            path: dir.clone(),
            source,
        })?;
        let link = dir.join("scanner");
        let sim = ScannerSim {
            inner: Arc::new(Mutex::new(Inner {
                suffix,
                pty: None,
                dir,
                link: link.clone(),
            })),
        };
        sim.replug()?;
        Ok((sim, link))
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic while holding this lock leaves only a pty handle behind: still usable.
        self.inner
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The stable port path (a symlink to the current `/dev/pts/N`).
    pub fn port_path(&self) -> PathBuf {
        self.lock().link.clone()
    }

    /// The suffix appended to each scan.
    pub fn suffix(&self) -> Suffix {
        self.lock().suffix
    }

    /// Scans `text`: writes it and the suffix in one go, as a scanner does.
    pub fn scan(&self, text: &str) -> Result<(), SimError> {
        let suffix: &[u8] = match self.suffix() {
            Suffix::Cr => b"\r",
            Suffix::Lf => b"\n",
            Suffix::Crlf => b"\r\n",
        };
        let mut bytes = Vec::with_capacity(text.len() + 2);
        bytes.extend_from_slice(text.as_bytes());
        bytes.extend_from_slice(suffix);
        self.write_raw(&bytes)
    }

    /// Writes arbitrary bytes (noise, partial lines, invalid UTF-8).
    pub fn write_raw(&self, bytes: &[u8]) -> Result<(), SimError> {
        let mut inner = self.lock();
        let pty = inner.pty.as_mut().ok_or(SimError::Unplugged)?;
        pty.write_all(bytes).map_err(SimError::Write)?;
        pty.flush().map_err(SimError::Write)
    }

    /// Unplugs the scanner: closes the pty (the driver sees a hang-up) and removes the port path.
    pub fn unplug(&self) {
        let mut inner = self.lock();
        let _ = std::fs::remove_file(&inner.link);
        inner.pty = None;
    }

    /// Plugs the scanner (back) in: a new pty appears behind the same port path.
    pub fn replug(&self) -> Result<(), SimError> {
        let mut inner = self.lock();
        let pty = Pty::open()?;
        let tmp = inner.dir.join("scanner.new");
        let _ = std::fs::remove_file(&tmp);
        // Link then rename: the port path never points at a half-made link.
        std::os::unix::fs::symlink(pty.slave_path(), &tmp)
            .and_then(|()| std::fs::rename(&tmp, &inner.link))
            .map_err(|source| SimError::Link {
                path: inner.link.clone(),
                source,
            })?;
        inner.pty = Some(pty);
        Ok(())
    }

    /// Whether the scanner is plugged in.
    pub fn is_plugged(&self) -> bool {
        self.lock().pty.is_some()
    }

    /// The current `/dev/pts/N` behind the port path, while plugged in.
    pub fn pts_path(&self) -> Option<PathBuf> {
        self.lock()
            .pty
            .as_ref()
            .map(|p| p.slave_path().to_path_buf())
    }
}
