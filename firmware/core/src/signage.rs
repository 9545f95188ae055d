//! Signage: which piece of campaign content a lobby display plays next, chosen by who is in the
//! store ([`crate::audience::StorePicture`]).
//!
//! Data flow: cached campaigns' content + the store picture → [`Chooser::next`] → the lobby
//! page plays it between calls → `content_played` in the journal.
//!
//! Each item scores `Σ weight(segment) × fit(duration, dwell(segment))` over the segments
//! waiting that the item's campaign targets (a campaign without targets is for everyone), and is
//! drawn with a probability proportional to its score. `fit` favours content short enough to be
//! seen whole while the segment is in the store. The draw is a hash of the seed and the step
//! (SHA-256), so a given seed, content and audience always play the same sequence; the item just
//! played is never drawn again straight away while another can play.
//!
//! Pure: no clock, no I/O, no names (the picture holds segments only).

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::audience::{ANONYMOUS, StorePicture};

/// Dwell assumed for an empty store (people walking past the window): a minute.
pub const PASSER_BY_DWELL_S: u32 = 60;

/// One piece of content that may play.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Item {
    /// The campaign.
    pub campaign_id: String,
    /// The content item within it.
    pub content_id: String,
    /// The campaign's target segments (empty: everyone).
    pub target_segments: Vec<String>,
    /// Seconds on screen.
    pub duration_s: u32,
}

impl Item {
    /// Whether the item is meant for `segment`.
    pub fn targets(&self, segment: &str) -> bool {
        self.target_segments.is_empty() || self.target_segments.iter().any(|s| s == segment)
    }
}

/// How well content of `duration_s` fits a stay of `dwell_s`: 1 when the stay is at least four
/// times as long (the item is seen whole among others), falling linearly to 0.1.
pub fn fit(duration_s: u32, dwell_s: u32) -> f64 {
    if duration_s == 0 {
        return 1.0;
    }
    (f64::from(dwell_s) / (4.0 * f64::from(duration_s))).clamp(0.1, 1.0)
}

/// The score of `item` for the audience in `picture` (an empty store counts as passers-by:
/// anonymous, with a dwell of [`PASSER_BY_DWELL_S`]).
pub fn score(item: &Item, picture: &StorePicture) -> f64 {
    if picture.waiting == 0 {
        return if item.targets(ANONYMOUS) {
            fit(item.duration_s, PASSER_BY_DWELL_S)
        } else {
            0.0
        };
    }
    picture
        .segments
        .iter()
        .filter(|s| s.waiting > 0 && item.targets(&s.segment))
        .map(|s| s.weight * fit(item.duration_s, s.dwell_s))
        .sum()
}

/// The lobby's choice of content, play after play.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chooser {
    seed: u64,
    step: u64,
    last: Option<(String, String)>,
}

impl Chooser {
    /// A chooser whose draws follow `seed`.
    pub fn new(seed: u64) -> Self {
        Chooser {
            seed,
            step: 0,
            last: None,
        }
    }

    /// Plays so far.
    pub fn step(&self) -> u64 {
        self.step
    }

    /// The index in `items` of the next item to play for `picture`, or `None` when nothing is
    /// meant for anyone there.
    pub fn next(&mut self, items: &[Item], picture: &StorePicture) -> Option<usize> {
        let scores: Vec<f64> = items.iter().map(|i| score(i, picture)).collect();
        let is_last = |i: &Item| {
            self.last
                .as_ref()
                .is_some_and(|(c, k)| *c == i.campaign_id && *k == i.content_id)
        };
        let others: f64 = items
            .iter()
            .zip(&scores)
            .filter(|(i, _)| !is_last(i))
            .map(|(_, s)| s)
            .sum();
        let candidates: Vec<(usize, f64)> = scores
            .iter()
            .enumerate()
            .filter(|(i, s)| **s > 0.0 && (others <= 0.0 || !is_last(&items[*i])))
            .map(|(i, s)| (i, *s))
            .collect();
        let total: f64 = candidates.iter().map(|(_, s)| s).sum();
        if candidates.is_empty() || total <= 0.0 {
            return None;
        }
        let mut target = self.draw() * total;
        let mut chosen = candidates[candidates.len() - 1].0;
        for (i, s) in &candidates {
            if target < *s {
                chosen = *i;
                break;
            }
            target -= s;
        }
        self.step += 1;
        self.last = Some((
            items[chosen].campaign_id.clone(),
            items[chosen].content_id.clone(),
        ));
        Some(chosen)
    }

