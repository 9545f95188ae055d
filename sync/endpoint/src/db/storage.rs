//! Storage that grows for years: the retention policy of each data class (personal data,
//! events, aggregates), set per tenant (one tenant per database) and enforced by a periodic
//! job, and on PostgreSQL the monthly partitions of `events` (schema version 8).
//!
//! Data flow: ingest → `events` (PostgreSQL: the partition of the month it was received in) →
//! **storage job** (`crm-endpoint serve` runs it every [`MAINTENANCE_PERIOD`]; `crm-endpoint
//! retention apply` once) → partitions created ahead, past ones dropped whole; personal data
//! past retention erased as `erase_customer` erases it; aggregates (`turns`) deleted past theirs.
//! SQLite has no partitions: the same policy is a `DELETE`.

use std::fmt;
use std::time::Duration;

use kiosk_protocol::CardToken;
use serde::{Deserialize, Serialize};

use super::exec::{Exec, args};
use super::model::{DbError, DbResult};

/// How often `serve` runs the storage job.
pub const MAINTENANCE_PERIOD: Duration = Duration::from_secs(3600);
/// The longest retention that can be set (100 years); longer is "forever".
pub const MAX_RETENTION_DAYS: u32 = 36_500;
/// Months of event partitions kept ready ahead of the current one.
pub const MONTHS_AHEAD: u32 = 2;
/// Customers erased per transaction by the personal-data retention.
const ERASE_CHUNK: usize = 200;
const DAY_MS: i64 = 86_400_000;

/// A class of stored data with its own retention.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum DataClass {
    /// Customers' profiles (name, e-mail, phone) and their stores: erased as a customer's
    /// erasure does, counted from their last visit (or registration).
    Personal,
    /// The raw events kiosks sent (envelopes, device logs), counted from their reception.
    Events,
    /// The dashboard's per-turn figures (`turns`), counted from the turn's issue.
    Aggregates,
}

impl DataClass {
    /// Every class.
    pub const ALL: [DataClass; 3] = [
        DataClass::Personal,
        DataClass::Events,
        DataClass::Aggregates,
    ];

    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            DataClass::Personal => "personal",
            DataClass::Events => "events",
            DataClass::Aggregates => "aggregates",
        }
    }
}

impl fmt::Display for DataClass {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for DataClass {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        DataClass::ALL
            .into_iter()
            .find(|c| c.as_str() == s)
            .ok_or_else(|| format!("{s:?} is not a data class: personal, events or aggregates"))
    }
}

/// How long each class is kept: days, `None` for forever (the default of every class, so
/// that nothing is deleted before someone decides).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, schemars::JsonSchema,
)]
pub struct RetentionPolicy {
    /// Personal data, days after the customer's last visit.
    pub personal_days: Option<u32>,
    /// Raw events, days after reception.
    pub events_days: Option<u32>,
    /// Per-turn figures, days after the turn.
    pub aggregates_days: Option<u32>,
}

impl RetentionPolicy {
    /// The retention of `class`.
    pub fn of(&self, class: DataClass) -> Option<u32> {
        match class {
            DataClass::Personal => self.personal_days,
            DataClass::Events => self.events_days,
            DataClass::Aggregates => self.aggregates_days,
        }
    }

    fn set(&mut self, class: DataClass, days: Option<u32>) {
        match class {
            DataClass::Personal => self.personal_days = days,
            DataClass::Events => self.events_days = days,
            DataClass::Aggregates => self.aggregates_days = days,
        }
    }

    /// The cut-off of `class` at `now_ms`: what is older goes.
    pub fn cutoff_ms(&self, class: DataClass, now_ms: i64) -> Option<i64> {
        self.of(class)
            .map(|days| now_ms.saturating_sub(i64::from(days) * DAY_MS))
    }
}

