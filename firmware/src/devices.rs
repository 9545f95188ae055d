//! The device side of the runtime: one thread per device turns driver events into engine inputs
//! (card taps, scans, printer health), and the printer thread carries out print jobs.
//!
//! Drivers block (SPI polling, serial reads, printer writes); the engine does not. Each device
//! thread hands its results to the engine's input channel with `blocking_send`, so a slow device
//! never stalls the screen, and a full channel slows the device down instead of losing a tap.

use std::path::PathBuf;
use std::sync::mpsc as std_mpsc;
use std::thread::JoinHandle;
use std::time::Duration;

use kiosk_drivers::Health;
use kiosk_drivers::card::{self, CardEvent};
use kiosk_drivers::printer::{PrinterError, Report, ThermalPrinter, Ticket, render_escpos_to_png};
use kiosk_drivers::scanner::{Code, ScannerEvent, ScannerHandle};
use kiosk_protocol::CardToken;
use kiosk_protocol::events::DeviceKind;
use tokio::sync::{mpsc, oneshot};
use uuid::Uuid;

use kiosk_core::journey::{Input, ScanInput};

/// The health of each device, as last reported (in the order devices first reported).
pub type DeviceHealthMap = Vec<(DeviceKind, Health)>;

/// A device's health changed: the runtime journals it and shows it in the status.
#[derive(Debug, Clone)]
pub struct HealthChange {
    /// Which device.
    pub device: DeviceKind,
    /// The new health.
    pub health: Health,
}

/// What the engine receives from the device threads.
#[derive(Debug)]
pub enum DeviceMsg {
    /// An input for the journey.
    Input(Input),
    /// A device's health changed.
    Health(HealthChange),
    /// The people counter on the presence input counted someone entering.
    PersonEntered,
}

/// Starts the card reader thread: taps become [`Input::CardTapped`].
pub fn spawn_card_reader(
    reader: Box<dyn card::CardReader>,
    tx: mpsc::Sender<DeviceMsg>,
) -> std::io::Result<card::ReaderThread> {
    card::spawn(reader, move |event| {
        let msg = match event {
            CardEvent::Tap(tap) => DeviceMsg::Input(Input::CardTapped {
                token: tap.token,
                reader: tap.reader,
            }),
            CardEvent::Health(health) => DeviceMsg::Health(HealthChange {
                device: DeviceKind::CardReader,
                health,
            }),
        };
        tx.blocking_send(msg).is_ok()
    })
}

/// Starts the presence sensor thread: arrivals and departures become journey inputs (entries
/// counted by the driver's people counter become [`DeviceMsg::PersonEntered`]), and tell
/// the card reader's `signal` whether to poll at its fast or its idle interval (a sensor that is
/// not answering counts as "someone may be there": fast).
pub fn spawn_presence(
    opener: kiosk_drivers::gpio::InputOpener,
    debounce: Duration,
    entry_gap: Duration,
    tx: mpsc::Sender<DeviceMsg>,
    signal: card::PresenceSignal,
) -> std::io::Result<kiosk_drivers::gpio::PresenceThread> {
    use kiosk_drivers::gpio::PresenceEvent;
    kiosk_drivers::gpio::spawn_presence(opener, debounce, entry_gap, move |event| {
        let msg = match event {
            PresenceEvent::Arrived => {
                signal.arrived();
                DeviceMsg::Input(Input::PresenceArrived)
            }
            PresenceEvent::Left => {
                signal.left();
                DeviceMsg::Input(Input::PresenceLeft)
            }
            PresenceEvent::Entered => DeviceMsg::PersonEntered,
            PresenceEvent::Health(health) => {
                if health.state == kiosk_drivers::DeviceHealth::Ok {
                    signal.sensor_works();
                } else {
                    signal.sensor_lost();
                }
                DeviceMsg::Health(HealthChange {
                    device: DeviceKind::PresenceSensor,
                    health,
                })
            }
        };
        tx.blocking_send(msg).is_ok()
    })
}

/// What a scanned code means to the journey.
pub fn scan_input(code: Code) -> ScanInput {
    match code {
        Code::Turn(t) => ScanInput::Turn {
            turn_id: t.turn_id,
            label: t.turn,
        },
        Code::Coupon(c) => ScanInput::Coupon {
            code: c.coupon_code,
            campaign_id: Some(c.campaign_id),
            card_token: c.card_token.map(CardToken::from_bytes),
        },
        Code::Ean13(s) | Code::Ean8(s) | Code::UpcA(s) => ScanInput::Product(s),
    }
}

