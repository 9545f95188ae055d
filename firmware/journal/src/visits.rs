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
