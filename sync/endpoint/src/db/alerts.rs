//! The fleet alerts' rows (schema version 9): what the evaluation reads (kiosks, printers, dead
//! letters), the alerts it opens and resolves, the webhook messages it queues, and the fleet
//! view of the dashboard. The decisions are in [`crate::alerts`]; this module only stores.

use std::collections::{BTreeMap, HashMap};

use serde::{Deserialize, Serialize};

use super::exec::{Exec, args};
use super::model::{DbError, DbResult};

/// A kiosk as the evaluation sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KioskFacts {
    /// Kiosk id.
    pub kiosk_id: String,
    /// Its store.
    pub store_id: String,
    /// Last authenticated request (or, never seen, its enrollment), unix ms.
    pub last_seen_ms: i64,
    /// Clock skew, ms.
    pub skew_ms: Option<i64>,
    /// Outbox backlog last reported.
    pub backlog: Option<i64>,
    /// When the oldest event waiting in its outbox was made (endpoint time, unix ms), as the
    /// kiosk's reported age says; `None` when nothing waits.
    pub backlog_since_ms: Option<i64>,
}

/// A printer's last reported status, when not `ok`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PrinterFacts {
    /// Kiosk id.
    pub kiosk_id: String,
    /// Its store.
    pub store_id: String,
    /// `degraded` or `absent`.
    pub status: String,
    /// Why, as the kiosk said it (`paper out; load a new roll`).
    pub reason: Option<String>,
    /// Since when, unix ms.
    pub at_ms: i64,
}

/// Everything the evaluation reads from the database.
#[derive(Debug, Clone, Default)]
pub struct AlertInputs {
    /// Every kiosk.
    pub kiosks: Vec<KioskFacts>,
    /// Printers not `ok`.
    pub printers: Vec<PrinterFacts>,
    /// Per kiosk: events dead-lettered since the window start and the latest one's time.
    pub dead_letters: Vec<(String, String, i64, i64)>,
    /// Every store: id and name.
    pub stores: Vec<(String, String)>,
}

/// A condition that holds now: what [`reconcile`] opens or keeps open.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Condition {
    /// The alert's kind (`kiosk_offline`, ...).
    pub kind: String,
    /// What it is about: a kiosk id, `kiosk/printer`, a store id.
    pub subject: String,
    /// The store.
    pub store_id: String,
    /// The kiosk, if about one.
    pub kiosk_id: Option<String>,
    /// In words a technician can act on.
    pub detail: String,
    /// When the condition began, when the data says (else: first seen).
    pub since_ms: Option<i64>,
    /// How long it must hold before the alert opens, ms.
    pub hold_ms: i64,
}

/// A stored alert.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct AlertRecord {
    /// Alert id (one per opening).
    pub id: String,
    /// `kiosk_offline`, `printer_paper_out`, `printer_cover_open`, `backlog`, `dead_letters`,
    /// `clock_skew`, `queue_wait`.
    pub kind: String,
    /// What it is about.
    pub subject: String,
    /// The store.
    pub store_id: String,
    /// The kiosk, if about one.
    pub kiosk_id: Option<String>,
    /// In words.
    pub detail: String,
    /// When the condition began, unix ms.
    pub since_ms: i64,
    /// When the alert opened, unix ms.
    pub opened_ms: Option<i64>,
    /// When it cleared, unix ms.
    pub resolved_ms: Option<i64>,
}

/// What [`reconcile`] changed: the alerts opened and resolved now.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AlertChanges {
    /// Opened now.
    pub opened: Vec<AlertRecord>,
    /// Resolved now.
    pub resolved: Vec<AlertRecord>,
}

/// A webhook message to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    /// The message id (`webhook-id`).
    pub id: String,
    /// The JSON body.
    pub payload: String,
    /// Attempts so far, this one included.
    pub attempts: u32,
}

/// How an attempt went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeliveryOutcome {
    /// The receiver answered 2xx.
    Delivered,
    /// Failed: try again at `next_ms`.
    Retry {
        /// When.
        next_ms: i64,
        /// Why it failed.
        error: String,
    },
    /// Failed for the last time.
    GaveUp {
        /// Why it failed.
        error: String,
    },
}

