//! Keyboard-wedge and serial card readers: recorded `input_event` streams through the wedge
//! decoder, and a serial reader on a real pseudo-terminal through the real `serialport` code.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a failed unwrap is the failure message"
)]

use std::io::Write;
use std::time::Duration;

use kiosk_drivers::DeviceHealth;
use kiosk_drivers::card::hid::{INPUT_EVENT_SIZE, RawInputEvent, WedgeDecoder, parse_input_events};
use kiosk_drivers::card::serial::SerialCardReader;
use kiosk_drivers::card::settings::UidFormat;
use kiosk_drivers::card::token::UidTextError;
use kiosk_drivers::card::{CardEvent, CardReader, CardToken, ReaderKind, TenantKey, Uid};

fn key() -> TenantKey {
    TenantKey::from_slice(b"tenant-key-for-tests-0123456789!").unwrap()
}

fn token_of(uid: &[u8]) -> CardToken {
    Uid::from_slice(uid).unwrap().token(&key())
}

/// Serialises events the way the kernel hands them to a reader of /dev/input/event* (64-bit).
fn record(events: &[(u64, u16, u16, i32)]) -> Vec<u8> {
    let mut out = Vec::new();
    for &(usec, kind, code, value) in events {
        out.extend_from_slice(&((usec / 1_000_000) as i64).to_ne_bytes());
        out.extend_from_slice(&((usec % 1_000_000) as i64).to_ne_bytes());
        out.extend_from_slice(&kind.to_ne_bytes());
        out.extend_from_slice(&code.to_ne_bytes());
        out.extend_from_slice(&value.to_ne_bytes());
    }
    out
}

/// What a wedge reader sends for one key: MSC_SCAN, press, SYN, release, SYN.
fn key_stroke(t: &mut u64, code: u16, out: &mut Vec<(u64, u16, u16, i32)>) {
    out.push((*t, 4, 4, 0x7001e));
    out.push((*t, 1, code, 1));
    out.push((*t, 0, 0, 0));
    *t += 4_000;
    out.push((*t, 4, 4, 0x7001e));
    out.push((*t, 1, code, 0));
    out.push((*t, 0, 0, 0));
    *t += 4_000;
}

fn digit_code(d: char) -> u16 {
    match d {
        '0' => 11,
        d => 2 + (d as u16 - '1' as u16),
    }
}

fn typed(text: &str, start: u64) -> Vec<(u64, u16, u16, i32)> {
    let mut t = start;
    let mut out = Vec::new();
    for c in text.chars() {
        key_stroke(&mut t, digit_code(c), &mut out);
    }
    key_stroke(&mut t, 28, &mut out);
    out
}

fn decode_all(bytes: &[u8], format: UidFormat) -> Vec<Result<CardToken, UidTextError>> {
    let mut decoder = WedgeDecoder::new(format);
    parse_input_events(bytes)
        .into_iter()
        .filter_map(|e| decoder.push(e))
        .map(|r| r.map(|uid| uid.token(&key())))
        .collect()
}

#[test]
fn hid_wedge_ten_digits_and_enter_decode_to_the_card_token() {
    let bytes = record(&typed("0012345678", 1_000_000));
    assert_eq!(bytes.len() % INPUT_EVENT_SIZE, 0);
    assert_eq!(
        decode_all(&bytes, UidFormat::Decimal),
        vec![Ok(token_of(&12_345_678u32.to_be_bytes()))]
    );
}

#[test]
fn hid_wedge_decoding_ignores_the_desktop_layout_and_shift() {
    // Keypad digits and shifted top-row digits (as an AZERTY layout needs) are the same keys.
    let mut events = Vec::new();
    let mut t = 5_000_000;
    for code in [82u16, 82, 79, 80, 81, 75, 76, 77, 71, 72] {
        // KP0 KP0 KP1 KP2 KP3 KP4 KP5 KP6 KP7 KP8
        events.push((t, 1, 42, 1)); // left shift down
        key_stroke(&mut t, code, &mut events);
        events.push((t, 1, 42, 0));
    }
    key_stroke(&mut t, 96, &mut events); // keypad Enter
    let expected = token_of(&12_345_678u32.to_be_bytes());
    assert_eq!(
        decode_all(&record(&events), UidFormat::Decimal),
        vec![Ok(expected)]
    );
}

