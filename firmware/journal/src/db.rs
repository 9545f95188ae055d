//! The kiosk's state on disk, on top of the journal: the turn queue's rows and day counters, the
//! profile and campaign caches the sync feed fills, and the two seams of the sync worker
//! ([`Outbox`], [`FeedSink`]).
//!
//! Every queue step commits its turn rows, its day counter and its events in one journal
//! transaction, so a turn number is never issued twice, even across a crash between steps.
//! Turn rows and cached profiles are sealed with the device key (they name a card and a person).

use std::sync::{Arc, Mutex, MutexGuard};

use kiosk_protocol::CardToken;
use kiosk_protocol::events::Event;
use kiosk_protocol::wire::{Campaign as WireCampaign, FeedItem, Profile};
use kiosk_sync::{Backlog, BoxError, FeedSink, Outbox, OutboxEvent};
use rusqlite::{OptionalExtension, params};
use tokio::sync::{Notify, mpsc};

use crate::{Appended, Journal, JournalError};

use kiosk_core::journey::Input;
use kiosk_core::queue::{Change, DayCounter, Queue, QueueSettings, ServiceDay, Turn};

/// Setting key of the sync feed cursor.
const FEED_CURSOR: &str = "sync.feed_cursor";
/// Prefix of the queue's day counters in the journal's counter table.
const TURN_COUNTER: &str = "turn";

/// A kiosk database error: the journal failed, or a row could not be read back.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    /// The journal failed.
    #[error(transparent)]
    Journal(#[from] JournalError),
    /// A row did not read back (sealed with another key, or not the expected JSON).
    #[error("cannot read {what} from the journal: {message}")]
    Corrupt {
        /// What was read.
        what: &'static str,
        /// Why it failed.
        message: String,
    },
}

fn sql(what: &'static str) -> impl Fn(rusqlite::Error) -> DbError {
    move |e| DbError::Corrupt {
        what,
        message: e.to_string(),
    }
}

/// The journal and the caches around it, shared by the engine, the sync worker and status pages.
#[derive(Clone)]
pub struct KioskDb {
    journal: Arc<Mutex<Journal>>,
    appended: Arc<Notify>,
    erasures: Option<mpsc::Sender<Input>>,
    /// Bumped to the version of every newer store configuration the feed brings.
    store_config: Arc<tokio::sync::watch::Sender<u64>>,
}

impl std::fmt::Debug for KioskDb {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KioskDb").finish_non_exhaustive()
    }
}

impl KioskDb {
    /// The kiosk database over `journal`. `appended` is poked after every append (the sync worker waits on
    /// it); erasures from the feed are also sent to `erasures` (the engine's inputs) so the
    /// screen forgets the person at once.
    pub fn new(
        journal: Journal,
        appended: Arc<Notify>,
        erasures: Option<mpsc::Sender<Input>>,
    ) -> Self {
        KioskDb {
            journal: Arc::new(Mutex::new(journal)),
            appended,
            erasures,
            store_config: Arc::new(tokio::sync::watch::Sender::new(0)),
        }
    }

    /// Changes to the version of the latest store configuration the feed brought (the executor
    /// waits on it).
    pub fn store_config_changes(&self) -> tokio::sync::watch::Receiver<u64> {
        self.store_config.subscribe()
    }

    /// The journal, locked. A panic while it was held leaves SQLite consistent (every change is
    /// a transaction), so a poisoned lock is still usable.
    pub fn journal(&self) -> MutexGuard<'_, Journal> {
        self.journal
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Wakes the sync worker (after events were appended in a transaction of another module).
    pub(crate) fn notify_appended(&self) {
        self.appended.notify_one();
    }

    /// Appends one event durably and wakes the sync worker.
    pub fn append(&self, event: Event) -> Result<Appended, DbError> {
        let appended = self.journal().append(event)?;
        self.appended.notify_one();
        Ok(appended)
    }

