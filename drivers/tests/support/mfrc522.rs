//! What the MFRC522 tests share: the reader over the register simulator, the tenant key and
//! token of a UID, polling and picking the taps out of what the reader reported.

use kiosk_drivers::card::mfrc522sim::{Mfrc522Sim, SimDelay, SimResetPin};
use kiosk_drivers::card::rc522::Mfrc522Reader;
use kiosk_drivers::card::{CardEvent, CardToken, TenantKey, Uid};

/// The driver over the simulated chip.
pub type SimReader = Mfrc522Reader<Mfrc522Sim, SimResetPin, SimDelay>;

/// The tenant key of these tests.
pub fn key() -> TenantKey {
    TenantKey::from_slice(b"tenant-key-for-tests-0123456789!").unwrap()
}

/// The token the reader must report for `uid`.
pub fn token_of(uid: &[u8]) -> CardToken {
    Uid::from_slice(uid).unwrap().token(&key())
}

/// `polls` polls of the reader, everything they reported.
pub fn poll(reader: &mut SimReader, polls: usize) -> Vec<CardEvent> {
    (0..polls).flat_map(|_| reader.poll_once()).collect()
}

/// The tokens of the taps among `events`.
pub fn taps(events: &[CardEvent]) -> Vec<CardToken> {
    events
        .iter()
        .filter_map(|e| match e {
            CardEvent::Tap(t) => Some(t.token.clone()),
            CardEvent::Health(_) => None,
        })
        .collect()
}
