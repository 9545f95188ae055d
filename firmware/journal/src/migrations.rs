//! The journal's schema, as a numbered list of migrations applied in order at start-up.
//!
//! `PRAGMA user_version` holds the number of the last migration applied. Each migration runs in
//! its own transaction together with the `user_version` bump, so a crash mid-migration leaves
//! the previous version intact. A database whose version is newer than this binary knows (a
//! downgrade) is refused with [`MigrationError::NewerSchema`]: we never guess at a schema we do
//! not know.

use rusqlite::Connection;

/// One step of the schema.
#[derive(Debug, Clone, Copy)]
pub struct Migration {
    /// The version this migration brings the database to (1, 2, ...; no gaps).
    pub version: u32,
    /// What it does, for logs.
    pub name: &'static str,
    /// The SQL, run in one transaction.
    pub sql: &'static str,
}

/// Errors of the migration runner.
#[derive(Debug, thiserror::Error)]
pub enum MigrationError {
    /// The database was written by a newer firmware.
    #[error(
        "journal schema version {found} is newer than this firmware supports ({supported}): \
         install the newer firmware again or move the database aside"
    )]
    NewerSchema {
        /// Version found in the file.
        found: u32,
        /// Newest version this binary knows.
        supported: u32,
    },
    /// A read-only reader found a database not yet migrated by the running firmware.
    #[error(
        "journal schema version {found} is older than this firmware's ({supported}): start the kiosk once to migrate it"
    )]
    Older {
        /// Version found in the file.
        found: u32,
        /// Newest version this binary knows.
        supported: u32,
    },
    /// A migration failed; the database stays at the previous version.
    #[error("journal migration {version} ({name}) failed")]
    Failed {
        /// The migration that failed.
        version: u32,
        /// Its name.
        name: &'static str,
        /// What SQLite said.
        #[source]
        source: rusqlite::Error,
    },
    /// Reading or writing `user_version` failed.
    #[error("reading the journal schema version failed")]
    Version(#[source] rusqlite::Error),
}

/// The journal's migrations, oldest first.
pub const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        name: "events, dead letters, counters, settings",
        sql: r#"
            -- AUTOINCREMENT: a sequence number is never reused, even after the newest rows
            -- were deleted (retention, erasure).
            CREATE TABLE events (
                seq        INTEGER PRIMARY KEY AUTOINCREMENT,
                id         TEXT NOT NULL UNIQUE,
                type       TEXT NOT NULL,
                wall_time  TEXT NOT NULL,
                card_token TEXT,
                body       TEXT NOT NULL,  -- envelope JSON, or sealed when it carries personal data
                acked_at   INTEGER         -- unix seconds when the endpoint acknowledged it
            );
            CREATE INDEX events_pending ON events(seq) WHERE acked_at IS NULL;
            CREATE INDEX events_acked ON events(acked_at) WHERE acked_at IS NOT NULL;
            CREATE INDEX events_card_token ON events(card_token) WHERE card_token IS NOT NULL;

            CREATE VIEW outbox AS
                SELECT seq, id, type, wall_time, body FROM events WHERE acked_at IS NULL;

            CREATE TABLE dead_letters (
                seq       INTEGER PRIMARY KEY,
                id        TEXT NOT NULL UNIQUE,
                type      TEXT NOT NULL,
                wall_time TEXT NOT NULL,
                body      TEXT NOT NULL,
                reason    TEXT NOT NULL,
                dead_at   INTEGER NOT NULL
            );

            -- Small named integers that change together with an event (e.g. a day's turn counter).
            CREATE TABLE counters (
                name  TEXT PRIMARY KEY,
                value INTEGER NOT NULL
            ) WITHOUT ROWID;

            CREATE TABLE settings (
                key   TEXT PRIMARY KEY,
                value TEXT NOT NULL
            ) WITHOUT ROWID;
        "#,
    },
    Migration {
        version: 2,
        name: "turns, profile and campaign caches, sync cursor",
        sql: r#"
            CREATE TABLE turns (
                turn_id      TEXT PRIMARY KEY,
                business_day TEXT NOT NULL,
                service      TEXT NOT NULL,
                number       INTEGER NOT NULL,
                label        TEXT NOT NULL,
                priority     INTEGER NOT NULL DEFAULT 0,
                state        TEXT NOT NULL,
                issued_at    TEXT NOT NULL,
                called_at    TEXT,
                counter      TEXT,
                finished_at  TEXT,
                card_token   TEXT,
                body         TEXT NOT NULL,   -- the queue's own record (JSON), sealed if personal
                UNIQUE (business_day, service, number)
            );
            CREATE INDEX turns_day_state ON turns(business_day, state);

            CREATE TABLE profiles (
                card_token TEXT PRIMARY KEY,
                body       TEXT NOT NULL,      -- sealed JSON: name, segment, consents, locale
                updated_at TEXT NOT NULL
            ) WITHOUT ROWID;

            CREATE TABLE campaigns (
                campaign_id TEXT PRIMARY KEY,
                body        TEXT NOT NULL,
                updated_at  TEXT NOT NULL
            ) WITHOUT ROWID;

            CREATE TABLE erased_tokens (
                card_token TEXT PRIMARY KEY,
                erased_at  TEXT NOT NULL
            ) WITHOUT ROWID;
        "#,
    },
    Migration {
        version: 3,
        name: "store ops: the queue steps of every kiosk of the store",
        sql: r#"
            -- Every kiosk's queue steps, this kiosk's own and those pulled from its peers; the
            -- store's queue is their fold (kiosk_store). Dense per origin, never rewritten except
            -- to redact an erased card token.
            CREATE TABLE store_ops (
                origin       TEXT NOT NULL,
                seq          INTEGER NOT NULL,
                hlc          INTEGER NOT NULL,
                business_day TEXT NOT NULL,
                body         TEXT NOT NULL,   -- sealed JSON of the op (it may carry a card token)
                PRIMARY KEY (origin, seq)
            ) WITHOUT ROWID;
            CREATE INDEX store_ops_day ON store_ops(business_day);

            -- Conflicts of this kiosk's own steps already journaled as queue_conflict events.
            CREATE TABLE store_conflicts_reported (
                origin TEXT NOT NULL,
                seq    INTEGER NOT NULL,
                PRIMARY KEY (origin, seq)
            ) WITHOUT ROWID;
        "#,
    },
];

