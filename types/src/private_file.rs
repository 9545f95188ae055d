//! Files that hold secrets or personal data (the CRM's database, the kiosk's journal) are
//! readable by their owner only: created 0600, and refused at start when someone made them
//! group- or world-readable, as the kiosk already refuses its key. SQLite creates a database's
//! `-wal` and `-shm` files with the database file's own mode, so they follow.

use std::fs::OpenOptions;
use std::io;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// Why a private file cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum PrivateFileError {
    /// It could not be created or inspected.
    #[error("cannot create or inspect {path}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// Other users may read or write it.
    #[error(
        "{path} is open to other users (mode {mode:04o}); it holds secrets and personal data: run `chmod 600 {path}` (and the same on its -wal and -shm files), then start again"
    )]
    Exposed {
        /// The file.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
}

/// Creates `path` empty with mode 0600 when it does not exist; refuses it when it is group- or
/// world-accessible.
pub fn ensure_private(path: &Path) -> Result<(), PrivateFileError> {
    let io = |source| PrivateFileError::Io {
        path: path.to_owned(),
        source,
    };
    match OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
    {
        Ok(_) => return Ok(()),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(io(e)),
    }
    let mode = std::fs::metadata(path).map_err(io)?.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(PrivateFileError::Exposed {
            path: path.to_owned(),
            mode,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_new_file_is_0600_and_an_exposed_one_is_refused_with_the_fix() {
        let dir = std::env::temp_dir().join(format!("private-file-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("crm.db");
        let _ = std::fs::remove_file(&path);
        ensure_private(&path).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        ensure_private(&path).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let err = ensure_private(&path).unwrap_err().to_string();
        assert!(
            err.contains("mode 0644") && err.contains("chmod 600"),
            "{err}"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
