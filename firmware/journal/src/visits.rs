//! Past visits, for the store picture's dwell times (`kiosk_core::audience`): the served turns
//! of the last days (issue to served) and when their surveys were answered, read back from the
//! turn rows and the journal's `survey_answered` events.

use kiosk_core::audience::Visit;
use kiosk_core::queue::{ServiceDay, Turn, TurnStatus};
use kiosk_protocol::CardToken;
use kiosk_protocol::events::Event;
use std::collections::HashMap;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::db::{DbError, KioskDb};

fn corrupt(what: &'static str) -> impl Fn(String) -> DbError {
    move |message| DbError::Corrupt { what, message }
}

/// A served turn: its customer's card (to find the segment), issue and service times.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServedTurn {
    /// The customer, if they tapped a card.
    pub card_token: Option<CardToken>,
    /// The visit, without a segment yet.
    pub issued_at: OffsetDateTime,
    /// When it was served.
    pub served_at: OffsetDateTime,
    /// When its survey was answered, if it was.
    pub surveyed_at: Option<OffsetDateTime>,
}

impl ServedTurn {
    /// The visit, with the segment the caller found for the card.
    pub fn visit(&self, segment: Option<String>) -> Visit {
        Visit {
            segment,
            issued_at: self.issued_at,
            served_at: self.served_at,
            surveyed_at: self.surveyed_at,
        }
    }
}

impl KioskDb {
    /// The turns served since service day `from` (this kiosk's and those it learned from the
    /// store's other kiosks), with their survey answers' times.
    pub fn served_since(&self, from: ServiceDay) -> Result<Vec<ServedTurn>, DbError> {
        let j = self.journal();
        let from = from.to_string();
        let mut surveys: HashMap<Uuid, OffsetDateTime> = HashMap::new();
        {
            let mut st = j
                .sql()
                .prepare(
                    "SELECT seq FROM events WHERE type = 'survey_answered' AND wall_time >= ?1",
                )
                .map_err(|e| corrupt("survey answers")(e.to_string()))?;
            let seqs: Vec<i64> = st
                .query_map([&from], |r| r.get(0))
                .and_then(|rows| rows.collect())
                .map_err(|e| corrupt("survey answers")(e.to_string()))?;
            for seq in seqs {
                let Some(env) = j.envelope(u64::try_from(seq).unwrap_or_default())? else {
                    continue;
                };
                if let Event::SurveyAnswered(a) = env.event {
                    if let Some(turn) = a.turn_id {
                        surveys.insert(turn, env.wall_time);
                    }
                }
            }
        }
        let mut st = j
            .sql()
            .prepare(
                "SELECT turn_id, body FROM turns WHERE business_day >= ?1 AND state = 'served'",
            )
            .map_err(|e| corrupt("turns")(e.to_string()))?;
        let rows: Vec<(String, String)> = st
            .query_map([&from], |r| Ok((r.get(0)?, r.get(1)?)))
            .and_then(|rows| rows.collect())
            .map_err(|e| corrupt("turns")(e.to_string()))?;
        let mut out = Vec::with_capacity(rows.len());
        for (id, body) in rows {
            let plain = j
                .open_sealed(&body, id.as_bytes())
                .map_err(|e| corrupt("turn")(e.to_string()))?;
            let turn: Turn =
                serde_json::from_slice(&plain).map_err(|e| corrupt("turn")(e.to_string()))?;
            let (TurnStatus::Served, Some(served_at)) = (turn.status, turn.finished_at) else {
                continue;
            };
            out.push(ServedTurn {
                surveyed_at: surveys.get(&turn.id).copied(),
                card_token: turn.card_token,
                issued_at: turn.issued_at,
                served_at,
            });
        }
        Ok(out)
    }

