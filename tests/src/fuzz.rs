//! The bodies of the coverage-guided fuzz targets (`tests/fuzz`, run by `cargo fuzz` from
//! `scripts/soak`), and of the suite's replay of their corpora (`tests/fuzz_corpus.rs`): each takes
//! arbitrary bytes, drives one decoder of untrusted input the way the kiosk or the endpoint does,
//! and panics only when a property the product relies on breaks. A panic is a finding; the input
//! that caused it is kept under `tests/fuzz/regressions/<target>/` and replayed by the suite for
//! good.
//!
//! | target | what the bytes are | what must hold |
//! |---|---|---|
//! | `scanner_serial` | bytes on a serial scanner's line, read in chunks, with pauses | lines are printable text within the limit; a kiosk payload that verifies is the one the kiosk signed, byte for byte |
//! | `scanner_hid` | evdev `input_event`s from a USB HID scanner | the same, for typed lines |
//! | `qr_payload` | scanned text | product codes carry a valid check digit; a turn or coupon that verifies re-signs to the same text |
//! | `escpos` | bytes sent to the thermal printer | the virtual printer never panics, answers only status bytes, and prints the same whatever the write sizes |
//! | `site_config` | a site config, or a hardware profile | a config or an error naming a file |
//! | `endpoint_batch` | a batch request body as the endpoint receives it | a batch, or a 400 / 413 / 415 saying why; every event accepted or rejected with a reason |
//!
//! The first bytes of an input pick the variant (suffix, layout, write size, encoding); the rest
//! is the data. Everything is deterministic: the same bytes, the same run.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a failed unwrap is the failure message"
)]

use std::io::Write as _;
use std::path::Path;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use crm_endpoint::api::decode_batch;
use crm_endpoint::ingest::{self, Validator};
use kiosk::config::{Config, parse_profile};
use kiosk_drivers::printer::status::{StatusRequest, check_byte};
use kiosk_drivers::printer::vprinter::VirtualPrinter;
use kiosk_drivers::scanner::code::{self, Code, CodeKey, CodeKeys};
use kiosk_drivers::scanner::settings::{KeyboardLayout, Suffix};
use kiosk_drivers::scanner::{Framed, HidDecoder, LineFramer};
use kiosk_protocol::wire::{KioskClock, MAX_BATCH_EVENTS};
use time::{Date, Month};
use uuid::Uuid;

/// A target's body: arbitrary bytes in, a panic when a property breaks.
pub type Target = fn(&[u8]);

/// Every target, by the name its `cargo fuzz` binary and corpus folder have.
pub const TARGETS: &[(&str, Target)] = &[
    ("scanner_serial", scanner_serial),
    ("scanner_hid", scanner_hid),
    ("qr_payload", qr_payload),
    ("escpos", escpos),
    ("site_config", site_config),
    ("endpoint_batch", endpoint_batch),
];

/// The key turn tickets and coupons of the seed corpus are signed with.
pub const FUZZ_KEY: [u8; 32] = [7; 32];

/// The business day the targets scan on (the seed corpus's tickets are of this day).
pub fn fuzz_today() -> Date {
    Date::from_calendar_date(2026, Month::November, 23).expect("a valid date")
}

fn keys() -> &'static (CodeKey, CodeKeys) {
    static KEYS: OnceLock<(CodeKey, CodeKeys)> = OnceLock::new();
    KEYS.get_or_init(|| {
        let key = CodeKey::new(FUZZ_KEY.to_vec()).expect("a 32-byte key");
        let keys = CodeKeys {
            turns: Some(key.clone()),
            coupons: Some(key.clone()),
        };
        (key, keys)
    })
}

/// Splits off the first byte (0 when there is none).
fn take_byte(data: &[u8]) -> (u8, &[u8]) {
    match data.split_first() {
        Some((b, rest)) => (*b, rest),
        None => (0, data),
    }
}

/// Scanned text: product codes carry a valid check digit, and a kiosk payload that verifies is
/// exactly the text the kiosk would sign for what it decoded to (no second spelling of a ticket
/// verifies: no case change, padding, whitespace or trailing bytes).
fn check_scanned(text: &str) {
    let (key, keys) = keys();
    match code::decode(text, keys, fuzz_today()) {
        Ok(Code::Turn(turn)) => {
            let signed = code::sign_turn(&turn, key).expect("a verified turn re-signs");
            assert_eq!(signed, text, "a second spelling of a turn ticket verified");
        }
        Ok(Code::Coupon(coupon)) => {
            let signed = code::sign_coupon(&coupon, key).expect("a verified coupon re-signs");
            assert_eq!(signed, text, "a second spelling of a coupon verified");
        }
        Ok(Code::Ean13(d) | Code::Ean8(d) | Code::UpcA(d)) => {
            assert_eq!(d, text);
            let digits: Vec<u8> = d.bytes().map(|b| b - b'0').collect();
            let (data, check) = digits.split_at(digits.len() - 1);
            assert_eq!(code::gs1_check_digit(data), check[0]);
        }
        Err(e) => assert!(!e.to_string().is_empty()),
    }
}

