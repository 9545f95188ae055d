//! The customers page's queries (issue 21 item 3): search by card token, email, phone or name;
//! everything stored about one customer (the events that name their card token, their turns'
//! calls, services and survey answers, their coupons' redemptions); correcting a field; an
//! all-or-nothing import; and how far an erasure has reached the fleet (each kiosk's feed
//! cursor, recorded at every feed poll).
//!
//! Personal data is stored in plain columns at the endpoint (the server's disk encryption
//! protects it at rest, docs/SECURITY.md), so search is plain SQL bounded by [`MAX_HITS`]: an
//! email compared case-insensitively and whole, a phone by its digits (the typed number's digits
//! ending the stored one's, so `612 345 678` finds `+34 612345678`), a name by a case-insensitive
//! substring of at least [`MIN_NAME_CHARS`].

use std::collections::BTreeMap;

use kiosk_protocol::CardToken;
use serde::{Deserialize, Serialize};

use super::exec::{Exec, args};
use super::model::{DbResult, NewCustomer};

/// Most customers a search answers with.
pub const MAX_HITS: i64 = 50;
/// Fewest characters a name search takes (shorter would list half the customers).
pub const MIN_NAME_CHARS: usize = 2;
/// Most events of one customer a profile or an export reads (a customer visiting daily for
/// years stays far below).
pub const MAX_EVENTS: i64 = 20_000;

/// What to look for; any that is set matches.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CustomerSearch {
    /// Card tokens (typed, or made from a typed card number).
    pub tokens: Vec<CardToken>,
    /// An email, whole (compared case-insensitively).
    pub email: Option<String>,
    /// A phone number's digits (digits only: they go into a LIKE pattern).
    pub phone_digits: Option<String>,
    /// Part of a name (compared case-insensitively).
    pub name: Option<String>,
}

/// One customer found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct CustomerHit {
    /// Card token.
    pub card_token: CardToken,
    /// Name (absent before registration).
    pub display_name: Option<String>,
    /// Email.
    pub email: Option<String>,
    /// Phone.
    pub phone: Option<String>,
    /// Segment now.
    pub segment: String,
    /// Visits.
    pub visits: i64,
    /// Last visit, unix ms.
    pub last_visit_ms: Option<i64>,
}

/// See [`super::database::Database::search_customers`].
pub(crate) async fn search(e: &impl Exec, q: CustomerSearch) -> DbResult<Vec<CustomerHit>> {
    const COLS: &str =
        "SELECT card_token, display_name, email, phone, segment, visits, last_visit_ms
                        FROM customers WHERE ";
    // The phone's digits: what the kiosk's form and the import accept besides digits removed.
    const DIGITS: &str = "REPLACE(REPLACE(REPLACE(REPLACE(REPLACE(REPLACE(COALESCE(phone, ''), \
                          ' ', ''), '-', ''), '.', ''), '(', ''), ')', ''), '+', '')";
    let mut rows = Vec::new();
    for t in &q.tokens {
        rows.extend(
            e.query(&format!("{COLS}card_token = ?1"), args![t.as_str()])
                .await?,
        );
    }
    if let Some(email) = &q.email {
        rows.extend(
            e.query(
                &format!("{COLS}LOWER(email) = LOWER(?1) ORDER BY card_token LIMIT ?2"),
                args![email, MAX_HITS],
            )
            .await?,
        );
    }
    if let Some(d) = &q.phone_digits {
        rows.extend(
            e.query(
                &format!("{COLS}{DIGITS} LIKE ?1 ORDER BY card_token LIMIT ?2"),
                args![format!("%{d}"), MAX_HITS],
            )
            .await?,
        );
    }
    if let Some(name) = &q.name {
        rows.extend(
            e.query(
                &format!(
                    "{COLS}LOWER(display_name) LIKE ?1 ESCAPE '\\' ORDER BY display_name, card_token LIMIT ?2"
                ),
                args![format!("%{}%", like_escape(&name.to_lowercase())), MAX_HITS],
            )
            .await?,
        );
    }
    let mut seen = std::collections::BTreeSet::new();
    let mut out = Vec::new();
    for r in rows {
        let token: String = r.get(0)?;
        if !seen.insert(token.clone()) || out.len() as i64 >= MAX_HITS {
            continue;
        }
        out.push(CustomerHit {
            card_token: super::shared::token_of(token)?,
            display_name: r.get(1)?,
            email: r.get(2)?,
            phone: r.get(3)?,
            segment: r.get(4)?,
            visits: r.get(5)?,
            last_visit_ms: r.get(6)?,
        });
    }
    Ok(out)
}

