//! Serial / USB CDC-ACM scanners through `serialport`: the worker that opens the port by path,
//! frames what it reads into lines, and reopens the port when it comes back after an unplug.

use std::io::{ErrorKind, Read};
use std::time::{Duration, Instant};

use serialport::SerialPort as _;

use super::line::LineFramer;
use super::settings::Suffix;
use super::{Worker, WorkerExit};
use crate::Health;

/// Longest a single read blocks, so a stop request or a line timeout is seen promptly.
const READ_SLICE: Duration = Duration::from_millis(100);

/// How a serial scanner is reached.
#[derive(Debug, Clone)]
pub(crate) struct SerialConfig {
    pub port: String,
    pub baud: u32,
    pub suffix: Suffix,
    pub line_timeout: Duration,
    pub max_line: usize,
}

/// Runs until stopped: open, read lines, report health, reopen after the port goes away.
pub(crate) fn run(cfg: SerialConfig, mut worker: Worker) {
    let mut framer = LineFramer::new(cfg.suffix, cfg.max_line, cfg.line_timeout);
    let mut buf = [0u8; 1024];
    loop {
        let mut port = match serialport::new(&cfg.port, cfg.baud)
            .timeout(READ_SLICE)
            .open_native()
        {
            Ok(port) => port,
            Err(e) => {
                let why = format!(
                    "scanner port {} cannot be opened ({e}); check the cable and the udev rule",
                    cfg.port
                );
                if worker.health(Health::absent(why)) == WorkerExit::Stop
                    || worker.wait_retry() == WorkerExit::Stop
                {
                    return;
                }
                continue;
            }
        };
        // A fresh port: whatever sat in the buffer while nobody listened is not a scan.
        let _ = port.clear(serialport::ClearBuffer::Input);
        if worker.health(Health::ok()) == WorkerExit::Stop {
            return;
        }
        loop {
            if worker.should_stop() {
                return;
            }
            let now = Instant::now();
            let slice = framer
                .deadline()
                .map_or(READ_SLICE, |d| {
                    d.saturating_duration_since(now).min(READ_SLICE)
                })
                .max(Duration::from_millis(1));
            if port.set_timeout(slice).is_err() {
                break;
            }
            match port.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => {
                    for framed in framer.push(&buf[..n], Instant::now()) {
                        if worker.framed(framed) == WorkerExit::Stop {
                            return;
                        }
                    }
                }
                Err(e) if e.kind() == ErrorKind::TimedOut || e.kind() == ErrorKind::Interrupted => {
                    if let Some(r) = framer.expire(Instant::now()) {
                        if worker.rejected(r.into()) == WorkerExit::Stop {
                            return;
                        }
                    }
                }
                Err(_) => break,
            }
        }
        // The port hung up or failed: the device is gone until it can be opened again.
        drop(port);
        if let Some(r) = framer.reset() {
            if worker.rejected(r.into()) == WorkerExit::Stop {
                return;
            }
        }
        let why = format!(
            "scanner port {} went away (unplugged?); waiting for it to come back",
            cfg.port
        );
        if worker.health(Health::absent(why)) == WorkerExit::Stop
            || worker.wait_retry() == WorkerExit::Stop
        {
            return;
        }
    }
}
