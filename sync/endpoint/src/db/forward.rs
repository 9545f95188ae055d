//! The forwarding outbox's rows (schema version 14): the endpoints the operator subscribed, the
//! messages for them written in the same transaction as what they tell (the ingest of a batch,
//! an admin change, an erasure: docs/DESIGN.md invariant 21), their claims, outcomes, dead
//! letters and replays. The policy (schedule, when to give up, when to disable an endpoint)
//! and the sending are in [`crate::forward`]; this module only stores and builds the messages.
//!
//! A message is one row per endpoint subscribed to its type. Its id (`msg_` and the kiosk
//! event's id, or a new UUIDv7 for an admin change or an erasure) is the `webhook-id`: the same
//! on every retry and replay, and a batch sent again is stored again as duplicates only, so it
//! enqueues nothing (only newly accepted events are passed here).
//!
//! Personal data: a message carries the card token; a customer's name, email, phone and locale
//! only while they are registered and have consented to the profile; an erasure strips them from
//! every stored message of that customer and queues `customer.erased` behind them.

use kiosk_protocol::CardToken;
use kiosk_protocol::events::{Envelope, Event};
use serde::{Deserialize, Serialize};
use serde_json::{Value as Json, json};

use super::dialect::Dialect;
use super::exec::{Exec, Row, args};
use super::model::{DbError, DbResult, IngestBatch, IngestEvent, purpose_name};

/// Every message type an endpoint can subscribe to.
pub const EVENT_TYPES: &[&str] = &[
    "customer.registered",
    "customer.updated",
    "consent.changed",
    "turn.issued",
    "turn.called",
    "turn.served",
    "survey.answered",
    "coupon.redeemed",
    "customer.erased",
];

/// The kinds of endpoint.
pub const KINDS: &[&str] = &["webhook", "hubspot"];

/// A message to queue for every endpoint subscribed to its type.
#[derive(Debug, Clone, PartialEq)]
pub struct Outgoing {
    /// The webhook-id.
    pub msg_id: String,
    /// One of [`EVENT_TYPES`].
    pub event_type: &'static str,
    /// Messages of one key are delivered in order: the card token, else the turn, else itself.
    pub order_key: String,
    /// The JSON body (`type`, `timestamp`, `data`).
    pub payload: String,
}

/// A new endpoint as stored.
#[derive(Debug, Clone)]
pub struct NewEndpoint {
    /// Its id.
    pub id: String,
    /// `webhook` or `hubspot`.
    pub kind: String,
    /// Where: the receiver's URL, or the connector's API base.
    pub url: String,
    /// The signing secret (webhook) or access token (connector).
    pub secret: String,
    /// The types it wants.
    pub event_types: Vec<String>,
    /// The connector's options (JSON object).
    pub options: Json,
}

/// An endpoint as the operator sees it (never its secret).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct EndpointView {
    /// Its id.
    pub id: String,
    /// `webhook` (Standard Webhooks) or `hubspot` (the HubSpot connector).
    pub kind: String,
    /// The receiver's URL or the connector's API base.
    pub url: String,
    /// The message types it receives.
    pub event_types: Vec<String>,
    /// `enabled` or `disabled`.
    pub state: String,
    /// Why it is disabled.
    pub state_reason: Option<String>,
    /// When it was made, unix ms.
    pub created_ms: i64,
    /// Failed attempts in a row.
    pub failures: i64,
    /// Since when every attempt failed, unix ms.
    pub failing_since_ms: Option<i64>,
    /// The last delivery, unix ms.
    pub last_success_ms: Option<i64>,
    /// Why the last attempt failed (never quoting the receiver's answer).
    pub last_error: Option<String>,
    /// Messages waiting to be delivered.
    pub pending: i64,
    /// Messages delivered in the last 7 days (older ones are deleted).
    pub delivered: i64,
    /// Dead letters (given up; replayable).
    pub dead: i64,
}