/// The newest schema version this binary knows.
pub fn latest(migrations: &[Migration]) -> u32 {
    migrations.last().map_or(0, |m| m.version)
}

/// Brings `conn` to the newest version in `migrations`; returns the version found before.
pub fn migrate(conn: &mut Connection, migrations: &[Migration]) -> Result<u32, MigrationError> {
    let found: u32 = conn
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .map_err(MigrationError::Version)?;
    let supported = latest(migrations);
    if found > supported {
        return Err(MigrationError::NewerSchema { found, supported });
    }
    for m in migrations.iter().filter(|m| m.version > found) {
        let failed = |source| MigrationError::Failed {
            version: m.version,
            name: m.name,
            source,
        };
        let tx = conn.transaction().map_err(failed)?;
        tx.execute_batch(m.sql).map_err(failed)?;
        // PRAGMA cannot take a bound parameter; the version is our own integer.
        tx.execute_batch(&format!("PRAGMA user_version = {}", m.version))
            .map_err(failed)?;
        tx.commit().map_err(failed)?;
        tracing::info!(
            version = m.version,
            name = m.name,
            "journal schema migrated"
        );
    }
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn version(conn: &Connection) -> u32 {
        conn.query_row("PRAGMA user_version", [], |r| r.get(0))
            .unwrap()
    }

    #[test]
    fn empty_database_is_migrated_to_the_latest_version() {
        let mut conn = Connection::open_in_memory().unwrap();
        assert_eq!(migrate(&mut conn, MIGRATIONS).unwrap(), 0);
        assert_eq!(version(&conn), latest(MIGRATIONS));
        // A second run finds nothing to do.
        assert_eq!(migrate(&mut conn, MIGRATIONS).unwrap(), latest(MIGRATIONS));
    }

    #[test]
    fn migrations_are_numbered_without_gaps() {
        for (i, m) in MIGRATIONS.iter().enumerate() {
            assert_eq!(m.version as usize, i + 1, "{}", m.name);
        }
    }

    #[test]
    fn database_from_a_newer_firmware_is_a_clear_error() {
        let mut conn = Connection::open_in_memory().unwrap();
        migrate(&mut conn, MIGRATIONS).unwrap();
        conn.execute_batch("PRAGMA user_version = 99").unwrap();
        let err = migrate(&mut conn, MIGRATIONS).unwrap_err();
        assert!(matches!(err, MigrationError::NewerSchema { found: 99, .. }));
        assert!(err.to_string().contains("newer than this firmware"));
    }

    #[test]
    fn failing_migration_leaves_the_previous_version_intact() {
        const BROKEN: &[Migration] = &[
            Migration {
                version: 1,
                name: "ok",
                sql: "CREATE TABLE a (x);",
            },
            Migration {
                version: 2,
                name: "broken",
                sql: "CREATE TABLE b (x); NOT SQL;",
            },
        ];
        let mut conn = Connection::open_in_memory().unwrap();
        let err = migrate(&mut conn, BROKEN).unwrap_err();
        assert!(matches!(err, MigrationError::Failed { version: 2, .. }));
        assert_eq!(version(&conn), 1);
        let b_exists: i64 = conn
            .query_row(
                "SELECT count(*) FROM sqlite_master WHERE name = 'b'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(b_exists, 0, "the failed migration's table was rolled back");
    }

    #[test]
    fn version_one_database_is_upgraded_keeping_its_rows() {
        let mut conn = Connection::open_in_memory().unwrap();
        migrate(&mut conn, &MIGRATIONS[..1]).unwrap();
        conn.execute(
            "INSERT INTO events (id, type, wall_time, body) VALUES ('e1', 'kiosk_started', 't', '{}')",
            [],
        )
        .unwrap();
        migrate(&mut conn, MIGRATIONS).unwrap();
        let n: i64 = conn
            .query_row("SELECT count(*) FROM events", [], |r| r.get(0))
            .unwrap();
        assert_eq!(n, 1);
        assert_eq!(version(&conn), latest(MIGRATIONS));
    }
}
