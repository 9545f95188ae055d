//! Daily roll-ups of the dashboard's figures: one row per store, kiosk and local day
//! (`daily_figures`, schema version 8) holding that day's [`WindowRows`] with its tickets
//! counted per day, so that a store view over a year reads a few hundred small rows instead of
//! every turn and event of the year (docs/PERFORMANCE.md).
//!
//! Data flow: ingest → `turns`, `events` → **roll-up** (the storage job, hourly: every local day
//! that ended at least [`ROLLUP_GRACE_MS`] ago, and again any day that late events touched) →
//! `daily_figures` → a long window's dashboard: raw rows for the partial first day and for the
//! days not rolled up yet, roll-ups for the whole days between (the same figures: a day's
//! roll-up is the same queries over that day). A store's roll-ups are made in its time zone;
//! when that changes they are made again.

use std::collections::BTreeMap;

use super::dashboard::{DashboardQuery, WindowRows, next_day_start_ms, start_of_day_ms};
use super::dashboard::{QUARTER_MS, TicketCount, TurnTiming};
use super::dialect::Dialect;
use super::exec::{Exec, args};
use super::model::DbResult;

/// A day is rolled up once it ended this long ago (turns called after midnight belong to the
/// day of their issue).
pub const ROLLUP_GRACE_MS: i64 = 24 * 3600 * 1000;
/// Days rolled up per store and transaction.
pub const DAYS_PER_STEP: usize = 31;
/// The setting holding the reception time up to which late events were looked for.
const CHECKED_KEY: &str = "rollup_checked_ms";

/// A store's roll-up mark: its time zone then, and the end of the days rolled up.
async fn mark(e: &impl Exec, store: &str) -> DbResult<Option<(Option<String>, i64)>> {
    Ok(
        match e
            .query_opt(
                "SELECT timezone, rolled_until_ms FROM rollup_marks WHERE store_id = ?1",
                args![store],
            )
            .await?
        {
            Some(r) => Some((r.get(0)?, r.get(1)?)),
            None => None,
        },
    )
}

/// The figures of a long window: raw rows where no roll-up covers, roll-ups for the whole local
/// days that have them.
pub(crate) async fn window_with_rollups(
    e: &impl Exec,
    q: &DashboardQuery,
    timezone: Option<&str>,
) -> DbResult<WindowRows> {
    let (s, k) = (q.store_id.as_str(), q.kiosk_id.as_deref());
    let (since, now) = (q.since_ms, q.now_ms);
    let rolled = match mark(e, s).await? {
        Some((tz, until)) if tz.as_deref() == timezone => until,
        _ => return window_rows(e, s, k, since, now).await,
    };
    let first = if start_of_day_ms(timezone, since) == since {
        since
    } else {
        next_day_start_ms(timezone, since)
    };
    let last = rolled.min(start_of_day_ms(timezone, now));
    if first >= last {
        return window_rows(e, s, k, since, now).await;
    }
    // The partial first day, the rolled days and the last days: all sent at once (pipelined
    // on PostgreSQL), merged in order.
    let rolled_days = async {
        e.query(
            "SELECT figures FROM daily_figures WHERE store_id = ?1 AND day_ms >= ?3 AND day_ms < ?4
               AND (CAST(?2 AS TEXT) IS NULL OR kiosk_id = ?2)",
            args![s, k, first, last],
        )
        .await
    };
    // A window starting on a day's start has no partial first day to read.
    let head = async {
        if first > since {
            window_rows(e, s, k, since, first - 1).await
        } else {
            Ok(WindowRows::default())
        }
    };
    let (mut w, days, tail) =
        futures::try_join!(head, rolled_days, window_rows(e, s, k, last, now))?;
    for r in days {
        let text: String = r.get(0)?;
        w.merge(serde_json::from_str(&text)?);
    }
    w.merge(tail);
    Ok(w)
}

