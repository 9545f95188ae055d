//! The lean ISO 14443A path of the MFRC522 driver against the register simulator: the same taps
//! as the `mfrc522` crate's path for the same presentations, with the SPI transfers counted
//! (counts are deterministic on the simulator; how long they take is the benchmark's business).

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a failed unwrap is the failure message"
)]

use std::time::Duration;

use kiosk_drivers::card::mfrc522sim::{CardFault, Mfrc522Sim, SimHandle, SimOptions, VirtualCard};
use kiosk_drivers::card::rc522::{Mfrc522Config, Mfrc522Reader, Transceive};
use kiosk_drivers::card::{CardEvent, CardToken, ReaderKind};

#[path = "support/mfrc522.rs"]
mod support;

use support::{SimReader, key, poll, taps, token_of};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Crate,
    LeanPolling,
    LeanIrq,
}

fn open(mode: Mode, removal_polls: u32) -> (SimReader, SimHandle) {
    let sim = Mfrc522Sim::new(SimOptions::default());
    let handle = sim.handle();
    let delay = sim.delay();
    let pin = sim.reset_pin();
    let irq = sim.irq_line();
    let config = Mfrc522Config {
        label: "test mfrc522".into(),
        antenna_gain_db: 48,
        poll_interval: Duration::from_millis(25),
        idle_poll_interval: Duration::from_millis(50),
        removal_polls,
    };
    let mut reader =
        Mfrc522Reader::new(sim, Some(pin), delay, config, ReaderKind::Simulated, key()).unwrap();
    match mode {
        Mode::Crate => reader.set_transceive(Transceive::Crate),
        Mode::LeanPolling => reader.set_transceive(Transceive::Lean),
        Mode::LeanIrq => {
            reader.set_transceive(Transceive::Lean);
            reader.set_irq(Box::new(irq));
        }
    }
    (reader, handle)
}

const UID4: [u8; 4] = [0x4A, 0x11, 0x9C, 0x03];
const UID7: [u8; 7] = [0x04, 0x52, 0x8B, 0x3A, 0x6F, 0x21, 0x80];
const UID10: [u8; 10] = [0x04, 0x88, 0x13, 0x37, 0xC0, 0xFF, 0xEE, 0x42, 0x17, 0x29];

/// Transfers of: an empty poll, the poll that reads a fresh card, the next poll with it held.
fn counts(mode: Mode, uid: &[u8]) -> (u64, u64, u64) {
    let (mut reader, handle) = open(mode, 3);
    reader.poll_once();
    handle.reset_spi_stats();
    reader.poll_once();
    let empty = handle.spi_stats().transfers;
    handle.place(VirtualCard::new(uid).unwrap());
    handle.reset_spi_stats();
    assert_eq!(taps(&reader.poll_once()), vec![token_of(uid)], "{mode:?}");
    let read = handle.spi_stats().transfers;
    handle.reset_spi_stats();
    assert!(taps(&reader.poll_once()).is_empty(), "{mode:?}");
    let held = handle.spi_stats().transfers;
    (empty, read, held)
}

/// The least an MFRC522 needs for one tap with L cascade levels (drivers/benches/card.rs).
fn iso_minimum(uid_len: usize) -> u64 {
    let levels = match uid_len {
        4 => 1,
        7 => 2,
        _ => 3,
    };
    10 + 12 * levels
}

#[test]
fn lean_path_reads_every_uid_length_within_one_and_a_half_times_the_iso_minimum() {
    for mode in [Mode::LeanPolling, Mode::LeanIrq] {
        for (uid, read, held) in [
            (&UID4[..], 23, 28),
            (&UID7[..], 35, 40),
            (&UID10[..], 47, 52),
        ] {
            let (empty, got_read, got_held) = counts(mode, uid);
            assert_eq!(
                (empty, got_read, got_held),
                (5, read, held),
                "{mode:?}, {}-byte uid",
                uid.len()
            );
            assert!(got_read * 2 <= iso_minimum(uid.len()) * 3, "{mode:?}");
        }
    }
}

#[test]
fn crate_path_stays_selectable_with_its_old_transfer_counts() {
    // The figures docs/PERFORMANCE.md reported for the unmodified crate, kept to compare.
    for (uid, read, held) in [
        (&UID4[..], 207, 256),
        (&UID7[..], 318, 367),
        (&UID10[..], 429, 478),
    ] {
        assert_eq!(
            counts(Mode::Crate, uid),
            (49, read, held),
            "{}-byte uid",
            uid.len()
        );
    }
}

#[test]
fn empty_field_poll_on_the_lean_path_is_cheaper_at_25_ms_than_the_crate_at_50_ms() {
    let per_second = |mode, interval_ms: u64| counts(mode, &UID4).0 * 1000 / interval_ms;
    assert!(per_second(Mode::LeanPolling, 25) < per_second(Mode::Crate, 50));
    assert!(per_second(Mode::LeanIrq, 25) < per_second(Mode::Crate, 50));
}