    /// Entries the people counter journaled (`people_counted`) since `since`.
    pub fn people_counted_since(&self, since: OffsetDateTime) -> Result<u32, DbError> {
        let j = self.journal();
        // At most one event per 5-minute period: the newest 1,000 span more than three days.
        let mut st = j
            .sql()
            .prepare(
                "SELECT seq, wall_time FROM events WHERE type = 'people_counted' \
                 ORDER BY seq DESC LIMIT 1000",
            )
            .map_err(|e| corrupt("people counted")(e.to_string()))?;
        let rows: Vec<(i64, String)> = st
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .and_then(|rows| rows.collect())
            .map_err(|e| corrupt("people counted")(e.to_string()))?;
        let mut total = 0u32;
        for (seq, wall_time) in rows {
            let at =
                OffsetDateTime::parse(&wall_time, &time::format_description::well_known::Rfc3339)
                    .map_err(|e| corrupt("people counted")(e.to_string()))?;
            if at < since {
                continue;
            }
            if let Some(env) = j.envelope(u64::try_from(seq).unwrap_or_default())? {
                if let Event::PeopleCounted(p) = env.event {
                    total = total.saturating_add(p.entries);
                }
            }
        }
        Ok(total)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use kiosk_core::journey::Locale;
    use kiosk_core::queue::{IssueRequest, Queue, QueueSettings, ServiceDef};
    use kiosk_protocol::events::{PeopleCounted, SurveyAnswered};
    use time::macros::{datetime, time};
    use tokio::sync::Notify;

    use super::*;
    use crate::clock::ManualClock;
    use crate::crypto::DeviceKey;
    use crate::{Identity, Journal, Options};

    fn open(path: &std::path::Path, clock: Arc<ManualClock>) -> KioskDb {
        let journal = Journal::open(
            path,
            Identity {
                kiosk_id: "k-test".into(),
                boot_id: Uuid::new_v4(),
            },
            clock,
            DeviceKey::generate(),
            &Options::default(),
        )
        .unwrap()
        .journal;
        KioskDb::new(journal, Arc::new(Notify::new()), None)
    }

    fn settings() -> QueueSettings {
        QueueSettings::new(
            vec![ServiceDef {
                letter: "A".into(),
                name: kiosk_core::locale::Localized::new("Caja", "Cashier"),
                priority_allowed: false,
                expected_s: 300,
            }],
            time!(08:00),
        )
    }

    fn commit(db: &KioskDb, queue: &mut Queue, change: kiosk_core::queue::Change) {
        db.commit_change(&change).unwrap();
        queue.apply(&change);
    }

    #[test]
    fn served_turns_come_back_with_their_card_and_survey_time_and_waiting_ones_do_not() {
        let dir = tempfile::tempdir().unwrap();
        let clock = Arc::new(ManualClock::new(datetime!(2026-11-23 10:20 UTC)));
        let db = open(&dir.path().join("journal.db"), clock);
        let at = datetime!(2026-11-23 10:00 UTC);
        let day = ServiceDay::at(at, time!(08:00));
        let mut queue = db.load_queue(settings(), day).unwrap();
        let card = CardToken::from_bytes([3; 16]);
        let mut ids = Vec::new();
        for token in [Some(card.clone()), None] {
            let id = Uuid::now_v7();
            let plan = queue
                .plan_issue(
                    IssueRequest {
                        turn_id: id,
                        service: "A".into(),
                        priority: false,
                        card_token: token,
                        campaign_id: None,
                        locale: Locale::Es,
                    },
                    at,
                )
                .unwrap();
            commit(&db, &mut queue, plan.change);
            ids.push(id);
        }
        let call = queue
            .plan_call_next("1", &[], at + time::Duration::minutes(4))
            .unwrap()
            .unwrap();
        commit(&db, &mut queue, call);
        let served = queue
            .plan_served(ids[0], "1", at + time::Duration::minutes(7))
            .unwrap();
        commit(&db, &mut queue, served);
        // Its survey, answered on the way out (the journal's clock says when).
        db.append(Event::SurveyAnswered(SurveyAnswered {
            turn_id: Some(ids[0]),
            score: 9,
            reason: None,
            card_token: Some(card.clone()),
        }))
        .unwrap();
        let visits = db.served_since(day).unwrap();
        assert_eq!(visits.len(), 1, "the waiting turn is no visit yet");
        let v = &visits[0];
        assert_eq!(v.card_token.as_ref(), Some(&card));
        assert_eq!(v.served_at - v.issued_at, time::Duration::minutes(7));
        assert_eq!(v.surveyed_at, Some(datetime!(2026-11-23 10:20 UTC)));
        assert!(
            db.served_since(ServiceDay::at(
                datetime!(2026-11-24 10:00 UTC),
                time!(08:00)
            ))
            .unwrap()
            .is_empty(),
            "from a later day: nothing"
        );
    }

    #[test]
    fn people_counted_since_sums_the_periods_journaled_after_it() {
        let dir = tempfile::tempdir().unwrap();
        let clock = Arc::new(ManualClock::new(datetime!(2026-11-23 07:00 UTC)));
        let db = open(&dir.path().join("journal.db"), clock.clone());
        let count = |entries| {
            Event::PeopleCounted(PeopleCounted {
                entries,
                period_s: 300,
            })
        };
        db.append(count(4)).unwrap();
        clock.set_wall(datetime!(2026-11-23 09:00 UTC));
        db.append(count(5)).unwrap();
        db.append(count(6)).unwrap();
        assert_eq!(
            db.people_counted_since(datetime!(2026-11-23 08:00 UTC))
                .unwrap(),
            11,
            "yesterday evening's 4 are not today's"
        );
        assert_eq!(
            db.people_counted_since(datetime!(2026-11-23 06:00 UTC))
                .unwrap(),
            15
        );
    }
}
