//! The virtual printer: an ESC/POS interpreter that renders the paper at the printer's real
//! resolution (8 dots/mm: 384 dots for 58 mm, 576 for 80 mm) and answers real-time status queries.
//!
//! It interprets what this project and common libraries (python-escpos, the `escpos` crate) emit:
//! text with styles (`ESC !`, `ESC E`, `ESC -`, `GS !` up to 8x, `GS B` reverse), alignment, code
//! pages (`ESC t`), feeds, cuts (`GS V`, drawn as a dashed mark), raster images (`GS v 0`), column
//! bit images (`ESC *`), native QR codes (`GS ( k`, rendered with the `qrcode` crate), 1D barcodes
//! (`GS k`: EAN-13, EAN-8, UPC-A, ITF, CODE128, with HRI text) and real-time status (`DLE EOT n`).
//! Other commands are skipped by their documented length with a warning; nothing in the input can
//! make it panic (a proptest feeds it arbitrary bytes).
//!
//! Besides pixels it keeps a [`Record`]: the decoded text of each printed line, the data of every
//! QR code and barcode, the cuts and warnings, so tests check content without OCR. It can be told
//! it is out of paper, has its cover open or is offline ([`VirtualPrinter::set_faults`]); while it
//! cannot print it holds data (as a real printer's receive buffer does) and still answers status.

mod barcode;
mod font;
mod serve;

use std::collections::VecDeque;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use image::GrayImage;

use super::codepage;
use super::settings::PrinterProfile;
use super::status::{PrinterStatus, StatusRequest};

pub use serve::{PtyPrinter, ServeError, TcpPrinter};

const ESC: u8 = 0x1B;
const GS: u8 = 0x1D;
const FS: u8 = 0x1C;
const DLE: u8 = 0x10;

/// Paper longer than this (in dots, ~12.5 m) is not drawn: a guard against absurd streams.
pub const MAX_PAPER_DOTS: u32 = 40_000;
/// Past this much paper (in dots, 25 cm), a cut tears off the tickets before the previous cut:
/// [`VirtualPrinter::image`] then shows the latest tickets, and a simulated kiosk printing all
/// day keeps a few MiB of paper instead of growing to `MAX_PAPER_DOTS` (23 MiB at 80 mm). The
/// [`Record`] keeps everything.
pub const TEAR_OFF_DOTS: u32 = 2_000;
/// Default line spacing in dots (`ESC 2`).
const DEFAULT_SPACING: u32 = 30;
/// Grey level of the cut mark.
const CUT_GREY: u8 = 140;

/// A symbol printed on the paper, as the printer understood it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PrintedCode {
    /// `QR`, `EAN-13`, `EAN-8`, `UPC-A`, `ITF`, `CODE128`.
    pub symbology: &'static str,
    /// The encoded data (barcodes: the digits including the check digit).
    pub data: String,
}

/// A line of text as printed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PrintedLine {
    /// The decoded characters (trailing spaces removed).
    pub text: String,
    /// Largest width multiplier on the line.
    pub width_mult: u8,
    /// Largest height multiplier on the line.
    pub height_mult: u8,
    /// Whether any character was bold.
    pub bold: bool,
}

/// A cut.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cut {
    /// Full cut.
    Full,
    /// Partial cut (one point left uncut).
    Partial,
}

/// What the virtual printer did, for checks without OCR.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Record {
    /// Printed text lines, in order (blank lines are not recorded).
    pub lines: Vec<PrintedLine>,
    /// QR codes and barcodes, in order.
    pub codes: Vec<PrintedCode>,
    /// Cuts, in order.
    pub cuts: Vec<Cut>,
    /// Unknown or unsupported commands and other oddities, in order.
    pub warnings: Vec<String>,
    /// Status answers sent.
    pub status_answers: usize,
    /// Bytes received.
    pub bytes_received: usize,
}

impl Record {
    /// All printed text, one line per printed line.
    pub fn text(&self) -> String {
        self.lines
            .iter()
            .map(|l| l.text.as_str())
            .collect::<Vec<_>>()
            .join("\n")
    }
}

/// One element of the line buffer.
#[derive(Debug, Clone)]
enum Item {
    Glyph {
        c: char,
        font_b: bool,
        wm: u8,
        hm: u8,
        bold: bool,
        underline: u8,
        reverse: bool,
    },
    /// A column bit image (`ESC *`), already expanded to dots, row-major.
    Image {
        width: u32,
        height: u32,
        dots: Vec<bool>,
    },
}

impl Item {
    fn width(&self) -> u32 {
        match self {
            Item::Glyph { font_b, wm, .. } => cell(*font_b).0 * u32::from(*wm),
            Item::Image { width, .. } => *width,
        }
    }

    fn height(&self) -> u32 {
        match self {
            Item::Glyph { font_b, hm, .. } => cell(*font_b).1 * u32::from(*hm),
            Item::Image { height, .. } => *height,
        }
    }
}

/// Cell size of Font A (12 x 24) or Font B (9 x 17).
fn cell(font_b: bool) -> (u32, u32) {
    if font_b { (9, 17) } else { (12, 24) }
}

/// Print settings changed by commands (reset by `ESC @`).
#[derive(Debug, Clone)]
struct Mode {
    font_b: bool,
    bold: bool,
    underline: u8,
    wm: u8,
    hm: u8,
    reverse: bool,
    align: u8,
    page: u8,
    spacing: u32,
    left_margin: u32,
    qr_module: u8,
    qr_ecc: qrcode::EcLevel,
    qr_model: u8,
    qr_data: Vec<u8>,
    bar_width: u8,
    bar_height: u8,
    hri: u8,
    hri_font_b: bool,
}

