//! The MFRC522 path end to end on the simulator: the unmodified `mfrc522` crate and our driver
//! talk SPI registers to `Mfrc522Sim`, and a test places, removes and breaks things through its
//! handle.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a failed unwrap is the failure message"
)]

use std::sync::mpsc;
use std::time::Duration;

use kiosk_drivers::DeviceHealth;
use kiosk_drivers::card::mfrc522sim::{
    CardFault, CardState, Mfrc522Sim, SimHandle, SimOptions, VirtualCard,
};
use kiosk_drivers::card::rc522::{Mfrc522Config, Mfrc522Reader};
use kiosk_drivers::card::settings::CardReaderSettings;
use kiosk_drivers::card::{CardEvent, ReaderKind};
use mfrc522::Mfrc522;
use mfrc522::comm::blocking::spi::SpiInterface;

#[path = "support/mfrc522.rs"]
mod support;

use support::{SimReader, key, poll, taps, token_of};

fn reader_with(options: SimOptions, gain: u8, removal_polls: u32) -> (SimReader, SimHandle) {
    let sim = Mfrc522Sim::new(options);
    let handle = sim.handle();
    let delay = sim.delay();
    let pin = sim.reset_pin();
    let config = Mfrc522Config {
        label: "test mfrc522".into(),
        antenna_gain_db: gain,
        poll_interval: Duration::from_millis(50),
        idle_poll_interval: Duration::from_millis(50),
        removal_polls,
    };
    let reader =
        Mfrc522Reader::new(sim, Some(pin), delay, config, ReaderKind::Simulated, key()).unwrap();
    (reader, handle)
}

fn reader() -> (SimReader, SimHandle) {
    reader_with(SimOptions::default(), 48, 3)
}

fn healths(events: &[CardEvent]) -> Vec<DeviceHealth> {
    events
        .iter()
        .filter_map(|e| match e {
            CardEvent::Health(h) => Some(h.state),
            CardEvent::Tap(_) => None,
        })
        .collect()
}

const UID4: [u8; 4] = [0x4A, 0x11, 0x9C, 0x03];
const UID7: [u8; 7] = [0x04, 0x52, 0x8B, 0x3A, 0x6F, 0x21, 0x80];
const UID10: [u8; 10] = [0x04, 0x88, 0x13, 0x37, 0xC0, 0xFF, 0xEE, 0x42, 0x17, 0x29];

#[test]
fn unmodified_mfrc522_crate_reads_4_7_and_10_byte_uids_through_the_simulator() {
    for uid in [&UID4[..], &UID7[..], &UID10[..]] {
        let sim = Mfrc522Sim::default();
        let handle = sim.handle();
        let id = handle.place(VirtualCard::new(uid).unwrap());
        let mut chip = Mfrc522::new(SpiInterface::new(sim)).init().unwrap();
        let atqa = chip.reqa().unwrap();
        let read = chip.select(&atqa).unwrap();
        assert_eq!(read.as_bytes(), uid);
        assert_eq!(handle.card_state(id), Some(CardState::Active));
        chip.hlta().unwrap();
        assert_eq!(handle.card_state(id), Some(CardState::Halt));
        // A halted card ignores REQA; WUPA wakes it.
        assert!(matches!(chip.reqa(), Err(mfrc522::Error::Timeout)));
        let atqa = chip.wupa().unwrap();
        assert_eq!(chip.select(&atqa).unwrap().as_bytes(), uid);
    }
}

#[test]
fn unmodified_mfrc522_crate_authenticates_and_reads_block_zero() {
    let sim = Mfrc522Sim::default();
    sim.handle().place(VirtualCard::new(&UID4).unwrap());
    let mut chip = Mfrc522::new(SpiInterface::new(sim)).init().unwrap();
    let atqa = chip.reqa().unwrap();
    let uid = chip.select(&atqa).unwrap();
    assert!(
        chip.mf_authenticate(&uid, 0, &[0x12; 6]).is_err(),
        "a wrong key must fail"
    );
    let atqa = chip.wupa().or_else(|_| chip.reqa()).unwrap();
    let uid = chip.select(&atqa).unwrap();
    chip.mf_authenticate(&uid, 0, &[0xFF; 6]).unwrap();
    let block = chip.mf_read(0).unwrap();
    assert_eq!(&block[..4], &UID4);
    chip.stop_crypto1().unwrap();
}

#[test]
fn driver_reads_every_uid_length_as_its_keyed_token() {
    for uid in [&UID4[..], &UID7[..], &UID10[..]] {
        let (mut reader, handle) = reader();
        handle.place(VirtualCard::new(uid).unwrap());
        let events = poll(&mut reader, 2);
        assert_eq!(taps(&events), vec![token_of(uid)]);
        assert_eq!(healths(&events), vec![DeviceHealth::Ok]);
    }
}

#[test]
fn card_held_on_reader_counts_as_one_tap() {
    let (mut reader, handle) = reader();
    handle.place(VirtualCard::new(&UID7).unwrap());
    let events = poll(&mut reader, 100);
    assert_eq!(taps(&events).len(), 1);
    assert_eq!(reader.cards_present(), 1);
}

