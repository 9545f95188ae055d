//! The printer driver over every transport against the virtual printer (in process, behind a
//! real TCP socket, behind a real pty for serial and USB-class device nodes): status before each
//! job, faults reported as health, vanished printers failing fast, garbage answers rejected, and
//! one print per job id.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a failed unwrap is the failure message"
)]

use std::io::{Read, Write};
use std::net::TcpListener;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use kiosk_drivers::DeviceHealth;
use kiosk_drivers::printer::status::StatusDecodeError;
use kiosk_drivers::printer::transport::SimulatedTransport;
use kiosk_drivers::printer::vprinter::{PtyPrinter, TcpPrinter};
use kiosk_drivers::printer::{
    Language, PaperWidth, PrintOutcome, PrinterConnection, PrinterError, PrinterSettings,
    PrinterStatus, QrMode, ThermalPrinter, Transport, TransportError, VirtualPrinterHandle,
    sample_ticket, standard_profile,
};

const WAIT: Duration = Duration::from_secs(10);

fn settings(connection: PrinterConnection, timeout_ms: u32) -> PrinterSettings {
    PrinterSettings {
        connection,
        profile: standard_profile(PaperWidth::Mm80, QrMode::Native),
        timeout_ms,
    }
}

fn handle() -> VirtualPrinterHandle {
    VirtualPrinterHandle::new(&standard_profile(PaperWidth::Mm80, QrMode::Native))
}

fn faults_are_detected_and_block_printing(printer: &mut ThermalPrinter, vp: &VirtualPrinterHandle) {
    let ticket = sample_ticket(Language::Es);
    for (fault, words) in [
        (
            PrinterStatus {
                paper_out: true,
                ..Default::default()
            },
            "paper out",
        ),
        (
            PrinterStatus {
                cover_open: true,
                ..Default::default()
            },
            "cover open",
        ),
        (
            PrinterStatus {
                offline: true,
                ..Default::default()
            },
            "offline",
        ),
    ] {
        vp.set_faults(fault);
        let status = printer.status().unwrap().unwrap();
        assert!(!status.can_print(), "{words}: {status:?}");
        let health = printer.health();
        assert_eq!(health.state, DeviceHealth::Absent);
        let reason = health.reason.unwrap();
        assert!(
            reason.contains(words) && reason.contains(printer.device()),
            "{reason}"
        );
        let err = printer
            .print_ticket(&format!("job-{words}"), &ticket)
            .unwrap_err();
        assert!(matches!(err, PrinterError::NotReady { .. }), "{err}");
        assert!(err.to_string().contains(words));
    }
    assert_eq!(
        vp.record().cuts.len(),
        0,
        "nothing may print while the printer reports a fault"
    );
    assert_eq!(
        vp.lock().held_bytes() % 12,
        0,
        "only status queries were sent while faulted"
    );

    vp.set_faults(PrinterStatus {
        paper_near_end: true,
        ..Default::default()
    });
    assert_eq!(printer.health().state, DeviceHealth::Degraded);
    let outcome = printer.print_ticket("job-near-end", &ticket).unwrap();
    assert!(matches!(outcome, PrintOutcome::Printed { .. }));
    assert!(vp.wait_for(WAIT, |r| r.cuts.len() == 1));
    assert!(vp.record().text().contains("A-042"));
}

#[test]
fn paper_out_cover_open_and_offline_are_detected_over_the_simulated_transport() {
    let mut printer =
        ThermalPrinter::from_settings(&settings(PrinterConnection::Simulated, 2000)).unwrap();
    let vp = printer.virtual_printer().unwrap().clone();
    faults_are_detected_and_block_printing(&mut printer, &vp);
}

#[test]
fn paper_out_cover_open_and_offline_are_detected_over_tcp() {
    let vp = handle();
    let server = TcpPrinter::start(vp.clone(), "127.0.0.1:0").unwrap();
    let mut printer = ThermalPrinter::from_settings(&settings(
        PrinterConnection::Tcp {
            address: server.addr().to_string(),
        },
        5000,
    ))
    .unwrap();
    assert!(printer.device().starts_with("tcp://127.0.0.1:"));
    faults_are_detected_and_block_printing(&mut printer, &vp);
}

#[test]
fn a_ticket_prints_over_the_serial_transport_on_a_pty() {
    let vp = handle();
    let pty = PtyPrinter::start(vp.clone()).unwrap();
    let port = pty.path().to_str().unwrap().to_owned();
    let mut printer = ThermalPrinter::from_settings(&settings(
        PrinterConnection::Serial {
            port,
            baud: 115_200,
        },
        5000,
    ))
    .unwrap();
    assert_eq!(printer.health().state, DeviceHealth::Ok);
    printer
        .print_ticket("t-1", &sample_ticket(Language::En))
        .unwrap();
    assert!(vp.wait_for(WAIT, |r| r.cuts.len() == 1));
    assert!(vp.record().text().contains("Your turn"));
    vp.set_faults(PrinterStatus {
        cover_open: true,
        ..Default::default()
    });
    assert!(printer.health().reason.unwrap().contains("cover open"));
}