/// Starts the scanner thread: scans become [`Input::Scanned`]; rejected lines become
/// [`ScanInput::Unknown`] (the reason is logged, never the scanned text).
pub fn spawn_scanner(
    scanner: ScannerHandle,
    tx: mpsc::Sender<DeviceMsg>,
) -> std::io::Result<JoinHandle<()>> {
    std::thread::Builder::new()
        .name("scanner".into())
        .spawn(move || {
            loop {
                if tx.is_closed() {
                    break;
                }
                let Some(event) = scanner.next_event(Duration::from_millis(200)) else {
                    continue;
                };
                let msg = match event {
                    ScannerEvent::Scanned(scan) => {
                        DeviceMsg::Input(Input::Scanned(scan_input(scan.code)))
                    }
                    ScannerEvent::Rejected { reason } => {
                        tracing::info!(%reason, "scan rejected");
                        DeviceMsg::Input(Input::Scanned(ScanInput::Unknown))
                    }
                    ScannerEvent::Health(health) => DeviceMsg::Health(HealthChange {
                        device: DeviceKind::Scanner,
                        health,
                    }),
                };
                if tx.blocking_send(msg).is_err() {
                    break;
                }
            }
        })
}

/// A job for the printer thread.
#[derive(Debug)]
pub enum PrintJob {
    /// A turn ticket: answered with [`Input::TicketPrinted`] or [`Input::TicketPrintFailed`].
    Ticket {
        /// The turn.
        turn_id: Uuid,
        /// Its label, for the preview file name.
        label: String,
        /// The ticket.
        ticket: Box<Ticket>,
        /// Staff asked for it again.
        reprint: bool,
        /// Answered for reprints (staff wait for it); first prints answer the engine.
        reply: Option<oneshot::Sender<Result<u32, String>>>,
    },
    /// The manager's report.
    Report {
        /// The report.
        report: Box<Report>,
        /// The outcome, for the staff page.
        reply: oneshot::Sender<Result<u32, String>>,
    },
}

/// How often an idle printer is asked for its status.
const STATUS_INTERVAL: Duration = Duration::from_secs(5);

/// Starts the printer thread. It prints jobs in order, asks an idle printer for its status every
/// few seconds (paper out, cover open, offline, gone) and reports changes; with `previews`, every
/// printed ticket is also rendered to a PNG there (through the virtual printer's interpreter).
pub fn spawn_printer(
    mut printer: Option<ThermalPrinter>,
    jobs: std_mpsc::Receiver<PrintJob>,
    tx: mpsc::Sender<DeviceMsg>,
    previews: Option<PathBuf>,
    beat: crate::service::Beat,
) -> std::io::Result<JoinHandle<()>> {
    std::thread::Builder::new()
        .name("printer".into())
        .spawn(move || {
            let mut last: Option<Health> = None;
            let mut report_health = |printer: &mut Option<ThermalPrinter>| {
                let health = match printer {
                    Some(p) => p.health(),
                    None => Health::absent("no printer is configured"),
                };
                if last.as_ref() != Some(&health) {
                    last = Some(health.clone());
                    let _ = tx.blocking_send(DeviceMsg::Health(HealthChange {
                        device: DeviceKind::Printer,
                        health,
                    }));
                }
            };
            report_health(&mut printer);
            loop {
                beat.beat();
                match jobs.recv_timeout(STATUS_INTERVAL) {
                    Ok(job) => {
                        run_job(printer.as_mut(), job, &tx, previews.as_deref());
                        report_health(&mut printer);
                    }
                    Err(std_mpsc::RecvTimeoutError::Timeout) => report_health(&mut printer),
                    Err(std_mpsc::RecvTimeoutError::Disconnected) => break,
                }
            }
        })
}

fn run_job(
    printer: Option<&mut ThermalPrinter>,
    job: PrintJob,
    tx: &mpsc::Sender<DeviceMsg>,
    previews: Option<&std::path::Path>,
) {
    match job {
        PrintJob::Ticket {
            turn_id,
            label,
            ticket,
            reprint,
            reply,
        } => {
            let outcome = print_ticket(printer, turn_id, &label, &ticket, reprint, previews);
            match reply {
                Some(reply) => {
                    let _ = reply.send(outcome.map_err(|e| e.to_string()));
                }
                None => {
                    let input = match outcome {
                        Ok(bytes) => Input::TicketPrinted { turn_id, bytes },
                        Err(e) => {
                            tracing::warn!(error = %e, turn = %label, "ticket not printed");
                            Input::TicketPrintFailed {
                                turn_id,
                                reason: e.to_string(),
                            }
                        }
                    };
                    let _ = tx.blocking_send(DeviceMsg::Input(input));
                }
            }
        }
        PrintJob::Report { report, reply } => {
            let outcome = match printer {
                None => Err(PrinterError::NotConfigured.to_string()),
                Some(p) => report
                    .encode(p.profile())
                    .map_err(|e| PrinterError::from(e).to_string())
                    .and_then(|bytes| {
                        let id = Uuid::now_v7();
                        p.print_job(&format!("report-{id}"), &bytes)
                            .map_err(|e| e.to_string())?;
                        if let Some(dir) = previews {
                            let name = format!("informe-{}.png", &id.simple().to_string()[..12]);
                            write_preview(dir, &name, &bytes, p);
                        }
                        Ok(u32::try_from(bytes.len()).unwrap_or(u32::MAX))
                    }),
            };
            let _ = reply.send(outcome);
        }
    }
}

