//! Previews for people: any captured ESC/POS stream, or the sample turn ticket laid out by the real
//! ticket code, rendered by the virtual printer to PNG. Backs `kiosk ticket-preview`.

use super::settings::PrinterProfile;
use super::ticket::{Language, LayoutError, sample_ticket};
use super::vprinter::{self, Record};

/// A failed preview.
#[derive(Debug, thiserror::Error)]
pub enum PreviewError {
    /// The sample ticket could not be laid out.
    #[error("cannot lay out the sample ticket")]
    Layout(#[from] LayoutError),
    /// The PNG could not be encoded.
    #[error("cannot encode the ticket preview as PNG")]
    Png(#[from] image::ImageError),
}

/// A rendered preview.
#[derive(Debug, Clone)]
pub struct Preview {
    /// The paper as PNG, at the printer's resolution (8 dots/mm).
    pub png: Vec<u8>,
    /// Text lines, codes, cuts and warnings (unknown commands skipped, ...).
    pub record: Record,
}

impl Preview {
    /// Warnings from the interpreter.
    pub fn warnings(&self) -> &[String] {
        &self.record.warnings
    }
}

/// Renders a captured ESC/POS stream (`kiosk ticket-preview --escpos FILE.bin --out FILE.png`).
pub fn render_escpos_to_png(
    bytes: &[u8],
    profile: &PrinterProfile,
) -> Result<Preview, PreviewError> {
    let printer = vprinter::interpret(bytes, profile);
    Ok(Preview {
        png: printer.png()?,
        record: printer.record().clone(),
    })
}

/// Lays out the sample ticket in `lang`, encodes it and renders it
/// (`kiosk ticket-preview --out FILE.png --lang es|en`).
pub fn render_sample_ticket(
    lang: Language,
    profile: &PrinterProfile,
) -> Result<Preview, PreviewError> {
    let bytes = sample_ticket(lang).encode(profile)?;
    render_escpos_to_png(&bytes, profile)
}
