//! Fleet alerts (issue 20): a kiosk not seen for N minutes, its printer out of paper or with its
//! cover open for N minutes, an outbox backlog not drained for N minutes, dead-lettered
//! events, a clock skew beyond N seconds, a store whose longest current wait passes its target.
//!
//! Data flow: what the endpoint already stores (kiosks' last seen, skew and backlog; device
//! status; `event_dead_lettered` events; each store's live queue) → **evaluation** every
//! [`EVALUATE_EVERY`] at each replica ([`evaluate`], pure [`conditions`]) → `alerts` rows (one per
//! opening, resolved when the condition clears) → the dashboard's fleet view
//! (`/dashboard/fleet`) and, when configured, a webhook: one message per opening and one per
//! resolution, signed and sent by the outbound delivery the CRM forwarding uses too
//! ([`crate::outbound`]: Standard Webhooks), retried with backoff ([`deliver_due`]) until
//! delivered or [`MAX_ATTEMPTS`].
//!
//! Alerts carry kiosk and store ids and device reasons, never personal data.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::db::alerts::{AlertChanges, AlertInputs, AlertRecord, Condition, DeliveryOutcome};
use crate::db::{DbResult, LiveQueueQuery, SharedDb};

/// How often `serve` evaluates the alerts and sends due webhook messages.
pub const EVALUATE_EVERY: Duration = Duration::from_secs(30);
/// Attempts at one webhook message before giving up (about two days of backoff).
pub const MAX_ATTEMPTS: u32 = 20;
/// A claimed message is not sent by another replica for this long.
const LEASE_MS: i64 = 60_000;
/// Messages sent per round.
const PER_ROUND: i64 = 50;
/// How long a webhook request may take.
pub const WEBHOOK_TIMEOUT: Duration = crate::outbound::TIMEOUT;
/// The setting holding the thresholds (JSON).
pub const THRESHOLDS_KEY: &str = "alert_thresholds";
/// The setting holding the webhook (JSON).
pub const WEBHOOK_KEY: &str = "alert_webhook";
/// The longest threshold in minutes (a week).
pub const MAX_MINUTES: u32 = 7 * 24 * 60;

/// What opens an alert. Minutes are how long a condition must hold.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct Thresholds {
    /// A kiosk with no authenticated request for this long.
    pub offline_minutes: u32,
    /// A printer out of paper or with its cover open for this long.
    pub printer_minutes: u32,
    /// A kiosk reporting events waiting in its outbox for this long without draining them.
    pub backlog_minutes: u32,
    /// A kiosk that dead-lettered events in the last this many minutes.
    pub dead_letter_minutes: u32,
    /// A kiosk clock this many seconds off (either way).
    pub skew_seconds: u32,
    /// A store's longest current wait beyond this many minutes (its target), unless the store
    /// has its own below.
    pub queue_wait_minutes: u32,
    /// Stores' own wait targets, minutes.
    pub store_wait_minutes: BTreeMap<String, u32>,
}

impl Default for Thresholds {
    fn default() -> Self {
        Thresholds {
            offline_minutes: 15,
            printer_minutes: 10,
            backlog_minutes: 30,
            dead_letter_minutes: 24 * 60,
            skew_seconds: 120,
            queue_wait_minutes: 20,
            store_wait_minutes: BTreeMap::new(),
        }
    }
}