/// The roll-ups of store `s`'s whole local days starting in `[from, to)`, merged over its kiosks,
/// by day start; with the end of the days rolled up (days from there on have none: read them raw).
/// Nothing is rolled up when the roll-ups were made in another time zone than `timezone`.
pub(crate) async fn rolled_days(
    e: &impl Exec,
    s: &str,
    timezone: Option<&str>,
    from: i64,
    to: i64,
) -> DbResult<(i64, BTreeMap<i64, WindowRows>)> {
    let rolled = match mark(e, s).await? {
        Some((tz, until)) if tz.as_deref() == timezone => until,
        _ => return Ok((i64::MIN, BTreeMap::new())),
    };
    let mut days: BTreeMap<i64, WindowRows> = BTreeMap::new();
    for r in e
        .query(
            "SELECT day_ms, figures FROM daily_figures WHERE store_id = ?1 AND day_ms >= ?2
               AND day_ms < ?3",
            args![s, from, to.min(rolled)],
        )
        .await?
    {
        let (day, text): (i64, String) = (r.get(0)?, r.get(1)?);
        days.entry(day)
            .or_default()
            .merge(serde_json::from_str(&text)?);
    }
    Ok((rolled, days))
}

/// Looks for events received since the last look that fall on days already rolled up, and
/// moves those stores' marks back to the earliest such day; returns the stores.
pub(crate) async fn reopen_late_days(e: &impl Exec, now_ms: i64) -> DbResult<Vec<String>> {
    let checked: i64 = match e
        .query_opt(
            "SELECT value FROM settings WHERE key = ?1",
            args![CHECKED_KEY],
        )
        .await?
    {
        Some(r) => r.get::<String>(0)?.parse().unwrap_or(0),
        None => 0,
    };
    let mut reopened = Vec::new();
    for r in e
        .query(
            "SELECT ev.store_id, MIN(ev.corrected_ms), m.timezone FROM events ev
             JOIN rollup_marks m ON m.store_id = ev.store_id
             WHERE ev.received_ms >= ?1 AND ev.corrected_ms < m.rolled_until_ms
             GROUP BY ev.store_id, m.timezone",
            args![checked],
        )
        .await?
    {
        let (store, earliest, tz): (String, i64, Option<String>) =
            (r.get(0)?, r.get(1)?, r.get(2)?);
        e.execute(
            "UPDATE rollup_marks SET rolled_until_ms = ?2 WHERE store_id = ?1",
            args![&store, start_of_day_ms(tz.as_deref(), earliest)],
        )
        .await?;
        reopened.push(store);
    }
    e.execute(
        "INSERT INTO settings (key, value) VALUES (?1, ?2)
         ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        args![CHECKED_KEY, now_ms.to_string()],
    )
    .await?;
    Ok(reopened)
}