    /// The queue as persisted: counters and turns of today and yesterday's service day (older
    /// turns are history: they are in the journal's events).
    pub fn load_queue(&self, settings: QueueSettings, today: ServiceDay) -> Result<Queue, DbError> {
        let j = self.journal();
        let from = today.previous().to_string();
        let mut counters = Vec::new();
        {
            let mut st = j
                .sql()
                .prepare("SELECT name, value FROM counters WHERE name LIKE 'turn:%'")
                .map_err(sql("day counters"))?;
            let rows = st
                .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))
                .map_err(sql("day counters"))?;
            for row in rows {
                let (name, value) = row.map_err(sql("day counters"))?;
                let mut parts = name.splitn(3, ':');
                let (Some(_), Some(day), Some(service)) =
                    (parts.next(), parts.next(), parts.next())
                else {
                    continue;
                };
                if day < from.as_str() {
                    continue;
                }
                let service_day: ServiceDay = day.parse().map_err(|e| DbError::Corrupt {
                    what: "day counter",
                    message: format!("{name}: {e}"),
                })?;
                counters.push(DayCounter {
                    service_day,
                    service: service.to_owned(),
                    last_number: u32::try_from(value).unwrap_or(u32::MAX),
                });
            }
        }
        let mut turns = Vec::new();
        {
            let mut st = j
                .sql()
                .prepare(
                    "SELECT turn_id, body FROM turns WHERE business_day >= ?1 \
                     ORDER BY business_day, issued_at",
                )
                .map_err(sql("turns"))?;
            let rows = st
                .query_map([&from], |r| {
                    Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?))
                })
                .map_err(sql("turns"))?;
            for row in rows {
                let (id, body) = row.map_err(sql("turns"))?;
                let plain = j
                    .open_sealed(&body, id.as_bytes())
                    .map_err(|e| DbError::Corrupt {
                        what: "turn",
                        message: e.to_string(),
                    })?;
                let turn: Turn = serde_json::from_slice(&plain).map_err(|e| DbError::Corrupt {
                    what: "turn",
                    message: e.to_string(),
                })?;
                turns.push(turn);
            }
        }
        Ok(Queue::restore(settings, counters, turns))
    }

    /// Commits one queue step: its turn rows, its day counter and its events, in one transaction.
    pub fn commit_change(&self, change: &Change) -> Result<Vec<Appended>, DbError> {
        let appended = self.journal().transaction(|tx| {
            for turn in &change.upserts {
                let id = turn.id.to_string();
                let json = serde_json::to_vec(turn).map_err(|e| DbError::Corrupt {
                    what: "turn",
                    message: e.to_string(),
                })?;
                let body = tx.seal(&json, id.as_bytes());
                tx.sql()
                    .execute(
                        "INSERT INTO turns (turn_id, business_day, service, number, label, priority, \
                         state, issued_at, called_at, counter, finished_at, card_token, body) \
                         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, NULL, ?12) \
                         ON CONFLICT(turn_id) DO UPDATE SET state = excluded.state, \
                         called_at = excluded.called_at, counter = excluded.counter, \
                         finished_at = excluded.finished_at, body = excluded.body",
                        params![
                            id,
                            turn.service_day.to_string(),
                            turn.service,
                            turn.number,
                            turn.label(),
                            turn.priority,
                            serde_json::to_value(turn.status)
                                .ok()
                                .and_then(|v| v.as_str().map(str::to_owned))
                                .unwrap_or_default(),
                            rfc3339(turn.issued_at),
                            turn.last_called_at.map(rfc3339),
                            turn.counter,
                            turn.finished_at.map(rfc3339),
                            body,
                        ],
                    )
                    .map_err(sql("turns"))?;
            }
            if let Some(c) = &change.counter {
                tx.counter_raise(
                    &format!("{TURN_COUNTER}:{}:{}", c.service_day, c.service),
                    i64::from(c.last_number),
                )?;
            }
            let mut out = Vec::with_capacity(change.events.len());
            for e in &change.events {
                out.push(tx.append(e.clone())?);
            }
            Ok::<_, DbError>(out)
        })?;
        if !appended.is_empty() {
            self.appended.notify_one();
        }
        Ok(appended)
    }

    /// The cached profile of `token`, unless the customer was erased.
    pub fn profile(&self, token: &CardToken) -> Result<Option<Profile>, DbError> {
        let j = self.journal();
        let body: Option<String> = j
            .sql()
            .query_row(
                "SELECT body FROM profiles WHERE card_token = ?1 \
                 AND card_token NOT IN (SELECT card_token FROM erased_tokens)",
                [token.as_str()],
                |r| r.get(0),
            )
            .optional()
            .map_err(sql("profile"))?;
        let Some(body) = body else { return Ok(None) };
        let plain = j
            .open_sealed(&body, token.as_str().as_bytes())
            .map_err(|e| DbError::Corrupt {
                what: "profile",
                message: e.to_string(),
            })?;
        serde_json::from_slice(&plain)
            .map(Some)
            .map_err(|e| DbError::Corrupt {
                what: "profile",
                message: e.to_string(),
            })
    }

    /// Caches a profile (sealed), unless the customer was erased.
    pub fn save_profile(&self, profile: &Profile) -> Result<(), DbError> {
        let j = self.journal();
        let sealed = seal_profile(&j, profile)?;
        let now = rfc3339(time::OffsetDateTime::now_utc());
        upsert_profile(j.sql(), profile.card_token.as_str(), &sealed, &now)
    }

    /// The cached campaigns.
    pub fn campaigns(&self) -> Result<Vec<WireCampaign>, DbError> {
        let j = self.journal();
        let mut st = j
            .sql()
            .prepare("SELECT body FROM campaigns ORDER BY campaign_id")
            .map_err(sql("campaigns"))?;
        let rows = st
            .query_map([], |r| r.get::<_, String>(0))
            .map_err(sql("campaigns"))?;
        let mut out = Vec::new();
        for row in rows {
            let body = row.map_err(sql("campaigns"))?;
            match serde_json::from_str(&body) {
                Ok(c) => out.push(c),
                Err(e) => tracing::warn!(error = %e, "skipping an unreadable cached campaign"),
            }
        }
        Ok(out)
    }

    /// How many profiles are cached.
    pub fn profile_count(&self) -> Result<u64, DbError> {
        self.journal()
            .sql()
            .query_row("SELECT count(*) FROM profiles", [], |r| r.get::<_, i64>(0))
            .map(|n| u64::try_from(n).unwrap_or(0))
            .map_err(sql("profiles"))
    }
}

