//! How bytes reach the printer: USB printer class (`/dev/usb/lp0`), serial, raw TCP (port 9100),
//! a capture file, or the in-process virtual printer. Every transport has timeouts on connect,
//! write and read, so a printer that vanished fails fast with an error naming the device.

use std::collections::VecDeque;
use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::os::fd::AsFd;
use std::os::unix::fs::OpenOptionsExt;
use std::time::{Duration, Instant};

use nix::poll::{PollFd, PollFlags, PollTimeout};

use super::vprinter::VirtualPrinterHandle;

/// A transport failure, naming the device and what to check.
#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    /// The device node, port or file could not be opened.
    #[error(
        "cannot open printer at {device}; check that it is plugged in and switched on and that the hardware profile names the right device"
    )]
    Open {
        /// The device.
        device: String,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// The serial port could not be opened.
    #[error(
        "cannot open serial printer at {device}; check the port name and that no other program holds it"
    )]
    OpenSerial {
        /// The port.
        device: String,
        /// Why.
        #[source]
        source: serialport::Error,
    },
    /// Writing failed (unplugged, switched off, connection reset).
    #[error(
        "printer at {device} stopped accepting data; it may have been unplugged or switched off"
    )]
    Write {
        /// The device.
        device: String,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// Reading failed.
    #[error("cannot read from printer at {device}")]
    Read {
        /// The device.
        device: String,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// No progress within the timeout.
    #[error("printer at {device} did not {what} within {} ms; check that it is switched on and connected", .after.as_millis())]
    Timeout {
        /// The device.
        device: String,
        /// What it did not do (`answer the status query`, `accept data`, `accept the connection`).
        what: &'static str,
        /// The timeout.
        after: Duration,
    },
    /// The peer closed the connection or the device hung up.
    #[error(
        "printer at {device} closed the connection; it may have been switched off or unplugged"
    )]
    Closed {
        /// The device.
        device: String,
    },
    /// The transport cannot carry answers (a capture file).
    #[error("printer at {device} cannot report its status (it is a capture file)")]
    NoStatus {
        /// The device.
        device: String,
    },
}

/// A byte pipe to a printer.
pub trait Transport: Send {
    /// Human name of the device (`/dev/usb/lp0`, `tcp://10.0.0.9:9100`), used in every message.
    fn device(&self) -> &str;

    /// Sends all of `bytes` or fails.
    fn write_all(&mut self, bytes: &[u8]) -> Result<(), TransportError>;

    /// Fills `buf` with bytes from the printer, failing with [`TransportError::Timeout`] if they
    /// do not all arrive within `timeout`.
    fn read_exact(&mut self, buf: &mut [u8], timeout: Duration) -> Result<(), TransportError>;

    /// Drops bytes already received but not read (a late answer to an earlier query).
    fn discard_input(&mut self) -> Result<(), TransportError> {
        Ok(())
    }

    /// Whether the printer can answer real-time status queries over this transport.
    fn answers_status(&self) -> bool {
        true
    }
}

fn left(deadline: Instant) -> Duration {
    deadline.saturating_duration_since(Instant::now())
}

/// What a failed read from a printer means.
enum ReadFailure {
    /// Nothing arrived in time.
    TimedOut,
    /// A passing condition (interrupted, would block): read again while time is left.
    Retry,
    /// The device went away.
    Closed,
    /// Any other error.
    Failed(io::Error),
}

/// Fills `buf` before `timeout` with `read(buf, time left)`, the one read loop of every transport
/// that answers status queries; what differs per transport is how it waits and what its errors
/// mean.
fn read_exact_by(
    device: &str,
    buf: &mut [u8],
    timeout: Duration,
    mut read: impl FnMut(&mut [u8], Duration) -> Result<usize, ReadFailure>,
) -> Result<(), TransportError> {
    let deadline = Instant::now() + timeout;
    let timed_out = || TransportError::Timeout {
        device: device.to_owned(),
        what: "answer the status query",
        after: timeout,
    };
    let closed = || TransportError::Closed {
        device: device.to_owned(),
    };
    let mut got = 0;
    while got < buf.len() {
        let wait = left(deadline);
        if wait.is_zero() {
            return Err(timed_out());
        }
        match read(&mut buf[got..], wait) {
            Ok(0) | Err(ReadFailure::Closed) => return Err(closed()),
            Ok(n) => got += n,
            Err(ReadFailure::Retry) => {}
            Err(ReadFailure::TimedOut) => return Err(timed_out()),
            Err(ReadFailure::Failed(source)) => {
                return Err(TransportError::Read {
                    device: device.to_owned(),
                    source,
                });
            }
        }
    }
    Ok(())
}