/// A retention as the command line and the admin API write it: a number of days (`395`,
/// `395d`), years (`7y`: 365 days each) or `forever`; from 1 day to [`MAX_RETENTION_DAYS`].
pub fn parse_retention(s: &str) -> Result<Option<u32>, String> {
    let s = s.trim();
    if s == "forever" {
        return Ok(None);
    }
    let (num, per) = if let Some(n) = s.strip_suffix('y') {
        (n, 365)
    } else {
        (s.strip_suffix('d').unwrap_or(s), 1)
    };
    let n: u32 = num.parse().map_err(|_| {
        format!("{s:?} is not a retention: write days (395), years (7y) or forever")
    })?;
    let days = n.saturating_mul(per);
    if days == 0 || days > MAX_RETENTION_DAYS {
        return Err(format!(
            "retention {s:?} is out of range: 1 day to {MAX_RETENTION_DAYS} days (or forever)"
        ));
    }
    Ok(Some(days))
}

/// A retention as the command line reads it (`None`: forever).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retention(pub Option<u32>);

/// [`parse_retention`] for the command line.
pub fn parse_retention_arg(s: &str) -> Result<Retention, String> {
    parse_retention(s).map(Retention)
}

/// What one run of the storage job did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct StorageReport {
    /// Event partitions created ahead (PostgreSQL).
    pub partitions_created: Vec<String>,
    /// Event partitions dropped whole, past the events retention (PostgreSQL).
    pub partitions_dropped: Vec<String>,
    /// Event rows deleted one by one (SQLite; on PostgreSQL those of the default partition).
    pub events_deleted: u64,
    /// Customers erased past the personal-data retention.
    pub customers_erased: u64,
    /// Per-turn figures deleted past the aggregates retention.
    pub turns_deleted: u64,
    /// Daily roll-ups deleted past the aggregates retention.
    pub rollups_deleted: u64,
    /// Store days rolled up ([`super::rollup`]).
    pub days_rolled_up: u64,
}

/// The stored policy.
pub(crate) async fn retention(e: &impl Exec) -> DbResult<RetentionPolicy> {
    let mut policy = RetentionPolicy::default();
    for r in e
        .query("SELECT data_class, days FROM retention", &[])
        .await?
    {
        let class: String = r.get(0)?;
        let days: Option<i64> = r.get(1)?;
        let class = class.parse::<DataClass>().map_err(DbError::Corrupt)?;
        let days = days
            .map(u32::try_from)
            .transpose()
            .map_err(|_| DbError::Corrupt(format!("retention of {class} out of range")))?;
        policy.set(class, days);
    }
    Ok(policy)
}

/// Sets the retention of `class` (`None`: forever).
pub(crate) async fn set_retention(
    e: &impl Exec,
    class: DataClass,
    days: Option<u32>,
    now_ms: i64,
) -> DbResult<()> {
    if days.is_some_and(|d| d == 0 || d > MAX_RETENTION_DAYS) {
        return Err(DbError::Refused(format!(
            "retention of {class} must be 1 to {MAX_RETENTION_DAYS} days, or forever"
        )));
    }
    e.execute(
        "INSERT INTO retention (data_class, days, updated_ms) VALUES (?1, ?2, ?3)
         ON CONFLICT (data_class) DO UPDATE SET days = excluded.days, updated_ms = excluded.updated_ms",
        args![class.as_str(), days.map(i64::from), now_ms],
    )
    .await?;
    Ok(())
}

/// Customers whose last visit (or registration, never visited) is before `cutoff_ms`, at most
/// [`ERASE_CHUNK`] of them. Customers with neither date are kept: nothing says they are old.
pub(crate) async fn customers_past(e: &impl Exec, cutoff_ms: i64) -> DbResult<Vec<CardToken>> {
    e.query(
        "SELECT card_token FROM customers WHERE COALESCE(last_visit_ms, registered_ms) < ?1
         ORDER BY card_token LIMIT ?2",
        args![cutoff_ms, ERASE_CHUNK as i64],
    )
    .await?
    .iter()
    .map(|r| {
        let t: String = r.get(0)?;
        CardToken::try_from(t).map_err(|e| DbError::Corrupt(format!("stored card token: {e}")))
    })
    .collect()
}