impl Default for Mode {
    fn default() -> Self {
        Mode {
            font_b: false,
            bold: false,
            underline: 0,
            wm: 1,
            hm: 1,
            reverse: false,
            align: 0,
            page: codepage::PAGE_PC437,
            spacing: DEFAULT_SPACING,
            left_margin: 0,
            qr_module: 3,
            qr_ecc: qrcode::EcLevel::L,
            qr_model: 50,
            qr_data: Vec::new(),
            bar_width: 3,
            bar_height: 162,
            hri: 0,
            hri_font_b: false,
        }
    }
}

/// Result of measuring the command at the head of the buffer.
enum Len {
    /// The command is complete and this long.
    Known(usize),
    /// More bytes are needed.
    Need,
}

/// The virtual printer.
#[derive(Debug)]
pub struct VirtualPrinter {
    width: u32,
    /// Paper, row-major, one byte per dot (255 white, 0 black).
    paper: Vec<u8>,
    /// Next row to print at.
    y: u32,
    line: Vec<Item>,
    mode: Mode,
    /// An incomplete command waiting for more bytes.
    pending: Vec<u8>,
    /// Data received while the printer could not print.
    held: VecDeque<u8>,
    /// Last bytes of the previous write, to spot a real-time command split across writes.
    rt_tail: Vec<u8>,
    /// Non-real-time answers (`GS r`) produced by the interpreter, sent with the next answers.
    late_answers: Vec<u8>,
    faults: PrinterStatus,
    record: Record,
    clipped: bool,
    /// When the bytes being interpreted reached the printer (set by [`feed`](Self::feed)).
    arrived: Option<Instant>,
    /// When the bytes carrying the latest cut reached the printer.
    last_cut_at: Option<Instant>,
    /// Paper row just after the latest cut still on the paper (0: none).
    last_cut_y: u32,
    /// Rows torn off so far (see [`TEAR_OFF_DOTS`]).
    torn_off: u64,
}

impl VirtualPrinter {
    /// A printer with `profile`'s line width, idle and loaded with paper.
    pub fn new(profile: &PrinterProfile) -> Self {
        Self::with_width(u32::from(profile.dots_per_line))
    }

    /// A printer with a line of `dots` dots (at least 8).
    pub fn with_width(dots: u32) -> Self {
        VirtualPrinter {
            width: dots.max(8),
            paper: Vec::new(),
            y: 0,
            line: Vec::new(),
            mode: Mode::default(),
            pending: Vec::new(),
            held: VecDeque::new(),
            rt_tail: Vec::new(),
            late_answers: Vec::new(),
            faults: PrinterStatus::default(),
            record: Record::default(),
            clipped: false,
            arrived: None,
            last_cut_at: None,
            last_cut_y: 0,
            torn_off: 0,
        }
    }

    /// Line width in dots.
    pub fn width(&self) -> u32 {
        self.width
    }

    /// What has been printed so far.
    pub fn record(&self) -> &Record {
        &self.record
    }

    /// When the bytes that carried the latest cut reached the printer (before they were
    /// interpreted): the end of a ticket's transfer, for latency measurements. For data held while
    /// the printer could not print, the latest arrival before it recovered.
    pub fn last_cut_at(&self) -> Option<Instant> {
        self.last_cut_at
    }

    /// The faults the printer reports.
    pub fn faults(&self) -> PrinterStatus {
        self.faults
    }

    /// Sets the faults (paper out, cover open, offline, ...). When they clear, held data prints.
    pub fn set_faults(&mut self, faults: PrinterStatus) {
        self.faults = faults;
        if self.faults.can_print() && !self.held.is_empty() {
            let held: Vec<u8> = self.held.drain(..).collect();
            self.interpret(&held);
        }
    }

    /// Bytes received while the printer could not print, waiting for it to recover.
    pub fn held_bytes(&self) -> usize {
        self.held.len()
    }

    /// Feeds bytes as they arrive from the host; returns the bytes the printer sends back
    /// (real-time status answers).
    pub fn feed(&mut self, bytes: &[u8]) -> Vec<u8> {
        self.arrived = Some(Instant::now());
        self.record.bytes_received += bytes.len();
        // Real-time commands are executed on reception, before the data reaches the command
        // interpreter: a printer answers DLE EOT n while offline, out of paper, or in the middle
        // of an unfinished command (and, as the ESC/POS reference warns, also when the three
        // bytes happen to occur inside image data). The last two bytes of the previous write are
        // kept so a query split across writes is still seen.
        let mut window = std::mem::take(&mut self.rt_tail);
        let skip = window.len();
        window.extend_from_slice(bytes);
        let mut answers = Vec::new();
        for (i, w) in window.windows(3).enumerate() {
            if i + 2 >= skip && w[0] == DLE && w[1] == 0x04 {
                if let Some(req) = StatusRequest::from_n(w[2]) {
                    answers.push(self.status_byte(req));
                }
            }
        }
        let keep = window.len().saturating_sub(2);
        self.rt_tail = window[keep..].to_vec();
        if self.faults.can_print() {
            self.interpret(bytes);
        } else {
            // A printer that cannot print keeps data in its receive buffer.
            self.held.extend(bytes);
        }
        answers.append(&mut self.late_answers);
        answers
    }

    /// Ends the stream: a command cut short is reported, and text without a final line feed is
    /// printed (a real printer would wait; a preview should show it).
    pub fn finish(&mut self) {
        if !self.pending.is_empty() {
            let head = self
                .pending
                .iter()
                .take(4)
                .map(|b| format!("{b:02x}"))
                .collect::<Vec<_>>()
                .join(" ");
            self.warn(format!(
                "stream ends inside a command ({} bytes starting {head})",
                self.pending.len()
            ));
            self.pending.clear();
        }
        if !self.line.is_empty() {
            self.print_line();
        }
    }

