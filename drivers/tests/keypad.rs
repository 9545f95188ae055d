//! The keypad driver end to end: the simulator writes `input_event` records into its FIFO and
//! the reader that reads a real evdev keypad decodes them.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a failed unwrap is the failure message"
)]

use std::time::{Duration, Instant};

use kiosk_drivers::keypad::{self, Key, KeypadEvent, KeypadSettings, StartKey, codes};

const WAIT: Duration = Duration::from_secs(10);

fn next_non_health(handle: &keypad::KeypadHandle) -> KeypadEvent {
    let deadline = Instant::now() + WAIT;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match handle.next_event(left) {
            Some(KeypadEvent::Health(_)) => continue,
            Some(e) => return e,
            None => panic!("no keypad event within {WAIT:?}"),
        }
    }
}

#[test]
fn the_simulated_keypad_reaches_the_reader_as_keys_and_a_held_start_key() {
    let handle = keypad::open(&KeypadSettings::Simulated {
        start_key: StartKey::Five,
        hold_ms: 1_000,
    })
    .unwrap()
    .expect("a keypad is configured");
    let sim = handle.simulator().expect("simulated");
    match handle.next_event(WAIT) {
        Some(KeypadEvent::Health(h)) => assert!(h.is_usable(), "{h}"),
        other => panic!("expected the keypad's health first, got {other:?}"),
    }
    sim.tap(codes::DOWN).unwrap();
    assert_eq!(next_non_health(&handle), KeypadEvent::Key(Key::Next));
    sim.tap(codes::KP_ENTER).unwrap();
    assert_eq!(next_non_health(&handle), KeypadEvent::Key(Key::Enter));
    sim.tap(codes::KP5).unwrap();
    assert_eq!(next_non_health(&handle), KeypadEvent::Key(Key::Digit(5)));
    let started = Instant::now();
    sim.hold(codes::KP5, Duration::from_millis(1_400)).unwrap();
    assert_eq!(next_non_health(&handle), KeypadEvent::StartHeld);
    assert!(started.elapsed() >= Duration::from_millis(1_000));
    sim.tap(codes::BACKSPACE).unwrap();
    assert_eq!(
        next_non_health(&handle),
        KeypadEvent::Key(Key::Back),
        "the auto-repeats and the release of the held key gave nothing more"
    );
}

#[test]
fn a_missing_evdev_keypad_is_reported_absent_with_what_to_check() {
    let handle = keypad::open(&KeypadSettings::Evdev {
        device: "/dev/input/by-id/no-such-keypad-event-kbd".into(),
        start_key: StartKey::Five,
        hold_ms: 2_000,
    })
    .unwrap()
    .expect("a keypad is configured");
    match handle.next_event(WAIT) {
        Some(KeypadEvent::Health(h)) => {
            assert!(!h.is_usable());
            let text = h.to_string();
            assert!(text.contains("input group"), "{text}");
        }
        other => panic!("expected absent health, got {other:?}"),
    }
}
