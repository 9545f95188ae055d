//! The endpoint's database layer behind one async [`Database`] trait, with two backends: SQLite
//! ([`sqlite::SqliteDb`], the default, one file) and PostgreSQL ([`postgres::PgDb`], for a
//! fleet: several endpoint replicas share one database and rely on its transactions and unique
//! constraints). ("Store" in this crate is always a shop: [`StoreRecord`], `store_id`.)
//!
//! Data flow: HTTP handlers → (validated, time-corrected) [`IngestBatch`] → **db** → feed /
//! statistics. Handlers never speak SQL.
//!
//! Layout (this module only gathers its children and opens a URL; none of them imports it):
//! [`model`] holds the errors, the records and the pure decisions (segments, consent flags,
//! redaction, NPS); [`database`] the trait; `shared` the logic that speaks SQL, written once for
//! both databases and run through `exec::Exec`; [`dialect`] the seam where the two SQL dialects
//! differ (placeholders, `GREATEST`, JSON access); [`migrations`] the numbered schema of each;
//! [`dashboard`] the dashboard's figures from its rows; [`report`] the managers' reports from the
//! same rows; [`queue`] each store's live queue (the
//! order-independent fold of a turn's steps and the figures); `methods` the trait methods both backends
//! implement alike. [`sqlite`] and [`postgres`] keep only what really differs: how a call gets a
//! connection and a transaction (one writer with group commit and a reader, versus a pool), how
//! a batch's events are inserted (per event, versus one `UNNEST` statement) and the dashboard
//! facts of a batch (per event, versus folded per batch).
//! The shared test suite in `tests/` runs against both.

pub mod accounts;
pub mod alerts;
pub mod customers;
pub mod dashboard;
pub mod database;
pub mod dialect;
pub mod exec;
pub mod forward;
pub mod limits;
mod methods;
pub mod migrations;
pub mod model;
pub mod phone;
pub mod places;
pub mod postgres;
pub mod presence;
pub mod queue;
pub mod releases;
pub mod report;
pub mod rollup;
pub(crate) mod shared;
pub mod sqlite;
pub mod storage;

use std::sync::Arc;

pub use dashboard::{Dashboard, DashboardQuery, StoreSummary};
pub use database::{Database, SharedDb};
pub use limits::RateLimit;
pub use model::*;
pub use postgres::CHANGES_CHANNEL;
pub use queue::{LiveQueue, LiveQueueQuery};

/// Opens (and migrates) the database a URL names: `sqlite://PATH` (`sqlite::memory:` for a throwaway
/// in-memory database) or `postgres://...` / `postgresql://...`.
pub async fn open(url: &str) -> DbResult<SharedDb> {
    if let Some(path) = url.strip_prefix("sqlite://") {
        Ok(Arc::new(sqlite::SqliteDb::open(path).await?))
    } else if url == "sqlite::memory:" {
        Ok(Arc::new(sqlite::SqliteDb::open(":memory:").await?))
    } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        Ok(Arc::new(postgres::PgDb::connect(url).await?))
    } else {
        Err(DbError::BadUrl(redact_url(url)))
    }
}

#[cfg(test)]
mod redact_tests {
    #[test]
    fn a_password_in_a_database_url_never_reaches_a_message() {
        assert_eq!(
            super::redact_url("postgres://crm:s3cr%40t@db.example:5432/crm?sslmode=require"),
            "postgres://crm:***@db.example:5432/crm?sslmode=require"
        );
        assert_eq!(
            super::redact_url("postgres://crm@db/crm"),
            "postgres://crm@db/crm"
        );
        assert_eq!(
            super::redact_url("sqlite:///var/lib/crm/crm.db"),
            "sqlite:///var/lib/crm/crm.db"
        );
    }
}