impl Thresholds {
    /// Every threshold in range: minutes 1 to [`MAX_MINUTES`], skew 1 s to a day.
    pub fn check(&self) -> Result<(), String> {
        let minutes = [
            ("offline", self.offline_minutes),
            ("printer", self.printer_minutes),
            ("backlog", self.backlog_minutes),
            ("dead letter", self.dead_letter_minutes),
            ("queue wait", self.queue_wait_minutes),
        ]
        .into_iter()
        .chain(self.store_wait_minutes.values().map(|m| ("store wait", *m)));
        for (name, m) in minutes {
            if m == 0 || m > MAX_MINUTES {
                return Err(format!(
                    "the {name} threshold must be 1 to {MAX_MINUTES} minutes, not {m}"
                ));
            }
        }
        if self.skew_seconds == 0 || self.skew_seconds > 86_400 {
            return Err(format!(
                "the skew threshold must be 1 to 86400 seconds, not {}",
                self.skew_seconds
            ));
        }
        for store in self.store_wait_minutes.keys() {
            kiosk_protocol::ident::check(store).map_err(|e| format!("the store id {e}"))?;
        }
        Ok(())
    }
}

pub use crate::outbound::{Webhook, check_url, sign};

/// How bad an alert is.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    /// Customers are affected now: a kiosk offline, no tickets printed, a queue past its target.
    Critical,
    /// Something to look at.
    Warning,
}

/// The severity of an alert kind.
pub fn severity(kind: &str) -> Severity {
    match kind {
        "kiosk_offline" | "printer_paper_out" | "printer_cover_open" | "queue_wait" => {
            Severity::Critical
        }
        _ => Severity::Warning,
    }
}

/// A store's wait now, as the live queue says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreWait {
    /// Store id.
    pub store_id: String,
    /// The longest current wait of its services, seconds, with that service.
    pub longest: Option<(u64, String)>,
}

/// The conditions that hold at `now_ms` (pure).
pub fn conditions(
    inputs: &AlertInputs,
    waits: &[StoreWait],
    t: &Thresholds,
    now_ms: i64,
) -> Vec<Condition> {
    const MIN: i64 = 60_000;
    let mut out = Vec::new();
    let mut push = |kind: &str,
                    subject: String,
                    store: &str,
                    kiosk: Option<&str>,
                    detail: String,
                    since: Option<i64>,
                    hold: i64| {
        out.push(Condition {
            kind: kind.to_owned(),
            subject,
            store_id: store.to_owned(),
            kiosk_id: kiosk.map(str::to_owned),
            detail,
            since_ms: since,
            hold_ms: hold,
        });
    };
    for k in &inputs.kiosks {
        let id = k.kiosk_id.as_str();
        let quiet = now_ms - k.last_seen_ms;
        if quiet >= i64::from(t.offline_minutes) * MIN {
            push(
                "kiosk_offline",
                id.to_owned(),
                &k.store_id,
                Some(id),
                format!("kiosk {id} not seen for {} minutes", quiet / MIN),
                Some(k.last_seen_ms),
                i64::from(t.offline_minutes) * MIN,
            );
        }
        if let Some(skew) = k.skew_ms
            && skew.unsigned_abs() >= u64::from(t.skew_seconds) * 1000
        {
            push(
                "clock_skew",
                id.to_owned(),
                &k.store_id,
                Some(id),
                format!(
                    "kiosk {id}'s clock is {} s off; check its time sync (NTP)",
                    skew / 1000
                ),
                None,
                0,
            );
        }
        // Exact: the oldest event still waiting is older than the threshold (its age as the
        // kiosk reports it with each batch, aged here since).
        if let Some(since) = k
            .backlog_since_ms
            .filter(|_| k.backlog.is_some_and(|b| b > 0))
            && now_ms - since >= i64::from(t.backlog_minutes) * MIN
        {
            push(
                "backlog",
                id.to_owned(),
                &k.store_id,
                Some(id),
                format!(
                    "kiosk {id} has {} events waiting to be sent, the oldest for {} minutes",
                    k.backlog.unwrap_or(0),
                    (now_ms - since) / MIN
                ),
                Some(since),
                0,
            );
        }
    }
    for p in &inputs.printers {
        let reason = p.reason.as_deref().unwrap_or("").to_ascii_lowercase();
        let kind = if reason.contains("paper out") || reason.contains("paper end") {
            "printer_paper_out"
        } else if reason.contains("cover") {
            "printer_cover_open"
        } else {
            continue;
        };
        let what = if kind == "printer_paper_out" {
            "is out of paper; load a new roll"
        } else {
            "has its cover open; close it"
        };
        push(
            kind,
            format!("{}/printer", p.kiosk_id),
            &p.store_id,
            Some(&p.kiosk_id),
            format!("the printer of kiosk {} {what}", p.kiosk_id),
            Some(p.at_ms),
            i64::from(t.printer_minutes) * MIN,
        );
    }
    for (kiosk, store, n, _last) in &inputs.dead_letters {
        push(
            "dead_letters",
            kiosk.clone(),
            store,
            Some(kiosk),
            format!(
                "kiosk {kiosk} dead-lettered {n} events in the last {} minutes; see its device log",
                t.dead_letter_minutes
            ),
            None,
            0,
        );
    }
    for w in waits {
        let target = t
            .store_wait_minutes
            .get(&w.store_id)
            .copied()
            .unwrap_or(t.queue_wait_minutes);
        if let Some((secs, service)) = &w.longest
            && *secs >= u64::from(target) * 60
        {
            push(
                "queue_wait",
                w.store_id.clone(),
                &w.store_id,
                None,
                format!(
                    "the longest wait at {} is {} minutes (service {service}), past its target of {target}",
                    w.store_id,
                    secs / 60
                ),
                None,
                0,
            );
        }
    }
    out
}