/// What a mode makes of a series of presentations: the taps of each step.
fn scenario(mode: Mode) -> Vec<Vec<CardToken>> {
    let mut steps = Vec::new();
    // A card held for a while, removed, presented again.
    let (mut reader, handle) = open(mode, 3);
    let id = handle.place(VirtualCard::new(&UID7).unwrap());
    steps.push(taps(&poll(&mut reader, 50)));
    handle.remove(id);
    steps.push(taps(&poll(&mut reader, 5)));
    handle.place(VirtualCard::new(&UID7).unwrap());
    steps.push(taps(&poll(&mut reader, 5)));

    // Two cards with the same ATQA: the anticollision loop tells them apart, one per poll.
    let (mut reader, handle) = open(mode, 3);
    let a = [0x11, 0x22, 0x33, 0x44];
    let b = [0x11, 0x2A, 0x33, 0x45];
    handle.place(VirtualCard::new(&a).unwrap());
    handle.place(VirtualCard::new(&b).unwrap());
    let mut both = taps(&poll(&mut reader, 4));
    both.sort();
    steps.push(both);
    steps.push(taps(&poll(&mut reader, 20)));

    // Two 7-byte cards differing only at the second cascade level.
    let (mut reader, handle) = open(mode, 3);
    let c = [0x04, 0x52, 0x8B, 0x3A, 0x6F, 0x21, 0x80];
    let d = [0x04, 0x52, 0x8B, 0x3A, 0x6E, 0x21, 0x81];
    handle.place(VirtualCard::new(&c).unwrap());
    handle.place(VirtualCard::new(&d).unwrap());
    let mut both = taps(&poll(&mut reader, 4));
    both.sort();
    steps.push(both);

    // Colliding ATQAs: no tap until one card is taken away.
    let (mut reader, handle) = open(mode, 3);
    let four = handle.place(VirtualCard::new(&UID4).unwrap());
    handle.place(VirtualCard::new(&UID10).unwrap());
    steps.push(taps(&poll(&mut reader, 10)));
    handle.remove(four);
    steps.push(taps(&poll(&mut reader, 3)));

    // Errors on the air keep a held card present.
    let (mut reader, handle) = open(mode, 1);
    handle.place(VirtualCard::new(&UID4).unwrap());
    steps.push(taps(&poll(&mut reader, 1)));
    for fault in [CardFault::Crc, CardFault::Parity] {
        handle.inject(fault);
        steps.push(taps(&reader.poll_once()));
        assert_eq!(
            handle.pending_faults(),
            0,
            "{mode:?}: {fault:?} reached the driver"
        );
        assert_eq!(reader.cards_present(), 1, "{mode:?}: {fault:?}");
    }
    steps.push(taps(&poll(&mut reader, 10)));

    // A card pulled away mid-read, then presented properly.
    for answers in 1..=3 {
        let (mut reader, handle) = open(mode, 3);
        let id = handle.place(VirtualCard::new(&UID10).unwrap());
        handle.remove_after_answers(id, answers);
        steps.push(taps(&poll(&mut reader, 5)));
        handle.place(VirtualCard::new(&UID10).unwrap());
        steps.push(taps(&poll(&mut reader, 2)));
    }
    steps
}

#[test]
fn every_path_gives_the_same_taps_for_the_same_presentations() {
    let reference = scenario(Mode::Crate);
    assert_eq!(reference[0], vec![token_of(&UID7)]);
    assert_eq!(reference[3].len(), 2);
    assert_eq!(reference[5].len(), 2);
    for mode in [Mode::LeanPolling, Mode::LeanIrq] {
        assert_eq!(scenario(mode), reference, "{mode:?}");
    }
}

#[test]
fn irq_wired_reader_goes_absent_when_unplugged_and_recovers_without_restart() {
    for miso in [0x00, 0xFF] {
        let (mut reader, handle) = open(Mode::LeanIrq, 3);
        poll(&mut reader, 1);
        let id = handle.place(VirtualCard::new(&UID4).unwrap());
        assert_eq!(taps(&poll(&mut reader, 1)).len(), 1);
        handle.unplug(miso);
        let events = poll(&mut reader, 3);
        assert!(
            events.iter().any(|e| matches!(e, CardEvent::Health(h) if h.state == kiosk_drivers::DeviceHealth::Absent)),
            "miso {miso:#04x}: {events:?}"
        );
        handle.plug_in();
        let events = poll(&mut reader, 60);
        assert!(
            taps(&events).is_empty(),
            "the held card is not a second tap"
        );
        handle.remove(id);
        poll(&mut reader, 5);
        handle.place(VirtualCard::new(&UID4).unwrap());
        assert_eq!(taps(&poll(&mut reader, 2)).len(), 1, "miso {miso:#04x}");
    }
}