/// A framed line from a scanner: non-empty printable text within the limit.
fn check_framed(framed: &[Framed], max_len: usize) {
    for f in framed {
        match f {
            Framed::Line(line) => {
                assert!(!line.is_empty(), "an empty line was passed on");
                assert!(line.len() <= max_len, "a line of {} bytes", line.len());
                // A tab is text (some scanners separate fields with it); nothing else is.
                assert!(
                    !line.chars().any(|c| c.is_control() && c != '\t'),
                    "a line with control characters: {line:?}"
                );
                check_scanned(line);
            }
            Framed::Rejected(why) => assert!(!why.to_string().is_empty()),
        }
    }
}

/// Bytes from a serial scanner. First bytes: suffix, line limit, write size.
pub fn scanner_serial(data: &[u8]) {
    let (s, data) = take_byte(data);
    let (limit, data) = take_byte(data);
    let (write, data) = take_byte(data);
    let suffix = [Suffix::Cr, Suffix::Lf, Suffix::Crlf][usize::from(s % 3)];
    let max_len = if limit == 0 {
        kiosk_drivers::scanner::line::DEFAULT_MAX_LINE
    } else {
        usize::from(limit % 64) + 1
    };
    let timeout = Duration::from_millis(100);
    let mut framer = LineFramer::new(suffix, max_len, timeout);
    let mut now = Instant::now();
    let mut lines_bytes = 0;
    for chunk in data.chunks(usize::from(write % 32) + 1) {
        // A write whose first byte is a multiple of 7 comes after a pause longer than the
        // line timeout; the others 1 ms apart.
        now += if chunk[0] % 7 == 0 {
            timeout * 2
        } else {
            Duration::from_millis(1)
        };
        if let Some(rejected) = framer.expire(now) {
            check_framed(&[Framed::Rejected(rejected)], max_len);
        }
        let framed = framer.push(chunk, now);
        lines_bytes += framed
            .iter()
            .map(|f| match f {
                Framed::Line(l) => l.len(),
                Framed::Rejected(_) => 0,
            })
            .sum::<usize>();
        check_framed(&framed, max_len);
    }
    assert!(lines_bytes <= data.len(), "more text out than bytes in");
    if let Some(rejected) = framer.reset() {
        check_framed(&[Framed::Rejected(rejected)], max_len);
    }
}

/// `input_event`s from a HID scanner, five bytes each: type, code (two bytes), value, pause.
/// First byte: the layout.
pub fn scanner_hid(data: &[u8]) {
    const EV_SYN: u16 = 0;
    const EV_KEY: u16 = 1;
    const EV_MSC: u16 = 4;
    let (l, data) = take_byte(data);
    let layout = if l % 2 == 0 {
        KeyboardLayout::Us
    } else {
        KeyboardLayout::Es
    };
    let max_len = 64;
    let mut decoder = HidDecoder::new(layout, max_len, Duration::from_millis(100));
    let mut now = Instant::now();
    for e in data.chunks_exact(5) {
        let ev_type = match e[0] % 8 {
            0 => EV_SYN,
            1..=5 => EV_KEY,
            6 => EV_MSC,
            other => u16::from(other),
        };
        // Key codes up to 0x2ff (KEY_MAX); values 0 (up), 1 (down), 2 (repeat), or others.
        let code = u16::from_le_bytes([e[1], e[2]]) % 0x300;
        let value = match e[3] % 4 {
            3 => i32::from(e[3]),
            v => i32::from(v),
        };
        now += Duration::from_millis(u64::from(e[4] % 128));
        check_framed(&decoder.push(ev_type, code, value, now), max_len);
    }
}

/// Scanned text, as the journey's scanner input hands it over.
pub fn qr_payload(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    check_scanned(&text);
    let (key, _) = keys();
    // The verifiers on their own (no day check): the same no-second-spelling property.
    if let Ok(turn) = code::verify_turn(&text, key) {
        assert_eq!(code::sign_turn(&turn, key).unwrap(), text);
    }
    if let Ok(coupon) = code::verify_coupon(&text, key) {
        assert_eq!(code::sign_coupon(&coupon, key).unwrap(), text);
    }
}

