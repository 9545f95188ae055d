//! What goes on paper: the turn [`Ticket`] a customer takes and the manager's [`Report`] printed from
//! the staff page, as typed layouts (no I/O), and their encoding into ESC/POS bytes for a
//! [`PrinterProfile`].
//!
//! Encoding uses the `escpos` crate for styles, alignment, size, feeds, native QR (`GS ( k`),
//! EAN-13 (`GS k`) and cuts. Three things are written by hand, each documented where it is done:
//! text (encoded in PC858 by [`super::codepage`], because the crate's PC858 table is wrong), raster
//! QR codes (`GS v 0` from the `qrcode` crate's modules; the crate only rasterises image files),
//! and real-time status queries (see [`super::status`]).

use std::cell::RefCell;
use std::fmt;
use std::str::FromStr;

use escpos::driver::Driver;
use escpos::printer::Printer;
use escpos::utils::{
    BarcodeFont, BarcodeHeight, BarcodeOption, BarcodePosition, BarcodeWidth, JustifyMode,
    PageCode, Protocol, QRCodeCorrectionLevel, QRCodeModel, QRCodeOption, UnderlineMode,
};
use serde::Deserialize;

use super::codepage;
use super::settings::{PaperWidth, PrinterProfile, QrMode};

/// Width in dots of a Font A character (12 x 24 dots at 203 dpi).
pub const FONT_A_WIDTH: u16 = 12;

/// Language of a ticket's labels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Language {
    /// Spanish.
    #[default]
    Es,
    /// English.
    En,
}

impl FromStr for Language {
    type Err = LayoutError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "es" => Ok(Language::Es),
            "en" => Ok(Language::En),
            _ => Err(LayoutError::UnknownLanguage(s.to_owned())),
        }
    }
}

impl fmt::Display for Language {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Language::Es => "es",
            Language::En => "en",
        })
    }
}

/// The fixed words of a ticket or report in one language.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Labels {
    /// Above the turn number.
    pub your_turn: &'static str,
    /// Before the number of turns ahead.
    pub position: &'static str,
    /// Instead of the turns ahead when there are none (what the kiosk screen says too).
    pub next: &'static str,
    /// Before the estimated wait.
    pub estimated_wait: &'static str,
    /// Unit after the estimated wait.
    pub minutes: &'static str,
    /// Before the issue time.
    pub issued: &'static str,
    /// Above a coupon.
    pub coupon: &'static str,
    /// Before a coupon's last valid day.
    pub valid_until: &'static str,
    /// Under the QR code.
    pub scan_hint: &'static str,
    /// Before a report's date.
    pub date: &'static str,
    /// Across the top of a reprint.
    pub copy: &'static str,
}

impl Language {
    /// The labels for this language.
    pub fn labels(self) -> &'static Labels {
        match self {
            Language::Es => &Labels {
                your_turn: "Su turno",
                position: "Por delante",
                next: "Es el siguiente",
                estimated_wait: "Espera estimada",
                minutes: "min",
                issued: "Emitido",
                coupon: "Cupón",
                valid_until: "Válido hasta",
                scan_hint: "Escanee el código para seguir su turno",
                date: "Fecha",
                copy: "COPIA",
            },
            Language::En => &Labels {
                your_turn: "Your turn",
                position: "Ahead of you",
                next: "You are next",
                estimated_wait: "Estimated wait",
                minutes: "min",
                issued: "Issued",
                coupon: "Coupon",
                valid_until: "Valid until",
                scan_hint: "Scan the code to follow your turn",
                date: "Date",
                copy: "COPY",
            },
        }
    }
}

/// A coupon printed under the turn: its code in words and as a barcode.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Coupon {
    /// What the customer reads and staff can type (e.g. `CAFE-A-3F9C2D1E07`).
    pub code: String,
    /// The barcode under it.
    pub barcode: CouponBarcode,
    /// Its last valid day, printed under the code when given.
    pub valid_until: Option<time::Date>,
}

