//! The numbered schema migrations on SQLite and on a throwaway PostgreSQL: a database written by
//! a newer endpoint is refused naming both versions, a database made before versions were
//! recorded (today's unversioned schema) is adopted as version 1 with its data and migrated on,
//! and a database of version 1 gets the live queue (version 2) of the queue events it stored and
//! keeps one survey answer per turn (version 3).

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a failed unwrap is the failure message"
)]

mod common;

use common::{Backend, fresh_url};
use crm_endpoint::db::{DbError, DbKind, LiveQueueQuery, StoreRecord, migrations};
use kiosk_protocol::events::{Envelope, Event, SurveyAnswered, TicketIssued, TurnCalled};
use time::OffsetDateTime;
use uuid::Uuid;

/// Runs `sql` (several statements) on the database at `url`, outside the endpoint.
async fn raw(url: &str, sql: &str) {
    if let Some(path) = url.strip_prefix("sqlite://") {
        let (path, sql) = (path.to_owned(), sql.to_owned());
        tokio::task::spawn_blocking(move || {
            let c = rusqlite::Connection::open(&path).unwrap();
            c.busy_timeout(std::time::Duration::from_secs(10)).unwrap();
            c.execute_batch(&sql).unwrap();
            // The endpoint opens only a database private to its user (as it creates its own).
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        })
        .await
        .unwrap();
    } else {
        let (client, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls)
            .await
            .unwrap();
        let task = tokio::spawn(conn);
        client.batch_execute(sql).await.unwrap();
        drop(client);
        let _ = task.await;
    }
}

/// The recorded schema version.
async fn version(url: &str) -> i64 {
    if let Some(path) = url.strip_prefix("sqlite://") {
        let path = path.to_owned();
        tokio::task::spawn_blocking(move || {
            let c = rusqlite::Connection::open(path).unwrap();
            c.query_row(migrations::READ_VERSION, [], |r| r.get(0))
                .unwrap()
        })
        .await
        .unwrap()
    } else {
        let (client, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls)
            .await
            .unwrap();
        tokio::spawn(conn);
        client
            .query_one(migrations::READ_VERSION, &[])
            .await
            .unwrap()
            .get(0)
    }
}

/// The newest schema version (the same on both databases).
fn latest() -> i64 {
    migrations::latest(DbKind::Sqlite)
}

fn schema_v1(backend: Backend) -> &'static str {
    match backend {
        Backend::Sqlite => migrations::SQLITE[0].sql,
        Backend::Postgres => migrations::POSTGRES[0].sql,
    }
}

async fn a_newer_database_is_a_clear_error(backend: Backend) {
    let (url, _dir) = fresh_url(backend).await;
    let db = crm_endpoint::db::open(&url).await.unwrap();
    drop(db);
    assert_eq!(version(&url).await, latest());
    // A newer release migrated additively (schema_compat unchanged): this one still serves it,
    // as an old replica must during a rolling upgrade (docs/FLEET.md).
    raw(&url, "UPDATE schema_version SET version = 99").await;
    let db = crm_endpoint::db::open(&url)
        .await
        .expect("a newer schema this version still fits is served");
    drop(db);
    assert_eq!(
        version(&url).await,
        99,
        "an old endpoint never migrates back"
    );
    // A breaking ("contract") migration says only version 99 on fits: a clear error.
    raw(&url, "UPDATE schema_compat SET oldest_code = 99").await;
    let err = match crm_endpoint::db::open(&url).await {
        Ok(_) => panic!("a database of schema version 99 was opened"),
        Err(e) => e,
    };
    assert!(
        matches!(
            err,
            DbError::NewerSchema {
                found: 99,
                supported
            } if supported == latest()
        ),
        "{err:?}"
    );
    let text = err.to_string();
    assert!(
        text.contains("version 99") && text.contains(&format!("up to version {}", latest())),
        "{text}"
    );
}

async fn an_unversioned_database_is_adopted_as_version_1(backend: Backend) {
    let (url, _dir) = fresh_url(backend).await;
    // What endpoints before numbered migrations left: the schema, a tenant key and data, and no
    // schema_version table.
    raw(
        &url,
        &format!(
            "{}
            INSERT INTO settings (key, value) VALUES ('tenant_key', 'AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=');
            INSERT INTO settings (key, value) VALUES ('dashboard_backfilled', '1');
            INSERT INTO stores (id, name) VALUES ('north', 'Tienda Norte');",
            schema_v1(backend)
        ),
    )
    .await;
    let db = crm_endpoint::db::open(&url).await.unwrap();
    assert_eq!(
        db.store("north".into()).await.unwrap(),
        Some(StoreRecord {
            id: "north".into(),
            name: "Tienda Norte".into()
        })
    );
    assert_eq!(
        db.tenant_key().await.unwrap().to_base64(),
        "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="
    );
    drop(db);
    // Adopted as version 1, then migrated to the newest.
    assert_eq!(version(&url).await, latest());
    // And it opens again as an ordinary versioned database.
    crm_endpoint::db::open(&url).await.unwrap();
}