/// Rolls up to [`DAYS_PER_STEP`] more days of `store` (one transaction); how many it did (0:
/// up to date).
pub(crate) async fn roll_up_store(e: &impl Exec, store: String, now_ms: i64) -> DbResult<u64> {
    let timezone: Option<String> = e
        .query_opt(
            "SELECT timezone FROM store_timezones WHERE store_id = ?1",
            args![&store],
        )
        .await?
        .map(|r| r.get(0))
        .transpose()?;
    let tz = timezone.as_deref();
    let mut from = match mark(e, &store).await? {
        Some((rolled_tz, until)) if rolled_tz == timezone => until,
        other => {
            if other.is_some() {
                // Made in another time zone: their days are not this zone's days.
                e.execute(
                    "DELETE FROM daily_figures WHERE store_id = ?1",
                    args![&store],
                )
                .await?;
            }
            let earliest: Option<i64> = e
                .query_one(
                    "SELECT MIN(issued_ms) FROM turns WHERE store_id = ?1",
                    args![&store],
                )
                .await?
                .get(0)?;
            let Some(earliest) = earliest else {
                return Ok(0);
            };
            start_of_day_ms(tz, earliest)
        }
    };
    let end = start_of_day_ms(tz, now_ms - ROLLUP_GRACE_MS);
    let kiosks: Vec<String> = e
        .query(
            "SELECT id FROM kiosks WHERE store_id = ?1 ORDER BY id",
            args![&store],
        )
        .await?
        .iter()
        .map(|r| r.get(0))
        .collect::<DbResult<_>>()?;
    let mut days = 0;
    while from < end && days < DAYS_PER_STEP as u64 {
        let next = next_day_start_ms(tz, from);
        e.execute(
            "DELETE FROM daily_figures WHERE store_id = ?1 AND day_ms = ?2",
            args![&store, from],
        )
        .await?;
        for kiosk in &kiosks {
            let w = window_rows(e, &store, Some(kiosk), from, next - 1)
                .await?
                .at_day(from);
            if w.is_empty() {
                continue;
            }
            // An upsert: two replicas' storage jobs (or the job and `crm-endpoint retention`)
            // may roll the same day at once; both compute the same figures, and the second
            // waits for the first's row and rewrites it instead of failing on the key.
            e.execute(
                "INSERT INTO daily_figures (store_id, kiosk_id, day_ms, figures) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (store_id, day_ms, kiosk_id) DO UPDATE SET figures = excluded.figures",
                args![&store, kiosk, from, serde_json::to_string(&w)?],
            )
            .await?;
        }
        from = next;
        days += 1;
    }
    e.execute(
        "INSERT INTO rollup_marks (store_id, timezone, rolled_until_ms) VALUES (?1, ?2, ?3)
         ON CONFLICT (store_id) DO UPDATE SET timezone = excluded.timezone,
           rolled_until_ms = excluded.rolled_until_ms",
        args![&store, timezone, from],
    )
    .await?;
    Ok(days)
}

/// Deletes the roll-ups of days before `cutoff_ms` (the aggregates retention).
pub(crate) async fn delete_before(e: &impl Exec, cutoff_ms: i64) -> DbResult<u64> {
    e.execute(
        "DELETE FROM daily_figures WHERE day_ms < ?1",
        args![cutoff_ms],
    )
    .await
}

/// SQL condition on a `survey_answered` row `e`: it is its turn's kept answer, or has no turn.
pub(crate) fn first_answer_only(d: Dialect) -> String {
    format!(
        "NOT EXISTS (SELECT 1 FROM survey_answers a WHERE a.turn_id = {} AND a.event_id <> e.id)",
        d.envelope_field("payload.turn_id")
    )
}