/// The stored thresholds (the defaults when none were set).
pub async fn thresholds(db: &SharedDb) -> DbResult<Thresholds> {
    Ok(match db.setting(THRESHOLDS_KEY).await? {
        Some(json) => serde_json::from_str(&json)?,
        None => Thresholds::default(),
    })
}

/// The stored webhook, if any.
pub async fn webhook(db: &SharedDb) -> DbResult<Option<Webhook>> {
    Ok(match db.setting(WEBHOOK_KEY).await? {
        Some(json) => Some(serde_json::from_str(&json)?),
        None => None,
    })
}

/// The webhook message of an alert's opening (`opened`) or resolution: its id (`msg_`, the
/// alert id and the transition: one message per opening and per resolution) and its JSON body
/// (`type`, `timestamp`, `data`, as Standard Webhooks suggests).
pub fn message(alert: &AlertRecord, opened: bool, now_ms: i64) -> (String, String) {
    let transition = if opened { "opened" } else { "resolved" };
    let at = time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(now_ms) * 1_000_000)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_default();
    let body = serde_json::json!({
        "type": format!("alert.{transition}"),
        "timestamp": at,
        "data": {
            "alert_id": alert.id,
            "kind": alert.kind,
            "severity": severity(&alert.kind),
            "store_id": alert.store_id,
            "kiosk_id": alert.kiosk_id,
            "detail": alert.detail,
            "since_ms": alert.since_ms,
            "opened_ms": alert.opened_ms,
            "resolved_ms": alert.resolved_ms,
        }
    });
    (format!("msg_{}_{transition}", alert.id), body.to_string())
}

/// Evaluates every alert at `now_ms`: reads the inputs and each store's live queue, opens and
/// resolves alerts, queues the webhook messages.
pub async fn evaluate(db: &SharedDb, now_ms: i64) -> DbResult<AlertChanges> {
    let t = thresholds(db).await?;
    let inputs = db
        .alert_inputs(now_ms - i64::from(t.dead_letter_minutes) * 60_000)
        .await?;
    let mut waits = Vec::with_capacity(inputs.stores.len());
    for (store, _) in &inputs.stores {
        let q = db
            .live_queue(LiveQueueQuery::new(store.clone(), now_ms))
            .await?;
        let longest = q
            .services
            .iter()
            .filter_map(|s| Some((s.longest_wait_s?, s.service.clone())))
            .max();
        waits.push(StoreWait {
            store_id: store.clone(),
            longest,
        });
    }
    let conds = conditions(&inputs, &waits, &t, now_ms);
    let hooked = webhook(db).await?.is_some();
    db.reconcile_alerts(conds, now_ms, hooked, message).await
}