fn like_escape(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('%', "\\%")
        .replace('_', "\\_")
}

/// One stored event that names the customer's card token.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct StoredEvent {
    /// Event id.
    pub id: String,
    /// Event type (`ticket_issued`, `consent_given`, ...).
    pub event_type: String,
    /// The kiosk that sent it.
    pub kiosk_id: String,
    /// Its store.
    pub store_id: String,
    /// When, unix ms (skew-corrected).
    pub at_ms: i64,
    /// The whole envelope as stored (a registration of an erased customer is redacted).
    pub envelope: serde_json::Value,
}

/// What happened to one of the customer's turns after it was issued.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct TurnFacts {
    /// First call, unix ms.
    pub called_ms: Option<i64>,
    /// Served, unix ms.
    pub served_ms: Option<i64>,
    /// The survey answer kept for the turn (its envelope), if any.
    pub survey: Option<StoredEvent>,
}

/// Everything stored about a customer besides the profile row.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CustomerHistory {
    /// Events naming the card token, oldest first (at most [`MAX_EVENTS`]).
    pub events: Vec<StoredEvent>,
    /// Per turn id of the customer's `ticket_issued` events.
    pub turns: BTreeMap<String, TurnFacts>,
    /// Per coupon code of the customer's `coupon_issued` events: its redemption (at_ms, kiosk).
    pub redemptions: BTreeMap<String, (i64, String)>,
    /// When the card token was last erased, unix ms.
    pub erased_ms: Option<i64>,
}

fn stored_event(r: &super::exec::Row) -> DbResult<StoredEvent> {
    let envelope: String = r.get(5)?;
    Ok(StoredEvent {
        id: r.get(0)?,
        event_type: r.get(1)?,
        kiosk_id: r.get(2)?,
        store_id: r.get(3)?,
        at_ms: r.get(4)?,
        envelope: serde_json::from_str(&envelope)?,
    })
}

const EVENT_COLS: &str = "e.id, e.type, e.kiosk_id, e.store_id, e.corrected_ms, e.envelope";