/// A store in the fleet view.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct FleetStore {
    /// Store id.
    pub store_id: String,
    /// Store name.
    pub name: String,
    /// Its kiosks.
    pub kiosks: u64,
    /// Its open alerts, the most severe and oldest first.
    pub alerts: Vec<AlertRecord>,
}

const ALERT_COLUMNS: &str =
    "id, kind, subject, store_id, kiosk_id, detail, since_ms, opened_ms, resolved_ms";

fn alert_of(r: &super::exec::Row) -> DbResult<AlertRecord> {
    Ok(AlertRecord {
        id: r.get(0)?,
        kind: r.get(1)?,
        subject: r.get(2)?,
        store_id: r.get(3)?,
        kiosk_id: r.get(4)?,
        detail: r.get(5)?,
        since_ms: r.get(6)?,
        opened_ms: r.get(7)?,
        resolved_ms: r.get(8)?,
    })
}

/// A setting's value.
pub(crate) async fn setting(e: &impl Exec, key: &str) -> DbResult<Option<String>> {
    match e
        .query_opt("SELECT value FROM settings WHERE key = ?1", args![key])
        .await?
    {
        Some(r) => Ok(Some(r.get(0)?)),
        None => Ok(None),
    }
}

/// Sets (or, `None`, removes) a setting.
pub(crate) async fn set_setting(e: &impl Exec, key: &str, value: Option<String>) -> DbResult<()> {
    match value {
        Some(v) => {
            e.execute(
                "INSERT INTO settings (key, value) VALUES (?1, ?2)
                 ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                args![key, v],
            )
            .await?;
        }
        None => {
            e.execute("DELETE FROM settings WHERE key = ?1", args![key])
                .await?;
        }
    }
    Ok(())
}

