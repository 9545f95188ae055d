//! Debounce of card presentations: which cards are on the reader now, so that a card held on the
//! reader is one tap and a card removed and presented again is a new one.
//!
//! Only clean timeouts count as "not there": an answer with a CRC, parity or collision error
//! proves that a card is in the field ([`Presence::activity`]). A card is gone after
//! `removal_polls` consecutive polls in which it did not answer.

use super::token::CardToken;

#[derive(Debug)]
pub(crate) struct Presence {
    cards: Vec<(CardToken, u32)>,
    removal_polls: u32,
}

impl Presence {
    pub(crate) fn new(removal_polls: u32) -> Self {
        Presence {
            cards: Vec::new(),
            removal_polls: removal_polls.max(1),
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.cards.len()
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.cards.is_empty()
    }

    /// A card answered a REQA (it is fresh in the field, or it lost power for a moment).
    /// Returns whether this is a new tap.
    pub(crate) fn read(&mut self, token: CardToken) -> bool {
        match self.cards.iter_mut().find(|(t, _)| *t == token) {
            Some(entry) => {
                entry.1 = 0;
                false
            }
            None => {
                self.cards.push((token, 0));
                true
            }
        }
    }

    /// A presence check (WUPA) found `token`; the other cards did not answer in this poll.
    /// Returns whether this is a new tap (a halted card we had already counted as gone).
    pub(crate) fn confirmed(&mut self, token: CardToken) -> bool {
        for entry in self.cards.iter_mut().filter(|(t, _)| *t != token) {
            entry.1 += 1;
        }
        let limit = self.removal_polls;
        self.cards
            .retain(|(t, misses)| *t == token || *misses < limit);
        self.read(token)
    }

    /// Something answered with errors: a card is in the field, nobody is gone.
    pub(crate) fn activity(&mut self) {
        for entry in &mut self.cards {
            entry.1 = 0;
        }
    }

    /// A clean timeout: no card answered at all.
    pub(crate) fn clean_timeout(&mut self) {
        for entry in &mut self.cards {
            entry.1 += 1;
        }
        let limit = self.removal_polls;
        self.cards.retain(|(_, misses)| *misses < limit);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::card::token::{TenantKey, Uid};

    fn token(b: u8) -> CardToken {
        Uid::from_slice(&[b, 1, 2, 3])
            .unwrap()
            .token(&TenantKey::from_bytes([7; 32]))
    }

    #[test]
    fn card_is_gone_only_after_consecutive_clean_timeouts() {
        let mut p = Presence::new(3);
        assert!(p.read(token(1)));
        p.clean_timeout();
        p.clean_timeout();
        p.activity();
        p.clean_timeout();
        p.clean_timeout();
        assert_eq!(p.len(), 1);
        p.clean_timeout();
        assert!(p.is_empty());
        assert!(p.read(token(1)));
    }

    #[test]
    fn presence_check_ages_the_cards_that_did_not_answer() {
        let mut p = Presence::new(2);
        assert!(p.read(token(1)));
        assert!(p.read(token(2)));
        assert!(!p.confirmed(token(1)));
        assert!(!p.confirmed(token(1)));
        assert_eq!(p.len(), 1);
        assert!(!p.read(token(1)));
    }
}

/// Suppresses a keyboard-wedge or serial reader repeating the same card while it is held (many
/// readers send the UID again every few hundred milliseconds): the same token within `window` of
/// its last sighting is not a new tap.
#[derive(Debug)]
pub(crate) struct RepeatFilter {
    last: Option<(CardToken, std::time::Instant)>,
    window: std::time::Duration,
}

impl RepeatFilter {
    pub(crate) fn new(window: std::time::Duration) -> Self {
        RepeatFilter { last: None, window }
    }

    pub(crate) fn is_new(&mut self, token: &CardToken, now: std::time::Instant) -> bool {
        let repeat = matches!(&self.last, Some((t, at)) if t == token && now.duration_since(*at) < self.window);
        self.last = Some((token.clone(), now));
        !repeat
    }
}