#[test]
fn card_removed_and_presented_again_is_a_second_tap() {
    let (mut reader, handle) = reader();
    let id = handle.place(VirtualCard::new(&UID4).unwrap());
    let first = poll(&mut reader, 5);
    handle.remove(id);
    let gone = poll(&mut reader, 5);
    assert_eq!(reader.cards_present(), 0);
    handle.place(VirtualCard::new(&UID4).unwrap());
    let second = poll(&mut reader, 5);
    assert_eq!(taps(&first), vec![token_of(&UID4)]);
    assert!(taps(&gone).is_empty());
    assert_eq!(taps(&second), vec![token_of(&UID4)]);
}

#[test]
fn halted_card_is_redetected_with_wupa_and_stays_present() {
    let (mut reader, handle) = reader_with(SimOptions::default(), 48, 2);
    let id = handle.place(VirtualCard::new(&UID10).unwrap());
    assert_eq!(taps(&poll(&mut reader, 1)).len(), 1);
    // HLTA after the read: REQA no longer reaches the card, only WUPA does.
    assert_eq!(handle.card_state(id), Some(CardState::Halt));
    for _ in 0..20 {
        assert!(taps(&reader.poll_once()).is_empty());
        assert_eq!(
            reader.cards_present(),
            1,
            "a held, halted card must stay present"
        );
        assert_eq!(handle.card_state(id), Some(CardState::Halt));
    }
}

#[test]
fn card_that_loses_power_at_the_edge_of_the_field_is_not_a_second_tap() {
    let (mut reader, handle) = reader();
    let id = handle.place(VirtualCard::new(&UID4).unwrap());
    assert_eq!(taps(&poll(&mut reader, 1)).len(), 1);
    // Brief brown-out of the card: it comes back in IDLE and answers REQA again.
    handle.remove(id);
    handle.place(VirtualCard::new(&UID4).unwrap());
    assert!(taps(&poll(&mut reader, 10)).is_empty());
}

#[test]
fn two_cards_with_the_same_atqa_are_both_read_one_at_a_time() {
    let (mut reader, handle) = reader();
    let a = [0x11, 0x22, 0x33, 0x44];
    let b = [0x11, 0x2A, 0x33, 0x45];
    handle.place(VirtualCard::new(&a).unwrap());
    handle.place(VirtualCard::new(&b).unwrap());
    let events = poll(&mut reader, 4);
    let mut got = taps(&events);
    got.sort();
    let mut want = vec![token_of(&a), token_of(&b)];
    want.sort();
    assert_eq!(got, want);
    assert!(taps(&poll(&mut reader, 20)).is_empty());
}

#[test]
fn two_cards_with_colliding_atqas_give_no_tap_until_one_is_taken_away() {
    let (mut reader, handle) = reader();
    let four = handle.place(VirtualCard::new(&UID4).unwrap());
    handle.place(VirtualCard::new(&UID7).unwrap());
    assert!(taps(&poll(&mut reader, 10)).is_empty());
    handle.remove(four);
    assert_eq!(taps(&poll(&mut reader, 3)), vec![token_of(&UID7)]);
}

#[test]
fn card_removed_mid_read_gives_no_tap_and_the_next_read_works() {
    for answers in 1..=3 {
        let (mut reader, handle) = reader();
        let id = handle.place(VirtualCard::new(&UID7).unwrap());
        // Answers REQA (and some anticollision frames), then leaves before SELECT completes.
        handle.remove_after_answers(id, answers);
        assert!(taps(&poll(&mut reader, 5)).is_empty(), "{answers} answers");
        assert!(!handle.in_field(id));
        handle.place(VirtualCard::new(&UID7).unwrap());
        assert_eq!(taps(&poll(&mut reader, 2)), vec![token_of(&UID7)]);
    }
}

#[test]
fn crc_and_parity_errors_mean_a_card_is_there_not_that_it_left() {
    let (mut reader, handle) = reader_with(SimOptions::default(), 48, 1);
    handle.place(VirtualCard::new(&UID4).unwrap());
    assert_eq!(taps(&poll(&mut reader, 1)).len(), 1);
    for fault in [
        CardFault::Crc,
        CardFault::Parity,
        CardFault::Crc,
        CardFault::Parity,
    ] {
        handle.inject(fault);
        let events = reader.poll_once();
        assert_eq!(handle.pending_faults(), 0, "the fault reached the driver");
        assert!(taps(&events).is_empty());
        assert_eq!(
            reader.cards_present(),
            1,
            "{fault:?} must not count as removal"
        );
    }
    assert!(taps(&poll(&mut reader, 10)).is_empty());
}

