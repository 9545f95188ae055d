//! Storage that grows for years (issue 20): a database of version 1 with events received over
//! more than a year is migrated keeping every row (on PostgreSQL into monthly partitions of
//! `events`, an event id still stored once); the retention policy of each data class is set,
//! validated and enforced by the storage job (PostgreSQL drops whole months, SQLite deletes),
//! personal data erased as an erasure erases it; and the `crm-endpoint retention` commands.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a failed unwrap is the failure message"
)]

mod common;

use common::{Backend, fresh_url};
use crm_endpoint::db::storage::{DataClass, Month};
use crm_endpoint::db::{DbError, NewCustomer, StoreRecord, migrations};
use kiosk_protocol::CardToken;
use kiosk_protocol::auth::sign_request;
use kiosk_protocol::events::{Envelope, Event, TicketIssued};
use kiosk_protocol::wire::{BatchRequest, BatchResponse, DeviceSecret, KioskClock, batches_path};
use time::OffsetDateTime;
use uuid::Uuid;

const DAY: i64 = 86_400_000;

fn now_ms() -> i64 {
    i64::try_from(OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000).unwrap()
}

/// Runs `sql` on the database at `url`, outside the endpoint; answers the first column of the
/// last statement's rows as text (PostgreSQL: `simple_query`).
async fn raw(url: &str, sql: &str) -> Vec<String> {
    if let Some(path) = url.strip_prefix("sqlite://") {
        let (path, sql) = (path.to_owned(), sql.to_owned());
        tokio::task::spawn_blocking(move || {
            let c = rusqlite::Connection::open(&path).unwrap();
            c.busy_timeout(std::time::Duration::from_secs(10)).unwrap();
            use std::os::unix::fs::PermissionsExt;
            let out = if sql.trim_start().starts_with("SELECT") {
                let mut st = c.prepare(&sql).unwrap();
                st.query_map([], |r| r.get::<_, rusqlite::types::Value>(0))
                    .unwrap()
                    .map(|v| match v.unwrap() {
                        rusqlite::types::Value::Integer(i) => i.to_string(),
                        rusqlite::types::Value::Text(t) => t,
                        other => format!("{other:?}"),
                    })
                    .collect()
            } else {
                c.execute_batch(&sql).unwrap();
                Vec::new()
            };
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
            out
        })
        .await
        .unwrap()
    } else {
        let (client, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls)
            .await
            .unwrap();
        let task = tokio::spawn(conn);
        let out = client
            .simple_query(sql)
            .await
            .unwrap()
            .into_iter()
            .filter_map(|m| match m {
                tokio_postgres::SimpleQueryMessage::Row(r) => r.get(0).map(str::to_owned),
                _ => None,
            })
            .collect();
        drop(client);
        let _ = task.await;
        out
    }
}

fn ticket() -> Event {
    Event::TicketIssued(TicketIssued {
        turn_id: Uuid::now_v7(),
        turn: "A-001".into(),
        service: "A".into(),
        number: 1,
        business_day: "2026-01-01".into(),
        priority: false,
        position: 0,
        estimated_wait_s: 0,
        card_token: None,
        locale: "es".into(),
        campaign_id: None,
        out_of_sequence: false,
    })
}

fn envelope(id: Uuid, seq: u64, at_ms: i64) -> Envelope {
    Envelope {
        id,
        kiosk_id: "k1".into(),
        seq,
        boot_id: Uuid::nil(),
        wall_time: OffsetDateTime::from_unix_timestamp_nanos(i128::from(at_ms) * 1_000_000)
            .unwrap(),
        mono_ms: seq,
        schema_version: 1,
        event: ticket(),
    }
}

/// An event row of kiosk `k1` received at `received_ms`.
fn event_row(id: Uuid, seq: u64, received_ms: i64) -> String {
    let json = serde_json::to_string(&envelope(id, seq, received_ms)).unwrap();
    format!(
        "INSERT INTO events (id, kiosk_id, store_id, seq, type, schema_version, device_ms,
           corrected_ms, received_ms, card_token, envelope)
         VALUES ('{id}', 'k1', 'north', {seq}, 'ticket_issued', 1, {received_ms}, {received_ms},
           {received_ms}, NULL, '{json}');"
    )
}