fn rfc3339(t: time::OffsetDateTime) -> String {
    t.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

/// Seals a profile with the device key (the card token is the associated data).
fn seal_profile(journal: &Journal, profile: &Profile) -> Result<String, DbError> {
    let json = serde_json::to_vec(profile).map_err(|e| DbError::Corrupt {
        what: "profile",
        message: e.to_string(),
    })?;
    Ok(journal.seal(&json, profile.card_token.as_str().as_bytes()))
}

/// Inserts or replaces a sealed profile row, unless the token was erased.
fn upsert_profile(
    conn: &rusqlite::Connection,
    token: &str,
    sealed: &str,
    now: &str,
) -> Result<(), DbError> {
    conn.execute(
        "INSERT INTO profiles (card_token, body, updated_at) \
         SELECT ?1, ?2, ?3 WHERE ?1 NOT IN (SELECT card_token FROM erased_tokens) \
         ON CONFLICT(card_token) DO UPDATE SET body = excluded.body, updated_at = excluded.updated_at",
        params![token, sealed, now],
    )
    .map_err(sql("profile"))?;
    Ok(())
}

impl Outbox for KioskDb {
    fn pending(&self, max_events: usize, max_bytes: usize) -> Result<Vec<OutboxEvent>, BoxError> {
        let events = self.journal().pending(max_events, max_bytes)?;
        Ok(events
            .into_iter()
            .map(|e| OutboxEvent {
                seq: e.seq,
                id: e.id,
                json: e.body,
            })
            .collect())
    }

    fn acknowledge(&self, seqs: &[u64]) -> Result<(), BoxError> {
        self.journal().acknowledge(seqs)?;
        Ok(())
    }

    fn oldest_after(&self, seq: u64) -> Result<Option<String>, BoxError> {
        Ok(self.journal().oldest_after(seq)?)
    }

    fn dead_letter(&self, seq: u64, reason: &str) -> Result<(), BoxError> {
        self.journal().dead_letter(seq, reason)?;
        Ok(())
    }

    fn backlog(&self) -> Result<Backlog, BoxError> {
        let b = self.journal().backlog()?;
        Ok(Backlog {
            events: b.events,
            oldest_wall_time: b.oldest_wall_time,
        })
    }
}

impl FeedSink for KioskDb {
    fn cursor(&self) -> Result<Option<u64>, BoxError> {
        let value = self.journal().setting(FEED_CURSOR)?;
        Ok(value.and_then(|v| v.parse().ok()))
    }

    /// Applies the page in order. Campaigns and profiles commit with the cursor in one
    /// transaction; an erasure is its own transaction (it journals `customer_erased`), applied
    /// before anything after it. Re-applying a page after a crash changes nothing.
    fn apply(&self, items: Vec<FeedItem>, next_cursor: u64) -> Result<(), BoxError> {
        let mut erased = Vec::new();
        let mut new_config = None;
        let rated: Vec<uuid::Uuid> = items
            .iter()
            .filter_map(|i| match i {
                FeedItem::TurnRated(r) => Some(r.turn_id),
                _ => None,
            })
            .collect();
        {
            let mut j = self.journal();
            let mut batch: Vec<FeedItem> = Vec::new();
            for item in items {
                match item {
                    // Kept before the cursor moves past it: the executor checks it and applies it
                    // between two journeys (crate::store_config).
                    FeedItem::StoreConfig(c) => {
                        if crate::store_config::keep_received(j.sql(), &c)? {
                            new_config = Some(c.version);
                        }
                    }
                    FeedItem::Erasure(e) => {
                        apply_batch(&mut j, std::mem::take(&mut batch))?;
                        j.erase_customer(&e.card_token)?;
                        erased.push(e.card_token);
                    }
                    other => batch.push(other),
                }
            }
            apply_batch(&mut j, batch)?;
            j.set_setting(FEED_CURSOR, &next_cursor.to_string())?;
        }
        if let Some(version) = new_config {
            self.store_config.send_replace(version);
        }
        if !erased.is_empty() {
            self.appended.notify_one();
        }
        if let Some(tx) = &self.erasures {
            for token in erased {
                // The engine may be gone at shutdown; the journal has the erasure either way.
                let _ = tx.blocking_send(Input::CustomerErased { token });
            }
            for turn_id in rated {
                // The store's `rate` mark is the executor's to take (a replicated op).
                let _ = tx.blocking_send(Input::TurnRatedElsewhere { turn_id });
            }
        }
        Ok(())
    }
}

fn apply_batch(j: &mut Journal, items: Vec<FeedItem>) -> Result<(), DbError> {
    if items.is_empty() {
        return Ok(());
    }
    let now = rfc3339(time::OffsetDateTime::now_utc());
    // Seal outside the transaction (the closure borrows the journal mutably).
    let mut profiles = Vec::new();
    let mut campaigns = Vec::new();
    for item in items {
        match item {
            FeedItem::Profile(p) => {
                let sealed = seal_profile(j, &p)?;
                profiles.push((p.card_token.as_str().to_owned(), sealed));
            }
            FeedItem::Campaign(c) => campaigns.push(c),
            FeedItem::Erasure(_) => {}
            // Not a cache: the executor marks the turn rated in the store (see `apply`).
            FeedItem::TurnRated(_) => {}
            // Kept by `apply` (crate::store_config); a kind from a newer CRM is skipped.
            FeedItem::StoreConfig(_) | FeedItem::Unknown => {}
        }
    }
    j.transaction(|tx| {
        for (token, sealed) in &profiles {
            upsert_profile(tx.sql(), token, sealed, &now)?;
        }
        for c in &campaigns {
            if c.active {
                let body = serde_json::to_string(c).map_err(|e| DbError::Corrupt {
                    what: "campaign",
                    message: e.to_string(),
                })?;
                tx.sql()
                    .execute(
                        "INSERT INTO campaigns (campaign_id, body, updated_at) VALUES (?1, ?2, ?3) \
                         ON CONFLICT(campaign_id) DO UPDATE SET body = excluded.body, \
                         updated_at = excluded.updated_at",
                        params![c.id, body, now],
                    )
                    .map_err(sql("campaign"))?;
            } else {
                tx.sql()
                    .execute("DELETE FROM campaigns WHERE campaign_id = ?1", [&c.id])
                    .map_err(sql("campaign"))?;
            }
        }
        Ok::<_, DbError>(())
    })
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use kiosk_protocol::wire::{ConsentFlags, Erasure, Localized};
    use time::macros::{date, datetime, time};
    use uuid::Uuid;

    use super::*;
    use crate::clock::ManualClock;
    use crate::crypto::DeviceKey;
    use crate::{Identity, Options};
    use kiosk_core::journey::Locale;
    use kiosk_core::queue::{IssueRequest, ServiceDef};

    fn open(path: &Path, key: &DeviceKey) -> KioskDb {
        let journal = Journal::open(
            path,
            Identity {
                kiosk_id: "k-test".into(),
                boot_id: Uuid::new_v4(),
            },
            Arc::new(ManualClock::new(datetime!(2026-11-23 09:00 UTC))),
            key.clone(),
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

    fn issue(db: &KioskDb, queue: &mut Queue, at: time::OffsetDateTime) -> String {
        let plan = queue
            .plan_issue(
                IssueRequest {
                    turn_id: Uuid::now_v7(),
                    service: "A".into(),
                    priority: false,
                    card_token: Some(CardToken::from_bytes([3; 16])),
                    campaign_id: None,
                    locale: Locale::Es,
                },
                at,
            )
            .unwrap();
        db.commit_change(&plan.change).unwrap();
        queue.apply(&plan.change);
        plan.ticket.turn
    }

    fn profile(n: u8, name: &str) -> Profile {
        Profile {
            card_token: CardToken::from_bytes([n; 16]),
            display_name: name.into(),
            segment: "vip".into(),
            consent: ConsentFlags {
                profile: true,
                ..ConsentFlags::default()
            },
            locale: "es".into(),
        }
    }

    #[test]
    fn a_turn_rated_on_a_phone_goes_to_the_executor_and_journals_no_answer() {
        let dir = tempfile::tempdir().unwrap();
        let journal = Journal::open(
            &dir.path().join("journal.db"),
            Identity {
                kiosk_id: "k-test".into(),
                boot_id: Uuid::new_v4(),
            },
            Arc::new(ManualClock::new(datetime!(2026-11-23 09:00 UTC))),
            DeviceKey::generate(),
            &Options::default(),
        )
        .unwrap()
        .journal;
        let (tx, mut rx) = mpsc::channel(4);
        let db = KioskDb::new(journal, Arc::new(Notify::new()), Some(tx));
        let turn_id = Uuid::now_v7();
        db.apply(
            vec![FeedItem::TurnRated(kiosk_protocol::wire::TurnRated {
                turn_id,
            })],
            41,
        )
        .unwrap();
        assert_eq!(
            rx.try_recv().ok(),
            Some(Input::TurnRatedElsewhere { turn_id })
        );
        assert_eq!(db.cursor().unwrap(), Some(41));
        let answers: i64 = db
            .journal()
            .sql()
            .query_row(
                "SELECT count(*) FROM events WHERE type = 'survey_answered'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(
            answers, 0,
            "the CRM has the answer; the kiosk journals none"
        );
    }

    #[test]
    fn a_restarted_kiosk_continues_the_days_numbering_and_never_reissues_a_number() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("journal.db");
        let key = DeviceKey::generate();
        let at = datetime!(2026-11-23 10:00 UTC);
        let day = ServiceDay::at(at, time!(08:00));
        {
            let db = open(&path, &key);
            let mut queue = db.load_queue(settings(), day).unwrap();
            assert_eq!(issue(&db, &mut queue, at), "A-001");
            assert_eq!(issue(&db, &mut queue, at), "A-002");
        }
        let db = open(&path, &key);
        let mut queue = db.load_queue(settings(), day).unwrap();
        assert_eq!(queue.turns().len(), 2, "waiting turns come back");
        assert_eq!(issue(&db, &mut queue, at), "A-003");
        // The next service day starts again at 1.
        let tomorrow = datetime!(2026-11-24 08:30 UTC);
        assert_eq!(issue(&db, &mut queue, tomorrow), "A-001");
    }

    #[test]
    fn turn_rows_and_profiles_are_sealed_at_rest() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("journal.db");
        let db = open(&path, &DeviceKey::generate());
        let mut queue = db
            .load_queue(settings(), ServiceDay(date!(2026 - 11 - 23)))
            .unwrap();
        issue(&db, &mut queue, datetime!(2026-11-23 10:00 UTC));
        db.save_profile(&profile(7, "Zacarías")).unwrap();
        // The turn row names no card outside its sealed body (events carry the pseudonymous
        // token, which is what the CRM needs; the row is the kiosk's own state).
        let (column, body): (Option<String>, String) = db
            .journal()
            .sql()
            .query_row("SELECT card_token, body FROM turns", [], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })
            .unwrap();
        assert_eq!(column, None);
        assert!(!body.contains(&"03".repeat(16)));
        drop(db);
        let bytes = std::fs::read(&path).unwrap();
        let wal = std::fs::read(path.with_extension("db-wal")).unwrap_or_default();
        for haystack in [&bytes, &wal] {
            let text = String::from_utf8_lossy(haystack);
            assert!(!text.contains("Zacar"), "a name in clear at rest");
        }
    }

    /// A card holder's coupons of a campaign are counted from the `issue` ops that carry one,
    /// this kiosk's and its peers', each op once however often it arrives; an erasure forgets
    /// the count.
    #[test]
    fn coupons_handed_to_a_card_holder_are_counted_store_wide_once_per_op() {
        let dir = tempfile::tempdir().unwrap();
        let db = open(&dir.path().join("journal.db"), &DeviceKey::generate());
        let (ana, ben) = (
            CardToken::from_bytes([1; 16]),
            CardToken::from_bytes([2; 16]),
        );
        let opening = time!(08:00);
        let issue =
            |origin: &str, seq: u64, token: &CardToken, coupon: bool| kiosk_store::StoreOp {
                origin: origin.into(),
                seq,
                hlc: seq,
                at: datetime!(2026-11-23 09:00 UTC),
                step: kiosk_store::Step::Issue {
                    turn_id: Uuid::now_v7(),
                    service: "A".into(),
                    number: u32::try_from(seq).unwrap(),
                    tag: None,
                    priority: false,
                    card_token: Some(token.clone()),
                    campaign_id: Some("c1".into()),
                    locale: Locale::Es,
                    coupon,
                },
            };
        db.commit_store_op(&issue("k-test", 1, &ana, true), &[], opening)
            .unwrap();
        let peer = [issue("k-2", 1, &ana, true), issue("k-2", 2, &ana, false)];
        db.insert_store_ops(&peer, opening).unwrap();
        db.insert_store_ops(&peer, opening).unwrap();
        db.insert_store_ops(&[issue("k-2", 3, &ben, true)], opening)
            .unwrap();
        assert_eq!(db.coupons_issued(&ana, "c1").unwrap(), 2);
        assert_eq!(db.coupons_issued(&ben, "c1").unwrap(), 1);
        assert_eq!(db.coupons_issued(&ana, "other").unwrap(), 0);
        // Past the ops' pruning the count stays.
        db.prune_store_ops("2026-11-30".parse().unwrap()).unwrap();
        assert_eq!(db.coupons_issued(&ana, "c1").unwrap(), 2);
        db.journal().erase_customer(&ana).unwrap();
        assert_eq!(db.coupons_issued(&ana, "c1").unwrap(), 0);
        assert_eq!(db.coupons_issued(&ben, "c1").unwrap(), 1);
    }

    #[test]
    fn a_feed_page_applied_twice_changes_nothing_and_an_erasure_is_final() {
        let dir = tempfile::tempdir().unwrap();
        let db = open(&dir.path().join("journal.db"), &DeviceKey::generate());
        let campaign: WireCampaign = serde_json::from_value(serde_json::json!({
            "id": "c1", "name": "Coffee", "starts_on": "2026-01-01", "ends_on": "2026-12-31",
            "screen_text": {"es": "Café", "en": "Coffee"},
            "ticket_line": {"es": "Café", "en": "Coffee"}
        }))
        .unwrap();
        let page = vec![
            FeedItem::Campaign(campaign.clone()),
            FeedItem::Profile(profile(1, "Ana")),
            FeedItem::Profile(profile(2, "Ben")),
            FeedItem::Erasure(Erasure {
                card_token: CardToken::from_bytes([2; 16]),
                erased_at: datetime!(2026-11-23 09:00 UTC),
            }),
        ];
        db.apply(page.clone(), 4).unwrap();
        db.apply(page, 4).unwrap();
        assert_eq!(FeedSink::cursor(&db).unwrap(), Some(4));
        assert_eq!(db.campaigns().unwrap().len(), 1);
        let ana = db.profile(&CardToken::from_bytes([1; 16])).unwrap();
        assert_eq!(ana.unwrap().display_name, "Ana");
        assert!(
            db.profile(&CardToken::from_bytes([2; 16]))
                .unwrap()
                .is_none()
        );
        // A late profile for an erased customer does not bring them back.
        db.apply(vec![FeedItem::Profile(profile(2, "Ben"))], 5)
            .unwrap();
        assert!(
            db.profile(&CardToken::from_bytes([2; 16]))
                .unwrap()
                .is_none()
        );
        // A withdrawn campaign leaves the cache.
        let withdrawn = WireCampaign {
            active: false,
            screen_text: Localized::default(),
            ..campaign
        };
        db.apply(vec![FeedItem::Campaign(withdrawn)], 6).unwrap();
        assert!(db.campaigns().unwrap().is_empty());
    }

    #[test]
    fn the_outbox_hands_out_journaled_envelopes_and_forgets_acknowledged_ones() {
        let dir = tempfile::tempdir().unwrap();
        let db = open(&dir.path().join("journal.db"), &DeviceKey::generate());
        let mut queue = db
            .load_queue(settings(), ServiceDay(date!(2026 - 11 - 23)))
            .unwrap();
        issue(&db, &mut queue, datetime!(2026-11-23 10:00 UTC));
        issue(&db, &mut queue, datetime!(2026-11-23 10:01 UTC));
        let pending = Outbox::pending(&db, 10, 1 << 20).unwrap();
        assert_eq!(pending.len(), 2);
        let v: serde_json::Value = serde_json::from_str(&pending[0].json).unwrap();
        assert_eq!(v["type"], "ticket_issued");
        assert_eq!(db.backlog().unwrap().events, 2);
        db.acknowledge(&[pending[0].seq]).unwrap();
        assert_eq!(db.backlog().unwrap().events, 1);
        db.dead_letter(pending[1].seq, "rejected: test").unwrap();
        let left: Vec<_> = Outbox::pending(&db, 10, 1 << 20)
            .unwrap()
            .into_iter()
            .filter(|e| e.seq <= pending[1].seq)
            .collect();
        assert!(left.is_empty(), "{left:?}");
    }
}
