//! The virtual printer against streams from another implementation (python-escpos fixtures) and
//! against our own tickets: the text must be present and `zbarimg` must decode the QR code and
//! barcode from the rendered PNG.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a failed unwrap is the failure message"
)]

use std::path::PathBuf;
use std::process::Command;

use kiosk_drivers::printer::ticket::{Report, ReportRow, ReportTable};
use kiosk_drivers::printer::vprinter::{Cut, Record};
use kiosk_drivers::printer::{
    Language, PaperWidth, PrinterProfile, QrMode, render_escpos_to_png, render_sample_ticket,
    sample_ticket, standard_profile,
};

/// The python-escpos fixtures, copied into the repository from `../shared/fixtures/escpos` so a
/// clean clone has them (see `fixtures_match_the_shared_originals_when_present`).
fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/escpos")
}

#[test]
fn fixtures_match_the_shared_originals_when_present() {
    let shared = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/fixtures/escpos");
    let Ok(entries) = std::fs::read_dir(&shared) else {
        // A clean clone without the product documents beside it: the copy is all there is.
        return;
    };
    for entry in entries {
        let original = entry.unwrap().path();
        let copy = fixtures().join(original.file_name().unwrap());
        assert_eq!(
            std::fs::read(&original).unwrap(),
            std::fs::read(&copy).unwrap_or_default(),
            "{} differs from its copy in drivers/tests/fixtures: copy it again",
            original.display()
        );
    }
}

/// Symbols `zbarimg` finds in `png`, as `TYPE:data` lines. Fails (does not skip) without zbarimg.
fn zbar(png: &[u8]) -> Vec<String> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("paper.png");
    std::fs::write(&path, png).unwrap();
    let out = Command::new("zbarimg")
        .arg("-q")
        .arg(&path)
        .output()
        .expect("zbarimg must be installed (apt-get install zbar-tools; listed in scripts/apt-packages.txt)");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_owned)
        .collect()
}

fn profile80() -> PrinterProfile {
    standard_profile(PaperWidth::Mm80, QrMode::Native)
}

fn assert_text(record: &Record, expected: &str) {
    let text = record.text();
    assert!(
        text.contains(expected),
        "{expected:?} not printed; printed text:\n{text}"
    );
}

#[test]
fn every_fixture_renders_with_its_text_codes_and_cuts() {
    let mut seen = 0;
    for entry in
        std::fs::read_dir(fixtures()).expect("drivers/tests/fixtures/escpos is in the repository")
    {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|e| e != "json") {
            continue;
        }
        seen += 1;
        let spec: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        let bytes = std::fs::read(path.with_extension("bin")).unwrap();
        let preview = render_escpos_to_png(&bytes, &profile80()).unwrap();
        for t in spec["text_contains"].as_array().unwrap() {
            assert_text(&preview.record, t.as_str().unwrap());
        }
        let symbols = zbar(&preview.png);
        if let Some(qr) = spec.get("qr").and_then(|v| v.as_str()) {
            assert!(
                symbols.contains(&format!("QR-Code:{qr}")),
                "{}: zbarimg found {symbols:?}",
                path.display()
            );
            assert!(
                preview
                    .record
                    .codes
                    .iter()
                    .any(|c| c.symbology == "QR" && c.data == qr)
            );
        }
        if let Some(ean) = spec.get("ean13").and_then(|v| v.as_str()) {
            assert!(
                symbols.contains(&format!("EAN-13:{ean}")),
                "{}: zbarimg found {symbols:?}",
                path.display()
            );
            // The HRI digits are printed under the bars.
            assert_text(&preview.record, ean);
        }
        if let Some(cuts) = spec.get("cuts").and_then(|v| v.as_u64()) {
            assert_eq!(preview.record.cuts.len() as u64, cuts, "{}", path.display());
        }
        assert!(
            preview.record.warnings.is_empty(),
            "{}: {:?}",
            path.display(),
            preview.record.warnings
        );
    }
    assert!(seen >= 2, "expected the shared fixtures, found {seen}");
}