/// The delay before attempt `attempts + 1`: 5 s, then ×4 up to an hour.
pub fn backoff(attempts: u32) -> Duration {
    let secs = 5u64.saturating_mul(4u64.saturating_pow(attempts.saturating_sub(1)));
    Duration::from_secs(secs.min(3600))
}

/// Sends the webhook messages due at `now_ms` (none without a webhook); how many were
/// delivered.
pub async fn deliver_due(db: &SharedDb, http: &reqwest::Client, now_ms: i64) -> DbResult<usize> {
    let Some(hook) = webhook(db).await? else {
        return Ok(0);
    };
    let mut delivered = 0;
    for d in db.claim_deliveries(now_ms, LEASE_MS, PER_ROUND).await? {
        let timestamp = time::OffsetDateTime::now_utc().unix_timestamp();
        let outcome = match send(http, &hook, &d.id, timestamp, &d.payload).await {
            Ok(()) => {
                delivered += 1;
                DeliveryOutcome::Delivered
            }
            Err(error) if d.attempts >= MAX_ATTEMPTS => {
                tracing::error!(message = %d.id, %error, "alert webhook: giving up");
                DeliveryOutcome::GaveUp { error }
            }
            Err(error) => {
                let wait = backoff(d.attempts);
                tracing::warn!(message = %d.id, %error, retry_s = wait.as_secs(), "alert webhook failed");
                DeliveryOutcome::Retry {
                    next_ms: now_ms + i64::try_from(wait.as_millis()).unwrap_or(i64::MAX),
                    error,
                }
            }
        };
        db.finish_delivery(d.id, outcome, now_ms).await?;
    }
    Ok(delivered)
}

async fn send(
    http: &reqwest::Client,
    hook: &Webhook,
    id: &str,
    timestamp: i64,
    body: &str,
) -> Result<(), String> {
    crate::outbound::post_signed(http, hook, id, timestamp, body)
        .await
        .map_err(|e| e.to_string())
}

/// The dashboard's fleet view (`/dashboard/api/fleet`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Fleet {
    /// When, unix ms.
    pub now_ms: i64,
    /// Every store, worst first.
    pub stores: Vec<FleetStoreView>,
    /// Every stored firmware release, newest first, with where its rollout stands.
    #[serde(default)]
    pub releases: Vec<crate::db::releases::ReleaseSummary>,
}

/// A store of the fleet view.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct FleetStoreView {
    /// Store id.
    pub store_id: String,
    /// Store name.
    pub name: String,
    /// Its kiosks.
    pub kiosks: u64,
    /// Its open alerts, critical first, then oldest first.
    pub alerts: Vec<FleetAlert>,
}

/// An open alert with its severity.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct FleetAlert {
    /// The alert.
    #[serde(flatten)]
    pub alert: AlertRecord,
    /// How bad.
    pub severity: Severity,
}

/// [`fleet`] as the dashboard shows it at `now_ms`.
pub async fn fleet_view(db: &SharedDb, now_ms: i64) -> DbResult<Fleet> {
    let stores = fleet(db)
        .await?
        .into_iter()
        .map(|s| FleetStoreView {
            store_id: s.store_id,
            name: s.name,
            kiosks: s.kiosks,
            alerts: s
                .alerts
                .into_iter()
                .map(|a| FleetAlert {
                    severity: severity(&a.kind),
                    alert: a,
                })
                .collect(),
        })
        .collect();
    Ok(Fleet {
        now_ms,
        stores,
        releases: db.releases().await?,
    })
}