#[test]
fn a_ticket_prints_over_the_usb_class_transport_on_a_character_device() {
    // A pty is a character device like /dev/usb/lp0: the USB transport's non-blocking
    // read/write/poll path is the one under test.
    let vp = handle();
    let pty = PtyPrinter::start(vp.clone()).unwrap();
    let device = pty.path().to_str().unwrap().to_owned();
    let mut printer =
        ThermalPrinter::from_settings(&settings(PrinterConnection::Usb { device }, 5000)).unwrap();
    vp.set_faults(PrinterStatus {
        paper_out: true,
        ..Default::default()
    });
    assert!(matches!(
        printer.print_ticket("u-1", &sample_ticket(Language::Es)),
        Err(PrinterError::NotReady { .. })
    ));
    vp.set_faults(PrinterStatus::default());
    printer
        .print_ticket("u-1", &sample_ticket(Language::Es))
        .unwrap();
    assert!(vp.wait_for(WAIT, |r| r.cuts.len() == 1));
    assert!(vp.record().text().contains("Su turno"));
}

#[test]
fn a_missing_usb_printer_fails_with_an_error_naming_the_device() {
    let mut printer = ThermalPrinter::from_settings(&settings(
        PrinterConnection::Usb {
            device: "/dev/usb/lp-kiosk-missing".into(),
        },
        5000,
    ))
    .unwrap();
    let err = printer
        .print_ticket("m-1", &sample_ticket(Language::Es))
        .unwrap_err();
    assert!(
        matches!(err, PrinterError::Transport(TransportError::Open { .. })),
        "{err:?}"
    );
    assert!(
        err.to_string().contains("/dev/usb/lp-kiosk-missing"),
        "{err}"
    );
    let health = printer.health();
    assert_eq!(health.state, DeviceHealth::Absent);
    assert!(health.reason.unwrap().contains("/dev/usb/lp-kiosk-missing"));
}

#[test]
fn a_tcp_printer_that_closes_the_connection_fails_fast_and_is_reconnected_later() {
    let vp = handle();
    let mut server = TcpPrinter::start(vp.clone(), "127.0.0.1:0").unwrap();
    let address = server.addr().to_string();
    // A long timeout: the failure must come from the hang-up, not from waiting it out.
    let mut printer =
        ThermalPrinter::from_settings(&settings(PrinterConnection::Tcp { address }, 60_000))
            .unwrap();
    let ticket = sample_ticket(Language::Es);
    printer.print_ticket("c-1", &ticket).unwrap();
    assert!(vp.wait_for(WAIT, |r| r.cuts.len() == 1));

    server.drop_connections();
    let err = printer.print_ticket("c-2", &ticket).unwrap_err();
    assert!(
        matches!(err, PrinterError::Transport(TransportError::Closed { .. })),
        "{err:?}"
    );
    assert!(
        err.to_string()
            .contains(&format!("tcp://{}", server.addr())),
        "{err}"
    );

    // The printer is back: the next job reconnects without a restart.
    printer.print_ticket("c-2", &ticket).unwrap();
    assert!(vp.wait_for(WAIT, |r| r.cuts.len() == 2));

    let addr = server.addr();
    server.stop();
    drop(server);
    let err = printer.print_ticket("c-3", &ticket).unwrap_err();
    assert!(
        matches!(
            err,
            PrinterError::Transport(TransportError::Closed { .. } | TransportError::Open { .. })
        ),
        "{err:?}"
    );
    assert!(err.to_string().contains(&addr.to_string()));
}

/// A TCP peer that answers every write with `answer` (or never, when `None`).
fn fake_peer(answer: Option<&'static [u8]>) -> (String, std::thread::JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let t = std::thread::spawn(move || {
        let (mut s, _) = listener.accept().unwrap();
        let mut buf = [0u8; 64];
        while let Ok(n) = s.read(&mut buf) {
            if n == 0 {
                return;
            }
            if let Some(a) = answer {
                s.write_all(a).unwrap();
            }
        }
    });
    (addr, t)
}

#[test]
fn a_printer_that_does_not_answer_the_status_query_times_out() {
    let (address, peer) = fake_peer(None);
    let mut printer =
        ThermalPrinter::from_settings(&settings(PrinterConnection::Tcp { address }, 200)).unwrap();
    let err = printer
        .print_ticket("s-1", &sample_ticket(Language::Es))
        .unwrap_err();
    assert!(
        matches!(err, PrinterError::Transport(TransportError::Timeout { .. })),
        "{err:?}"
    );
    assert!(
        err.to_string().contains("did not answer the status query"),
        "{err}"
    );
    drop(printer);
    peer.join().unwrap();
}

