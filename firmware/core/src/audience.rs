//! Who is in the store: the live picture the store layer keeps from the replicated queue
//! (customers waiting now, by segment, identified or not), the share of each segment among them
//! (its *weight*), and how long each segment usually stays (its *dwell*), learned from past
//! visits. Signage ([`crate::signage`]) chooses content by it; the counter page shows it.
//!
//! Data flow: queue turns + profile cache (segments) + past visits (turn rows, survey answers)
//! + the people counter → [`picture`] → counter page, lobby signage, browse points.
//!
//! Pure: the caller passes the waiting turns, the visits and the time. No names ever enter the
//! picture: a waiting customer is a segment, or anonymous.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use time::{Duration, OffsetDateTime};

/// The segment of customers without a card (or whose card the cache does not know).
pub const ANONYMOUS: &str = "anonymous";

/// The order segments are listed in (others follow, alphabetically).
const SEGMENT_ORDER: &[&str] = &["new", "regular", "vip", "lapsed", ANONYMOUS];

/// How far back visits teach the dwell time.
pub const HISTORY_DAYS: i64 = 14;

/// Visits a segment needs before its learned dwell replaces the services' expected time: with
/// fewer, one long visit would swing the median.
pub const MIN_VISITS: usize = 3;

/// A customer waiting now (a turn waiting, called or parked).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Waiting {
    /// The customer's segment from the profile cache; `None`: anonymous.
    pub segment: Option<String>,
    /// The service letter.
    pub service: String,
}

/// A past visit: a turn issued and served, and when its survey was answered, if it was.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Visit {
    /// The customer's segment; `None`: anonymous.
    pub segment: Option<String>,
    /// When the turn was issued.
    pub issued_at: OffsetDateTime,
    /// When it was served (finished at the counter).
    pub served_at: OffsetDateTime,
    /// When its survey was answered on the way out, if it was.
    pub surveyed_at: Option<OffsetDateTime>,
}

/// Where a segment's dwell time comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DwellSource {
    /// The median of the segment's visits over the last [`HISTORY_DAYS`] days.
    Learned,
    /// Too few visits: the expected minutes of the services (site config).
    Expected,
}

/// One segment in the picture.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SegmentPicture {
    /// `new`, `regular`, `vip`, `lapsed` or `anonymous`.
    pub segment: String,
    /// Customers of the segment waiting now.
    pub waiting: u32,
    /// Their share of everyone waiting (0 to 1; 0 when nobody waits).
    pub weight: f64,
    /// How long the segment stays, issue to served, in seconds.
    pub dwell_s: u32,
    /// Whether `dwell_s` was learned or is the services' expected time.
    pub dwell_source: DwellSource,
    /// Visits behind a learned dwell.
    pub visits: u32,
    /// Issue to survey answer (the way out), median, where enough visits answered one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to_survey_s: Option<u32>,
}

/// The store now.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StorePicture {
    /// When it was computed (store time).
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
    /// Customers waiting.
    pub waiting: u32,
    /// Of them, with a known card.
    pub identified: u32,
    /// Of them, without one.
    pub anonymous: u32,
    /// Per segment: the segments waiting now, then those with a learned dwell.
    pub segments: Vec<SegmentPicture>,
    /// People the counter on the presence input saw enter today (`None`: no counter).
    pub people_entered_today: Option<u32>,
}

impl StorePicture {
    /// An empty store at `at`.
    pub fn empty(at: OffsetDateTime) -> Self {
        StorePicture {
            at,
            waiting: 0,
            identified: 0,
            anonymous: 0,
            segments: Vec::new(),
            people_entered_today: None,
        }
    }

    /// The segment's entry, if listed.
    pub fn segment(&self, segment: &str) -> Option<&SegmentPicture> {
        self.segments.iter().find(|s| s.segment == segment)
    }

    /// The segments waiting now with their counts (what a `content_played` names as audience).
    pub fn audience(&self) -> Vec<(String, u32)> {
        self.segments
            .iter()
            .filter(|s| s.waiting > 0)
            .map(|s| (s.segment.clone(), s.waiting))
            .collect()
    }
}

