//! Real pseudo-terminal pairs for simulators: a simulator holds the master side and a real serial
//! driver opens the slave side by path (`/dev/pts/N`), so the driver code under test is the code
//! that runs against a USB CDC-ACM or UART device in the field.
//!
//! Both sides are put in raw mode (no echo, no line editing, no CR/LF translation), so the bytes a
//! simulator writes are exactly the bytes the driver reads.

use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use nix::poll::{PollFd, PollFlags, PollTimeout};
use nix::sys::termios::{self, SetArg};

/// Errors opening or driving a pseudo-terminal pair.
#[derive(Debug, thiserror::Error)]
pub enum PtyError {
    /// `openpty` failed (no free ptys, or `/dev/pts` not mounted).
    #[error("cannot open a pseudo-terminal pair; check that /dev/pts is mounted and ptys are free")]
    Open(#[source] nix::Error),
    /// Raw mode could not be set on one side.
    #[error("cannot put the pseudo-terminal in raw mode")]
    RawMode(#[source] nix::Error),
    /// The slave's `/dev/pts/N` path could not be found.
    #[error("cannot find the path of the pseudo-terminal's slave side")]
    SlavePath(#[source] nix::Error),
    /// Cloning the master file descriptor failed.
    #[error("cannot duplicate the pseudo-terminal's master file descriptor")]
    Clone(#[source] io::Error),
}

/// An open pseudo-terminal pair: read and write the master side through this value (it implements
/// [`Read`] and [`Write`]); hand [`Pty::slave_path`] to the driver under test.
///
/// The pair keeps its own slave descriptor open, so bytes written before the driver opens the
/// slave are kept, and the driver may close and reopen the slave without the pair hanging up.
/// Dropping the `Pty` closes both sides: a driver holding the slave then sees a hang-up, as it would
/// when a USB serial device is unplugged.
#[derive(Debug)]
pub struct Pty {
    master: File,
    slave: OwnedFd,
    slave_path: PathBuf,
}

impl Pty {
    /// Opens a new pair in raw mode.
    pub fn open() -> Result<Self, PtyError> {
        let pair = nix::pty::openpty(None, None).map_err(PtyError::Open)?;
        for fd in [&pair.master, &pair.slave] {
            let mut attrs = termios::tcgetattr(fd.as_fd()).map_err(PtyError::RawMode)?;
            termios::cfmakeraw(&mut attrs);
            termios::tcsetattr(fd.as_fd(), SetArg::TCSANOW, &attrs).map_err(PtyError::RawMode)?;
        }
        let slave_path = nix::unistd::ttyname(pair.slave.as_fd()).map_err(PtyError::SlavePath)?;
        Ok(Pty {
            master: File::from(pair.master),
            slave: pair.slave,
            slave_path,
        })
    }

    /// Path of the slave side, e.g. `/dev/pts/3`: what the driver under test opens.
    pub fn slave_path(&self) -> &Path {
        &self.slave_path
    }

    /// A second handle on the master side (for a writer thread while this value reads).
    pub fn try_clone_master(&self) -> Result<File, PtyError> {
        self.master.try_clone().map_err(PtyError::Clone)
    }

    /// The slave descriptor the pair keeps open.
    pub fn slave_fd(&self) -> &OwnedFd {
        &self.slave
    }

    /// Reads what the driver wrote to the slave side, waiting up to `timeout` for the first byte
    /// and then taking everything already available. Returns an empty vector on timeout.
    pub fn read_available(&mut self, timeout: Duration) -> io::Result<Vec<u8>> {
        let mut out = Vec::new();
        if !wait_readable(&self.master, timeout)? {
            return Ok(out);
        }
        let mut buf = [0u8; 4096];
        loop {
            let n = self.master.read(&mut buf)?;
            out.extend_from_slice(&buf[..n]);
            if n == 0 || !wait_readable(&self.master, Duration::ZERO)? {
                return Ok(out);
            }
        }
    }

    /// Reads until `want` bytes arrived or `timeout` passed; returns what arrived.
    pub fn read_exact_timeout(&mut self, want: usize, timeout: Duration) -> io::Result<Vec<u8>> {
        let deadline = Instant::now() + timeout;
        let mut out = Vec::new();
        while out.len() < want {
            let left = deadline.saturating_duration_since(Instant::now());
            let chunk = self.read_available(left)?;
            if chunk.is_empty() {
                break;
            }
            out.extend_from_slice(&chunk);
        }
        Ok(out)
    }
}

impl Read for Pty {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.master.read(buf)
    }
}

impl Write for Pty {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.master.write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.master.flush()
    }
}

/// Whether `fd` becomes readable within `timeout`.
fn wait_readable(fd: &File, timeout: Duration) -> io::Result<bool> {
    let millis = u16::try_from(timeout.as_millis()).unwrap_or(u16::MAX);
    let mut fds = [PollFd::new(fd.as_fd(), PollFlags::POLLIN)];
    let n = nix::poll::poll(&mut fds, PollTimeout::from(millis)).map_err(io::Error::from)?;
    Ok(n > 0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs::OpenOptions;

    #[test]
    fn bytes_written_on_the_master_arrive_unchanged_on_the_slave() {
        let mut pty = Pty::open().unwrap();
        let mut slave = OpenOptions::new()
            .read(true)
            .write(true)
            .open(pty.slave_path())
            .unwrap();
        pty.write_all(b"A\r\nB\n\x00\xff").unwrap();
        let mut buf = [0u8; 7];
        slave.read_exact(&mut buf).unwrap();
        assert_eq!(&buf, b"A\r\nB\n\x00\xff");
        slave.write_all(b"ok\r").unwrap();
        assert_eq!(
            pty.read_exact_timeout(3, Duration::from_secs(5)).unwrap(),
            b"ok\r"
        );
    }
}
