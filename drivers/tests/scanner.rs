//! The barcode scanner drivers on their simulators: the serial driver reading a real
//! pseudo-terminal the simulator writes into (the path a CDC-ACM scanner takes), and the HID
//! decoder fed recorded `input_event` streams in US and Spanish layouts.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a failed unwrap is the failure message"
)]

use std::time::{Duration, Instant};

use kiosk_drivers::DeviceHealth;
use kiosk_drivers::scanner::code::{self, CodeKey, CodeKeys, TurnTicket};
use kiosk_drivers::scanner::hid::{EV_KEY, EV_SYN, keys};
use kiosk_drivers::scanner::settings::{KeyboardLayout, ScannerSettings, Suffix};
use kiosk_drivers::scanner::{
    self, Code, Framed, HidDecoder, LineFramer, RejectReason, ScannerEvent, ScannerHandle,
    ScannerOptions,
};
use proptest::prelude::*;
use time::macros::date;
use uuid::Uuid;

const WAIT: Duration = Duration::from_secs(5);

fn key() -> CodeKey {
    CodeKey::new(vec![7u8; 32]).unwrap()
}

fn open_simulated() -> ScannerHandle {
    let options = ScannerOptions {
        keys: CodeKeys {
            turns: Some(key()),
            coupons: Some(key()),
        },
        today: std::sync::Arc::new(|| date!(2026 - 11 - 23)),
        ..ScannerOptions::default()
    };
    scanner::open(&ScannerSettings::Simulated { suffix: Suffix::Cr }, options)
        .unwrap()
        .expect("a simulated scanner")
}

/// The next event that is not a health report.
fn next_scan(s: &ScannerHandle) -> ScannerEvent {
    let deadline = Instant::now() + WAIT;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match s.next_event(left) {
            Some(ScannerEvent::Health(_)) => continue,
            Some(e) => return e,
            None => panic!("no scan within {WAIT:?}"),
        }
    }
}

fn next_health(s: &ScannerHandle) -> DeviceHealth {
    let deadline = Instant::now() + WAIT;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match s.next_event(left) {
            Some(ScannerEvent::Health(h)) => return h.state,
            Some(_) => continue,
            None => panic!("no health report within {WAIT:?}"),
        }
    }
}

#[test]
fn the_serial_driver_reads_product_codes_and_signed_tickets_through_a_real_pty() {
    let s = open_simulated();
    let sim = s.simulator().unwrap();
    // The driver reports ok once it has the port open; lines sent before that are the
    // scanner's, not the driver's, to lose (the driver flushes stale input on open).
    assert_eq!(next_health(&s), DeviceHealth::Ok);
    assert!(std::path::Path::new(s.device()).exists(), "{}", s.device());
    sim.scan("8410076472885").unwrap();
    match next_scan(&s) {
        ScannerEvent::Scanned(scan) => assert_eq!(scan.code, Code::Ean13("8410076472885".into())),
        other => panic!("{other:?}"),
    }
    let turn = TurnTicket {
        store_id: "demo".into(),
        kiosk_id: "k-1".into(),
        business_day: date!(2026 - 11 - 23),
        turn: "A-042".into(),
        turn_id: Uuid::from_u128(42),
    };
    sim.scan(&code::sign_turn(&turn, &key()).unwrap()).unwrap();
    match next_scan(&s) {
        ScannerEvent::Scanned(scan) => assert_eq!(scan.code, Code::Turn(turn)),
        other => panic!("{other:?}"),
    }
}

#[test]
fn garbage_is_rejected_with_a_reason_and_the_next_good_scan_still_reads() {
    let s = open_simulated();
    let sim = s.simulator().unwrap();
    assert_eq!(next_health(&s), DeviceHealth::Ok);
    // A wrong check digit, binary noise, invalid UTF-8, an overlong line and a forged ticket.
    sim.scan("8410076472886").unwrap();
    sim.write_raw(&[0x00, 0x1b, 0x07, b'\r']).unwrap();
    sim.write_raw(&[0xc3, 0x28, b'\r']).unwrap();
    sim.scan(&"9".repeat(10_000)).unwrap();
    let other_key = CodeKey::new(vec![9u8; 32]).unwrap();
    let forged = code::sign_turn(
        &TurnTicket {
            store_id: "demo".into(),
            kiosk_id: "k-1".into(),
            business_day: date!(2026 - 11 - 23),
            turn: "A-001".into(),
            turn_id: Uuid::from_u128(1),
        },
        &other_key,
    )
    .unwrap();
    sim.scan(&forged).unwrap();
    let mut reasons = Vec::new();
    for i in 0..5 {
        match next_scan(&s) {
            ScannerEvent::Rejected { reason } => reasons.push(reason),
            other => panic!("expected rejection {i}, got {other:?} after {reasons:?}"),
        }
    }
    assert!(
        matches!(reasons[0], RejectReason::Code(_)),
        "bad check digit: {:?}",
        reasons[0]
    );
    assert!(
        matches!(reasons[1], RejectReason::Line(_)),
        "noise: {:?}",
        reasons[1]
    );
    assert!(
        matches!(reasons[2], RejectReason::Line(_)),
        "utf-8: {:?}",
        reasons[2]
    );
    assert!(
        matches!(reasons[3], RejectReason::Line(_)),
        "overlong: {:?}",
        reasons[3]
    );
    assert!(
        reasons[4].to_string().contains("signature"),
        "forged: {}",
        reasons[4]
    );
    sim.scan("96385074").unwrap();
    match next_scan(&s) {
        ScannerEvent::Scanned(scan) => assert_eq!(scan.code, Code::Ean8("96385074".into())),
        other => panic!("{other:?}"),
    }
}

