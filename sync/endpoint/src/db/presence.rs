//! Who is in a store now, for the dashboard: the customers waiting (identified, by segment,
//! and anonymous) and each segment's weight among them; how long each segment usually stays
//! (issue to served, past visits); people counted entering; what the signage played, by the
//! segments it played to; assistance requests and how fast staff answered them.
//!
//! Data flow: ingest → events, `queue_turns`, `turns` → **presence** (pure, from rows) →
//! `/dashboard` (SSE `presence`). "Today" is the store's business day in its time zone.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::dashboard::percentile;

/// Past visits whose dwell is learned: the last 30 days.
pub const DWELL_WINDOW_MS: i64 = 30 * 24 * 3600 * 1000;
/// Assistance requests listed (newest first); all are counted.
pub const MAX_REQUESTS_LISTED: usize = 10;
/// The segment of a customer nobody identified.
pub const ANONYMOUS: &str = "anonymous";

/// A store's audience now.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct StorePresence {
    /// The store.
    pub store_id: String,
    /// Today in the store (`YYYY-MM-DD`).
    pub business_day: String,
    /// Now, unix ms.
    pub now_ms: i64,
    /// Customers waiting now (turns waiting, all services).
    pub waiting: u64,
    /// Of those, identified by their card.
    pub identified: u64,
    /// Of those, anonymous.
    pub anonymous: u64,
    /// Waiting customers per segment (`anonymous` included), by segment name; each with its
    /// weight, its share of those waiting (0 to 1).
    pub segments: Vec<SegmentWeight>,
    /// Issue to served of each segment's visits in the last 30 days.
    pub dwell: Vec<SegmentDwell>,
    /// People who entered today (people counter on the presence input).
    pub entries_today: u64,
    /// Signage plays today per content item, with the audience they played to.
    pub content: Vec<ContentPlays>,
    /// Assistance requested today.
    pub assistance_requests: u64,
    /// Of those, still not taken by staff.
    pub assistance_open: u64,
    /// Median response (request to acknowledgement) of today's taken requests, ms.
    pub assistance_median_ms: Option<u64>,
    /// The latest requests, newest first (at most [`MAX_REQUESTS_LISTED`]).
    pub recent_requests: Vec<AssistanceRecord>,
}

/// One segment among the customers waiting.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct SegmentWeight {
    /// Segment name (`new`, `regular`, `vip`, `lapsed`, a hand-set one, or `anonymous`).
    pub segment: String,
    /// Customers of it waiting.
    pub waiting: u64,
    /// Their share of those waiting, 0 to 1.
    pub weight: f64,
}

/// How long a segment stays.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct SegmentDwell {
    /// Segment name.
    pub segment: String,
    /// Visits measured.
    pub visits: u64,
    /// Median issue to served, seconds.
    pub median_s: f64,
}

/// Plays of one content item today.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct ContentPlays {
    /// Campaign.
    pub campaign_id: String,
    /// Content item.
    pub content_id: String,
    /// Times played.
    pub plays: u64,
    /// People of each segment it played to, summed over its plays (by segment name).
    pub audience: BTreeMap<String, u64>,
}

/// An assistance request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct AssistanceRecord {
    /// Where staff were asked to go.
    pub place_name: String,
    /// When, unix ms.
    pub at_ms: i64,
    /// The counter that took it, once taken.
    pub counter: Option<String>,
    /// Request to acknowledgement, ms, once taken.
    pub response_ms: Option<u64>,
}

/// One signage play as read: campaign, content item, people per segment it played to.
pub type Play = (String, String, Vec<(String, u64)>);

/// What the backends read for [`assemble`].
#[derive(Debug, Clone, Default)]
pub struct PresenceRows {
    /// Today's business day and now.
    pub business_day: String,
    /// Segment of each turn waiting now (`None`: anonymous).
    pub waiting: Vec<Option<String>>,
    /// Dwell of past visits: (segment or `None`, issue to served in ms).
    pub visits: Vec<(Option<String>, i64)>,
    /// Entries of today's `people_counted` events.
    pub entries: Vec<u64>,
    /// Today's plays: (campaign, content, audience by segment).
    pub plays: Vec<Play>,
    /// Today's requests: (request id, place name, time), oldest first.
    pub requests: Vec<(String, String, i64)>,
    /// Today's acknowledgements: (request id, counter, response ms).
    pub acks: Vec<(String, String, u64)>,
}