/// How a coupon's barcode is printed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CouponBarcode {
    /// An EAN-13: 12 digits (the check digit is added) or 13 digits with a valid check digit.
    Ean13(String),
    /// A QR code of this text (the kiosk's signed coupon payload, which any kiosk of the store
    /// verifies and redeems).
    Qr(String),
}

/// A turn ticket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ticket {
    /// Store name, printed at the top.
    pub store_name: String,
    /// The turn number, printed big (e.g. `A-042`).
    pub turn_number: String,
    /// The service queued for.
    pub service_name: String,
    /// Local time the turn was issued (the firmware converts to the store's time zone).
    pub issued_at: time::PrimitiveDateTime,
    /// Estimated wait in minutes (0: not printed, as the screen shows none).
    pub estimated_wait_minutes: u32,
    /// Turns ahead of this one (0 = next: the ticket says so in words).
    pub position_in_queue: u32,
    /// The text of the QR code (the firmware passes the signed turn QR payload).
    pub qr_payload: String,
    /// A campaign message, if one runs.
    pub campaign_line: Option<String>,
    /// A coupon, if one is given.
    pub coupon: Option<Coupon>,
    /// The service's note (`ticket_note`: "Bring your receipt"), printed under the turn's
    /// details in the ticket's language (wrapped).
    pub note: Option<String>,
    /// Footer text (wrapped).
    pub footer: String,
    /// Label language.
    pub language: Language,
    /// A reprint staff asked for: marked COPIA/COPY above and below the number, so that a copy
    /// is never taken for a second turn.
    pub copy: bool,
}

/// One label/value row of a report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReportRow {
    /// Left side.
    pub label: String,
    /// Right side.
    pub value: String,
}

/// A table of a report (one per service): a header and rows of cells; the first column is
/// left-aligned and shortened to fit, the others right-aligned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReportTable {
    /// Service name, printed bold above the table.
    pub service: String,
    /// Column headers.
    pub columns: Vec<String>,
    /// Rows; each as long as `columns`.
    pub rows: Vec<Vec<String>>,
}

/// A manager's report printed from the staff page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    /// Title (e.g. `Informe del día`).
    pub title: String,
    /// Store name.
    pub store_name: String,
    /// The day reported.
    pub date: time::Date,
    /// Summary rows.
    pub rows: Vec<ReportRow>,
    /// Tables, one per service.
    pub tables: Vec<ReportTable>,
    /// Label language.
    pub language: Language,
}