/// A claimed message with where it goes.
#[derive(Debug, Clone)]
pub struct Claimed {
    /// Its row.
    pub seq: i64,
    /// The endpoint.
    pub endpoint_id: String,
    /// `webhook` or `hubspot`.
    pub kind: String,
    /// Where.
    pub url: String,
    /// The signing secret or access token.
    pub secret: String,
    /// The connector's options.
    pub options: String,
    /// The webhook-id.
    pub msg_id: String,
    /// Its type.
    pub event_type: String,
    /// Its body.
    pub payload: String,
    /// Attempts so far, this one included.
    pub attempts: u32,
}

/// How an attempt went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ForwardOutcome {
    /// The receiver took it.
    Delivered,
    /// Failed: again at `next_ms`.
    Retry {
        /// When.
        next_ms: i64,
        /// Why.
        error: String,
    },
    /// The receiver asked to slow down: again at `next_ms`, not counted as an attempt.
    Throttled {
        /// When.
        next_ms: i64,
    },
    /// Not sent this round (the round's lease ran out, or its endpoint is throttled): due again
    /// now, not counted as an attempt.
    Released,
    /// Failed for the last time: a dead letter.
    Dead {
        /// Why.
        error: String,
    },
}

/// When an endpoint that keeps failing is disabled: at least `failures` failed attempts in a
/// row, the first of them at least `for_ms` ago.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DisableRule {
    /// Failed attempts in a row.
    pub failures: i64,
    /// Failing for this long, ms.
    pub for_ms: i64,
}

/// A dead letter as the operator sees it (never its body: it can hold personal data).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct DeadLetter {
    /// Its row (replay names it).
    pub seq: i64,
    /// The endpoint.
    pub endpoint_id: String,
    /// The webhook-id.
    pub msg_id: String,
    /// Its type.
    pub event_type: String,
    /// Queued, unix ms.
    pub created_ms: i64,
    /// Attempts made.
    pub attempts: i64,
    /// Given up, unix ms.
    pub dead_ms: i64,
    /// Why the last attempt failed.
    pub last_error: Option<String>,
}

fn rfc3339(ms: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_default()
}

fn body(event_type: &str, at_ms: i64, data: Json) -> String {
    json!({ "type": event_type, "timestamp": rfc3339(at_ms), "data": data }).to_string()
}

/// The endpoints and the types each wants (disabled ones too: nothing is lost while disabled).
async fn subscribers(e: &impl Exec) -> DbResult<Vec<(String, Vec<String>)>> {
    e.query("SELECT id, event_types FROM forward_endpoints", &[])
        .await?
        .iter()
        .map(|r| {
            let types: String = r.get(1)?;
            Ok((r.get(0)?, serde_json::from_str(&types)?))
        })
        .collect()
}

/// Queues `out` for every endpoint subscribed to its type; how many rows.
pub(crate) async fn enqueue(e: &impl Exec, out: &[Outgoing], now_ms: i64) -> DbResult<u64> {
    if out.is_empty() {
        return Ok(0);
    }
    let subs = subscribers(e).await?;
    insert(e, &subs, out, now_ms).await
}

async fn insert(
    e: &impl Exec,
    subs: &[(String, Vec<String>)],
    out: &[Outgoing],
    now_ms: i64,
) -> DbResult<u64> {
    let mut n = 0;
    for o in out {
        for (endpoint, types) in subs {
            if types.iter().any(|t| t == o.event_type) {
                n += e
                    .execute(
                        "INSERT INTO forward_messages (endpoint_id, msg_id, event_type, order_key,
                           payload, created_ms, next_ms)
                         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?6) ON CONFLICT (endpoint_id, msg_id) DO NOTHING",
                        args![endpoint, &o.msg_id, o.event_type, &o.order_key, &o.payload, now_ms],
                    )
                    .await?;
            }
        }
    }
    Ok(n)
}

/// Whether an event type is forwarded.
fn forwarded(kind: &str) -> bool {
    matches!(
        kind,
        "customer_registered"
            | "consent_given"
            | "consent_withdrawn"
            | "ticket_issued"
            | "turn_called"
            | "turn_served"
            | "survey_answered"
            | "coupon_redeemed"
    )
}