/// The presence of store `store_id` at `now_ms` from its rows.
pub fn assemble(store_id: &str, now_ms: i64, rows: PresenceRows) -> StorePresence {
    let name = |s: &Option<String>| s.clone().unwrap_or_else(|| ANONYMOUS.to_owned());
    let waiting = rows.waiting.len() as u64;
    let anonymous = rows.waiting.iter().filter(|s| s.is_none()).count() as u64;
    let mut by_segment: BTreeMap<String, u64> = BTreeMap::new();
    for s in &rows.waiting {
        *by_segment.entry(name(s)).or_default() += 1;
    }
    let segments = by_segment
        .into_iter()
        .map(|(segment, n)| SegmentWeight {
            segment,
            waiting: n,
            weight: n as f64 / waiting as f64,
        })
        .collect();
    let mut dwells: BTreeMap<String, Vec<i64>> = BTreeMap::new();
    for (s, ms) in &rows.visits {
        dwells.entry(name(s)).or_default().push(*ms);
    }
    let dwell = dwells
        .into_iter()
        .filter_map(|(segment, mut v)| {
            v.sort_unstable();
            Some(SegmentDwell {
                visits: v.len() as u64,
                median_s: percentile(&v, 0.5)? / 1000.0,
                segment,
            })
        })
        .collect();
    let mut content: BTreeMap<(String, String), ContentPlays> = BTreeMap::new();
    for (campaign_id, content_id, audience) in rows.plays {
        let c = content
            .entry((campaign_id.clone(), content_id.clone()))
            .or_insert_with(|| ContentPlays {
                campaign_id,
                content_id,
                plays: 0,
                audience: BTreeMap::new(),
            });
        c.plays += 1;
        for (segment, n) in audience {
            *c.audience.entry(segment).or_default() += n;
        }
    }
    let acks: BTreeMap<&str, (&str, u64)> = rows
        .acks
        .iter()
        .map(|(id, counter, ms)| (id.as_str(), (counter.as_str(), *ms)))
        .collect();
    let mut taken: Vec<i64> = rows
        .requests
        .iter()
        .filter_map(|(id, _, _)| acks.get(id.as_str()))
        .map(|(_, ms)| i64::try_from(*ms).unwrap_or(i64::MAX))
        .collect();
    taken.sort_unstable();
    let open = rows
        .requests
        .iter()
        .filter(|(id, _, _)| !acks.contains_key(id.as_str()))
        .count() as u64;
    let recent_requests = rows
        .requests
        .iter()
        .rev()
        .take(MAX_REQUESTS_LISTED)
        .map(|(id, place, at)| {
            let ack = acks.get(id.as_str());
            AssistanceRecord {
                place_name: place.clone(),
                at_ms: *at,
                counter: ack.map(|(c, _)| (*c).to_owned()),
                response_ms: ack.map(|(_, ms)| *ms),
            }
        })
        .collect();
    StorePresence {
        store_id: store_id.to_owned(),
        business_day: rows.business_day,
        now_ms,
        waiting,
        identified: waiting - anonymous,
        anonymous,
        segments,
        dwell,
        entries_today: rows.entries.iter().sum(),
        content: content.into_values().collect(),
        assistance_requests: rows.requests.len() as u64,
        assistance_open: open,
        assistance_median_ms: percentile(&taken, 0.5).map(|m| m.round() as u64),
        recent_requests,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weights_dwell_plays_and_responses_from_rows() {
        let s = |n: &str| Some(n.to_owned());
        let rows = PresenceRows {
            business_day: "2026-12-06".into(),
            waiting: vec![s("vip"), None, None, s("new")],
            visits: vec![(s("vip"), 60_000), (s("vip"), 120_000), (None, 300_000)],
            entries: vec![3, 4],
            plays: vec![
                (
                    "c".into(),
                    "x".into(),
                    vec![("vip".into(), 1), ("anonymous".into(), 2)],
                ),
                ("c".into(), "x".into(), vec![("vip".into(), 2)]),
            ],
            requests: vec![
                ("r1".into(), "Entrada".into(), 1),
                ("r2".into(), "Cajero".into(), 2),
            ],
            acks: vec![("r1".into(), "2".into(), 45_000)],
        };
        let p = assemble("north", 10, rows);
        assert_eq!((p.waiting, p.identified, p.anonymous), (4, 2, 2));
        let w: Vec<(&str, u64, f64)> = p
            .segments
            .iter()
            .map(|s| (s.segment.as_str(), s.waiting, s.weight))
            .collect();
        assert_eq!(
            w,
            vec![("anonymous", 2, 0.5), ("new", 1, 0.25), ("vip", 1, 0.25)]
        );
        assert_eq!(p.dwell[1].segment, "vip");
        assert_eq!((p.dwell[1].visits, p.dwell[1].median_s), (2, 90.0));
        assert_eq!(p.entries_today, 7);
        assert_eq!(p.content[0].plays, 2);
        assert_eq!(p.content[0].audience["vip"], 3);
        assert_eq!((p.assistance_requests, p.assistance_open), (2, 1));
        assert_eq!(p.assistance_median_ms, Some(45_000));
        assert_eq!(p.recent_requests[0].place_name, "Cajero");
        assert_eq!(p.recent_requests[1].response_ms, Some(45_000));
    }
}