fn print_ticket(
    printer: Option<&mut ThermalPrinter>,
    turn_id: Uuid,
    label: &str,
    ticket: &Ticket,
    reprint: bool,
    previews: Option<&std::path::Path>,
) -> Result<u32, PrinterError> {
    let printer = printer.ok_or(PrinterError::NotConfigured)?;
    let bytes = ticket.encode(printer.profile())?;
    let job = turn_id.to_string();
    if reprint {
        printer.reprint(&job, &bytes)?;
    } else {
        printer.print_job(&job, &bytes)?;
    }
    if let Some(dir) = previews {
        let name = preview_name(dir, label, turn_id, reprint);
        write_preview(dir, &name, &bytes, printer);
    }
    Ok(u32::try_from(bytes.len()).unwrap_or(u32::MAX))
}

/// The file name of a ticket's preview: `A-012-0190a1b2.png` for the ticket, and for each
/// reprint the first free of `A-012-0190a1b2-copia.png`, `...-copia-2.png`, ... beside it, so a
/// copy never replaces the original's picture.
fn preview_name(dir: &std::path::Path, label: &str, turn_id: Uuid, reprint: bool) -> String {
    let stem = format!("{label}-{}", &turn_id.simple().to_string()[..8]);
    if !reprint {
        return format!("{stem}.png");
    }
    (1..)
        .map(|n| match n {
            1 => format!("{stem}-copia.png"),
            n => format!("{stem}-copia-{n}.png"),
        })
        .find(|name| !dir.join(name).exists())
        .unwrap_or_else(|| format!("{stem}-copia.png"))
}

/// Renders printed ESC/POS `bytes` to `dir/name` (a PNG), as the paper would look.
fn write_preview(dir: &std::path::Path, name: &str, bytes: &[u8], printer: &ThermalPrinter) {
    let result = render_escpos_to_png(bytes, printer.profile())
        .map_err(|e| e.to_string())
        .and_then(|preview| {
            std::fs::create_dir_all(dir)
                .and_then(|()| std::fs::write(dir.join(name), &preview.png))
                .map_err(|e| e.to_string())
        });
    if let Err(e) = result {
        tracing::warn!(error = %e, file = %name, "cannot write the ticket preview");
    }
    prune_previews(dir, MAX_PREVIEWS);
}

/// Ticket pictures kept: a bench kiosk that runs for weeks must not fill its disk.
const MAX_PREVIEWS: usize = 1000;

/// Deletes the oldest PNGs in `dir` beyond the newest `keep`.
fn prune_previews(dir: &std::path::Path, keep: usize) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    let mut pngs: Vec<(std::time::SystemTime, PathBuf)> = entries
        .filter_map(Result::ok)
        .filter(|e| e.file_name().to_string_lossy().ends_with(".png"))
        .filter_map(|e| Some((e.metadata().ok()?.modified().ok()?, e.path())))
        .collect();
    if pngs.len() <= keep {
        return;
    }
    pngs.sort();
    let excess = pngs.len() - keep;
    for (_, path) in pngs.into_iter().take(excess) {
        if let Err(e) = std::fs::remove_file(&path) {
            tracing::warn!(error = %e, file = %path.display(), "cannot prune an old ticket preview");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn previews_beyond_the_newest_are_pruned_oldest_first() {
        let dir = tempfile::tempdir().unwrap();
        let t0 = std::time::SystemTime::now() - std::time::Duration::from_secs(100);
        for i in 0..5u64 {
            let p = dir.path().join(format!("t{i}.png"));
            std::fs::write(&p, b"png").unwrap();
            let f = std::fs::File::options().write(true).open(&p).unwrap();
            f.set_modified(t0 + std::time::Duration::from_secs(i))
                .unwrap();
        }
        std::fs::write(dir.path().join("notes.txt"), b"kept").unwrap();
        prune_previews(dir.path(), 3);
        let mut left: Vec<String> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        left.sort();
        assert_eq!(left, ["notes.txt", "t2.png", "t3.png", "t4.png"]);
    }

    #[test]
    fn a_reprints_preview_goes_beside_the_original_never_over_it() {
        let dir = tempfile::tempdir().unwrap();
        let id = Uuid::now_v7();
        let short = &id.simple().to_string()[..8];
        let original = preview_name(dir.path(), "A-012", id, false);
        assert_eq!(original, format!("A-012-{short}.png"));
        std::fs::write(dir.path().join(&original), b"png").unwrap();
        let first = preview_name(dir.path(), "A-012", id, true);
        assert_eq!(first, format!("A-012-{short}-copia.png"));
        std::fs::write(dir.path().join(&first), b"png").unwrap();
        let second = preview_name(dir.path(), "A-012", id, true);
        assert_eq!(second, format!("A-012-{short}-copia-2.png"));
        assert_eq!(
            preview_name(dir.path(), "A-012", id, false),
            original,
            "a first print's name does not change"
        );
    }
}