/// Bytes sent to the printer. First bytes: paper width, write size.
pub fn escpos(data: &[u8]) {
    let (w, data) = take_byte(data);
    let (write, data) = take_byte(data);
    let width = if w % 2 == 0 { 384 } else { 576 };
    let mut whole = VirtualPrinter::with_width(width);
    let answers = whole.feed(data);
    whole.finish();
    let mut parts = VirtualPrinter::with_width(width);
    let mut part_answers = Vec::new();
    for chunk in data.chunks(usize::from(write % 64) + 1) {
        part_answers.extend(parts.feed(chunk));
    }
    parts.finish();
    for byte in answers.iter().chain(&part_answers) {
        check_byte(StatusRequest::Printer, *byte).expect("the printer answers status bytes only");
    }
    assert_eq!(
        answers.len(),
        part_answers.len(),
        "a status query lost to a split write"
    );
    assert_eq!(
        whole.record(),
        parts.record(),
        "the write size changed the ticket"
    );
    // The paper dot for dot (not `image()`: a copy of up to 23 MB per run slowed the fuzzer).
    assert_eq!(whole.dots().len() % width as usize, 0, "a partial dot row");
    assert!(
        whole.dots() == parts.dots(),
        "the write size changed the printed dots"
    );
}

/// A site config (first byte even) or a hardware profile (odd).
pub fn site_config(data: &[u8]) {
    let (which, data) = take_byte(data);
    let Ok(text) = std::str::from_utf8(data) else {
        return; // the loaders take text; a file that is not UTF-8 is refused before them
    };
    // A folder that does not exist: a profile named by path is looked up only under it or
    // where the text points.
    let site = Path::new("/nonexistent/kiosk-fuzz/site.toml");
    let result = if which % 2 == 0 {
        Config::from_text(site, text).map(drop)
    } else {
        parse_profile(Path::new("/nonexistent/kiosk-fuzz/profile.toml"), text).map(drop)
    };
    if let Err(e) = result {
        let shown = e.to_string();
        assert!(
            !e.file.as_os_str().is_empty(),
            "an error without its file: {shown}"
        );
        assert!(!e.message.is_empty(), "an error without a message: {shown}");
        // A line of the text, or the end of the text (where an unclosed table is noticed).
        if let Some(line) = e.line {
            if e.file == site {
                let last = text.matches('\n').count() + 1;
                assert!(line >= 1 && line <= last, "line {line} of {last}: {shown}");
            }
        }
    }
}

fn validator() -> &'static Validator {
    static V: OnceLock<Validator> = OnceLock::new();
    V.get_or_init(|| Validator::new().expect("the event schema compiles"))
}

/// A batch body. First byte: how it arrives (0: as is, 1: as a gzip stream, 2: compressed
/// here, so the inflate limit and the JSON behind it are reached, 3: an encoding not offered).
pub fn endpoint_batch(data: &[u8]) {
    let (how, data) = take_byte(data);
    let compressed;
    let (encoding, body) = match how % 4 {
        0 => (None, data),
        1 => (Some("gzip"), data),
        2 => {
            let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            gz.write_all(data).expect("gzip into memory");
            compressed = gz.finish().expect("gzip into memory");
            (Some("gzip"), compressed.as_slice())
        }
        _ => (Some("br"), data),
    };
    match decode_batch(encoding, body) {
        Ok(batch) => {
            assert!(batch.events.len() <= MAX_BATCH_EVENTS);
            let clock = KioskClock::now(Uuid::from_u128(9), 5000);
            let now_ms = ingest::unix_ms(time::OffsetDateTime::now_utc());
            let skew = ingest::read_clock(&Default::default(), &batch.kiosk_clock, now_ms)
                .skew_or_zero(now_ms);
            for raw in &batch.events {
                match validator().check(raw, "k-fuzz", &clock, skew) {
                    Ok(accepted) => assert!(!accepted.kind.is_empty()),
                    Err(rejection) => assert!(!rejection.reason.is_empty()),
                }
            }
        }
        Err(e) => {
            assert!(
                [400, 413, 415].contains(&e.status().as_u16()),
                "answered {}: {}",
                e.status(),
                e.message()
            );
            assert!(!e.message().is_empty());
        }
    }
}