/// What the evaluation reads; dead letters received since `dead_since_ms`.
pub(crate) async fn inputs(e: &impl Exec, dead_since_ms: i64) -> DbResult<AlertInputs> {
    let kiosks = e
        .query(
            "SELECT id, store_id, COALESCE(last_seen_ms, enrolled_ms), skew_ms, backlog,
                    backlog_since_ms FROM kiosks ORDER BY id",
            &[],
        )
        .await?
        .iter()
        .map(|r| {
            Ok(KioskFacts {
                kiosk_id: r.get(0)?,
                store_id: r.get(1)?,
                last_seen_ms: r.get(2)?,
                skew_ms: r.get(3)?,
                backlog: r.get(4)?,
                backlog_since_ms: r.get(5)?,
            })
        })
        .collect::<DbResult<_>>()?;
    let printers = e
        .query(
            "SELECT d.kiosk_id, k.store_id, d.status, d.reason, d.at_ms
             FROM kiosk_devices d JOIN kiosks k ON k.id = d.kiosk_id
             WHERE d.device = 'printer' AND d.status <> 'ok' ORDER BY d.kiosk_id",
            &[],
        )
        .await?
        .iter()
        .map(|r| {
            Ok(PrinterFacts {
                kiosk_id: r.get(0)?,
                store_id: r.get(1)?,
                status: r.get(2)?,
                reason: r.get(3)?,
                at_ms: r.get(4)?,
            })
        })
        .collect::<DbResult<_>>()?;
    let dead_letters = e
        .query(
            "SELECT kiosk_id, store_id, COUNT(*), MAX(corrected_ms) FROM events
             WHERE type = 'event_dead_lettered' AND corrected_ms >= ?1
             GROUP BY kiosk_id, store_id ORDER BY kiosk_id",
            args![dead_since_ms],
        )
        .await?
        .iter()
        .map(|r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
        .collect::<DbResult<_>>()?;
    let stores = e
        .query("SELECT id, name FROM stores ORDER BY id", &[])
        .await?
        .iter()
        .map(|r| Ok((r.get(0)?, r.get(1)?)))
        .collect::<DbResult<_>>()?;
    Ok(AlertInputs {
        kiosks,
        printers,
        dead_letters,
        stores,
    })
}

/// Brings the unresolved alerts in line with `conditions` at `now_ms`, in one transaction:
/// a new condition is recorded (opened at once when it needs no holding), one held long enough
/// opens, one gone resolves (or, never opened, is forgotten). Each opening and resolution
/// queues one webhook message built by `message` when `webhook` is set.
pub(crate) async fn reconcile(
    e: &impl Exec,
    conditions: Vec<Condition>,
    now_ms: i64,
    webhook: bool,
    message: fn(&AlertRecord, bool, i64) -> (String, String),
) -> DbResult<AlertChanges> {
    if e.dialect() == super::dialect::Dialect::Postgres {
        // One evaluation at a time across replicas: the second one sees the first's rows.
        e.execute("SELECT pg_advisory_xact_lock(?1)", args![ALERTS_LOCK])
            .await?;
    }
    let mut open: HashMap<(String, String), AlertRecord> = e
        .query(
            &format!("SELECT {ALERT_COLUMNS} FROM alerts WHERE resolved_ms IS NULL"),
            &[],
        )
        .await?
        .iter()
        .map(|r| alert_of(r).map(|a| ((a.kind.clone(), a.subject.clone()), a)))
        .collect::<DbResult<_>>()?;
    let mut changes = AlertChanges::default();
    for c in conditions {
        let key = (c.kind.clone(), c.subject.clone());
        let mut alert = match open.remove(&key) {
            Some(a) => a,
            None => {
                let a = AlertRecord {
                    id: uuid::Uuid::now_v7().to_string(),
                    kind: c.kind.clone(),
                    subject: c.subject.clone(),
                    store_id: c.store_id.clone(),
                    kiosk_id: c.kiosk_id.clone(),
                    detail: c.detail.clone(),
                    since_ms: c.since_ms.unwrap_or(now_ms).min(now_ms),
                    opened_ms: None,
                    resolved_ms: None,
                };
                e.execute(
                    "INSERT INTO alerts (id, kind, subject, store_id, kiosk_id, detail, since_ms)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                    args![
                        &a.id,
                        &a.kind,
                        &a.subject,
                        &a.store_id,
                        &a.kiosk_id,
                        &a.detail,
                        a.since_ms
                    ],
                )
                .await?;
                a
            }
        };
        if alert.detail != c.detail {
            e.execute(
                "UPDATE alerts SET detail = ?2 WHERE id = ?1",
                args![&alert.id, &c.detail],
            )
            .await?;
            alert.detail = c.detail.clone();
        }
        if alert.opened_ms.is_none() && now_ms - alert.since_ms >= c.hold_ms {
            e.execute(
                "UPDATE alerts SET opened_ms = ?2 WHERE id = ?1",
                args![&alert.id, now_ms],
            )
            .await?;
            alert.opened_ms = Some(now_ms);
            if webhook {
                queue(e, &alert, true, now_ms, message).await?;
            }
            changes.opened.push(alert);
        }
    }
    for (_, mut alert) in open {
        if alert.opened_ms.is_some() {
            // Never before its opening, whatever the clock of the replica that opened it said.
            let at = now_ms.max(alert.opened_ms.unwrap_or(now_ms));
            e.execute(
                "UPDATE alerts SET resolved_ms = ?2 WHERE id = ?1",
                args![&alert.id, at],
            )
            .await?;
            alert.resolved_ms = Some(at);
            if webhook {
                queue(e, &alert, false, now_ms, message).await?;
            }
            changes.resolved.push(alert);
        } else {
            e.execute("DELETE FROM alerts WHERE id = ?1", args![&alert.id])
                .await?;
        }
    }
    Ok(changes)
}

/// Serializes the evaluation of every replica (PostgreSQL advisory lock key).
const ALERTS_LOCK: i64 = 0x6b69_6f73_6b61_6c72;

async fn queue(
    e: &impl Exec,
    alert: &AlertRecord,
    opened: bool,
    now_ms: i64,
    message: fn(&AlertRecord, bool, i64) -> (String, String),
) -> DbResult<()> {
    let (id, payload) = message(alert, opened, now_ms);
    e.execute(
        "INSERT INTO alert_deliveries (id, alert_id, payload, created_ms, next_ms)
         VALUES (?1, ?2, ?3, ?4, ?4) ON CONFLICT (id) DO NOTHING",
        args![id, &alert.id, payload, now_ms],
    )
    .await?;
    Ok(())
}

/// Alerts, newest first: the unresolved ones (opened or still holding), or with `recent` also
/// those resolved since then.
pub(crate) async fn alerts(
    e: &impl Exec,
    resolved_since_ms: Option<i64>,
) -> DbResult<Vec<AlertRecord>> {
    e.query(
        &format!(
            "SELECT {ALERT_COLUMNS} FROM alerts
             WHERE resolved_ms IS NULL OR resolved_ms >= ?1 ORDER BY since_ms DESC, id"
        ),
        args![resolved_since_ms.unwrap_or(i64::MAX)],
    )
    .await?
    .iter()
    .map(alert_of)
    .collect()
}

