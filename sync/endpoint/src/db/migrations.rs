//! The schema of both databases as numbered, versioned migrations (`migrations/sqlite/NNNN_*.sql`
//! and `migrations/postgres/NNNN_*.sql`, the same numbers on both), recorded in a one-row
//! `schema_version` table.
//!
//! Each migration runs in its own transaction together with the version bump, so a crash
//! mid-migration leaves the previous version. A database whose version is newer than this
//! endpoint knows is refused with [`DbError::NewerSchema`] naming both versions: we never guess at
//! a schema we do not know. A database made before versions were recorded (no `schema_version`
//! row) counts as version 0; migration 1 is exactly the schema those endpoints created, written
//! `IF NOT EXISTS`, so such a database is adopted as version 1 unchanged.
//!
//! The runner is per backend (sync rusqlite, async tokio-postgres); what to run is decided here,
//! once, by [`pending`].

use super::dialect::Dialect;
use super::model::{DbError, DbResult};

/// One step of the schema.
#[derive(Debug, Clone, Copy)]
pub struct Migration {
    /// The version this migration brings the database to (1, 2, ...; no gaps).
    pub version: i64,
    /// What it does, for logs.
    pub name: &'static str,
    /// The SQL, run in one transaction.
    pub sql: &'static str,
}

/// SQLite's migrations, oldest first.
pub const SQLITE: &[Migration] = &[
    Migration {
        version: 1,
        name: "initial",
        sql: include_str!("../../migrations/sqlite/0001_initial.sql"),
    },
    Migration {
        version: 2,
        name: "live_queue",
        sql: include_str!("../../migrations/sqlite/0002_live_queue.sql"),
    },
    Migration {
        version: 3,
        name: "figures",
        sql: include_str!("../../migrations/sqlite/0003_figures.sql"),
    },
    Migration {
        version: 4,
        name: "audit",
        sql: include_str!("../../migrations/sqlite/0004_audit.sql"),
    },
    Migration {
        version: 5,
        name: "skew_samples",
        sql: include_str!("../../migrations/sqlite/0005_skew_samples.sql"),
    },
    Migration {
        version: 6,
        name: "turn_push",
        sql: include_str!("../../migrations/sqlite/0006_turn_push.sql"),
    },
    Migration {
        version: 7,
        name: "fleet_state",
        sql: include_str!("../../migrations/sqlite/0007_fleet_state.sql"),
    },
    Migration {
        version: 8,
        name: "event_partitions",
        sql: include_str!("../../migrations/sqlite/0008_event_partitions.sql"),
    },
    Migration {
        version: 9,
        name: "alerts",
        sql: include_str!("../../migrations/sqlite/0009_alerts.sql"),
    },
    Migration {
        version: 10,
        name: "store_config",
        sql: include_str!("../../migrations/sqlite/0010_store_config.sql"),
    },
    Migration {
        version: 11,
        name: "releases",
        sql: include_str!("../../migrations/sqlite/0011_releases.sql"),
    },
    Migration {
        version: 12,
        name: "store_regions",
        sql: include_str!("../../migrations/sqlite/0012_store_regions.sql"),
    },
    Migration {
        version: 13,
        name: "accounts",
        sql: include_str!("../../migrations/sqlite/0013_accounts.sql"),
    },
    Migration {
        version: 14,
        name: "forwarding",
        sql: include_str!("../../migrations/sqlite/0014_forwarding.sql"),
    },
    Migration {
        version: 15,
        name: "update_pins_rollout_backlog",
        sql: include_str!("../../migrations/sqlite/0015_update_pins_rollout_backlog.sql"),
    },
    Migration {
        version: 16,
        name: "feed_progress",
        sql: include_str!("../../migrations/sqlite/0016_feed_progress.sql"),
    },
    Migration {
        version: 17,
        name: "turn_staff",
        sql: include_str!("../../migrations/sqlite/0017_turn_staff.sql"),
    },
    Migration {
        version: 18,
        name: "device_seq",
        sql: include_str!("../../migrations/sqlite/0018_device_seq.sql"),
    },
];

/// PostgreSQL's migrations, oldest first (the same versions as [`SQLITE`]).
pub const POSTGRES: &[Migration] = &[
    Migration {
        version: 1,
        name: "initial",
        sql: include_str!("../../migrations/postgres/0001_initial.sql"),
    },
    Migration {
        version: 2,
        name: "live_queue",
        sql: include_str!("../../migrations/postgres/0002_live_queue.sql"),
    },
    Migration {
        version: 3,
        name: "figures",
        sql: include_str!("../../migrations/postgres/0003_figures.sql"),
    },
    Migration {
        version: 4,
        name: "audit",
        sql: include_str!("../../migrations/postgres/0004_audit.sql"),
    },
    Migration {
        version: 5,
        name: "skew_samples",
        sql: include_str!("../../migrations/postgres/0005_skew_samples.sql"),
    },
    Migration {
        version: 6,
        name: "turn_push",
        sql: include_str!("../../migrations/postgres/0006_turn_push.sql"),
    },
    Migration {
        version: 7,
        name: "fleet_state",
        sql: include_str!("../../migrations/postgres/0007_fleet_state.sql"),
    },
    Migration {
        version: 8,
        name: "event_partitions",
        sql: include_str!("../../migrations/postgres/0008_event_partitions.sql"),
    },
    Migration {
        version: 9,
        name: "alerts",
        sql: include_str!("../../migrations/postgres/0009_alerts.sql"),
    },
    Migration {
        version: 10,
        name: "store_config",
        sql: include_str!("../../migrations/postgres/0010_store_config.sql"),
    },
    Migration {
        version: 11,
        name: "releases",
        sql: include_str!("../../migrations/postgres/0011_releases.sql"),
    },
    Migration {
        version: 12,
        name: "store_regions",
        sql: include_str!("../../migrations/postgres/0012_store_regions.sql"),
    },
    Migration {
        version: 13,
        name: "accounts",
        sql: include_str!("../../migrations/postgres/0013_accounts.sql"),
    },
    Migration {
        version: 14,
        name: "forwarding",
        sql: include_str!("../../migrations/postgres/0014_forwarding.sql"),
    },
    Migration {
        version: 15,
        name: "update_pins_rollout_backlog",
        sql: include_str!("../../migrations/postgres/0015_update_pins_rollout_backlog.sql"),
    },
    Migration {
        version: 16,
        name: "feed_progress",
        sql: include_str!("../../migrations/postgres/0016_feed_progress.sql"),
    },
    Migration {
        version: 17,
        name: "turn_staff",
        sql: include_str!("../../migrations/postgres/0017_turn_staff.sql"),
    },
    Migration {
        version: 18,
        name: "device_seq",
        sql: include_str!("../../migrations/postgres/0018_device_seq.sql"),
    },
];