/// The learned dwell of a segment: the median of its visits since `now - HISTORY_DAYS`.
fn median_s(mut samples: Vec<i64>) -> Option<u32> {
    if samples.len() < MIN_VISITS {
        return None;
    }
    samples.sort_unstable();
    let n = samples.len();
    let m = if n % 2 == 1 {
        samples[n / 2]
    } else {
        (samples[n / 2 - 1] + samples[n / 2]) / 2
    };
    u32::try_from(m.max(0)).ok()
}

fn segment_key(segment: &Option<String>) -> String {
    segment.clone().unwrap_or_else(|| ANONYMOUS.to_owned())
}

fn order(segment: &str) -> (usize, String) {
    let rank = SEGMENT_ORDER
        .iter()
        .position(|s| *s == segment)
        .unwrap_or(SEGMENT_ORDER.len());
    (rank, segment.to_owned())
}

/// The picture at `now`: `waiting` customers, dwell learned from `visits` (older than
/// [`HISTORY_DAYS`] ignored), falling back to the expected seconds of the services the segment
/// waits for (`expected_s`, per service letter; `default_expected_s` for a service not in it or
/// a segment waiting for nothing).
pub fn picture(
    waiting: &[Waiting],
    visits: &[Visit],
    expected_s: &BTreeMap<String, u32>,
    default_expected_s: u32,
    people_entered_today: Option<u32>,
    now: OffsetDateTime,
) -> StorePicture {
    let since = now - Duration::days(HISTORY_DAYS);
    let mut served: BTreeMap<String, Vec<i64>> = BTreeMap::new();
    let mut surveyed: BTreeMap<String, Vec<i64>> = BTreeMap::new();
    for v in visits
        .iter()
        .filter(|v| v.issued_at >= since && v.served_at >= v.issued_at)
    {
        let key = segment_key(&v.segment);
        served
            .entry(key.clone())
            .or_default()
            .push((v.served_at - v.issued_at).whole_seconds());
        if let Some(s) = v.surveyed_at.filter(|s| *s >= v.issued_at) {
            surveyed
                .entry(key)
                .or_default()
                .push((s - v.issued_at).whole_seconds());
        }
    }
    let mut now_waiting: BTreeMap<String, (u32, Vec<&str>)> = BTreeMap::new();
    for w in waiting {
        let e = now_waiting.entry(segment_key(&w.segment)).or_default();
        e.0 += 1;
        e.1.push(&w.service);
    }
    let total: u32 = now_waiting.values().map(|(n, _)| n).sum();
    let anonymous = now_waiting.get(ANONYMOUS).map_or(0, |(n, _)| *n);
    let mut keys: Vec<String> = now_waiting
        .keys()
        .chain(
            served
                .iter()
                .filter(|(_, v)| v.len() >= MIN_VISITS)
                .map(|(k, _)| k),
        )
        .cloned()
        .collect();
    keys.sort_by_key(|k| order(k));
    keys.dedup();
    let segments = keys
        .into_iter()
        .map(|segment| {
            let (count, services) = now_waiting.get(&segment).cloned().unwrap_or_default();
            let samples = served.get(&segment).cloned().unwrap_or_default();
            let visits = u32::try_from(samples.len()).unwrap_or(u32::MAX);
            let learned = median_s(samples);
            let expected = if services.is_empty() {
                default_expected_s
            } else {
                let sum: u64 = services
                    .iter()
                    .map(|s| u64::from(*expected_s.get(*s).unwrap_or(&default_expected_s)))
                    .sum();
                u32::try_from(sum / services.len() as u64).unwrap_or(default_expected_s)
            };
            SegmentPicture {
                weight: if total == 0 {
                    0.0
                } else {
                    f64::from(count) / f64::from(total)
                },
                waiting: count,
                dwell_s: learned.unwrap_or(expected),
                dwell_source: if learned.is_some() {
                    DwellSource::Learned
                } else {
                    DwellSource::Expected
                },
                visits,
                to_survey_s: surveyed.get(&segment).cloned().and_then(median_s),
                segment,
            }
        })
        .collect();
    StorePicture {
        at: now,
        waiting: total,
        identified: total - anonymous,
        anonymous,
        segments,
        people_entered_today,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    fn wait(segment: Option<&str>, service: &str) -> Waiting {
        Waiting {
            segment: segment.map(str::to_owned),
            service: service.to_owned(),
        }
    }

    fn visit(segment: Option<&str>, days_ago: i64, minutes: i64, survey_min: Option<i64>) -> Visit {
        let issued = datetime!(2026-03-20 10:00 UTC) - Duration::days(days_ago);
        Visit {
            segment: segment.map(str::to_owned),
            issued_at: issued,
            served_at: issued + Duration::minutes(minutes),
            surveyed_at: survey_min.map(|m| issued + Duration::minutes(m)),
        }
    }

    fn expected() -> BTreeMap<String, u32> {
        BTreeMap::from([("A".to_owned(), 300), ("B".to_owned(), 900)])
    }

    #[test]
    fn weights_are_each_segments_share_of_those_waiting_and_anonymous_counts_apart() {
        let w = [
            wait(Some("vip"), "A"),
            wait(Some("regular"), "A"),
            wait(Some("regular"), "B"),
            wait(None, "A"),
        ];
        let p = picture(
            &w,
            &[],
            &expected(),
            300,
            Some(12),
            datetime!(2026-03-20 10:00 UTC),
        );
        assert_eq!((p.waiting, p.identified, p.anonymous), (4, 3, 1));
        let names: Vec<_> = p.segments.iter().map(|s| s.segment.as_str()).collect();
        assert_eq!(names, ["regular", "vip", "anonymous"]);
        assert_eq!(p.segment("regular").unwrap().weight, 0.5);
        assert_eq!(p.segment("vip").unwrap().weight, 0.25);
        assert_eq!(p.people_entered_today, Some(12));
        assert_eq!(
            p.audience(),
            [
                ("regular".to_owned(), 2),
                ("vip".to_owned(), 1),
                ("anonymous".to_owned(), 1)
            ]
        );
    }

    #[test]
    fn dwell_is_the_median_of_recent_visits_and_old_visits_are_forgotten() {
        let visits = [
            visit(Some("vip"), 1, 4, Some(6)),
            visit(Some("vip"), 2, 10, None),
            visit(Some("vip"), 3, 6, Some(9)),
            visit(Some("vip"), 5, 8, Some(12)),
            // Older than 14 days: ignored however long.
            visit(Some("vip"), 20, 300, None),
        ];
        let p = picture(
            &[wait(Some("vip"), "A")],
            &visits,
            &expected(),
            300,
            None,
            datetime!(2026-03-20 10:00 UTC),
        );
        let vip = p.segment("vip").unwrap();
        assert_eq!(vip.dwell_source, DwellSource::Learned);
        assert_eq!(vip.visits, 4);
        assert_eq!(vip.dwell_s, 7 * 60, "median of 4, 6, 8 and 10 minutes");
        assert_eq!(
            vip.to_survey_s,
            Some(9 * 60),
            "median of 6, 9 and 12 minutes"
        );
    }

    #[test]
    fn a_segment_with_few_visits_falls_back_to_the_expected_time_of_its_services() {
        let visits = [
            visit(Some("new"), 1, 50, None),
            visit(Some("new"), 2, 50, None),
        ];
        let p = picture(
            &[wait(Some("new"), "A"), wait(Some("new"), "B")],
            &visits,
            &expected(),
            300,
            None,
            datetime!(2026-03-20 10:00 UTC),
        );
        let new = p.segment("new").unwrap();
        assert_eq!(new.dwell_source, DwellSource::Expected);
        assert_eq!(new.dwell_s, 600, "mean of A (5 min) and B (15 min)");
        assert_eq!(new.to_survey_s, None);
    }

    #[test]
    fn segments_with_a_learned_dwell_are_listed_even_when_nobody_of_them_waits() {
        let visits = [
            visit(Some("lapsed"), 1, 3, None),
            visit(Some("lapsed"), 2, 5, None),
            visit(Some("lapsed"), 3, 4, None),
        ];
        let p = picture(
            &[],
            &visits,
            &expected(),
            300,
            None,
            datetime!(2026-03-20 10:00 UTC),
        );
        assert_eq!(p.waiting, 0);
        let lapsed = p.segment("lapsed").unwrap();
        assert_eq!(
            (lapsed.waiting, lapsed.weight, lapsed.dwell_s),
            (0, 0.0, 240)
        );
        assert!(p.audience().is_empty());
    }
}