    /// The paper printed so far, without a copy: rows of [`width`](Self::width) gray levels
    /// (0 black, 255 white), as [`image`](Self::image) shows them before its bottom margin.
    pub fn dots(&self) -> &[u8] {
        &self.paper
    }

    /// The paper so far as a greyscale image (at least one line tall).
    pub fn image(&self) -> GrayImage {
        let height = self.y.max(self.line_height_default()) + 8;
        let mut dots = self.paper.clone();
        dots.resize((self.width * height) as usize, 255);
        GrayImage::from_raw(self.width, height, dots)
            // from_raw only fails when the buffer is too small, and it was sized above.
            .unwrap_or_else(|| GrayImage::from_pixel(self.width, height, image::Luma([255])))
    }

    /// The paper as PNG bytes.
    pub fn png(&self) -> Result<Vec<u8>, image::ImageError> {
        let mut out = std::io::Cursor::new(Vec::new());
        self.image().write_to(&mut out, image::ImageFormat::Png)?;
        Ok(out.into_inner())
    }

    /// Clears the paper and the record (a new roll), keeping faults and modes.
    pub fn clear_paper(&mut self) {
        self.paper.clear();
        self.y = 0;
        self.record = Record::default();
        self.clipped = false;
        self.last_cut_y = 0;
        self.torn_off = 0;
    }

    /// Paper rows torn off the top so far (see [`TEAR_OFF_DOTS`]).
    pub fn torn_off_dots(&self) -> u64 {
        self.torn_off
    }

    fn line_height_default(&self) -> u32 {
        self.mode.spacing
    }

    fn warn(&mut self, w: String) {
        if self.record.warnings.len() < 1000 {
            self.record.warnings.push(w);
        }
    }

    fn status_byte(&mut self, req: StatusRequest) -> u8 {
        self.record.status_answers += 1;
        self.faults.encode()[usize::from(req as u8 - 1)]
    }

    /// Runs the command interpreter; `GS r` answers (not real-time) are kept for `feed` to send.
    fn interpret(&mut self, bytes: &[u8]) {
        let mut buf = std::mem::take(&mut self.pending);
        buf.extend_from_slice(bytes);
        let mut out = Vec::new();
        let mut pos = 0;
        while pos < buf.len() {
            if !self.faults.can_print() {
                self.held.extend(&buf[pos..]);
                self.late_answers.extend(out);
                return;
            }
            match command_len(&buf[pos..]) {
                Len::Need => break,
                Len::Known(n) => {
                    let n = n.min(buf.len() - pos).max(1);
                    self.execute(&buf[pos..pos + n], &mut out);
                    pos += n;
                }
            }
        }
        self.pending = buf[pos..].to_vec();
        self.late_answers.extend(out);
    }

    fn execute(&mut self, cmd: &[u8], out: &mut Vec<u8>) {
        let b0 = cmd[0];
        let arg = |i: usize| cmd.get(i).copied().unwrap_or(0);
        match b0 {
            0x0A => self.print_and_feed(0),
            0x0D | 0x00 | 0x18 => {}
            0x09 => {
                let tab = cell(self.mode.font_b).0 * 8;
                let used: u32 = self.line.iter().map(Item::width).sum();
                let spaces = (tab - used % tab) / cell(self.mode.font_b).0;
                for _ in 0..spaces {
                    self.put_char(' ');
                }
            }
            0x0C => self.print_and_feed(0),
            DLE => match (arg(1), StatusRequest::from_n(arg(2))) {
                // Answered on reception by `feed`.
                (0x04, Some(_)) => {}
                (0x04, None) => {
                    self.warn(format!("DLE EOT {} is not supported; no answer", arg(2)))
                }
                _ => {}
            },
            ESC => self.execute_esc(cmd),
            GS => self.execute_gs(cmd, out),
            FS => self.warn(format!("FS {:#04x} (kanji/NV command) skipped", arg(1))),
            b if b < 0x20 => self.warn(format!("control byte {b:#04x} ignored")),
            b => {
                let c = codepage::decode(self.mode.page, b);
                self.put_char(c);
            }
        }
    }

    fn execute_esc(&mut self, cmd: &[u8]) {
        let arg = |i: usize| cmd.get(i).copied().unwrap_or(0);
        let n = arg(2);
        match arg(1) {
            b'@' => {
                self.line.clear();
                self.mode = Mode::default();
            }
            b'!' => {
                self.mode.font_b = n & 0x01 != 0;
                self.mode.bold = n & 0x08 != 0;
                self.mode.hm = if n & 0x10 != 0 { 2 } else { 1 };
                self.mode.wm = if n & 0x20 != 0 { 2 } else { 1 };
                self.mode.underline = if n & 0x80 != 0 { 1 } else { 0 };
            }
            b'E' | b'G' => self.mode.bold = n & 1 != 0,
            b'-' => {
                self.mode.underline = match n {
                    1 | 49 => 1,
                    2 | 50 => 2,
                    _ => 0,
                }
            }
            b'a' => {
                self.mode.align = match n {
                    1 | 49 => 1,
                    2 | 50 => 2,
                    _ => 0,
                }
            }
            b't' => {
                if !codepage::is_known(n) {
                    self.warn(format!(
                        "code page ESC t {n} unknown to the virtual printer; decoding as PC437"
                    ));
                }
                self.mode.page = n;
            }
            b'M' => self.mode.font_b = matches!(n, 1 | 49),
            b'd' => self.print_and_feed(u32::from(n).saturating_sub(1) * self.mode.spacing),
            b'J' => {
                self.print_line();
                self.advance(u32::from(n));
            }
            b'2' => self.mode.spacing = DEFAULT_SPACING,
            b'3' => self.mode.spacing = u32::from(n),
            b'i' | b'm' => self.cut(if arg(1) == b'i' {
                Cut::Full
            } else {
                Cut::Partial
            }),
            b'*' => self.column_image(cmd),
            b'R' | b' ' | b'{' | b'V' | b'r' | b'U' | b'=' | b'c' | b'p' | b'$' | b'\\' | b'D'
            | b'%' | b'?' | b'<' | b'e' | b'S' | b'L' | b'T' | b'W' => {}
            other => self.warn(format!("ESC {other:#04x} unknown; skipped")),
        }
    }