fn check_ticket(lang: Language, paper: PaperWidth, qr: QrMode) {
    let profile = standard_profile(paper, qr);
    let ticket = sample_ticket(lang);
    let bytes = ticket.encode(&profile).unwrap();
    let preview = render_escpos_to_png(&bytes, &profile).unwrap();
    let r = &preview.record;
    let ctx = format!("{lang} {paper:?} {qr:?}");
    assert!(r.warnings.is_empty(), "{ctx}: {:?}", r.warnings);
    let labels = lang.labels();
    for expected in [
        labels.your_turn,
        labels.estimated_wait,
        labels.position,
        "7 min",
        "A-042",
        &ticket.service_name,
    ] {
        assert_text(r, expected);
    }
    assert_text(r, &ticket.store_name);
    // The turn number is printed big and bold.
    let turn = r.lines.iter().find(|l| l.text == "A-042").unwrap();
    assert!(turn.height_mult >= 3 && turn.bold, "{ctx}: {turn:?}");
    // Long campaign and footer lines are wrapped, not lost: every word is on paper.
    for word in ticket
        .footer
        .split_whitespace()
        .chain(ticket.campaign_line.as_deref().unwrap().split_whitespace())
    {
        assert_text(r, word);
    }
    let symbols = zbar(&preview.png);
    assert!(
        symbols.contains(&format!("QR-Code:{}", ticket.qr_payload)),
        "{ctx}: zbarimg found {symbols:?}"
    );
    assert!(
        symbols.contains(&"EAN-13:4006381333931".to_owned()),
        "{ctx}: zbarimg found {symbols:?}"
    );
    assert_eq!(r.cuts, vec![Cut::Partial]);
    // Raster QR is an image: only native QR is recorded as a code by the interpreter.
    assert_eq!(
        r.codes.iter().any(|c| c.symbology == "QR"),
        qr == QrMode::Native,
        "{ctx}"
    );
}

#[test]
fn spanish_ticket_round_trips_on_80mm_with_native_qr() {
    check_ticket(Language::Es, PaperWidth::Mm80, QrMode::Native);
}

#[test]
fn spanish_ticket_round_trips_on_58mm_with_raster_qr() {
    check_ticket(Language::Es, PaperWidth::Mm58, QrMode::Raster);
}

#[test]
fn english_ticket_round_trips_on_58mm_with_native_qr() {
    check_ticket(Language::En, PaperWidth::Mm58, QrMode::Native);
}

#[test]
fn english_ticket_round_trips_on_80mm_with_raster_qr() {
    check_ticket(Language::En, PaperWidth::Mm80, QrMode::Raster);
}

#[test]
fn spanish_accents_and_signs_survive_encoding_and_printing() {
    let profile = standard_profile(PaperWidth::Mm80, QrMode::Native);
    let mut ticket = sample_ticket(Language::Es);
    ticket.campaign_line =
        Some("¿Año nuevo? ¡Señor Núñez, pingüino! Á É Í Ó Ú Ñ Ü 3,50 € 1º".to_owned());
    let bytes = ticket.encode(&profile).unwrap();
    let preview = render_escpos_to_png(&bytes, &profile).unwrap();
    assert_text(&preview.record, "¿Año nuevo? ¡Señor Núñez, pingüino!");
    assert_text(&preview.record, "Á É Í Ó Ú Ñ");
    assert_text(&preview.record, "Ü 3,50 € 1º");
    assert_text(&preview.record, "Por delante");
    assert_text(&preview.record, "Atención al cliente");
}

#[test]
fn a_ticket_with_nobody_ahead_says_so_in_words_as_the_screen_does() {
    let profile = standard_profile(PaperWidth::Mm80, QrMode::Native);
    for (lang, next, ahead) in [
        (Language::Es, "Es el siguiente", "Por delante"),
        (Language::En, "You are next", "Ahead of you"),
    ] {
        let mut ticket = sample_ticket(lang);
        ticket.position_in_queue = 0;
        ticket.estimated_wait_minutes = 0;
        let bytes = ticket.encode(&profile).unwrap();
        let text = render_escpos_to_png(&bytes, &profile)
            .unwrap()
            .record
            .text();
        assert!(text.contains(next), "{lang}: {text}");
        assert!(!text.contains(ahead), "{lang}: no count of 0 ahead: {text}");
        assert!(
            !text.contains("0 min"),
            "{lang}: no wait of 0 minutes: {text}"
        );
    }
}

