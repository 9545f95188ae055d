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

/// The owner to give a file written as root for the service user.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Owner {
    /// User id.
    pub uid: u32,
    /// Group id.
    pub gid: u32,
}

/// Writes `bytes` to `path` atomically with mode 0600, owned by `owner` when given: a temporary
/// file beside it (created exclusively, never through a symbolic link: `O_EXCL|O_NOFOLLOW`),
/// handed to its owner through its open descriptor, fsynced, renamed over `path` (a rename
/// replaces a link at `path`, never writes through it), and the directory fsynced.
///
/// Safe as root in a directory the service user can write: a link the user planted as the
/// temporary file is removed (unlinking a link never touches its target) and the create then
/// refuses anything that appears in between; nothing is changed through a path after the
/// write, so no link can redirect an owner change to another file.
pub fn write_private(path: &Path, bytes: &[u8], owner: Option<Owner>) -> std::io::Result<()> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("file");
    let tmp = dir.join(format!(".{name}.tmp"));
    match std::fs::remove_file(&tmp) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
        _ => {}
    }
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW)
        .open(&tmp)?;
    if let Some(o) = owner {
        std::os::unix::fs::fchown(&f, Some(o.uid), Some(o.gid))?;
    }
    f.write_all(bytes)?;
    f.sync_all()?;
    drop(f);
    std::fs::rename(&tmp, path)?;
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt as _;

    #[test]
    fn a_planted_link_is_never_written_through() {
        let dir = tempfile::tempdir().unwrap();
        let victim = dir.path().join("victim");
        std::fs::write(&victim, b"root's file").unwrap();
        let target = dir.path().join("credentials.toml");
        // The service user plants links as the temporary file and as the file itself.
        std::os::unix::fs::symlink(&victim, dir.path().join(".credentials.toml.tmp")).unwrap();
        write_private(&target, b"secret", None).unwrap();
        assert_eq!(std::fs::read(&victim).unwrap(), b"root's file");
        assert_eq!(std::fs::read(&target).unwrap(), b"secret");
        std::os::unix::fs::symlink(&victim, dir.path().join("site.toml")).unwrap();
        write_private(&dir.path().join("site.toml"), b"config", None).unwrap();
        assert_eq!(std::fs::read(&victim).unwrap(), b"root's file");
        let meta = std::fs::symlink_metadata(dir.path().join("site.toml")).unwrap();
        assert!(
            meta.file_type().is_file(),
            "the link was replaced, not followed"
        );
        assert_eq!(meta.permissions().mode() & 0o777, 0o600);
    }
}