    /// A number in [0, 1) from the seed and the step.
    fn draw(&self) -> f64 {
        let mut h = Sha256::new();
        h.update(self.seed.to_be_bytes());
        h.update(self.step.to_be_bytes());
        let digest = h.finalize();
        let mut bytes = [0u8; 8];
        bytes.copy_from_slice(&digest[..8]);
        // 53 bits: exactly representable in an f64.
        (u64::from_be_bytes(bytes) >> 11) as f64 / (1u64 << 53) as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audience::{Visit, Waiting, picture};
    use std::collections::BTreeMap;
    use time::macros::datetime;
    use time::{Duration, OffsetDateTime};

    fn item(campaign: &str, id: &str, targets: &[&str], duration_s: u32) -> Item {
        Item {
            campaign_id: campaign.to_owned(),
            content_id: id.to_owned(),
            target_segments: targets.iter().map(|s| (*s).to_owned()).collect(),
            duration_s,
        }
    }

    const NOW: OffsetDateTime = datetime!(2026-03-20 11:00 UTC);

    fn store(waiting: &[(Option<&str>, usize)], visits: &[Visit]) -> StorePicture {
        let w: Vec<Waiting> = waiting
            .iter()
            .flat_map(|(seg, n)| {
                std::iter::repeat_n(
                    Waiting {
                        segment: seg.map(str::to_owned),
                        service: "A".to_owned(),
                    },
                    *n,
                )
            })
            .collect();
        picture(
            &w,
            visits,
            &BTreeMap::from([("A".to_owned(), 300)]),
            300,
            None,
            NOW,
        )
    }

    fn plays(chooser: &mut Chooser, items: &[Item], p: &StorePicture, n: usize) -> Vec<String> {
        (0..n)
            .map(|_| {
                chooser
                    .next(items, p)
                    .map_or("-".to_owned(), |i| items[i].content_id.clone())
            })
            .collect()
    }

    fn content() -> Vec<Item> {
        vec![
            item("vip-lounge", "vip", &["vip"], 10),
            item("coffee", "coffee", &["regular", "new"], 8),
            item("join", "join", &["anonymous"], 8),
            item("store", "hours", &[], 6),
        ]
    }

    #[test]
    fn the_same_seed_and_audience_play_the_same_sequence() {
        let p = store(&[(Some("vip"), 2), (None, 1)], &[]);
        let a = plays(&mut Chooser::new(7), &content(), &p, 20);
        let b = plays(&mut Chooser::new(7), &content(), &p, 20);
        assert_eq!(a, b);
        assert_ne!(a, plays(&mut Chooser::new(8), &content(), &p, 20));
    }

    #[test]
    fn a_simulated_morning_plays_content_for_the_segments_in_the_store() {
        // 09:00: two VIP customers wait, one anonymous visitor.
        let vip_morning = store(&[(Some("vip"), 2), (None, 1)], &[]);
        let mut chooser = Chooser::new(19);
        let seq = plays(&mut chooser, &content(), &vip_morning, 8);
        assert_eq!(
            seq,
            [
                "hours", "vip", "hours", "vip", "hours", "join", "hours", "join"
            ],
            "the content for everyone (score 1), the VIP content (2/3 of those waiting) and \
             'join us' for the visitor (1/3); nothing for regulars, who are not there"
        );
        assert!(!seq.contains(&"coffee".to_owned()));
        // 12:00: regulars only.
        let lunch = store(&[(Some("regular"), 3)], &[]);
        let seq = plays(&mut chooser, &content(), &lunch, 6);
        assert!(seq.iter().all(|c| c == "coffee" || c == "hours"), "{seq:?}");
        assert!(seq.contains(&"coffee".to_owned()));
        // 20:00: nobody waiting: passers-by see what is for visitors and everyone.
        let evening = store(&[], &[]);
        let seq = plays(&mut chooser, &content(), &evening, 6);
        assert!(seq.iter().all(|c| c == "join" || c == "hours"), "{seq:?}");
    }

    #[test]
    fn nothing_plays_back_to_back_while_something_else_can() {
        let p = store(&[(Some("vip"), 5)], &[]);
        let items = content();
        let seq = plays(&mut Chooser::new(1), &items, &p, 50);
        for pair in seq.windows(2) {
            assert_ne!(pair[0], pair[1], "{seq:?}");
        }
        // A single item for the audience plays again and again rather than nothing.
        let only = [item("vip-lounge", "vip", &["vip"], 10)];
        assert_eq!(
            plays(&mut Chooser::new(1), &only, &p, 3),
            ["vip", "vip", "vip"]
        );
        // Nothing for anyone there: nothing plays.
        let none = [item("c", "regulars", &["regular"], 10)];
        assert_eq!(plays(&mut Chooser::new(1), &none, &p, 1), ["-"]);
    }

    #[test]
    fn content_that_fits_the_segments_stay_is_drawn_more_often() {
        // VIPs stay a minute (learned): a 10 s item fits, a 60 s one does not.
        let visits: Vec<Visit> = (1..=5)
            .map(|d| Visit {
                segment: Some("vip".to_owned()),
                issued_at: NOW - Duration::days(d),
                served_at: NOW - Duration::days(d) + Duration::minutes(1),
                surveyed_at: None,
            })
            .collect();
        let p = store(&[(Some("vip"), 3)], &visits);
        assert_eq!(p.segment("vip").unwrap().dwell_s, 60);
        let items = [
            item("a", "short", &["vip"], 10),
            item("b", "long", &["vip"], 60),
            item("c", "mid", &["vip"], 20),
        ];
        let seq = plays(&mut Chooser::new(3), &items, &p, 300);
        let count = |id: &str| seq.iter().filter(|c| *c == id).count();
        assert!(
            count("short") > count("long") * 2,
            "{} vs {}",
            count("short"),
            count("long")
        );
        assert!(fit(10, 60) > fit(60, 60));
    }
}