/// The migrations of `dialect`.
pub fn of(dialect: Dialect) -> &'static [Migration] {
    match dialect {
        Dialect::Sqlite => SQLITE,
        Dialect::Postgres => POSTGRES,
    }
}

/// The newest version this endpoint knows.
pub fn latest(dialect: Dialect) -> i64 {
    of(dialect).last().map_or(0, |m| m.version)
}

/// Creates the version table (the same text on both databases).
pub const CREATE_VERSION_TABLE: &str = "CREATE TABLE IF NOT EXISTS schema_version (
    id INTEGER PRIMARY KEY CHECK (id = 1), version BIGINT NOT NULL)";

/// Reads the recorded version (no row: a database made before versions were recorded).
pub const READ_VERSION: &str = "SELECT version FROM schema_version WHERE id = 1";

/// Records the version (`?1`).
pub const WRITE_VERSION: &str = "INSERT INTO schema_version (id, version) VALUES (1, ?1)
    ON CONFLICT (id) DO UPDATE SET version = excluded.version";

/// Reads the oldest endpoint version the schema still serves (`schema_compat`, from version 7).
pub const READ_COMPAT: &str = "SELECT oldest_code FROM schema_compat WHERE id = 1";

/// Whether this endpoint keeps serving a database at `found`, newer than it knows, whose
/// `schema_compat` says endpoints from `oldest_code` on still run on it: the newer migrations
/// were additive (a rolling upgrade: the new replica migrated first, this old one restarts).
pub fn tolerates_newer(dialect: Dialect, found: Option<i64>, oldest_code: Option<i64>) -> bool {
    let supported = latest(dialect);
    found.is_some_and(|f| f > supported) && oldest_code.is_some_and(|o| o <= supported)
}

/// The migrations still to run on a database at `found` (`None`: unversioned, i.e. 0); an error
/// when the database is newer than this endpoint.
pub fn pending(dialect: Dialect, found: Option<i64>) -> DbResult<&'static [Migration]> {
    let found = found.unwrap_or(0);
    let supported = latest(dialect);
    if found > supported {
        return Err(DbError::NewerSchema { found, supported });
    }
    let list = of(dialect);
    let done = list.iter().take_while(|m| m.version <= found).count();
    Ok(&list[done..])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_databases_have_the_same_numbered_versions() {
        for list in [SQLITE, POSTGRES] {
            for (i, m) in list.iter().enumerate() {
                assert_eq!(m.version, i64::try_from(i).unwrap() + 1, "{}", m.name);
            }
        }
        let names = |l: &[Migration]| l.iter().map(|m| (m.version, m.name)).collect::<Vec<_>>();
        assert_eq!(names(SQLITE), names(POSTGRES));
    }

    #[test]
    fn a_newer_schema_is_tolerated_only_when_it_says_this_version_still_fits() {
        let now = latest(Dialect::Sqlite);
        assert!(tolerates_newer(Dialect::Sqlite, Some(now + 2), Some(now)));
        assert!(tolerates_newer(
            Dialect::Sqlite,
            Some(now + 2),
            Some(now - 1)
        ));
        assert!(!tolerates_newer(
            Dialect::Sqlite,
            Some(now + 2),
            Some(now + 1)
        ));
        assert!(!tolerates_newer(Dialect::Sqlite, Some(now + 2), None));
        assert!(!tolerates_newer(Dialect::Sqlite, Some(now), Some(now)));
    }

    #[test]
    fn a_newer_database_is_refused_naming_both_versions() {
        let err = pending(Dialect::Sqlite, Some(99)).unwrap_err();
        let text = err.to_string();
        let supported = format!("up to version {}", latest(Dialect::Sqlite));
        assert!(text.contains("99") && text.contains(&supported), "{text}");
        assert_eq!(
            pending(Dialect::Postgres, None).unwrap().len(),
            POSTGRES.len()
        );
        let last = latest(Dialect::Postgres);
        for found in 1..last {
            assert_eq!(
                pending(Dialect::Postgres, Some(found)).unwrap()[0].version,
                found + 1
            );
        }
        assert!(pending(Dialect::Postgres, Some(last)).unwrap().is_empty());
    }
}
