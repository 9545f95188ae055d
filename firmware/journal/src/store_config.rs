//! The store configuration from the CRM as the kiosk keeps it: the latest one the feed brought
//! (waiting for the executor's check), the last good one (what the kiosk runs, also after a
//! restart) and the last refused one with its reason. Kept in the journal's settings table, so
//! they have the journal's durability; the good one and its `store_config_applied` event (the
//! refused one and `store_config_refused`) commit in one transaction.
//!
//! Data flow: feed → [`crate::db::KioskDb`] (`FeedSink::apply`) → **received** → executor checks
//! it at a safe point → **good** or **refused** + event → outbox → CRM.

use kiosk_protocol::events::{Event, StoreConfigApplied, StoreConfigRefused};
use kiosk_protocol::store_config::StoreConfig;
use rusqlite::{Connection, OptionalExtension, params};

use crate::db::{DbError, KioskDb};

const RECEIVED: &str = "store_config.received";
const GOOD: &str = "store_config.good";
const REFUSED: &str = "store_config.refused";

/// A refused configuration: its version and why.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Refusal {
    /// The refused version.
    pub version: u64,
    /// Why (the `site.toml` key and what was expected).
    pub reason: String,
}

fn read<T: serde::de::DeserializeOwned>(
    sql: &Connection,
    key: &'static str,
) -> Result<Option<T>, DbError> {
    let text: Option<String> = sql
        .query_row("SELECT value FROM settings WHERE key = ?1", [key], |r| {
            r.get(0)
        })
        .optional()
        .map_err(|e| DbError::Corrupt {
            what: key,
            message: e.to_string(),
        })?;
    text.map(|t| serde_json::from_str(&t))
        .transpose()
        .map_err(|e| DbError::Corrupt {
            what: key,
            message: e.to_string(),
        })
}

fn write<T: serde::Serialize>(
    sql: &Connection,
    key: &'static str,
    value: &T,
) -> Result<(), DbError> {
    let text = serde_json::to_string(value).map_err(|e| DbError::Corrupt {
        what: key,
        message: e.to_string(),
    })?;
    sql.execute(
        "INSERT INTO settings (key, value) VALUES (?1, ?2) \
         ON CONFLICT(key) DO UPDATE SET value = excluded.value",
        params![key, text],
    )
    .map_err(|e| DbError::Corrupt {
        what: key,
        message: e.to_string(),
    })?;
    Ok(())
}

/// Keeps `config` as the latest received if it is newer than the one kept (a page re-applied
/// after a crash, or an older version, changes nothing). Returns whether it was kept.
pub(crate) fn keep_received(sql: &Connection, config: &StoreConfig) -> Result<bool, DbError> {
    let newer = read::<StoreConfig>(sql, RECEIVED)?.is_none_or(|r| config.version > r.version);
    if newer {
        write(sql, RECEIVED, config)?;
    }
    Ok(newer)
}

/// What the journal holds about store configurations, for `kiosk status`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Held {
    /// The last good one (what the kiosk runs).
    pub good: Option<StoreConfig>,
    /// The last refused one.
    pub refused: Option<Refusal>,
    /// The latest received.
    pub received: Option<StoreConfig>,
}

/// Reads what `sql` (a kiosk's journal, possibly opened read-only) holds.
pub fn held(sql: &Connection) -> Result<Held, DbError> {
    Ok(Held {
        good: read(sql, GOOD)?,
        refused: read(sql, REFUSED)?,
        received: read(sql, RECEIVED)?,
    })
}

impl KioskDb {
    /// The latest configuration the feed brought, checked or not.
    pub fn received_store_config(&self) -> Result<Option<StoreConfig>, DbError> {
        read(self.journal().sql(), RECEIVED)
    }

    /// The configuration the kiosk runs (the last one it applied), if any.
    pub fn good_store_config(&self) -> Result<Option<StoreConfig>, DbError> {
        read(self.journal().sql(), GOOD)
    }

    /// The last configuration refused, with its reason.
    pub fn refused_store_config(&self) -> Result<Option<Refusal>, DbError> {
        read(self.journal().sql(), REFUSED)
    }

    /// The received configuration the executor has not decided on yet (newer than both the good
    /// and the refused one).
    pub fn pending_store_config(&self) -> Result<Option<StoreConfig>, DbError> {
        let Some(received) = self.received_store_config()? else {
            return Ok(None);
        };
        let good = self.good_store_config()?.map_or(0, |g| g.version);
        let refused = self.refused_store_config()?.map_or(0, |r| r.version);
        Ok((received.version > good.max(refused)).then_some(received))
    }

    /// `config` is what the kiosk runs from now on: kept as the last good one with its
    /// `store_config_applied` event, in one transaction.
    pub fn store_config_applied(
        &self,
        config: &StoreConfig,
        services: Vec<String>,
    ) -> Result<(), DbError> {
        self.journal().transaction(|tx| {
            write(tx.sql(), GOOD, config)?;
            tx.append(Event::StoreConfigApplied(StoreConfigApplied {
                version: config.version,
                services,
            }))?;
            Ok::<_, DbError>(())
        })?;
        self.notify_appended();
        Ok(())
    }

    /// `version` was refused for `reason`: kept with its `store_config_refused` event, in one
    /// transaction (the good one is left alone).
    pub fn store_config_refused(&self, version: u64, reason: &str) -> Result<(), DbError> {
        let running_version = self.good_store_config()?.map_or(0, |g| g.version);
        let reason: String = reason.chars().take(500).collect();
        self.journal().transaction(|tx| {
            write(
                tx.sql(),
                REFUSED,
                &Refusal {
                    version,
                    reason: reason.clone(),
                },
            )?;
            tx.append(Event::StoreConfigRefused(StoreConfigRefused {
                version,
                reason: reason.clone(),
                running_version,
            }))?;
            Ok::<_, DbError>(())
        })?;
        self.notify_appended();
        Ok(())
    }
}
