//! The printer driver the firmware holds: checks real-time status before every job, sends the
//! job once, remembers which jobs it printed (so a retried job id never prints twice), and
//! reopens its transport after a failure (a printer that comes back works without a restart).

use std::collections::VecDeque;
use std::time::Duration;

use super::settings::{PrinterConnection, PrinterProfile, PrinterSettings};
use super::status::{PrinterStatus, StatusDecodeError, StatusRequest};
use super::ticket::{LayoutError, Ticket};
use super::transport::{
    FileTransport, SerialTransport, SimulatedTransport, TcpTransport, Transport, TransportError,
    UsbTransport,
};
use super::vprinter::VirtualPrinterHandle;
use crate::health::Health;

/// How many recent job ids are remembered for idempotency.
pub const JOB_MEMORY: usize = 1024;

/// A print or status failure.
#[derive(Debug, thiserror::Error)]
pub enum PrinterError {
    /// The transport failed (includes a printer that vanished or does not answer).
    #[error(transparent)]
    Transport(#[from] TransportError),
    /// The printer's status answer was not a status byte.
    #[error("printer at {device} sent a garbled status answer")]
    Status {
        /// The device.
        device: String,
        /// The bad byte.
        #[source]
        source: StatusDecodeError,
    },
    /// The printer cannot print now; nothing was sent, so the job can be retried later.
    #[error("printer at {device} reports {problem}")]
    NotReady {
        /// The device.
        device: String,
        /// Why, for a technician.
        problem: &'static str,
        /// The full status.
        status: PrinterStatus,
    },
    /// Sending the job failed part way: part of the ticket may be on paper. Not retried.
    #[error(
        "print job {job} was interrupted on printer at {device}; part of it may have printed, so it is not retried automatically"
    )]
    Interrupted {
        /// The job id.
        job: String,
        /// The device.
        device: String,
        /// Why.
        #[source]
        source: TransportError,
    },
    /// A job that was interrupted before was submitted again with [`ThermalPrinter::print_job`].
    #[error(
        "print job {job} was interrupted earlier; use reprint if staff decide to print it again"
    )]
    PreviouslyInterrupted {
        /// The job id.
        job: String,
    },
    /// The ticket could not be laid out.
    #[error(transparent)]
    Layout(#[from] LayoutError),
    /// The hardware profile says there is no printer.
    #[error("no printer is configured (connection kind none); tickets are shown on screen only")]
    NotConfigured,
}

/// What a print call did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PrintOutcome {
    /// The job was sent; the status seen just before (`None` for a capture file).
    Printed {
        /// Bytes sent.
        bytes: usize,
        /// Status before sending.
        status: Option<PrinterStatus>,
    },
    /// This job id was printed before; nothing was sent.
    AlreadyPrinted,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum JobState {
    Printed,
    Interrupted,
}

type Opener = Box<dyn FnMut() -> Result<Box<dyn Transport>, TransportError> + Send>;

/// The printer driver.
pub struct ThermalPrinter {
    device: String,
    profile: PrinterProfile,
    timeout: Duration,
    opener: Opener,
    transport: Option<Box<dyn Transport>>,
    virtual_printer: Option<VirtualPrinterHandle>,
    jobs: VecDeque<(String, JobState)>,
}

impl std::fmt::Debug for ThermalPrinter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ThermalPrinter")
            .field("device", &self.device)
            .field("profile", &self.profile)
            .finish()
    }
}