/// A database of schema version 1 with kiosk `k1` (secret all zeros) of store `north` and one
/// event received at each of `received`.
async fn version_1_with_events(url: &str, backend: Backend, received: &[(Uuid, i64)]) {
    let v1 = match backend {
        Backend::Sqlite => migrations::SQLITE[0].sql,
        Backend::Postgres => migrations::POSTGRES[0].sql,
    };
    let rows: String = received
        .iter()
        .enumerate()
        .map(|(i, (id, at))| event_row(*id, i as u64 + 1, *at))
        .collect();
    raw(
        url,
        &format!(
            "{v1}
            {};
            INSERT INTO schema_version (id, version) VALUES (1, 1);
            INSERT INTO settings (key, value) VALUES ('tenant_key', 'AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=');
            INSERT INTO stores (id, name) VALUES ('north', 'Tienda Norte');
            INSERT INTO kiosks (id, store_id, secret, hardware_profile, firmware_version, enrolled_ms)
              VALUES ('k1', 'north', 'AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=', 'simulated', '0.1.0', 0);
            {rows}",
            migrations::CREATE_VERSION_TABLE
        ),
    )
    .await;
}

/// Serves `db` and posts one batch of `events` signed as kiosk `k1`; the per-event statuses.
async fn post_as_k1(db: crm_endpoint::SharedDb, events: Vec<Envelope>) -> Vec<String> {
    common::install_crypto();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let config = crm_endpoint::ServeConfig {
        db,
        admin_token: None,
        tls: None,
    };
    let server = tokio::spawn(crm_endpoint::serve(config, listener, async {
        let _ = stopped.await;
    }));
    let mono = events.last().map_or(0, |e| e.mono_ms);
    let batch = BatchRequest::new("k1", KioskClock::now(Uuid::nil(), mono), events).unwrap();
    let body = serde_json::to_vec(&batch).unwrap();
    let path = batches_path("k1");
    let headers = sign_request(
        "k1",
        &DeviceSecret::from_bytes([0; 32]),
        "POST",
        &path,
        &body,
        OffsetDateTime::now_utc().unix_timestamp(),
    );
    let mut req = reqwest::Client::new()
        .post(format!("http://{addr}{path}"))
        .header("content-type", "application/json")
        .body(body);
    for (k, v) in headers.pairs() {
        req = req.header(k, v);
    }
    let resp = req.send().await.unwrap();
    assert_eq!(resp.status(), 200);
    let answer: BatchResponse = resp.json().await.unwrap();
    let _ = stop.send(());
    server.await.unwrap().unwrap();
    answer
        .results
        .iter()
        .map(|r| {
            serde_json::to_value(r.status)
                .unwrap()
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect()
}

async fn a_year_of_events_is_migrated_whole_and_each_id_still_stored_once(backend: Backend) {
    let (url, _dir) = fresh_url(backend).await;
    let now = now_ms();
    let received = [
        (Uuid::now_v7(), now - 400 * DAY),
        (Uuid::now_v7(), now - 40 * DAY),
        (Uuid::now_v7(), now - 3_600_000),
    ];
    version_1_with_events(&url, backend, &received).await;
    let db = crm_endpoint::db::open(&url).await.unwrap();
    assert_eq!(db.event_count().await.unwrap(), 3, "every row kept");
    let partitions = db.event_partitions().await.unwrap();
    if matches!(backend, Backend::Postgres) {
        // A partition per month from the oldest row's to two months ahead, no gap.
        let mut month = Month::of_ms(now - 400 * DAY);
        let mut expected = Vec::new();
        while month <= Month::of_ms(now).next().next() {
            expected.push(month.partition());
            month = month.next();
        }
        assert_eq!(partitions, expected);
        let oldest = raw(
            &url,
            &format!(
                "SELECT tableoid::regclass::text FROM events WHERE id = '{}'",
                received[0].0
            ),
        )
        .await;
        assert_eq!(oldest, [Month::of_ms(now - 400 * DAY).partition()]);
    } else {
        assert!(partitions.is_empty());
    }
    // The oldest event sent again (its month is a year back): still a duplicate, and a new one
    // in the same batch is stored.
    let statuses = post_as_k1(
        db.clone(),
        vec![
            envelope(received[0].0, 1, now - 400 * DAY),
            envelope(Uuid::now_v7(), 4, now),
        ],
    )
    .await;
    assert_eq!(statuses, ["duplicate", "accepted"]);
    assert_eq!(db.event_count().await.unwrap(), 4);
}

async fn each_class_is_kept_as_long_as_its_policy_says(backend: Backend) {
    let (url, _dir) = fresh_url(backend).await;
    let now = now_ms();
    let (old, recent, fresh) = (Uuid::now_v7(), Uuid::now_v7(), Uuid::now_v7());
    version_1_with_events(
        &url,
        backend,
        &[
            (old, now - 400 * DAY),
            (recent, now - 20 * DAY),
            (fresh, now - 3_600_000),
        ],
    )
    .await;
    let db = crm_endpoint::db::open(&url).await.unwrap();
    db.upsert_store(StoreRecord {
        id: "south".into(),
        name: "Tienda Sur".into(),
    })
    .await
    .unwrap();
    let customer = |byte: u8, name: &str| NewCustomer {
        card_token: CardToken::from_bytes([byte; 16]),
        store_id: "north".into(),
        display_name: name.into(),
        locale: "es".into(),
        email: Some(format!("{name}@example.com")),
        phone: None,
        consents: Vec::new(),
        visits: 1,
        segment: None,
    };
    db.upsert_customer(customer(1, "Longgone"), now - 800 * DAY)
        .await
        .unwrap();
    db.upsert_customer(customer(2, "Regular"), now - 10 * DAY)
        .await
        .unwrap();
    raw(
        &url,
        &format!(
            "INSERT INTO turns (turn_id, store_id, kiosk_id, service, issued_ms)
               VALUES ('t-old', 'north', 'k1', 'A', {}), ('t-new', 'north', 'k1', 'A', {});",
            now - 200 * DAY,
            now - DAY
        ),
    )
    .await;

    // Nothing set: everything is kept forever.
    assert_eq!(db.retention().await.unwrap(), Default::default());
    let report = db.maintain_storage(now).await.unwrap();
    assert_eq!(
        (
            report.events_deleted,
            report.customers_erased,
            report.turns_deleted
        ),
        (0, 0, 0)
    );
    assert!(report.partitions_dropped.is_empty());
    assert_eq!(db.event_count().await.unwrap(), 3);

    // Out-of-range retentions are refused and change nothing.
    for bad in [0, 36_501] {
        let err = db
            .set_retention(DataClass::Events, Some(bad), now)
            .await
            .unwrap_err();
        assert!(matches!(err, DbError::Refused(_)), "{err}");
    }
    assert_eq!(db.retention().await.unwrap().events_days, None);

    db.set_retention(DataClass::Events, Some(30), now)
        .await
        .unwrap();
    db.set_retention(DataClass::Personal, Some(365), now)
        .await
        .unwrap();
    db.set_retention(DataClass::Aggregates, Some(90), now)
        .await
        .unwrap();
    let report = db.maintain_storage(now).await.unwrap();
    let kept = raw(&url, "SELECT id FROM events ORDER BY id").await;
    let mut expected = vec![recent.to_string(), fresh.to_string()];
    expected.sort();
    match backend {
        Backend::Postgres => {
            // Whole months: the 400-day-old one's month and every month up to the one 30 days
            // back go; the 20-day-old event's month may or may not be the cutoff's.
            assert!(
                report
                    .partitions_dropped
                    .contains(&Month::of_ms(now - 400 * DAY).partition()),
                "{report:?}"
            );
            assert!(
                !report
                    .partitions_dropped
                    .contains(&Month::of_ms(now - 20 * DAY).partition())
            );
            let left = db.event_partitions().await.unwrap();
            assert_eq!(
                left[0],
                Month::of_ms(now - 30 * DAY).partition(),
                "{left:?}"
            );
            // The dropped events' ids are forgotten with them.
            let ids = raw(
                &url,
                &format!("SELECT id FROM event_ids WHERE id = '{old}'"),
            )
            .await;
            assert!(ids.is_empty());
        }
        Backend::Sqlite => assert_eq!(report.events_deleted, 1),
    }
    assert_eq!(kept, expected);
    assert_eq!(report.customers_erased, 1);
    assert!(
        db.customer(CardToken::from_bytes([1; 16]))
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        db.customer(CardToken::from_bytes([2; 16]))
            .await
            .unwrap()
            .is_some()
    );
    // Erased as an erasure request erases: the feed tells the kiosks.
    let erasures = raw(
        &url,
        &format!(
            "SELECT item_key FROM changes WHERE kind = 'erasure' AND item_key = '{}'",
            CardToken::from_bytes([1; 16])
        ),
    )
    .await;
    assert_eq!(erasures.len(), 1);
    // t-old and the turn of the 400-day-old ticket (the dashboard's backfill made it); t-new
    // the 20-day-old and the fresh tickets' turns stay.
    assert_eq!(report.turns_deleted, 2);
    let turns = raw(&url, "SELECT turn_id FROM turns ORDER BY issued_ms").await;
    assert_eq!(turns.len(), 3, "{turns:?}");
    assert!(turns.contains(&"t-new".to_owned()));
    assert!(!turns.contains(&"t-old".to_owned()));

    // Run again: nothing more to do.
    let again = db.maintain_storage(now).await.unwrap();
    assert_eq!(
        (
            again.events_deleted,
            again.customers_erased,
            again.turns_deleted
        ),
        (0, 0, 0)
    );
    assert!(again.partitions_dropped.is_empty() && again.partitions_created.is_empty());
}

/// PostgreSQL: a row received in a month without a partition lands in the default partition,
/// and moves into its month's partition when the job creates it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rows_of_a_month_without_a_partition_move_into_it_when_it_is_created() {
    let (url, _dir) = fresh_url(Backend::Postgres).await;
    let now = now_ms();
    version_1_with_events(&url, Backend::Postgres, &[]).await;
    let db = crm_endpoint::db::open(&url).await.unwrap();
    let far = Month::of_ms(now).next().next().next();
    let id = Uuid::now_v7();
    raw(&url, &event_row(id, 1, far.start_ms() + DAY)).await;
    let at = format!("SELECT tableoid::regclass::text FROM events WHERE id = '{id}'");
    assert_eq!(raw(&url, &at).await, ["events_default"]);
    let report = db.maintain_storage(far.start_ms() - DAY).await.unwrap();
    assert!(
        report.partitions_created.contains(&far.partition()),
        "{report:?}"
    );
    assert_eq!(raw(&url, &at).await, [far.partition()]);
    assert_eq!(db.event_count().await.unwrap(), 1);
}

/// The command line sets, shows and applies the policy, and refuses a bad retention naming it.
#[test]
fn retention_commands_set_show_and_apply_the_policy() {
    use std::process::Command;
    const BIN: &str = env!("CARGO_BIN_EXE_crm-endpoint");
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}", dir.path().join("crm.db").display());
    let run = |args: &[&str]| {
        let out = Command::new(BIN)
            .args(["retention"])
            .args(args)
            .args(["--db", &db])
            .output()
            .unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (ok, out, err) = run(&["set", "--events", "395", "--personal", "2y"]);
    assert!(ok, "{err}");
    assert!(
        out.contains("events: kept 395 days") && out.contains("personal: kept 730 days"),
        "{out}"
    );
    let (ok, out, _) = run(&["show"]);
    assert!(ok);
    assert_eq!(
        out,
        "personal: kept 730 days\nevents: kept 395 days\naggregates: kept forever\n"
    );
    for bad in ["0", "3w", "101y"] {
        let (ok, _, err) = run(&["set", "--events", bad]);
        assert!(!ok && err.contains("retention"), "{bad}: {err}");
    }
    let (ok, _, err) = run(&["set"]);
    assert!(!ok && err.contains("--personal"), "{err}");
    let (ok, out, _) = run(&["show"]);
    assert!(
        ok && out.contains("events: kept 395 days"),
        "unchanged: {out}"
    );
    let (ok, out, err) = run(&["apply"]);
    assert!(ok, "{err}");
    let report: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(report["events_deleted"], 0);
}

on_both_databases!(
    a_year_of_events_is_migrated_whole_and_each_id_still_stored_once,
    each_class_is_kept_as_long_as_its_policy_says,
);