/// A layout that cannot be encoded.
#[derive(Debug, thiserror::Error)]
pub enum LayoutError {
    /// Not `es` or `en`.
    #[error("unknown ticket language {0:?}; use es or en")]
    UnknownLanguage(String),
    /// The coupon barcode is not a valid EAN-13.
    #[error(
        "coupon barcode {value:?} is not an EAN-13 (12 digits, or 13 with a valid check digit)"
    )]
    InvalidEan13 {
        /// The rejected value.
        value: String,
    },
    /// A required field is empty.
    #[error("ticket field {0} is empty")]
    Empty(&'static str),
    /// A report table row has the wrong number of cells.
    #[error("report table {service:?} has a row of {got} cells for {want} columns")]
    RaggedTable {
        /// The table.
        service: String,
        /// Cells in the row.
        got: usize,
        /// Columns.
        want: usize,
    },
    /// The QR payload does not fit in a QR code.
    #[error("ticket QR payload of {len} bytes does not fit in a QR code")]
    QrTooLong {
        /// Payload length.
        len: usize,
        /// The encoder's reason.
        #[source]
        source: qrcode::types::QrError,
    },
    /// The profile's line is too narrow for any text.
    #[error("printer profile has {0} dots per line; a ticket needs at least 96")]
    TooNarrow(u16),
    /// The `escpos` crate refused a command.
    #[error("cannot encode the ticket as ESC/POS")]
    Escpos(#[source] escpos::errors::PrinterError),
}

impl From<escpos::errors::PrinterError> for LayoutError {
    fn from(e: escpos::errors::PrinterError) -> Self {
        LayoutError::Escpos(e)
    }
}

/// Validates an EAN-13 and returns its 13 digits (adding the check digit to 12).
pub fn ean13_digits(value: &str) -> Result<String, LayoutError> {
    let bad = || LayoutError::InvalidEan13 {
        value: value.to_owned(),
    };
    if !value.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    let digits: Vec<u32> = value.bytes().map(|b| u32::from(b - b'0')).collect();
    let check = |d: &[u32]| {
        let sum: u32 = d
            .iter()
            .take(12)
            .enumerate()
            .map(|(i, &v)| if i % 2 == 0 { v } else { 3 * v })
            .sum();
        (10 - sum % 10) % 10
    };
    match digits.len() {
        12 => Ok(format!("{value}{}", check(&digits))),
        13 if check(&digits) == digits[12] => Ok(value.to_owned()),
        _ => Err(bad()),
    }
}

/// An `escpos` driver that keeps the bytes instead of sending them: layouts are encoded without
/// I/O and sent by a [`super::transport::Transport`] after a status check.
#[derive(Default)]
struct Capture(RefCell<Vec<u8>>);

impl Driver for Capture {
    fn name(&self) -> String {
        "capture".to_owned()
    }

    fn write(&self, data: &[u8]) -> escpos::errors::Result<()> {
        self.0.borrow_mut().extend_from_slice(data);
        Ok(())
    }

    fn read(&self, _buf: &mut [u8]) -> escpos::errors::Result<usize> {
        Ok(0)
    }

    fn flush(&self) -> escpos::errors::Result<()> {
        Ok(())
    }
}

/// Text style of one block.
#[derive(Debug, Clone, Copy)]
struct Style {
    align: JustifyMode,
    bold: bool,
    size: u8,
    underline: bool,
}

impl Style {
    const BODY: Style = Style {
        align: JustifyMode::LEFT,
        bold: false,
        size: 1,
        underline: false,
    };
    const CENTER: Style = Style {
        align: JustifyMode::CENTER,
        ..Style::BODY
    };
}

/// The layout writer: the `escpos` printer plus the line width.
struct Writer {
    printer: Printer<Capture>,
    dots: u16,
}

impl Writer {
    fn new(profile: &PrinterProfile) -> Result<Self, LayoutError> {
        if profile.dots_per_line < 96 {
            return Err(LayoutError::TooNarrow(profile.dots_per_line));
        }
        let mut printer = Printer::new(Capture::default(), Protocol::default(), None);
        // ESC @ then ESC t 19 (PC858); the crate's PageCode::PC858 maps to 19 as Epson documents.
        printer.init()?.page_code(PageCode::PC858)?;
        Ok(Writer {
            printer,
            dots: profile.dots_per_line,
        })
    }

    /// Characters per line at a size multiplier.
    fn columns(&self, size: u8) -> usize {
        usize::from(self.dots / (FONT_A_WIDTH * u16::from(size.max(1))))
    }

    fn style(&mut self, s: Style) -> Result<(), LayoutError> {
        self.printer
            .justify(s.align)?
            .bold(s.bold)?
            .size(s.size, s.size)?
            .underline(if s.underline {
                UnderlineMode::Single
            } else {
                UnderlineMode::None
            })?;
        Ok(())
    }

    /// One or more lines of text, word-wrapped to the line width at the style's size.
    fn text(&mut self, s: Style, text: &str) -> Result<(), LayoutError> {
        self.style(s)?;
        for line in wrap(text, self.columns(s.size)) {
            self.printer
                .custom(&codepage::encode_pc858(&line))?
                .custom(b"\n")?;
        }
        Ok(())
    }

    /// One pre-formatted line (spacing kept), cut to the line width.
    fn line(&mut self, s: Style, text: &str) -> Result<(), LayoutError> {
        self.style(s)?;
        let line: String = text.chars().take(self.columns(s.size)).collect();
        self.printer
            .custom(&codepage::encode_pc858(&line))?
            .custom(b"\n")?;
        Ok(())
    }

    /// A label on the left and a value on the right of one line (wrapped when too long).
    fn pair(&mut self, label: &str, value: &str) -> Result<(), LayoutError> {
        let cols = self.columns(1);
        let used = label.chars().count() + value.chars().count();
        if used < cols {
            let line = format!("{label}{}{value}", " ".repeat(cols - used));
            self.line(Style::BODY, &line)
        } else {
            self.text(Style::BODY, &format!("{label}: {value}"))
        }
    }

    fn feed(&mut self, lines: u8) -> Result<(), LayoutError> {
        self.printer.feeds(lines)?;
        Ok(())
    }

    fn rule(&mut self) -> Result<(), LayoutError> {
        let line = "-".repeat(self.columns(1));
        self.text(Style::BODY, &line)
    }

    /// A QR code, centred, the module size chosen so it fills at most ~3/4 of the line.
    fn qr(&mut self, payload: &str, mode: QrMode) -> Result<(), LayoutError> {
        let too_long = |source| LayoutError::QrTooLong {
            len: payload.len(),
            source,
        };
        // Only the version is needed to size a native QR: segmenting the data is cheap, while
        // building the symbol (masking) costs most of the ticket's encoding time.
        let bits =
            qrcode::bits::encode_auto(payload.as_bytes(), qrcode::EcLevel::M).map_err(too_long)?;
        let width = u16::try_from(bits.version().width())
            .unwrap_or(u16::MAX)
            .max(1);
        let module = (self.dots * 3 / 4 / width).clamp(1, 8);
        self.style(Style::CENTER)?;
        match mode {
            QrMode::Native => {
                // Module size fits in u8: clamped to 1..=8 above.
                let size = u8::try_from(module).unwrap_or(4);
                self.printer.qrcode_option(
                    payload,
                    QRCodeOption::new(QRCodeModel::Model2, size, QRCodeCorrectionLevel::M),
                )?;
            }
            QrMode::Raster => {
                let code = qrcode::QrCode::with_error_correction_level(
                    payload.as_bytes(),
                    qrcode::EcLevel::M,
                )
                .map_err(too_long)?;
                let raster = qr_raster(&code, usize::from(module), 4);
                self.printer.custom(&raster)?;
            }
        }
        Ok(())
    }

    fn ean13(&mut self, digits: &str) -> Result<(), LayoutError> {
        self.style(Style::CENTER)?;
        let option = BarcodeOption::new(
            BarcodeWidth::M,
            BarcodeHeight::S,
            BarcodeFont::A,
            BarcodePosition::Below,
        );
        self.printer.ean13_option(digits, option)?;
        Ok(())
    }

    fn cut(mut self, partial: bool) -> Result<Vec<u8>, LayoutError> {
        self.style(Style::BODY)?;
        self.printer.feeds(3)?;
        // Written by hand: the crate's partial_cut() sends `GS V 65 1`, which is a *full* cut
        // after feeding 1 dot in the ESC/POS reference; a partial cut is `GS V 66 n`.
        self.printer.custom(if partial {
            &GS_CUT_PARTIAL
        } else {
            &GS_CUT_FULL
        })?;
        self.printer.print()?;
        Ok(self.printer.driver().0.into_inner())
    }
}

/// `GS V 65 0`: feed to the cutter and cut fully.
pub const GS_CUT_FULL: [u8; 4] = [0x1D, b'V', 65, 0];
/// `GS V 66 0`: feed to the cutter and cut partially (one point left uncut).
pub const GS_CUT_PARTIAL: [u8; 4] = [0x1D, b'V', 66, 0];

/// `GS v 0`: print raster bit image. `GS v 0 m xL xH yL yH d1...dk`, m = 0 (normal density),
/// x = bytes per row, y = rows; each byte is 8 dots, most significant bit leftmost, 1 = black.
pub const GS_RASTER: [u8; 3] = [0x1D, b'v', b'0'];

/// Renders a QR code as a `GS v 0` raster image: `module` dots per module, `quiet` modules of
/// white border.
pub fn qr_raster(code: &qrcode::QrCode, module: usize, quiet: usize) -> Vec<u8> {
    let n = code.width();
    let colors = code.to_colors();
    let side = (n + 2 * quiet) * module;
    let row_bytes = side.div_ceil(8);
    let mut out = Vec::with_capacity(8 + row_bytes * side);
    out.extend_from_slice(&GS_RASTER);
    out.push(0);
    // A ticket QR is at most a few hundred dots wide and high, far below u16::MAX.
    for v in [row_bytes, side] {
        out.extend_from_slice(&u16::try_from(v).unwrap_or(u16::MAX).to_le_bytes());
    }
    for y in 0..side {
        let my = (y / module).checked_sub(quiet).filter(|&m| m < n);
        for xb in 0..row_bytes {
            let mut byte = 0u8;
            for bit in 0..8 {
                let x = xb * 8 + bit;
                let mx = (x / module)
                    .checked_sub(quiet)
                    .filter(|&m| m < n && x < side);
                if let (Some(mx), Some(my)) = (mx, my) {
                    if colors[my * n + mx] == qrcode::Color::Dark {
                        byte |= 0x80 >> bit;
                    }
                }
            }
            out.push(byte);
        }
    }
    out
}

/// Word-wraps `text` to `columns` characters per line (long words are split).
pub fn wrap(text: &str, columns: usize) -> Vec<String> {
    let columns = columns.max(1);
    let mut lines = Vec::new();
    for paragraph in text.split('\n') {
        let mut line = String::new();
        let mut len = 0;
        for word in paragraph.split_whitespace() {
            let mut word: Vec<char> = word.chars().collect();
            while word.len() > columns {
                if len > 0 {
                    lines.push(std::mem::take(&mut line));
                    len = 0;
                }
                lines.push(word.drain(..columns).collect());
            }
            if len > 0 && len + 1 + word.len() > columns {
                lines.push(std::mem::take(&mut line));
                len = 0;
            }
            if len > 0 {
                line.push(' ');
                len += 1;
            }
            line.extend(word.iter());
            len += word.len();
        }
        if len > 0 || lines.is_empty() {
            lines.push(line);
        }
    }
    lines
}

fn two(n: u8) -> String {
    format!("{n:02}")
}

/// The issue time as printed: `22/11/2026 10:31` (es) or `2026-11-22 10:31` (en).
pub fn format_issued(at: time::PrimitiveDateTime, lang: Language) -> String {
    let (d, m, y) = (two(at.day()), two(u8::from(at.month())), at.year());
    let hm = format!("{}:{}", two(at.hour()), two(at.minute()));
    match lang {
        Language::Es => format!("{d}/{m}/{y} {hm}"),
        Language::En => format!("{y}-{m}-{d} {hm}"),
    }
}

/// A date as printed on a report.
pub fn format_date(date: time::Date, lang: Language) -> String {
    let (d, m, y) = (two(date.day()), two(u8::from(date.month())), date.year());
    match lang {
        Language::Es => format!("{d}/{m}/{y}"),
        Language::En => format!("{y}-{m}-{d}"),
    }
}

/// The largest size multiplier (1..=max) at which `text` fits on one line.
fn fitting_size(text: &str, dots: u16, max: u8) -> u8 {
    let len = u16::try_from(text.chars().count())
        .unwrap_or(u16::MAX)
        .max(1);
    (1..=max)
        .rev()
        .find(|&m| len.saturating_mul(FONT_A_WIDTH * u16::from(m)) <= dots)
        .unwrap_or(1)
}

impl Ticket {
    /// Lays out and encodes this ticket as ESC/POS for `profile`, ending with a cut.
    pub fn encode(&self, profile: &PrinterProfile) -> Result<Vec<u8>, LayoutError> {
        if self.turn_number.trim().is_empty() {
            return Err(LayoutError::Empty("turn_number"));
        }
        if self.qr_payload.is_empty() {
            return Err(LayoutError::Empty("qr_payload"));
        }
        let coupon = match &self.coupon {
            Some(c) => Some((
                c,
                match &c.barcode {
                    CouponBarcode::Ean13(digits) => CouponBarcode::Ean13(ean13_digits(digits)?),
                    CouponBarcode::Qr(text) => CouponBarcode::Qr(text.clone()),
                },
            )),
            None => None,
        };
        let l = self.language.labels();
        let mut w = Writer::new(profile)?;
        let big = match profile.paper {
            PaperWidth::Mm58 => 3,
            PaperWidth::Mm80 => 4,
        };

        w.text(
            Style {
                bold: true,
                size: fitting_size(&self.store_name, w.dots, 2),
                ..Style::CENTER
            },
            &self.store_name,
        )?;
        w.rule()?;
        let copy_mark = || format!("*** {} ***", l.copy);
        if self.copy {
            w.text(
                Style {
                    bold: true,
                    size: 2,
                    ..Style::CENTER
                },
                &copy_mark(),
            )?;
        }
        w.text(Style::CENTER, l.your_turn)?;
        let size = fitting_size(&self.turn_number, w.dots, big);
        w.text(
            Style {
                bold: true,
                size,
                ..Style::CENTER
            },
            &self.turn_number,
        )?;
        w.text(
            Style {
                bold: true,
                ..Style::CENTER
            },
            &self.service_name,
        )?;
        if self.copy {
            w.text(
                Style {
                    bold: true,
                    ..Style::CENTER
                },
                &copy_mark(),
            )?;
        }
        w.feed(1)?;
        if self.position_in_queue == 0 {
            w.text(
                Style {
                    bold: true,
                    ..Style::CENTER
                },
                l.next,
            )?;
        } else {
            w.pair(l.position, &self.position_in_queue.to_string())?;
        }
        if self.estimated_wait_minutes > 0 {
            w.pair(
                l.estimated_wait,
                &format!("{} {}", self.estimated_wait_minutes, l.minutes),
            )?;
        }
        w.pair(l.issued, &format_issued(self.issued_at, self.language))?;
        if let Some(note) = &self.note {
            w.feed(1)?;
            w.text(
                Style {
                    bold: true,
                    ..Style::CENTER
                },
                note,
            )?;
        }
        w.feed(1)?;
        w.qr(&self.qr_payload, profile.qr)?;
        w.text(Style::CENTER, l.scan_hint)?;
        if let Some(line) = &self.campaign_line {
            w.rule()?;
            w.text(
                Style {
                    bold: true,
                    ..Style::CENTER
                },
                line,
            )?;
        }
        if let Some((coupon, barcode)) = coupon {
            w.rule()?;
            w.text(
                Style {
                    underline: true,
                    ..Style::CENTER
                },
                &format!("{}: {}", l.coupon, coupon.code),
            )?;
            if let Some(day) = coupon.valid_until {
                w.text(
                    Style::CENTER,
                    &format!("{}: {}", l.valid_until, format_date(day, self.language)),
                )?;
            }
            match barcode {
                CouponBarcode::Ean13(digits) => w.ean13(&digits)?,
                CouponBarcode::Qr(text) => w.qr(&text, profile.qr)?,
            }
        }
        w.rule()?;
        w.text(Style::CENTER, &self.footer)?;
        w.cut(profile.partial_cut)
    }
}

impl Report {
    /// Lays out and encodes this report as ESC/POS for `profile`, ending with a cut.
    pub fn encode(&self, profile: &PrinterProfile) -> Result<Vec<u8>, LayoutError> {
        let mut w = Writer::new(profile)?;
        let l = self.language.labels();
        w.text(
            Style {
                bold: true,
                size: fitting_size(&self.title, w.dots, 2),
                ..Style::CENTER
            },
            &self.title,
        )?;
        w.text(Style::CENTER, &self.store_name)?;
        w.text(
            Style::CENTER,
            &format!("{}: {}", l.date, format_date(self.date, self.language)),
        )?;
        w.rule()?;
        for row in &self.rows {
            w.pair(&row.label, &row.value)?;
        }
        let cols = w.columns(1);
        for table in &self.tables {
            w.rule()?;
            w.text(
                Style {
                    bold: true,
                    ..Style::BODY
                },
                &table.service,
            )?;
            let n = table.columns.len();
            if let Some(row) = table.rows.iter().find(|r| r.len() != n) {
                return Err(LayoutError::RaggedTable {
                    service: table.service.clone(),
                    got: row.len(),
                    want: n,
                });
            }
            // Widths of the right-aligned columns; the first column takes what is left.
            let widths: Vec<usize> = (1..n)
                .map(|i| {
                    std::iter::once(&table.columns[i])
                        .chain(table.rows.iter().map(|r| &r[i]))
                        .map(|c| c.chars().count())
                        .max()
                        .unwrap_or(0)
                })
                .collect();
            let right: usize = widths.iter().map(|w| w + 1).sum();
            let first = cols.saturating_sub(right).max(1);
            let format_row = |cells: &[String]| {
                let mut line: String = cells
                    .first()
                    .map(|c| c.chars().take(first).collect())
                    .unwrap_or_default();
                let pad = first.saturating_sub(line.chars().count());
                line.push_str(&" ".repeat(pad));
                for (cell, width) in cells.iter().skip(1).zip(&widths) {
                    line.push_str(&format!(" {cell:>width$}"));
                }
                line
            };
            w.line(
                Style {
                    underline: true,
                    ..Style::BODY
                },
                &format_row(&table.columns),
            )?;
            for row in &table.rows {
                w.line(Style::BODY, &format_row(row))?;
            }
        }
        w.cut(profile.partial_cut)
    }
}

/// A printer profile for `paper` with its usual 203 dpi line width (384 or 576 dots).
pub fn standard_profile(paper: PaperWidth, qr: QrMode) -> PrinterProfile {
    let dots_per_line = match paper {
        PaperWidth::Mm58 => 384,
        PaperWidth::Mm80 => 576,
    };
    PrinterProfile {
        paper,
        dots_per_line,
        qr,
        partial_cut: true,
    }
}

/// The sample ticket `kiosk ticket-preview` prints: every field filled, Spanish accents in the
/// Spanish one, a campaign line and a coupon.
pub fn sample_ticket(lang: Language) -> Ticket {
    // 2026-11-22 10:31: a valid date and time, built from constants.
    let issued_at = time::macros::datetime!(2026-11-22 10:31);
    let (service, campaign, footer) = match lang {
        Language::Es => (
            "Atención al cliente",
            "¡2x1 en café hoy! ¿Lo probó? Sólo 1,50 € en cafetería",
            "Gracias por su visita. Conserve este tique hasta ser atendido; le llamaremos por su número en pantalla.",
        ),
        Language::En => (
            "Customer service",
            "2-for-1 coffee today! Only 1.50 € at the café",
            "Thank you for your visit. Keep this ticket until you are served; we will call your number on screen.",
        ),
    };
    Ticket {
        store_name: "Tienda Centro · Peñíscola".to_owned(),
        turn_number: "A-042".to_owned(),
        service_name: service.to_owned(),
        issued_at,
        estimated_wait_minutes: 7,
        position_in_queue: 5,
        qr_payload: "KT1.turn.A-042.2026-11-22.store-centro.9f2c1e7a5b.sig=Zm9vYmFyYmF6cXV4"
            .to_owned(),
        campaign_line: Some(campaign.to_owned()),
        coupon: Some(Coupon {
            code: "CAFE2X1".to_owned(),
            barcode: CouponBarcode::Ean13("4006381333931".to_owned()),
            valid_until: Some(time::macros::date!(2026 - 11 - 29)),
        }),
        note: None,
        footer: footer.to_owned(),
        language: lang,
        copy: false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wrap_breaks_on_words_and_splits_overlong_words() {
        assert_eq!(wrap("uno dos tres", 7), vec!["uno dos", "tres"]);
        assert_eq!(wrap("abcdefghij", 4), vec!["abcd", "efgh", "ij"]);
        assert_eq!(wrap("", 4), vec![""]);
    }

    #[test]
    fn ean13_check_digit_is_added_or_verified() {
        assert_eq!(ean13_digits("400638133393").unwrap(), "4006381333931");
        assert!(ean13_digits("4006381333931").is_ok());
        assert!(ean13_digits("4006381333932").is_err());
        assert!(ean13_digits("40063813339").is_err());
        assert!(ean13_digits("40063813339x").is_err());
    }

    #[test]
    fn issue_time_is_formatted_per_language() {
        let at = time::macros::datetime!(2026-01-02 03:04);
        assert_eq!(format_issued(at, Language::Es), "02/01/2026 03:04");
        assert_eq!(format_issued(at, Language::En), "2026-01-02 03:04");
    }

    #[test]
    fn a_reprint_says_copy_in_its_language_and_the_original_does_not() {
        let profile = standard_profile(PaperWidth::Mm80, QrMode::Native);
        for (lang, word) in [(Language::Es, "COPIA"), (Language::En, "COPY")] {
            let mut ticket = sample_ticket(lang);
            let original = ticket.encode(&profile).unwrap();
            ticket.copy = true;
            let copy = ticket.encode(&profile).unwrap();
            let count = |bytes: &[u8]| {
                bytes
                    .windows(word.len())
                    .filter(|w| *w == word.as_bytes())
                    .count()
            };
            assert_eq!(count(&original), 0, "{lang:?}");
            assert_eq!(count(&copy), 2, "{lang:?}: above and below the number");
        }
    }

    #[test]
    fn ticket_selects_pc858_and_encodes_accents_as_single_bytes() {
        let profile = standard_profile(PaperWidth::Mm80, QrMode::Native);
        let bytes = sample_ticket(Language::Es).encode(&profile).unwrap();
        assert!(bytes.windows(3).any(|w| w == [0x1B, b't', 19]));
        // "Atención": ó is 0xA2 in PC858.
        assert!(bytes.windows(8).any(|w| w == b"Atenci\xA2n"));
        // ¡ (0xAD) and € (0xD5).
        assert!(bytes.contains(&0xAD) && bytes.contains(&0xD5));
    }

    #[test]
    fn an_invalid_coupon_barcode_is_a_layout_error() {
        let mut t = sample_ticket(Language::En);
        t.coupon = Some(Coupon {
            code: "X".into(),
            barcode: CouponBarcode::Ean13("123".into()),
            valid_until: None,
        });
        let err = t
            .encode(&standard_profile(PaperWidth::Mm58, QrMode::Native))
            .unwrap_err();
        assert!(matches!(err, LayoutError::InvalidEan13 { .. }));
    }

    #[test]
    fn language_parses_from_cli_words() {
        assert_eq!("es".parse::<Language>().unwrap(), Language::Es);
        assert_eq!("EN".parse::<Language>().unwrap(), Language::En);
        assert!("fr".parse::<Language>().is_err());
    }
}