/// Queues the messages of a batch's newly accepted events, in the batch's transaction, after
/// their effects (a registration's message reads the customer's consents as the batch left
/// them). Nothing to do, and no query, when no event is of a forwarded type.
pub(crate) async fn enqueue_batch(
    e: &impl Exec,
    batch: &IngestBatch,
    accepted: &[&IngestEvent],
) -> DbResult<()> {
    if !accepted.iter().any(|ev| forwarded(ev.kind)) {
        return Ok(());
    }
    let subs = subscribers(e).await?;
    if subs.is_empty() {
        return Ok(());
    }
    let mut out = Vec::new();
    for ev in accepted.iter().filter(|ev| forwarded(ev.kind)) {
        let env: Envelope = serde_json::from_str(&ev.envelope)?;
        if let Some(o) = message_of(e, batch, ev, &env).await? {
            out.push(o);
        }
    }
    insert(e, &subs, &out, batch.received_ms).await?;
    Ok(())
}

/// The card token of a forwarded identified turn.
async fn turn_token(e: &impl Exec, turn_id: &uuid::Uuid) -> DbResult<Option<String>> {
    e.query_opt(
        "SELECT card_token FROM forward_turns WHERE turn_id = ?1",
        args![turn_id.to_string()],
    )
    .await?
    .map(|r| r.get(0))
    .transpose()
}

async fn message_of(
    e: &impl Exec,
    batch: &IngestBatch,
    ev: &IngestEvent,
    env: &Envelope,
) -> DbResult<Option<Outgoing>> {
    // An event from before its customer's erasure (a kiosk that was offline) is not forwarded:
    // the CRM erased them, and a late registration or visit would bring them back.
    if let Some(token) = &ev.card_token {
        let erased: Option<i64> = e
            .query_opt(
                "SELECT erased_ms FROM erasures WHERE card_token = ?1",
                args![token.as_str()],
            )
            .await?
            .map(|r| r.get(0))
            .transpose()?;
        if erased.is_some_and(|at| at >= ev.corrected_ms) {
            return Ok(None);
        }
    }
    let msg_id = format!("msg_{}", ev.id);
    let store = batch.store_id.as_str();
    let kiosk = batch.kiosk_id.as_str();
    let turn_key = |token: &Option<String>, turn: &uuid::Uuid| {
        token.clone().unwrap_or_else(|| format!("turn:{turn}"))
    };
    let (event_type, key, data) = match &env.event {
        Event::CustomerRegistered(r) => (
            "customer.registered",
            r.card_token.to_string(),
            json!({ "card_token": r.card_token, "store_id": store, "kiosk_id": kiosk,
                    "customer": customer_view(e, &r.card_token).await? }),
        ),
        Event::ConsentGiven(c) | Event::ConsentWithdrawn(c) => (
            "consent.changed",
            c.card_token.to_string(),
            json!({ "card_token": c.card_token, "store_id": store, "kiosk_id": kiosk,
                    "purpose": purpose_name(c.purpose),
                    "given": matches!(env.event, Event::ConsentGiven(_)),
                    "policy_version": c.policy_version, "policy_sha256": c.policy_sha256,
                    "customer": customer_view(e, &c.card_token).await? }),
        ),
        Event::TicketIssued(t) => {
            if let Some(token) = &t.card_token {
                e.execute(
                    "INSERT INTO forward_turns (turn_id, card_token) VALUES (?1, ?2)
                     ON CONFLICT (turn_id) DO NOTHING",
                    args![t.turn_id.to_string(), token.as_str()],
                )
                .await?;
            }
            let token = t.card_token.as_ref().map(ToString::to_string);
            (
                "turn.issued",
                turn_key(&token, &t.turn_id),
                json!({ "turn_id": t.turn_id, "turn": t.turn, "service": t.service,
                        "number": t.number, "business_day": t.business_day,
                        "priority": t.priority, "position": t.position,
                        "estimated_wait_s": t.estimated_wait_s, "campaign_id": t.campaign_id,
                        "card_token": token, "store_id": store, "kiosk_id": kiosk }),
            )
        }
        Event::TurnCalled(t) => {
            let token = turn_token(e, &t.turn_id).await?;
            (
                "turn.called",
                turn_key(&token, &t.turn_id),
                json!({ "turn_id": t.turn_id, "turn": t.turn, "counter": t.counter,
                        "recall": t.recall, "waited_s": t.waited_s, "staff": t.staff,
                        "card_token": token, "store_id": store, "kiosk_id": kiosk }),
            )
        }
        Event::TurnServed(t) => {
            let token = turn_token(e, &t.turn_id).await?;
            (
                "turn.served",
                turn_key(&token, &t.turn_id),
                json!({ "turn_id": t.turn_id, "counter": t.counter, "service_s": t.service_s,
                        "staff": t.staff, "card_token": token, "store_id": store,
                        "kiosk_id": kiosk }),
            )
        }
        Event::SurveyAnswered(s) => {
            let token = match (&s.card_token, &s.turn_id) {
                (Some(t), _) => Some(t.to_string()),
                (None, Some(turn)) => turn_token(e, turn).await?,
                (None, None) => None,
            };
            let key = match (&token, &s.turn_id) {
                (Some(t), _) => t.clone(),
                (None, Some(turn)) => format!("turn:{turn}"),
                (None, None) => msg_id.clone(),
            };
            (
                "survey.answered",
                key,
                json!({ "turn_id": s.turn_id, "score": s.score, "reason": s.reason,
                        "card_token": token, "store_id": store, "kiosk_id": kiosk }),
            )
        }
        Event::CouponRedeemed(c) => (
            "coupon.redeemed",
            c.card_token
                .as_ref()
                .map_or_else(|| msg_id.clone(), ToString::to_string),
            json!({ "coupon_code": c.coupon_code, "campaign_id": c.campaign_id,
                    "variant": c.variant, "card_token": c.card_token,
                    "store_id": store, "kiosk_id": kiosk }),
        ),
        _ => return Ok(None),
    };
    Ok(Some(Outgoing {
        msg_id,
        event_type,
        order_key: key,
        payload: body(event_type, ev.corrected_ms, data),
    }))
}