/// See [`super::database::Database::customer_history`].
pub(crate) async fn history(e: &impl Exec, token: CardToken) -> DbResult<CustomerHistory> {
    let t = token.as_str();
    let events = e
        .query(
            &format!(
                "SELECT {EVENT_COLS} FROM events e WHERE e.card_token = ?1
                 ORDER BY e.corrected_ms, e.seq LIMIT ?2"
            ),
            args![t, MAX_EVENTS],
        )
        .await?
        .iter()
        .map(stored_event)
        .collect::<DbResult<Vec<_>>>()?;
    let mut turns = BTreeMap::new();
    let mut redemptions = BTreeMap::new();
    for ev in &events {
        let payload = &ev.envelope["payload"];
        match ev.event_type.as_str() {
            "ticket_issued" => {
                let Some(turn_id) = payload["turn_id"].as_str() else {
                    continue;
                };
                let mut facts = TurnFacts::default();
                if let Some(r) = e
                    .query_opt(
                        "SELECT called_ms, served_ms FROM turns WHERE turn_id = ?1",
                        args![turn_id],
                    )
                    .await?
                {
                    facts.called_ms = r.get(0)?;
                    facts.served_ms = r.get(1)?;
                }
                facts.survey = e
                    .query_opt(
                        &format!(
                            "SELECT {EVENT_COLS} FROM survey_answers s JOIN events e ON e.id = s.event_id
                             WHERE s.turn_id = ?1"
                        ),
                        args![turn_id],
                    )
                    .await?
                    .map(|r| stored_event(&r))
                    .transpose()?;
                turns.insert(turn_id.to_owned(), facts);
            }
            "coupon_issued" => {
                let Some(code) = payload["coupon_code"].as_str() else {
                    continue;
                };
                if let Some(r) = e
                    .query_opt(
                        "SELECT e.corrected_ms, e.kiosk_id FROM campaign_facts f
                         JOIN events e ON e.id = f.event_id
                         WHERE f.kind = 'redeemed' AND f.dedupe_key = ?1",
                        args![code],
                    )
                    .await?
                {
                    redemptions.insert(code.to_owned(), (r.get(0)?, r.get(1)?));
                }
            }
            _ => {}
        }
    }
    let erased_ms = e
        .query_opt(
            "SELECT erased_ms FROM erasures WHERE card_token = ?1",
            args![t],
        )
        .await?
        .map(|r| r.get(0))
        .transpose()?;
    Ok(CustomerHistory {
        events,
        turns,
        redemptions,
        erased_ms,
    })
}

/// A consent change's purpose, time (unix ms) and the kiosk it came from (none: the admin API or
/// an import).
pub type ConsentKiosk = (String, i64, Option<String>);

/// The kiosk that sent each of the customer's consent changes, by the consent's time and
/// purpose (the consents table keeps the event id; admin-made consents have none).
pub(crate) async fn consent_kiosks(
    e: &impl Exec,
    token: &CardToken,
) -> DbResult<Vec<ConsentKiosk>> {
    e.query(
        "SELECT c.purpose, c.at_ms, e.kiosk_id FROM consents c LEFT JOIN events e ON e.id = c.event_id
         WHERE c.card_token = ?1 ORDER BY c.at_ms, c.id",
        args![token.as_str()],
    )
    .await?
    .iter()
    .map(|r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
    .collect()
}

/// A correction of a customer's fields; absent fields stay as they are.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CustomerCorrection {
    /// New name.
    pub display_name: Option<String>,
    /// New email (`Some(None)`: remove it).
    pub email: Option<Option<String>>,
    /// New phone (`Some(None)`: remove it).
    pub phone: Option<Option<String>>,
    /// New locale.
    pub locale: Option<String>,
}

/// See [`super::database::Database::correct_customer`]; in a transaction. False when there is
/// no such customer.
pub(crate) async fn correct(
    e: &impl Exec,
    token: CardToken,
    c: CustomerCorrection,
    now_ms: i64,
) -> DbResult<bool> {
    let t = token.as_str();
    let Some(row) = e
        .query_opt(
            "SELECT COALESCE(home_store, (SELECT MIN(store_id) FROM customer_stores WHERE card_token = ?1))
             FROM customers WHERE card_token = ?1",
            args![t],
        )
        .await?
    else {
        return Ok(false);
    };
    let store: Option<String> = row.get(0)?;
    if let Some(name) = &c.display_name {
        e.execute(
            "UPDATE customers SET display_name = ?2 WHERE card_token = ?1",
            args![t, name],
        )
        .await?;
    }
    if let Some(email) = &c.email {
        e.execute(
            "UPDATE customers SET email = ?2 WHERE card_token = ?1",
            args![t, email],
        )
        .await?;
    }
    if let Some(phone) = &c.phone {
        e.execute(
            "UPDATE customers SET phone = ?2 WHERE card_token = ?1",
            args![t, phone],
        )
        .await?;
    }
    if let Some(locale) = &c.locale {
        e.execute(
            "UPDATE customers SET locale = ?2 WHERE card_token = ?1",
            args![t, locale],
        )
        .await?;
    }
    // The kiosks get the corrected name and locale with their next feed poll; the company's CRM
    // gets `customer.updated`.
    super::shared::emit_profiles(e, &std::collections::BTreeSet::from([token.clone()])).await?;
    if let Some(store) = store {
        super::forward::enqueue_customer_updated(e, &token, &store, now_ms).await?;
    }
    Ok(true)
}