/// A stored event row of kiosk `k1` of store `north`, as a version 1 endpoint stored it.
fn event_row(seq: u64, at_ms: i64, event: Event) -> String {
    let env = Envelope {
        id: Uuid::now_v7(),
        kiosk_id: "k1".into(),
        seq,
        boot_id: Uuid::nil(),
        wall_time: OffsetDateTime::from_unix_timestamp_nanos(i128::from(at_ms) * 1_000_000)
            .unwrap(),
        mono_ms: seq,
        schema_version: 1,
        event,
    };
    let json = serde_json::to_string(&env).unwrap();
    assert!(!json.contains('\''));
    format!(
        "INSERT INTO events (id, kiosk_id, store_id, seq, type, schema_version, device_ms,
           corrected_ms, received_ms, card_token, envelope)
         VALUES ('{}', 'k1', 'north', {seq}, '{}', 1, {at_ms}, {at_ms}, {at_ms}, NULL, '{json}');",
        env.id,
        env.event.type_name()
    )
}

fn ticket(turn_id: Uuid, label: &str, day: &str) -> Event {
    Event::TicketIssued(TicketIssued {
        turn_id,
        turn: label.into(),
        service: "A".into(),
        number: 1,
        business_day: day.into(),
        priority: false,
        position: 0,
        estimated_wait_s: 0,
        card_token: None,
        locale: "es".into(),
        campaign_id: None,
        out_of_sequence: false,
    })
}

fn answer(turn_id: Uuid, score: u8) -> Event {
    Event::SurveyAnswered(SurveyAnswered {
        turn_id: Some(turn_id),
        score,
        reason: None,
        card_token: None,
    })
}

async fn a_version_1_database_gets_the_live_queue_of_its_recent_events(backend: Backend) {
    let (url, _dir) = fresh_url(backend).await;
    let now = OffsetDateTime::now_utc();
    let now_ms = i64::try_from(now.unix_timestamp_nanos() / 1_000_000).unwrap();
    let day = now.date().to_string();
    let hour = 3_600_000;
    let (a1, a2, old) = (Uuid::now_v7(), Uuid::now_v7(), Uuid::now_v7());
    raw(
        &url,
        &format!(
            "{}
            {};
            INSERT INTO settings (key, value) VALUES ('tenant_key', 'AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=');
            INSERT INTO settings (key, value) VALUES ('dashboard_backfilled', '1');
            INSERT INTO stores (id, name) VALUES ('north', 'Tienda Norte');
            INSERT INTO kiosks (id, store_id, secret, hardware_profile, firmware_version, enrolled_ms)
              VALUES ('k1', 'north', 'AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=', 'simulated', '0.1.0', 0);
            {}
            {}
            {}
            {}
            {}
            {}
            {}",
            schema_v1(backend),
            migrations::CREATE_VERSION_TABLE,
            event_row(1, now_ms - hour, ticket(a1, "A-001", &day)),
            event_row(2, now_ms - hour + 1000, ticket(a2, "A-002", &day)),
            event_row(
                3,
                now_ms - hour / 2,
                Event::TurnCalled(TurnCalled {
                    staff: None,
                    turn_id: a1,
                    turn: "A-001".into(),
                    counter: "1".into(),
                    recall: false,
                    waited_s: 0,
                })
            ),
            // Stored three days ago (a kiosk's clock gone wrong, say): older than the replay.
            event_row(4, now_ms - 72 * hour, ticket(old, "A-003", &day)),
            // A-001 answered twice (before the endpoint kept one answer per turn), A-002 once.
            event_row(5, now_ms - hour / 4, answer(a1, 0)),
            event_row(6, now_ms - hour / 5, answer(a1, 10)),
            event_row(7, now_ms - hour / 6, answer(a2, 9)),
        ),
    )
    .await;
    raw(
        &url,
        "INSERT INTO schema_version (id, version) VALUES (1, 1)",
    )
    .await;
    let db = crm_endpoint::db::open(&url).await.unwrap();
    let q = db
        .live_queue(LiveQueueQuery::new("north", now_ms))
        .await
        .unwrap();
    assert_eq!((q.issued, q.waiting), (2, 1));
    assert_eq!(q.services[0].oldest_waiting.as_deref(), Some("A-002"));
    assert_eq!(
        (
            q.calls.len(),
            q.calls[0].turn.as_str(),
            q.calls[0].counter.as_str()
        ),
        (1, "A-001", "1")
    );
    assert_eq!(q.kiosks[0].kiosk_id, "k1");
    // Version 3 keeps each turn's first answer: NPS over A-001's 0 and A-002's 9.
    let stats = db.stats("north".into()).await.unwrap();
    let nps = stats.nps.expect("answers");
    assert_eq!(nps.responses, 2, "{nps:?}");
    assert_eq!(nps.score, 0.0);
    drop(db);
    assert_eq!(version(&url).await, latest());
    // Replayed once: opening again changes nothing.
    let db = crm_endpoint::db::open(&url).await.unwrap();
    let again = db
        .live_queue(LiveQueueQuery::new("north", now_ms))
        .await
        .unwrap();
    assert_eq!(again, q);
}

on_both_databases!(
    a_newer_database_is_a_clear_error,
    an_unversioned_database_is_adopted_as_version_1,
    a_version_1_database_gets_the_live_queue_of_its_recent_events,
);