/// What a message may tell of a customer: the card token, whether registered, the segment, the
/// consents; name, email, phone and locale only when registered with consent to the profile.
async fn customer_view(e: &impl Exec, token: &CardToken) -> DbResult<Json> {
    let t = token.as_str();
    let row = e
        .query_opt(
            "SELECT display_name, email, phone, locale, registered_ms, segment FROM customers
             WHERE card_token = ?1",
            args![t],
        )
        .await?;
    let mut consents = serde_json::Map::new();
    for r in e
        .query(
            "SELECT purpose, given FROM consents WHERE card_token = ?1 ORDER BY at_ms, id",
            args![t],
        )
        .await?
    {
        let (purpose, given): (String, bool) = (r.get(0)?, r.get(1)?);
        consents.insert(purpose, Json::Bool(given));
    }
    let profile_consent = consents.get("profile") == Some(&Json::Bool(true));
    let (registered, segment, profile) = match row {
        Some(r) => {
            let name: Option<String> = r.get(0)?;
            let registered = name.is_some() && r.get::<Option<i64>>(4)?.is_some();
            let profile = if registered && profile_consent {
                json!({ "display_name": name, "email": r.get::<Option<String>>(1)?,
                        "phone": r.get::<Option<String>>(2)?,
                        "locale": r.get::<Option<String>>(3)? })
            } else {
                Json::Null
            };
            (registered, Some(r.get::<String>(5)?), profile)
        }
        None => (false, None, Json::Null),
    };
    Ok(
        json!({ "card_token": t, "registered": registered, "segment": segment,
               "consents": consents, "profile": profile }),
    )
}

/// Queues `customer.updated` after an admin change of a customer (in its transaction).
pub(crate) async fn enqueue_customer_updated(
    e: &impl Exec,
    token: &CardToken,
    store_id: &str,
    now_ms: i64,
) -> DbResult<()> {
    let data = json!({ "card_token": token, "store_id": store_id,
                       "customer": customer_view(e, token).await? });
    enqueue(
        e,
        &[Outgoing {
            msg_id: format!("msg_{}", uuid::Uuid::now_v7()),
            event_type: "customer.updated",
            order_key: token.to_string(),
            payload: body("customer.updated", now_ms, data),
        }],
        now_ms,
    )
    .await?;
    Ok(())
}