    fn execute_gs(&mut self, cmd: &[u8], out: &mut Vec<u8>) {
        let arg = |i: usize| cmd.get(i).copied().unwrap_or(0);
        let n = arg(2);
        match arg(1) {
            b'!' => {
                self.mode.wm = (n >> 4 & 0x07) + 1;
                self.mode.hm = (n & 0x07) + 1;
            }
            b'B' => self.mode.reverse = n & 1 != 0,
            b'V' => {
                let partial = matches!(n, 1 | 49 | 66 | 98 | 104);
                if matches!(n, 65 | 66 | 97 | 98 | 103 | 104) {
                    self.print_line();
                    self.advance(u32::from(arg(3)));
                }
                self.cut(if partial { Cut::Partial } else { Cut::Full });
            }
            b'v' if arg(2) == b'0' => self.raster(cmd),
            b'(' if arg(2) == b'k' => self.symbol_2d(cmd),
            b'k' => self.barcode(cmd),
            b'H' => self.mode.hri = n & 0x03,
            b'f' => self.mode.hri_font_b = matches!(n, 1 | 49),
            b'h' => self.mode.bar_height = n.max(1),
            b'w' => self.mode.bar_width = n.clamp(1, 6),
            b'L' => {
                self.mode.left_margin =
                    u32::from(u16::from_le_bytes([arg(2), arg(3)])).min(self.width / 2)
            }
            b'r' => {
                // GS r 1: paper sensor status (bits 0-1 near end, bits 2-3 end).
                if matches!(n, 1 | 49) {
                    let f = self.faults;
                    out.push(
                        if f.paper_near_end || f.paper_out {
                            0x03
                        } else {
                            0
                        } | if f.paper_out { 0x0C } else { 0 },
                    );
                }
            }
            b'b' | b'W' | b'P' | b'a' | b'I' | b'T' | b'\\' | b'$' | b':' | b'^' => {}
            b'(' | b'8' => self.warn(format!(
                "GS {} {} (graphics/extended command) skipped",
                char::from(arg(1)),
                char::from(arg(2))
            )),
            other => self.warn(format!("GS {other:#04x} unknown; skipped")),
        }
    }

    // --- line buffer and paper -------------------------------------------------------------

    fn put_char(&mut self, c: char) {
        let m = &self.mode;
        let item = Item::Glyph {
            c,
            font_b: m.font_b,
            wm: m.wm,
            hm: m.hm,
            bold: m.bold,
            underline: m.underline,
            reverse: m.reverse,
        };
        self.put_item(item);
    }

    fn put_item(&mut self, item: Item) {
        let used: u32 = self.line.iter().map(Item::width).sum();
        if !self.line.is_empty() && self.mode.left_margin + used + item.width() > self.width {
            // The printer wraps a full line by printing it.
            self.print_line_with(0);
        }
        self.line.push(item);
    }

    /// Prints the line buffer and feeds the line spacing plus `extra` dots.
    fn print_and_feed(&mut self, extra: u32) {
        self.print_line_with(extra);
    }

    fn print_line(&mut self) {
        if !self.line.is_empty() {
            self.print_line_with(0);
        }
    }

    fn print_line_with(&mut self, extra: u32) {
        let items = std::mem::take(&mut self.line);
        let height = items.iter().map(Item::height).max().unwrap_or(0);
        let total: u32 = items.iter().map(Item::width).sum();
        let mut x = self.aligned_x(total);
        let top = self.y;
        let mut text = String::new();
        let (mut wmax, mut hmax, mut any_bold) = (1, 1, false);
        for item in &items {
            match item {
                Item::Glyph {
                    c,
                    font_b,
                    wm,
                    hm,
                    bold,
                    underline,
                    reverse,
                } => {
                    let (cw, ch) = cell(*font_b);
                    let (w, h) = (cw * u32::from(*wm), ch * u32::from(*hm));
                    self.draw_glyph(
                        x,
                        top + height - h,
                        *c,
                        *font_b,
                        *wm,
                        *hm,
                        *bold,
                        *underline,
                        *reverse,
                    );
                    text.push(*c);
                    wmax = wmax.max(*wm);
                    hmax = hmax.max(*hm);
                    any_bold |= *bold && !c.is_whitespace();
                    x += w;
                }
                Item::Image {
                    width,
                    height: ih,
                    dots,
                } => {
                    for yy in 0..*ih {
                        for xx in 0..*width {
                            if dots[(yy * width + xx) as usize] {
                                self.set(x + xx, top + height - ih + yy, 0);
                            }
                        }
                    }
                    x += width;
                }
            }
        }
        let text = text.trim_end().to_owned();
        if !text.trim().is_empty() {
            self.record.lines.push(PrintedLine {
                text,
                width_mult: wmax,
                height_mult: hmax,
                bold: any_bold,
            });
        }
        self.advance(height.max(self.mode.spacing) + extra);
    }