#[test]
fn an_unplugged_scanner_is_reported_absent_and_reads_again_once_replugged() {
    let s = open_simulated();
    let sim = s.simulator().unwrap();
    assert_eq!(next_health(&s), DeviceHealth::Ok);
    sim.unplug();
    assert_eq!(next_health(&s), DeviceHealth::Absent);
    sim.replug().unwrap();
    assert_eq!(next_health(&s), DeviceHealth::Ok);
    sim.scan("036000291452").unwrap();
    match next_scan(&s) {
        ScannerEvent::Scanned(scan) => assert_eq!(scan.code, Code::UpcA("036000291452".into())),
        other => panic!("{other:?}"),
    }
}

/// A recorded `input_event` stream: key down/up pairs with SYN reports, as evdev delivers them.
fn typed(keys_and_shift: &[(u16, bool)]) -> Vec<(u16, u16, i32)> {
    let mut ev = Vec::new();
    for &(code, shift) in keys_and_shift {
        if shift {
            ev.push((EV_KEY, keys::LEFT_SHIFT, 1));
            ev.push((EV_SYN, 0, 0));
        }
        ev.push((EV_KEY, code, 1));
        ev.push((EV_SYN, 0, 0));
        ev.push((EV_KEY, code, 0));
        ev.push((EV_SYN, 0, 0));
        if shift {
            ev.push((EV_KEY, keys::LEFT_SHIFT, 0));
            ev.push((EV_SYN, 0, 0));
        }
    }
    ev
}

#[test]
fn a_hid_scanner_typing_in_us_layout_decodes_digits_and_shifted_letters() {
    let mut d = HidDecoder::new(KeyboardLayout::Us, 256, Duration::from_millis(500));
    // "Ab-1/" then Enter: KEY_A(30) shifted, KEY_B(48), KEY_MINUS(12), KEY_1(2), KEY_SLASH(53).
    let stream = typed(&[
        (30, true),
        (48, false),
        (12, false),
        (2, false),
        (53, false),
        (keys::ENTER, false),
    ]);
    let out = d.push_all(&stream, Instant::now());
    assert_eq!(out, vec![Framed::Line("Ab-1/".into())]);
}

#[test]
fn a_hid_scanner_in_spanish_layout_types_dash_on_the_us_slash_key() {
    let mut d = HidDecoder::new(KeyboardLayout::Es, 256, Duration::from_millis(500));
    // On a Spanish keyboard the key where US has `/` (53) types `-`; shift+7 (8) types `/`.
    let stream = typed(&[
        (30, true),
        (53, false),
        (2, false),
        (8, true),
        (keys::ENTER, false),
    ]);
    let out = d.push_all(&stream, Instant::now());
    assert_eq!(out, vec![Framed::Line("A-1/".into())]);
}

#[test]
fn a_hid_line_without_enter_is_discarded_after_the_timeout() {
    let mut d = HidDecoder::new(KeyboardLayout::Us, 256, Duration::from_millis(100));
    let t0 = Instant::now();
    assert!(d.push_all(&typed(&[(2, false), (3, false)]), t0).is_empty());
    let rejected = d.expire(t0 + Duration::from_millis(150));
    assert!(rejected.is_some(), "a partial line must not linger");
}

proptest! {
    #[test]
    fn any_bytes_through_the_line_framer_and_decoder_never_panic(
        chunks in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..300), 0..20)
    ) {
        let mut f = LineFramer::new(Suffix::Crlf, 512, Duration::from_millis(200));
        let t0 = Instant::now();
        for (i, c) in chunks.iter().enumerate() {
            for framed in f.push(c, t0 + Duration::from_millis(i as u64 * 50)) {
                if let Framed::Line(text) = framed {
                    prop_assert!(text.len() <= 512);
                    let _ = code::decode(&text, &CodeKeys::default(), date!(2026 - 11 - 23));
                }
            }
        }
    }

    #[test]
    fn any_key_event_stream_through_the_hid_decoder_never_panics(
        events in proptest::collection::vec((0u16..6, 0u16..300, -1i32..3), 0..400)
    ) {
        for layout in [KeyboardLayout::Us, KeyboardLayout::Es] {
            let mut d = HidDecoder::new(layout, 128, Duration::from_millis(100));
            for framed in d.push_all(&events, Instant::now()) {
                if let Framed::Line(text) = framed {
                    prop_assert!(text.chars().count() <= 128);
                }
            }
        }
    }
}