/// After an erasure (in its transaction): strips the customer's profile from every stored
/// message about them and queues `customer.erased` behind them.
pub(crate) async fn on_erasure(e: &impl Exec, token: &CardToken, now_ms: i64) -> DbResult<()> {
    let t = token.as_str();
    for r in e
        .query(
            "SELECT seq, payload FROM forward_messages WHERE order_key = ?1",
            args![t],
        )
        .await?
    {
        let (seq, payload): (i64, String) = (r.get(0)?, r.get(1)?);
        let mut v: Json = serde_json::from_str(&payload)?;
        if let Some(c) = v.pointer_mut("/data/customer")
            && c.get("profile").is_some_and(|p| !p.is_null())
        {
            c["profile"] = Json::Null;
            e.execute(
                "UPDATE forward_messages SET payload = ?2 WHERE seq = ?1",
                args![seq, v.to_string()],
            )
            .await?;
        }
    }
    e.execute("DELETE FROM forward_turns WHERE card_token = ?1", args![t])
        .await?;
    enqueue(
        e,
        &[Outgoing {
            msg_id: format!("msg_{}", uuid::Uuid::now_v7()),
            event_type: "customer.erased",
            order_key: t.to_owned(),
            payload: body("customer.erased", now_ms, json!({ "card_token": t })),
        }],
        now_ms,
    )
    .await?;
    Ok(())
}

/// Stores a new endpoint.
pub(crate) async fn create_endpoint(e: &impl Exec, new: NewEndpoint, now_ms: i64) -> DbResult<()> {
    e.execute(
        "INSERT INTO forward_endpoints (id, kind, url, secret, event_types, options, created_ms)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        args![
            new.id,
            new.kind,
            new.url,
            new.secret,
            serde_json::to_string(&new.event_types)?,
            new.options.to_string(),
            now_ms
        ],
    )
    .await?;
    Ok(())
}

const VIEW: &str = "SELECT ep.id, ep.kind, ep.url, ep.event_types, ep.state, ep.state_reason,
      ep.created_ms, ep.failures, ep.failing_since_ms, ep.last_success_ms, ep.last_error,
      (SELECT COUNT(*) FROM forward_messages m WHERE m.endpoint_id = ep.id AND m.state = 'pending'),
      (SELECT COUNT(*) FROM forward_messages m WHERE m.endpoint_id = ep.id AND m.state = 'delivered'),
      (SELECT COUNT(*) FROM forward_messages m WHERE m.endpoint_id = ep.id AND m.state = 'dead')
    FROM forward_endpoints ep";

fn view_of(r: &Row) -> DbResult<EndpointView> {
    let types: String = r.get(3)?;
    Ok(EndpointView {
        id: r.get(0)?,
        kind: r.get(1)?,
        url: r.get(2)?,
        event_types: serde_json::from_str(&types)?,
        state: r.get(4)?,
        state_reason: r.get(5)?,
        created_ms: r.get(6)?,
        failures: r.get(7)?,
        failing_since_ms: r.get(8)?,
        last_success_ms: r.get(9)?,
        last_error: r.get(10)?,
        pending: r.get(11)?,
        delivered: r.get(12)?,
        dead: r.get(13)?,
    })
}

/// Every endpoint with its counts, oldest first.
pub(crate) async fn endpoints(e: &impl Exec) -> DbResult<Vec<EndpointView>> {
    e.query(&format!("{VIEW} ORDER BY ep.created_ms, ep.id"), &[])
        .await?
        .iter()
        .map(view_of)
        .collect()
}

/// One endpoint.
pub(crate) async fn endpoint(e: &impl Exec, id: String) -> DbResult<Option<EndpointView>> {
    e.query_opt(&format!("{VIEW} WHERE ep.id = ?1"), args![id])
        .await?
        .as_ref()
        .map(view_of)
        .transpose()
}

/// Enables (its failure streak forgotten, its waiting messages due now) or disables an
/// endpoint by the operator's hand; false when there is no such endpoint.
pub(crate) async fn set_enabled(
    e: &impl Exec,
    id: String,
    enabled: bool,
    now_ms: i64,
) -> DbResult<bool> {
    let n = if enabled {
        e.execute(
            "UPDATE forward_endpoints SET state = 'enabled', state_reason = NULL, failures = 0,
               failing_since_ms = NULL WHERE id = ?1",
            args![&id],
        )
        .await?
    } else {
        e.execute(
            "UPDATE forward_endpoints SET state = 'disabled', state_reason = 'disabled by the operator'
             WHERE id = ?1",
            args![&id],
        )
        .await?
    };
    if n > 0 && enabled {
        e.execute(
            "UPDATE forward_messages SET next_ms = ?2
             WHERE endpoint_id = ?1 AND state = 'pending' AND next_ms > ?2",
            args![&id, now_ms],
        )
        .await?;
    }
    Ok(n > 0)
}