    fn aligned_x(&self, total: u32) -> u32 {
        let area = self.width.saturating_sub(self.mode.left_margin);
        let free = area.saturating_sub(total);
        self.mode.left_margin
            + match self.mode.align {
                1 => free / 2,
                2 => free,
                _ => 0,
            }
    }

    fn advance(&mut self, dots: u32) {
        self.y = (self.y + dots).min(MAX_PAPER_DOTS);
    }

    /// Sets one dot, growing the paper as needed; dots off the line or past the limit are dropped.
    fn set(&mut self, x: u32, y: u32, v: u8) {
        if x >= self.width {
            return;
        }
        if y >= MAX_PAPER_DOTS {
            if !self.clipped {
                self.clipped = true;
                self.warn(format!(
                    "paper longer than {MAX_PAPER_DOTS} dots; the rest is not drawn"
                ));
            }
            return;
        }
        let i = (y * self.width + x) as usize;
        if i >= self.paper.len() {
            self.paper.resize(((y + 64) * self.width) as usize, 255);
        }
        self.paper[i] = v;
    }

    #[expect(
        clippy::too_many_arguments,
        reason = "a glyph is drawn from its position, size and style"
    )]
    fn draw_glyph(
        &mut self,
        x0: u32,
        y0: u32,
        c: char,
        font_b: bool,
        wm: u8,
        hm: u8,
        bold: bool,
        underline: u8,
        reverse: bool,
    ) {
        let g = font::glyph(c);
        let (cw, ch) = cell(font_b);
        let (wm, hm) = (u32::from(wm), u32::from(hm));
        // The 8x8 glyph is stretched over the cell, leaving a margin above and below.
        let (top, band) = (2, ch - 4);
        for cy in 0..ch {
            for cx in 0..cw {
                let on = cy >= top && cy < top + band && {
                    let gy = ((cy - top) * 8 / band) as usize;
                    let gx = cx * 8 / cw;
                    let hit = |gx: u32| gx < 8 && (g[gy] >> gx) & 1 == 1;
                    hit(gx) || (bold && gx > 0 && hit(gx - 1))
                };
                let under = underline > 0 && cy >= ch - u32::from(underline);
                let black = (on || under) != reverse;
                if black {
                    for dy in 0..hm {
                        for dx in 0..wm {
                            self.set(x0 + cx * wm + dx, y0 + cy * hm + dy, 0);
                        }
                    }
                }
            }
        }
    }

    fn cut(&mut self, kind: Cut) {
        self.print_line();
        let y = self.y + 4;
        for x in 0..self.width {
            let gap = kind == Cut::Partial && (x as i64 - i64::from(self.width / 2)).abs() < 8;
            if (x / 6) % 2 == 0 && !gap {
                self.set(x, y, CUT_GREY);
            }
        }
        self.advance(12);
        self.record.cuts.push(kind);
        self.last_cut_at = self.arrived;
        if self.y > TEAR_OFF_DOTS && self.last_cut_y > 0 {
            let rows = self.last_cut_y;
            let bytes = ((rows * self.width) as usize).min(self.paper.len());
            self.paper.drain(..bytes);
            self.y -= rows;
            self.torn_off += u64::from(rows);
        }
        self.last_cut_y = self.y;
    }

    /// Draws a block of dots (`rows[y][x]`) at the current alignment and advances past it.
    fn draw_block(&mut self, width: u32, height: u32, dot: impl Fn(u32, u32) -> bool) {
        self.print_line();
        let x0 = self.aligned_x(width);
        let y0 = self.y;
        for y in 0..height {
            for x in 0..width {
                if dot(x, y) {
                    self.set(x0 + x, y0 + y, 0);
                }
            }
        }
        self.advance(height);
    }

    fn raster(&mut self, cmd: &[u8]) {
        let m = cmd[3];
        let xb = u32::from(u16::from_le_bytes([cmd[4], cmd[5]]));
        let rows = u32::from(u16::from_le_bytes([cmd[6], cmd[7]]));
        let data = &cmd[8..];
        let (sx, sy) = match m {
            1 | 49 => (2, 1),
            2 | 50 => (1, 2),
            3 | 51 => (2, 2),
            _ => (1, 1),
        };
        let width = xb * 8;
        self.draw_block(width * sx, rows * sy, |x, y| {
            let (x, y) = (x / sx, y / sy);
            let i = (y * xb + x / 8) as usize;
            data.get(i).is_some_and(|b| (b >> (7 - x % 8)) & 1 == 1)
        });
    }

    fn column_image(&mut self, cmd: &[u8]) {
        let m = cmd[2];
        let n = u32::from(u16::from_le_bytes([cmd[3], cmd[4]]));
        let data = &cmd[5..];
        let (bytes_per_col, sx, sy) = match m {
            0 => (1, 2, 3),
            1 => (1, 1, 3),
            32 => (3, 2, 1),
            _ => (3, 1, 1),
        };
        let (width, height) = (n * sx, bytes_per_col * 8 * sy);
        let mut dots = vec![false; (width * height) as usize];
        for col in 0..n {
            for bit in 0..bytes_per_col * 8 {
                let byte = data
                    .get((col * bytes_per_col + bit / 8) as usize)
                    .copied()
                    .unwrap_or(0);
                if (byte >> (7 - bit % 8)) & 1 == 1 {
                    for dy in 0..sy {
                        for dx in 0..sx {
                            dots[((bit * sy + dy) * width + col * sx + dx) as usize] = true;
                        }
                    }
                }
            }
        }
        self.put_item(Item::Image {
            width,
            height,
            dots,
        });
    }

    fn symbol_2d(&mut self, cmd: &[u8]) {
        // GS ( k pL pH cn fn [params]
        let body = &cmd[5..];
        let (cn, func) = (
            body.first().copied().unwrap_or(0),
            body.get(1).copied().unwrap_or(0),
        );
        let p = |i: usize| body.get(i).copied().unwrap_or(0);
        if cn != 49 {
            self.warn(format!(
                "2D symbol type cn={cn} (PDF417/MaxiCode/...) not rendered"
            ));
            return;
        }
        match func {
            65 => self.mode.qr_model = p(2),
            67 => self.mode.qr_module = p(2).clamp(1, 16),
            69 => {
                self.mode.qr_ecc = match p(2) {
                    49 => qrcode::EcLevel::M,
                    50 => qrcode::EcLevel::Q,
                    51 => qrcode::EcLevel::H,
                    _ => qrcode::EcLevel::L,
                }
            }
            80 => self.mode.qr_data = body.get(3..).unwrap_or(&[]).to_vec(),
            81 => self.print_qr(),
            82 => {}
            other => self.warn(format!("QR function {other} unknown; skipped")),
        }
    }

    fn print_qr(&mut self) {
        if self.mode.qr_model != 50 {
            self.warn(format!(
                "QR model {} rendered as model 2",
                self.mode.qr_model
            ));
        }
        let data = self.mode.qr_data.clone();
        let code = match qrcode::QrCode::with_error_correction_level(&data, self.mode.qr_ecc) {
            Ok(code) => code,
            Err(e) => {
                self.warn(format!(
                    "QR code data of {} bytes cannot be encoded ({e}); nothing printed",
                    data.len()
                ));
                return;
            }
        };
        let n = code.width() as u32;
        let colors = code.to_colors();
        let module = u32::from(self.mode.qr_module);
        let quiet = 4;
        let side = (n + 2 * quiet) * module;
        self.draw_block(side, side, |x, y| {
            let (mx, my) = (
                (x / module).wrapping_sub(quiet),
                (y / module).wrapping_sub(quiet),
            );
            mx < n && my < n && colors[(my * n + mx) as usize] == qrcode::Color::Dark
        });
        self.record.codes.push(PrintedCode {
            symbology: "QR",
            data: String::from_utf8_lossy(&data).into_owned(),
        });
    }

    fn barcode(&mut self, cmd: &[u8]) {
        let m = cmd[2];
        let data: &[u8] = if m <= 6 {
            &cmd[3..cmd.len().saturating_sub(1).max(3)]
        } else {
            &cmd[4..]
        };
        let result = match m {
            0 | 65 => ("UPC-A", barcode::upca(data)),
            2 | 67 => ("EAN-13", barcode::ean13(data)),
            3 | 68 => ("EAN-8", barcode::ean8(data)),
            5 | 70 => ("ITF", barcode::itf(data)),
            73 => ("CODE128", barcode::code128(data)),
            _ => {
                self.warn(format!("barcode type m={m} not rendered"));
                return;
            }
        };
        let (symbology, (widths, hri)) = match result {
            (s, Ok(v)) => (s, v),
            (s, Err(e)) => {
                self.warn(format!("{s} barcode not printed: {e}"));
                return;
            }
        };
        let module = u32::from(self.mode.bar_width);
        let total: u32 = widths.iter().map(|&w| u32::from(w) * module).sum();
        let height = u32::from(self.mode.bar_height);
        if self.mode.hri & 1 != 0 {
            self.hri_line(&hri);
        }
        let mut bars = Vec::with_capacity(total as usize);
        for (i, &w) in widths.iter().enumerate() {
            bars.extend(std::iter::repeat_n(
                i % 2 == 0,
                (u32::from(w) * module) as usize,
            ));
        }
        self.draw_block(total, height, |x, _| {
            bars.get(x as usize).copied().unwrap_or(false)
        });
        if self.mode.hri & 2 != 0 {
            self.advance(4);
            self.hri_line(&hri);
        }
        self.record.codes.push(PrintedCode {
            symbology,
            data: hri,
        });
    }

    /// Human-readable text of a barcode, centred like the barcode, in the HRI font.
    fn hri_line(&mut self, text: &str) {
        let saved = self.mode.clone();
        self.mode.font_b = self.mode.hri_font_b;
        self.mode.wm = 1;
        self.mode.hm = 1;
        self.mode.bold = false;
        self.mode.underline = 0;
        self.mode.reverse = false;
        for c in text.chars() {
            self.put_char(c);
        }
        let spacing = self.mode.spacing;
        self.mode.spacing = cell(self.mode.font_b).1 + 2;
        self.print_line_with(0);
        self.mode = Mode { spacing, ..saved };
    }
}