fn poll_one(fd: &File, flags: PollFlags, timeout: Duration) -> io::Result<PollFlags> {
    let millis = u16::try_from(timeout.as_millis()).unwrap_or(u16::MAX);
    let mut fds = [PollFd::new(fd.as_fd(), flags)];
    let n = nix::poll::poll(&mut fds, PollTimeout::from(millis)).map_err(io::Error::from)?;
    Ok(if n == 0 {
        PollFlags::empty()
    } else {
        fds[0].revents().unwrap_or(PollFlags::empty())
    })
}

/// A USB printer class device (`/dev/usb/lp0`, or a udev symlink such as `/dev/kiosk-printer`),
/// opened read+write and non-blocking; writes and reads wait with `poll` up to their timeout.
/// The `usblp` kernel driver passes status answers back on read when the printer is
/// bidirectional (most ESC/POS USB printers are).
#[derive(Debug)]
pub struct UsbTransport {
    device: String,
    file: File,
    timeout: Duration,
}

impl UsbTransport {
    /// Opens `path`; `timeout` bounds each write.
    pub fn open(path: &str, timeout: Duration) -> Result<Self, TransportError> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
            .open(path)
            .map_err(|source| TransportError::Open {
                device: path.to_owned(),
                source,
            })?;
        Ok(UsbTransport {
            device: path.to_owned(),
            file,
            timeout,
        })
    }
}

impl Transport for UsbTransport {
    fn device(&self) -> &str {
        &self.device
    }

    fn write_all(&mut self, mut bytes: &[u8]) -> Result<(), TransportError> {
        let deadline = Instant::now() + self.timeout;
        let err = |source| TransportError::Write {
            device: self.device.clone(),
            source,
        };
        while !bytes.is_empty() {
            match self.file.write(bytes) {
                Ok(0) => {
                    return Err(TransportError::Closed {
                        device: self.device.clone(),
                    });
                }
                Ok(n) => bytes = &bytes[n..],
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    let rev =
                        poll_one(&self.file, PollFlags::POLLOUT, left(deadline)).map_err(err)?;
                    if rev.is_empty() {
                        return Err(TransportError::Timeout {
                            device: self.device.clone(),
                            what: "accept data",
                            after: self.timeout,
                        });
                    }
                    if rev.intersects(PollFlags::POLLHUP | PollFlags::POLLERR) {
                        return Err(TransportError::Closed {
                            device: self.device.clone(),
                        });
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(err(e)),
            }
        }
        Ok(())
    }

    fn read_exact(&mut self, buf: &mut [u8], timeout: Duration) -> Result<(), TransportError> {
        let file = &mut self.file;
        read_exact_by(&self.device, buf, timeout, |buf, wait| {
            let rev = poll_one(file, PollFlags::POLLIN, wait).map_err(ReadFailure::Failed)?;
            if rev.is_empty() {
                return Err(ReadFailure::TimedOut);
            }
            file.read(buf).map_err(|e| match e.kind() {
                io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted => ReadFailure::Retry,
                _ if rev.contains(PollFlags::POLLHUP) || e.raw_os_error() == Some(libc::EIO) => {
                    ReadFailure::Closed
                }
                _ => ReadFailure::Failed(e),
            })
        })
    }

    fn discard_input(&mut self) -> Result<(), TransportError> {
        let mut buf = [0u8; 256];
        loop {
            match self.file.read(&mut buf) {
                Ok(0) => return Ok(()),
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(source) => {
                    return Err(TransportError::Read {
                        device: self.device.clone(),
                        source,
                    });
                }
            }
        }
    }
}

/// A serial printer (RS-232 or USB CDC-ACM) through the `serialport` crate, 8N1, no flow control.
pub struct SerialTransport {
    device: String,
    port: serialport::TTYPort,
}

impl std::fmt::Debug for SerialTransport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SerialTransport")
            .field("device", &self.device)
            .finish()
    }
}