/// Deletes an endpoint and its messages; false when there is none.
pub(crate) async fn delete_endpoint(e: &impl Exec, id: String) -> DbResult<bool> {
    e.execute(
        "DELETE FROM forward_messages WHERE endpoint_id = ?1",
        args![&id],
    )
    .await?;
    Ok(
        e.execute("DELETE FROM forward_endpoints WHERE id = ?1", args![&id])
            .await?
            > 0,
    )
}

/// Claims up to `limit` due messages of enabled endpoints, each the oldest waiting message of
/// its endpoint and order key (so a customer's later message waits for the earlier one to be
/// delivered or dead-lettered): their next attempt moves `lease_ms` on and the attempt is
/// counted, so no other replica sends them meanwhile. On PostgreSQL the rows are locked
/// (`FOR UPDATE OF m SKIP LOCKED`): a replica claiming at the same moment takes others.
pub(crate) async fn claim(
    e: &impl Exec,
    now_ms: i64,
    lease_ms: i64,
    limit: i64,
) -> DbResult<Vec<Claimed>> {
    let lock = match e.dialect() {
        Dialect::Sqlite => "",
        Dialect::Postgres => " FOR UPDATE OF m SKIP LOCKED",
    };
    let rows = e
        .query(
            &format!(
                "SELECT m.seq, m.endpoint_id, ep.kind, ep.url, ep.secret, ep.options, m.msg_id,
                   m.event_type, m.payload, m.attempts
                 FROM forward_messages m JOIN forward_endpoints ep ON ep.id = m.endpoint_id
                 WHERE m.state = 'pending' AND m.next_ms <= ?1 AND ep.state = 'enabled'
                   AND NOT EXISTS (SELECT 1 FROM forward_messages p
                     WHERE p.endpoint_id = m.endpoint_id AND p.order_key = m.order_key
                       AND p.state = 'pending' AND p.seq < m.seq)
                 ORDER BY m.seq LIMIT ?2{lock}"
            ),
            args![now_ms, limit],
        )
        .await?;
    let mut out = Vec::with_capacity(rows.len());
    for r in rows {
        let seq: i64 = r.get(0)?;
        e.execute(
            "UPDATE forward_messages SET next_ms = ?2, attempts = attempts + 1 WHERE seq = ?1",
            args![seq, now_ms + lease_ms],
        )
        .await?;
        let attempts: i64 = r.get(9)?;
        out.push(Claimed {
            seq,
            endpoint_id: r.get(1)?,
            kind: r.get(2)?,
            url: r.get(3)?,
            secret: r.get(4)?,
            options: r.get(5)?,
            msg_id: r.get(6)?,
            event_type: r.get(7)?,
            payload: r.get(8)?,
            attempts: u32::try_from(attempts + 1).unwrap_or(u32::MAX),
        });
    }
    Ok(out)
}