/// Reads a little-endian u16 at `i`, or `None` when the buffer is too short.
fn le16(buf: &[u8], i: usize) -> Option<usize> {
    Some(usize::from(u16::from_le_bytes([
        *buf.get(i)?,
        *buf.get(i + 1)?,
    ])))
}

/// Length of the command at the head of `buf` (non-empty), by the ESC/POS reference.
fn command_len(buf: &[u8]) -> Len {
    use Len::{Known, Need};
    let at = |i: usize| buf.get(i).copied();
    let need = |n: usize| if buf.len() >= n { Known(n) } else { Need };
    let Some(&b0) = buf.first() else { return Need };
    match b0 {
        DLE => match at(1) {
            None => Need,
            Some(0x04) => match at(2) {
                None => Need,
                Some(7 | 8 | 18) => need(4),
                Some(_) => Known(3),
            },
            Some(0x05) => need(3),
            Some(0x14) => match at(2) {
                None => Need,
                Some(8) => need(10),
                Some(_) => need(5),
            },
            Some(_) => Known(2),
        },
        ESC => match at(1) {
            None => Need,
            Some(b'@' | b'2' | b'<' | b'i' | b'm' | b'L' | b'S' | 0x0C) => Known(2),
            Some(b'c') => need(4),
            Some(b'p') => need(5),
            Some(b'$' | b'\\') => need(4),
            Some(b'W') => need(10),
            // At most 32 tab stops and the NUL: look no further, so the answer does not depend on
            // how much of the stream has arrived.
            Some(b'D') => match buf[2..buf.len().min(2 + 33)].iter().position(|&b| b == 0) {
                Some(p) => Known(p + 3),
                None if buf.len() >= 2 + 33 => Known(2 + 33),
                None => Need,
            },
            Some(b'*') => {
                let (Some(m), Some(n)) = (at(2), le16(buf, 3)) else {
                    return Need;
                };
                need(5 + if matches!(m, 0 | 1) { n } else { 3 * n })
            }
            Some(b'&') => {
                // ESC & y c1 c2 [x d1...d(y*x)] for each character c1..=c2.
                let (Some(y), Some(c1), Some(c2)) = (at(2), at(3), at(4)) else {
                    return Need;
                };
                let mut i = 5;
                for _ in c1..=c2.max(c1) {
                    let Some(x) = at(i) else { return Need };
                    i += 1 + usize::from(y) * usize::from(x);
                }
                need(i)
            }
            Some(b'(') => match le16(buf, 3) {
                Some(p) => need(5 + p),
                None => Need,
            },
            Some(
                b'!' | b'E' | b'G' | b'-' | b'a' | b't' | b'R' | b'd' | b'J' | b'e' | b'3' | b'M'
                | b' ' | b'{' | b'V' | b'r' | b'U' | b'%' | b'=' | b'?' | b'T',
            ) => need(3),
            Some(_) => Known(2),
        },
        GS => match at(1) {
            None => Need,
            Some(b'V') => match at(2) {
                None => Need,
                Some(65 | 66 | 97 | 98 | 103 | 104) => need(4),
                Some(_) => Known(3),
            },
            Some(b'v') => {
                if at(2).is_some_and(|b| b != b'0') {
                    return Known(2);
                }
                let (Some(x), Some(y)) = (le16(buf, 4), le16(buf, 6)) else {
                    return Need;
                };
                need(8 + x * y)
            }
            Some(b'k') => match at(2) {
                None => Need,
                Some(m) if m <= 6 => {
                    match buf[3..buf.len().min(3 + 256)].iter().position(|&b| b == 0) {
                        Some(p) => Known(p + 4),
                        // Function A data is NUL-terminated and short; a missing NUL in 256 bytes is
                        // not a barcode.
                        None if buf.len() >= 3 + 256 => Known(3),
                        None => Need,
                    }
                }
                Some(_) => match at(3) {
                    Some(n) => need(4 + usize::from(n)),
                    None => Need,
                },
            },
            Some(b'(') => match le16(buf, 3) {
                Some(p) => need(5 + p),
                None => Need,
            },
            Some(b'8') => {
                if buf.len() < 7 {
                    return Need;
                }
                let p = u32::from_le_bytes([buf[3], buf[4], buf[5], buf[6]]) as usize;
                need(7usize.saturating_add(p))
            }
            Some(b'*') => match (at(2), at(3)) {
                (Some(x), Some(y)) => need(4 + usize::from(x) * usize::from(y) * 8),
                _ => Need,
            },
            Some(b'L' | b'W' | b'P' | b'\\' | b'$') => need(4),
            Some(b'^') => need(5),
            Some(b':') => Known(2),
            Some(
                b'!' | b'B' | b'b' | b'H' | b'f' | b'h' | b'w' | b'a' | b'r' | b'I' | b'/' | b'T',
            ) => need(3),
            Some(_) => Known(2),
        },
        FS => match at(1) {
            None => Need,
            Some(b'p') => need(4),
            Some(b'(') => match le16(buf, 3) {
                Some(p) => need(5 + p),
                None => Need,
            },
            Some(b'!' | b'-' | b'C' | b'W') => need(3),
            Some(b'S') => need(4),
            Some(b'2') => need(76),
            Some(_) => Known(2),
        },
        _ => Known(1),
    }
}