/// Deletes the per-turn figures and daily roll-ups before `cutoff_ms`: (turns, roll-ups).
pub(crate) async fn delete_aggregates_before(
    e: &impl Exec,
    cutoff_ms: i64,
) -> DbResult<(u64, u64)> {
    let turns = delete_turns_before(e, cutoff_ms).await?;
    let rollups = super::rollup::delete_before(e, cutoff_ms).await?;
    Ok((turns, rollups))
}

/// Erases `tokens` as [`super::database::Database::erase_customer`] does; in a transaction.
pub(crate) async fn erase_all(e: &impl Exec, tokens: Vec<CardToken>, now_ms: i64) -> DbResult<u64> {
    let mut n = 0;
    for t in tokens {
        super::shared::erase_customer(e, t, now_ms).await?;
        n += 1;
    }
    Ok(n)
}

/// Deletes the per-turn figures of turns before `cutoff_ms`.
pub(crate) async fn delete_turns_before(e: &impl Exec, cutoff_ms: i64) -> DbResult<u64> {
    e.execute(
        "DELETE FROM turns WHERE COALESCE(issued_ms, called_ms, served_ms) < ?1",
        args![cutoff_ms],
    )
    .await
}

/// Deletes the events received before `cutoff_ms` (SQLite; PostgreSQL's default partition).
pub(crate) async fn delete_events_before(
    e: &impl Exec,
    table: &str,
    cutoff_ms: i64,
) -> DbResult<u64> {
    e.execute(
        &format!("DELETE FROM {table} WHERE received_ms < ?1"),
        args![cutoff_ms],
    )
    .await
}

/// A UTC month, the unit of PostgreSQL's event partitions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Month {
    /// Year.
    pub year: i32,
    /// 1 to 12.
    pub month: u8,
}

impl Month {
    /// The month `ms` (unix ms, UTC) falls in.
    pub fn of_ms(ms: i64) -> Month {
        let t = time::OffsetDateTime::from_unix_timestamp(ms.div_euclid(1000))
            .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
        Month {
            year: t.year(),
            month: u8::from(t.month()),
        }
    }

    /// The next month.
    pub fn next(self) -> Month {
        if self.month == 12 {
            Month {
                year: self.year + 1,
                month: 1,
            }
        } else {
            Month {
                year: self.year,
                month: self.month + 1,
            }
        }
    }

    /// Its first instant, unix ms.
    pub fn start_ms(self) -> i64 {
        let month = time::Month::try_from(self.month).unwrap_or(time::Month::January);
        time::Date::from_calendar_date(self.year, month, 1)
            .map(|d| d.midnight().assume_utc().unix_timestamp() * 1000)
            .unwrap_or(0)
    }

    /// The partition's name: `events_p202612`.
    pub fn partition(self) -> String {
        format!("events_p{:04}{:02}", self.year, self.month)
    }

    /// The month of a partition's name.
    pub fn of_partition(name: &str) -> Option<Month> {
        let digits = name.strip_prefix("events_p")?;
        if digits.len() != 6 || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let year = digits[..4].parse().ok()?;
        let month = digits[4..].parse().ok()?;
        (1..=12).contains(&month).then_some(Month { year, month })
    }
}

/// Serializes the partition maintenance of every replica.
const PARTITION_LOCK: i64 = 0x6b69_6f73_6b70_6172;

/// PostgreSQL: the event partitions, oldest first (the default one left out).
pub(crate) async fn pg_partitions(c: &tokio_postgres::Client) -> DbResult<Vec<Month>> {
    let mut months: Vec<Month> = c
        .query(
            "SELECT c.relname::text FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
             WHERE i.inhparent = 'events'::regclass",
            &[],
        )
        .await?
        .iter()
        .filter_map(|r| Month::of_partition(r.get::<_, &str>(0)))
        .collect();
    months.sort();
    Ok(months)
}