/// See [`super::database::Database::import_customers`]; in one transaction, so a failure
/// leaves nothing imported.
pub(crate) async fn import(
    e: &impl Exec,
    customers: Vec<NewCustomer>,
    now_ms: i64,
) -> DbResult<u64> {
    let n = customers.len() as u64;
    for c in customers {
        super::shared::upsert_customer(e, c, now_ms).await?;
    }
    Ok(n)
}

/// See [`super::database::Database::record_feed_poll`].
pub(crate) async fn record_feed_poll(
    e: &impl Exec,
    kiosk_id: String,
    cursor: u64,
    now_ms: i64,
) -> DbResult<()> {
    e.execute(
        "UPDATE kiosks SET last_seen_ms = ?2, feed_cursor = ?3, feed_cursor_ms = ?2 WHERE id = ?1",
        args![kiosk_id, now_ms, super::shared::i64_of(cursor)],
    )
    .await?;
    Ok(())
}

/// Whether one kiosk has applied an erasure.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct KioskErasure {
    /// Kiosk id.
    pub kiosk_id: String,
    /// Its store.
    pub store_id: String,
    /// `applied`: the kiosk asked for the feed after the erasure (it stores its cursor with the
    /// page it applied, so it has removed the person); `pending`: not yet (offline, or its next
    /// poll is due); `unknown`: the kiosk has not polled since this endpoint recorded cursors.
    pub status: String,
    /// The kiosk's last feed poll, unix ms.
    pub last_poll_ms: Option<i64>,
}

/// How far an erasure has reached the fleet.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct ErasureStatus {
    /// When the customer was erased, unix ms.
    pub erased_ms: i64,
    /// The erasure's place in the feed.
    pub feed_seq: Option<i64>,
    /// Every enrolled kiosk (the erasure goes to every store).
    pub kiosks: Vec<KioskErasure>,
}

/// See [`super::database::Database::erasure_status`].
pub(crate) async fn erasure_status(
    e: &impl Exec,
    token: CardToken,
) -> DbResult<Option<ErasureStatus>> {
    let t = token.as_str();
    let Some(r) = e
        .query_opt(
            "SELECT erased_ms FROM erasures WHERE card_token = ?1",
            args![t],
        )
        .await?
    else {
        return Ok(None);
    };
    let erased_ms: i64 = r.get(0)?;
    let feed_seq: Option<i64> = e
        .query_opt(
            "SELECT MAX(seq) FROM changes WHERE kind = 'erasure' AND item_key = ?1",
            args![t],
        )
        .await?
        .map(|r| r.get::<Option<i64>>(0))
        .transpose()?
        .flatten();
    let kiosks = e
        .query(
            "SELECT id, store_id, feed_cursor, feed_cursor_ms FROM kiosks ORDER BY store_id, id",
            &[],
        )
        .await?
        .iter()
        .map(|r| {
            let cursor: Option<i64> = r.get(2)?;
            let status = match (cursor, feed_seq) {
                (Some(c), Some(s)) if c >= s => "applied",
                (Some(_), _) => "pending",
                (None, _) => "unknown",
            };
            Ok(KioskErasure {
                kiosk_id: r.get(0)?,
                store_id: r.get(1)?,
                status: status.to_owned(),
                last_poll_ms: r.get(3)?,
            })
        })
        .collect::<DbResult<Vec<_>>>()?;
    Ok(Some(ErasureStatus {
        erased_ms,
        feed_seq,
        kiosks,
    }))
}