#[test]
fn hid_wedge_rejects_garbage_and_drops_a_stalled_partial_code() {
    // 'a' is typed as KEY_M (50) by `typed`: a stray letter key in the middle of a code.
    let events = typed("12a4", 0);
    assert!(events.iter().any(|e| e.1 == 1 && e.2 == 50));
    let garbage = decode_all(&record(&events), UidFormat::Decimal);
    assert!(
        matches!(garbage[..], [Err(UidTextError::BadDigit(_))]),
        "{garbage:?}"
    );

    // Five digits, a pause of three seconds, then a full code: only the full code counts.
    let mut stalled = typed("99999", 0);
    stalled.pop();
    stalled.retain(|e| e.2 != 28);
    stalled.extend(typed("0000000042", 3_000_000));
    assert_eq!(
        decode_all(&record(&stalled), UidFormat::Decimal),
        vec![Ok(token_of(&42u32.to_be_bytes()))]
    );
}

#[test]
fn hid_wedge_hex_readers_type_letters_a_to_f() {
    let mut t = 0;
    let mut events = Vec::new();
    for code in [11u16, 5, 30, 3, 48, 46, 32, 18] {
        // 0 4 A 2 B C D E
        key_stroke(&mut t, code, &mut events);
    }
    key_stroke(&mut t, 28, &mut events);
    assert_eq!(
        decode_all(&record(&events), UidFormat::Hex),
        vec![Ok(token_of(&[0x04, 0xA2, 0xBC, 0xDE]))]
    );
}

#[test]
fn recorded_input_events_parse_with_their_time() {
    let events = parse_input_events(&record(&[(1_500_000, 1, 2, 1)]));
    assert_eq!(
        events,
        vec![RawInputEvent {
            time: Duration::from_micros(1_500_000),
            kind: 1,
            code: 2,
            value: 1
        }]
    );
}

fn next_non_health(reader: &mut SerialCardReader) -> Option<CardEvent> {
    for _ in 0..50 {
        match reader.next_event(Duration::from_millis(200)) {
            Some(CardEvent::Health(_)) => continue,
            other => return other,
        }
    }
    None
}

#[test]
fn serial_reader_reads_one_uid_per_line_from_a_real_pty() {
    let pty = nix::pty::openpty(None, None).unwrap();
    let path = nix::unistd::ttyname(&pty.slave)
        .unwrap()
        .to_string_lossy()
        .into_owned();
    let mut master = std::fs::File::from(pty.master);
    let mut reader = SerialCardReader::new(path.clone(), 9600, UidFormat::Hex, key());
    let first = reader.next_event(Duration::from_secs(5));
    assert!(
        matches!(first, Some(CardEvent::Health(ref h)) if h.state == DeviceHealth::Ok),
        "{first:?}"
    );

    master.write_all(b"04A22B7C\r\n").unwrap();
    match next_non_health(&mut reader) {
        Some(CardEvent::Tap(t)) => {
            assert_eq!(t.token, token_of(&[0x04, 0xA2, 0x2B, 0x7C]));
            assert_eq!(t.reader, ReaderKind::Serial);
        }
        other => panic!("expected a tap, got {other:?}"),
    }
    // Noise, an overlong line and a repeat of the same card are no taps; a new card is.
    master.write_all(b"\xff\xfe\x00garbage\n").unwrap();
    master.write_all(&[b'A'; 200]).unwrap();
    master
        .write_all(b"\n04A22B7C\n04:11:22:33:44:55:66\n")
        .unwrap();
    match next_non_health(&mut reader) {
        Some(CardEvent::Tap(t)) => {
            assert_eq!(t.token, token_of(&[4, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66]))
        }
        other => panic!("expected the second card, got {other:?}"),
    }
}

#[test]
fn serial_reader_on_a_missing_port_is_absent_with_the_path_in_the_reason() {
    let mut reader = SerialCardReader::new(
        "/dev/tty-card-reader-missing".into(),
        9600,
        UidFormat::Decimal,
        key(),
    );
    match reader.next_event(Duration::from_secs(2)) {
        Some(CardEvent::Health(h)) => {
            assert_eq!(h.state, DeviceHealth::Absent);
            assert!(h.reason.unwrap().contains("/dev/tty-card-reader-missing"));
        }
        other => panic!("expected health, got {other:?}"),
    }
}
