//! Where things live in the kiosk's data directory.

use std::path::{Path, PathBuf};

/// The data directory (`/var/lib/kiosk` on an installed kiosk).
#[derive(Debug, Clone)]
pub struct DataDir {
    root: PathBuf,
}

impl DataDir {
    /// The data directory at `root`.
    pub fn new(root: &Path) -> Self {
        Self {
            root: root.to_owned(),
        }
    }

    /// The directory itself.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The SQLite journal.
    pub fn journal(&self) -> PathBuf {
        self.root.join("journal.db")
    }

    /// The device key that seals personal data at rest (0600).
    pub fn device_key(&self) -> PathBuf {
        self.root.join("device.key")
    }

    /// Enrollment credentials: kiosk id, device secret, tenant key (0600).
    pub fn credentials(&self) -> PathBuf {
        self.root.join("credentials.toml")
    }

    /// Printed tickets rendered as PNG (simulated printer).
    pub fn tickets(&self) -> PathBuf {
        self.root.join("tickets")
    }
}