impl ThermalPrinter {
    /// A driver for the `[printer]` section of a hardware profile. Nothing is opened yet: the
    /// first status query or job opens the device. `Simulated` creates a virtual printer,
    /// reachable through [`ThermalPrinter::virtual_printer`].
    pub fn from_settings(settings: &PrinterSettings) -> Result<Self, PrinterError> {
        let timeout = Duration::from_millis(u64::from(settings.timeout_ms.max(1)));
        let profile = settings.profile.clone();
        let (device, opener): (String, Opener) = match settings.connection.clone() {
            PrinterConnection::Usb { device } => {
                let d = device.clone();
                (
                    device,
                    Box::new(move || {
                        Ok(Box::new(UsbTransport::open(&d, timeout)?) as Box<dyn Transport>)
                    }),
                )
            }
            PrinterConnection::Serial { port, baud } => {
                let p = port.clone();
                (
                    port,
                    Box::new(move || {
                        Ok(Box::new(SerialTransport::open(&p, baud, timeout)?)
                            as Box<dyn Transport>)
                    }),
                )
            }
            PrinterConnection::Tcp { address } => {
                let a = address.clone();
                (
                    format!("tcp://{address}"),
                    Box::new(move || {
                        Ok(Box::new(TcpTransport::connect(&a, timeout)?) as Box<dyn Transport>)
                    }),
                )
            }
            PrinterConnection::File { path } => {
                let p = path.clone();
                (
                    path,
                    Box::new(move || Ok(Box::new(FileTransport::open(&p)?) as Box<dyn Transport>)),
                )
            }
            PrinterConnection::Simulated => {
                let handle = VirtualPrinterHandle::new(&profile);
                return Ok(Self::simulated_with(handle, profile, timeout));
            }
            PrinterConnection::None => return Err(PrinterError::NotConfigured),
        };
        Ok(Self::with_opener(device, profile, timeout, opener))
    }

    /// A driver on the in-process virtual printer `handle`.
    pub fn simulated_with(
        handle: VirtualPrinterHandle,
        profile: PrinterProfile,
        timeout: Duration,
    ) -> Self {
        let h = handle.clone();
        let mut p = Self::with_opener(
            "simulated".to_owned(),
            profile,
            timeout,
            Box::new(
                move || Ok(Box::new(SimulatedTransport::new(h.clone())) as Box<dyn Transport>),
            ),
        );
        p.virtual_printer = Some(handle);
        p
    }

    /// A driver that opens its transport with `opener` (called again after a failure).
    pub fn with_opener(
        device: String,
        profile: PrinterProfile,
        timeout: Duration,
        opener: Box<dyn FnMut() -> Result<Box<dyn Transport>, TransportError> + Send>,
    ) -> Self {
        ThermalPrinter {
            device,
            profile,
            timeout,
            opener,
            transport: None,
            virtual_printer: None,
            jobs: VecDeque::new(),
        }
    }

    /// The device as named in messages.
    pub fn device(&self) -> &str {
        &self.device
    }

    /// The printer model's profile.
    pub fn profile(&self) -> &PrinterProfile {
        &self.profile
    }

    /// The virtual printer, when the connection is simulated.
    pub fn virtual_printer(&self) -> Option<&VirtualPrinterHandle> {
        self.virtual_printer.as_ref()
    }

    fn transport(&mut self) -> Result<&mut Box<dyn Transport>, TransportError> {
        if self.transport.is_none() {
            self.transport = Some((self.opener)()?);
        }
        // Set just above when it was empty.
        self.transport
            .as_mut()
            .ok_or_else(|| TransportError::Closed {
                device: self.device.clone(),
            })
    }

    /// Runs `f` on the transport; on failure the transport is dropped so the next call reopens.
    fn with_transport<T>(
        &mut self,
        f: impl FnOnce(&mut dyn Transport) -> Result<T, PrinterError>,
    ) -> Result<T, PrinterError> {
        let t = self.transport()?;
        let result = f(t.as_mut());
        if matches!(
            result,
            Err(PrinterError::Transport(_)
                | PrinterError::Interrupted { .. }
                | PrinterError::Status { .. })
        ) {
            self.transport = None;
        }
        result
    }