/// Claims up to `limit` due messages (a resolution waits for its alert's opening: their ids
/// end in `_opened` and `_resolved`, in that order, whatever the clocks of the replicas said):
/// their next attempt moves `lease_ms` on, so another replica does not send them meanwhile.
pub(crate) async fn claim_due(
    e: &impl Exec,
    now_ms: i64,
    lease_ms: i64,
    limit: i64,
) -> DbResult<Vec<Delivery>> {
    let rows = e
        .query(
            &format!(
                "SELECT d.id, d.payload, d.attempts FROM alert_deliveries d
                 WHERE d.state = 'pending' AND d.next_ms <= ?1
                   AND NOT EXISTS (SELECT 1 FROM alert_deliveries p WHERE p.alert_id = d.alert_id
                     AND p.state = 'pending' AND p.id < d.id)
                 ORDER BY d.created_ms, d.id LIMIT ?2{}",
                e.dialect().lock_rows()
            ),
            args![now_ms, limit],
        )
        .await?;
    let mut out = Vec::with_capacity(rows.len());
    for r in rows {
        let (id, payload, attempts): (String, String, i64) = (r.get(0)?, r.get(1)?, r.get(2)?);
        e.execute(
            "UPDATE alert_deliveries SET next_ms = ?2, attempts = attempts + 1 WHERE id = ?1",
            args![&id, now_ms + lease_ms],
        )
        .await?;
        out.push(Delivery {
            id,
            payload,
            attempts: u32::try_from(attempts + 1).unwrap_or(u32::MAX),
        });
    }
    Ok(out)
}

/// Records how an attempt went.
pub(crate) async fn finish(
    e: &impl Exec,
    id: String,
    outcome: DeliveryOutcome,
    now_ms: i64,
) -> DbResult<()> {
    match outcome {
        DeliveryOutcome::Delivered => {
            e.execute(
                "UPDATE alert_deliveries SET state = 'delivered', delivered_ms = ?2, last_error = NULL
                 WHERE id = ?1",
                args![id, now_ms],
            )
            .await?
        }
        DeliveryOutcome::Retry { next_ms, error } => {
            e.execute(
                "UPDATE alert_deliveries SET next_ms = ?2, last_error = ?3 WHERE id = ?1",
                args![id, next_ms, error],
            )
            .await?
        }
        DeliveryOutcome::GaveUp { error } => {
            e.execute(
                "UPDATE alert_deliveries SET state = 'failed', last_error = ?2 WHERE id = ?1",
                args![id, error],
            )
            .await?
        }
    };
    Ok(())
}

/// Every store with its open alerts, in store order (the caller sorts worst first).
pub(crate) async fn fleet(e: &impl Exec) -> DbResult<Vec<FleetStore>> {
    let mut stores: BTreeMap<String, FleetStore> = e
        .query(
            "SELECT s.id, s.name, COUNT(k.id) FROM stores s LEFT JOIN kiosks k ON k.store_id = s.id
             GROUP BY s.id, s.name",
            &[],
        )
        .await?
        .iter()
        .map(|r| {
            let id: String = r.get(0)?;
            let kiosks: i64 = r.get(2)?;
            Ok((
                id.clone(),
                FleetStore {
                    store_id: id,
                    name: r.get(1)?,
                    kiosks: u64::try_from(kiosks).unwrap_or(0),
                    alerts: Vec::new(),
                },
            ))
        })
        .collect::<DbResult<_>>()?;
    for r in e
        .query(
            &format!(
                "SELECT {ALERT_COLUMNS} FROM alerts
                 WHERE resolved_ms IS NULL AND opened_ms IS NOT NULL ORDER BY since_ms, id"
            ),
            &[],
        )
        .await?
    {
        let a = alert_of(&r)?;
        match stores.get_mut(&a.store_id) {
            Some(s) => s.alerts.push(a),
            None => {
                return Err(DbError::Corrupt(format!(
                    "alert of unknown store {}",
                    a.store_id
                )));
            }
        }
    }
    Ok(stores.into_values().collect())
}
