//! The virtual printer behind a real socket (a TCP 9100 server) or a real pseudo-terminal, so the
//! TCP and serial transports are tested against the same bytes a real printer would see.

use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use super::VirtualPrinterHandle;
use crate::pty::{Pty, PtyError};

/// Errors starting a virtual printer server.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// The listening socket could not be opened.
    #[error("cannot listen for the virtual printer on {addr}")]
    Listen {
        /// The address asked for.
        addr: String,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// The pty could not be opened.
    #[error("cannot open a pseudo-terminal for the virtual printer")]
    Pty(#[from] PtyError),
    /// A server thread could not be started.
    #[error("cannot start the virtual printer's thread")]
    Thread(#[source] io::Error),
}

/// A raw TCP (port 9100 style) server in front of a virtual printer. Every connection's bytes go
/// to the printer; status answers go back on the same connection. Dropping it stops the server
/// and closes its connections.
#[derive(Debug)]
pub struct TcpPrinter {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    conns: Arc<Mutex<Vec<TcpStream>>>,
    thread: Option<JoinHandle<()>>,
}

impl TcpPrinter {
    /// Listens on `addr` (e.g. `127.0.0.1:0` for any free port).
    pub fn start(printer: VirtualPrinterHandle, addr: &str) -> Result<Self, ServeError> {
        let listener = TcpListener::bind(addr).map_err(|source| ServeError::Listen {
            addr: addr.to_owned(),
            source,
        })?;
        let local = listener.local_addr().map_err(|source| ServeError::Listen {
            addr: addr.to_owned(),
            source,
        })?;
        let stop = Arc::new(AtomicBool::new(false));
        let conns = Arc::new(Mutex::new(Vec::new()));
        let (stop2, conns2) = (stop.clone(), conns.clone());
        let thread = std::thread::Builder::new()
            .name("vprinter-tcp".into())
            .spawn(move || accept_loop(listener, printer, stop2, conns2))
            .map_err(ServeError::Thread)?;
        Ok(TcpPrinter {
            addr: local,
            stop,
            conns,
            thread: Some(thread),
        })
    }

    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Closes every open connection (the printer "vanishes" from the network for them); the
    /// server keeps accepting new ones.
    pub fn drop_connections(&self) {
        let mut conns = self.conns.lock().unwrap_or_else(|e| e.into_inner());
        for c in conns.drain(..) {
            let _ = c.shutdown(Shutdown::Both);
        }
    }

    /// Stops accepting and closes every connection.
    pub fn stop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the blocking accept.
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_secs(1));
        self.drop_connections();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for TcpPrinter {
    fn drop(&mut self) {
        self.stop();
    }
}

fn accept_loop(
    listener: TcpListener,
    printer: VirtualPrinterHandle,
    stop: Arc<AtomicBool>,
    conns: Arc<Mutex<Vec<TcpStream>>>,
) {
    for stream in listener.incoming() {
        if stop.load(Ordering::SeqCst) {
            return;
        }
        let Ok(stream) = stream else { continue };
        let Ok(clone) = stream.try_clone() else {
            continue;
        };
        conns.lock().unwrap_or_else(|e| e.into_inner()).push(clone);
        let printer = printer.clone();
        // A connection thread ends when its peer or drop_connections closes the socket.
        let _ = std::thread::Builder::new()
            .name("vprinter-conn".into())
            .spawn(move || serve_stream(stream, printer));
    }
}

fn serve_stream(mut stream: TcpStream, printer: VirtualPrinterHandle) {
    let mut buf = [0u8; 4096];
    loop {
        match stream.read(&mut buf) {
            Ok(0) | Err(_) => return,
            Ok(n) => {
                let answers = printer.feed(&buf[..n]);
                if !answers.is_empty() && stream.write_all(&answers).is_err() {
                    return;
                }
            }
        }
    }
}

/// A virtual printer on the master side of a pseudo-terminal: the serial transport opens
/// [`PtyPrinter::path`] as it would open `/dev/ttyUSB0`. Dropping it stops the thread and closes
/// the pty (the device "vanishes").
#[derive(Debug)]
pub struct PtyPrinter {
    path: PathBuf,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl PtyPrinter {
    /// Opens a pty and serves `printer` on it.
    pub fn start(printer: VirtualPrinterHandle) -> Result<Self, ServeError> {
        let mut pty = Pty::open()?;
        let path = pty.slave_path().to_owned();
        let stop = Arc::new(AtomicBool::new(false));
        let stop2 = stop.clone();
        let thread = std::thread::Builder::new()
            .name("vprinter-pty".into())
            .spawn(move || {
                while !stop2.load(Ordering::SeqCst) {
                    // Wakes at least every 50 ms to notice `stop`.
                    match pty.read_available(Duration::from_millis(50)) {
                        Ok(bytes) if !bytes.is_empty() => {
                            let answers = printer.feed(&bytes);
                            if !answers.is_empty() && pty.write_all(&answers).is_err() {
                                return;
                            }
                        }
                        Ok(_) => {}
                        Err(_) => return,
                    }
                }
            })
            .map_err(ServeError::Thread)?;
        Ok(PtyPrinter {
            path,
            stop,
            thread: Some(thread),
        })
    }

    /// The slave side's path (`/dev/pts/N`).
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for PtyPrinter {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