    /// Queries the four real-time status bytes (`DLE EOT 1..4`). `Ok(None)` for a capture file.
    pub fn status(&mut self) -> Result<Option<PrinterStatus>, PrinterError> {
        let timeout = self.timeout;
        let device = self.device.clone();
        self.with_transport(|t| query_status(t, timeout, &device))
    }

    /// The printer's health now (queries the status).
    pub fn health(&mut self) -> Health {
        match self.status() {
            Ok(Some(s)) => s.health(&self.device),
            Ok(None) => Health::ok(),
            Err(e) => Health::absent(e.to_string()),
        }
    }

    /// Prints `bytes` as job `job_id`: checks the status first (nothing is sent to a printer that
    /// cannot print), sends once, and remembers the id. A job id printed before is not sent
    /// again ([`PrintOutcome::AlreadyPrinted`]); one that was interrupted is refused
    /// ([`PrinterError::PreviouslyInterrupted`]) until the firmware calls [`Self::reprint`].
    pub fn print_job(&mut self, job_id: &str, bytes: &[u8]) -> Result<PrintOutcome, PrinterError> {
        match self
            .jobs
            .iter()
            .find(|(id, _)| id == job_id)
            .map(|(_, s)| *s)
        {
            Some(JobState::Printed) => return Ok(PrintOutcome::AlreadyPrinted),
            Some(JobState::Interrupted) => {
                return Err(PrinterError::PreviouslyInterrupted {
                    job: job_id.to_owned(),
                });
            }
            None => {}
        }
        self.send_job(job_id, bytes)
    }

    /// Prints job `job_id` again, whatever happened to it before (a staff decision).
    pub fn reprint(&mut self, job_id: &str, bytes: &[u8]) -> Result<PrintOutcome, PrinterError> {
        self.jobs.retain(|(id, _)| id != job_id);
        self.send_job(job_id, bytes)
    }

    /// Lays out `ticket` for this printer's profile and prints it as job `job_id`.
    pub fn print_ticket(
        &mut self,
        job_id: &str,
        ticket: &Ticket,
    ) -> Result<PrintOutcome, PrinterError> {
        let bytes = ticket.encode(&self.profile)?;
        self.print_job(job_id, &bytes)
    }

    fn send_job(&mut self, job_id: &str, bytes: &[u8]) -> Result<PrintOutcome, PrinterError> {
        let timeout = self.timeout;
        let device = self.device.clone();
        let status = self.with_transport(|t| query_status(t, timeout, &device))?;
        if let Some(s) = status {
            if let Some(problem) = s.problem() {
                return Err(PrinterError::NotReady {
                    device,
                    problem,
                    status: s,
                });
            }
        }
        let sent = self.with_transport(|t| {
            t.write_all(bytes)
                .map_err(|source| PrinterError::Interrupted {
                    job: job_id.to_owned(),
                    device: device.clone(),
                    source,
                })
        });
        let state = if sent.is_ok() {
            JobState::Printed
        } else {
            JobState::Interrupted
        };
        self.jobs.push_back((job_id.to_owned(), state));
        while self.jobs.len() > JOB_MEMORY {
            self.jobs.pop_front();
        }
        sent.map(|()| PrintOutcome::Printed {
            bytes: bytes.len(),
            status,
        })
    }
}

/// Asks the four status bytes and decodes them.
pub fn query_status(
    t: &mut dyn Transport,
    timeout: Duration,
    device: &str,
) -> Result<Option<PrinterStatus>, PrinterError> {
    if !t.answers_status() {
        return Ok(None);
    }
    t.discard_input()?;
    let mut query = Vec::with_capacity(12);
    for r in StatusRequest::ALL {
        query.extend_from_slice(&r.command());
    }
    t.write_all(&query)?;
    let mut answer = [0u8; 4];
    t.read_exact(&mut answer, timeout)?;
    PrinterStatus::decode(answer)
        .map(Some)
        .map_err(|source| PrinterError::Status {
            device: device.to_owned(),
            source,
        })
}
