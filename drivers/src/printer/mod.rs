//! The thermal ticket printer: ticket layout, ESC/POS encoding, transports (USB printer class,
//! serial, TCP 9100, file), real-time status, and a virtual printer that renders paper as PNG.
//!
//! Data flow: the firmware builds a [`Ticket`] (engine effect → printer), [`Ticket::encode`] turns
//! it into ESC/POS bytes for the configured [`PrinterProfile`], and [`ThermalPrinter::print_job`]
//! checks the printer's real-time status and sends the bytes once per job id. Text is printed in
//! code page PC858 (`ESC t 19`, see [`codepage`]).

pub mod codepage;
pub mod device;
pub mod preview;
pub mod settings;
pub mod status;
pub mod ticket;
pub mod transport;
pub mod vprinter;

pub use device::{PrintOutcome, PrinterError, ThermalPrinter};
pub use preview::{Preview, PreviewError, render_escpos_to_png, render_sample_ticket};
pub use settings::{PaperWidth, PrinterConnection, PrinterProfile, PrinterSettings, QrMode};
pub use status::PrinterStatus;
pub use ticket::{
    Coupon, CouponBarcode, Language, LayoutError, Report, ReportRow, ReportTable, Ticket,
    sample_ticket, standard_profile,
};
pub use transport::{Transport, TransportError};
pub use vprinter::{VirtualPrinter, VirtualPrinterHandle};