/// A virtual printer shared between a transport (or server thread) and whoever drives its faults
/// and inspects its paper: the control side of the simulated kiosk's printer.
#[derive(Debug, Clone)]
pub struct VirtualPrinterHandle {
    inner: Arc<(Mutex<VirtualPrinter>, Condvar)>,
}

impl VirtualPrinterHandle {
    /// A shared virtual printer for `profile`.
    pub fn new(profile: &PrinterProfile) -> Self {
        VirtualPrinterHandle {
            inner: Arc::new((Mutex::new(VirtualPrinter::new(profile)), Condvar::new())),
        }
    }

    /// Locks the printer. A panic in another holder cannot leave it half-updated in a way that
    /// matters for a simulator, so a poisoned lock is taken over.
    pub fn lock(&self) -> MutexGuard<'_, VirtualPrinter> {
        self.inner.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Feeds bytes (as a transport does) and wakes anyone waiting for output.
    pub fn feed(&self, bytes: &[u8]) -> Vec<u8> {
        let answers = self.lock().feed(bytes);
        self.inner.1.notify_all();
        answers
    }

    /// Sets the faults (see [`VirtualPrinter::set_faults`]).
    pub fn set_faults(&self, faults: PrinterStatus) {
        self.lock().set_faults(faults);
        self.inner.1.notify_all();
    }

    /// Changes the faults with `f`.
    pub fn update_faults(&self, f: impl FnOnce(&mut PrinterStatus)) {
        let mut faults = self.lock().faults();
        f(&mut faults);
        self.set_faults(faults);
    }