/// Creates the partitions of this month and the [`MONTHS_AHEAD`] next ones that are missing.
/// Rows the default partition holds for such a month move into it first (attaching fails
/// while the default partition holds rows of the new range).
pub(crate) async fn pg_create_ahead(
    c: &mut tokio_postgres::Client,
    now_ms: i64,
    report: &mut StorageReport,
) -> DbResult<()> {
    let mut month = Month::of_ms(now_ms);
    for _ in 0..=MONTHS_AHEAD {
        let tx = c.transaction().await?;
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&PARTITION_LOCK])
            .await?;
        let exists: bool = tx
            .query_one("SELECT to_regclass($1) IS NOT NULL", &[&month.partition()])
            .await?
            .get(0);
        if !exists {
            let (name, lo, hi) = (month.partition(), month.start_ms(), month.next().start_ms());
            tx.batch_execute(&format!(
                "CREATE TABLE {name} (LIKE events INCLUDING DEFAULTS INCLUDING CONSTRAINTS);
                 WITH moved AS (DELETE FROM events_default
                     WHERE received_ms >= {lo} AND received_ms < {hi} RETURNING *)
                   INSERT INTO {name} SELECT * FROM moved;
                 ALTER TABLE events ATTACH PARTITION {name} FOR VALUES FROM ({lo}) TO ({hi});"
            ))
            .await?;
            report.partitions_created.push(name);
        }
        tx.commit().await?;
        month = month.next();
    }
    Ok(())
}

/// Drops the partitions whose every row is older than `cutoff_ms`, with the rows of
/// `event_ids` that dedupe them, and deletes the default partition's rows older than it.
pub(crate) async fn pg_drop_before(
    c: &mut tokio_postgres::Client,
    cutoff_ms: i64,
    report: &mut StorageReport,
) -> DbResult<()> {
    for month in pg_partitions(c).await? {
        let end = month.next().start_ms();
        if end > cutoff_ms {
            break;
        }
        let tx = c.transaction().await?;
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&PARTITION_LOCK])
            .await?;
        let name = month.partition();
        tx.batch_execute(&format!("DROP TABLE IF EXISTS {name}"))
            .await?;
        tx.execute("DELETE FROM event_ids WHERE received_ms < $1", &[&end])
            .await?;
        tx.commit().await?;
        report.partitions_dropped.push(name);
    }
    let n = c
        .execute(
            "DELETE FROM events_default WHERE received_ms < $1",
            &[&cutoff_ms],
        )
        .await?;
    c.execute(
        "DELETE FROM event_ids WHERE received_ms < $1 AND NOT EXISTS
           (SELECT 1 FROM events e WHERE e.id = event_ids.id)",
        &[&cutoff_ms],
    )
    .await?;
    report.events_deleted += n;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retentions_read_as_days_years_or_forever_and_refuse_the_rest() {
        assert_eq!(parse_retention("395"), Ok(Some(395)));
        assert_eq!(parse_retention("30d"), Ok(Some(30)));
        assert_eq!(parse_retention("7y"), Ok(Some(2555)));
        assert_eq!(parse_retention("forever"), Ok(None));
        for bad in ["0", "-3", "abc", "3w", "", "36501", "101y", "99999999999"] {
            let err = parse_retention(bad).unwrap_err();
            assert!(err.contains("retention"), "{bad}: {err}");
        }
    }

    #[test]
    fn months_name_their_partitions_and_know_their_bounds() {
        let dec = Month::of_ms(1_797_000_000_000);
        assert_eq!(dec.partition(), "events_p202612");
        assert_eq!(dec.next().partition(), "events_p202701");
        assert_eq!(Month::of_partition("events_p202612"), Some(dec));
        assert_eq!(Month::of_partition("events_default"), None);
        assert_eq!(Month::of_partition("events_p202613"), None);
        assert_eq!(dec.next().start_ms(), 1_798_761_600_000);
        assert!(dec.start_ms() <= 1_797_000_000_000 && 1_797_000_000_000 < dec.next().start_ms());
    }
}