/// Records how an attempt at message `seq` of `endpoint_id` went; the endpoint's failure
/// streak follows, and an endpoint meeting `rule` is disabled. True when this disabled it.
pub(crate) async fn finish(
    e: &impl Exec,
    endpoint_id: String,
    seq: i64,
    outcome: ForwardOutcome,
    rule: DisableRule,
    now_ms: i64,
) -> DbResult<bool> {
    let id = endpoint_id.as_str();
    let failed = |error: String| async move {
        e.execute(
            "UPDATE forward_endpoints SET failures = failures + 1,
               failing_since_ms = COALESCE(failing_since_ms, ?2), last_error = ?3 WHERE id = ?1",
            args![id, now_ms, error],
        )
        .await?;
        let reason = format!(
            "disabled automatically: {} failed attempts in a row over {} hours",
            rule.failures,
            rule.for_ms / 3_600_000
        );
        Ok::<bool, DbError>(
            e.execute(
                "UPDATE forward_endpoints SET state = 'disabled', state_reason = ?4
                 WHERE id = ?1 AND state = 'enabled' AND failures >= ?2 AND failing_since_ms <= ?3",
                args![id, rule.failures, now_ms - rule.for_ms, reason],
            )
            .await?
                > 0,
        )
    };
    match outcome {
        ForwardOutcome::Delivered => {
            e.execute(
                "UPDATE forward_messages SET state = 'delivered', delivered_ms = ?2, last_error = NULL
                 WHERE seq = ?1",
                args![seq, now_ms],
            )
            .await?;
            e.execute(
                "UPDATE forward_endpoints SET failures = 0, failing_since_ms = NULL,
                   last_success_ms = ?2, last_error = NULL WHERE id = ?1",
                args![&endpoint_id, now_ms],
            )
            .await?;
            Ok(false)
        }
        ForwardOutcome::Retry { next_ms, error } => {
            e.execute(
                "UPDATE forward_messages SET next_ms = ?2, last_error = ?3 WHERE seq = ?1",
                args![seq, next_ms, &error],
            )
            .await?;
            failed(error).await
        }
        ForwardOutcome::Dead { error } => {
            e.execute(
                "UPDATE forward_messages SET state = 'dead', dead_ms = ?2, last_error = ?3
                 WHERE seq = ?1",
                args![seq, now_ms, &error],
            )
            .await?;
            failed(error).await
        }
        ForwardOutcome::Throttled { next_ms } => {
            e.execute(
                "UPDATE forward_messages SET next_ms = ?2, attempts = attempts - 1,
                   last_error = 'throttled by the receiver (429)' WHERE seq = ?1",
                args![seq, next_ms],
            )
            .await?;
            Ok(false)
        }
        ForwardOutcome::Released => {
            e.execute(
                "UPDATE forward_messages SET next_ms = ?2, attempts = attempts - 1 WHERE seq = ?1",
                args![seq, now_ms],
            )
            .await?;
            Ok(false)
        }
    }
}

/// Dead letters, newest first, of one endpoint or all.
pub(crate) async fn dead_letters(
    e: &impl Exec,
    endpoint_id: Option<String>,
    limit: i64,
) -> DbResult<Vec<DeadLetter>> {
    e.query(
        "SELECT seq, endpoint_id, msg_id, event_type, created_ms, attempts, dead_ms, last_error
         FROM forward_messages WHERE state = 'dead' AND (CAST(?1 AS TEXT) IS NULL OR endpoint_id = ?1)
         ORDER BY dead_ms DESC, seq DESC LIMIT ?2",
        args![endpoint_id, limit],
    )
    .await?
    .iter()
    .map(|r| {
        Ok(DeadLetter {
            seq: r.get(0)?,
            endpoint_id: r.get(1)?,
            msg_id: r.get(2)?,
            event_type: r.get(3)?,
            created_ms: r.get(4)?,
            attempts: r.get(5)?,
            dead_ms: r.get(6)?,
            last_error: r.get(7)?,
        })
    })
    .collect()
}

/// Sends dead letters again (one, by `seq`, or all of the endpoint's), with their own
/// webhook-id and a fresh schedule; how many.
pub(crate) async fn replay(
    e: &impl Exec,
    endpoint_id: String,
    seq: Option<i64>,
    now_ms: i64,
) -> DbResult<u64> {
    e.execute(
        "UPDATE forward_messages SET state = 'pending', attempts = 0, next_ms = ?3, dead_ms = NULL
         WHERE endpoint_id = ?1 AND state = 'dead' AND (CAST(?2 AS BIGINT) IS NULL OR seq = ?2)",
        args![endpoint_id, seq, now_ms],
    )
    .await
}

/// Deletes the delivered messages delivered before `before_ms` (their bodies can hold personal
/// data; the receiver has them); how many.
pub(crate) async fn purge_delivered(e: &impl Exec, before_ms: i64) -> DbResult<u64> {
    e.execute(
        "DELETE FROM forward_messages WHERE state = 'delivered' AND delivered_ms < ?1",
        args![before_ms],
    )
    .await
}