#[test]
fn garbage_status_bytes_are_an_error_not_a_panic() {
    let (address, peer) = fake_peer(Some(b"ABCD"));
    let mut printer =
        ThermalPrinter::from_settings(&settings(PrinterConnection::Tcp { address }, 2000)).unwrap();
    let err = printer.status().unwrap_err();
    match &err {
        PrinterError::Status {
            source: StatusDecodeError::Garbage { byte, .. },
            ..
        } => assert_eq!(*byte, b'A'),
        other => panic!("expected a garbage status error, got {other:?}"),
    }
    let health = printer.health();
    assert_eq!(health.state, DeviceHealth::Absent);
    drop(printer);
    peer.join().unwrap();
}

#[test]
fn the_same_job_id_never_prints_twice() {
    let mut printer =
        ThermalPrinter::from_settings(&settings(PrinterConnection::Simulated, 2000)).unwrap();
    let vp = printer.virtual_printer().unwrap().clone();
    let ticket = sample_ticket(Language::Es);
    assert!(matches!(
        printer.print_ticket("turn-42", &ticket).unwrap(),
        PrintOutcome::Printed { .. }
    ));
    assert_eq!(
        printer.print_ticket("turn-42", &ticket).unwrap(),
        PrintOutcome::AlreadyPrinted
    );
    assert_eq!(vp.record().cuts.len(), 1);
    // A staff reprint is explicit.
    printer
        .reprint("turn-42", &ticket.encode(printer.profile()).unwrap())
        .unwrap();
    assert_eq!(vp.record().cuts.len(), 2);
}

/// The simulated transport, but the next job (a write longer than a status query) fails.
struct Flaky {
    inner: SimulatedTransport,
    fail: Arc<AtomicBool>,
}

impl Transport for Flaky {
    fn device(&self) -> &str {
        "flaky"
    }
    fn write_all(&mut self, bytes: &[u8]) -> Result<(), TransportError> {
        if bytes.len() > 12 && self.fail.swap(false, Ordering::SeqCst) {
            self.inner.write_all(&bytes[..bytes.len() / 2])?;
            return Err(TransportError::Closed {
                device: "flaky".into(),
            });
        }
        self.inner.write_all(bytes)
    }
    fn read_exact(&mut self, buf: &mut [u8], timeout: Duration) -> Result<(), TransportError> {
        self.inner.read_exact(buf, timeout)
    }
    fn discard_input(&mut self) -> Result<(), TransportError> {
        self.inner.discard_input()
    }
}

#[test]
fn a_job_interrupted_mid_way_is_reported_and_not_resent_until_the_firmware_decides() {
    let vp = handle();
    let fail = Arc::new(AtomicBool::new(true));
    let (vp2, fail2) = (vp.clone(), fail.clone());
    let profile = standard_profile(PaperWidth::Mm80, QrMode::Native);
    let mut printer = ThermalPrinter::with_opener(
        "flaky".into(),
        profile,
        Duration::from_secs(2),
        Box::new(move || {
            Ok(Box::new(Flaky {
                inner: SimulatedTransport::new(vp2.clone()),
                fail: fail2.clone(),
            }) as Box<dyn Transport>)
        }),
    );
    let ticket = sample_ticket(Language::Es);
    let err = printer.print_ticket("turn-7", &ticket).unwrap_err();
    assert!(
        matches!(err, PrinterError::Interrupted { ref job, .. } if job == "turn-7"),
        "{err:?}"
    );
    let err = printer.print_ticket("turn-7", &ticket).unwrap_err();
    assert!(
        matches!(err, PrinterError::PreviouslyInterrupted { .. }),
        "{err:?}"
    );
    assert_eq!(
        vp.record().cuts.len(),
        0,
        "the half-sent ticket never reached its cut"
    );
    assert!(!fail.load(Ordering::SeqCst));
    printer
        .reprint("turn-7", &ticket.encode(printer.profile()).unwrap())
        .unwrap();
    assert_eq!(vp.record().cuts.len(), 1);
}

#[test]
fn a_capture_file_receives_the_ticket_bytes_and_reports_ok() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("capture.bin");
    let mut printer = ThermalPrinter::from_settings(&settings(
        PrinterConnection::File {
            path: path.to_str().unwrap().into(),
        },
        2000,
    ))
    .unwrap();
    assert_eq!(printer.health().state, DeviceHealth::Ok);
    let ticket = sample_ticket(Language::En);
    printer.print_ticket("f-1", &ticket).unwrap();
    printer.print_ticket("f-2", &ticket).unwrap();
    let bytes = std::fs::read(&path).unwrap();
    let one = ticket.encode(printer.profile()).unwrap();
    assert_eq!(bytes.len(), 2 * one.len());
    let preview = kiosk_drivers::printer::render_escpos_to_png(&bytes, printer.profile()).unwrap();
    assert_eq!(preview.record.cuts.len(), 2);
}