impl SerialTransport {
    /// Opens `path` at `baud`; `timeout` bounds each write.
    pub fn open(path: &str, baud: u32, timeout: Duration) -> Result<Self, TransportError> {
        let port = serialport::new(path, baud)
            .timeout(timeout)
            .open_native()
            .map_err(|source| TransportError::OpenSerial {
                device: path.to_owned(),
                source,
            })?;
        Ok(SerialTransport {
            device: path.to_owned(),
            port,
        })
    }
}

fn map_write(device: &str, e: io::Error, after: Duration) -> TransportError {
    match e.kind() {
        io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock => TransportError::Timeout {
            device: device.to_owned(),
            what: "accept data",
            after,
        },
        io::ErrorKind::BrokenPipe
        | io::ErrorKind::ConnectionReset
        | io::ErrorKind::ConnectionAborted => TransportError::Closed {
            device: device.to_owned(),
        },
        _ => TransportError::Write {
            device: device.to_owned(),
            source: e,
        },
    }
}

impl Transport for SerialTransport {
    fn device(&self) -> &str {
        &self.device
    }

    fn write_all(&mut self, bytes: &[u8]) -> Result<(), TransportError> {
        let after = serialport::SerialPort::timeout(&self.port);
        self.port
            .write_all(bytes)
            .and_then(|()| self.port.flush())
            .map_err(|e| map_write(&self.device, e, after))
    }

    fn read_exact(&mut self, buf: &mut [u8], timeout: Duration) -> Result<(), TransportError> {
        let port = &mut self.port;
        read_exact_by(&self.device, buf, timeout, |buf, wait| {
            serialport::SerialPort::set_timeout(port, wait)
                .map_err(|e| ReadFailure::Failed(e.into()))?;
            port.read(buf).map_err(|e| match e.kind() {
                io::ErrorKind::TimedOut
                | io::ErrorKind::WouldBlock
                | io::ErrorKind::Interrupted => ReadFailure::Retry,
                _ => ReadFailure::Failed(e),
            })
        })
    }

    fn discard_input(&mut self) -> Result<(), TransportError> {
        serialport::SerialPort::clear(&self.port, serialport::ClearBuffer::Input).map_err(|e| {
            TransportError::Read {
                device: self.device.clone(),
                source: e.into(),
            }
        })
    }
}

/// A network printer on raw TCP (usually port 9100), with connect, read and write timeouts.
#[derive(Debug)]
pub struct TcpTransport {
    device: String,
    stream: TcpStream,
    timeout: Duration,
}

impl TcpTransport {
    /// Connects to `address` (`host:port`) within `timeout`.
    pub fn connect(address: &str, timeout: Duration) -> Result<Self, TransportError> {
        let device = format!("tcp://{address}");
        let open = |source| TransportError::Open {
            device: device.clone(),
            source,
        };
        let addrs: Vec<_> = address.to_socket_addrs().map_err(open)?.collect();
        let mut last = io::Error::new(io::ErrorKind::NotFound, "address resolved to nothing");
        for addr in addrs {
            match TcpStream::connect_timeout(&addr, timeout) {
                Ok(stream) => {
                    stream.set_write_timeout(Some(timeout)).map_err(open)?;
                    stream.set_nodelay(true).map_err(open)?;
                    return Ok(TcpTransport {
                        device,
                        stream,
                        timeout,
                    });
                }
                Err(e) if e.kind() == io::ErrorKind::TimedOut => {
                    return Err(TransportError::Timeout {
                        device,
                        what: "accept the connection",
                        after: timeout,
                    });
                }
                Err(e) => last = e,
            }
        }
        Err(open(last))
    }
}

impl Transport for TcpTransport {
    fn device(&self) -> &str {
        &self.device
    }