/// The fleet view: every store with its open alerts, worst first (most critical alerts, then
/// most warnings, then the oldest alert, then the name).
pub async fn fleet(db: &SharedDb) -> DbResult<Vec<crate::db::alerts::FleetStore>> {
    let mut stores = db.fleet().await?;
    for s in &mut stores {
        s.alerts
            .sort_by_key(|a| (severity(&a.kind), a.since_ms, a.id.clone()));
    }
    let rank = |s: &crate::db::alerts::FleetStore| {
        let critical = s
            .alerts
            .iter()
            .filter(|a| severity(&a.kind) == Severity::Critical)
            .count();
        let oldest = s
            .alerts
            .iter()
            .map(|a| a.since_ms)
            .min()
            .unwrap_or(i64::MAX);
        (
            std::cmp::Reverse(critical),
            std::cmp::Reverse(s.alerts.len() - critical),
            oldest,
            s.name.clone(),
        )
    };
    stores.sort_by_cached_key(rank);
    Ok(stores)
}

/// Evaluates and delivers every `period` while serving.
pub async fn run(db: SharedDb, period: Duration) {
    let http = match crate::outbound::client() {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(error = %e, "no HTTP client: alerts are not evaluated");
            return;
        }
    };
    // The first evaluation one period after start, not at once: a replica starting is not news,
    // and a test that evaluates at times of its own (the alert tests, the fleet view's) does not
    // race this loop's evaluation at the real time on the same rows (seen: a pending printer
    // alert deleted between the test's two evaluations on a loaded machine).
    let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
    loop {
        tick.tick().await;
        let now = crate::ingest::unix_ms(time::OffsetDateTime::now_utc());
        match evaluate(&db, now).await {
            Ok(c) => {
                for a in &c.opened {
                    tracing::warn!(kind = %a.kind, subject = %a.subject, "alert opened");
                }
                for a in &c.resolved {
                    tracing::info!(kind = %a.kind, subject = %a.subject, "alert resolved");
                }
            }
            Err(e) => tracing::warn!(error = %e, "evaluating the alerts failed"),
        }
        if let Err(e) = deliver_due(&db, &http, now).await {
            tracing::warn!(error = %e, "sending the alert webhooks failed");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_signature_is_the_one_the_standard_webhooks_spec_shows() {
        // The example of the Standard Webhooks specification (spec/standard-webhooks.md).
        let hook = Webhook {
            url: "https://example.com".into(),
            secret: "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw".into(),
        };
        let sig = sign(
            &hook,
            "msg_p5jXN8AQM9LWM0D4loKWxJek",
            1_614_265_330,
            r#"{"test": 2432232314}"#,
        )
        .unwrap();
        assert_eq!(sig, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
    }

    #[test]
    fn backoff_grows_to_an_hour() {
        assert_eq!(backoff(1), Duration::from_secs(5));
        assert_eq!(backoff(2), Duration::from_secs(20));
        assert_eq!(backoff(3), Duration::from_secs(80));
        assert_eq!(backoff(30), Duration::from_secs(3600));
    }

    #[test]
    fn thresholds_out_of_range_are_refused_naming_them() {
        let mut t = Thresholds::default();
        assert_eq!(t.check(), Ok(()));
        t.printer_minutes = 0;
        assert!(t.check().unwrap_err().contains("printer"));
        let t = Thresholds {
            skew_seconds: 100_000,
            ..Thresholds::default()
        };
        assert!(t.check().unwrap_err().contains("skew"));
        let mut t = Thresholds::default();
        t.store_wait_minutes.insert("Bad Store".into(), 10);
        assert!(t.check().unwrap_err().contains("store id"));
    }

    #[test]
    fn webhook_urls_are_https_or_this_machine() {
        assert!(check_url("https://hooks.example.com/x").is_ok());
        assert!(check_url("http://127.0.0.1:9000/hook").is_ok());
        assert!(check_url("http://hooks.example.com/x").is_err());
        assert!(check_url("ftp://x").is_err());
        assert!(check_url("not a url").is_err());
    }
}