    /// A copy of the record.
    pub fn record(&self) -> Record {
        self.lock().record().clone()
    }

    /// Waits until `pred` holds for the record or `timeout` passes; returns whether it held.
    pub fn wait_for(&self, timeout: Duration, pred: impl Fn(&Record) -> bool) -> bool {
        let deadline = Instant::now() + timeout;
        let mut guard = self.lock();
        loop {
            if pred(guard.record()) {
                return true;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            guard = match self.inner.1.wait_timeout(guard, left) {
                Ok((g, _)) => g,
                Err(e) => e.into_inner().0,
            };
        }
    }
}

/// Interprets a whole captured stream on a fresh printer for `profile` and finishes it.
pub fn interpret(bytes: &[u8], profile: &PrinterProfile) -> VirtualPrinter {
    let mut p = VirtualPrinter::new(profile);
    p.feed(bytes);
    p.finish();
    p
}

#[cfg(test)]
mod tests {
    use super::*;

    fn printer() -> VirtualPrinter {
        VirtualPrinter::with_width(384)
    }

    #[test]
    fn a_day_of_tickets_keeps_a_bounded_roll_with_the_latest_tickets_and_records_everything() {
        let mut p = printer();
        // A tall ticket: 40 lines of double height text, then a cut.
        let ticket = |n: usize| {
            let mut t = vec![GS, b'!', 0x11];
            for i in 0..40 {
                t.extend(format!("T{n:03} line {i}\n").bytes());
            }
            t.extend([GS, b'V', 66, 0]);
            t
        };
        let mut max_rows = 0;
        for n in 0..200 {
            p.feed(&ticket(n));
            max_rows = max_rows.max(p.image().height());
        }
        assert_eq!(p.record().cuts.len(), 200);
        assert!(p.record().text().contains("T000 line 0"));
        assert!(p.torn_off_dots() > 0);
        // At most the threshold plus one ticket stays on the paper.
        let one = {
            let mut q = printer();
            q.feed(&ticket(0));
            q.image().height()
        };
        assert!(max_rows <= TEAR_OFF_DOTS + 2 * one, "{max_rows} rows");
        assert!(
            !p.clipped,
            "a bounded roll never reaches the clipping guard"
        );
        // The last ticket is whole on the paper: its first row of ink is below the tear.
        let img = p.image();
        assert!(
            img.pixels().any(|px| px.0[0] < 128),
            "ink on the remaining paper"
        );
    }

    #[test]
    fn a_cut_is_timed_from_the_arrival_of_the_bytes_that_carry_it() {
        let mut p = printer();
        assert_eq!(p.last_cut_at(), None);
        let before = Instant::now();
        p.feed(b"A-042\n");
        assert_eq!(p.last_cut_at(), None, "no cut yet");
        p.feed(&[GS, b'V', 66, 0]);
        let first = p.last_cut_at().expect("cut recorded");
        assert!(first >= before);
        // A status query after the ticket does not move the cut's time.
        p.feed(&[DLE, 0x04, 1]);
        assert_eq!(p.last_cut_at(), Some(first));
        p.feed(&[GS, b'V', 65, 0]);
        assert!(p.last_cut_at().expect("second cut") >= first);
        assert_eq!(p.record().cuts, vec![Cut::Partial, Cut::Full]);
    }

    #[test]
    fn text_lines_are_recorded_with_their_size_and_weight() {
        let mut p = printer();
        p.feed(b"\x1b@plain\n\x1bE\x01\x1d!\x33BIG\n");
        let r = p.record();
        assert_eq!(r.lines[0].text, "plain");
        assert_eq!(
            (
                r.lines[1].text.as_str(),
                r.lines[1].width_mult,
                r.lines[1].height_mult,
                r.lines[1].bold
            ),
            ("BIG", 4, 4, true)
        );
    }

    #[test]
    fn pc858_bytes_decode_to_spanish_text() {
        let mut p = printer();
        p.feed(b"\x1bt\x13\xa8A\xa4o? \xadS\xa1! 5\xd5\n");
        assert_eq!(p.record().lines[0].text, "¿Año? ¡Sí! 5€");
    }

    #[test]
    fn a_command_split_across_writes_is_completed_by_the_next_write() {
        let mut p = printer();
        p.feed(b"\x1d");
        p.feed(b"!");
        p.feed(b"\x11ab\n");
        assert_eq!(p.record().lines[0].width_mult, 2);
        assert!(p.record().warnings.is_empty());
    }

    #[test]
    fn unknown_commands_are_skipped_with_a_warning() {
        let mut p = printer();
        p.feed(b"\x1b\xfeok\n\x1dZ\n");
        p.finish();
        assert_eq!(p.record().lines[0].text, "ok");
        assert_eq!(p.record().warnings.len(), 2);
    }

    #[test]
    fn status_queries_are_answered_even_when_out_of_paper_and_data_is_held() {
        let mut p = printer();
        p.set_faults(PrinterStatus {
            paper_out: true,
            ..Default::default()
        });
        let answers = p.feed(b"held\n\x10\x04\x04");
        assert_eq!(answers, vec![0x7E]);
        assert!(p.record().lines.is_empty());
        p.set_faults(PrinterStatus::default());
        assert_eq!(p.record().lines[0].text, "held");
    }

    #[test]
    fn long_lines_wrap_at_the_paper_width() {
        let mut p = printer();
        p.feed(&[b'x'; 40]);
        p.feed(b"\n");
        assert_eq!(p.record().lines.len(), 2);
        assert_eq!(p.record().lines[0].text.len(), 32);
    }
}