    fn write_all(&mut self, bytes: &[u8]) -> Result<(), TransportError> {
        self.stream
            .write_all(bytes)
            .map_err(|e| map_write(&self.device, e, self.timeout))
    }

    fn read_exact(&mut self, buf: &mut [u8], timeout: Duration) -> Result<(), TransportError> {
        let stream = &mut self.stream;
        read_exact_by(&self.device, buf, timeout, |buf, wait| {
            stream
                .set_read_timeout(Some(wait))
                .map_err(ReadFailure::Failed)?;
            stream.read(buf).map_err(|e| match e.kind() {
                io::ErrorKind::TimedOut
                | io::ErrorKind::WouldBlock
                | io::ErrorKind::Interrupted => ReadFailure::Retry,
                io::ErrorKind::ConnectionReset | io::ErrorKind::ConnectionAborted => {
                    ReadFailure::Closed
                }
                _ => ReadFailure::Failed(e),
            })
        })
    }

    fn discard_input(&mut self) -> Result<(), TransportError> {
        let closed = || TransportError::Closed {
            device: self.device.clone(),
        };
        self.stream
            .set_nonblocking(true)
            .map_err(|source| TransportError::Read {
                device: self.device.clone(),
                source,
            })?;
        let mut buf = [0u8; 256];
        let result = loop {
            match self.stream.read(&mut buf) {
                // EOF here means the printer hung up: report it now rather than on the write.
                Ok(0) => break Err(closed()),
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break Ok(()),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => break Err(closed()),
            }
        };
        self.stream
            .set_nonblocking(false)
            .map_err(|source| TransportError::Read {
                device: self.device.clone(),
                source,
            })?;
        result
    }
}

/// Appends raw ESC/POS bytes to a file: a capture for `kiosk ticket-preview --escpos`.
#[derive(Debug)]
pub struct FileTransport {
    device: String,
    file: File,
}

impl FileTransport {
    /// Opens `path` for appending, creating it.
    pub fn open(path: &str) -> Result<Self, TransportError> {
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_err(|source| TransportError::Open {
                device: path.to_owned(),
                source,
            })?;
        Ok(FileTransport {
            device: path.to_owned(),
            file,
        })
    }
}

impl Transport for FileTransport {
    fn device(&self) -> &str {
        &self.device
    }

    fn write_all(&mut self, bytes: &[u8]) -> Result<(), TransportError> {
        self.file
            .write_all(bytes)
            .and_then(|()| self.file.flush())
            .map_err(|source| TransportError::Write {
                device: self.device.clone(),
                source,
            })
    }

    fn read_exact(&mut self, _buf: &mut [u8], _timeout: Duration) -> Result<(), TransportError> {
        Err(TransportError::NoStatus {
            device: self.device.clone(),
        })
    }

    fn answers_status(&self) -> bool {
        false
    }
}

/// The in-process virtual printer: bytes are interpreted synchronously, so its answers are
/// already there when `read_exact` is called.
#[derive(Debug)]
pub struct SimulatedTransport {
    printer: VirtualPrinterHandle,
    inbox: VecDeque<u8>,
}

impl SimulatedTransport {
    /// A transport to `printer`.
    pub fn new(printer: VirtualPrinterHandle) -> Self {
        SimulatedTransport {
            printer,
            inbox: VecDeque::new(),
        }
    }
}

impl Transport for SimulatedTransport {
    fn device(&self) -> &str {
        "simulated"
    }

    fn write_all(&mut self, bytes: &[u8]) -> Result<(), TransportError> {
        let answers = self.printer.feed(bytes);
        self.inbox.extend(answers);
        Ok(())
    }

    fn read_exact(&mut self, buf: &mut [u8], timeout: Duration) -> Result<(), TransportError> {
        if self.inbox.len() < buf.len() {
            return Err(TransportError::Timeout {
                device: "simulated".to_owned(),
                what: "answer the status query",
                after: timeout,
            });
        }
        for b in buf.iter_mut() {
            // Length checked above.
            *b = self.inbox.pop_front().unwrap_or(0);
        }
        Ok(())
    }

    fn discard_input(&mut self) -> Result<(), TransportError> {
        self.inbox.clear();
        Ok(())
    }
}