/// Inputs each target's corpus starts from (written there by `scripts/soak`, replayed by the
/// suite): real traffic of each kind, so the fuzzer begins past the first checks.
pub fn seeds() -> Vec<(&'static str, Vec<u8>)> {
    use kiosk_drivers::printer::ticket::{Language, sample_ticket, standard_profile};
    use kiosk_drivers::printer::{PaperWidth, QrMode};

    let (key, _) = keys();
    let turn = code::sign_turn(
        &code::TurnTicket {
            store_id: "store-1".into(),
            kiosk_id: "kiosk-1".into(),
            business_day: fuzz_today(),
            turn: "A-042".into(),
            turn_id: Uuid::from_u128(42),
        },
        key,
    )
    .expect("a valid turn");
    let coupon = code::sign_coupon(
        &code::Coupon {
            campaign_id: "cafe-2x1".into(),
            coupon_code: "CAFE-0001".into(),
            expires_on: fuzz_today(),
            card_token: Some([0xab; 16]),
        },
        key,
    )
    .expect("a valid coupon");
    let scanned = [
        turn.as_str(),
        coupon.as_str(),
        "4006381333931",
        "036000291452",
        "96385074",
    ];
    let mut out: Vec<(&'static str, Vec<u8>)> = Vec::new();

    for text in scanned {
        out.push(("qr_payload", text.as_bytes().to_vec()));
    }
    for (i, text) in scanned.iter().enumerate() {
        // suffix CR / LF / CRLF in turn, the default limit, writes of 8 bytes
        let mut line = vec![i as u8 % 3, 0, 7];
        line.extend_from_slice(text.as_bytes());
        line.extend_from_slice([&b"\r"[..], b"\n", b"\r\n"][i % 3]);
        line.extend_from_slice(b"\x00\xff noise\r\n");
        out.push(("scanner_serial", line));
    }
    // A HID scanner typing an EAN-13 and Enter on the US layout: key down then up, 2 ms apart.
    let mut typed = vec![0u8];
    for digit in "4006381333931".bytes() {
        let code: u16 = if digit == b'0' {
            11
        } else {
            u16::from(digit - b'0') + 1
        };
        for value in [1u8, 0] {
            let [lo, hi] = code.to_le_bytes();
            typed.extend_from_slice(&[1, lo, hi, value, 2]);
        }
    }
    for value in [1u8, 0] {
        typed.extend_from_slice(&[1, 28, 0, value, 2]);
    }
    out.push(("scanner_hid", typed));

    for (lang, paper, qr) in [
        (Language::Es, PaperWidth::Mm80, QrMode::Native),
        (Language::En, PaperWidth::Mm58, QrMode::Raster),
    ] {
        let profile = standard_profile(paper, qr);
        let bytes = sample_ticket(lang)
            .encode(&profile)
            .expect("the sample ticket lays out");
        let mut seed = vec![u8::from(profile.dots_per_line != 384), 13];
        seed.extend_from_slice(&bytes);
        // the driver's status queries after the job
        seed.extend_from_slice(&[0x10, 0x04, 1, 0x10, 0x04, 2, 0x10, 0x04, 3, 0x10, 0x04, 4]);
        out.push(("escpos", seed));
    }

    let mut site = vec![0u8];
    site.extend_from_slice(include_bytes!("../../firmware/config/site.example.toml"));
    out.push(("site_config", site));
    for profile in [
        &include_bytes!("../../hw-config/simulated.toml")[..],
        include_bytes!("../../hw-config/pi4-mfrc522-usb-printer.toml"),
    ] {
        let mut seed = vec![1u8];
        seed.extend_from_slice(profile);
        out.push(("site_config", seed));
    }

    let batch = seed_batch();
    for how in [0u8, 2] {
        let mut seed = vec![how];
        seed.extend_from_slice(&batch);
        out.push(("endpoint_batch", seed));
    }
    let mut gz = flate2::write::GzEncoder::new(vec![1u8], flate2::Compression::fast());
    gz.write_all(&batch).expect("gzip into memory");
    out.push(("endpoint_batch", gz.finish().expect("gzip into memory")));
    out
}

/// A batch body as a kiosk sends it: a tap and a ticket.
fn seed_batch() -> Vec<u8> {
    use kiosk_protocol::events::{CardTapped, Envelope, Event, ReaderKind, TicketIssued};
    use kiosk_protocol::wire::BatchRequest;

    let at = time::macros::datetime!(2026-11-23 10:00 UTC);
    let events = [
        Event::CardTapped(CardTapped {
            card_token: kiosk_protocol::CardToken::from_bytes([0xab; 16]),
            reader: ReaderKind::Mfrc522,
            known: true,
        }),
        Event::TicketIssued(TicketIssued {
            turn_id: Uuid::from_u128(42),
            turn: "A-042".into(),
            service: "A".into(),
            number: 42,
            business_day: "2026-11-23".into(),
            priority: false,
            position: 3,
            estimated_wait_s: 420,
            card_token: None,
            locale: "es".into(),
            campaign_id: None,
            out_of_sequence: false,
        }),
    ];
    let envelopes = events
        .into_iter()
        .enumerate()
        .map(|(i, event)| Envelope {
            id: Uuid::from_u128(1000 + i as u128),
            kiosk_id: "k-fuzz".into(),
            seq: i as u64 + 1,
            boot_id: Uuid::from_u128(9),
            wall_time: at,
            mono_ms: 1000 + i as u64,
            schema_version: 1,
            event,
        })
        .collect();
    let clock = KioskClock {
        wall_time: at,
        mono_ms: 5000,
        boot_id: Uuid::from_u128(9),
    };
    let batch = BatchRequest::new("k-fuzz", clock, envelopes).expect("a non-empty batch");
    serde_json::to_vec(&batch).expect("a batch serializes")
}