/// The figures of store `s` (or its kiosk `k`) from `since` to `now` inclusive, from the raw rows
/// (`turns`, `events`). `CAST(?2 AS TEXT) IS NULL` is the optional kiosk filter (PostgreSQL
/// cannot type a bare `$2 IS NULL`).
pub(crate) async fn window_rows(
    e: &impl Exec,
    s: &str,
    k: Option<&str>,
    since: i64,
    now: i64,
) -> DbResult<WindowRows> {
    // Five independent queries of one snapshot, sent together: on PostgreSQL they are pipelined
    // on the connection (one wait instead of five round trips of parse, plan and execute); on
    // SQLite they run one after the other as before.
    let tickets = async {
        e.query(
            "SELECT issued_ms / ?5, COALESCE(service, '?'), identified, COUNT(*) FROM turns
             WHERE store_id = ?1 AND issued_ms >= ?3 AND issued_ms <= ?4
               AND (CAST(?2 AS TEXT) IS NULL OR kiosk_id = ?2)
             GROUP BY 1, 2, 3",
            args![s, k, since, now, QUARTER_MS],
        )
        .await?
        .iter()
        .map(|r| {
            Ok(TicketCount {
                quarter: r.get(0)?,
                service: r.get(1)?,
                identified: r.get(2)?,
                count: r.get(3)?,
            })
        })
        .collect::<DbResult<Vec<_>>>()
    };
    let timings = async {
        e.query(
            "SELECT COALESCE(service, '?'), called_ms - issued_ms, served_ms - called_ms FROM turns
             WHERE store_id = ?1 AND issued_ms >= ?3 AND issued_ms <= ?4
               AND (CAST(?2 AS TEXT) IS NULL OR kiosk_id = ?2) AND called_ms IS NOT NULL",
            args![s, k, since, now],
        )
        .await?
        .iter()
        .map(|r| {
            Ok(TurnTiming {
                service: r.get(0)?,
                wait_ms: r.get(1)?,
                service_ms: r.get(2)?,
            })
        })
        .collect::<DbResult<Vec<_>>>()
    };
    let identified_sql = format!(
        "SELECT {}, COUNT(*) FROM events
         WHERE store_id = ?1 AND type = 'customer_identified' AND corrected_ms >= ?3
           AND corrected_ms <= ?4 AND (CAST(?2 AS TEXT) IS NULL OR kiosk_id = ?2)
         GROUP BY 1",
        e.dialect().envelope_field("payload.by")
    );
    let identified_by = async {
        Ok::<_, super::model::DbError>(
            e.query(&identified_sql, args![s, k, since, now])
                .await?
                .iter()
                .map(|r| Ok((r.get::<Option<String>>(0)?, r.get::<i64>(1)?)))
                .collect::<DbResult<Vec<_>>>()?
                .into_iter()
                .filter_map(|(by, n)| Some((by?, n)))
                .collect::<Vec<_>>(),
        )
    };
    // Each turn's first answer only (docs/DESIGN.md invariant 17): answers stored before the
    // endpoint refused second ones are left out here.
    let score_sql = format!(
        "SELECT {}, COUNT(*) FROM events e
         WHERE store_id = ?1 AND type = 'survey_answered' AND corrected_ms >= ?3
           AND corrected_ms <= ?4 AND (CAST(?2 AS TEXT) IS NULL OR kiosk_id = ?2) AND {}
         GROUP BY 1",
        e.dialect().envelope_field("payload.score"),
        first_answer_only(e.dialect())
    );
    let scores = async {
        Ok::<_, super::model::DbError>(
            e.query(&score_sql, args![s, k, since, now])
                .await?
                .iter()
                .map(|r| Ok((r.get::<Option<String>>(0)?, r.get::<i64>(1)?)))
                .collect::<DbResult<Vec<_>>>()?
                .into_iter()
                .filter_map(|(score, n)| Some((score?.parse().ok()?, n)))
                .collect::<Vec<_>>(),
        )
    };
    let campaigns = async {
        e.query(
            "SELECT f.campaign_id, f.variant,
               CAST(SUM(CASE WHEN f.kind = 'shown' THEN 1 ELSE 0 END) AS BIGINT),
               CAST(SUM(CASE WHEN f.kind = 'redeemed' THEN 1 ELSE 0 END) AS BIGINT)
             FROM events e JOIN campaign_facts f ON f.event_id = e.id
             WHERE e.store_id = ?1 AND e.type IN ('campaign_shown', 'coupon_redeemed')
               AND e.corrected_ms >= ?3 AND e.corrected_ms <= ?4
               AND (CAST(?2 AS TEXT) IS NULL OR e.kiosk_id = ?2)
             GROUP BY 1, 2 ORDER BY 1, 2",
            args![s, k, since, now],
        )
        .await?
        .iter()
        .map(|r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
        .collect::<DbResult<Vec<_>>>()
    };
    let (tickets, timings, identified_by, scores, campaigns) =
        futures::try_join!(tickets, timings, identified_by, scores, campaigns)?;
    Ok(WindowRows {
        tickets,
        timings,
        identified_by,
        scores,
        campaigns,
    })
}