#[test]
fn a_long_ticket_prints_every_line_in_order() {
    let profile = standard_profile(PaperWidth::Mm58, QrMode::Native);
    let mut ticket = sample_ticket(Language::Es);
    ticket.footer = (1..=120)
        .map(|i| format!("línea{i:03}"))
        .collect::<Vec<_>>()
        .join(" ");
    let bytes = ticket.encode(&profile).unwrap();
    let preview = render_escpos_to_png(&bytes, &profile).unwrap();
    let text = preview.record.text();
    let positions: Vec<usize> = (1..=120)
        .map(|i| text.find(&format!("línea{i:03}")).unwrap())
        .collect();
    assert!(positions.windows(2).all(|w| w[0] < w[1]));
    assert!(zbar(&preview.png).iter().any(|s| s.starts_with("QR-Code:")));
}

#[test]
fn sample_ticket_preview_is_a_png_at_the_printer_resolution() {
    let profile = standard_profile(PaperWidth::Mm58, QrMode::Native);
    let preview = render_sample_ticket(Language::En, &profile).unwrap();
    let img = image::load_from_memory(&preview.png).unwrap();
    assert_eq!(img.width(), 384);
    assert!(img.height() > 600);
}

#[test]
fn report_prints_rows_and_a_table_per_service() {
    let profile = standard_profile(PaperWidth::Mm80, QrMode::Native);
    let report = Report {
        title: "Informe del día".into(),
        store_name: "Tienda Centro".into(),
        date: time::macros::date!(2026 - 11 - 22),
        rows: vec![
            ReportRow {
                label: "Turnos emitidos".into(),
                value: "128".into(),
            },
            ReportRow {
                label: "Espera media".into(),
                value: "6 min".into(),
            },
        ],
        tables: vec![ReportTable {
            service: "Atención al cliente".into(),
            columns: vec!["Mostrador".into(), "Atendidos".into(), "Espera".into()],
            rows: vec![vec![
                "Mostrador 1 (Núñez)".into(),
                "64".into(),
                "5 min".into(),
            ]],
        }],
        language: Language::Es,
    };
    let bytes = report.encode(&profile).unwrap();
    let preview = render_escpos_to_png(&bytes, &profile).unwrap();
    assert_text(&preview.record, "Informe del día");
    assert_text(&preview.record, "Fecha: 22/11/2026");
    // Values are right-aligned on the 48-column line.
    let line = |start: &str| {
        preview
            .record
            .lines
            .iter()
            .find(|l| l.text.starts_with(start))
            .unwrap()
            .text
            .clone()
    };
    assert_eq!(
        line("Turnos emitidos"),
        format!("Turnos emitidos{}128", " ".repeat(48 - 15 - 3))
    );
    let row = line("Mostrador 1 (Núñez)");
    assert_eq!(row.chars().count(), 48);
    assert!(row.ends_with("        64  5 min"), "{row:?}");
    assert_eq!(preview.record.cuts.len(), 1);
}

#[test]
fn code128_and_ean8_barcodes_decode_with_zbarimg() {
    let mut bytes = b"\x1b@\x1ba\x01\x1dh\x50\x1dw\x02\x1dH\x02".to_vec();
    bytes.extend_from_slice(b"\x1dk\x49\x0c{BKIOSK-0042");
    bytes.extend_from_slice(b"\n\x1dk\x03\x39\x36\x33\x38\x35\x30\x37\x00\n\x1dV\x00");
    let preview = render_escpos_to_png(&bytes, &profile80()).unwrap();
    let symbols = zbar(&preview.png);
    assert!(
        symbols.contains(&"CODE-128:KIOSK-0042".to_owned()),
        "{symbols:?}"
    );
    assert!(
        symbols.contains(&"EAN-8:96385074".to_owned()),
        "{symbols:?}"
    );
}
