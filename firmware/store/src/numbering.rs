//! How a store of kiosks numbers turns so that a label is never issued twice in a service day,
//! whatever fails, without a consensus protocol.
//!
//! - **The store's sequence** (`A-041`, `A-042`, ...) has exactly one writer: the store's
//!   *sequencer*, the first kiosk of the store's list in the site config (the same list on every
//!   kiosk). Other kiosks ask it for the next number over the LAN; it persists the number in the
//!   same transaction that answers, and never hands out a number at or below the highest it has
//!   persisted or seen in any kiosk's replicated turns. One writer and a durable, monotonic
//!   counter: no two turns of the sequence share a number, and numbers follow issue order across
//!   the store while the kiosks reach the sequencer.
//! - **A kiosk cut off from the sequencer** (a LAN partition, the sequencer unplugged) keeps
//!   issuing from its own block: labels tagged with its position `k` in the store's list
//!   (`A2-001`, `A2-002`), counted by that kiosk alone and persisted like the sequence. Service
//!   letters are one letter A-Z, so a tagged label never equals a sequence label, and each
//!   tag has one writer. The tag makes the step outside the sequence visible on the ticket and
//!   the board; it lasts only while the kiosk cannot reach the sequencer.
//! - A sequencer that lost its disk (a replaced SD card) does not know the numbers it handed out:
//!   it numbers from the sequence only once it has pulled the other kiosks' ops (or when it is
//!   the only kiosk), and tags its own turns until then.
//!
//! Why not automatic fail-over of the sequencer: moving the single writer safely needs a
//! majority vote (Raft). Most stores have two kiosks, where a majority needs both, so a vote buys
//! nothing there; with the rule above a store never stops issuing, and never duplicates a label.

/// The tag printed in the labels of kiosk number `position` (0-based in the store's list) while
/// it is cut off: `position + 1`, so the first kiosk is `1`.
pub fn tag_of(position: usize) -> u8 {
    u8::try_from(position.saturating_add(1)).unwrap_or(u8::MAX)
}