#[test]
fn reader_reading_version_0x00_is_absent_and_recovers_when_it_answers_again() {
    let (mut reader, handle) = reader();
    handle.unplug(0x00);
    let events = poll(&mut reader, 1);
    assert_eq!(healths(&events), vec![DeviceHealth::Absent]);
    let CardEvent::Health(h) = &events[0] else {
        unreachable!()
    };
    let reason = h.reason.clone().unwrap();
    assert!(
        reason.contains("0x00") && reason.contains("MISO"),
        "{reason}"
    );
    handle.plug_in();
    handle.place(VirtualCard::new(&UID4).unwrap());
    let events = poll(&mut reader, 40);
    assert_eq!(healths(&events), vec![DeviceHealth::Ok]);
    assert_eq!(taps(&events), vec![token_of(&UID4)]);
}

#[test]
fn reader_unplugged_while_polling_goes_absent_then_recovers_without_restart() {
    for miso in [0x00, 0xFF] {
        let (mut reader, handle) = reader();
        assert_eq!(healths(&poll(&mut reader, 1)), vec![DeviceHealth::Ok]);
        let id = handle.place(VirtualCard::new(&UID4).unwrap());
        assert_eq!(taps(&poll(&mut reader, 1)).len(), 1);
        handle.unplug(miso);
        let events = poll(&mut reader, 3);
        assert_eq!(
            healths(&events),
            vec![DeviceHealth::Absent],
            "miso {miso:#04x}"
        );
        handle.plug_in();
        let events = poll(&mut reader, 40);
        assert_eq!(healths(&events), vec![DeviceHealth::Ok], "miso {miso:#04x}");
        // The card stayed on the reader all along: no second tap for it.
        assert!(taps(&events).is_empty());
        handle.remove(id);
        poll(&mut reader, 5);
        handle.place(VirtualCard::new(&UID4).unwrap());
        assert_eq!(taps(&poll(&mut reader, 2)).len(), 1);
    }
}

#[test]
fn broken_spi_bus_is_reported_with_the_device_to_check() {
    let (mut reader, handle) = reader();
    poll(&mut reader, 1);
    handle.break_bus();
    let events = poll(&mut reader, 1);
    let reason = match &events[..] {
        [CardEvent::Health(h)] if h.state == DeviceHealth::Absent => h.reason.clone().unwrap(),
        other => panic!("unexpected events {other:?}"),
    };
    assert!(reason.contains("spi bus test mfrc522"), "{reason}");
}

#[test]
fn chip_that_is_not_an_mfrc522_is_absent_with_a_reason() {
    let (mut reader, handle) = reader();
    handle.set_version(0x37);
    let events = poll(&mut reader, 1);
    let CardEvent::Health(h) = &events[0] else {
        panic!("{events:?}")
    };
    assert_eq!(h.state, DeviceHealth::Absent);
    assert!(h.reason.as_deref().unwrap().contains("not an MFRC522"));
}

#[test]
fn reader_recovers_its_configuration_after_a_power_glitch() {
    let (mut reader, handle) = reader();
    poll(&mut reader, 1);
    handle.power_glitch();
    assert!(!handle.antenna_on());
    poll(&mut reader, 25);
    assert!(
        handle.antenna_on(),
        "the periodic check re-initialises the chip"
    );
    handle.place(VirtualCard::new(&UID7).unwrap());
    assert_eq!(taps(&poll(&mut reader, 2)).len(), 1);
}

#[test]
fn antenna_gain_comes_from_the_settings() {
    for (db, bits) in [(18, 0b000), (33, 0b100), (48, 0b111)] {
        let (mut reader, handle) = reader_with(SimOptions::default(), db, 3);
        poll(&mut reader, 1);
        assert_eq!(handle.rx_gain_bits(), bits, "{db} dB");
    }
}

#[test]
fn events_never_print_the_uid() {
    let (mut reader, handle) = reader();
    handle.place(VirtualCard::new(&UID4).unwrap());
    let printed = format!("{:?}", poll(&mut reader, 2));
    assert!(
        !printed.to_lowercase().contains(&hex::encode(UID4)),
        "{printed}"
    );
    assert!(printed.contains("CardToken("));
}

#[test]
fn spawned_reader_delivers_a_tap_to_the_input_stream() {
    let settings = CardReaderSettings::Simulated {
        poll_interval_ms: 10,
        idle_poll_ms: None,
        removal_polls: 3,
        transceive: Default::default(),
        irq: false,
    };
    let opened = kiosk_drivers::card::open(&settings, key())
        .unwrap()
        .unwrap();
    let sim = opened.sim.clone().unwrap();
    let (tx, rx) = mpsc::channel();
    let thread = kiosk_drivers::card::spawn(opened.reader, move |e| tx.send(e).is_ok()).unwrap();
    let first = rx.recv_timeout(Duration::from_secs(10)).unwrap();
    assert!(
        matches!(first, CardEvent::Health(ref h) if h.state == DeviceHealth::Ok),
        "{first:?}"
    );
    sim.place(VirtualCard::new(&UID10).unwrap());
    let tap = rx.recv_timeout(Duration::from_secs(10)).unwrap();
    match tap {
        CardEvent::Tap(t) => {
            assert_eq!(t.token, token_of(&UID10));
            assert_eq!(t.reader, ReaderKind::Simulated);
        }
        other => panic!("expected a tap, got {other:?}"),
    }
    thread.stop();
}
